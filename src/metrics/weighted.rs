//! Per-sample weights in the metrics, as scikit-learn's `sample_weight`: the weighted
//! sums a [`MetricSet`](super::MetricSet) keeps beside its plain counts once a batch comes
//! with weights. Kept apart from the plain accumulators so that the unweighted path (its
//! numbers and its checkpointed form) stays exactly as it was. With every weight 1.0 the
//! values are bitwise the unweighted ones: sums of ones are exact integers in f64, and
//! every update below is written so that a weight of 1 changes no rounding.

use serde::{Deserialize, Serialize};

use super::base::{check_len, ratio};
use super::{
    AccuracyAccumulator, Average, ConfusionMatrix, LossAccumulator, Metric, MetricError,
    RegressionAccumulator, RocAucAccumulator, TopKAccumulator,
};

/// Weighted sums of every accumulator of a set; each sample counts with its weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct WeightedSums {
    /// Σ (batch mean loss × batch weight), over batches of positive weight.
    loss_sum: f64,
    /// Σ batch weight, over the same batches.
    loss_weight: f64,
    /// Σ w over correctly predicted samples (accuracy).
    correct: f64,
    /// Σ w over every classified sample.
    total: f64,
    /// Σ w over top-k hits, one per top-k accumulator of the set, in its order.
    top_k: Vec<f64>,
    /// Weighted confusion matrix `[actual][predicted]`, row-major (empty without one).
    confusion: Vec<f64>,
    /// One weight per score of the set's ROC-AUC accumulator (empty without one).
    roc: Vec<f64>,
    /// Regression: Σ w.
    reg_weight: f64,
    /// Weighted mean of the targets.
    mean_target: f64,
    /// Σ w (y - weighted mean)², by West's weighted form of Welford's update.
    m2_target: f64,
    /// Σ w err².
    sum_sq_err: f64,
    /// Σ w |err|.
    sum_abs_err: f64,
}

/// Checks sample weights against the number of samples (or predicted values) they
/// weigh: same length, each a finite number `>= 0`.
pub(super) fn check_weights(
    weights: &[f32],
    what: &str,
    expected: usize,
) -> Result<(), MetricError> {
    check_len("sample weights", weights.len(), what, expected)?;
    match weights.iter().position(|w| !w.is_finite() || *w < 0.0) {
        Some(i) => Err(MetricError::InvalidParameter {
            name: "sample weight",
            value: format!("{} at index {i}", weights[i]),
            expected: "a finite number >= 0".to_string(),
        }),
        None => Ok(()),
    }
}

/// `num / den`, NaN when nothing was weighed.
fn weighted_ratio(num: f64, den: f64) -> f64 {
    if den == 0.0 {
        f64::NAN
    } else {
        num / den
    }
}

/// `num / den`, 0.0 for a zero denominator (scikit-learn `zero_division=0`).
fn zero_div(num: f64, den: f64) -> f64 {
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

impl WeightedSums {
    /// The sums of what the plain accumulators have seen, every sample weighing 1: a set
    /// that gets its first weights after unweighted batches goes on from there.
    pub(super) fn from_counts(
        loss: &LossAccumulator,
        accuracy: &AccuracyAccumulator,
        top_k: &[TopKAccumulator],
        confusion: Option<&ConfusionMatrix>,
        roc: Option<&RocAucAccumulator>,
        regression: &RegressionAccumulator,
    ) -> Self {
        let confusion = confusion.map_or_else(Vec::new, |c| {
            let k = c.num_classes();
            (0..k * k).map(|i| c.count(i / k, i % k) as f64).collect()
        });
        Self {
            loss_sum: loss.sum,
            loss_weight: loss.count as f64,
            correct: accuracy.correct as f64,
            total: accuracy.total as f64,
            top_k: top_k.iter().map(|t| t.hits.correct as f64).collect(),
            confusion,
            roc: roc.map_or_else(Vec::new, |r| vec![1.0; r.scores.len()]),
            reg_weight: regression.n as f64,
            mean_target: regression.mean_target,
            m2_target: regression.m2_target,
            sum_sq_err: regression.sum_sq_err,
            sum_abs_err: regression.sum_abs_err,
        }
    }

    /// One batch's loss: its weighted mean times its weight sum. A batch weighing
    /// nothing adds nothing (its mean, 0/0, is NaN).
    pub(super) fn add_loss(&mut self, loss_sum: f64, weight: f64) {
        if weight > 0.0 {
            self.loss_sum += loss_sum;
            self.loss_weight += weight;
        }
    }

    /// One classified sample of weight `w`: whether it was a hit, whether it was a top-k
    /// hit for each top-k accumulator, its confusion cell, and whether the ROC-AUC
    /// accumulator took its score.
    pub(super) fn record(
        &mut self,
        w: f64,
        hit: bool,
        top_hits: impl Iterator<Item = bool>,
        cell: Option<usize>,
        roc: bool,
    ) {
        if hit {
            self.correct += w;
        }
        self.total += w;
        for (h, hit) in self.top_k.iter_mut().zip(top_hits) {
            if hit {
                *h += w;
            }
        }
        if let Some(c) = cell.and_then(|i| self.confusion.get_mut(i)) {
            *c += w;
        }
        if roc {
            self.roc.push(w);
        }
    }

    /// One regression value of weight `w` (West's weighted Welford update; with `w` 1 it
    /// is the plain accumulator's update, rounding for rounding).
    pub(super) fn push_regression(&mut self, w: f64, p: f64, y: f64) {
        self.reg_weight += w;
        let delta = y - self.mean_target;
        if self.reg_weight > 0.0 {
            self.mean_target += delta * w / self.reg_weight;
        }
        self.m2_target += w * delta * (y - self.mean_target);
        let err = p - y;
        self.sum_sq_err += w * (err * err);
        self.sum_abs_err += w * err.abs();
    }

    /// Weighted mean loss; NaN before any weight.
    pub(super) fn loss(&self) -> f64 {
        weighted_ratio(self.loss_sum, self.loss_weight)
    }

    /// Weighted accuracy; NaN before any weight.
    pub(super) fn accuracy(&self) -> f64 {
        weighted_ratio(self.correct, self.total)
    }

    /// Weighted top-k accuracy of the set's `i`th top-k accumulator.
    pub(super) fn top_k(&self, i: usize) -> f64 {
        self.top_k
            .get(i)
            .map_or(f64::NAN, |h| weighted_ratio(*h, self.total))
    }

    fn cell(&self, k: usize, actual: usize, predicted: usize) -> f64 {
        self.confusion
            .get(actual * k + predicted)
            .copied()
            .unwrap_or(0.0)
    }

    /// Weighted (tp, fp, fn) of one class.
    fn class_sums(&self, k: usize, class: usize) -> (f64, f64, f64) {
        let tp = self.cell(k, class, class);
        let mut fp = 0.0;
        let mut fn_ = 0.0;
        for other in (0..k).filter(|o| *o != class) {
            fp += self.cell(k, other, class);
            fn_ += self.cell(k, class, other);
        }
        (tp, fp, fn_)
    }

    /// Precision, recall or F1 from the weighted confusion matrix, as scikit-learn's
    /// `precision_recall_fscore_support(sample_weight=...)`: the classes a macro mean runs
    /// over are those occurring in the targets or predictions, whatever their weight
    /// (taken from the plain `counts`), and a zero denominator gives 0.0. NaN before any
    /// sample.
    pub(super) fn confusion_value(&self, metric: Metric, counts: &ConfusionMatrix) -> f64 {
        let k = counts.num_classes();
        if counts.total() == 0 || self.confusion.len() != k * k {
            return f64::NAN;
        }
        let per_class = |tp: f64, fp: f64, fn_: f64| match metric {
            Metric::Precision(_) => zero_div(tp, tp + fp),
            Metric::Recall(_) => zero_div(tp, tp + fn_),
            _ => zero_div(2.0 * tp, 2.0 * tp + fp + fn_),
        };
        let average = match metric {
            Metric::Precision(a) | Metric::Recall(a) | Metric::F1(a) => a,
            _ => return f64::NAN,
        };
        match average {
            Average::Micro => {
                let trace: f64 = (0..k).map(|c| self.cell(k, c, c)).sum();
                let total: f64 = self.confusion.iter().sum();
                zero_div(trace, total)
            }
            Average::Binary if k == 2 => {
                let (tp, fp, fn_) = self.class_sums(k, 1);
                per_class(tp, fp, fn_)
            }
            Average::Binary => f64::NAN,
            Average::Macro => {
                let mut sum = 0.0;
                let mut present = 0u64;
                for class in 0..k {
                    let seen = (0..k).any(|o| counts.count(class, o) + counts.count(o, class) > 0);
                    if seen {
                        let (tp, fp, fn_) = self.class_sums(k, class);
                        sum += per_class(tp, fp, fn_);
                        present += 1;
                    }
                }
                ratio(sum, present)
            }
        }
    }

    /// Weighted ROC-AUC over the scores of `plain`: Σ over (positive, negative) pairs of
    /// `w_p w_n` (1/2 for tied scores), over `W_pos W_neg`, which is the area under
    /// scikit-learn's weighted ROC curve. NaN when either class weighs nothing.
    pub(super) fn roc_auc(&self, plain: &RocAucAccumulator) -> f64 {
        if self.roc.len() != plain.scores.len() {
            return f64::NAN;
        }
        let mut rows: Vec<(f64, bool, f64)> = plain
            .scores
            .iter()
            .zip(&plain.positive)
            .zip(&self.roc)
            .map(|((s, p), w)| (*s, *p, *w))
            .collect();
        rows.sort_by(|a, b| a.0.total_cmp(&b.0));
        let w_pos: f64 = rows.iter().filter(|r| r.1).map(|r| r.2).sum();
        let w_neg: f64 = rows.iter().filter(|r| !r.1).map(|r| r.2).sum();
        if w_pos == 0.0 || w_neg == 0.0 {
            return f64::NAN;
        }
        // Twice the weighted Mann-Whitney U, as the plain accumulator counts it.
        let mut twice_u = 0.0;
        let mut neg_below = 0.0;
        for group in rows.chunk_by(|a, b| a.0 == b.0) {
            let pos: f64 = group.iter().filter(|r| r.1).map(|r| r.2).sum();
            let neg: f64 = group.iter().filter(|r| !r.1).map(|r| r.2).sum();
            twice_u += pos * (2.0 * neg_below + neg);
            neg_below += neg;
        }
        twice_u / (2.0 * w_pos * w_neg)
    }

    /// Weighted MSE; NaN before any weight.
    pub(super) fn mse(&self) -> f64 {
        weighted_ratio(self.sum_sq_err, self.reg_weight)
    }

    /// Weighted MAE; NaN before any weight.
    pub(super) fn mae(&self) -> f64 {
        weighted_ratio(self.sum_abs_err, self.reg_weight)
    }

    /// Weighted R², scikit-learn's `r2_score(sample_weight=...)`: NaN with fewer than 2
    /// values (`n`, counted unweighted, as scikit-learn does), and for a target of zero
    /// weighted variance 1.0 if every prediction is exact, else 0.0.
    pub(super) fn r2(&self, n: u64) -> f64 {
        super::regression::r2_of(n, self.sum_sq_err, self.m2_target)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{all_classification, one_hot, value};
    use super::super::{with_layout_before_weights, Average, Metric, MetricSet};

    fn values(set: &MetricSet) -> Vec<u64> {
        set.compute().iter().map(|(_, v)| v.to_bits()).collect()
    }

    #[test]
    fn weighted_classification_matches_sklearn() {
        // y_true [0,0,1,1,1], y_pred [0,1,1,0,1], sample_weight [1,2,0.5,3,0]; every value
        // checked against scikit-learn 1.9.1 (`*_score(..., sample_weight=w)`).
        let mut ms = all_classification(&[Average::Binary, Average::Macro, Average::Micro]);
        ms.push(Metric::RocAuc);
        let targets = [0, 0, 1, 1, 1];
        let weights = [1.0, 2.0, 0.5, 3.0, 0.0];
        let scores = [0.1, 0.6, 0.55, 0.35, 0.8];
        let mut set = MetricSet::new(&ms, 2).unwrap();
        set.update_classification(0.0, &scores, 1, &targets, Some(&weights))
            .unwrap();
        // accuracy_score(..., sample_weight=w) = (1 + 0.5 + 0) / 6.5
        assert_eq!(value(&set, "accuracy"), 1.5 / 6.5);
        // binary: tp 0.5, fp 2, fn 3
        assert_eq!(value(&set, "precision_binary"), 0.2);
        assert_eq!(value(&set, "recall_binary"), 0.5 / 3.5);
        assert_eq!(value(&set, "f1_binary"), 1.0 / 6.0);
        // macro: class 0 tp 1 fp 3 fn 2 -> P 0.25, R 1/3, F1 2/7; class 1 as above.
        let tol = |a: f64, b: f64| (a - b).abs() < 1e-15;
        assert!(tol(value(&set, "precision_macro"), 0.225));
        assert!(tol(value(&set, "recall_macro"), 0.23809523809523808));
        assert!(tol(value(&set, "f1_macro"), 0.22619047619047616));
        assert_eq!(value(&set, "f1_micro"), 1.5 / 6.5);
        // Weighted Mann-Whitney: positives 0.55 (w .5) and 0.35 (w 3) each beat the
        // negative 0.1 (w 1) only; 0.8 weighs 0. (0.5 + 3) / (3.5 * 3) = 1/3
        // (scikit-learn's trapezoids round to 0.33333333333333337).
        assert!(tol(value(&set, "roc_auc"), 0.33333333333333337));
    }

    #[test]
    fn weighted_multiclass_top_k_and_loss() {
        let ms = [
            Metric::Loss,
            Metric::Accuracy,
            Metric::TopKAccuracy(2),
            Metric::Precision(Average::Macro),
        ];
        #[rustfmt::skip]
        let scores = [
            0.1, 0.5, 0.4, // target 2: pred 1, top2 hit
            0.6, 0.3, 0.1, // target 0: hit
            0.2, 0.3, 0.5, // target 0: miss, not in top 2
        ];
        let mut set = MetricSet::new(&ms, 3).unwrap();
        // A batch of mean loss 2 weighing 4, one weighing nothing (adds no loss), one of
        // mean 0.5 weighing 2: (2*4 + 0.5*2) / 6 = 1.5.
        set.update_classification(8.0, &scores[..6], 3, &[2, 0], Some(&[1.0, 3.0]))
            .unwrap();
        set.update_classification(f64::NAN, &scores[6..], 3, &[0], Some(&[0.0]))
            .unwrap();
        assert_eq!(value(&set, "loss"), 2.0);
        set.update_classification(1.0, &scores[6..], 3, &[0], Some(&[2.0]))
            .unwrap();
        assert_eq!(value(&set, "loss"), 1.5);
        // hits: sample 2 (w 3); top2: samples 1 and 2 (w 4); total weight 6.
        assert_eq!(value(&set, "accuracy"), 0.5);
        assert_eq!(value(&set, "top2_accuracy"), 4.0 / 6.0);
        // precision per class: 0: 3/3, 1: 0/1, 2: 0/2 -> macro over the 3 present = 1/3.
        // scikit-learn (labels 0..3, sample_weight [1,3,2]) agrees on all three.
        assert_eq!(value(&set, "precision_macro"), 1.0 / 3.0);
    }

    #[test]
    fn weighted_regression_matches_sklearn() {
        // y_true [3,-0.5,2,7], y_pred [2.5,0,2,8], sample_weight [1,2,3,0.5]; checked
        // against scikit-learn (mean_squared_error, mean_absolute_error, r2_score).
        let ms = [Metric::Loss, Metric::Mse, Metric::Mae, Metric::R2];
        let mut set = MetricSet::new(&ms, 0).unwrap();
        let (pred, target) = ([2.5, 0.0, 2.0, 8.0], [3.0, -0.5, 2.0, 7.0]);
        let w = [1.0, 2.0, 3.0, 0.5];
        set.update_regression(1.3, &pred, &target, Some(&w))
            .unwrap();
        let tol = |a: f64, b: f64| (a - b).abs() < 1e-15;
        assert_eq!(value(&set, "loss"), 0.2);
        assert!(tol(value(&set, "mse"), 0.19230769230769232));
        assert!(tol(value(&set, "mae"), 0.3076923076923077));
        assert!(tol(value(&set, "r2"), 0.9512743628185907));
    }

    #[test]
    fn weights_of_one_are_bitwise_unweighted_and_zero_weights_remove_samples() {
        let mut ms = all_classification(&[Average::Binary, Average::Macro, Average::Micro]);
        ms.extend([Metric::TopKAccuracy(1), Metric::RocAuc]);
        let p = [0.2, 0.6, 0.6, 0.9, 0.1, 0.6, 0.3, 0.3, 0.8, 0.5];
        let scores: Vec<f32> = p.iter().flat_map(|&p| [1.0 - p, p]).collect();
        let targets = [0, 1, 0, 1, 0, 0, 1, 0, 1, 1];
        let mut plain = MetricSet::new(&ms, 2).unwrap();
        let mut ones = MetricSet::new(&ms, 2).unwrap();
        // The weights start late: an unweighted batch first, then weighted ones.
        for (r, loss) in [(0..3, 0.75), (3..4, 1.0), (4..10, 3.0)] {
            let s = &scores[r.start * 2..r.end * 2];
            plain
                .update_classification(loss, s, 2, &targets[r.clone()], None)
                .unwrap();
            let w = vec![1.0; r.len()];
            let w = (r.start > 0).then_some(&w[..]);
            ones.update_classification(loss, s, 2, &targets[r], w)
                .unwrap();
        }
        assert!(ones.is_weighted() && !plain.is_weighted());
        assert_eq!(values(&ones), values(&plain));

        // Weight 0 on samples 3 and 7 == those samples left out (binary and micro
        // metrics, accuracy, AUC; both classes stay present).
        let mut w = vec![1.0; 10];
        w[3] = 0.0;
        w[7] = 0.0;
        let mut zero = MetricSet::new(&ms, 2).unwrap();
        zero.update_classification(0.0, &scores, 2, &targets, Some(&w))
            .unwrap();
        let keep: Vec<usize> = (0..10).filter(|i| w[*i] > 0.0).collect();
        let s: Vec<f32> = keep
            .iter()
            .flat_map(|&i| [scores[2 * i], scores[2 * i + 1]])
            .collect();
        let t: Vec<u32> = keep.iter().map(|&i| targets[i]).collect();
        let mut without = MetricSet::new(&ms, 2).unwrap();
        without.update_classification(0.0, &s, 2, &t, None).unwrap();
        for (name, v) in without.compute().into_iter().skip(1) {
            assert_eq!(value(&zero, &name), v, "{name}");
        }

        let (pred, target) = ([1.5, 2.25, -0.5, 4.0, 3.3], [1.0, 2.0, 0.0, 5.0, 3.0]);
        let ms = [Metric::Loss, Metric::Mse, Metric::Mae, Metric::R2];
        let mut plain = MetricSet::new(&ms, 0).unwrap();
        plain.update_regression(1.0, &pred, &target, None).unwrap();
        let mut ones = MetricSet::new(&ms, 0).unwrap();
        ones.update_regression(1.0, &pred, &target, Some(&[1.0; 5]))
            .unwrap();
        assert_eq!(values(&ones), values(&plain));
        // Reset goes back to the plain set.
        ones.reset();
        assert_eq!(ones, MetricSet::new(&ms, 0).unwrap());
    }

    #[test]
    fn bad_weights_are_errors_and_change_nothing() {
        let mut set = MetricSet::new(&[Metric::Accuracy], 2).unwrap();
        let before = set.clone();
        let err = set
            .update_classification(0.0, &[0.1, 0.9], 1, &[0, 1], Some(&[1.0]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "sample weights has length 1 but targets has length 2"
        );
        let err = set
            .update_classification(0.0, &[0.1, 0.9], 1, &[0, 1], Some(&[1.0, -2.0]))
            .unwrap_err();
        assert!(err.to_string().contains("-2 at index 1"), "{err}");
        assert_eq!(set, before);
    }

    #[test]
    fn the_layout_before_weights_is_a_prefix_and_reads_back() {
        let config = bincode::config::standard();
        let ms = all_classification(&[Average::Macro]);
        let mut set = MetricSet::new(&ms, 3).unwrap();
        set.update_classification(1.0, &one_hot(&[0, 2], 3), 3, &[0, 1], None)
            .unwrap();
        let new = bincode::serde::encode_to_vec(&set, config).unwrap();
        let old =
            with_layout_before_weights(|| bincode::serde::encode_to_vec(&set, config)).unwrap();
        // The newest layout is the old one and a `None` (one 0 byte).
        assert_eq!([&old[..], &[0]].concat(), new);
        let (read, _): (MetricSet, usize) =
            with_layout_before_weights(|| bincode::serde::decode_from_slice(&old, config)).unwrap();
        assert_eq!(read, set);
        // A weighted set round-trips in the newest layout.
        set.update_classification(1.0, &one_hot(&[1], 3), 3, &[1], Some(&[0.5]))
            .unwrap();
        let bytes = bincode::serde::encode_to_vec(&set, config).unwrap();
        let (read, _): (MetricSet, usize) =
            bincode::serde::decode_from_slice(&bytes, config).unwrap();
        assert_eq!(read, set);
        // JSON leaves the field out when there are no weights, and reads it as absent.
        let json = serde_json::to_value(MetricSet::new(&ms, 3).unwrap()).unwrap();
        assert!(json.get("weighted").is_none());
        let read: MetricSet = serde_json::from_value(json).unwrap();
        assert_eq!(read, MetricSet::new(&ms, 3).unwrap());
    }
}
