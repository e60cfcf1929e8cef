//! Data loading: the [`DataLoader`] contract, AutoData, the format readers and
//! time-series windows. This layer knows nothing of the trainer: a loader plans epochs
//! and loads sets; the trainer's cursor (`state::DataCursor`) says which set comes next,
//! and the loader's own [`LoaderState`] sits inside it, so a resumed run sees exactly the
//! batches it would have seen.

pub mod array;
pub mod auto;
pub mod csv_file;
mod format_error;
pub mod idx;
mod in_memory;
pub mod npy;
pub mod preprocess;
pub mod safetensors_file;
pub mod series;
pub mod timeseries;
#[cfg(feature = "datasets")]
pub mod vision_dataset;
pub mod vision_sets;
pub mod weights;

pub use array::{ArrayData, FormatError};
pub use auto::{AutoData, AutoDataBuilder, FileLoader, LoadedFile};
pub use in_memory::{InMemoryData, Targets};
pub use preprocess::{BatchCtx, Preprocessor};
pub use timeseries::TimeseriesWindows;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::rng::{RngState, RngStream};

/// What a loader keeps between calls, saved in every checkpoint: its settings, its
/// shuffle stream and the plan of the current epoch. Only the loader writes it (in
/// [`DataLoader::plan_epoch`]); where the trainer stands in the epoch is the trainer's
/// business (`state::DataCursor`), not the loader's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoaderState {
    /// Samples per batch (at least 1; `plan_epoch` refuses 0). The last batch of an epoch
    /// may be smaller unless `drop_last`.
    pub batch_size: usize,
    /// Shuffle the order of sets (`AutoData`) or samples (`InMemoryData`) every epoch.
    pub shuffle: bool,
    /// Keep (false) or drop (true) a last batch smaller than `batch_size`.
    pub drop_last: bool,
    /// Shuffle stream position (seeded from the run seed).
    pub rng: RngState,
    /// Order of this epoch, as the loader defines it (`InMemoryData`: samples, `AutoData`:
    /// sets); empty means the natural order.
    pub order: Vec<u32>,
    /// Besides the set order, permute the samples within each group (`AutoData`: within
    /// each file, or within the whole file in dataset mode).
    pub shuffle_samples: bool,
    /// Seed of this epoch's within-group sample permutations (drawn from `rng` when the
    /// epoch is planned; 0 when `shuffle_samples` is off).
    pub sample_seed: u64,
    /// Per-epoch state of the loader's preprocessor (what its `on_epoch` hook returned).
    pub preprocessor_state: String,
}

impl LoaderState {
    /// Settings and a fresh shuffle stream; no epoch planned yet.
    pub fn new(batch_size: usize, shuffle: bool, drop_last: bool, rng: &RngStream) -> Self {
        Self {
            batch_size,
            shuffle,
            drop_last,
            rng: rng.state(),
            order: Vec::new(),
            shuffle_samples: false,
            sample_seed: 0,
            preprocessor_state: String::new(),
        }
    }
}

/// Which batch to load: a set of an epoch's plan, and which window of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetRef<'a> {
    /// Name of the set, as `plan_epoch` returned it (e.g. `"12"`, `"12+13"`, `"12-b"`).
    pub name: &'a str,
    /// Window (iteration) of the set; 0 unless a preprocessor cuts sets into windows.
    pub window: usize,
    /// The epoch the set belongs to (1-based), as handed to `plan_epoch`.
    pub epoch: u64,
}

impl<'a> SetRef<'a> {
    /// Window 0 of set `name` in epoch 1: what a loader used without a trainer loads.
    pub fn new(name: &'a str) -> Self {
        Self {
            name,
            window: 0,
            epoch: 1,
        }
    }
    /// The same set in epoch `epoch`.
    pub fn in_epoch(self, epoch: u64) -> Self {
        Self { epoch, ..self }
    }
    /// Window `window` of the same set.
    pub fn window(self, window: usize) -> Self {
        Self { window, ..self }
    }
}

/// One batch ready for the model.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Name of the set this batch was loaded for, as in [`SetRef::name`].
    pub set_name: String,
    /// Inputs, samples on the first axis.
    pub x: Tensor,
    /// Targets: `u32` class indices or `f32` regression targets.
    pub y: Tensor,
    /// Which window (iteration) of its set this is, of `windows`. A set yields one window
    /// unless a time-series preprocessor cuts it; after the last one the trainer resets
    /// the model's carried state and counts the set as fit.
    pub window: usize,
    /// Number of windows its set yields (at least 1; `window < windows`).
    pub windows: usize,
    /// Per-sample weights (`f32`, shape `[batch]`, in the order of `x`'s samples) where
    /// the data has them (`data.weights`, a CSV weight column): the loss and the metrics
    /// weigh each sample by its weight. `None`: every sample weighs the same.
    pub weights: Option<Tensor>,
}

impl Batch {
    /// A whole set as one window.
    pub fn new(set_name: impl Into<String>, x: Tensor, y: Tensor) -> Self {
        Self {
            set_name: set_name.into(),
            x,
            y,
            window: 0,
            windows: 1,
            weights: None,
        }
    }

    /// The same batch with per-sample `weights` (`[batch]`).
    pub fn with_weights(mut self, weights: Option<Tensor>) -> Self {
        self.weights = weights;
        self
    }

    /// Samples in the batch: the length of `x`'s first axis (0 if `x` is a scalar).
    pub fn size(&self) -> usize {
        self.x.dims().first().copied().unwrap_or(0)
    }

    /// Whether this is the last window of its set.
    pub fn is_last_window(&self) -> bool {
        self.window + 1 >= self.windows
    }
}

/// What a loader knows about its data, for `deeptrain data` and reports.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DataInfo {
    /// Format name: `"npy"`, `"safetensors"`, `"csv"`, `"idx"` or a registered extension
    /// (`AutoData`), `"in-memory"` (`InMemoryData`).
    pub format: String,
    /// The data files read, as displayed paths in set order (`AutoData`), or the data
    /// set's name (`InMemoryData`).
    pub files: Vec<String>,
    /// Samples over all sets.
    pub num_samples: usize,
    /// Shape of one input sample, without the sample axis (empty: scalar samples).
    pub sample_shape: Vec<usize>,
    /// Element type of the stored inputs by [`DType::name`](array::DType::name) (`"f32"`,
    /// `"u8"`, ...); `AutoData` batches are f32 anyway unless built with
    /// [`InputDType::Native`](auto::InputDType::Native).
    pub dtype: String,
    /// Number of classes when the targets are class ids; `None` for regression targets
    /// or no labels.
    pub num_classes: Option<usize>,
    /// Samples per class (class ids only; `None` where the loader does not count them):
    /// what a `"balanced"` class weighting needs.
    pub class_counts: Option<Vec<usize>>,
}

/// A source of batches: it plans epochs and loads sets, nothing more.
///
/// Implementations keep no position of their own: everything that changes during a run is
/// in the [`LoaderState`] they are handed (theirs to write in `plan_epoch`) or in the
/// trainer's cursor, so the same state and set always give the same batch. That is what
/// makes a resumed run (and skipping or repeating a set by editing the cursor) exact.
/// `examples/custom_loader.rs` implements one from scratch.
pub trait DataLoader: Send {
    /// What the data looks like (sizes the model; shown by `deeptrain data`).
    fn info(&self) -> DataInfo;
    /// Applies settings the loader was built with (batch size, shuffling) to a fresh
    /// state; the trainer calls it once when it is built. Default: keep the trainer's.
    fn configure_state(&self, _state: &mut LoaderState) {}
    /// Plans epoch `epoch` (1-based): returns the names of its sets in the order to fit
    /// them, and records in `state` whatever `load` needs to find them (a shuffled
    /// order, ...), drawing randomness only from `state.rng`.
    fn plan_epoch(&self, epoch: u64, state: &mut LoaderState) -> Result<Vec<String>>;
    /// Loads the batch `set` under the epoch plan in `state`.
    fn load(&self, state: &LoaderState, set: SetRef<'_>, device: &Device) -> Result<Batch>;
}
