//! Classification accumulators: accuracy, top-k accuracy, and the confusion
//! matrix that precision, recall and F1 (with every averaging) derive from.

use serde::{Deserialize, Serialize};

use super::base::{at_least_one, check_targets, needs_two_classes, ratio};
use super::{Average, Metric, MetricError};

/// Index of the first maximum (0 for an empty row): ties go to the lowest
/// class so predictions never depend on anything but the scores.
pub fn argmax<T: PartialOrd + Copy>(row: &[T]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate().skip(1) {
        if *v > row[best] {
            best = i;
        }
    }
    best
}

/// How many classes in `row` score strictly higher than class `target`: the
/// target is a top-k hit when this is below k.
pub(super) fn outranked(row: &[f32], target: usize) -> usize {
    let target_score = row[target];
    row.iter().filter(|&&s| s > target_score).count()
}

/// Hit counter shared by accuracy and top-k accuracy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AccuracyAccumulator {
    pub(super) correct: u64,
    pub(super) total: u64,
}

impl AccuracyAccumulator {
    pub(super) fn record(&mut self, hit: bool) {
        self.correct += u64::from(hit);
        self.total += 1;
    }

    /// NaN before any sample.
    pub fn value(&self) -> f64 {
        ratio(self.correct as f64, self.total)
    }
}

/// Top-k hits; see [`Metric::TopKAccuracy`] for the tie rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TopKAccumulator {
    k: usize,
    pub(super) hits: AccuracyAccumulator,
}

impl TopKAccumulator {
    pub(super) fn new(k: usize) -> Self {
        TopKAccumulator {
            k,
            hits: AccuracyAccumulator::default(),
        }
    }

    /// One sample whose target is beaten by `outranked` classes.
    pub(super) fn record(&mut self, outranked: usize) {
        self.hits.record(outranked < self.k);
    }

    /// The `k` of top-k.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Fraction of samples whose target is in the top `k`; NaN before any sample.
    pub fn value(&self) -> f64 {
        self.hits.value()
    }
}

/// Counts indexed `[actual][predicted]`; precision, recall, F1 and accuracy
/// all derive from it, so one matrix serves every averaging mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ConfusionMatrix {
    num_classes: usize,
    counts: Vec<u64>,
}

impl ConfusionMatrix {
    /// An all-zero `num_classes x num_classes` matrix; `num_classes` must be at least 1 (and
    /// its square must fit in memory).
    pub fn new(num_classes: usize) -> Result<Self, MetricError> {
        if num_classes == 0 {
            return Err(at_least_one("num_classes"));
        }
        let cells =
            num_classes
                .checked_mul(num_classes)
                .ok_or_else(|| MetricError::InvalidParameter {
                    name: "num_classes",
                    value: num_classes.to_string(),
                    expected: "a confusion matrix that fits in memory".to_string(),
                })?;
        Ok(ConfusionMatrix {
            num_classes,
            counts: vec![0; cells],
        })
    }

    /// Two-class matrix from counts, as a threshold sweep produces them.
    pub fn binary(tn: u64, fp: u64, fn_: u64, tp: u64) -> Self {
        ConfusionMatrix {
            num_classes: 2,
            counts: vec![tn, fp, fn_, tp],
        }
    }

    /// Number of classes (rows and columns).
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Samples of class `actual` predicted as `predicted` (0 out of range).
    pub fn count(&self, actual: usize, predicted: usize) -> u64 {
        if actual >= self.num_classes || predicted >= self.num_classes {
            return 0;
        }
        self.counts
            .get(actual * self.num_classes + predicted)
            .copied()
            .unwrap_or(0)
    }

    /// Number of samples recorded.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Counts one sample; both classes must be below `num_classes` (otherwise an error, and
    /// nothing changes).
    pub fn record(&mut self, actual: u32, predicted: u32) -> Result<(), MetricError> {
        check_targets(&[actual], self.num_classes)?;
        if predicted as usize >= self.num_classes {
            return Err(MetricError::InvalidParameter {
                name: "predicted",
                value: predicted.to_string(),
                expected: format!("a class below {}", self.num_classes),
            });
        }
        self.add(actual as usize, predicted as usize);
        Ok(())
    }

    pub(super) fn add(&mut self, actual: usize, predicted: usize) {
        if let Some(c) = self.counts.get_mut(actual * self.num_classes + predicted) {
            *c += 1;
        }
    }

    pub(super) fn reset(&mut self) {
        self.counts.iter_mut().for_each(|c| *c = 0);
    }

    /// Cells stored (`num_classes²` for a well-formed matrix).
    pub(super) fn cells(&self) -> usize {
        self.counts.len()
    }

    /// (tp, fp, fn) for one class.
    fn class_counts(&self, class: usize) -> (u64, u64, u64) {
        let tp = self.count(class, class);
        let predicted: u64 = (0..self.num_classes).map(|a| self.count(a, class)).sum();
        let actual: u64 = (0..self.num_classes).map(|p| self.count(class, p)).sum();
        (tp, predicted - tp, actual - tp)
    }

    /// Accuracy, or precision/recall/F1 with any averaging. NaN when empty;
    /// a zero denominator otherwise gives 0.0 (scikit-learn `zero_division=0`).
    pub fn value(&self, metric: Metric) -> Result<f64, MetricError> {
        let per_class: fn(u64, u64, u64) -> f64 = match metric {
            Metric::Precision(_) => |tp, fp, _| zero_div(tp, tp + fp),
            Metric::Recall(_) => |tp, _, fn_| zero_div(tp, tp + fn_),
            Metric::F1(_) => |tp, fp, fn_| zero_div(2 * tp, 2 * tp + fp + fn_),
            Metric::Accuracy => |_, _, _| 0.0,
            other => {
                return Err(MetricError::Unsupported {
                    metric: other.name(),
                    reason: "not derived from a confusion matrix".to_string(),
                });
            }
        };
        let average = match metric {
            Metric::Precision(a) | Metric::Recall(a) | Metric::F1(a) => a,
            _ => Average::Micro,
        };
        if average == Average::Binary && self.num_classes != 2 {
            return Err(needs_two_classes(metric, self.num_classes));
        }
        let total = self.total();
        if total == 0 {
            return Ok(f64::NAN);
        }
        Ok(match average {
            Average::Micro => {
                let trace: u64 = (0..self.num_classes).map(|c| self.count(c, c)).sum();
                trace as f64 / total as f64
            }
            Average::Binary => {
                let (tp, fp, fn_) = self.class_counts(1);
                per_class(tp, fp, fn_)
            }
            Average::Macro => {
                let mut sum = 0.0;
                let mut present = 0u64;
                for class in 0..self.num_classes {
                    let (tp, fp, fn_) = self.class_counts(class);
                    if tp + fp + fn_ > 0 {
                        sum += per_class(tp, fp, fn_);
                        present += 1;
                    }
                }
                ratio(sum, present)
            }
        })
    }
}

/// `num / den`, 0.0 for `0 / 0` (scikit-learn `zero_division=0`).
fn zero_div(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{all_classification, one_hot, value};
    use super::super::MetricSet;
    use super::*;

    #[test]
    fn accuracy_and_top_k_with_ties() {
        let ms = [
            Metric::Accuracy,
            Metric::TopKAccuracy(1),
            Metric::TopKAccuracy(2),
            Metric::TopKAccuracy(3),
        ];
        let mut set = MetricSet::new(&ms, 4).unwrap();
        #[rustfmt::skip]
        let scores = [
            0.1, 0.5, 0.5, 0.2, // target 2: 0 strictly higher -> top1 hit; argmax 1 (first max) -> miss
            0.4, 0.3, 0.2, 0.1, // target 3: 3 higher -> miss for k <= 3
            0.2, 0.3, 0.3, 0.2, // target 0: 2 higher (0.3, 0.3) -> top3 hit only; argmax 1 -> miss
            0.9, 0.0, 0.0, 0.0, // target 0: hit everywhere
        ];
        set.update_classification(0.0, &scores, 4, &[2, 3, 0, 0], None)
            .unwrap();
        // accuracy 1/4, top1 2/4, top2 2/4, top3 3/4
        let expected = [0.25, 0.5, 0.5, 0.75];
        let got: Vec<f64> = set.compute().into_iter().map(|(_, v)| v).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn multiclass_precision_recall_f1() {
        // scikit-learn docs example. Confusion [actual][pred]:
        //   [[2,0,0],[1,0,1],[0,1,1]] read off y_true / y_pred below.
        // class 0: tp 2 fp 1 fn 0 -> P 2/3, R 1, F1 4/5
        // class 1: tp 0 fp 2 fn 2 -> 0, 0, 0;  class 2: tp 0 fp 1 fn 2 -> 0, 0, 0
        // macro: P 2/9, R 1/3, F1 0.8/3; micro = accuracy = 2/6.
        // Class 3 never occurs, so macro ignores it (sklearn's default labels).
        // Checked against scikit-learn 1.9.1.
        let targets = [0, 1, 2, 0, 1, 2];
        let preds = [0, 2, 1, 0, 0, 1];
        let mut set =
            MetricSet::new(&all_classification(&[Average::Macro, Average::Micro]), 4).unwrap();
        set.update_classification(0.0, &one_hot(&preds, 4), 4, &targets, None)
            .unwrap();
        assert_eq!(value(&set, "precision_macro"), 0.2222222222222222);
        assert_eq!(value(&set, "recall_macro"), 0.3333333333333333);
        assert_eq!(value(&set, "f1_macro"), 0.26666666666666666);
        for name in ["accuracy", "precision_micro", "recall_micro", "f1_micro"] {
            assert_eq!(value(&set, name), 0.3333333333333333, "{name}");
        }
    }

    #[test]
    fn multiclass_twelve_samples_match_sklearn() {
        // Confusion [[3,1,0],[1,2,1],[1,0,3]]:
        // P = (3/5 + 2/3 + 3/4)/3, R = (3/4 + 2/4 + 3/4)/3, F1 = (6/9 + 4/7 + 6/8)/3.
        // Checked against scikit-learn 1.9.1.
        let targets = [0, 1, 2, 2, 1, 0, 0, 2, 1, 1, 2, 0];
        let preds = [0, 2, 2, 2, 1, 1, 0, 0, 1, 0, 2, 0];
        let mut set = MetricSet::new(&all_classification(&[Average::Macro]), 3).unwrap();
        set.update_classification(0.0, &one_hot(&preds, 3), 3, &targets, None)
            .unwrap();
        let tol = |a: f64, b: f64| (a - b).abs() < 1e-15;
        assert_eq!(value(&set, "accuracy"), 8.0 / 12.0);
        assert!(tol(value(&set, "precision_macro"), 0.6722222222222222));
        assert!(tol(value(&set, "recall_macro"), 0.6666666666666666));
        assert!(tol(value(&set, "f1_macro"), 0.6626984126984127));
    }
}
