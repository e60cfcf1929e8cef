//! Streaming, exact evaluation metrics.
//!
//! Validation runs batch by batch and may be checkpointed half way, so every
//! accumulator is a plain serde struct whose state depends only on the
//! sequence of samples seen, never on how they were split into batches: one
//! batch or three give bit-identical results (except the loss, whose per-batch
//! sums come from the caller). Nothing iterates a hash map, so values are
//! reproducible across runs and platforms.
//!
//! Files by concern: `base` holds names, directions, errors and input checks;
//! each accumulator family has its own file (loss, classification,
//! ranking, regression); `weighted` holds their sample-weighted sums; `set`
//! combines them into the checkpointed [`MetricSet`]; [`calibration`] picks
//! thresholds and ensembles afterwards. `streaming` holds the [`StreamingMetric`]
//! trait of metrics as objects (users' own, and the built-ins beyond the fixed set: one
//! per file, `roc_auc_ovr` and `confusion_metric`).

mod base;
pub mod calibration;
mod classification;
mod confusion_metric;
mod loss;
mod ranking;
mod regression;
mod roc_auc_ovr;
mod set;
mod streaming;
#[cfg(test)]
mod testing;
mod weighted;

pub use base::{direction_of, higher_is_better, Average, Direction, Metric, MetricError};
pub use classification::{argmax, AccuracyAccumulator, ConfusionMatrix, TopKAccumulator};
pub use confusion_metric::{ConfusionMatrixMetric, ConfusionWriter};
pub use loss::LossAccumulator;
pub use ranking::RocAucAccumulator;
pub use regression::RegressionAccumulator;
pub use roc_auc_ovr::OvrRocAuc;
pub use set::{with_layout_before_weights, MetricSet};
pub use streaming::{
    f32_bits, f32_from_bits, BatchView, BuiltMetric, HostBatch, MetricSpec, StreamingMetric,
    TargetsView, ValidationEnd,
};
pub use weighted::WeightedSums;
