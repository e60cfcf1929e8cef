//! Data loading. The trainer sees data only through [`DataLoader`]; the loader's position
//! lives in [`LoaderState`] inside the train state, so a resumed run sees exactly the
//! batches it would have seen.
//!
//! A loader is stateless on purpose: given the same `LoaderState` it returns the same
//! batch, which is what makes resume (and skipping or repeating a set by editing
//! `set_nums_to_process`) exact.

pub mod array;
pub mod auto;
pub mod csv_file;
pub mod idx;
mod in_memory;
pub mod npy;
pub mod preprocess;
pub mod safetensors_file;
pub mod timeseries;
#[cfg(feature = "datasets")]
pub mod vision_dataset;

pub use array::{ArrayData, FormatError};
pub use auto::{AutoData, AutoDataBuilder, FileLoader, LoadedFile};
pub use in_memory::{InMemoryData, Targets};
pub use preprocess::{BatchCtx, Preprocessor};
pub use timeseries::TimeseriesWindows;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::rng::{RngState, RngStream};

/// Position of a loader: which sets remain in this epoch, and its shuffle stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoaderState {
    pub batch_size: usize,
    pub shuffle: bool,
    /// Keep (false) or drop (true) a last batch smaller than `batch_size`.
    pub drop_last: bool,
    /// Epochs planned so far by this loader.
    pub epoch: u64,
    /// Shuffle stream position (seeded from the run seed).
    pub rng: RngState,
    /// Order of this epoch, as the loader defines it (`InMemoryData`: samples, `AutoData`:
    /// sets); empty means the natural order.
    pub order: Vec<u32>,
    /// Sets (batches) still to process this epoch, in order. Edit to skip or repeat one.
    /// The first one stays here until its last window has been fit.
    pub set_nums_to_process: Vec<String>,
    /// Sets processed this epoch, in order.
    pub sets_done: Vec<String>,
    /// Besides the set order, permute the samples within each group (`AutoData`: within
    /// each file, or within the whole file in dataset mode).
    pub shuffle_samples: bool,
    /// Seed of this epoch's within-group sample permutations (drawn from `rng` when the
    /// epoch is planned; 0 when `shuffle_samples` is off).
    pub sample_seed: u64,
    /// Window (iteration) of `set_nums_to_process[0]` to fit next. A set is a single
    /// window unless a time-series preprocessor cuts it into several; 0 between sets.
    pub window: u64,
    /// Metric rows of the windows of the current set fit so far; the trainer averages
    /// them into the set's one history row when its last window is done.
    pub window_rows: Vec<Vec<(String, f64)>>,
    /// Per-epoch state of the loader's preprocessor (what its `on_epoch` hook returned).
    pub preprocessor_state: String,
}

impl LoaderState {
    pub fn new(batch_size: usize, shuffle: bool, drop_last: bool, rng: &RngStream) -> Self {
        Self {
            batch_size,
            shuffle,
            drop_last,
            epoch: 0,
            rng: rng.state(),
            order: Vec::new(),
            set_nums_to_process: Vec::new(),
            sets_done: Vec::new(),
            shuffle_samples: false,
            sample_seed: 0,
            window: 0,
            window_rows: Vec::new(),
            preprocessor_state: String::new(),
        }
    }

    /// Forgets the progress through the current set (a new epoch starts).
    pub fn clear_window(&mut self) {
        self.window = 0;
        self.window_rows.clear();
    }
}

/// One batch ready for the model.
#[derive(Debug, Clone)]
pub struct Batch {
    pub set_name: String,
    /// Inputs, samples on the first axis.
    pub x: Tensor,
    /// Targets: `u32` class indices or `f32` regression targets.
    pub y: Tensor,
    /// Which window (iteration) of its set this is, of `windows`. A set yields one window
    /// unless a time-series preprocessor cuts it; after the last one the trainer resets
    /// the model's carried state and counts the set as fit.
    pub window: usize,
    pub windows: usize,
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
        }
    }

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
    pub format: String,
    pub files: Vec<String>,
    pub num_samples: usize,
    pub sample_shape: Vec<usize>,
    pub dtype: String,
    pub num_classes: Option<usize>,
}

/// A source of batches. Implementations keep no position of their own.
pub trait DataLoader: Send {
    fn info(&self) -> DataInfo;
    /// Applies settings the loader was built with (batch size, shuffling) to a fresh
    /// state; the trainer calls it once when it is built. Default: keep the trainer's.
    fn configure_state(&self, _state: &mut LoaderState) {}
    /// Starts a new epoch: fills `set_nums_to_process` (and `order` when shuffling),
    /// drawing randomness only from `state.rng`.
    fn plan_epoch(&self, state: &mut LoaderState) -> Result<()>;
    /// Loads the set named `set_name` under the epoch plan in `state` (its window
    /// `state.window` when the set is cut into windows).
    fn load(&self, state: &LoaderState, set_name: &str, device: &Device) -> Result<Batch>;
}
