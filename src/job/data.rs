//! The data a job trains and validates on: the embedded digits set or a CSV file read
//! into memory and split, or AutoData loaders over a directory or file.

use std::path::Path;

use candle_core::Tensor;

use super::validate::at_transform;
use super::JobConfig;
use crate::data_loaders::array::ArrayData;
use crate::data_loaders::array::{fmt_shape, DType as ArrayDType};
use crate::data_loaders::csv_file::{parse_csv, read_csv, take_column, CsvOptions, LabelColumn};
use crate::data_loaders::weights;
use crate::data_loaders::{
    AutoData, DataInfo, DataLoader, InMemoryData, LoaderState, SetRef, Targets, TimeseriesWindows,
};
use crate::error::{Error, Result};
use crate::registry::{Registry, TransformCtx};
use crate::rng::{RngStream, StreamId};
use crate::transforms::{BatchSpec, Transforms};

/// The UCI optical digits set (1797 x 64 pixels 0-16, label last), embedded in the binary.
pub const DIGITS_CSV_GZ: &[u8] =
    include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/digits.csv.gz"));

/// The data a job trains and validates on.
pub(super) struct Loaders {
    pub train: Box<dyn DataLoader>,
    pub val: Option<Box<dyn DataLoader>>,
    /// What the train data looks like (sizes the model).
    pub info: DataInfo,
}

impl JobConfig {
    /// The digits set or a CSV file: numeric, no header row, a class index (an integer
    /// literal) in the last column.
    fn load_data(&self) -> Result<InMemoryData> {
        let opts = CsvOptions {
            has_header: Some(false),
            label_column: LabelColumn::Last,
            delimiter: b',',
        };
        let (name, (features, labels)) = if self.data.source == "digits" {
            let origin = Path::new("assets/digits.csv.gz");
            ("digits", parse_csv(DIGITS_CSV_GZ, origin, opts)?)
        } else {
            let path = Path::new(self.data.source_path());
            (self.data.source_path(), read_csv(path, opts)?)
        };
        let (features, weights) = self.sample_weights(name, features)?;
        let labels = match labels {
            Some(l) if l.dtype == ArrayDType::I64 => l.to_u32_labels()?,
            _ => {
                return Err(Error::Data(format!(
                    "{name}: the last column must hold class indices (integers)"
                )))
            }
        };
        let mut values = Vec::new();
        features.range_f32(0, features.num_samples(), &mut values);
        let scale = self.data.input_scale();
        values.iter_mut().for_each(|v| *v *= scale);
        let num_classes = labels.iter().max().map_or(0, |m| *m as usize + 1);
        let data = InMemoryData::classification(
            name,
            values,
            features.sample_shape().to_vec(),
            labels,
            num_classes,
        )?;
        match weights {
            Some((w, source)) => data.with_weights(w, &source),
            None => Ok(data),
        }
    }

    /// The per-sample weights of an in-memory source, and its features without them:
    /// `data.weight_column` taken out of a CSV file's features, or `data.weights` read from
    /// a file of their own; with where they came from, for errors.
    #[allow(clippy::type_complexity)]
    fn sample_weights(
        &self,
        name: &str,
        features: ArrayData,
    ) -> Result<(ArrayData, Option<(Vec<f32>, String)>)> {
        let d = &self.data;
        match (d.weight_column, &d.weights) {
            (Some(_), Some(_)) => Err(Error::config(
                "data.weight_column",
                "give either a weight column or a weights file (data.weights), not both",
            )),
            (Some(_), None) if name == "digits" => Err(Error::config(
                "data.weight_column",
                "the embedded digits have no weight column: give data.weights (a file)",
            )),
            (Some(c), None) => {
                // The label is the last column, so file column `c` is feature column `c`.
                let cols = features.sample_len() + 1;
                if c + 1 >= cols {
                    return Err(Error::config(
                        "data.weight_column",
                        format!(
                            "{c} is not a feature column of {name}: it has {cols} columns, \
                             0..{} before the label in column {}",
                            cols - 2,
                            cols - 1
                        ),
                    ));
                }
                let (rest, w) = take_column(&features, c)?;
                let source = format!("{name} (weight column {c})");
                weights::check_weights(&source, &w)?;
                Ok((rest, Some((w, source))))
            }
            (None, Some(path)) => {
                let w = weights::read_weights_file(Path::new(path))?;
                Ok((features, Some((w, path.clone()))))
            }
            (None, None) => Ok((features, None)),
        }
    }

    /// Whether `data.source` is read into memory (digits, CSV) rather than by AutoData.
    fn in_memory_source(&self) -> bool {
        let s = self.data.source_path();
        s == "digits" || ((s.ends_with(".csv") || s.ends_with(".csv.gz")) && Path::new(s).is_file())
    }

    /// An AutoData loader over `source` (optionally one `file` of it, with `labels` from a
    /// file of their own).
    pub(super) fn auto_data(
        &self,
        source: &str,
        file: Option<&str>,
        labels: Option<&str>,
        weights: Option<&str>,
        batch_size: usize,
        shuffle: bool,
    ) -> Result<AutoData> {
        let path = Path::new(source);
        let mut b = if path.is_dir() {
            AutoData::from_dir(path)?
        } else {
            AutoData::from_file(path)?
        };
        if let Some(f) = file {
            b = b.file(f);
        }
        if let Some(l) = labels {
            b = b.labels(l);
        }
        if let Some(w) = weights {
            b = b.weights(w);
        }
        b = b
            .preload(self.data.preload)
            .batch_size(batch_size)
            .shuffle(shuffle)
            .drop_last(self.data.drop_last)
            .seed(self.train.seed);
        let scale = self.data.input_scale() as f64;
        if let Some(w) = &self.data.windows {
            if scale != 1.0 {
                return Err(Error::config(
                    "data.scale",
                    format!("{scale} with data.windows: scale the series before it is stored"),
                ));
            }
            let windows = TimeseriesWindows::new(w.length, w.slide.unwrap_or(w.length))
                .start_increments(w.start_increments.clone());
            b = b.preprocessor(windows);
        } else if scale != 1.0 {
            b = b.preprocessor(move |x: Tensor, y: Tensor| -> Result<(Tensor, Tensor)> {
                Ok(((x.to_dtype(candle_core::DType::F32)? * scale)?, y))
            });
        }
        b.build()
    }

    /// The train and validation loaders, and what the train data looks like; named
    /// sources (`source.rs`) are looked up in `registry`.
    pub(super) fn loaders_with(&self, registry: &Registry) -> Result<Loaders> {
        if let Some(loaders) = self.named_loaders(registry)? {
            return Ok(loaders);
        }
        if self.in_memory_source() {
            if self.data.val_weights.is_some() {
                return Err(Error::config(
                    "data.val_weights",
                    "an in-memory source is split by data.val_split, and the samples split off \
                     keep their data.weights (or weight column)",
                ));
            }
            let data = self.load_data()?;
            let info = data.info();
            let (train, val) = data.split(self.data.val_fraction, self.train.seed)?;
            let val: Option<Box<dyn DataLoader>> = if val.num_samples() > 0 {
                Some(Box::new(val))
            } else {
                None
            };
            return Ok(Loaders {
                train: Box::new(train),
                val,
                info,
            });
        }
        let d = &self.data;
        if d.weight_column.is_some() {
            return Err(Error::config(
                "data.weight_column",
                format!(
                    "works with a CSV file source read into memory; {} is read by AutoData: \
                     give data.weights (a file) instead",
                    d.source
                ),
            ));
        }
        let train = self.auto_data(
            d.source_path(),
            d.file.as_deref(),
            d.labels.as_deref(),
            d.weights.as_deref(),
            d.batch_size,
            d.shuffle,
        )?;
        let sequences = d.windows.is_some();
        check_labels("data.source", d.source_path(), &train, sequences)?;
        let val_source = match (d.val_source_path(), &d.val_file) {
            (Some(s), _) => Some(s),
            (None, Some(_)) => Some(d.source_path()),
            (None, None) if d.val_fraction > 0.0 && sequences => {
                return Err(Error::config(
                    "data.val_source",
                    "sequences cut into windows are not split by sample: give data.val_source \
                     (or data.val_file), or set data.val_split to 0",
                ))
            }
            (None, None) if d.val_weights.is_some() => {
                return Err(Error::config(
                    "data.val_weights",
                    "weighs data.val_source (or data.val_file), and neither is given: samples \
                     split off by data.val_split keep their data.weights",
                ))
            }
            (None, None) if d.val_fraction > 0.0 => {
                // Split off by sample: the source is read into memory and split as the
                // digits are.
                let all = read_all(&train, d.source_path())?;
                let info = all.info();
                let (train, val) = all.split(d.val_fraction, self.train.seed)?;
                return Ok(Loaders {
                    train: Box::new(train),
                    val: Some(Box::new(val)),
                    info,
                });
            }
            (None, None) => None,
        };
        let info = train.info();
        let val: Option<Box<dyn DataLoader>> = match val_source {
            Some(s) => {
                let batch = d.val_batch_size.unwrap_or(d.batch_size);
                let labels = d.val_labels.as_deref();
                let weights = d.val_weights.as_deref();
                let val =
                    self.auto_data(s, d.val_file.as_deref(), labels, weights, batch, false)?;
                check_labels("data.val_source", s, &val, sequences)?;
                Some(Box::new(val))
            }
            None => None,
        };
        Ok(Loaders {
            train: Box::new(train),
            val,
            info,
        })
    }
}

/// Every sample of `data`, in order, read into memory (scaled as its batches are).
fn read_all(data: &AutoData, source: &str) -> Result<InMemoryData> {
    let info = data.info();
    let device = candle_core::Device::Cpu;
    let rng = RngStream::new(0, StreamId::TrainShuffle);
    let mut state = LoaderState::new(info.num_samples.max(1), false, false, &rng);
    data.configure_state(&mut state);
    state.batch_size = info.num_samples.max(1);
    let mut features: Vec<f32> = Vec::new();
    let mut ids: Vec<u32> = Vec::new();
    let mut values: Vec<f32> = Vec::new();
    let mut weights: Vec<f32> = Vec::new();
    for name in data.plan_epoch(0, &mut state)? {
        let batch = data.load(&state, SetRef::new(&name), &device)?;
        if let Some(w) = &batch.weights {
            weights.extend(w.to_vec1::<f32>()?);
        }
        let x = batch.x.to_dtype(candle_core::DType::F32)?.flatten_all()?;
        features.extend(x.to_vec1::<f32>()?);
        match batch.y.dtype() {
            candle_core::DType::U32 => ids.extend(batch.y.flatten_all()?.to_vec1::<u32>()?),
            _ => values.extend(
                batch
                    .y
                    .to_dtype(candle_core::DType::F32)?
                    .flatten_all()?
                    .to_vec1::<f32>()?,
            ),
        }
    }
    let sample_shape = info.sample_shape.clone();
    let all = match info.num_classes {
        Some(n) => InMemoryData::classification(source, features, sample_shape, ids, n)?,
        None => InMemoryData {
            name: source.to_string(),
            features,
            sample_shape,
            targets: Targets::Values(values),
            weights: None,
        },
    };
    if !data.has_weights() {
        return Ok(all);
    }
    all.with_weights(weights, source)
}

impl JobConfig {
    /// The job's `data.transforms`, each built in order for the batches the ones before it
    /// make, starting from the train data `info` describes; and `info` as it is after them
    /// (sample shape, classes, class counts): what the model and loss are sized for. An
    /// error names the transform by its place (`data.transforms[1]`).
    pub(crate) fn new_transforms(
        &self,
        registry: &Registry,
        info: &DataInfo,
    ) -> Result<(Transforms, DataInfo)> {
        let mut spec = BatchSpec {
            sample_shape: info.sample_shape.clone(),
            num_classes: info.num_classes,
            class_counts: info.class_counts.clone(),
        };
        let mut chain = Transforms::default();
        for (i, c) in self.data.transforms.iter().enumerate() {
            let built = registry.transforms.get(&c.name).and_then(|entry| {
                let t = (entry.factory())(&c.args, &TransformCtx { input: &spec })?;
                let out = t.output(&spec)?;
                Ok((t, out))
            });
            let (t, out) = built.map_err(|e| at_transform(i, e))?;
            chain.push(t);
            spec = out;
        }
        let out = DataInfo {
            sample_shape: spec.sample_shape,
            num_classes: spec.num_classes,
            class_counts: spec.class_counts,
            ..info.clone()
        };
        Ok((chain, out))
    }
}

/// A job trains a model with one output per class (class-id labels) or one output
/// (regression): AutoData's "no labels, `y` is `x`" and labels of several values per
/// sample both fit neither, and would only fail later inside the loss with a shape
/// mismatch. Refused here, when the data is read, naming the labels.
/// With `sequences` (time windows), labels of several values per sample are per-step
/// targets and fit.
fn check_labels(field: &str, source: &str, data: &AutoData, sequences: bool) -> Result<()> {
    let inferred = data.inferred();
    let labels = &inferred.labels;
    if labels.kind == "none" {
        return Err(Error::config(
            field,
            format!(
                "no labels found for {source} (looked for labels.npy, labels.csv or \
                 labels.csv.gz beside the data, then labels inside the files: safetensors \
                 key \"y\", an idx images file's ...-labels-idx1-... partner); put a labels \
                 file beside the data"
            ),
        ));
    }
    if labels.kind == "values" && labels.shape.iter().product::<usize>() != 1 && !sequences {
        let mut shape = vec![inferred.num_samples];
        shape.extend_from_slice(&labels.shape);
        let mut data_shape = vec![inferred.num_samples];
        data_shape.extend_from_slice(&inferred.sample_shape);
        return Err(Error::config(
            field,
            format!(
                "labels {} of {source} have shape {} for data of shape {}: a job needs one \
                 label per sample, shape ({},) or ({}, 1) (class ids or regression values)",
                labels.source,
                fmt_shape(&shape),
                fmt_shape(&data_shape),
                inferred.num_samples,
                inferred.num_samples
            ),
        ));
    }
    Ok(())
}
