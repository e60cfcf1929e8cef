//! AutoData: the memory-mapped, resumable loader for a directory of data files.
//!
//! ```no_run
//! # use deeptrain::data_loaders::{AutoData, TimeseriesWindows};
//! # fn main() -> deeptrain::Result<()> {
//! let train = AutoData::from_dir("data/train")?   // format, set numbers and labels inferred
//!     .batch_size(128).shuffle(true).preload(false)
//!     .preprocessor(TimeseriesWindows::new(100, 50))   // optional
//!     .build()?;
//! # Ok(()) }
//! ```
//!
//! **Inference.** In a directory, the most common supported format wins (`.npy`,
//! `.safetensors`, `.csv`, MNIST-style idx, or any extension a [`FileLoader`] is
//! registered for). Data files share a base name and differ by a set number
//! (`batch_0.npy`, `batch_1.npy`, …, sorted numerically); that is *files mode*, and the
//! set numbers name the sets. A single data file is *dataset mode*: its first axis is cut
//! into sets of `batch_size` samples named `"0"`, `"1"`, …. Labels come from a labels file
//! (`labels.npy` / `labels.csv` beside the data, or a path given), else from inside the
//! files (safetensors keys `x`/`y`, an idx images file's `…-labels-idx1-…` partner, a CSV
//! label column). Integer labels with one value per sample are class ids; anything else
//! is regression targets. Everything inferred can be overridden on the builder.
//!
//! **Batches.** An epoch concatenates the sets in their (possibly shuffled) order and cuts
//! the stream into batches of `batch_size`, whatever the file sizes: a batch made of whole
//! files is named `"12+13"`, pieces of a file `"12-a"`, `"12-b"`, and a batch that spans
//! a file boundary `"12-c+13-a"`. The last partial batch is kept or dropped
//! (`drop_last`). Each name maps to its sample ranges through the [`LoaderState`] alone
//! (set order, batch size, sample seed), so the trainer pops names and a resumed run sees
//! the very same batches. Batch bytes are read straight from the memory map into the
//! tensor (one copy, no intermediate buffer) unless samples are shuffled within groups,
//! in which case each sample is gathered from the map.
//!
//! **Shuffling.** At each epoch start the set order is shuffled (`shuffle`), and with
//! `shuffle_samples` the samples within each group too (each file; the whole file in
//! dataset mode), all from the loader's ChaCha stream in `LoaderState::rng`.
//!
//! **Where things are.** `builder` (the options and `build`), `infer` (which files, which
//! mode), `formats` (telling and reading each format), `labels` (label sources, classes
//! or values), `plan` (epoch plans and batch names), `view` (zero-copy views, tensors),
//! `report` (what `deeptrain data` prints) and `file_loader` (user-registered formats);
//! this file holds the loader itself and its [`DataLoader`] implementation.

mod builder;
mod file_loader;
mod formats;
mod infer;
mod labels;
mod plan;
mod report;
mod view;

pub use builder::{AutoDataBuilder, InputDType, Preload};
pub use file_loader::{FileLoader, LoadedFile};
pub use infer::{Ignored, Inferred, Mode, SetInfo};
pub use labels::{LabelInfo, LabelMode, LabelSource};
pub use plan::{BatchSpec, Segment};
pub use report::{BatchLine, DataReport};
pub use view::{BatchView, ViewPart};

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use candle_core::{Device, Tensor};

use self::labels::Targets;
use self::plan::{Plan, PlanKey};
use super::array::ArrayData;
use super::preprocess::{BatchCtx, Preprocessor};
use super::{Batch, DataInfo, DataLoader, LoaderState, SetRef};
use crate::error::{Error, Result};
use crate::rng::{RngStream, StreamId};

struct SetFile {
    name: String,
    path: PathBuf,
    data: ArrayData,
}

/// Caches of pure functions of the loader state (never a position).
#[derive(Default)]
struct Cache {
    /// Plan of the last (batch_size, drop_last, order) asked for.
    plan: Option<(PlanKey, Arc<Plan>)>,
    /// Sample permutations of the current sample seed, per file.
    perms: HashMap<(u64, usize), Arc<Vec<u32>>>,
    /// The last set cut into windows, so each window does not reload it.
    windowed: Option<(u64, Tensor, Tensor, usize)>,
}

/// The loader; see the module documentation.
pub struct AutoData {
    inferred: Inferred,
    files: Vec<SetFile>,
    targets: Targets,
    /// Per-sample weights per file, when a weights file was given.
    weights: Option<Vec<Arc<Vec<f32>>>>,
    input_dtype: InputDType,
    batch_size: Option<usize>,
    shuffle: Option<bool>,
    shuffle_samples: Option<bool>,
    drop_last: Option<bool>,
    seed: u64,
    preprocessor: Option<Arc<dyn Preprocessor>>,
    cache: Mutex<Cache>,
}

impl AutoData {
    /// Everything inferred about the data.
    pub fn inferred(&self) -> &Inferred {
        &self.inferred
    }

    /// Number of classes when the labels are class ids (given with
    /// [`AutoDataBuilder::num_classes`], else the largest label + 1); `None` for
    /// regression targets or no labels.
    pub fn num_classes(&self) -> Option<usize> {
        self.inferred.labels.num_classes
    }

    /// Whether batches carry per-sample weights (a weights file was given).
    pub fn has_weights(&self) -> bool {
        self.weights.is_some()
    }

    /// Batch size a standalone state uses when none was set.
    fn default_batch_size(&self) -> usize {
        match self.inferred.mode {
            Mode::Files => self.files[0].data.num_samples(),
            Mode::Dataset => 32,
        }
    }

    /// A loader state for using this loader without a trainer, with the builder's
    /// settings and a shuffle stream seeded by `seed` (the stream a trainer with that
    /// seed uses for its training data).
    pub fn new_state(&self) -> LoaderState {
        let mut s = LoaderState::new(
            self.batch_size.unwrap_or_else(|| self.default_batch_size()),
            self.shuffle.unwrap_or(false),
            self.drop_last.unwrap_or(false),
            &RngStream::new(self.seed, StreamId::TrainShuffle),
        );
        s.shuffle_samples = self.shuffle_samples.unwrap_or(false);
        s
    }

    fn cache_key(state: &LoaderState, set: SetRef<'_>, device: &Device) -> u64 {
        let mut h = DefaultHasher::new();
        (
            set.name,
            set.epoch,
            &state.order,
            state.batch_size,
            state.drop_last,
            state.shuffle_samples,
            state.sample_seed,
            &state.preprocessor_state,
            format!("{:?}", device.location()),
        )
            .hash(&mut h);
        h.finish()
    }
}

impl DataLoader for AutoData {
    fn info(&self) -> DataInfo {
        DataInfo {
            format: self.inferred.format.clone(),
            files: self
                .files
                .iter()
                .map(|f| f.path.display().to_string())
                .collect(),
            num_samples: self.inferred.num_samples,
            sample_shape: self.inferred.sample_shape.clone(),
            dtype: self.inferred.dtype.to_string(),
            num_classes: self.inferred.labels.num_classes,
            class_counts: self.inferred.labels.class_counts.clone(),
        }
    }

    fn configure_state(&self, state: &mut LoaderState) {
        if let Some(n) = self.batch_size {
            state.batch_size = n;
        }
        if let Some(on) = self.shuffle {
            state.shuffle = on;
        }
        if let Some(on) = self.shuffle_samples {
            state.shuffle_samples = on;
        }
        if let Some(on) = self.drop_last {
            state.drop_last = on;
        }
    }

    fn plan_epoch(&self, epoch: u64, state: &mut LoaderState) -> Result<Vec<String>> {
        if state.batch_size == 0 {
            return Err(Error::config("batch_size", "must be at least 1"));
        }
        let units = self.units(state.batch_size).len();
        let mut rng = RngStream::from_state(&state.rng);
        let mut order: Vec<u32> = (0..units as u32).collect();
        if state.shuffle {
            rng.shuffle(&mut order);
        } else {
            order.clear();
        }
        let sample_seed = if state.shuffle_samples {
            rng.next_u64()
        } else {
            0
        };
        let pre_state = match &self.preprocessor {
            Some(p) => p.on_epoch(epoch, &mut rng)?,
            None => String::new(),
        };
        let mut next = state.clone();
        next.order = order;
        next.sample_seed = sample_seed;
        next.rng = rng.state();
        next.preprocessor_state = pre_state;
        let plan = self.plan(&next)?;
        if plan.batches.is_empty() {
            return Err(Error::Data(format!(
                "{}: {} samples make no batch of {} with drop_last on: the epoch would be empty",
                self.inferred.source.display(),
                self.inferred.num_samples,
                state.batch_size
            )));
        }
        let sets = plan.batches.iter().map(|b| b.name.clone()).collect();
        *state = next;
        Ok(sets)
    }

    fn load(&self, state: &LoaderState, set: SetRef<'_>, device: &Device) -> Result<Batch> {
        let (set_name, window) = (set.name, set.window);
        let ctx = |window| BatchCtx {
            epoch: set.epoch,
            set_name,
            window,
            epoch_state: &state.preprocessor_state,
            state,
        };
        let Some(pre) = &self.preprocessor else {
            if window != 0 {
                return Err(Error::Data(format!(
                    "set {set_name}: window {window} asked for, but sets are not cut into windows"
                )));
            }
            let view = self.view(state, set_name)?;
            let (x, y) = self.tensors(&view, device)?;
            let weights = self.weights_tensor(&view, device)?;
            return Ok(Batch::new(set_name, x, y).with_weights(weights));
        };
        let key = Self::cache_key(state, set, device);
        let cached = {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache
                .windowed
                .as_ref()
                .filter(|(k, ..)| *k == key)
                .map(|(_, x, y, n)| (x.clone(), y.clone(), *n))
        };
        let (x, y, windows) = match cached {
            Some(c) => c,
            None => {
                let view = self.view(state, set_name)?;
                let (x, y) = self.tensors(&view, device)?;
                let (x, y) = pre.process(x, y, &ctx(0))?;
                let windows = pre.num_windows(&x, &ctx(0))?;
                if windows > 1 {
                    let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
                    cache.windowed = Some((key, x.clone(), y.clone(), windows));
                }
                (x, y, windows)
            }
        };
        if window >= windows {
            return Err(Error::Data(format!(
                "set {set_name}: window {window} asked for but the set has {windows} windows"
            )));
        }
        let (x, y) = pre.window(&x, &y, &ctx(window))?;
        // Weights are per sample (per sequence): every window of a set takes its set's,
        // as long as the preprocessor keeps the samples.
        let weights = if self.weights.is_some() {
            let w = self.weights_tensor(&self.view(state, set_name)?, device)?;
            let (samples, kept) = (w.as_ref().map_or(0, |w| w.elem_count()), x.dims().first());
            if kept != Some(&samples) {
                return Err(Error::Data(format!(
                    "set {set_name}: preprocessor {} turned {samples} samples into {:?}: \
                     sample weights cannot follow",
                    pre.name(),
                    x.dims()
                )));
            }
            w
        } else {
            None
        };
        Ok(Batch {
            set_name: set_name.to_string(),
            x,
            y,
            window,
            windows,
            weights,
        })
    }
}
