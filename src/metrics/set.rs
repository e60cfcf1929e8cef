//! [`MetricSet`]: the metrics a run asked for, fed batch by batch from one
//! update call and checkpointed with the train state mid-validation.

use std::cell::Cell;

use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::base::{
    check_len, check_not_nan, check_score_matrix, check_targets, needs_two_classes, Task,
};
use super::classification::{argmax, outranked};
use super::weighted::{check_weights, WeightedSums};
use super::{
    AccuracyAccumulator, ConfusionMatrix, LossAccumulator, Metric, MetricError,
    RegressionAccumulator, RocAucAccumulator, TopKAccumulator,
};

/// A list of metrics with their accumulators; serializable mid-validation.
///
/// Binary metrics (`roc_auc`, `*_binary`) need `num_classes == 2` and accept
/// either two score columns or one. With two columns the prediction is the
/// argmax (class 0 on a tie) and the AUC score is `s1 - s0`, computed in f64:
/// it orders samples like the softmax probability of class 1 but does not
/// saturate to 1.0 for large logit margins. With one column the column is the
/// positive-class score and the prediction is `score >= threshold`
/// (0.5 by default: set 0.0 for logits).
///
/// Updates may come with per-sample weights (scikit-learn's `sample_weight`): from the
/// first weighted batch on, every metric is the weighted one (an unweighted batch then
/// weighs 1 a sample), until [`reset`](Self::reset).
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
pub struct MetricSet {
    metrics: Vec<Metric>,
    num_classes: usize,
    threshold: f32,
    loss: LossAccumulator,
    accuracy: AccuracyAccumulator,
    /// One per distinct k, in first-listed order.
    top_k: Vec<TopKAccumulator>,
    confusion: Option<ConfusionMatrix>,
    roc_auc: Option<RocAucAccumulator>,
    regression: RegressionAccumulator,
    /// The weighted sums, from the first batch with sample weights on (`None` without).
    /// Last, so a set without it is laid out as before it existed.
    #[serde(default, deserialize_with = "read_weighted")]
    weighted: Option<WeightedSums>,
}

thread_local! {
    /// Whether a set is (de)serialized as before sample weights (no `weighted` field).
    static WITHOUT_WEIGHTS: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with every [`MetricSet`] serialized and deserialized in the layout it had
/// before sample weights: without the `weighted` field (a set in the middle of weighted
/// updates loses them). Positional formats (the checkpoints' bincode) cannot tell a field
/// is absent, so the reader of an older checkpoint says so through this.
pub fn with_layout_before_weights<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            WITHOUT_WEIGHTS.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(WITHOUT_WEIGHTS.with(|c| c.replace(true)));
    f()
}

fn read_weighted<'de, D: Deserializer<'de>>(d: D) -> Result<Option<WeightedSums>, D::Error> {
    if WITHOUT_WEIGHTS.with(Cell::get) {
        // Nothing was written for the field: read nothing.
        return Ok(None);
    }
    Option::deserialize(d)
}

impl Serialize for MetricSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Self-describing formats (JSON) leave an absent field out; positional ones
        // (bincode) always write it, unless in the layout before weights.
        let skip =
            WITHOUT_WEIGHTS.with(Cell::get) || (s.is_human_readable() && self.weighted.is_none());
        let mut st = s.serialize_struct("MetricSet", if skip { 9 } else { 10 })?;
        st.serialize_field("metrics", &self.metrics)?;
        st.serialize_field("num_classes", &self.num_classes)?;
        st.serialize_field("threshold", &self.threshold)?;
        st.serialize_field("loss", &self.loss)?;
        st.serialize_field("accuracy", &self.accuracy)?;
        st.serialize_field("top_k", &self.top_k)?;
        st.serialize_field("confusion", &self.confusion)?;
        st.serialize_field("roc_auc", &self.roc_auc)?;
        st.serialize_field("regression", &self.regression)?;
        if skip {
            st.skip_field("weighted")?;
        } else {
            st.serialize_field("weighted", &self.weighted)?;
        }
        st.end()
    }
}

impl MetricSet {
    /// `num_classes` is ignored when no metric depends on classes (loss and
    /// regression metrics). Regression and classification metrics cannot be
    /// mixed, because no single update could feed both.
    pub fn new(metrics: &[Metric], num_classes: usize) -> Result<Self, MetricError> {
        let mut set = MetricSet {
            metrics: metrics.to_vec(),
            num_classes,
            threshold: 0.5,
            ..MetricSet::default()
        };
        let classification = first_of(metrics, Task::Classification);
        let regression = first_of(metrics, Task::Regression);
        if let (Some(c), Some(r)) = (classification, regression) {
            return Err(MetricError::Unsupported {
                metric: r.name(),
                reason: format!("cannot be mixed with classification metric {c}"),
            });
        }
        for m in metrics {
            match m {
                Metric::TopKAccuracy(0) => {
                    return Err(MetricError::InvalidParameter {
                        name: "k",
                        value: "0".to_string(),
                        expected: "k >= 1 in top{k}_accuracy".to_string(),
                    });
                }
                Metric::TopKAccuracy(k) if set.top_k.iter().all(|t| t.k() != *k) => {
                    set.top_k.push(TopKAccumulator::new(*k));
                }
                Metric::Precision(_) | Metric::Recall(_) | Metric::F1(_)
                    if set.confusion.is_none() =>
                {
                    set.confusion = Some(ConfusionMatrix::new(num_classes)?);
                }
                Metric::RocAuc => set.roc_auc = Some(RocAucAccumulator::default()),
                _ => {}
            }
            if m.task() == Task::Classification && num_classes == 0 {
                return Err(MetricError::InvalidParameter {
                    name: "num_classes",
                    value: "0".to_string(),
                    expected: format!("at least 1 for metric {m}"),
                });
            }
            if m.is_binary_only() && num_classes != 2 {
                return Err(needs_two_classes(*m, num_classes));
            }
        }
        Ok(set)
    }

    /// Decision threshold for single-column binary scores.
    pub fn with_threshold(mut self, threshold: f32) -> Result<Self, MetricError> {
        if threshold.is_nan() {
            return Err(MetricError::InvalidParameter {
                name: "threshold",
                value: threshold.to_string(),
                expected: "a number".to_string(),
            });
        }
        self.threshold = threshold;
        Ok(self)
    }

    /// The metrics, in the order given to [`MetricSet::new`]; `compute` reports them so.
    pub fn metrics(&self) -> &[Metric] {
        &self.metrics
    }

    /// Number of classes, as given to [`MetricSet::new`] (meaningless for regression sets).
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Decision threshold for single-column binary scores (default 0.5).
    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    fn reject_task(&self, task: Task, reason: &str) -> Result<(), MetricError> {
        match first_of(&self.metrics, task) {
            Some(m) => Err(MetricError::Unsupported {
                metric: m.name(),
                reason: reason.to_string(),
            }),
            None => Ok(()),
        }
    }

    /// Adds one batch: `scores` is row-major `targets.len() x num_classes`
    /// (logits or probabilities). `num_classes` must equal the set's, or be 1
    /// for a two-class set (one positive-class score per sample). All inputs
    /// are validated before anything changes, so an error leaves the set as it
    /// was.
    ///
    /// `loss_sum` is the batch's loss times its number of samples, or with `weights`
    /// (one finite weight `>= 0` per sample) its weighted mean loss times the weights'
    /// sum.
    pub fn update_classification(
        &mut self,
        loss_sum: f64,
        scores: &[f32],
        num_classes: usize,
        targets: &[u32],
        weights: Option<&[f32]>,
    ) -> Result<(), MetricError> {
        self.reject_task(
            Task::Regression,
            "needs update_regression, got classification scores",
        )?;
        let single = num_classes == 1 && self.num_classes == 2;
        let uses_classes = first_of(&self.metrics, Task::Classification).is_some();
        if uses_classes && num_classes != self.num_classes && !single {
            return Err(MetricError::InvalidParameter {
                name: "num_classes",
                value: num_classes.to_string(),
                expected: format!(
                    "{} score columns (or 1 for a two-class set)",
                    self.num_classes
                ),
            });
        }
        check_score_matrix("scores", "score", scores, num_classes, targets)?;
        check_targets(targets, if single { 2 } else { num_classes })?;
        if let Some(w) = weights {
            check_weights(w, "targets", targets.len())?;
        }
        self.start_weights(weights);
        let weight = |i: usize| weights.map_or(1.0, |w| f64::from(w[i]));

        self.loss.update(loss_sum, targets.len());
        if let Some(ws) = &mut self.weighted {
            ws.add_loss(loss_sum, (0..targets.len()).map(weight).sum());
        }
        if single {
            for (i, (&s, &t)) in scores.iter().zip(targets).enumerate() {
                let pred = u32::from(s >= self.threshold);
                // In the implied two-column view the target is outranked
                // exactly when it is not the prediction.
                self.record(t, pred, usize::from(pred != t), f64::from(s), weight(i));
            }
        } else {
            for (i, (row, &t)) in scores.chunks_exact(num_classes).zip(targets).enumerate() {
                let pred = argmax(row) as u32;
                let outranked = if self.top_k.is_empty() {
                    0
                } else {
                    outranked(row, t as usize)
                };
                let positive = match row {
                    [s0, s1] => f64::from(*s1) - f64::from(*s0),
                    _ => 0.0,
                };
                self.record(t, pred, outranked, positive, weight(i));
            }
        }
        Ok(())
    }

    /// Starts the weighted sums at the first batch with weights, from what the plain
    /// accumulators have seen so far (every sample weighing 1).
    fn start_weights(&mut self, weights: Option<&[f32]>) {
        if weights.is_some() && self.weighted.is_none() {
            self.weighted = Some(WeightedSums::from_counts(
                &self.loss,
                &self.accuracy,
                &self.top_k,
                self.confusion.as_ref(),
                self.roc_auc.as_ref(),
                &self.regression,
            ));
        }
    }

    fn record(&mut self, target: u32, pred: u32, outranked: usize, positive_score: f64, w: f64) {
        if let Some(ws) = &mut self.weighted {
            let k = self.num_classes;
            ws.record(
                w,
                pred == target,
                self.top_k.iter().map(|t| outranked < t.k()),
                self.confusion
                    .as_ref()
                    .map(|_| target as usize * k + pred as usize),
                self.roc_auc.is_some(),
            );
        }
        self.accuracy.record(pred == target);
        for t in &mut self.top_k {
            t.record(outranked);
        }
        if let Some(c) = &mut self.confusion {
            c.add(target as usize, pred as usize);
        }
        if let Some(r) = &mut self.roc_auc {
            r.push(positive_score, target == 1);
        }
    }

    /// Adds one regression batch; validated before anything changes. `loss_sum` is the
    /// batch's loss times `pred.len()`, or with `weights` (one finite weight `>= 0` per
    /// predicted value) its weighted mean loss times the weights' sum.
    pub fn update_regression(
        &mut self,
        loss_sum: f64,
        pred: &[f32],
        target: &[f32],
        weights: Option<&[f32]>,
    ) -> Result<(), MetricError> {
        self.reject_task(
            Task::Classification,
            "needs update_classification, got regression predictions",
        )?;
        if let Some(w) = weights {
            check_weights(w, "pred", pred.len())?;
        }
        check_len("pred", pred.len(), "target", target.len())?;
        check_not_nan("pred", pred)?;
        check_not_nan("target", target)?;
        // Before the plain sums take this batch: the weighted ones start from them.
        self.start_weights(weights);
        self.regression.update(pred, target)?;
        self.loss.update(loss_sum, pred.len());
        if let Some(ws) = &mut self.weighted {
            let weight = |i: usize| weights.map_or(1.0, |w| f64::from(w[i]));
            ws.add_loss(loss_sum, (0..pred.len()).map(weight).sum());
            for (i, (&p, &y)) in pred.iter().zip(target).enumerate() {
                ws.push_regression(weight(i), f64::from(p), f64::from(y));
            }
        }
        Ok(())
    }

    /// `(name, value)` in the order the metrics were listed; NaN where a
    /// metric is undefined (no samples yet, or a single class for AUC).
    pub fn compute(&self) -> Vec<(String, f64)> {
        self.metrics
            .iter()
            .map(|m| (m.name(), self.value(*m)))
            .collect()
    }

    fn value(&self, metric: Metric) -> f64 {
        if let Some(ws) = &self.weighted {
            return self.weighted_value(ws, metric);
        }
        match metric {
            Metric::Loss => self.loss.value(),
            Metric::Accuracy => self.accuracy.value(),
            Metric::TopKAccuracy(k) => self
                .top_k
                .iter()
                .find(|t| t.k() == k)
                .map_or(f64::NAN, TopKAccumulator::value),
            Metric::Precision(_) | Metric::Recall(_) | Metric::F1(_) => self
                .confusion
                .as_ref()
                .and_then(|c| c.value(metric).ok())
                .unwrap_or(f64::NAN),
            Metric::RocAuc => self
                .roc_auc
                .as_ref()
                .map_or(f64::NAN, RocAucAccumulator::value),
            Metric::Mse => self.regression.mse(),
            Metric::Mae => self.regression.mae(),
            Metric::R2 => self.regression.r2(),
        }
    }

    fn weighted_value(&self, ws: &WeightedSums, metric: Metric) -> f64 {
        match metric {
            Metric::Loss => ws.loss(),
            Metric::Accuracy => ws.accuracy(),
            Metric::TopKAccuracy(k) => self
                .top_k
                .iter()
                .position(|t| t.k() == k)
                .map_or(f64::NAN, |i| ws.top_k(i)),
            Metric::Precision(_) | Metric::Recall(_) | Metric::F1(_) => self
                .confusion
                .as_ref()
                .map_or(f64::NAN, |c| ws.confusion_value(metric, c)),
            Metric::RocAuc => self.roc_auc.as_ref().map_or(f64::NAN, |r| ws.roc_auc(r)),
            Metric::Mse => ws.mse(),
            Metric::Mae => ws.mae(),
            Metric::R2 => ws.r2(self.regression.n),
        }
    }

    /// Whether the set has taken sample weights since it was made or reset.
    pub fn is_weighted(&self) -> bool {
        self.weighted.is_some()
    }

    /// Clears the accumulated samples (and weights); keeps metrics, classes and
    /// threshold.
    pub fn reset(&mut self) {
        self.weighted = None;
        self.loss = LossAccumulator::default();
        self.accuracy = AccuracyAccumulator::default();
        for t in &mut self.top_k {
            *t = TopKAccumulator::new(t.k());
        }
        if let Some(c) = &mut self.confusion {
            c.reset();
        }
        if let Some(r) = &mut self.roc_auc {
            *r = RocAucAccumulator::default();
        }
        self.regression = RegressionAccumulator::default();
    }
}

/// The first listed metric that needs `task`'s kind of update.
fn first_of(metrics: &[Metric], task: Task) -> Option<&Metric> {
    metrics.iter().find(|m| m.task() == task)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{all_classification, one_hot, value};
    use super::super::{Average, ConfusionMatrix, Metric};
    use super::*;

    #[test]
    fn binary_metrics_two_columns_one_column_and_zero_division() {
        let ms = all_classification(&[Average::Binary]);
        // Scores [0.125, 0.625, 0.375, 0.875], targets [0,0,1,1], threshold 0.5
        // -> preds [0,1,0,1]: tp 1, fp 1, fn 1 -> P = R = F1 = acc = 1/2.
        let targets = [0, 0, 1, 1];
        let single = [0.125, 0.625, 0.375, 0.875];
        let mut one_col = MetricSet::new(&ms, 2).unwrap();
        one_col
            .update_classification(0.0, &single, 1, &targets, None)
            .unwrap();
        let two: Vec<f32> = single.iter().flat_map(|&p| [1.0 - p, p]).collect();
        let mut two_col = MetricSet::new(&ms, 2).unwrap();
        two_col
            .update_classification(0.0, &two, 2, &targets, None)
            .unwrap();
        for name in ["accuracy", "precision_binary", "recall_binary", "f1_binary"] {
            assert_eq!(value(&one_col, name), 0.5, "{name}");
            assert_eq!(value(&two_col, name), 0.5, "{name}");
        }
        // All predicted negative: tp 0, fp 0 -> precision 0/0 = 0 (zero_division=0),
        // recall 0/2 = 0, F1 0/(0+0+2) = 0; accuracy 1/3.
        let mut zero = MetricSet::new(&ms, 2).unwrap().with_threshold(0.9).unwrap();
        zero.update_classification(0.0, &[0.1, 0.2, 0.3], 1, &[0, 1, 1], None)
            .unwrap();
        let got: Vec<f64> = zero.compute().into_iter().map(|(_, v)| v).collect();
        assert_eq!(got[1..], [1.0 / 3.0, 0.0, 0.0, 0.0]);
        // No samples at all: undefined, not zero.
        assert!(MetricSet::new(&ms, 2).unwrap().compute()[1..]
            .iter()
            .all(|(_, v)| v.is_nan()));
    }

    #[test]
    fn roc_auc_from_two_column_logits_uses_the_difference() {
        // s1 - s0 = [-1, 2, 1, 3] orders samples like the case above -> 0.75.
        let logits = [1.0, 0.0, 0.0, 2.0, 0.5, 1.5, -1.0, 2.0];
        let mut set = MetricSet::new(&[Metric::RocAuc], 2).unwrap();
        set.update_classification(0.0, &logits, 2, &[0, 0, 1, 1], None)
            .unwrap();
        assert_eq!(value(&set, "roc_auc"), 0.75);
    }

    #[test]
    fn streaming_matches_one_batch_exactly() {
        let mut ms = all_classification(&[Average::Binary, Average::Macro, Average::Micro]);
        ms.extend([Metric::TopKAccuracy(1), Metric::RocAuc]);
        let scores: Vec<f32> = [0.2, 0.6, 0.6, 0.9, 0.1, 0.6, 0.3, 0.3, 0.8, 0.5]
            .iter()
            .flat_map(|&p| [1.0 - p, p])
            .collect();
        let targets = [0, 1, 0, 1, 0, 0, 1, 0, 1, 1];
        let mut whole = MetricSet::new(&ms, 2).unwrap();
        whole
            .update_classification(2.5, &scores, 2, &targets, None)
            .unwrap();
        let mut parts = MetricSet::new(&ms, 2).unwrap();
        for (range, loss) in [(0..3, 0.5), (3..4, 1.0), (4..10, 1.0)] {
            let s = &scores[range.start * 2..range.end * 2];
            parts
                .update_classification(loss, s, 2, &targets[range], None)
                .unwrap();
        }
        assert_eq!(parts, whole);
        assert_eq!(parts.compute(), whole.compute());
        assert_eq!(value(&whole, "roc_auc"), 0.78);

        let (pred, target) = ([1.5, 2.25, -0.5, 4.0, 3.3], [1.0, 2.0, 0.0, 5.0, 3.0]);
        let ms = [Metric::Loss, Metric::Mse, Metric::Mae, Metric::R2];
        let mut whole = MetricSet::new(&ms, 0).unwrap();
        whole.update_regression(1.0, &pred, &target, None).unwrap();
        let mut parts = MetricSet::new(&ms, 0).unwrap();
        parts
            .update_regression(0.5, &pred[..2], &target[..2], None)
            .unwrap();
        parts
            .update_regression(0.5, &pred[2..], &target[2..], None)
            .unwrap();
        assert_eq!(parts, whole);
    }

    #[test]
    fn bincode_round_trip_mid_validation() {
        let ms = all_classification(&[Average::Macro]);
        let targets = [0, 1, 2, 2, 1, 0];
        let scores = one_hot(&[0, 2, 2, 2, 1, 1], 3);
        let mut uninterrupted = MetricSet::new(&ms, 3).unwrap();
        uninterrupted
            .update_classification(1.25, &scores, 3, &targets, None)
            .unwrap();

        let mut first = MetricSet::new(&ms, 3).unwrap();
        first
            .update_classification(0.5, &scores[..9], 3, &targets[..3], None)
            .unwrap();
        let config = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(&first, config).unwrap();
        let (mut resumed, _): (MetricSet, usize) =
            bincode::serde::decode_from_slice(&bytes, config).unwrap();
        assert_eq!(resumed, first);
        resumed
            .update_classification(0.75, &scores[9..], 3, &targets[3..], None)
            .unwrap();
        assert_eq!(resumed, uninterrupted);
    }

    #[test]
    fn invalid_inputs_are_errors_and_change_nothing() {
        let mut set = MetricSet::new(&[Metric::Accuracy, Metric::F1(Average::Macro)], 3).unwrap();
        let before = set.clone();
        let err = set
            .update_classification(0.0, &[0.0; 5], 3, &[0, 1], None)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "scores has length 5 but targets (2) x num_classes (3) has length 6"
        );
        let err = set
            .update_classification(0.0, &[0.0; 6], 3, &[0, 7], None)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "target 7 at index 1 is out of range for 3 classes"
        );
        let err = set.update_classification(0.0, &[0.0, f32::NAN], 1, &[0, 1], None);
        assert!(err.unwrap_err().to_string().contains("num_classes = 1"));
        let err = set.update_classification(0.0, &[0.0, 0.0, f32::NAN], 3, &[0], None);
        assert_eq!(err.unwrap_err().to_string(), "score at index 2 is NaN");
        let err = set
            .update_regression(0.0, &[1.0], &[1.0], None)
            .unwrap_err();
        assert!(err
            .to_string()
            .starts_with("metric accuracy cannot be used here"));
        assert_eq!(set, before);

        let mut reg = MetricSet::new(&[Metric::Mse], 0).unwrap();
        let err = reg
            .update_regression(0.0, &[1.0, 2.0], &[1.0], None)
            .unwrap_err();
        assert_eq!(err.to_string(), "pred has length 2 but target has length 1");
        assert!(reg
            .update_classification(0.0, &[1.0], 1, &[0], None)
            .is_err());

        let err = MetricSet::new(&[Metric::RocAuc], 3).unwrap_err();
        assert_eq!(
            err.to_string(),
            "metric roc_auc cannot be used here: needs exactly 2 classes, got 3"
        );
        assert!(MetricSet::new(&[Metric::TopKAccuracy(0)], 3).is_err());
        assert!(MetricSet::new(&[Metric::Accuracy], 0).is_err());
        assert!(MetricSet::new(&[Metric::Accuracy, Metric::Mse], 2).is_err());
        let mut cm = ConfusionMatrix::new(2).unwrap();
        assert!(cm.record(0, 2).is_err());
        assert!(cm.value(Metric::Mse).is_err());
    }
}
