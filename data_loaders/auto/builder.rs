//! The builder: every option AutoData takes, and `build`, which runs the inference,
//! reads and checks every file and its labels, and preloads what was asked for. All
//! checks happen here so a misconfigured loader fails before training starts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::file_loader::FileLoader;
use super::formats::default_cache_dir;
use super::infer::{check_consistent, file_name, list_dir, Inferred, SetInfo};
use super::labels::{make_targets, split_labels, LabelMode, LabelSource, Targets};
use super::{AutoData, Cache, SetFile};
use crate::data_loaders::array::{fmt_shape, ArrayData, Bytes, FormatError};
use crate::data_loaders::csv_file::{CsvOptions, LabelColumn};
use crate::data_loaders::preprocess::Preprocessor;
use crate::data_loaders::weights::{check_count, weights_of};
use crate::error::{Error, Result};

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
    /// Read every set from the memory map (the default).
    None,
    /// Copy every set (and its regression targets) into RAM at build time.
    All,
    /// These set names (files mode); an unknown name fails `build`.
    Sets(Vec<String>),
}

/// Configures and builds an [`AutoData`]; nothing is read before [`build`](Self::build).
pub struct AutoDataBuilder {
    pub(super) source: PathBuf,
    pub(super) single_file: bool,
    pub(super) format: Option<String>,
    pub(super) base_name: Option<String>,
    pub(super) set_nums: Option<Vec<u64>>,
    pub(super) file: Option<String>,
    pub(super) labels: LabelSource,
    /// A file of per-sample weights (one per sample of all sets, in set order).
    pub(super) weights: Option<PathBuf>,
    label_mode: LabelMode,
    pub(super) data_key: String,
    pub(super) label_key: String,
    pub(super) csv: CsvOptions,
    input_dtype: InputDType,
    batch_size: Option<usize>,
    shuffle: Option<bool>,
    shuffle_samples: Option<bool>,
    drop_last: Option<bool>,
    seed: u64,
    preload: Preload,
    preprocessor: Option<Arc<dyn Preprocessor>>,
    pub(super) loaders: BTreeMap<String, Arc<dyn FileLoader>>,
    cache_dir: Option<PathBuf>,
}

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
            weights: None,
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
    /// Transforms each loaded set before it becomes a batch, and may cut it into windows
    /// (e.g. [`TimeseriesWindows`](crate::data_loaders::TimeseriesWindows)); replaces any
    /// earlier one. Default: none.
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
    /// Per-sample weights from this file: one number per sample of all sets, in set
    /// order (npy, csv, safetensors or idx; any numeric type, read as f32), each finite
    /// and `>= 0`. Batches carry them ([`Batch::weights`](crate::data_loaders::Batch)).
    /// Default: none.
    pub fn weights(mut self, path: impl AsRef<Path>) -> Self {
        self.weights = Some(path.as_ref().to_path_buf());
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
    /// How labels are read (default [`LabelMode::Auto`]); [`num_classes`](Self::num_classes)
    /// and [`regression`](Self::regression) are shorthands.
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
    /// Element type of the batch inputs `x` (default [`InputDType::F32`]).
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
        let weights = match &self.weights {
            Some(path) => Some(self.read_weights(path, &choice, &loaded, &listing, &cache_dir)?),
            None => None,
        };

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
                        && self.weights.as_ref() != Some(&i.file)
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
            weights,
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
}

impl AutoDataBuilder {
    /// The weights file `path`, cut into one vector per used file. It covers every sample
    /// in set order: of the files used, or of the whole family when only some set numbers
    /// are (as a labels file does).
    fn read_weights(
        &self,
        path: &Path,
        choice: &super::infer::Choice,
        loaded: &[(String, PathBuf, super::file_loader::LoadedFile)],
        listing: &[String],
        cache_dir: &Path,
    ) -> Result<Vec<Arc<Vec<f32>>>> {
        let all = weights_of(&self.read_labels_file(path, cache_dir)?)?;
        // (set name, samples) of every file the weights cover, in set order.
        let mut covered: Vec<(String, usize)> = Vec::new();
        if choice.family.is_empty() {
            covered.extend(
                loaded
                    .iter()
                    .map(|(n, _, f)| (n.clone(), f.data.num_samples())),
            );
        } else {
            for (name, p) in &choice.family {
                let n = match loaded.iter().find(|(m, _, _)| m == name) {
                    Some((_, _, f)) => f.data.num_samples(),
                    None => self
                        .load_file(&choice.format, p, false, listing, cache_dir)?
                        .data
                        .num_samples(),
                };
                covered.push((name.clone(), n));
            }
        }
        let total: usize = covered.iter().map(|(_, n)| n).sum();
        check_count(&path.display().to_string(), all.len(), total)?;
        let mut at = 0;
        let mut per_set = Vec::with_capacity(covered.len());
        for (name, n) in covered {
            per_set.push((name, all[at..at + n].to_vec()));
            at += n;
        }
        Ok(loaded
            .iter()
            .filter_map(|(n, _, _)| {
                let i = per_set.iter().position(|(m, _)| m == n)?;
                Some(Arc::new(per_set[i].1.clone()))
            })
            .collect())
    }
}

fn to_ram(a: &ArrayData) -> ArrayData {
    ArrayData {
        dtype: a.dtype,
        shape: a.shape.clone(),
        bytes: Bytes::Owned(Arc::new(a.raw().to_vec())),
        path: a.path.clone(),
    }
}
