//! What every metric file shares: the error type, metric names and their
//! parsing, which way each metric improves, and the input checks run before
//! any accumulator changes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Errors from metric construction, name parsing and updates.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricError {
    /// A name [`Metric::from_name`] does not know.
    #[error("unknown metric {name:?}; valid names: {valid}")]
    UnknownMetric {
        /// The name as given.
        name: String,
        /// Every valid name, comma-separated.
        valid: String,
    },
    /// Two inputs that must be equally long are not.
    #[error("{left} has length {left_len} but {right} has length {right_len}")]
    LengthMismatch {
        /// What the first input is, e.g. `pred` or `scores`.
        left: String,
        /// Its length.
        left_len: usize,
        /// What the second input is, e.g. `target`.
        right: String,
        /// The length it has (or, for a score matrix, the length expected).
        right_len: usize,
    },
    /// A class target is not below the number of classes.
    #[error("target {target} at index {index} is out of range for {num_classes} classes")]
    TargetOutOfRange {
        /// Position of the first such target in the batch.
        index: usize,
        /// The target value.
        target: u32,
        /// The number of classes it had to be below.
        num_classes: usize,
    },
    /// An input value is NaN (NaN is never folded into an accumulator).
    #[error("{what} at index {index} is NaN")]
    NaN {
        /// Which input, e.g. `score`, `pred`, `target`.
        what: String,
        /// Position of the first NaN.
        index: usize,
    },
    /// A parameter is out of range, e.g. `num_classes = 0`, `k = 0` or a NaN threshold.
    #[error("invalid {name} = {value}: expected {expected}")]
    InvalidParameter {
        /// The parameter, e.g. `num_classes`, `k`, `threshold`.
        name: &'static str,
        /// Its value, as text.
        value: String,
        /// What would have been accepted.
        expected: String,
    },
    /// A metric used where it cannot be computed: a two-class-only metric with another
    /// class count, regression mixed with classification, the wrong kind of update.
    #[error("metric {metric} cannot be used here: {reason}")]
    Unsupported {
        /// The metric's name.
        metric: String,
        /// Why not, in words.
        reason: String,
    },
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
    /// Smaller is better: loss, MSE, MAE, and unknown names containing `loss` or `error`.
    Min,
    /// Larger is better: accuracy, top-k accuracy, precision, recall, F1, ROC-AUC, R², and
    /// other unknown names.
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

/// Which kind of update a metric needs; a set never mixes the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Task {
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
    /// `tp / (tp + fp)` per class, combined as the [`Average`] says; named
    /// `precision_binary`, `precision_macro` or `precision_micro`. A zero denominator gives
    /// 0.0 (scikit-learn's `zero_division=0`); NaN before any sample.
    Precision(Average),
    /// `tp / (tp + fn)` per class; named `recall_binary`, `recall_macro` or `recall_micro`.
    /// Zero denominators and NaN as for `Precision`.
    Recall(Average),
    /// `2tp / (2tp + fp + fn)` per class (harmonic mean of precision and recall); named
    /// `f1_binary`, `f1_macro` or `f1_micro`. Zero denominators and NaN as for `Precision`.
    F1(Average),
    /// Binary ROC-AUC, exact (Mann-Whitney, tied scores count 0.5); NaN when
    /// only one class has been seen.
    RocAuc,
    /// Mean squared error over every predicted value (several per sample for per-step
    /// outputs); lower is better.
    Mse,
    /// Mean absolute error over every predicted value; lower is better.
    Mae,
    /// Coefficient of determination; see
    /// [`RegressionAccumulator::r2`](super::RegressionAccumulator::r2).
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

    pub(super) fn task(&self) -> Task {
        match self {
            Metric::Loss => Task::Any,
            Metric::Mse | Metric::Mae | Metric::R2 => Task::Regression,
            _ => Task::Classification,
        }
    }

    /// Metrics defined only for two classes with class 1 as positive.
    pub(super) fn is_binary_only(&self) -> bool {
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

/// Two inputs that must be the same length, named in the error.
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

/// Every target must be a class below `num_classes`.
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

/// Checks a row-major `targets.len() x num_classes` score matrix. Errors call
/// the matrix `name` ("scores", "candidate 2") and one of its values `value_name`
/// ("score", "candidate 2 score").
pub(super) fn check_score_matrix(
    name: &str,
    value_name: &str,
    scores: &[f32],
    num_classes: usize,
    targets: &[u32],
) -> Result<(), MetricError> {
    if num_classes == 0 {
        return Err(at_least_one("num_classes"));
    }
    let expected = targets.len().saturating_mul(num_classes);
    let right = format!("targets ({}) x num_classes ({num_classes})", targets.len());
    check_len(name, scores.len(), &right, expected)?;
    check_not_nan(value_name, scores)
}

/// Checks one positive-class score per sample against 0/1 targets.
pub(super) fn check_binary_scores(scores: &[f32], targets: &[u32]) -> Result<(), MetricError> {
    check_len("scores", scores.len(), "targets", targets.len())?;
    check_not_nan("score", scores)?;
    check_targets(targets, 2)
}

/// The error for a count parameter (`num_classes`, `max_size`) that is 0.
pub(super) fn at_least_one(name: &'static str) -> MetricError {
    MetricError::InvalidParameter {
        name,
        value: "0".to_string(),
        expected: "at least 1".to_string(),
    }
}

/// The error for a two-class-only `metric` used with `num_classes` classes.
pub(super) fn needs_two_classes(metric: Metric, num_classes: usize) -> MetricError {
    MetricError::Unsupported {
        metric: metric.name(),
        reason: format!("needs exactly 2 classes, got {num_classes}"),
    }
}

/// `num / den`, NaN when nothing was counted.
pub(super) fn ratio(num: f64, den: u64) -> f64 {
    if den == 0 {
        f64::NAN
    } else {
        num / den as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
