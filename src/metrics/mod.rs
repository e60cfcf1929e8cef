//! Streaming, exact evaluation metrics.
//!
//! Validation runs batch by batch and may be checkpointed half way, so every
//! accumulator is a plain serde struct whose state depends only on the
//! sequence of samples seen, never on how they were split into batches: one
//! batch or three give bit-identical results (except the loss, whose per-batch
//! sums come from the caller). Nothing iterates a hash map, so values are
//! reproducible across runs and platforms.

pub mod calibration;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Errors from metric construction, name parsing and updates.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricError {
    #[error("unknown metric {name:?}; valid names: {valid}")]
    UnknownMetric { name: String, valid: String },
    #[error("{left} has length {left_len} but {right} has length {right_len}")]
    LengthMismatch {
        left: String,
        left_len: usize,
        right: String,
        right_len: usize,
    },
    #[error("target {target} at index {index} is out of range for {num_classes} classes")]
    TargetOutOfRange {
        index: usize,
        target: u32,
        num_classes: usize,
    },
    #[error("{what} at index {index} is NaN")]
    NaN { what: String, index: usize },
    #[error("invalid {name} = {value}: expected {expected}")]
    InvalidParameter {
        name: &'static str,
        value: String,
        expected: String,
    },
    #[error("metric {metric} cannot be used here: {reason}")]
    Unsupported { metric: String, reason: String },
}

/// How per-class precision/recall/F1 are combined (as in scikit-learn).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Average {
    /// Only class 1 counts as positive; needs exactly two classes.
    Binary,
    /// Unweighted mean over the classes that occur in the targets or the
    /// predictions (scikit-learn's default label set), so a class absent from
    /// a validation split does not drag the mean down.
    Macro,
    /// Global counts; for single-label data this equals accuracy.
    Micro,
}

impl Average {
    fn suffix(self) -> &'static str {
        match self {
            Average::Binary => "binary",
            Average::Macro => "macro",
            Average::Micro => "micro",
        }
    }
}

/// Whether smaller or larger values of a metric are better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    Min,
    Max,
}

impl Direction {
    /// True when `new` beats `old` by strictly more than `|min_delta|`
    /// (Keras semantics). A NaN `new` never wins; a NaN `old` (no best yet)
    /// loses to any non-NaN `new`; a NaN `min_delta` counts as 0.
    pub fn is_better(&self, new: f64, old: f64, min_delta: f64) -> bool {
        if new.is_nan() {
            return false;
        }
        if old.is_nan() {
            return true;
        }
        let delta = if min_delta.is_nan() {
            0.0
        } else {
            min_delta.abs()
        };
        match self {
            Direction::Min => new < old - delta,
            Direction::Max => new > old + delta,
        }
    }

    /// Whether `new` is a new best: the first finite value is one, later values must
    /// beat `best` by more than `|min_delta|`. Early stopping, reduce-on-plateau and the
    /// trainer's best tracking all decide with this.
    pub fn improves(&self, new: f64, best: Option<f64>, min_delta: f64) -> bool {
        match best {
            None => new.is_finite(),
            Some(best) => self.is_better(new, best, min_delta),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Task {
    Any,
    Classification,
    Regression,
}

/// A named metric; `name()` is the stable key used in logs and checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Metric {
    /// Mean loss per sample (from per-batch loss sums).
    Loss,
    /// Fraction of rows whose argmax (first maximum on ties) is the target.
    Accuracy,
    /// Target counts as a hit when fewer than `k` classes score strictly
    /// higher than it, so ties are resolved in the target's favour and
    /// `top1_accuracy` can exceed `accuracy` when rows contain ties.
    TopKAccuracy(usize),
    Precision(Average),
    Recall(Average),
    F1(Average),
    /// Binary ROC-AUC, exact (Mann-Whitney, tied scores count 0.5); NaN when
    /// only one class has been seen.
    RocAuc,
    Mse,
    Mae,
    /// Coefficient of determination; see [`RegressionAccumulator::r2`].
    R2,
}

impl Metric {
    /// Every metric without a parameter, in a fixed order.
    const FIXED: [Metric; 15] = [
        Metric::Loss,
        Metric::Accuracy,
        Metric::Precision(Average::Binary),
        Metric::Precision(Average::Macro),
        Metric::Precision(Average::Micro),
        Metric::Recall(Average::Binary),
        Metric::Recall(Average::Macro),
        Metric::Recall(Average::Micro),
        Metric::F1(Average::Binary),
        Metric::F1(Average::Macro),
        Metric::F1(Average::Micro),
        Metric::RocAuc,
        Metric::Mse,
        Metric::Mae,
        Metric::R2,
    ];

    /// Stable snake_case name, e.g. `top5_accuracy`, `f1_macro`, `roc_auc`.
    pub fn name(&self) -> String {
        match self {
            Metric::Loss => "loss".to_string(),
            Metric::Accuracy => "accuracy".to_string(),
            Metric::TopKAccuracy(k) => format!("top{k}_accuracy"),
            Metric::Precision(a) => format!("precision_{}", a.suffix()),
            Metric::Recall(a) => format!("recall_{}", a.suffix()),
            Metric::F1(a) => format!("f1_{}", a.suffix()),
            Metric::RocAuc => "roc_auc".to_string(),
            Metric::Mse => "mse".to_string(),
            Metric::Mae => "mae".to_string(),
            Metric::R2 => "r2".to_string(),
        }
    }

    /// `Min` for loss, MSE and MAE; `Max` for everything else.
    pub fn direction(&self) -> Direction {
        match self {
            Metric::Loss | Metric::Mse | Metric::Mae => Direction::Min,
            _ => Direction::Max,
        }
    }

    /// Inverse of [`Metric::name`]. `top{k}_accuracy` needs a canonical
    /// `k >= 1` (no sign, no leading zeros) so names stay one-to-one.
    pub fn from_name(name: &str) -> Result<Metric, MetricError> {
        if let Some(m) = Self::FIXED.iter().find(|m| m.name() == name) {
            return Ok(*m);
        }
        let k = name
            .strip_prefix("top")
            .and_then(|rest| rest.strip_suffix("_accuracy"))
            .and_then(|digits| {
                let k = digits.parse::<usize>().ok()?;
                (k >= 1 && k.to_string() == digits).then_some(k)
            });
        match k {
            Some(k) => Ok(Metric::TopKAccuracy(k)),
            None => Err(MetricError::UnknownMetric {
                name: name.to_string(),
                valid: Self::valid_names(),
            }),
        }
    }

    fn valid_names() -> String {
        let mut names = vec!["loss".to_string(), "accuracy".to_string()];
        names.push("top{k}_accuracy (k >= 1)".to_string());
        names.extend(Self::FIXED[2..].iter().map(Metric::name));
        names.join(", ")
    }

    fn task(&self) -> Task {
        match self {
            Metric::Loss => Task::Any,
            Metric::Mse | Metric::Mae | Metric::R2 => Task::Regression,
            _ => Task::Classification,
        }
    }

    /// Metrics defined only for two classes with class 1 as positive.
    fn is_binary_only(&self) -> bool {
        matches!(
            self,
            Metric::RocAuc
                | Metric::Precision(Average::Binary)
                | Metric::Recall(Average::Binary)
                | Metric::F1(Average::Binary)
        )
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for Metric {
    type Err = MetricError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Metric::from_name(s)
    }
}

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

pub(super) fn check_len(
    left: &str,
    left_len: usize,
    right: &str,
    right_len: usize,
) -> Result<(), MetricError> {
    if left_len == right_len {
        return Ok(());
    }
    Err(MetricError::LengthMismatch {
        left: left.to_string(),
        left_len,
        right: right.to_string(),
        right_len,
    })
}

/// NaN inputs are rejected rather than folded silently into a checkpointed
/// accumulator, where they would make argmax and sorting ill-defined.
pub(super) fn check_not_nan(what: &str, values: &[f32]) -> Result<(), MetricError> {
    match values.iter().position(|v| v.is_nan()) {
        Some(index) => Err(MetricError::NaN {
            what: what.to_string(),
            index,
        }),
        None => Ok(()),
    }
}

pub(super) fn check_targets(targets: &[u32], num_classes: usize) -> Result<(), MetricError> {
    match targets.iter().position(|&t| t as usize >= num_classes) {
        Some(index) => Err(MetricError::TargetOutOfRange {
            index,
            target: targets[index],
            num_classes,
        }),
        None => Ok(()),
    }
}

/// Checks a row-major `targets.len() x num_classes` score matrix.
pub(super) fn check_scores(
    scores: &[f32],
    num_classes: usize,
    targets: &[u32],
) -> Result<(), MetricError> {
    if num_classes == 0 {
        return Err(MetricError::InvalidParameter {
            name: "num_classes",
            value: "0".to_string(),
            expected: "at least 1".to_string(),
        });
    }
    let expected = targets.len().saturating_mul(num_classes);
    let right = format!("targets ({}) x num_classes ({num_classes})", targets.len());
    check_len("scores", scores.len(), &right, expected)?;
    check_not_nan("score", scores)
}

/// Mean loss: the trainer passes per-batch loss *sums* and sample counts so
/// batches of unequal size are weighted correctly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct LossAccumulator {
    sum: f64,
    count: u64,
}

impl LossAccumulator {
    pub fn update(&mut self, loss_sum: f64, count: usize) {
        self.sum += loss_sum;
        self.count += count as u64;
    }

    /// NaN before any sample.
    pub fn value(&self) -> f64 {
        ratio(self.sum, self.count)
    }
}

/// Hit counter shared by accuracy and top-k accuracy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AccuracyAccumulator {
    correct: u64,
    total: u64,
}

impl AccuracyAccumulator {
    fn record(&mut self, hit: bool) {
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
    hits: AccuracyAccumulator,
}

impl TopKAccumulator {
    pub fn k(&self) -> usize {
        self.k
    }

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
    pub fn new(num_classes: usize) -> Result<Self, MetricError> {
        if num_classes == 0 {
            return Err(MetricError::InvalidParameter {
                name: "num_classes",
                value: "0".to_string(),
                expected: "at least 1".to_string(),
            });
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

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

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

    fn add(&mut self, actual: usize, predicted: usize) {
        if let Some(c) = self.counts.get_mut(actual * self.num_classes + predicted) {
            *c += 1;
        }
    }

    fn reset(&mut self) {
        self.counts.iter_mut().for_each(|c| *c = 0);
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
            return Err(MetricError::Unsupported {
                metric: metric.name(),
                reason: format!("needs exactly 2 classes, got {}", self.num_classes),
            });
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

/// Every (score, label) pair, so the AUC is exact rather than binned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RocAucAccumulator {
    scores: Vec<f64>,
    positive: Vec<bool>,
}

impl RocAucAccumulator {
    /// `scores` are positive-class scores (probabilities or logits: only
    /// their order matters); `targets` must be 0 or 1.
    pub fn update(&mut self, scores: &[f32], targets: &[u32]) -> Result<(), MetricError> {
        check_len("scores", scores.len(), "targets", targets.len())?;
        check_not_nan("score", scores)?;
        check_targets(targets, 2)?;
        for (&s, &t) in scores.iter().zip(targets) {
            self.push(f64::from(s), t == 1);
        }
        Ok(())
    }

    fn push(&mut self, score: f64, positive: bool) {
        // `+ 0.0` turns -0.0 into 0.0 so that equal scores sort together.
        self.scores.push(score + 0.0);
        self.positive.push(positive);
    }

    /// P(score of a random positive > score of a random negative), ties
    /// counting 1/2 -- equal to scikit-learn's `roc_auc_score`. Computed with
    /// integer counts, so the only rounding is the final division. NaN when
    /// either class is missing.
    pub fn value(&self) -> f64 {
        let mut pairs: Vec<(f64, bool)> = self
            .scores
            .iter()
            .copied()
            .zip(self.positive.iter().copied())
            .collect();
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let n_pos = pairs.iter().filter(|p| p.1).count() as u128;
        let n_neg = pairs.len() as u128 - n_pos;
        if n_pos == 0 || n_neg == 0 {
            return f64::NAN;
        }
        // Twice the Mann-Whitney U: each positive earns 2 per negative below
        // it and 1 per negative tied with it.
        let mut twice_u: u128 = 0;
        let mut neg_below: u128 = 0;
        for group in pairs.chunk_by(|a, b| a.0 == b.0) {
            let pos = group.iter().filter(|p| p.1).count() as u128;
            let neg = group.len() as u128 - pos;
            twice_u += pos * (2 * neg_below + neg);
            neg_below += neg;
        }
        twice_u as f64 / (2 * n_pos * n_neg) as f64
    }
}

/// MSE, MAE and R² from running sums. The target variance uses Welford's
/// update instead of `sum y² - (sum y)²/n`, which cancels catastrophically
/// when |mean| >> std and would turn a constant target into a tiny non-zero
/// variance. Updates are per sample, so batching never changes the result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RegressionAccumulator {
    n: u64,
    mean_target: f64,
    /// Sum of squared deviations of the target from its running mean.
    m2_target: f64,
    sum_sq_err: f64,
    sum_abs_err: f64,
}

impl RegressionAccumulator {
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
        if self.n < 2 {
            return f64::NAN;
        }
        if self.m2_target == 0.0 {
            return if self.sum_sq_err == 0.0 { 1.0 } else { 0.0 };
        }
        1.0 - self.sum_sq_err / self.m2_target
    }
}

fn ratio(num: f64, den: u64) -> f64 {
    if den == 0 {
        f64::NAN
    } else {
        num / den as f64
    }
}

fn zero_div(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// A list of metrics with their accumulators; serializable mid-validation.
///
/// Binary metrics (`roc_auc`, `*_binary`) need `num_classes == 2` and accept
/// either two score columns or one. With two columns the prediction is the
/// argmax (class 0 on a tie) and the AUC score is `s1 - s0`, computed in f64:
/// it orders samples like the softmax probability of class 1 but does not
/// saturate to 1.0 for large logit margins. With one column the column is the
/// positive-class score and the prediction is `score >= threshold`
/// (0.5 by default: set 0.0 for logits).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
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
        let classification = metrics.iter().find(|m| m.task() == Task::Classification);
        let regression = metrics.iter().find(|m| m.task() == Task::Regression);
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
                Metric::TopKAccuracy(k) if set.top_k.iter().all(|t| t.k != *k) => {
                    set.top_k.push(TopKAccumulator {
                        k: *k,
                        hits: AccuracyAccumulator::default(),
                    });
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
                return Err(MetricError::Unsupported {
                    metric: m.name(),
                    reason: format!("needs exactly 2 classes, got {num_classes}"),
                });
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

    pub fn metrics(&self) -> &[Metric] {
        &self.metrics
    }

    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    fn reject_task(&self, task: Task, reason: &str) -> Result<(), MetricError> {
        match self.metrics.iter().find(|m| m.task() == task) {
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
    pub fn update_classification(
        &mut self,
        loss_sum: f64,
        scores: &[f32],
        num_classes: usize,
        targets: &[u32],
    ) -> Result<(), MetricError> {
        self.reject_task(
            Task::Regression,
            "needs update_regression, got classification scores",
        )?;
        let single = num_classes == 1 && self.num_classes == 2;
        let uses_classes = self
            .metrics
            .iter()
            .any(|m| m.task() == Task::Classification);
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
        check_scores(scores, num_classes, targets)?;
        check_targets(targets, if single { 2 } else { num_classes })?;

        self.loss.update(loss_sum, targets.len());
        if single {
            for (&s, &t) in scores.iter().zip(targets) {
                let pred = u32::from(s >= self.threshold);
                // In the implied two-column view the target is outranked
                // exactly when it is not the prediction.
                self.record(t, pred, usize::from(pred != t), f64::from(s));
            }
        } else {
            for (row, &t) in scores.chunks_exact(num_classes).zip(targets) {
                let pred = argmax(row) as u32;
                let target_score = row[t as usize];
                let outranked = if self.top_k.is_empty() {
                    0
                } else {
                    row.iter().filter(|&&s| s > target_score).count()
                };
                let positive = match row {
                    [s0, s1] => f64::from(*s1) - f64::from(*s0),
                    _ => 0.0,
                };
                self.record(t, pred, outranked, positive);
            }
        }
        Ok(())
    }

    fn record(&mut self, target: u32, pred: u32, outranked: usize, positive_score: f64) {
        self.accuracy.record(pred == target);
        for t in &mut self.top_k {
            t.hits.record(outranked < t.k);
        }
        if let Some(c) = &mut self.confusion {
            c.add(target as usize, pred as usize);
        }
        if let Some(r) = &mut self.roc_auc {
            r.push(positive_score, target == 1);
        }
    }

    /// Adds one regression batch; validated before anything changes.
    pub fn update_regression(
        &mut self,
        loss_sum: f64,
        pred: &[f32],
        target: &[f32],
    ) -> Result<(), MetricError> {
        self.reject_task(
            Task::Classification,
            "needs update_classification, got regression predictions",
        )?;
        self.regression.update(pred, target)?;
        self.loss.update(loss_sum, pred.len());
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
        match metric {
            Metric::Loss => self.loss.value(),
            Metric::Accuracy => self.accuracy.value(),
            Metric::TopKAccuracy(k) => self
                .top_k
                .iter()
                .find(|t| t.k == k)
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

    /// Clears the accumulated samples; keeps metrics, classes and threshold.
    pub fn reset(&mut self) {
        self.loss = LossAccumulator::default();
        self.accuracy = AccuracyAccumulator::default();
        for t in &mut self.top_k {
            t.hits = AccuracyAccumulator::default();
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

/// Which way `metric` improves: known metrics say so themselves; for other names,
/// anything that sounds like a loss or an error is minimised.
pub fn direction_of(metric: &str) -> Direction {
    let m = metric.strip_prefix("val_").unwrap_or(metric);
    match Metric::from_name(m) {
        Ok(known) => known.direction(),
        Err(_) if m.contains("loss") || m.contains("error") => Direction::Min,
        Err(_) => Direction::Max,
    }
}

/// Whether a larger value of `metric` is better (see [`direction_of`]).
pub fn higher_is_better(metric: &str) -> bool {
    direction_of(metric) == Direction::Max
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(set: &MetricSet, name: &str) -> f64 {
        set.compute()
            .into_iter()
            .find(|(n, _)| n == name)
            .map_or(f64::NAN, |(_, v)| v)
    }

    /// Row-major scores whose argmax is `preds[i]`.
    fn one_hot(preds: &[u32], num_classes: usize) -> Vec<f32> {
        let mut scores = vec![0.0; preds.len() * num_classes];
        for (i, &p) in preds.iter().enumerate() {
            scores[i * num_classes + p as usize] = 1.0;
        }
        scores
    }

    fn all_classification(avgs: &[Average]) -> Vec<Metric> {
        let mut ms = vec![Metric::Loss, Metric::Accuracy];
        for &a in avgs {
            ms.extend([Metric::Precision(a), Metric::Recall(a), Metric::F1(a)]);
        }
        ms
    }

    #[test]
    fn names_round_trip_and_bad_names_are_reported() {
        let mut all = Metric::FIXED.to_vec();
        all.extend([Metric::TopKAccuracy(1), Metric::TopKAccuracy(5)]);
        for m in all {
            assert_eq!(Metric::from_name(&m.name()), Ok(m));
        }
        assert_eq!(Metric::TopKAccuracy(5).name(), "top5_accuracy");
        assert_eq!(Metric::F1(Average::Micro).name(), "f1_micro");
        assert_eq!(Metric::Recall(Average::Binary).name(), "recall_binary");
        assert_eq!(
            "precision_macro".parse(),
            Ok(Metric::Precision(Average::Macro))
        );
        for bad in [
            "f1",
            "top0_accuracy",
            "top05_accuracy",
            "top+5_accuracy",
            "Loss",
        ] {
            let err = Metric::from_name(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
            assert!(
                err.contains("top{k}_accuracy") && err.contains("r2"),
                "{err}"
            );
        }
    }

    #[test]
    fn direction_and_is_better() {
        assert_eq!(Metric::Loss.direction(), Direction::Min);
        assert_eq!(Metric::Mae.direction(), Direction::Min);
        assert_eq!(Metric::RocAuc.direction(), Direction::Max);
        assert_eq!(Metric::R2.direction(), Direction::Max);
        let (min, max) = (Direction::Min, Direction::Max);
        assert!(min.is_better(0.5, 1.0, 0.25)); // 0.5 < 1.0 - 0.25
        assert!(!min.is_better(0.75, 1.0, 0.25)); // not strictly below 0.75
        assert!(min.is_better(0.5, f64::INFINITY, 0.0));
        assert!(max.is_better(2.0, 1.0, -0.5)); // |min_delta| is used
        assert!(!max.is_better(1.5, 1.0, 0.5));
        assert!(max.is_better(0.0, f64::NAN, 0.0)); // no best yet
        assert!(!max.is_better(f64::NAN, 0.0, 0.0));
    }

    #[test]
    fn loss_is_mean_of_batch_sums() {
        let mut set = MetricSet::new(&[Metric::Loss], 0).unwrap();
        assert!(value(&set, "loss").is_nan());
        set.update_regression(3.0, &[0.0, 0.0], &[0.0, 0.0])
            .unwrap();
        set.update_regression(1.5, &[0.0], &[0.0]).unwrap();
        // (3.0 + 1.5) / (2 + 1) = 1.5
        assert_eq!(value(&set, "loss"), 1.5);
        set.reset();
        assert!(value(&set, "loss").is_nan());
    }

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
        set.update_classification(0.0, &scores, 4, &[2, 3, 0, 0])
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
        set.update_classification(0.0, &one_hot(&preds, 4), 4, &targets)
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
        set.update_classification(0.0, &one_hot(&preds, 3), 3, &targets)
            .unwrap();
        let tol = |a: f64, b: f64| (a - b).abs() < 1e-15;
        assert_eq!(value(&set, "accuracy"), 8.0 / 12.0);
        assert!(tol(value(&set, "precision_macro"), 0.6722222222222222));
        assert!(tol(value(&set, "recall_macro"), 0.6666666666666666));
        assert!(tol(value(&set, "f1_macro"), 0.6626984126984127));
    }

    #[test]
    fn binary_metrics_two_columns_one_column_and_zero_division() {
        let ms = all_classification(&[Average::Binary]);
        // Scores [0.125, 0.625, 0.375, 0.875], targets [0,0,1,1], threshold 0.5
        // -> preds [0,1,0,1]: tp 1, fp 1, fn 1 -> P = R = F1 = acc = 1/2.
        let targets = [0, 0, 1, 1];
        let single = [0.125, 0.625, 0.375, 0.875];
        let mut one_col = MetricSet::new(&ms, 2).unwrap();
        one_col
            .update_classification(0.0, &single, 1, &targets)
            .unwrap();
        let two: Vec<f32> = single.iter().flat_map(|&p| [1.0 - p, p]).collect();
        let mut two_col = MetricSet::new(&ms, 2).unwrap();
        two_col
            .update_classification(0.0, &two, 2, &targets)
            .unwrap();
        for name in ["accuracy", "precision_binary", "recall_binary", "f1_binary"] {
            assert_eq!(value(&one_col, name), 0.5, "{name}");
            assert_eq!(value(&two_col, name), 0.5, "{name}");
        }
        // All predicted negative: tp 0, fp 0 -> precision 0/0 = 0 (zero_division=0),
        // recall 0/2 = 0, F1 0/(0+0+2) = 0; accuracy 1/3.
        let mut zero = MetricSet::new(&ms, 2).unwrap().with_threshold(0.9).unwrap();
        zero.update_classification(0.0, &[0.1, 0.2, 0.3], 1, &[0, 1, 1])
            .unwrap();
        let got: Vec<f64> = zero.compute().into_iter().map(|(_, v)| v).collect();
        assert_eq!(got[1..], [1.0 / 3.0, 0.0, 0.0, 0.0]);
        // No samples at all: undefined, not zero.
        assert!(MetricSet::new(&ms, 2).unwrap().compute()[1..]
            .iter()
            .all(|(_, v)| v.is_nan()));
    }

    #[test]
    fn roc_auc_exact_with_ties() {
        let auc = |scores: &[f32], targets: &[u32]| {
            let mut acc = RocAucAccumulator::default();
            acc.update(scores, targets).unwrap();
            acc.value()
        };
        // Positives 0.35 (beats 0.1 only) and 0.8 (beats both): 3/4.
        assert_eq!(auc(&[0.1, 0.4, 0.35, 0.8], &[0, 0, 1, 1]), 0.75);
        // Positive 0.5 ties two negatives (2 x 0.5) and beats 0.25: 2;
        // positive 0.75 beats all 3: 3. (2 + 3) / (2 * 3) = 5/6.
        // Checked against scikit-learn 1.9.1 (0.8333333333333334).
        assert_eq!(
            auc(&[0.5, 0.5, 0.5, 0.25, 0.75], &[1, 0, 0, 0, 1]),
            0.8333333333333334
        );
        // Positives 0.6: 3 below + 2 ties -> 4; 0.9: 5; 0.3: 2 + 0.5; 0.8: 5;
        // 0.5: 3. Sum 19.5 / 25 = 0.78. Checked against scikit-learn 1.9.1.
        let scores = [0.2, 0.6, 0.6, 0.9, 0.1, 0.6, 0.3, 0.3, 0.8, 0.5];
        assert_eq!(auc(&scores, &[0, 1, 0, 1, 0, 0, 1, 0, 1, 1]), 0.78);
        // -0.0 and 0.0 are the same score: one tie, 0.5.
        assert_eq!(auc(&[-0.0, 0.0], &[1, 0]), 0.5);
        // One class only: undefined.
        assert!(auc(&[0.1, 0.9], &[1, 1]).is_nan());
        assert!(RocAucAccumulator::default().value().is_nan());
    }

    #[test]
    fn roc_auc_from_two_column_logits_uses_the_difference() {
        // s1 - s0 = [-1, 2, 1, 3] orders samples like the case above -> 0.75.
        let logits = [1.0, 0.0, 0.0, 2.0, 0.5, 1.5, -1.0, 2.0];
        let mut set = MetricSet::new(&[Metric::RocAuc], 2).unwrap();
        set.update_classification(0.0, &logits, 2, &[0, 0, 1, 1])
            .unwrap();
        assert_eq!(value(&set, "roc_auc"), 0.75);
    }

    #[test]
    fn regression_metrics() {
        // sklearn docs: y = [3, -0.5, 2, 7], pred = [2.5, 0, 2, 8].
        // errors 0.5, 0.5, 0, 1 -> MSE 1.5/4, MAE 2/4;
        // mean y 2.875, SS_tot 29.1875 -> R2 = 1 - 1.5/29.1875.
        // Checked against scikit-learn 1.9.1 (0.9486081370449679).
        let ms = [Metric::Mse, Metric::Mae, Metric::R2];
        let mut set = MetricSet::new(&ms, 0).unwrap();
        set.update_regression(0.0, &[2.5, 0.0, 2.0, 8.0], &[3.0, -0.5, 2.0, 7.0])
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
            .update_classification(2.5, &scores, 2, &targets)
            .unwrap();
        let mut parts = MetricSet::new(&ms, 2).unwrap();
        for (range, loss) in [(0..3, 0.5), (3..4, 1.0), (4..10, 1.0)] {
            let s = &scores[range.start * 2..range.end * 2];
            parts
                .update_classification(loss, s, 2, &targets[range])
                .unwrap();
        }
        assert_eq!(parts, whole);
        assert_eq!(parts.compute(), whole.compute());
        assert_eq!(value(&whole, "roc_auc"), 0.78);

        let (pred, target) = ([1.5, 2.25, -0.5, 4.0, 3.3], [1.0, 2.0, 0.0, 5.0, 3.0]);
        let ms = [Metric::Loss, Metric::Mse, Metric::Mae, Metric::R2];
        let mut whole = MetricSet::new(&ms, 0).unwrap();
        whole.update_regression(1.0, &pred, &target).unwrap();
        let mut parts = MetricSet::new(&ms, 0).unwrap();
        parts
            .update_regression(0.5, &pred[..2], &target[..2])
            .unwrap();
        parts
            .update_regression(0.5, &pred[2..], &target[2..])
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
            .update_classification(1.25, &scores, 3, &targets)
            .unwrap();

        let mut first = MetricSet::new(&ms, 3).unwrap();
        first
            .update_classification(0.5, &scores[..9], 3, &targets[..3])
            .unwrap();
        let config = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(&first, config).unwrap();
        let (mut resumed, _): (MetricSet, usize) =
            bincode::serde::decode_from_slice(&bytes, config).unwrap();
        assert_eq!(resumed, first);
        resumed
            .update_classification(0.75, &scores[9..], 3, &targets[3..])
            .unwrap();
        assert_eq!(resumed, uninterrupted);
    }

    #[test]
    fn invalid_inputs_are_errors_and_change_nothing() {
        let mut set = MetricSet::new(&[Metric::Accuracy, Metric::F1(Average::Macro)], 3).unwrap();
        let before = set.clone();
        let err = set
            .update_classification(0.0, &[0.0; 5], 3, &[0, 1])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "scores has length 5 but targets (2) x num_classes (3) has length 6"
        );
        let err = set
            .update_classification(0.0, &[0.0; 6], 3, &[0, 7])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "target 7 at index 1 is out of range for 3 classes"
        );
        let err = set.update_classification(0.0, &[0.0, f32::NAN], 1, &[0, 1]);
        assert!(err.unwrap_err().to_string().contains("num_classes = 1"));
        let err = set.update_classification(0.0, &[0.0, 0.0, f32::NAN], 3, &[0]);
        assert_eq!(err.unwrap_err().to_string(), "score at index 2 is NaN");
        let err = set.update_regression(0.0, &[1.0], &[1.0]).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("metric accuracy cannot be used here"));
        assert_eq!(set, before);

        let mut reg = MetricSet::new(&[Metric::Mse], 0).unwrap();
        let err = reg.update_regression(0.0, &[1.0, 2.0], &[1.0]).unwrap_err();
        assert_eq!(err.to_string(), "pred has length 2 but target has length 1");
        assert!(reg.update_classification(0.0, &[1.0], 1, &[0]).is_err());

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
