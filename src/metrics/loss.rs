//! Mean loss over a validation pass, for every task.

use serde::{Deserialize, Serialize};

use super::base::ratio;

/// Mean loss: the trainer passes per-batch loss *sums* and sample counts so
/// batches of unequal size are weighted correctly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct LossAccumulator {
    pub(super) sum: f64,
    pub(super) count: u64,
}

impl LossAccumulator {
    /// Adds one batch: the *sum* of its per-sample losses and its number of samples.
    pub fn update(&mut self, loss_sum: f64, count: usize) {
        self.sum += loss_sum;
        self.count += count as u64;
    }

    /// NaN before any sample.
    pub fn value(&self) -> f64 {
        ratio(self.sum, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::value;
    use super::super::{Metric, MetricSet};

    #[test]
    fn loss_is_mean_of_batch_sums() {
        let mut set = MetricSet::new(&[Metric::Loss], 0).unwrap();
        assert!(value(&set, "loss").is_nan());
        set.update_regression(3.0, &[0.0, 0.0], &[0.0, 0.0], None)
            .unwrap();
        set.update_regression(1.5, &[0.0], &[0.0], None).unwrap();
        // (3.0 + 1.5) / (2 + 1) = 1.5
        assert_eq!(value(&set, "loss"), 1.5);
        set.reset();
        assert!(value(&set, "loss").is_nan());
    }
}
