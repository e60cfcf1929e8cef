//! Regression accumulators: MSE, MAE and R².

use serde::{Deserialize, Serialize};

use super::base::{check_len, check_not_nan, ratio};
use super::MetricError;

/// MSE, MAE and R² from running sums. The target variance uses Welford's
/// update instead of `sum y² - (sum y)²/n`, which cancels catastrophically
/// when |mean| >> std and would turn a constant target into a tiny non-zero
/// variance. Updates are per sample, so batching never changes the result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RegressionAccumulator {
    pub(super) n: u64,
    pub(super) mean_target: f64,
    /// Sum of squared deviations of the target from its running mean.
    pub(super) m2_target: f64,
    pub(super) sum_sq_err: f64,
    pub(super) sum_abs_err: f64,
}

impl RegressionAccumulator {
    /// Adds predictions and their targets pairwise; equal lengths and no NaN are checked
    /// first, so an error leaves the accumulator as it was.
    pub fn update(&mut self, pred: &[f32], target: &[f32]) -> Result<(), MetricError> {
        check_len("pred", pred.len(), "target", target.len())?;
        check_not_nan("pred", pred)?;
        check_not_nan("target", target)?;
        for (&p, &y) in pred.iter().zip(target) {
            self.push(f64::from(p), f64::from(y));
        }
        Ok(())
    }

    fn push(&mut self, p: f64, y: f64) {
        self.n += 1;
        let delta = y - self.mean_target;
        self.mean_target += delta / self.n as f64;
        self.m2_target += delta * (y - self.mean_target);
        let err = p - y;
        self.sum_sq_err += err * err;
        self.sum_abs_err += err.abs();
    }

    /// NaN before any sample.
    pub fn mse(&self) -> f64 {
        ratio(self.sum_sq_err, self.n)
    }

    /// NaN before any sample.
    pub fn mae(&self) -> f64 {
        ratio(self.sum_abs_err, self.n)
    }

    /// `1 - SS_res / SS_tot`, following scikit-learn's `r2_score`: NaN with
    /// fewer than 2 samples; for a constant target, 1.0 if every prediction
    /// is exact and 0.0 otherwise (instead of ±inf).
    pub fn r2(&self) -> f64 {
        r2_of(self.n, self.sum_sq_err, self.m2_target)
    }
}

/// R² from the sample count, the summed squared error and the target's summed squared
/// deviation (plain or weighted): NaN below 2 samples; for a constant target 1.0 if every
/// prediction is exact, else 0.0.
pub(super) fn r2_of(n: u64, sum_sq_err: f64, m2_target: f64) -> f64 {
    if n < 2 {
        return f64::NAN;
    }
    if m2_target == 0.0 {
        return if sum_sq_err == 0.0 { 1.0 } else { 0.0 };
    }
    1.0 - sum_sq_err / m2_target
}

#[cfg(test)]
mod tests {
    use super::super::{Metric, MetricSet};
    use super::*;

    #[test]
    fn regression_metrics() {
        // sklearn docs: y = [3, -0.5, 2, 7], pred = [2.5, 0, 2, 8].
        // errors 0.5, 0.5, 0, 1 -> MSE 1.5/4, MAE 2/4;
        // mean y 2.875, SS_tot 29.1875 -> R2 = 1 - 1.5/29.1875.
        // Checked against scikit-learn 1.9.1 (0.9486081370449679).
        let ms = [Metric::Mse, Metric::Mae, Metric::R2];
        let mut set = MetricSet::new(&ms, 0).unwrap();
        set.update_regression(0.0, &[2.5, 0.0, 2.0, 8.0], &[3.0, -0.5, 2.0, 7.0], None)
            .unwrap();
        let got: Vec<f64> = set.compute().into_iter().map(|(_, v)| v).collect();
        assert_eq!(got, [0.375, 0.5, 1.0 - 1.5 / 29.1875]);
        assert_eq!(got[2], 0.9486081370449679);

        // Non-dyadic values (f32 inputs widened to f64), checked against
        // scikit-learn 1.9.1; summation order differs, hence the tolerance.
        let mut acc = RegressionAccumulator::default();
        acc.update(
            &[1.5, 2.25, -0.5, 4.0, 3.3, 0.1],
            &[1.0, 2.0, 0.0, 5.0, 3.0, 0.2],
        )
        .unwrap();
        assert!((acc.mse() - 0.27708332861463264).abs() < 1e-15);
        assert!((acc.mae() - 0.4416666589677334).abs() < 1e-15);
        assert!((acc.r2() - 0.9083180162169904).abs() < 1e-15);

        // Constant target (0.1 is not exact in binary, yet the variance is 0):
        // perfect -> 1.0, imperfect -> 0.0, like sklearn; one sample -> NaN.
        let mut perfect = RegressionAccumulator::default();
        perfect.update(&[0.1; 3], &[0.1; 3]).unwrap();
        assert_eq!(perfect.r2(), 1.0);
        let mut off = RegressionAccumulator::default();
        off.update(&[0.1, 0.1, 0.2], &[0.1; 3]).unwrap();
        assert_eq!(off.r2(), 0.0);
        let mut one = RegressionAccumulator::default();
        one.update(&[1.0], &[2.0]).unwrap();
        assert!(one.r2().is_nan());
        assert_eq!(one.mse(), 1.0);
    }
}
