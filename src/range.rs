//! Range checks of numeric settings: one wording for every config error about a value
//! (`optimizer.beta1: 1.5 is not in [0, 1)`), shared by the job config and the arguments
//! of every built-in component.

use std::fmt::Display;

use crate::error::{Error, Result};

/// `field`: `value is not in RANGE` unless `ok`.
pub fn check(ok: bool, field: &str, value: impl Display, range: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::config(field, format!("{value} is not in {range}")))
    }
}

/// `value` in `[0, 1)`.
pub fn unit_open(field: &str, value: f64) -> Result<()> {
    check((0.0..1.0).contains(&value), field, value, "[0, 1)")
}

/// `value` finite and `> 0`.
pub fn positive(field: &str, value: f64) -> Result<()> {
    check(
        value.is_finite() && value > 0.0,
        field,
        value,
        "(0, inf) (a finite number > 0)",
    )
}

/// `value` finite and `>= 0`.
pub fn non_negative(field: &str, value: f64) -> Result<()> {
    check(
        value.is_finite() && value >= 0.0,
        field,
        value,
        "[0, inf) (a finite number >= 0)",
    )
}

/// A count at least 1.
pub fn at_least_one(field: &str, value: u64) -> Result<()> {
    check(value >= 1, field, value, "[1, inf) (must be at least 1)")
}

/// `value` in `[0, 1]`.
pub fn unit_closed(field: &str, value: f64) -> Result<()> {
    check((0.0..=1.0).contains(&value), field, value, "[0, 1]")
}

/// `value` in `(0, 1]`: a factor that never raises the rate.
pub fn decay_factor(field: &str, value: f64) -> Result<()> {
    check(value > 0.0 && value <= 1.0, field, value, "(0, 1]")
}
