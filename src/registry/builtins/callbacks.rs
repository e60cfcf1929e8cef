//! The built-in callbacks that a job file can name, and their argument types.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::callbacks::{Calibration, EarlyStopping};
use crate::error::{Error, Result};
use crate::metrics::calibration::TiePreference;
use crate::range::{at_least_one, non_negative};
use crate::registry::Registry;

/// Registers the built-in callbacks.
pub(super) fn register(r: &mut Registry) {
    r.callback_checked(
        "early_stopping",
        EarlyStoppingArgs::validate,
        |a: EarlyStoppingArgs, _| Ok(Box::new(a.callback())),
    );
    r.callback_checked(
        "calibration",
        CalibrationArgs::validate,
        |a: CalibrationArgs, ctx| {
            let path = ctx.run_dir.join(&a.file);
            Ok(Box::new(Calibration::new(
                &a.metric,
                a.steps,
                a.tie()?,
                &path,
            )?))
        },
    );
}

/// Searches the decision threshold of a binary classifier on the last validation's
/// predictions when the run ends; writes `calibration.json` (threshold, metric before and
/// after, the grid) into the run directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CalibrationArgs {
    /// The metric maximised: `accuracy`, `precision_*`, `recall_*` or `f1_*` (default
    /// `f1_binary`).
    pub metric: String,
    /// Thresholds tried: `steps + 1` evenly spaced from 0 to 1, at least 1 (default 100).
    pub steps: usize,
    /// Which of several equally good thresholds: `lowest`, `highest` or `middle` (the
    /// median of the tied ones; default).
    pub prefer: String,
    /// The file written, relative to the run directory (default `calibration.json`).
    pub file: String,
}

impl Default for CalibrationArgs {
    fn default() -> Self {
        Self {
            metric: "f1_binary".into(),
            steps: 100,
            prefer: "middle".into(),
            file: "calibration.json".into(),
        }
    }
}

impl CalibrationArgs {
    /// Checks `steps`, `prefer`, `metric` and `file`.
    pub fn validate(&self) -> Result<()> {
        at_least_one("calibration.steps", self.steps as u64)?;
        self.tie()?;
        Calibration::new(
            &self.metric,
            1,
            TiePreference::Middle,
            std::path::Path::new("."),
        )?;
        if self.file.is_empty() || std::path::Path::new(&self.file).is_absolute() {
            return Err(Error::config(
                "calibration.file",
                format!(
                    "`{}` is not a file name inside the run directory",
                    self.file
                ),
            ));
        }
        Ok(())
    }

    /// `prefer` as a tie preference.
    pub fn tie(&self) -> Result<TiePreference> {
        match self.prefer.as_str() {
            "lowest" => Ok(TiePreference::Lowest),
            "highest" => Ok(TiePreference::Highest),
            "middle" => Ok(TiePreference::Middle),
            other => Err(Error::config(
                "calibration.prefer",
                format!("`{other}` is not lowest, highest or middle"),
            )),
        }
    }
}

/// Stops the run when a validation metric stops improving.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct EarlyStoppingArgs {
    /// The metric watched (default `val_loss`; min or max as the metric declares, else by
    /// its name).
    pub monitor: String,
    /// Validations without improvement before stopping, at least 1 (default 5).
    pub patience: u64,
    /// Smallest change that counts as an improvement (default 0).
    pub min_delta: f64,
    /// Validations ignored at the start (default 0).
    pub warmup: u64,
}

impl Default for EarlyStoppingArgs {
    fn default() -> Self {
        Self {
            monitor: "val_loss".into(),
            patience: 5,
            min_delta: 0.0,
            warmup: 0,
        }
    }
}

impl EarlyStoppingArgs {
    /// Checks `patience` and `min_delta`.
    pub fn validate(&self) -> Result<()> {
        at_least_one("early_stopping.patience", self.patience)?;
        non_negative("early_stopping.min_delta", self.min_delta)
    }

    /// The callback these settings describe.
    pub fn callback(&self) -> EarlyStopping {
        EarlyStopping::new(&self.monitor)
            .patience(self.patience)
            .min_delta(self.min_delta)
            .warmup(self.warmup)
    }
}
