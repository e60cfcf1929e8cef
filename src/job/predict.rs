//! Using a trained model: [`Predictor`] rebuilds the model of a run from the job config
//! saved in its checkpoint, loads the weights by name and runs it in eval mode, on
//! tensors ([`Predictor::predict`]) or on any input AutoData reads, streamed batch by
//! batch into a `.npy`, `.csv` or `.safetensors` file ([`Predictor::predict_file`]).

use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use candle_core::{DType, Device, Tensor};

use super::JobConfig;
use crate::checkpoint::{self, CheckpointMeta, LoadedCheckpoint, BEST_DIR};
use crate::data_loaders::array::{fmt_shape, DType as ArrayDType};
use crate::data_loaders::npy::npy_descr;
use crate::data_loaders::{AutoData, DataInfo, DataLoader, SetRef};
use crate::error::{Error, IoContext, Result};
use crate::metrics::{argmax, MetricSet, StreamingMetric};
use crate::model::{ForwardCtx, Model, Task};
use crate::optim::named_vars;
use crate::registry::{self, Registry};
use crate::rng::{RngStream, StreamId};
use crate::transforms::{ApplyCtx, Transforms};

/// Which checkpoint of a run to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CheckpointChoice {
    /// The newest good checkpoint (`RUN/checkpoints/ckpt-*`), or the checkpoint directory
    /// given (the default).
    #[default]
    Latest,
    /// `RUN/best`: the checkpoint with the best key metric (of the run the path is or
    /// belongs to).
    Best,
}

/// A trained model ready to use: rebuilt from the job config saved in a checkpoint, with
/// the checkpoint's weights, always in eval mode (no dropout).
///
/// Inputs are raw data, as the training data was stored: the job's `data.scale` is
/// applied here as the job's loaders apply it, then its `data.transforms` as on
/// validation batches (deterministic ones as in training; random ones do their
/// deterministic counterpart: `random_crop` the centre crop, flips and noise nothing).
pub struct Predictor {
    job: JobConfig,
    dir: PathBuf,
    meta: CheckpointMeta,
    info: DataInfo,
    /// The job's `data.transforms`, applied in eval mode.
    transforms: Transforms,
    task: Task,
    device: Device,
    /// The run's loss (what `evaluate` reports as `loss`).
    loss: Box<dyn crate::losses::Loss>,
    /// `Model::forward` takes `&mut self`; the lock lets `predict` take `&self`.
    model: Mutex<ModelSlot>,
    /// What `evaluate` needs from the registry the predictor was loaded with.
    eval: Mutex<EvalParts>,
}

/// The parts of an evaluation built by name when the predictor is loaded, from the
/// registry it is loaded with (a user's named source, a user's metrics).
pub(crate) struct EvalParts {
    /// The run's validation loader, if it has validation data.
    pub(crate) val: Option<Box<dyn DataLoader>>,
    /// The run's metrics as training builds them: the fixed set (empty, cloned per
    /// evaluation) and the streaming ones (reset before each). An error (a metric this
    /// registry lacks) is kept for `evaluate` to report: predicting needs no metric.
    pub(crate) metrics: Result<(MetricSet, Vec<Box<dyn StreamingMetric>>)>,
}

struct ModelSlot {
    model: Box<dyn Model>,
    /// Never drawn from in eval mode; `ForwardCtx` wants one.
    rng: RngStream,
}

/// What [`Predictor::predict_file`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictionSummary {
    /// Samples predicted.
    pub samples: usize,
    /// Values per sample (classes for a classifier).
    pub columns: usize,
    /// The files written: the output, and for a classifier written as `.npy` the
    /// predicted classes (`OUT.classes.npy`).
    pub files: Vec<PathBuf>,
}

/// Output formats of [`Predictor::predict_file`], by the output's extension.
pub const OUTPUT_EXTENSIONS: &str = ".npy, .csv, .safetensors";

impl Predictor {
    /// The newest good checkpoint of a run directory, or one checkpoint directory.
    pub fn load(path: impl AsRef<Path>) -> Result<Predictor> {
        Self::load_checkpoint(path, CheckpointChoice::Latest)
    }

    /// A run directory or checkpoint directory, and which of its checkpoints:
    /// [`CheckpointChoice::Best`] takes `best/` of the run `path` is or belongs to.
    pub fn load_checkpoint(path: impl AsRef<Path>, choice: CheckpointChoice) -> Result<Predictor> {
        Self::load_checkpoint_with(path, choice, &[], registry::builtins())
    }

    /// [`Predictor::load_checkpoint`] with `overrides` applied to the run's config first
    /// (as `--set` does: e.g. `("data.val_batch_size", "500")`); settings that change
    /// the model's shape make its weights not fit, which is an error naming them.
    /// The model is rebuilt by name from `registry`.
    pub fn load_checkpoint_with(
        path: impl AsRef<Path>,
        choice: CheckpointChoice,
        overrides: &[(String, String)],
        registry: &Registry,
    ) -> Result<Predictor> {
        let path = path.as_ref();
        let ckpt = match choice {
            CheckpointChoice::Latest => checkpoint::load_latest(path)?,
            CheckpointChoice::Best => {
                if !path.exists() {
                    // load_latest's "not found" error, naming the path given.
                    checkpoint::load_latest(path)?;
                }
                let run = if path.join(checkpoint::STATE_FILE).is_file() {
                    checkpoint::run_dir_of(path)
                } else {
                    path.to_path_buf()
                };
                checkpoint::load(&run.join(BEST_DIR))?
            }
        };
        Self::from_checkpoint_with(ckpt, overrides, registry)
    }

    /// A checkpoint already loaded; it must come from a run built from a job config.
    pub fn from_checkpoint(ckpt: LoadedCheckpoint) -> Result<Predictor> {
        Self::from_checkpoint_with(ckpt, &[], registry::builtins())
    }

    /// [`Predictor::from_checkpoint`] with `overrides` applied to the run's config and
    /// the model rebuilt by name from `registry`.
    pub fn from_checkpoint_with(
        ckpt: LoadedCheckpoint,
        overrides: &[(String, String)],
        registry: &Registry,
    ) -> Result<Predictor> {
        let mut job = JobConfig::from_checkpoint(&ckpt)?.with_overrides(overrides)?;
        job.train.run_dir = checkpoint::run_dir_of(&ckpt.dir);
        let device = job.device.open()?;
        // The model is sized from the train data, as when it was built for training.
        let loaders = job.loaders_with(registry)?;
        let info = loaders.info;
        // The model's outputs are for the labels the transforms make.
        let (transforms, batches) = job.new_transforms(registry, &info)?;
        let task = super::build::task_of(&batches);
        let mut init = RngStream::new(job.train.seed, StreamId::Init);
        let mut model = job.new_model(registry, &info, &mut init, &device)?;
        let loss = job.new_loss(registry, &info)?;
        let vars = named_vars(model.varmap());
        for (v, t) in vars.iter().zip(ckpt.weights_for(&vars, &device)?) {
            v.var.set(&t)?;
        }
        model.load_carried_state(&ckpt.carried)?;
        let rng = RngStream::new(job.train.seed, StreamId::Dropout);
        let metrics = eval_metrics(&job, registry, task, batches.num_classes);
        let eval = EvalParts {
            val: loaders.val,
            metrics,
        };
        Ok(Predictor {
            job,
            dir: ckpt.dir,
            meta: ckpt.meta,
            info,
            transforms,
            task,
            device,
            loss,
            model: Mutex::new(ModelSlot { model, rng }),
            eval: Mutex::new(eval),
        })
    }

    /// The parts of an evaluation, locked for one.
    pub(crate) fn eval_parts(&self) -> std::sync::MutexGuard<'_, EvalParts> {
        self.eval.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The job config the run was built from (its `train.run_dir` is where the run is now).
    pub fn job(&self) -> &JobConfig {
        &self.job
    }

    /// The checkpoint directory the weights come from.
    pub fn checkpoint_dir(&self) -> &Path {
        &self.dir
    }

    /// The checkpoint's metadata: train state (metrics, best), run info.
    pub fn meta(&self) -> &CheckpointMeta {
        &self.meta
    }

    /// What the model's outputs mean.
    pub fn task(&self) -> Task {
        self.task
    }

    /// What the train data looks like: shape of one input sample, number of classes.
    pub fn data_info(&self) -> &DataInfo {
        &self.info
    }

    /// The run's loss.
    pub fn loss(&self) -> &dyn crate::losses::Loss {
        self.loss.as_ref()
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The model's variables by name (the names checkpoints use), sorted by name.
    pub fn variables(&self) -> Result<Vec<(String, Tensor)>> {
        let slot = self.lock();
        Ok(named_vars(slot.model.varmap())
            .into_iter()
            .map(|v| (v.name, v.var.as_tensor().clone()))
            .collect())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ModelSlot> {
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Raw data scaled as the job's loaders scale it (`data.scale`).
    pub(crate) fn scale_input(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.to_device(&self.device)?;
        let scale = self.job.data.input_scale() as f64;
        if scale == 1.0 {
            return Ok(x);
        }
        Ok((x.to_dtype(DType::F32)? * scale)?)
    }

    /// The job's `data.transforms`, in the order they are applied.
    pub fn transforms(&self) -> &Transforms {
        &self.transforms
    }

    /// Inputs already scaled, and their labels if any, as the model sees them: the job's
    /// transforms applied as on validation batches (nothing is drawn).
    pub(crate) fn transform(
        &self,
        x: Tensor,
        y: Option<Tensor>,
    ) -> Result<(Tensor, Option<Tensor>)> {
        if self.transforms.is_empty() {
            return Ok((x, y));
        }
        let mut rng = RngStream::new(self.job.train.seed, StreamId::Augment);
        let mut ctx = ApplyCtx {
            train: false,
            rng: &mut rng,
        };
        self.transforms.apply(x, y, &mut ctx)
    }

    /// The model's raw outputs (logits for a classifier) for inputs already scaled and
    /// transformed, in eval mode.
    pub(crate) fn forward_scaled(&self, x: &Tensor) -> Result<Tensor> {
        let mut slot = self.lock();
        let ModelSlot { model, rng } = &mut *slot;
        let mut ctx = ForwardCtx {
            train: false,
            dropout_rng: rng,
        };
        let out = model.forward(x, &mut ctx)?;
        model.reset_states();
        Ok(out)
    }

    /// The model's raw outputs (logits for a classifier) for raw inputs.
    pub fn logits(&self, x: &Tensor) -> Result<Tensor> {
        let (x, _) = self.transform(self.scale_input(x)?, None)?;
        self.forward_scaled(&x)
    }

    /// Outputs for a batch of raw inputs (samples on the first axis, each shaped like a
    /// training sample): for a classifier the class probabilities (softmax of the logits,
    /// `[n, classes]`), for regression the predicted values. On the model's device.
    pub fn predict(&self, x: &Tensor) -> Result<Tensor> {
        let out = self.logits(x)?;
        self.finish(&out)
    }

    fn finish(&self, logits: &Tensor) -> Result<Tensor> {
        match self.task {
            Task::Classification { .. } => Ok(candle_nn::ops::softmax_last_dim(
                &logits.to_dtype(DType::F32)?,
            )?),
            Task::Regression => Ok(logits.clone()),
        }
    }

    /// The predicted class of every sample of a batch of raw inputs: the argmax of the
    /// logits (the first on a tie; non-finite logits rank last), as the accuracy metric
    /// counts it. An error for a regression model.
    pub fn predict_classes(&self, x: &Tensor) -> Result<Vec<u32>> {
        let logits = self.logits(x)?;
        classes_of(&logits, self.task)
    }

    /// Predicts every sample of `input` (a file or directory AutoData reads; labels, if
    /// any, are ignored) into `out`, batch by batch (the job's validation batch size).
    /// By `out`'s extension: `.npy` (probabilities or values as f32 `[n, columns]`; a
    /// classifier's predicted classes go to `OUT.classes.npy`, i64), `.csv` (one row per
    /// sample: `p0..pK-1,class` or `y0..`), both streamed so inputs larger than memory
    /// work; `.safetensors` (tensors `outputs` and, for a classifier, `classes`), which is
    /// collected in memory first.
    pub fn predict_file(&self, input: &Path, out: &Path) -> Result<PredictionSummary> {
        let format = OutputFormat::of(out)?;
        let d = &self.job.data;
        let batch = d.val_batch_size.unwrap_or(d.batch_size);
        let input = &with_dir(input);
        let builder = if input.is_dir() {
            AutoData::from_dir(input)?
        } else {
            AutoData::from_file(input)?
        };
        let data = builder.batch_size(batch).shuffle(false).build()?;
        let info = data.info();
        let expected: usize = self.info.sample_shape.iter().product();
        let got: usize = info.sample_shape.iter().product();
        if got != expected {
            return Err(Error::Data(format!(
                "{}: samples of shape {:?} ({got} values), the model takes {:?} ({expected})",
                input.display(),
                info.sample_shape,
                self.info.sample_shape
            )));
        }
        let columns = match self.task {
            Task::Classification { num_classes } => num_classes,
            Task::Regression => 1,
        };
        let classify = matches!(self.task, Task::Classification { .. });
        let mut sink = Sink::create(format, out, info.num_samples, columns, classify)?;
        let mut state = data.new_state();
        let sets = data.plan_epoch(1, &mut state)?;
        let mut samples = 0;
        for name in &sets {
            let mut window = 0;
            loop {
                let b = data.load(&state, SetRef::new(name).window(window), &self.device)?;
                let logits = self.logits(&b.x)?;
                let values = self.finish(&logits)?;
                let cols = values.elem_count() / b.size().max(1);
                if cols != columns {
                    return Err(Error::Data(format!(
                        "{}: the model gave {cols} values per sample, expected {columns}",
                        input.display()
                    )));
                }
                let values = values
                    .to_dtype(DType::F32)?
                    .flatten_all()?
                    .to_vec1::<f32>()?;
                let classes = if classify {
                    classes_of(&logits, self.task)?
                } else {
                    Vec::new()
                };
                sink.write(&values, &classes, columns)?;
                samples += b.size();
                if b.is_last_window() {
                    break;
                }
                window += 1;
            }
        }
        let files = sink.finish(samples)?;
        Ok(PredictionSummary {
            samples,
            columns,
            files,
        })
    }
}

/// The run's metrics built by name from `registry` as the job builder builds them for
/// training (same context: classes after the transforms, class names, run directory).
fn eval_metrics(
    job: &JobConfig,
    registry: &Registry,
    task: Task,
    num_classes: Option<usize>,
) -> Result<(MetricSet, Vec<Box<dyn StreamingMetric>>)> {
    let built = job.new_metrics(registry, num_classes)?;
    crate::trainer::split_built_metrics(task, !job.train.metrics.is_empty(), built)
}

/// `x.npy` as `./x.npy`: AutoData looks for labels in the parent directory, which must
/// not be empty.
pub(crate) fn with_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if p.as_os_str().is_empty() => Path::new(".").join(path),
        _ => path.to_path_buf(),
    }
}

/// Per-row argmax of logits, non-finite values ranking last.
fn classes_of(logits: &Tensor, task: Task) -> Result<Vec<u32>> {
    let Task::Classification { num_classes } = task else {
        return Err(Error::Data(
            "predicted classes need a classifier; this model does regression".into(),
        ));
    };
    let mut scores = logits
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    for x in scores.iter_mut().filter(|x| !x.is_finite()) {
        *x = f32::MIN;
    }
    Ok(scores
        .chunks_exact(num_classes.max(1))
        .map(|row| argmax(row) as u32)
        .collect())
}

/// An output format, by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutputFormat {
    Npy,
    Csv,
    Safetensors,
}

impl OutputFormat {
    fn of(path: &Path) -> Result<Self> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("npy") => Ok(Self::Npy),
            Some("csv") => Ok(Self::Csv),
            Some("safetensors") => Ok(Self::Safetensors),
            _ => Err(Error::Data(format!(
                "{}: unknown output extension, expected one of {OUTPUT_EXTENSIONS}",
                path.display()
            ))),
        }
    }
}

/// Whether `path` names an output format [`Predictor::predict_file`] writes, and if not,
/// the error it would give.
pub fn check_output_path(path: &Path) -> Result<()> {
    OutputFormat::of(path).map(|_| ())
}

/// The classes file beside a `.npy` output: `OUT.classes.npy`.
fn classes_path(out: &Path) -> PathBuf {
    out.with_extension("classes.npy")
}

/// Where predictions go, batch by batch.
enum Sink {
    Npy {
        values: (PathBuf, BufWriter<File>),
        classes: Option<(PathBuf, BufWriter<File>)>,
        expected: usize,
    },
    Csv(PathBuf, Box<csv::Writer<File>>),
    Safetensors {
        path: PathBuf,
        values: Vec<f32>,
        classes: Vec<i64>,
        columns: usize,
        classify: bool,
    },
}

impl Sink {
    fn create(
        format: OutputFormat,
        out: &Path,
        rows: usize,
        columns: usize,
        classify: bool,
    ) -> Result<Sink> {
        Ok(match format {
            OutputFormat::Npy => {
                let values = npy_writer(out, ArrayDType::F32, &[rows, columns])?;
                let classes = if classify {
                    let p = classes_path(out);
                    Some(npy_writer(&p, ArrayDType::I64, &[rows])?)
                } else {
                    None
                };
                Sink::Npy {
                    values,
                    classes,
                    expected: rows,
                }
            }
            OutputFormat::Csv => {
                let mut w = csv::Writer::from_path(out).map_err(|e| csv_error(out, e))?;
                let prefix = if classify { "p" } else { "y" };
                let mut header: Vec<String> =
                    (0..columns).map(|i| format!("{prefix}{i}")).collect();
                if classify {
                    header.push("class".into());
                }
                w.write_record(&header).map_err(|e| csv_error(out, e))?;
                Sink::Csv(out.to_path_buf(), Box::new(w))
            }
            OutputFormat::Safetensors => Sink::Safetensors {
                path: out.to_path_buf(),
                values: Vec::new(),
                classes: Vec::new(),
                columns,
                classify,
            },
        })
    }

    fn write(&mut self, values: &[f32], classes: &[u32], columns: usize) -> Result<()> {
        match self {
            Sink::Npy {
                values: (vp, vw),
                classes: cw,
                ..
            } => {
                let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                vw.write_all(&bytes).at(vp.as_path())?;
                if let Some((cp, cw)) = cw {
                    let bytes: Vec<u8> = classes
                        .iter()
                        .flat_map(|c| i64::from(*c).to_le_bytes())
                        .collect();
                    cw.write_all(&bytes).at(cp.as_path())?;
                }
            }
            Sink::Csv(path, w) => {
                for (i, row) in values.chunks_exact(columns).enumerate() {
                    let mut rec: Vec<String> = row.iter().map(|v| v.to_string()).collect();
                    if let Some(c) = classes.get(i) {
                        rec.push(c.to_string());
                    }
                    w.write_record(&rec).map_err(|e| csv_error(path, e))?;
                }
            }
            Sink::Safetensors {
                values: vs,
                classes: cs,
                ..
            } => {
                vs.extend_from_slice(values);
                cs.extend(classes.iter().map(|c| i64::from(*c)));
            }
        }
        Ok(())
    }

    /// Flushes and closes; checks the row count promised in `.npy` headers.
    fn finish(self, samples: usize) -> Result<Vec<PathBuf>> {
        match self {
            Sink::Npy {
                values,
                classes,
                expected,
            } => {
                let mut files = Vec::new();
                for (path, mut w) in std::iter::once(values).chain(classes) {
                    w.flush().at(path.as_path())?;
                    if samples != expected {
                        return Err(Error::Data(format!(
                            "{}: the input announced {expected} samples but gave {samples}",
                            path.display()
                        )));
                    }
                    files.push(path);
                }
                Ok(files)
            }
            Sink::Csv(path, mut w) => {
                w.flush().at(path.as_path())?;
                Ok(vec![path])
            }
            Sink::Safetensors {
                path,
                values,
                classes,
                columns,
                classify,
            } => {
                let rows = values.len() / columns.max(1);
                let mut tensors = vec![(
                    "outputs".to_string(),
                    Tensor::from_vec(values, (rows, columns), &Device::Cpu)?,
                )];
                if classify {
                    let n = classes.len();
                    tensors.push((
                        "classes".to_string(),
                        Tensor::from_vec(classes, n, &Device::Cpu)?,
                    ));
                }
                let map: std::collections::HashMap<String, Tensor> = tensors.into_iter().collect();
                candle_core::safetensors::save(&map, &path)?;
                Ok(vec![path])
            }
        }
    }
}

fn csv_error(path: &Path, e: csv::Error) -> Error {
    Error::Data(format!("{}: {e}", path.display()))
}

/// Opens `path` and writes a `.npy` header for `shape`, laid out as `np.save` lays it
/// out (version 1.0, data at a multiple of 64 bytes), so rows can follow as they come.
/// `npy::write_npy` wants all the data at once; this is its header part for streaming.
fn npy_writer(
    path: &Path,
    dtype: ArrayDType,
    shape: &[usize],
) -> Result<(PathBuf, BufWriter<File>)> {
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}",
        npy_descr(dtype),
        fmt_shape(shape)
    );
    let total = (10 + header.len() + 1).next_multiple_of(64);
    while 10 + header.len() + 1 < total {
        header.push(' ');
    }
    header.push('\n');
    let file = File::create(path).at(path)?;
    let mut w = BufWriter::new(file);
    let mut head = Vec::with_capacity(total);
    head.extend_from_slice(b"\x93NUMPY\x01\x00");
    head.extend_from_slice(&(header.len() as u16).to_le_bytes());
    head.extend_from_slice(header.as_bytes());
    w.write_all(&head).at(path)?;
    debug_assert_eq!(w.stream_position().ok(), Some(total as u64));
    Ok((path.to_path_buf(), w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_npy_headers_match_write_npy() {
        let dir = tempfile::tempdir().unwrap();
        for (dtype, shape) in [
            (ArrayDType::F32, vec![3usize, 2]),
            (ArrayDType::I64, vec![3usize]),
        ] {
            let n: usize = shape.iter().product();
            let bytes: Vec<u8> = (0..n * dtype.size()).map(|i| i as u8).collect();
            let a = dir.path().join("a.npy");
            let b = dir.path().join("b.npy");
            crate::data_loaders::npy::write_npy(&a, dtype, &shape, &bytes).unwrap();
            let (_, mut w) = npy_writer(&b, dtype, &shape).unwrap();
            w.write_all(&bytes).unwrap();
            w.flush().unwrap();
            drop(w);
            assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        }
    }
}
