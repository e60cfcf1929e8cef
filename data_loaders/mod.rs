//! Data loading. The trainer sees data only through [`DataLoader`]; the loader's position
//! lives in [`LoaderState`] inside the train state, so a resumed run sees exactly the
//! batches it would have seen.
//!
//! A loader is stateless on purpose: given the same `LoaderState` it returns the same
//! batch, which is what makes resume (and skipping or repeating a set by editing
//! `set_nums_to_process`) exact.

pub mod array;
pub mod csv_file;
pub mod idx;
mod in_memory;
pub mod npy;
pub mod safetensors_file;

pub use array::{ArrayData, FormatError};
pub use in_memory::{InMemoryData, Targets};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::rng::{RngState, RngStream};

/// Position of a loader: which sets remain in this epoch, and its shuffle stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoaderState {
    pub batch_size: usize,
    pub shuffle: bool,
    /// Keep (false) or drop (true) a last batch smaller than `batch_size`.
    pub drop_last: bool,
    /// Epochs planned so far by this loader.
    pub epoch: u64,
    /// Shuffle stream position (seeded from the run seed).
    pub rng: RngState,
    /// Sample order of this epoch; empty means the natural order.
    pub order: Vec<u32>,
    /// Sets (batches) still to process this epoch, in order. Edit to skip or repeat one.
    pub set_nums_to_process: Vec<String>,
    /// Sets processed this epoch, in order.
    pub sets_done: Vec<String>,
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
        }
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
}

impl Batch {
    pub fn size(&self) -> usize {
        self.x.dims().first().copied().unwrap_or(0)
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
    /// Starts a new epoch: fills `set_nums_to_process` (and `order` when shuffling),
    /// drawing randomness only from `state.rng`.
    fn plan_epoch(&self, state: &mut LoaderState) -> Result<()>;
    /// Loads the set named `set_name` under the epoch plan in `state`.
    fn load(&self, state: &LoaderState, set_name: &str, device: &Device) -> Result<Batch>;
}
