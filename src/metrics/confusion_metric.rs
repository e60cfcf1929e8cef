//! `confusion_matrix` as a metric: counts every validation sample by actual and
//! predicted class and hands the matrix to a writer at the end of each validation (the
//! built-in one writes JSON and a PNG figure into the run directory). It logs no scalar.

use serde_json::Value;

use super::base::check_score_matrix;
use super::classification::argmax;
use super::streaming::{BatchView, StreamingMetric, ValidationEnd};
use super::{ConfusionMatrix, MetricError};
use crate::error::Result;

/// What the matrix is handed to once a validation ends.
pub type ConfusionWriter = Box<dyn FnMut(&ValidationEnd, &ConfusionMatrix) -> Result<()> + Send>;

/// Validation samples counted by actual and predicted class (argmax; with one score
/// column, `score >= 0.5` is class 1).
pub struct ConfusionMatrixMetric {
    matrix: ConfusionMatrix,
    write: ConfusionWriter,
}

impl ConfusionMatrixMetric {
    /// For `num_classes` classes (at least 1); `write` gets the matrix at each
    /// validation's end.
    pub fn new(
        num_classes: usize,
        write: ConfusionWriter,
    ) -> std::result::Result<Self, MetricError> {
        Ok(Self {
            matrix: ConfusionMatrix::new(num_classes)?,
            write,
        })
    }

    /// The counts so far.
    pub fn matrix(&self) -> &ConfusionMatrix {
        &self.matrix
    }

    /// Counts one batch of row-major scores; checked first, so an error changes nothing.
    pub fn push(
        &mut self,
        scores: &[f32],
        columns: usize,
        targets: &[u32],
    ) -> std::result::Result<(), MetricError> {
        let k = self.matrix.num_classes();
        check_score_matrix("scores", "score", scores, columns, targets)?;
        super::base::check_targets(targets, k)?;
        let single = columns == 1 && k == 2;
        if columns != k && !single {
            return Err(MetricError::InvalidParameter {
                name: "num_classes",
                value: columns.to_string(),
                expected: format!("{k} score columns (or 1 for two classes)"),
            });
        }
        for (row, &t) in scores.chunks_exact(columns).zip(targets) {
            let pred = if single {
                usize::from(row[0] >= 0.5)
            } else {
                argmax(row)
            };
            self.matrix.add(t as usize, pred);
        }
        Ok(())
    }
}

impl StreamingMetric for ConfusionMatrixMetric {
    fn name(&self) -> String {
        "confusion_matrix".into()
    }

    fn update(&mut self, batch: &BatchView) -> Result<()> {
        let Some(targets) = batch.classes() else {
            return Err(MetricError::Unsupported {
                metric: self.name(),
                reason: "needs class ids as targets".into(),
            }
            .into());
        };
        Ok(self.push(batch.scores, batch.columns, targets)?)
    }

    fn values(&self) -> Vec<(String, f64)> {
        Vec::new()
    }

    fn reset(&mut self) {
        self.matrix.reset();
    }

    fn save_state(&self) -> Value {
        serde_json::to_value(&self.matrix).unwrap_or(Value::Null)
    }

    fn load_state(&mut self, state: Value) -> Result<()> {
        let bad = |reason: String| MetricError::Unsupported {
            metric: "confusion_matrix".into(),
            reason: format!("saved state does not load: {reason}"),
        };
        let m: ConfusionMatrix = serde_json::from_value(state).map_err(|e| bad(e.to_string()))?;
        let k = m.num_classes();
        if k != self.matrix.num_classes() || m.cells() != k * k {
            return Err(bad(format!(
                "{k} classes, expected {}",
                self.matrix.num_classes()
            ))
            .into());
        }
        self.matrix = m;
        Ok(())
    }

    fn on_train_batches(&self) -> bool {
        false
    }

    fn validation_end(&mut self, at: &ValidationEnd) -> Result<()> {
        (self.write)(at, &self.matrix)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::metrics::streaming::HostBatch;

    /// What the writer was handed: (validation, counts row by row) per call.
    type Seen = Arc<Mutex<Vec<(u64, Vec<u64>)>>>;

    #[test]
    fn counts_by_argmax_and_hands_the_matrix_over() {
        let seen: Seen = Arc::default();
        let sink = seen.clone();
        let write: ConfusionWriter = Box::new(move |at, m| {
            let cells = (0..3).flat_map(|a| (0..3).map(move |p| (a, p)));
            let counts = cells.map(|(a, p)| m.count(a, p)).collect();
            sink.lock().unwrap().push((at.validation, counts));
            Ok(())
        });
        let mut m = ConfusionMatrixMetric::new(3, write).unwrap();
        // Predictions (argmax, first on ties): 1, 0, 2, 0 for classes 1, 1, 2, 0.
        let batch = HostBatch {
            scores: vec![0.0, 2.0, 1.0, 3.0, 3.0, 0.0, 0.0, 0.0, 5.0, 1.0, 1.0, 1.0],
            columns: 3,
            targets: Ok(vec![1, 1, 2, 0]),
            weights: None,
            num_classes: Some(3),
            mean_loss: 0.0,
        };
        m.update(&batch.view()).unwrap();
        assert!(m.values().is_empty() && !m.on_train_batches());
        let mut copy = ConfusionMatrixMetric::new(3, Box::new(|_, _| Ok(()))).unwrap();
        copy.load_state(m.save_state()).unwrap();
        assert_eq!(copy.matrix(), m.matrix());
        let at = ValidationEnd {
            validation: 2,
            epoch: 1,
            batches_fit: 20,
        };
        m.validation_end(&at).unwrap();
        #[rustfmt::skip]
        let expected = vec![1, 0, 0,
                            1, 1, 0,
                            0, 0, 1];
        assert_eq!(*seen.lock().unwrap(), vec![(2, expected)]);
        let err = m.push(&[0.0, 1.0], 2, &[0]).unwrap_err();
        assert!(err.to_string().contains("3 score columns"), "{err}");
        assert!(ConfusionMatrixMetric::new(2, Box::new(|_, _| Ok(())))
            .unwrap()
            .load_state(m.save_state())
            .is_err());
        m.reset();
        assert_eq!(m.matrix().total(), 0);
    }

    #[test]
    fn one_score_column_is_class_one_at_one_half() {
        let mut m = ConfusionMatrixMetric::new(2, Box::new(|_, _| Ok(()))).unwrap();
        m.push(&[0.25, 0.5, 0.75], 1, &[0, 0, 1]).unwrap();
        assert_eq!(
            (
                m.matrix().count(0, 0),
                m.matrix().count(0, 1),
                m.matrix().count(1, 1)
            ),
            (1, 1, 1)
        );
    }
}
