//! `TrainState`: everything a run has done and where it stands, in one public struct.
//!
//! It is saved whole into every checkpoint (`state.bin`), so a resumed run knows exactly
//! which batch comes next. Fields are plain data: read them at any time as
//! `trainer.state.*`. Nothing here is derived from anything else, and no two fields can
//! contradict each other: *where* the run is lives in `phase` alone.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::metrics::MetricSet;
use crate::rng::{RngState, RngStream, StreamId};

mod cursor;
pub use cursor::{DataCursor, SetKind};

/// Where the state machine stands; see `trainer.rs` for the transitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// The next step plans a train epoch (shuffles) and fires `TrainEpochBegin`.
    EpochStart,
    /// Fitting train batches; the next one is `train_data.sets_to_process[0]`.
    Train,
    /// A validation pass is under way; `then` says where the run goes when it ends.
    Validate {
        /// Where the run goes when the pass ends.
        then: AfterValidation,
    },
    /// Training is over; nothing more will be fit.
    Done {
        /// Why it ended.
        reason: DoneReason,
    },
}

/// Where to go once a validation pass ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AfterValidation {
    /// Back to the epoch in progress (validation every N batches).
    Train,
    /// On to the next epoch (validation at an epoch end).
    EpochStart,
    /// The last epoch ended; validation was the last thing to do.
    Finish,
}

/// Why a run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DoneReason {
    /// All configured epochs ran.
    Finished,
    /// A callback (early stopping, health check, a user) or the trainer asked to stop.
    Stopped(StopRequest),
}

/// A request to end training early: who asked and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopRequest {
    /// The callback (or `trainer`) that asked.
    pub by: String,
    /// Why, in words.
    pub why: String,
}

impl StopRequest {
    /// A stop asked for by `by` because of `why`.
    pub fn new(by: impl Into<String>, why: impl Into<String>) -> Self {
        Self {
            by: by.into(),
            why: why.into(),
        }
    }
}

impl std::fmt::Display for StopRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.by, self.why)
    }
}

/// Metric values over time: one row per train batch, or per validation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// `batches_fit` at each row: the shared x axis of train and validation histories.
    pub at_batches_fit: Vec<u64>,
    /// Metric name to one value per row (NaN where a metric had no value).
    pub metrics: BTreeMap<String, Vec<f64>>,
}

impl History {
    /// Appends one row; metrics absent from earlier rows are back-filled with NaN.
    pub fn push(&mut self, at: u64, values: &[(String, f64)]) {
        let rows = self.at_batches_fit.len();
        for (name, value) in values {
            let column = self
                .metrics
                .entry(name.clone())
                .or_insert_with(|| vec![f64::NAN; rows]);
            column.push(*value);
        }
        self.at_batches_fit.push(at);
        for column in self.metrics.values_mut() {
            if column.len() < rows + 1 {
                column.push(f64::NAN);
            }
        }
    }

    /// Rows so far.
    pub fn len(&self) -> usize {
        self.at_batches_fit.len()
    }

    /// Whether there is no row yet.
    pub fn is_empty(&self) -> bool {
        self.at_batches_fit.is_empty()
    }

    /// The most recent value of every metric.
    pub fn latest(&self) -> BTreeMap<String, f64> {
        self.metrics
            .iter()
            .filter_map(|(k, v)| v.last().map(|x| (k.clone(), *x)))
            .collect()
    }
}

/// The best value of the key metric seen in validation so far, and where it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Best {
    /// The key metric's name (e.g. `val_accuracy`).
    pub metric: String,
    /// Its best value so far.
    pub value: f64,
    /// Train epochs completed when it was reached.
    pub epoch: u64,
    /// `batches_fit` when it was reached.
    pub batches_fit: u64,
    /// `global_step` when it was reached.
    pub global_step: u64,
    /// Index into `val_history` (0-based).
    pub validation: u64,
}

/// Positions of every random stream the run draws from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RngStates {
    /// The weight-initialisation stream, after the model was built.
    pub init: RngState,
    /// The dropout stream, where the next mask will be drawn from.
    pub dropout: RngState,
    /// The augmentation stream (random transforms of train batches), where the next crop,
    /// flip or noise will be drawn from. Checkpoints made before it existed (format 3 and
    /// older) load with it at its start, under the dropout stream's seed.
    pub augment: RngState,
}

impl RngStates {
    /// The augmentation stream at its start, under the run's `seed`.
    pub fn augment_start(seed: u64) -> RngState {
        RngStream::new(seed, StreamId::Augment).state()
    }
}

/// `RngStates` as checkpoints of format 4 on store it (and JSON, where a left-out
/// `augment` is read as its start).
#[derive(Serialize, Deserialize)]
#[serde(rename = "RngStates")]
struct RngStatesRepr {
    init: RngState,
    dropout: RngState,
    #[serde(default)]
    augment: Option<RngState>,
}

/// `RngStates` as checkpoints up to format 3 stored it: no augmentation stream.
#[derive(Serialize, Deserialize)]
#[serde(rename = "RngStates")]
struct RngStatesBefore4 {
    init: RngState,
    dropout: RngState,
}

impl Serialize for RngStates {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        if format::older_than(4) {
            return RngStatesBefore4 {
                init: self.init.clone(),
                dropout: self.dropout.clone(),
            }
            .serialize(s);
        }
        RngStatesRepr {
            init: self.init.clone(),
            dropout: self.dropout.clone(),
            augment: Some(self.augment.clone()),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for RngStates {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (init, dropout, augment) = if format::older_than(4) {
            let old = RngStatesBefore4::deserialize(d)?;
            (old.init, old.dropout, None)
        } else {
            let r = RngStatesRepr::deserialize(d)?;
            (r.init, r.dropout, r.augment)
        };
        let augment = augment.unwrap_or_else(|| RngStates::augment_start(dropout.seed));
        Ok(RngStates {
            init,
            dropout,
            augment,
        })
    }
}

/// Which checkpoint format the train state is read or written in. `state.bin`'s bincode
/// is positional: a field added later is not in an older file, and the reader must know
/// to expect its absence. Outside [`with_format`](format::with_format) it is the newest.
pub mod format {
    use std::cell::Cell;

    thread_local! {
        static FORMAT: Cell<Option<u32>> = const { Cell::new(None) };
    }

    /// Whether the state is being read or written in a checkpoint format older than
    /// `version` on this thread (inside [`with_format`]).
    pub fn older_than(version: u32) -> bool {
        FORMAT.with(Cell::get).is_some_and(|v| v < version)
    }

    /// Runs `f` with the train state read and written in checkpoint format `version`:
    /// the checkpoint loader decodes an older `state.bin` inside it, and fields that
    /// format lacks take their defaults (format 4 added `rng.augment`, format 5 the
    /// metrics' sample-weighted sums).
    pub fn with_format<T>(version: u32, f: impl FnOnce() -> T) -> T {
        struct Restore(Option<u32>);
        impl Drop for Restore {
            fn drop(&mut self) {
                FORMAT.with(|c| c.set(self.0));
            }
        }
        let _restore = Restore(FORMAT.with(|c| c.replace(Some(version))));
        if version < 5 {
            return crate::metrics::with_layout_before_weights(f);
        }
        f()
    }
}

/// Wall-clock totals in seconds, summed over every session of the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WallClock {
    /// In train iterations (load, forward, backward, update, callbacks).
    pub train_secs: f64,
    /// In validation iterations.
    pub validation_secs: f64,
    /// Writing checkpoints (reports included).
    pub checkpoint_secs: f64,
    /// Everything, from the start of `fit` to the last save.
    pub total_secs: f64,
    /// How many processes have worked on this run (1 + number of resumes).
    pub sessions: u64,
}

/// The whole state of a run. Saved in every checkpoint; read it as `trainer.state`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Train epochs completed.
    pub epoch: u64,
    /// Optimizer updates applied (skipped batches do not count).
    pub global_step: u64,
    /// Train batches processed, skipped ones included: the x axis of every history.
    pub batches_fit: u64,
    /// Validation batches evaluated, over all validations.
    pub batches_validated: u64,
    /// Validations completed (complete passes over the validation set).
    pub times_validated: u64,
    /// Train batches processed in the current epoch.
    pub batch_in_epoch: u64,
    /// Name of the set (batch) most recently loaded, e.g. `"12"` or `"12+13"`.
    pub set_name: String,
    /// Which data set `set_name` belongs to (`None` before the first batch).
    pub set_kind: Option<SetKind>,
    /// Where the state machine stands.
    pub phase: Phase,
    /// One row per train batch: loss, metrics, `lr`, `grad_norm`.
    pub train_history: History,
    /// One row per validation: `val_loss`, `val_accuracy`, ...
    pub val_history: History,
    /// `batches_fit` at each epoch end (for plots and for telling epochs apart).
    pub epoch_ends: Vec<u64>,
    /// Name of the metric that decides "best" (e.g. `val_loss`).
    pub key_metric: String,
    /// Whether a larger key metric is better.
    pub key_metric_higher_is_better: bool,
    /// The best key metric so far (`None` before the first validation).
    pub best: Option<Best>,
    /// Learning rate of the most recent (or upcoming) update.
    pub learning_rate: f64,
    /// A rate set by a callback (LR schedule callbacks, reduce-on-plateau): replaces the
    /// configured schedule from then on. Kept here so a resumed run keeps it too.
    pub learning_rate_override: Option<f64>,
    /// Global gradient norm of the most recent update, before clipping.
    pub grad_norm: f64,
    /// Per-layer gradient norms of the most recent update, by variable name.
    pub layer_grad_norms: BTreeMap<String, f64>,
    /// Per-layer gradient norms of every fit batch (before clipping), by variable name.
    pub grad_norm_history: History,
    /// Positions of the run's random streams.
    pub rng: RngStates,
    /// Where training stands in the train data: the sets left in this epoch, the
    /// window, and the loader's own state (shuffle stream, plan).
    pub train_data: DataCursor,
    /// Where the validation in progress stands in the validation data.
    pub val_data: DataCursor,
    /// Metric rows of the windows of the current train set fit so far; averaged into
    /// the set's one history row when its last window is done (empty between sets).
    pub window_rows: Vec<Vec<(String, f64)>>,
    /// Running sums of the validation in progress (empty between validations).
    pub val_metrics: MetricSet,
    /// Time spent, over every session of the run.
    pub time: WallClock,
    /// Checkpoints written so far; numbers the next checkpoint directory.
    pub checkpoints_saved: u64,
}

impl TrainState {
    /// True once the run has nothing left to do.
    pub fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done { .. })
    }

    /// The latest value of every metric, validation ones prefixed `val_`.
    pub fn latest_metrics(&self) -> BTreeMap<String, f64> {
        let mut out = self.train_history.latest();
        out.extend(self.val_history.latest());
        out
    }

    /// The counters, the latest metrics and the best so far, in a few lines (what
    /// `Trainer::info` and `deeptrain inspect` show); `epochs` is the configured total.
    pub fn summary(&self, epochs: u64) -> String {
        let mut out = format!(
            "epoch {}/{epochs}  global_step {}  batches_fit {}  batches_validated {}  times_validated {}\n",
            self.epoch,
            self.global_step,
            self.batches_fit,
            self.batches_validated,
            self.times_validated
        );
        let metrics: Vec<String> = self
            .latest_metrics()
            .iter()
            .map(|(k, v)| format!("{k}={v:.4}"))
            .collect();
        out += &format!("latest {}\n", metrics.join(" "));
        if let Some(b) = &self.best {
            out += &format!(
                "best {} = {:.4} at epoch {}, batches_fit {}\n",
                b.metric, b.value, b.epoch, b.batches_fit
            );
        }
        out
    }

    /// Where a stop at this moment would leave the run.
    pub fn interrupt_status(&self) -> InterruptStatus {
        match &self.phase {
            Phase::Done { .. } => InterruptStatus::Finished,
            Phase::EpochStart if self.batches_fit == 0 => InterruptStatus::NotStarted,
            Phase::EpochStart => InterruptStatus::BetweenEpochs { epoch: self.epoch },
            Phase::Train => InterruptStatus::MidTrain {
                epoch: self.epoch,
                batch_in_epoch: self.batch_in_epoch,
                remaining: self.train_data.sets_to_process.len() as u64,
            },
            Phase::Validate { .. } => InterruptStatus::MidValidation {
                validation: self.times_validated,
                batches_done: self.val_data.sets_done.len() as u64,
                remaining: self.val_data.sets_to_process.len() as u64,
            },
        }
    }
}

/// Where a run stopped, in terms a person understands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InterruptStatus {
    /// Nothing has been fit yet.
    NotStarted,
    /// Between two epochs.
    BetweenEpochs {
        /// Epochs completed.
        epoch: u64,
    },
    /// Inside a train epoch.
    MidTrain {
        /// Epochs completed (the one in progress is `epoch + 1`).
        epoch: u64,
        /// Batches done in this epoch.
        batch_in_epoch: u64,
        /// Sets left in this epoch.
        remaining: u64,
    },
    /// Inside a validation pass.
    MidValidation {
        /// Validations completed before this one.
        validation: u64,
        /// Batches done in this pass.
        batches_done: u64,
        /// Sets left in this pass.
        remaining: u64,
    },
    /// Training is over.
    Finished,
}

impl std::fmt::Display for InterruptStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InterruptStatus::NotStarted => write!(f, "not started"),
            InterruptStatus::BetweenEpochs { epoch } => {
                write!(f, "between epochs (after epoch {epoch})")
            }
            InterruptStatus::MidTrain {
                epoch,
                batch_in_epoch,
                remaining,
            } => write!(
                f,
                "mid-train: epoch {}, batch {} done, {} left",
                epoch + 1,
                batch_in_epoch,
                remaining
            ),
            InterruptStatus::MidValidation {
                validation,
                batches_done,
                remaining,
            } => write!(
                f,
                "mid-validation #{}: {} batches done, {} left",
                validation + 1,
                batches_done,
                remaining
            ),
            InterruptStatus::Finished => write!(f, "finished"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn states() -> RngStates {
        let mut augment = RngStream::new(7, StreamId::Augment);
        augment.next_u64();
        RngStates {
            init: RngStream::new(7, StreamId::Init).state(),
            dropout: RngStream::new(7, StreamId::Dropout).state(),
            augment: augment.state(),
        }
    }

    fn encode(s: &RngStates) -> Vec<u8> {
        bincode::serde::encode_to_vec(s, bincode::config::standard()).unwrap()
    }

    fn decode(bytes: &[u8]) -> RngStates {
        let (s, read) =
            bincode::serde::decode_from_slice(bytes, bincode::config::standard()).unwrap();
        assert_eq!(read, bytes.len(), "every byte read");
        s
    }

    #[test]
    fn the_augment_stream_round_trips_and_older_formats_start_it_fresh() {
        let s = states();
        assert_eq!(decode(&encode(&s)), s);
        // Format 3 has no augment stream: written without it, read back at its start.
        let old = format::with_format(3, || encode(&s));
        assert!(old.len() < encode(&s).len());
        let read = format::with_format(3, || decode(&old));
        assert_eq!(read.dropout, s.dropout);
        assert_eq!(read.augment, RngStates::augment_start(7));
        assert_ne!(read.augment, s.augment);
        // Outside `with_format` the newest format is back.
        assert!(!format::older_than(4));
        assert_eq!(decode(&encode(&s)), s);
    }

    #[test]
    fn json_without_the_augment_stream_reads_it_at_its_start() {
        let s = states();
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(
            serde_json::from_value::<RngStates>(json.clone()).unwrap(),
            s
        );
        let mut old = json;
        old.as_object_mut().unwrap().remove("augment");
        let read: RngStates = serde_json::from_value(old).unwrap();
        assert_eq!(read.augment, RngStates::augment_start(7));
    }
}
