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

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::{Device, Tensor};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::array::{extend_f32, fmt_shape, ArrayData, Bytes, DType, FormatError};
use super::csv_file::{read_csv, CsvOptions, LabelColumn};
use super::idx::read_idx;
use super::npy::read_npy;
use super::preprocess::{BatchCtx, Preprocessor};
use super::safetensors_file::read_safetensors;
use super::{Batch, DataInfo, DataLoader, LoaderState};
use crate::error::{Error, Result};
use crate::rng::{RngStream, StreamId};

/// What a [`FileLoader`] returns: a data array (samples first) and, optionally, labels.
#[derive(Debug, Clone)]
pub struct LoadedFile {
    pub data: ArrayData,
    pub labels: Option<ArrayData>,
}

/// Reads files of an extension AutoData does not know. Any
/// `Fn(&Path) -> Result<LoadedFile>` closure is one.
pub trait FileLoader: Send + Sync {
    fn load(&self, path: &Path) -> Result<LoadedFile>;
}

impl<F> FileLoader for F
where
    F: Fn(&Path) -> Result<LoadedFile> + Send + Sync,
{
    fn load(&self, path: &Path) -> Result<LoadedFile> {
        self(path)
    }
}

/// Where labels come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelSource {
    /// A labels file beside the data, else labels inside the data files, else none.
    Auto,
    /// No labels: `y` is `x` (autoencoding).
    None,
    /// One labels file covering every sample, in set order.
    Path(PathBuf),
}

/// How labels are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelMode {
    /// Integer labels with one value per sample are class ids, anything else values.
    Auto,
    /// Class ids (floats holding exact integers accepted); `None`: max + 1 classes.
    Classes(Option<usize>),
    /// Regression targets, as f32 with the labels' per-sample shape.
    Values,
}

/// Element type of the inputs `x` of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InputDType {
    /// Converted to f32 while copying out of the map (default).
    F32,
    /// The file's own type, copied byte for byte (u8 images stay u8).
    Native,
}

/// Which sets to keep in RAM instead of reading them from the map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Preload {
    None,
    All,
    /// These set names (files mode).
    Sets(Vec<String>),
}

/// Files mode (one set per numbered file) or dataset mode (one file cut into sets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Files,
    Dataset,
}

/// One data file as inferred.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetInfo {
    /// Set name: the file's set number (files mode) or its file name (dataset mode).
    pub name: String,
    pub file: PathBuf,
    pub samples: usize,
}

/// A file of the directory that is not used, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ignored {
    pub file: PathBuf,
    pub reason: String,
}

/// What was inferred about the labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabelInfo {
    /// `"labels.npy"`, `"in file (safetensors key y)"`, `"none"`, ...
    pub source: String,
    /// `"classes"`, `"values"` or `"none"`.
    pub kind: String,
    pub dtype: Option<DType>,
    /// Shape of one sample's label (`[]` for a class id).
    pub shape: Vec<usize>,
    pub num_classes: Option<usize>,
    /// Samples per class.
    pub class_counts: Option<Vec<usize>>,
}

/// Everything AutoData inferred; printed by `deeptrain data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inferred {
    pub source: PathBuf,
    pub format: String,
    pub mode: Mode,
    /// Base name the set files share (files mode), e.g. `"batch_"`.
    pub base_name: String,
    pub sets: Vec<SetInfo>,
    pub ignored: Vec<Ignored>,
    pub num_samples: usize,
    pub sample_shape: Vec<usize>,
    pub dtype: DType,
    pub labels: LabelInfo,
    /// Sets held in RAM.
    pub preloaded: Vec<String>,
    pub preprocessor: Option<String>,
}

/// A run of consecutive samples of one file, in the epoch's order of that file's
/// samples (permuted when `shuffle_samples` is on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Segment {
    /// Index into `Inferred::sets`.
    pub file: usize,
    pub start: usize,
    pub end: usize,
}

/// One batch of an epoch plan: its set name and where its samples come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchSpec {
    pub name: String,
    pub segments: Vec<Segment>,
}

impl BatchSpec {
    pub fn size(&self) -> usize {
        self.segments.iter().map(|s| s.end - s.start).sum()
    }
}

/// Configures and builds an [`AutoData`]; nothing is read before [`build`](Self::build).
pub struct AutoDataBuilder {
    source: PathBuf,
    single_file: bool,
    format: Option<String>,
    base_name: Option<String>,
    set_nums: Option<Vec<u64>>,
    file: Option<String>,
    labels: LabelSource,
    label_mode: LabelMode,
    data_key: String,
    label_key: String,
    csv: CsvOptions,
    input_dtype: InputDType,
    batch_size: Option<usize>,
    shuffle: Option<bool>,
    shuffle_samples: Option<bool>,
    drop_last: Option<bool>,
    seed: u64,
    preload: Preload,
    preprocessor: Option<Arc<dyn Preprocessor>>,
    loaders: BTreeMap<String, Arc<dyn FileLoader>>,
    cache_dir: Option<PathBuf>,
}

/// Formats AutoData reads itself, in the order that breaks ties between equal counts.
const BUILTIN_FORMATS: [&str; 4] = ["npy", "safetensors", "idx", "csv"];

impl AutoData {
    /// Infers everything from a directory of data files.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<AutoDataBuilder> {
        let dir = dir.as_ref();
        let meta = std::fs::metadata(dir).map_err(|e| Error::io(dir, e))?;
        if !meta.is_dir() {
            return Err(Error::Data(format!(
                "{}: not a directory (use AutoData::from_file for one file)",
                dir.display()
            )));
        }
        Ok(AutoDataBuilder::new(dir.to_path_buf(), false))
    }

    /// One file in dataset mode; labels are looked for beside it.
    pub fn from_file(path: impl AsRef<Path>) -> Result<AutoDataBuilder> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if !meta.is_file() {
            return Err(Error::Data(format!("{}: not a file", path.display())));
        }
        Ok(AutoDataBuilder::new(path.to_path_buf(), true))
    }
}

impl AutoDataBuilder {
    fn new(source: PathBuf, single_file: bool) -> Self {
        Self {
            source,
            single_file,
            format: None,
            base_name: None,
            set_nums: None,
            file: None,
            labels: LabelSource::Auto,
            label_mode: LabelMode::Auto,
            data_key: "x".into(),
            label_key: "y".into(),
            csv: CsvOptions::default(),
            input_dtype: InputDType::F32,
            batch_size: None,
            shuffle: None,
            shuffle_samples: None,
            drop_last: None,
            seed: 0,
            preload: Preload::None,
            preprocessor: None,
            loaders: BTreeMap::new(),
            cache_dir: None,
        }
    }

    /// Samples per batch. Unset: the trainer's batch size (standalone: the first file's
    /// sample count in files mode, 32 in dataset mode).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = Some(n);
        self
    }
    /// Shuffle the set order at every epoch start.
    pub fn shuffle(mut self, on: bool) -> Self {
        self.shuffle = Some(on);
        self
    }
    /// Also shuffle samples within each file (the whole file in dataset mode). Batches
    /// are then gathered sample by sample instead of copied in one piece.
    pub fn shuffle_samples(mut self, on: bool) -> Self {
        self.shuffle_samples = Some(on);
        self
    }
    /// Drop (true) or keep (false) the last batch when it is smaller than the batch size.
    pub fn drop_last(mut self, on: bool) -> Self {
        self.drop_last = Some(on);
        self
    }
    /// Seed of the shuffle stream of a standalone state ([`AutoData::new_state`]); under
    /// a trainer, the run's seed is used.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Keep every set in RAM (true) or read from the memory map (false, default).
    pub fn preload(mut self, all: bool) -> Self {
        self.preload = if all { Preload::All } else { Preload::None };
        self
    }
    /// Keep the listed sets (files mode set names) in RAM.
    pub fn preload_sets<S: Into<String>>(mut self, sets: impl IntoIterator<Item = S>) -> Self {
        self.preload = Preload::Sets(sets.into_iter().map(Into::into).collect());
        self
    }
    pub fn preprocessor(mut self, p: impl Preprocessor + 'static) -> Self {
        self.preprocessor = Some(Arc::new(p));
        self
    }
    /// Reads files ending in `.{ext}` with `loader` (takes precedence over built-ins).
    pub fn loader(mut self, ext: &str, loader: impl FileLoader + 'static) -> Self {
        self.loaders.insert(
            ext.trim_start_matches('.').to_ascii_lowercase(),
            Arc::new(loader),
        );
        self
    }
    /// Format to use (`npy`, `safetensors`, `csv`, `idx` or a registered extension).
    pub fn format(mut self, format: &str) -> Self {
        self.format = Some(format.trim_start_matches('.').to_ascii_lowercase());
        self
    }
    /// Base name the set files share, e.g. `"batch_"` for `batch_0.npy`, ….
    pub fn base_name(mut self, base: &str) -> Self {
        self.base_name = Some(base.into());
        self
    }
    /// Use only these set numbers (files mode).
    pub fn set_nums(mut self, nums: impl IntoIterator<Item = u64>) -> Self {
        self.set_nums = Some(nums.into_iter().collect());
        self
    }
    /// Use this one file of the directory, in dataset mode.
    pub fn file(mut self, name: &str) -> Self {
        self.file = Some(name.into());
        self
    }
    /// Labels from this file (one label per sample of all sets, in set order; or shaped
    /// `(n_sets, samples_per_set, ...)`).
    pub fn labels(mut self, path: impl AsRef<Path>) -> Self {
        self.labels = LabelSource::Path(path.as_ref().to_path_buf());
        self
    }
    /// No labels: `y` is `x`.
    pub fn no_labels(mut self) -> Self {
        self.labels = LabelSource::None;
        self
    }
    /// Class ids with this many classes.
    pub fn num_classes(mut self, n: usize) -> Self {
        self.label_mode = LabelMode::Classes(Some(n));
        self
    }
    pub fn label_mode(mut self, mode: LabelMode) -> Self {
        self.label_mode = mode;
        self
    }
    /// Labels are regression targets.
    pub fn regression(mut self) -> Self {
        self.label_mode = LabelMode::Values;
        self
    }
    /// Safetensors key of the data (default `x`).
    pub fn data_key(mut self, key: &str) -> Self {
        self.data_key = key.into();
        self
    }
    /// Safetensors key of the labels (default `y`).
    pub fn label_key(mut self, key: &str) -> Self {
        self.label_key = key.into();
        self
    }
    /// CSV header, delimiter and label column.
    pub fn csv_options(mut self, opts: CsvOptions) -> Self {
        self.csv = opts;
        self
    }
    /// CSV label column (default: the last one).
    pub fn label_column(mut self, column: LabelColumn) -> Self {
        self.csv.label_column = column;
        self
    }
    pub fn input_dtype(mut self, dtype: InputDType) -> Self {
        self.input_dtype = dtype;
        self
    }
    /// Where decompressed `.gz` idx files are cached (default: a directory per data
    /// directory under the system temp dir).
    pub fn cache_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cache_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Reads every header (memory-mapping the data), checks every file against the others
    /// and against the labels, and returns the loader. Nothing is read lazily that could
    /// fail later in a way the user could have been told about now.
    pub fn build(self) -> Result<AutoData> {
        let dir = if self.single_file {
            self.source
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default()
        } else {
            self.source.clone()
        };
        let listing = list_dir(&dir)?;
        let choice = self.choose_files(&dir, &listing)?;
        let cache_dir = self
            .cache_dir
            .clone()
            .unwrap_or_else(|| default_cache_dir(&dir));

        // Labels file beside the data (or given) takes precedence over in-file labels.
        let labels_file = match &self.labels {
            LabelSource::Path(p) => Some(p.clone()),
            LabelSource::None => None,
            LabelSource::Auto => ["labels.npy", "labels.csv", "labels.csv.gz"]
                .iter()
                .map(|n| dir.join(n))
                .find(|p| p.is_file()),
        };
        let in_file_labels = self.labels == LabelSource::Auto && labels_file.is_none();

        let mut loaded = Vec::with_capacity(choice.files.len());
        for (name, path) in &choice.files {
            let file =
                self.load_file(&choice.format, path, in_file_labels, &listing, &cache_dir)?;
            if file.data.num_samples() == 0 {
                return Err(FormatError::Invalid {
                    path: path.clone(),
                    reason: format!("shape {} holds no samples", fmt_shape(&file.data.shape)),
                }
                .into());
            }
            loaded.push((name.clone(), path.clone(), file));
        }
        check_consistent(&loaded)?;

        // Per-file labels, from the labels file or from inside the files.
        let (label_arrays, label_source) = match &labels_file {
            Some(path) => {
                let all = self.read_labels_file(path, &cache_dir)?;
                let arrays = if choice.family.is_empty() {
                    split_labels(&all, &loaded)?
                } else {
                    // Only some set numbers are used: split over the whole family.
                    let mut family = Vec::with_capacity(choice.family.len());
                    for (name, p) in &choice.family {
                        let file = match loaded.iter().find(|(n, _, _)| n == name) {
                            Some((_, _, f)) => f.clone(),
                            None => {
                                self.load_file(&choice.format, p, false, &listing, &cache_dir)?
                            }
                        };
                        family.push((name.clone(), p.clone(), file));
                    }
                    let per_file = split_labels(&all, &family)?;
                    loaded
                        .iter()
                        .filter_map(|(n, _, _)| {
                            let i = family.iter().position(|(m, _, _)| m == n)?;
                            Some(per_file[i].clone())
                        })
                        .collect()
                };
                (arrays, file_name(path))
            }
            None if in_file_labels && loaded.iter().all(|(_, _, f)| f.labels.is_some()) => {
                let partners: Vec<String> = loaded
                    .iter()
                    .filter_map(|(_, _, f)| f.labels.as_ref())
                    .map(|l| file_name(&l.path))
                    .collect();
                let source = match choice.format.as_str() {
                    "safetensors" => format!("in file (safetensors key {:?})", self.label_key),
                    "idx" => format!("paired idx file {}", partners.join(", ")),
                    "csv" => format!("in file (CSV column {:?})", self.csv.label_column),
                    other => format!("in file ({other} loader)"),
                };
                let arrays = loaded
                    .iter()
                    .map(|(_, _, f)| f.labels.clone())
                    .collect::<Option<Vec<_>>>()
                    .unwrap_or_default();
                (arrays, source)
            }
            None => {
                if let Some((_, path, _)) = loaded.iter().find(|(_, _, f)| f.labels.is_some()) {
                    if loaded.iter().any(|(_, _, f)| f.labels.is_none()) {
                        let without: Vec<String> = loaded
                            .iter()
                            .filter(|(_, _, f)| f.labels.is_none())
                            .map(|(_, p, _)| file_name(p))
                            .collect();
                        return Err(Error::Data(format!(
                            "{} has labels but {} do not: give a labels file or use no_labels()",
                            path.display(),
                            without.join(", ")
                        )));
                    }
                }
                (Vec::new(), "none".to_string())
            }
        };
        for ((_, path, file), labels) in loaded.iter().zip(&label_arrays) {
            if labels.num_samples() != file.data.num_samples() {
                return Err(Error::Data(format!(
                    "{} has {} labels but {} has {} samples",
                    labels.path.display(),
                    labels.num_samples(),
                    path.display(),
                    file.data.num_samples()
                )));
            }
        }
        let (targets, label_info) = make_targets(&label_arrays, self.label_mode, label_source)?;

        // Preloading: copy the chosen sets out of the map into RAM.
        let preload_names: Vec<String> = match &self.preload {
            Preload::None => Vec::new(),
            Preload::All => loaded.iter().map(|(n, _, _)| n.clone()).collect(),
            Preload::Sets(names) => {
                for n in names {
                    if !loaded.iter().any(|(name, _, _)| name == n) {
                        let known: Vec<&str> = loaded.iter().map(|(n, _, _)| n.as_str()).collect();
                        return Err(Error::config(
                            "preload",
                            format!("no set named {n:?} (sets: {})", known.join(", ")),
                        ));
                    }
                }
                names.clone()
            }
        };
        let mut targets = targets;
        let mut files = Vec::with_capacity(loaded.len());
        for (i, (name, path, file)) in loaded.into_iter().enumerate() {
            let keep = preload_names.contains(&name);
            let data = if keep { to_ram(&file.data) } else { file.data };
            if keep {
                if let Targets::Values(v) = &mut targets {
                    v[i] = to_ram(&v[i]);
                }
            }
            files.push(SetFile { name, path, data });
        }

        let first = &files[0].data;
        let inferred = Inferred {
            source: self.source.clone(),
            format: choice.format.clone(),
            mode: choice.mode,
            base_name: choice.base_name.clone(),
            sets: files
                .iter()
                .map(|f| SetInfo {
                    name: f.name.clone(),
                    file: f.path.clone(),
                    samples: f.data.num_samples(),
                })
                .collect(),
            // Files read as labels are used, not ignored.
            ignored: choice
                .ignored
                .iter()
                .filter(|i| {
                    !label_arrays.iter().any(|l| l.path == i.file)
                        && labels_file.as_ref() != Some(&i.file)
                })
                .cloned()
                .collect(),
            num_samples: files.iter().map(|f| f.data.num_samples()).sum(),
            sample_shape: first.sample_shape().to_vec(),
            dtype: first.dtype,
            labels: label_info,
            preloaded: preload_names,
            preprocessor: self.preprocessor.as_ref().map(|p| p.name()),
        };
        Ok(AutoData {
            inferred,
            files,
            targets,
            input_dtype: self.input_dtype,
            batch_size: self.batch_size,
            shuffle: self.shuffle,
            shuffle_samples: self.shuffle_samples,
            drop_last: self.drop_last,
            seed: self.seed,
            preprocessor: self.preprocessor,
            cache: Mutex::new(Cache::default()),
        })
    }

    /// Format of a file name: a registered loader's extension, a built-in format, or None.
    fn detect(&self, name: &str) -> Option<(String, String)> {
        let lower = name.to_ascii_lowercase();
        // Registered extensions first, longest match wins (`tar.gz` before `gz`).
        let mut custom: Vec<&String> = self.loaders.keys().collect();
        custom.sort_by_key(|e| std::cmp::Reverse(e.len()));
        for ext in custom {
            let suffix = format!(".{ext}");
            if lower.ends_with(&suffix) && lower.len() > suffix.len() {
                return Some((ext.clone(), name[..name.len() - suffix.len()].to_string()));
            }
        }
        let strip_gz = lower.strip_suffix(".gz").unwrap_or(&lower);
        if idx_marker(strip_gz).is_some() && strip_gz.ends_with("-ubyte") {
            return Some(("idx".into(), name[..strip_gz.len()].to_string()));
        }
        for (ext, fmt) in [
            (".npy", "npy"),
            (".safetensors", "safetensors"),
            (".csv", "csv"),
            (".csv.gz", "csv"),
        ] {
            if lower.ends_with(ext) && lower.len() > ext.len() {
                return Some((fmt.into(), name[..name.len() - ext.len()].to_string()));
            }
        }
        None
    }

    fn is_known_format(&self, format: &str) -> bool {
        BUILTIN_FORMATS.contains(&format) || self.loaders.contains_key(format)
    }

    /// Picks the format, the mode and the data files (with their set names).
    fn choose_files(&self, dir: &Path, listing: &[String]) -> Result<Choice> {
        if let Some(f) = &self.format {
            if !self.is_known_format(f) {
                return Err(Error::config(
                    "format",
                    format!(
                        "{f:?} is not a supported format ({}) and no loader is registered for it",
                        BUILTIN_FORMATS.join(", ")
                    ),
                ));
            }
        }
        let explicit = if self.single_file {
            Some(self.source.clone())
        } else {
            self.file.as_ref().map(|f| {
                let p = Path::new(f);
                if p.is_absolute() || p.exists() && !dir.join(p).exists() {
                    p.to_path_buf()
                } else {
                    dir.join(p)
                }
            })
        };
        if let Some(path) = explicit {
            let name = file_name(&path);
            let format = match (&self.format, self.detect(&name)) {
                (Some(f), _) => f.clone(),
                (None, Some((f, _))) => f,
                (None, None) => return Err(unknown_extension(&path, &name)),
            };
            if !path.is_file() {
                return Err(Error::Data(format!("{}: no such file", path.display())));
            }
            let ignored = listing
                .iter()
                .filter(|n| **n != name)
                .map(|n| Ignored {
                    file: dir.join(n),
                    reason: "not the chosen data file".into(),
                })
                .collect();
            return Ok(Choice {
                format,
                mode: Mode::Dataset,
                base_name: String::new(),
                files: vec![(name, path)],
                family: Vec::new(),
                ignored,
            });
        }

        if listing.is_empty() {
            return Err(Error::Data(format!(
                "{}: the directory is empty; expected data files (.npy, .safetensors, .csv, idx)",
                dir.display()
            )));
        }
        // Candidates: files of a known format that are not label files.
        let mut by_format: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        let mut unknown: Vec<&String> = Vec::new();
        let mut ignored = Vec::new();
        let labels_path = match &self.labels {
            LabelSource::Path(p) => std::fs::canonicalize(p).ok(),
            _ => None,
        };
        for name in listing {
            if labels_path.is_some() && std::fs::canonicalize(dir.join(name)).ok() == labels_path {
                continue;
            }
            match self.detect(name) {
                Some((format, stem)) => {
                    let lower = stem.to_ascii_lowercase();
                    if lower.starts_with("labels") || (format == "idx" && lower.contains("labels"))
                    {
                        continue;
                    }
                    by_format
                        .entry(format)
                        .or_default()
                        .push((name.clone(), stem));
                }
                None => unknown.push(name),
            }
        }
        let format = match &self.format {
            Some(f) => f.clone(),
            None => {
                // Most files wins; ties go to registered loaders, then the built-in order.
                let rank = |f: &str| -> usize {
                    if self.loaders.contains_key(f) {
                        0
                    } else {
                        1 + BUILTIN_FORMATS.iter().position(|b| *b == f).unwrap_or(9)
                    }
                };
                match by_format
                    .iter()
                    .max_by(|a, b| a.1.len().cmp(&b.1.len()).then(rank(b.0).cmp(&rank(a.0))))
                {
                    Some((f, _)) => f.clone(),
                    None => {
                        let mut exts: BTreeMap<String, usize> = BTreeMap::new();
                        for n in &unknown {
                            *exts.entry(extension_of(n)).or_default() += 1;
                        }
                        let exts: Vec<String> =
                            exts.iter().map(|(e, c)| format!("{c} x {e}")).collect();
                        return Err(Error::Data(format!(
                            "{}: no data files of a supported format (.npy, .safetensors, .csv, idx) and no loader registered for the extensions found ({}); register one with AutoDataBuilder::loader",
                            dir.display(),
                            exts.join(", ")
                        )));
                    }
                }
            }
        };
        let candidates = by_format.remove(&format).unwrap_or_default();
        for (other, files) in &by_format {
            for (name, _) in files {
                ignored.push(Ignored {
                    file: dir.join(name),
                    reason: format!("{other} file; {format} is the most common format"),
                });
            }
        }
        for name in unknown {
            ignored.push(Ignored {
                file: dir.join(name),
                reason: format!("no loader for {}", extension_of(name)),
            });
        }
        if candidates.is_empty() {
            return Err(Error::Data(format!(
                "{}: no {format} data files",
                dir.display()
            )));
        }

        // Families: files sharing a base name, with a set number.
        let mut families: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
        for (name, stem) in &candidates {
            if let (base, Some(num)) = split_number(stem) {
                families
                    .entry(base.to_string())
                    .or_default()
                    .push((num, name.clone()));
            }
        }
        let family = match &self.base_name {
            Some(base) => Some(base.clone()),
            None => families
                .iter()
                .max_by(|a, b| a.1.len().cmp(&b.1.len()).then(b.0.cmp(a.0)))
                .filter(|(_, f)| f.len() >= 2 || candidates.len() == 1 && self.set_nums.is_some())
                .map(|(b, _)| b.clone()),
        };
        if let Some(base) = family {
            let mut members = families.remove(&base).ok_or_else(|| {
                Error::Data(format!(
                    "{}: no {format} files named {base:?} followed by a set number",
                    dir.display()
                ))
            })?;
            members.sort();
            for pair in members.windows(2) {
                if pair[0].0 == pair[1].0 {
                    return Err(Error::Data(format!(
                        "{}: {} and {} both have set number {}",
                        dir.display(),
                        pair[0].1,
                        pair[1].1,
                        pair[0].0
                    )));
                }
            }
            if let Some(wanted) = &self.set_nums {
                for n in wanted {
                    if !members.iter().any(|(m, _)| m == n) {
                        let have: Vec<String> =
                            members.iter().map(|(m, _)| m.to_string()).collect();
                        return Err(Error::Data(format!(
                            "{}: no set number {n} among {base}* files (have {})",
                            dir.display(),
                            have.join(", ")
                        )));
                    }
                }
            }
            let mut files = Vec::new();
            let family = if self.set_nums.is_some() {
                members
                    .iter()
                    .map(|(num, name)| (num.to_string(), dir.join(name)))
                    .collect()
            } else {
                Vec::new()
            };
            for (num, name) in &members {
                let keep = self.set_nums.as_ref().is_none_or(|w| w.contains(num));
                if keep {
                    files.push((num.to_string(), dir.join(name)));
                } else {
                    ignored.push(Ignored {
                        file: dir.join(name),
                        reason: "set number not selected".into(),
                    });
                }
            }
            for (name, _) in &candidates {
                if !members.iter().any(|(_, m)| m == name) {
                    ignored.push(Ignored {
                        file: dir.join(name),
                        reason: format!("does not share the base name {base:?}"),
                    });
                }
            }
            ignored.sort_by(|a, b| a.file.cmp(&b.file));
            return Ok(Choice {
                format,
                mode: Mode::Files,
                base_name: base,
                files,
                family,
                ignored,
            });
        }
        // Dataset mode: one data file (or the one named like a training split).
        let pick = if candidates.len() == 1 {
            Some(candidates[0].0.clone())
        } else {
            let train: Vec<&(String, String)> = candidates
                .iter()
                .filter(|(n, _)| n.to_ascii_lowercase().contains("train"))
                .collect();
            (train.len() == 1).then(|| train[0].0.clone())
        };
        let Some(pick) = pick else {
            let names: Vec<&str> = candidates.iter().map(|(n, _)| n.as_str()).collect();
            return Err(Error::Data(format!(
                "{}: cannot tell which {format} file holds the data: {} share no base name with set numbers; choose one with .file(NAME) (deeptrain data --file NAME)",
                dir.display(),
                names.join(", ")
            )));
        };
        for (name, _) in &candidates {
            if *name != pick {
                ignored.push(Ignored {
                    file: dir.join(name),
                    reason: "another data file; choose it with .file / --file".into(),
                });
            }
        }
        ignored.sort_by(|a, b| a.file.cmp(&b.file));
        Ok(Choice {
            format,
            mode: Mode::Dataset,
            base_name: String::new(),
            files: vec![(pick.clone(), dir.join(&pick))],
            family: Vec::new(),
            ignored,
        })
    }

    fn load_file(
        &self,
        format: &str,
        path: &Path,
        in_file_labels: bool,
        listing: &[String],
        cache_dir: &Path,
    ) -> Result<LoadedFile> {
        if let Some(loader) = self.loaders.get(format) {
            let mut f = loader.load(path)?;
            if !in_file_labels {
                f.labels = None;
            }
            return Ok(f);
        }
        match format {
            "npy" => Ok(LoadedFile {
                data: read_npy(path)?,
                labels: None,
            }),
            "safetensors" => {
                let mut tensors = read_safetensors(path)?;
                let data = match tensors.remove(&self.data_key) {
                    Some(d) => d,
                    None if tensors.len() == 1 => tensors
                        .pop_first()
                        .map(|(_, t)| t)
                        .ok_or_else(|| Error::Data(format!("{}: no tensors", path.display())))?,
                    None => {
                        let keys: Vec<&String> = tensors.keys().collect();
                        return Err(Error::Data(format!(
                            "{}: no data tensor {:?} (tensors: {keys:?}); set data_key",
                            path.display(),
                            self.data_key
                        )));
                    }
                };
                let labels = if in_file_labels {
                    tensors.remove(&self.label_key)
                } else {
                    None
                };
                Ok(LoadedFile { data, labels })
            }
            "csv" => {
                let mut opts = self.csv.clone();
                if !in_file_labels {
                    opts.label_column = LabelColumn::None;
                }
                let (data, labels) = read_csv(path, opts)?;
                Ok(LoadedFile { data, labels })
            }
            "idx" => {
                let data = read_idx(path, cache_dir)?;
                let labels = if in_file_labels {
                    match idx_label_partner(&file_name(path), listing) {
                        Some(partner) => {
                            let p = path.with_file_name(partner);
                            Some(read_idx(&p, cache_dir)?)
                        }
                        None => None,
                    }
                } else {
                    None
                };
                Ok(LoadedFile { data, labels })
            }
            other => Err(unknown_extension(path, other)),
        }
    }

    fn read_labels_file(&self, path: &Path, cache_dir: &Path) -> Result<ArrayData> {
        let name = file_name(path);
        let format = self
            .detect(&name)
            .map(|(f, _)| f)
            .ok_or_else(|| unknown_extension(path, &name))?;
        if let Some(loader) = self.loaders.get(&format) {
            let f = loader.load(path)?;
            return Ok(f.labels.unwrap_or(f.data));
        }
        Ok(match format.as_str() {
            "npy" => read_npy(path)?,
            "idx" => read_idx(path, cache_dir)?,
            "csv" => {
                let opts = CsvOptions {
                    label_column: LabelColumn::None,
                    ..self.csv.clone()
                };
                integer_column(read_csv(path, opts)?.0)
            }
            "safetensors" => {
                let mut t = read_safetensors(path)?;
                match t.remove(&self.label_key) {
                    Some(a) => a,
                    None if t.len() == 1 => t
                        .pop_first()
                        .map(|(_, a)| a)
                        .ok_or_else(|| Error::Data(format!("{}: no tensors", path.display())))?,
                    None => {
                        return Err(Error::Data(format!(
                            "{}: no labels tensor {:?}",
                            path.display(),
                            self.label_key
                        )))
                    }
                }
            }
            other => return Err(unknown_extension(path, other)),
        })
    }
}

struct Choice {
    format: String,
    mode: Mode,
    base_name: String,
    /// (set name, path) in set order.
    files: Vec<(String, PathBuf)>,
    /// Every file of the family when only some set numbers are used: a labels file
    /// covers all of them, so label offsets count the unused ones too.
    family: Vec<(String, PathBuf)>,
    ignored: Vec<Ignored>,
}

/// File names (not directories, not hidden) of a directory, sorted.
fn list_dir(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') {
            continue;
        }
        if entry.path().is_file() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| path.display().to_string())
}

fn extension_of(name: &str) -> String {
    match name.rsplit_once('.') {
        Some((_, ext)) if !ext.is_empty() => format!(".{ext}"),
        _ => "(no extension)".into(),
    }
}

fn unknown_extension(path: &Path, name: &str) -> Error {
    Error::Data(format!(
        "{}: no loader for {} files (built in: .npy, .safetensors, .csv, idx); register one with AutoDataBuilder::loader",
        path.display(),
        extension_of(name)
    ))
}

/// `"batch_12"` -> (`"batch_"`, Some(12)); no trailing digits -> (stem, None).
fn split_number(stem: &str) -> (&str, Option<u64>) {
    let digits = stem.len() - stem.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 {
        return (stem, None);
    }
    let (base, num) = stem.split_at(stem.len() - digits);
    match num.parse() {
        Ok(n) => (base, Some(n)),
        Err(_) => (stem, None),
    }
}

/// Where `-idxN` (or `.idxN`, as some mirrors name it) is in a lowercase idx file name:
/// (index of the separator, index after the digits).
fn idx_marker(lower: &str) -> Option<(usize, usize)> {
    lower.match_indices("idx").find_map(|(at, _)| {
        let sep = at.checked_sub(1)?;
        if !matches!(lower.as_bytes()[sep], b'-' | b'.') {
            return None;
        }
        let digits = lower[at + 3..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        (digits > 0).then_some((sep, at + 3 + digits))
    })
}

/// `train-images-idx3-ubyte.gz` -> `train-labels-idx1-ubyte.gz` if present.
fn idx_label_partner(name: &str, listing: &[String]) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    let (sep, digit_end) = idx_marker(&lower)?;
    let prefix = lower[..sep].replace("images", "labels");
    let want = format!(
        "{prefix}{}idx1{}",
        &lower[sep..sep + 1],
        &lower[digit_end..]
    );
    let want_plain = want.strip_suffix(".gz").unwrap_or(&want).to_string();
    listing
        .iter()
        .find(|n| {
            let l = n.to_ascii_lowercase();
            l != lower && (l == want || l == want_plain || l == format!("{want_plain}.gz"))
        })
        .cloned()
}

/// `TMP/deeptrain-cache/<hash of the directory>`, so equal file names from different
/// directories (MNIST and Fashion-MNIST) never share a cache entry.
fn default_cache_dir(dir: &Path) -> PathBuf {
    let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let digest = Sha256::digest(canonical.to_string_lossy().as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    std::env::temp_dir().join("deeptrain-cache").join(hex)
}

/// Every file must hold samples of one shape and dtype.
fn check_consistent(files: &[(String, PathBuf, LoadedFile)]) -> Result<()> {
    let Some((_, first_path, first)) = files.first() else {
        return Err(Error::Data("no data files".into()));
    };
    for (_, path, f) in &files[1..] {
        if f.data.sample_shape() != first.data.sample_shape() {
            return Err(Error::Data(format!(
                "{}: samples have shape {} but {} has samples of shape {} (file shapes {} and {}); all sets must share one sample shape",
                path.display(),
                fmt_shape(f.data.sample_shape()),
                first_path.display(),
                fmt_shape(first.data.sample_shape()),
                fmt_shape(&f.data.shape),
                fmt_shape(&first.data.shape),
            )));
        }
        if f.data.dtype != first.data.dtype {
            return Err(Error::Data(format!(
                "{}: dtype {} but {} has dtype {}; all sets must share one dtype",
                path.display(),
                f.data.dtype,
                first_path.display(),
                first.data.dtype
            )));
        }
    }
    Ok(())
}

/// Cuts one labels array (all samples in set order) into one array per file.
fn split_labels(
    all: &ArrayData,
    files: &[(String, PathBuf, LoadedFile)],
) -> Result<Vec<ArrayData>> {
    let counts: Vec<usize> = files.iter().map(|(_, _, f)| f.data.num_samples()).collect();
    let total: usize = counts.iter().sum();
    let mut all = all.clone();
    if all.num_samples() != total {
        // `(n_sets, samples_per_set, ...)`, as DeepTrain saves labels of equal-size sets.
        let per = counts[0];
        let reshaped = all.shape.len() >= 2
            && all.shape[0] == files.len()
            && all.shape[1] == per
            && counts.iter().all(|c| *c == per);
        if !reshaped {
            let per_file: Vec<String> = files
                .iter()
                .map(|(_, p, f)| format!("{} {}", file_name(p), f.data.num_samples()))
                .collect();
            return Err(Error::Data(format!(
                "{}: {} labels (shape {}) but the {} data files hold {} samples ({})",
                all.path.display(),
                all.num_samples(),
                fmt_shape(&all.shape),
                files.len(),
                total,
                per_file.join(", ")
            )));
        }
        let mut shape = vec![total];
        shape.extend_from_slice(&all.shape[2..]);
        all = ArrayData::new(all.path.clone(), all.dtype, shape, all.bytes.clone())?;
    }
    let mut out = Vec::with_capacity(files.len());
    let mut at = 0;
    for c in counts {
        out.push(slice_samples(&all, at, at + c)?);
        at += c;
    }
    Ok(out)
}

/// Samples `start..end` of an array, sharing the map when there is one.
fn slice_samples(a: &ArrayData, start: usize, end: usize) -> Result<ArrayData, FormatError> {
    let sb = a.sample_bytes();
    let mut shape = a.shape.clone();
    shape[0] = end - start;
    let bytes = match &a.bytes {
        Bytes::Mapped { map, offset, .. } => Bytes::Mapped {
            map: Arc::clone(map),
            offset: offset + start * sb,
            len: (end - start) * sb,
        },
        Bytes::Owned(_) => Bytes::Owned(Arc::new(a.samples_raw(start, end).to_vec())),
    };
    ArrayData::new(a.path.clone(), a.dtype, shape, bytes)
}

/// A one-column f32 array whose values are all integers becomes i64 `(n,)`, so class ids
/// in a labels CSV are read as class ids (as CSV label columns are).
fn integer_column(a: ArrayData) -> ArrayData {
    if a.dtype != DType::F32 || a.sample_len() != 1 {
        return a;
    }
    let mut v = Vec::with_capacity(a.num_samples());
    a.range_f32(0, a.num_samples(), &mut v);
    if !v.iter().all(|x| x.fract() == 0.0 && x.abs() < 16_777_216.0) {
        return a;
    }
    let bytes: Vec<u8> = v.iter().flat_map(|x| (*x as i64).to_le_bytes()).collect();
    ArrayData::new(
        a.path.clone(),
        DType::I64,
        vec![v.len()],
        Bytes::Owned(Arc::new(bytes)),
    )
    .unwrap_or(a)
}

fn to_ram(a: &ArrayData) -> ArrayData {
    ArrayData {
        dtype: a.dtype,
        shape: a.shape.clone(),
        bytes: Bytes::Owned(Arc::new(a.raw().to_vec())),
        path: a.path.clone(),
    }
}

/// Labels in the form batches need.
enum Targets {
    None,
    /// Class ids per file.
    Classes(Vec<Arc<Vec<u32>>>),
    /// f32 targets per file (converted while batching).
    Values(Vec<ArrayData>),
}

/// More inferred classes than this is taken as a sign the labels are not class ids.
const MAX_INFERRED_CLASSES: usize = 1 << 20;

fn make_targets(
    arrays: &[ArrayData],
    mode: LabelMode,
    source: String,
) -> Result<(Targets, LabelInfo)> {
    if arrays.is_empty() {
        if let LabelMode::Classes(_) = mode {
            return Err(Error::Data(
                "class labels were asked for but no labels were found".into(),
            ));
        }
        return Ok((
            Targets::None,
            LabelInfo {
                source,
                kind: "none".into(),
                dtype: None,
                shape: Vec::new(),
                num_classes: None,
                class_counts: None,
            },
        ));
    }
    let first = &arrays[0];
    for a in &arrays[1..] {
        if a.sample_shape() != first.sample_shape() {
            return Err(Error::Data(format!(
                "{}: labels of shape {} per sample, but {} has {}",
                a.path.display(),
                fmt_shape(a.sample_shape()),
                first.path.display(),
                fmt_shape(first.sample_shape())
            )));
        }
    }
    let classes = match mode {
        LabelMode::Classes(n) => Some(n),
        LabelMode::Values => None,
        LabelMode::Auto => {
            (arrays.iter().all(|a| a.dtype.is_integer()) && first.sample_len() == 1).then_some(None)
        }
    };
    let Some(num_classes) = classes else {
        return Ok((
            Targets::Values(arrays.to_vec()),
            LabelInfo {
                source,
                kind: "values".into(),
                dtype: Some(first.dtype),
                shape: first.sample_shape().to_vec(),
                num_classes: None,
                class_counts: None,
            },
        ));
    };
    let ids: Vec<Vec<u32>> = arrays
        .iter()
        .map(|a| a.to_u32_labels())
        .collect::<Result<_, _>>()?;
    let max = ids.iter().flatten().copied().max().unwrap_or(0) as usize;
    if num_classes.is_none() && max >= MAX_INFERRED_CLASSES {
        return Err(Error::Data(format!(
            "{}: integer labels up to {max} would mean {} classes; if they are regression targets use .regression(), else give num_classes",
            first.path.display(),
            max + 1
        )));
    }
    let n = num_classes.unwrap_or(max + 1);
    for (a, v) in arrays.iter().zip(&ids) {
        if let Some((i, l)) = v.iter().enumerate().find(|(_, l)| **l as usize >= n) {
            return Err(Error::Data(format!(
                "{}: label {l} of sample {i} is not below the class count {n}",
                a.path.display()
            )));
        }
    }
    let mut counts = vec![0usize; n];
    for l in ids.iter().flatten() {
        counts[*l as usize] += 1;
    }
    Ok((
        Targets::Classes(ids.into_iter().map(Arc::new).collect()),
        LabelInfo {
            source,
            kind: "classes".into(),
            dtype: Some(first.dtype),
            shape: Vec::new(),
            num_classes: Some(n),
            class_counts: Some(counts),
        },
    ))
}

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

#[derive(Clone, PartialEq, Eq)]
struct PlanKey {
    batch_size: usize,
    drop_last: bool,
    order: Vec<u32>,
}

struct Plan {
    batches: Vec<BatchSpec>,
    index: HashMap<String, usize>,
}

/// The loader; see the module documentation.
pub struct AutoData {
    inferred: Inferred,
    files: Vec<SetFile>,
    targets: Targets,
    input_dtype: InputDType,
    batch_size: Option<usize>,
    shuffle: Option<bool>,
    shuffle_samples: Option<bool>,
    drop_last: Option<bool>,
    seed: u64,
    preprocessor: Option<Arc<dyn Preprocessor>>,
    cache: Mutex<Cache>,
}

/// Which samples of one file a batch takes.
#[derive(Debug, Clone)]
enum Rows {
    Range(usize, usize),
    Indices(Arc<Vec<u32>>, usize, usize),
}

/// One file's share of a batch.
#[derive(Debug, Clone)]
pub struct ViewPart<'a> {
    pub set: &'a str,
    pub data: &'a ArrayData,
    file: usize,
    rows: Rows,
}

/// The samples of a batch as slices of the memory map (zero-copy), before any tensor
/// is made.
#[derive(Debug, Clone)]
pub struct BatchView<'a> {
    pub name: String,
    pub parts: Vec<ViewPart<'a>>,
}

impl<'a> BatchView<'a> {
    pub fn len(&self) -> usize {
        self.parts
            .iter()
            .map(|p| match p.rows {
                Rows::Range(a, b) | Rows::Indices(_, a, b) => b - a,
            })
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether every part is one contiguous run of a file (no sample shuffling).
    pub fn is_contiguous(&self) -> bool {
        self.parts.iter().all(|p| matches!(p.rows, Rows::Range(..)))
    }

    /// The batch's bytes, in order: one slice per contiguous part, or one per sample.
    /// Borrowed from the memory map (or the preloaded buffer): nothing is copied.
    pub fn chunks(&self) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        for p in &self.parts {
            push_chunks(p.data, &p.rows, &mut out);
        }
        out
    }
}

fn push_chunks<'a>(a: &'a ArrayData, rows: &Rows, out: &mut Vec<&'a [u8]>) {
    match rows {
        Rows::Range(s, e) => out.push(a.samples_raw(*s, *e)),
        Rows::Indices(perm, s, e) => out.extend(
            perm[*s..*e]
                .iter()
                .map(|&i| a.samples_raw(i as usize, i as usize + 1)),
        ),
    }
}

/// `0 -> a`, `25 -> z`, `26 -> aa`, ... (bijective base 26).
fn piece_letters(mut k: usize) -> String {
    let mut s = Vec::new();
    loop {
        s.push(b'a' + (k % 26) as u8);
        if k < 26 {
            break;
        }
        k = k / 26 - 1;
    }
    s.reverse();
    String::from_utf8(s).unwrap_or_default()
}

/// Copies byte chunks into one tensor of `T`: the only copy a batch costs.
fn copy_typed<T: candle_core::WithDType>(
    chunks: &[&[u8]],
    shape: Vec<usize>,
    device: &Device,
) -> Result<Tensor> {
    let bytes: usize = chunks.iter().map(|c| c.len()).sum();
    let size = std::mem::size_of::<T>();
    let n = bytes / size;
    if n * size != bytes {
        return Err(Error::Data(format!(
            "{bytes} bytes are not a whole number of {size}-byte elements"
        )));
    }
    let mut v: Vec<T> = Vec::with_capacity(n);
    let dst = v.as_mut_ptr().cast::<u8>();
    let mut at = 0;
    for c in chunks {
        // SAFETY: `v` has room for `bytes` bytes, the chunks add up to exactly `bytes`,
        // and a fresh allocation cannot overlap the source.
        unsafe { std::ptr::copy_nonoverlapping(c.as_ptr(), dst.add(at), c.len()) };
        at += c.len();
    }
    // SAFETY: all `n` elements were written above, and `T` is a plain number type
    // (u8, i32, i64, f16, f32, f64) for which every bit pattern is a valid value. Array
    // bytes are little-endian, as on every host candle supports.
    unsafe { v.set_len(n) };
    Ok(Tensor::from_vec(v, shape, device)?)
}

fn raw_tensor(
    dtype: DType,
    chunks: &[&[u8]],
    shape: Vec<usize>,
    device: &Device,
) -> Result<Tensor> {
    match dtype {
        DType::F32 => copy_typed::<f32>(chunks, shape, device),
        DType::F64 => copy_typed::<f64>(chunks, shape, device),
        DType::F16 => copy_typed::<half::f16>(chunks, shape, device),
        DType::U8 => copy_typed::<u8>(chunks, shape, device),
        DType::I32 => copy_typed::<i32>(chunks, shape, device),
        DType::I64 => copy_typed::<i64>(chunks, shape, device),
    }
}

fn f32_tensor(
    dtype: DType,
    chunks: &[&[u8]],
    shape: Vec<usize>,
    device: &Device,
) -> Result<Tensor> {
    if dtype == DType::F32 {
        return copy_typed::<f32>(chunks, shape, device);
    }
    let mut out = Vec::with_capacity(shape.iter().product());
    for c in chunks {
        extend_f32(dtype, c, &mut out);
    }
    Ok(Tensor::from_vec(out, shape, device)?)
}

impl AutoData {
    /// Everything inferred about the data.
    pub fn inferred(&self) -> &Inferred {
        &self.inferred
    }

    pub fn num_classes(&self) -> Option<usize> {
        self.inferred.labels.num_classes
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

    /// The units shuffled as a whole: files (files mode) or batch-size chunks of the
    /// (possibly permuted) file (dataset mode).
    fn units(&self, batch_size: usize) -> Vec<(String, Segment)> {
        match self.inferred.mode {
            Mode::Files => self
                .files
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    (
                        f.name.clone(),
                        Segment {
                            file: i,
                            start: 0,
                            end: f.data.num_samples(),
                        },
                    )
                })
                .collect(),
            Mode::Dataset => {
                let n = self.files[0].data.num_samples();
                (0..n.div_ceil(batch_size))
                    .map(|k| {
                        (
                            k.to_string(),
                            Segment {
                                file: 0,
                                start: k * batch_size,
                                end: ((k + 1) * batch_size).min(n),
                            },
                        )
                    })
                    .collect()
            }
        }
    }

    fn compute_plan(&self, key: &PlanKey) -> Result<Plan> {
        let units = self.units(key.batch_size);
        let order: Vec<usize> = if key.order.is_empty() {
            (0..units.len()).collect()
        } else {
            let mut seen = vec![false; units.len()];
            for &u in &key.order {
                match seen.get_mut(u as usize) {
                    Some(s) if !*s => *s = true,
                    _ => {
                        return Err(Error::Data(format!(
                            "{}: the loader state's set order {:?} is not a permutation of the {} sets (state of another data set or batch size?)",
                            self.inferred.source.display(),
                            abbreviate(&key.order),
                            units.len()
                        )))
                    }
                }
            }
            if key.order.len() != units.len() {
                return Err(Error::Data(format!(
                    "{}: the loader state orders {} sets but there are {}",
                    self.inferred.source.display(),
                    key.order.len(),
                    units.len()
                )));
            }
            key.order.iter().map(|&u| u as usize).collect()
        };
        let bs = key.batch_size;
        let mut batches: Vec<Vec<Segment>> = Vec::new();
        match self.inferred.mode {
            Mode::Dataset => {
                batches.extend(order.iter().map(|&u| vec![units[u].1]));
            }
            Mode::Files => {
                // Stream the sets in order and cut every `bs` samples.
                let mut current: Vec<Segment> = Vec::new();
                let mut fill = 0;
                for &u in &order {
                    let seg = units[u].1;
                    let mut pos = seg.start;
                    while pos < seg.end {
                        let take = (bs - fill).min(seg.end - pos);
                        current.push(Segment {
                            file: seg.file,
                            start: pos,
                            end: pos + take,
                        });
                        pos += take;
                        fill += take;
                        if fill == bs {
                            batches.push(std::mem::take(&mut current));
                            fill = 0;
                        }
                    }
                }
                if !current.is_empty() {
                    batches.push(current);
                }
            }
        }
        if key.drop_last {
            batches.retain(|b| b.iter().map(|s| s.end - s.start).sum::<usize>() == bs);
        }
        // Names: a whole file is its set name; pieces of a file get letters in order.
        let mut pieces = vec![0usize; self.files.len()];
        let mut out = Vec::with_capacity(batches.len());
        for segments in batches {
            let names: Vec<String> = segments
                .iter()
                .map(|s| match self.inferred.mode {
                    Mode::Dataset => (s.start / bs).to_string(),
                    Mode::Files => {
                        let f = &self.files[s.file];
                        if s.start == 0 && s.end == f.data.num_samples() {
                            f.name.clone()
                        } else {
                            let k = pieces[s.file];
                            pieces[s.file] += 1;
                            format!("{}-{}", f.name, piece_letters(k))
                        }
                    }
                })
                .collect();
            out.push(BatchSpec {
                name: names.join("+"),
                segments,
            });
        }
        let index = out
            .iter()
            .enumerate()
            .map(|(i, b)| (b.name.clone(), i))
            .collect();
        Ok(Plan {
            batches: out,
            index,
        })
    }

    fn plan(&self, state: &LoaderState) -> Result<Arc<Plan>> {
        let key = PlanKey {
            batch_size: state.batch_size,
            drop_last: state.drop_last,
            order: state.order.clone(),
        };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((k, plan)) = &cache.plan {
            if *k == key {
                return Ok(Arc::clone(plan));
            }
        }
        if key.batch_size == 0 {
            return Err(Error::config("batch_size", "must be at least 1"));
        }
        let plan = Arc::new(self.compute_plan(&key)?);
        cache.plan = Some((key, Arc::clone(&plan)));
        Ok(plan)
    }

    /// The batches of the epoch planned in `state`, in order (what the trainer will fit
    /// when nobody edits `set_nums_to_process`).
    pub fn batches(&self, state: &LoaderState) -> Result<Vec<BatchSpec>> {
        Ok(self.plan(state)?.batches.clone())
    }

    /// The batch named `name`: from the epoch plan, or else whole sets written as set
    /// names joined by `+` (files mode: `"3"`, `"3+7"`; dataset mode: chunk numbers).
    pub fn resolve(&self, state: &LoaderState, name: &str) -> Result<BatchSpec> {
        let plan = self.plan(state)?;
        if let Some(&i) = plan.index.get(name) {
            return Ok(plan.batches[i].clone());
        }
        let units = self.units(state.batch_size);
        let mut segments = Vec::new();
        for part in name.split('+') {
            match units.iter().find(|(n, _)| n == part) {
                Some((_, seg)) => segments.push(*seg),
                None => {
                    let some: Vec<&str> = plan
                        .batches
                        .iter()
                        .take(6)
                        .map(|b| b.name.as_str())
                        .collect();
                    return Err(Error::Data(format!(
                        "{}: no set named {name:?} in epoch {} (sets look like {}{})",
                        self.inferred.source.display(),
                        state.epoch,
                        some.join(", "),
                        if plan.batches.len() > 6 { ", ..." } else { "" }
                    )));
                }
            }
        }
        Ok(BatchSpec {
            name: name.to_string(),
            segments,
        })
    }

    /// Permutation of file `file`'s samples under `seed` (cached).
    fn permutation(&self, seed: u64, file: usize) -> Arc<Vec<u32>> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = cache.perms.get(&(seed, file)) {
            return Arc::clone(p);
        }
        cache.perms.retain(|(s, _), _| *s == seed);
        let n = self.files[file].data.num_samples();
        let mut perm: Vec<u32> = (0..n as u32).collect();
        RngStream::with_stream(seed, file as u64).shuffle(&mut perm);
        let perm = Arc::new(perm);
        cache.perms.insert((seed, file), Arc::clone(&perm));
        perm
    }

    fn rows(&self, state: &LoaderState, seg: &Segment) -> Rows {
        if state.shuffle_samples {
            Rows::Indices(
                self.permutation(state.sample_seed, seg.file),
                seg.start,
                seg.end,
            )
        } else {
            Rows::Range(seg.start, seg.end)
        }
    }

    /// The samples of set `name` as slices of the memory map, without copying anything.
    pub fn view(&self, state: &LoaderState, name: &str) -> Result<BatchView<'_>> {
        let spec = self.resolve(state, name)?;
        let parts = spec
            .segments
            .iter()
            .map(|seg| ViewPart {
                set: self.files[seg.file].name.as_str(),
                data: &self.files[seg.file].data,
                file: seg.file,
                rows: self.rows(state, seg),
            })
            .collect();
        Ok(BatchView {
            name: spec.name,
            parts,
        })
    }

    /// Inputs and labels of a view as tensors.
    pub fn tensors(&self, view: &BatchView, device: &Device) -> Result<(Tensor, Tensor)> {
        let n = view.len();
        let mut shape = vec![n];
        shape.extend_from_slice(&self.inferred.sample_shape);
        let chunks = view.chunks();
        let x = match self.input_dtype {
            InputDType::Native => raw_tensor(self.inferred.dtype, &chunks, shape, device)?,
            InputDType::F32 => f32_tensor(self.inferred.dtype, &chunks, shape, device)?,
        };
        let y = match &self.targets {
            Targets::None => x.clone(),
            Targets::Classes(ids) => {
                let mut y = Vec::with_capacity(n);
                for p in &view.parts {
                    let ids = &ids[p.file];
                    match &p.rows {
                        Rows::Range(s, e) => y.extend_from_slice(&ids[*s..*e]),
                        Rows::Indices(perm, s, e) => {
                            y.extend(perm[*s..*e].iter().map(|&i| ids[i as usize]))
                        }
                    }
                }
                Tensor::from_vec(y, n, device)?
            }
            Targets::Values(arrays) => {
                let mut chunks = Vec::new();
                for p in &view.parts {
                    push_chunks(&arrays[p.file], &p.rows, &mut chunks);
                }
                let mut shape = vec![n];
                shape.extend_from_slice(arrays[0].sample_shape());
                f32_tensor(arrays[0].dtype, &chunks, shape, device)?
            }
        };
        Ok((x, y))
    }

    fn cache_key(state: &LoaderState, name: &str, device: &Device) -> u64 {
        let mut h = DefaultHasher::new();
        (
            name,
            state.epoch,
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

    /// A report of the inference and of the epoch planned in `state`.
    pub fn report(&self, state: &LoaderState) -> Result<DataReport> {
        let batches = self
            .batches(state)?
            .into_iter()
            .map(|b| {
                let mut shape = vec![b.size()];
                shape.extend_from_slice(&self.inferred.sample_shape);
                BatchLine {
                    set: b.name,
                    samples: shape[0],
                    shape,
                }
            })
            .collect();
        Ok(DataReport {
            inferred: self.inferred.clone(),
            batch_size: state.batch_size,
            shuffle: state.shuffle,
            shuffle_samples: state.shuffle_samples,
            drop_last: state.drop_last,
            seed: state.rng.seed,
            epoch: state.epoch,
            batches,
        })
    }
}

fn abbreviate(v: &[u32]) -> String {
    if v.len() <= 8 {
        format!("{v:?}")
    } else {
        format!("{:?}... ({} entries)", &v[..8], v.len())
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

    fn plan_epoch(&self, state: &mut LoaderState) -> Result<()> {
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
        let epoch = state.epoch + 1;
        let pre_state = match &self.preprocessor {
            Some(p) => p.on_epoch(epoch, &mut rng)?,
            None => String::new(),
        };
        let mut next = state.clone();
        next.order = order;
        next.sample_seed = sample_seed;
        next.rng = rng.state();
        next.epoch = epoch;
        next.preprocessor_state = pre_state;
        next.sets_done.clear();
        next.clear_window();
        let plan = self.plan(&next)?;
        if plan.batches.is_empty() {
            return Err(Error::Data(format!(
                "{}: {} samples make no batch of {} with drop_last on: the epoch would be empty",
                self.inferred.source.display(),
                self.inferred.num_samples,
                state.batch_size
            )));
        }
        next.set_nums_to_process = plan.batches.iter().map(|b| b.name.clone()).collect();
        *state = next;
        Ok(())
    }

    fn load(&self, state: &LoaderState, set_name: &str, device: &Device) -> Result<Batch> {
        let window = state.window as usize;
        let ctx = |window| BatchCtx {
            epoch: state.epoch,
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
            return Ok(Batch::new(set_name, x, y));
        };
        let key = Self::cache_key(state, set_name, device);
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
        Ok(Batch {
            set_name: set_name.to_string(),
            x,
            y,
            window,
            windows,
        })
    }
}

/// One batch of an epoch in a [`DataReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchLine {
    pub set: String,
    pub samples: usize,
    pub shape: Vec<usize>,
}

/// What `deeptrain data` prints: the inference and one epoch's batch sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataReport {
    #[serde(flatten)]
    pub inferred: Inferred,
    pub batch_size: usize,
    pub shuffle: bool,
    pub shuffle_samples: bool,
    pub drop_last: bool,
    pub seed: u64,
    pub epoch: u64,
    pub batches: Vec<BatchLine>,
}

impl fmt::Display for DataReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inferred;
        writeln!(f, "source      {}", i.source.display())?;
        let mode = match i.mode {
            Mode::Files => format!("files mode, base name {:?}", i.base_name),
            Mode::Dataset => "dataset mode: one file cut into sets".into(),
        };
        writeln!(f, "format      {}, {mode}", i.format)?;
        writeln!(f, "files       {}", i.sets.len())?;
        for s in &i.sets {
            writeln!(
                f,
                "  set {:<8} {:>9} samples  {}",
                s.name,
                s.samples,
                s.file.display()
            )?;
        }
        for ig in &i.ignored {
            writeln!(f, "  ignored   {} ({})", ig.file.display(), ig.reason)?;
        }
        writeln!(
            f,
            "samples     {} of shape {}, dtype {}",
            i.num_samples,
            fmt_shape(&i.sample_shape),
            i.dtype
        )?;
        let l = &i.labels;
        match l.kind.as_str() {
            "classes" => {
                writeln!(
                    f,
                    "labels      {}: {} classes ({})",
                    l.source,
                    l.num_classes.unwrap_or(0),
                    l.dtype.map(|d| d.name()).unwrap_or("?")
                )?;
                if let Some(c) = &l.class_counts {
                    let counts: Vec<String> = c
                        .iter()
                        .enumerate()
                        .map(|(k, n)| format!("{k}:{n}"))
                        .collect();
                    writeln!(f, "  per class {}", counts.join(" "))?;
                }
            }
            "values" => writeln!(
                f,
                "labels      {}: values of shape {} ({})",
                l.source,
                fmt_shape(&l.shape),
                l.dtype.map(|d| d.name()).unwrap_or("?")
            )?,
            _ => writeln!(f, "labels      none (y = x)")?,
        }
        if !i.preloaded.is_empty() {
            writeln!(f, "preloaded   {}", i.preloaded.join(", "))?;
        }
        if let Some(p) = &i.preprocessor {
            writeln!(f, "preprocess  {p}")?;
        }
        let shuffle = match (self.shuffle, self.shuffle_samples) {
            (false, false) => "off".to_string(),
            (true, false) => format!("set order (seed {})", self.seed),
            (false, true) => format!("samples within groups (seed {})", self.seed),
            (true, true) => format!("set order and samples within groups (seed {})", self.seed),
        };
        writeln!(
            f,
            "epoch {}     {} batches; batch_size {}, shuffle {}, drop_last {}",
            self.epoch,
            self.batches.len(),
            self.batch_size,
            shuffle,
            self.drop_last
        )?;
        writeln!(f, "  {:<16} {:>8}  shape", "set", "samples")?;
        for b in &self.batches {
            writeln!(
                f,
                "  {:<16} {:>8}  {}",
                b.set,
                b.samples,
                fmt_shape(&b.shape)
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn piece_letters_are_bijective_base_26() {
        let got: Vec<String> = [0, 1, 25, 26, 27, 51, 52, 701, 702]
            .iter()
            .map(|&k| piece_letters(k))
            .collect();
        assert_eq!(got, ["a", "b", "z", "aa", "ab", "az", "ba", "zz", "aaa"]);
    }

    #[test]
    fn set_numbers_come_from_trailing_digits() {
        assert_eq!(split_number("batch_12"), ("batch_", Some(12)));
        assert_eq!(split_number("x007"), ("x", Some(7)));
        assert_eq!(split_number("train"), ("train", None));
        assert_eq!(split_number("99"), ("", Some(99)));
        assert_eq!(
            split_number("n99999999999999999999999"),
            ("n99999999999999999999999", None)
        );
    }

    #[test]
    fn idx_images_pair_with_their_labels() {
        let listing: Vec<String> = [
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte.gz",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            idx_label_partner("t10k-images-idx3-ubyte.gz", &listing).as_deref(),
            Some("t10k-labels-idx1-ubyte.gz")
        );
        // A plain images file may pair with a gzipped labels file.
        assert_eq!(
            idx_label_partner("train-images-idx3-ubyte", &listing).as_deref(),
            Some("train-labels-idx1-ubyte.gz")
        );
        assert_eq!(idx_label_partner("other-idx3-ubyte", &listing), None);
        let dotted = vec!["train-labels.idx1-ubyte".to_string()];
        assert_eq!(
            idx_label_partner("train-images.idx3-ubyte", &dotted).as_deref(),
            Some("train-labels.idx1-ubyte")
        );
        assert_eq!(idx_marker("a-idx-ubyte"), None);
        assert_eq!(idx_marker("train-images.idx3-ubyte"), Some((12, 17)));
    }
}
