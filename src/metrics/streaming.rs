//! Metrics as objects: the [`StreamingMetric`] trait that user metrics (and the built-ins
//! that do not fit the fixed [`MetricSet`](super::MetricSet), such as the multi-class
//! ROC-AUC and the confusion matrix files) implement, the [`BatchView`] they are fed, and
//! [`MetricSpec`], a job's `"metrics"` entry (a name, or a name with arguments).
//!
//! A streaming metric sees every validation batch (and, unless it says otherwise, every
//! train batch on its own), reports named scalars, and saves its accumulated state as
//! JSON so a run stopped mid-validation resumes to the same values.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::{Direction, Metric};
use crate::error::Result;

/// The targets of one batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TargetsView<'a> {
    /// Class ids, one per sample.
    Classes(&'a [u32]),
    /// Regression values, `columns` per sample (or one per predicted value).
    Values(&'a [f32]),
}

/// One batch as the metrics see it, on the host: the model's outputs (non-finite
/// outputs already replaced by `f32::MIN`, as every metric ranks them), the targets and
/// optional per-sample weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchView<'a> {
    /// The outputs, row-major: `rows() x columns` (logits for classification).
    pub scores: &'a [f32],
    /// Outputs per sample: the number of classes (1 for a single binary score, or for one
    /// regression target).
    pub columns: usize,
    /// The targets.
    pub targets: TargetsView<'a>,
    /// Per-sample weights, where the data gives them (`None`: every sample weighs 1).
    pub weights: Option<&'a [f32]>,
    /// The number of classes when the targets are class ids.
    pub num_classes: Option<usize>,
    /// The batch's mean loss.
    pub mean_loss: f64,
}

impl BatchView<'_> {
    /// Samples in the batch.
    pub fn rows(&self) -> usize {
        self.scores.len().checked_div(self.columns).unwrap_or(0)
    }

    /// The class ids, or `None` for regression targets.
    pub fn classes(&self) -> Option<&[u32]> {
        match self.targets {
            TargetsView::Classes(c) => Some(c),
            TargetsView::Values(_) => None,
        }
    }

    /// Sample `i`'s outputs.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.scores[i * self.columns..(i + 1) * self.columns]
    }
}

/// The owned host copy of a batch behind a [`BatchView`]: made once per batch for the
/// metrics and lent to callbacks (`TrainerView::outputs`), never copied again.
#[derive(Debug, Clone, PartialEq)]
pub struct HostBatch {
    /// See [`BatchView::scores`].
    pub scores: Vec<f32>,
    /// See [`BatchView::columns`].
    pub columns: usize,
    /// Class ids (`Ok`) or regression values (`Err`).
    pub targets: std::result::Result<Vec<u32>, Vec<f32>>,
    /// See [`BatchView::weights`].
    pub weights: Option<Vec<f32>>,
    /// See [`BatchView::num_classes`].
    pub num_classes: Option<usize>,
    /// See [`BatchView::mean_loss`].
    pub mean_loss: f64,
}

impl HostBatch {
    /// The batch as metrics and callbacks read it.
    pub fn view(&self) -> BatchView<'_> {
        BatchView {
            scores: &self.scores,
            columns: self.columns,
            targets: match &self.targets {
                Ok(c) => TargetsView::Classes(c),
                Err(v) => TargetsView::Values(v),
            },
            weights: self.weights.as_deref(),
            num_classes: self.num_classes,
            mean_loss: self.mean_loss,
        }
    }
}

/// Where a validation pass that just ended stands, for metrics that write files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidationEnd {
    /// Validations completed, this one included (1 for the first).
    pub validation: u64,
    /// Train epochs completed.
    pub epoch: u64,
    /// Train batches fit.
    pub batches_fit: u64,
}

/// A metric fed batch by batch. Its accumulated state is saved into every checkpoint
/// (keyed by [`name`](Self::name)), so it must depend only on the samples seen.
pub trait StreamingMetric: Send {
    /// The metric's name: unique in a run, keys its saved state, and is its value's name
    /// unless [`values`](Self::values) says otherwise.
    fn name(&self) -> String;
    /// Adds one batch. An error ends the run (the state should then be unchanged).
    fn update(&mut self, batch: &BatchView) -> Result<()>;
    /// The values so far, as `(name, value)`; NaN where undefined (no samples yet). A
    /// metric that only writes files returns none.
    fn values(&self) -> Vec<(String, f64)>;
    /// Forgets every sample seen.
    fn reset(&mut self);
    /// Which way the values improve (default: larger is better).
    fn direction(&self) -> Direction {
        Direction::Max
    }
    /// The accumulated state, as JSON (restored by [`load_state`](Self::load_state)).
    fn save_state(&self) -> Value;
    /// Restores what `save_state` returned.
    fn load_state(&mut self, state: Value) -> Result<()>;
    /// Whether each train batch is also measured on its own, as a column of the train
    /// history (default yes); validation always feeds it.
    fn on_train_batches(&self) -> bool {
        true
    }
    /// Called once a validation pass has ended and its values were taken, before the
    /// state is reset: metrics that write files (`confusion_matrix`) write them here.
    fn validation_end(&mut self, _at: &ValidationEnd) -> Result<()> {
        Ok(())
    }
}

/// What a metric factory makes: one of the fixed [`MetricSet`](super::MetricSet) metrics
/// (checkpointed inside the train state, as always), or a streaming metric object.
pub enum BuiltMetric {
    /// A metric of the fixed set (`accuracy`, `f1_macro`, `top5_accuracy`, ...).
    Standard(Metric),
    /// Any other metric.
    Streaming(Box<dyn StreamingMetric>),
}

impl std::fmt::Debug for BuiltMetric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuiltMetric::Standard(m) => write!(f, "Standard({m})"),
            BuiltMetric::Streaming(m) => write!(f, "Streaming({})", m.name()),
        }
    }
}

/// One entry of a job's `train.metrics`: a name (`"f1_macro"`), or a name with arguments
/// (`{"name": "top_k_accuracy", "k": 5}`). Written back as a bare name when it has no
/// arguments.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetricSpec {
    /// The registered name (or a `top{k}_accuracy` spelling).
    pub name: String,
    /// The arguments, every key but `name`.
    pub args: Map<String, Value>,
}

impl MetricSpec {
    /// A metric named `name`, without arguments.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            args: Map::new(),
        }
    }
}

impl From<&str> for MetricSpec {
    fn from(name: &str) -> Self {
        Self::named(name)
    }
}

impl From<String> for MetricSpec {
    fn from(name: String) -> Self {
        Self::named(name)
    }
}

impl PartialEq<&str> for MetricSpec {
    fn eq(&self, other: &&str) -> bool {
        self.args.is_empty() && self.name == *other
    }
}

impl std::fmt::Display for MetricSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl Serialize for MetricSpec {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        if self.args.is_empty() {
            return s.serialize_str(&self.name);
        }
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.args.len() + 1))?;
        map.serialize_entry("name", &self.name)?;
        for (k, v) in &self.args {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for MetricSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(name) => Ok(MetricSpec::named(name)),
            Value::Object(mut args) => match args.remove("name") {
                Some(Value::String(name)) => Ok(MetricSpec { name, args }),
                Some(other) => Err(D::Error::custom(format!(
                    "`name` must be a string, not {other}"
                ))),
                None => Err(D::Error::custom("a metric needs a `name`")),
            },
            other => Err(D::Error::custom(format!(
                "expected a metric name or {{\"name\": ..., arguments...}}, found {other}"
            ))),
        }
    }
}

/// `values` as JSON numbers that read back bit for bit (their IEEE bits), for metric and
/// callback states.
pub fn f32_bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

/// The inverse of [`f32_bits`].
pub fn f32_from_bits(bits: &[u32]) -> Vec<f32> {
    bits.iter().map(|&b| f32::from_bits(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_read_names_and_objects_and_write_bare_names_back() {
        let specs: Vec<MetricSpec> =
            serde_json::from_str(r#"["accuracy", {"name": "top_k_accuracy", "k": 5}]"#).unwrap();
        assert_eq!(specs[0], "accuracy");
        assert_eq!(specs[1].name, "top_k_accuracy");
        assert_eq!(specs[1].args["k"], 5);
        assert_eq!(
            serde_json::to_string(&specs).unwrap(),
            r#"["accuracy",{"name":"top_k_accuracy","k":5}]"#
        );
        let err = serde_json::from_str::<MetricSpec>(r#"{"k": 5}"#).unwrap_err();
        assert!(err.to_string().contains("needs a `name`"), "{err}");
        assert!(serde_json::from_str::<MetricSpec>("3").is_err());
    }

    #[test]
    fn host_batches_view_their_rows() {
        let b = HostBatch {
            scores: vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
            columns: 3,
            targets: Ok(vec![2, 0]),
            weights: None,
            num_classes: Some(3),
            mean_loss: 0.5,
        };
        let v = b.view();
        assert_eq!((v.rows(), v.row(1)), (2, &[3.0, 4.0, 5.0][..]));
        assert_eq!(v.classes(), Some(&[2, 0][..]));
        assert_eq!(f32_from_bits(&f32_bits(&[0.1, -0.0])), [0.1, -0.0]);
    }
}
