//! Evaluating a trained model: every metric the run was configured with, a per-class
//! table and the confusion matrix, over the run's validation data or any labelled source
//! AutoData reads. Batches, loss and metric updates are exactly the trainer's validation
//! ones, so on the run's own validation data the numbers equal its last `val_*` metrics.

use std::collections::BTreeMap;
use std::path::PathBuf;

use candle_core::DType;
use serde::{Deserialize, Serialize};

use super::predict::Predictor;
use crate::data_loaders::{DataLoader, LoaderState, SetRef};
use crate::error::{Error, Result};
use crate::metrics::{argmax, ConfusionMatrix, MetricSet, StreamingMetric};
use crate::model::Task;
use crate::rng::{RngStream, StreamId};

/// What to evaluate on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum EvalData {
    /// The run's validation data as its job config defines it (the default).
    #[default]
    Validation,
    /// A labelled file or directory AutoData reads; scaled and batched as the job's
    /// validation data.
    Source(PathBuf),
}

/// One row of the per-class table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassRow {
    /// The class index.
    pub class: usize,
    /// Its name, where the job gives `data.class_names`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Of the samples predicted as this class, the share that are (0 when none is).
    pub precision: f64,
    /// Of the samples of this class, the share predicted as it (0 when none is).
    pub recall: f64,
    /// Harmonic mean of precision and recall (0 when both are).
    pub f1: f64,
    /// Samples of this class.
    pub support: u64,
}

/// The result of an evaluation; `deeptrain evaluate --json` prints it as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The checkpoint directory the weights came from.
    pub checkpoint: String,
    /// What was evaluated: `validation` or the source's path.
    pub data: String,
    /// Samples evaluated.
    pub samples: u64,
    /// Every configured metric by name (as in the run's history without the `val_`
    /// prefix); `null` where undefined (NaN). Weighted by the samples' weights where the
    /// data has them (`data.val_weights`).
    pub metrics: BTreeMap<String, Option<f64>>,
    /// Precision, recall, F1 and support per class (empty for regression).
    pub per_class: Vec<ClassRow>,
    /// Counts `[actual][predicted]` (empty for regression); samples, not weights.
    pub confusion_matrix: Vec<Vec<u64>>,
}

impl Predictor {
    /// Runs the model in eval mode over `data` and computes every metric the run was
    /// configured with (`train.metrics`, else the task's defaults), as its validation
    /// computes them: the fixed set, and the streaming metrics (users' own, built by the
    /// registry the predictor was loaded with; multi-class `roc_auc`), which see every
    /// batch with its sample weights, if the data has them. `confusion_matrix` adds no
    /// value (writes no file): the evaluation's own confusion matrix is that table.
    /// Also the per-class table and the confusion matrix.
    pub fn evaluate(&self, data: &EvalData) -> Result<Evaluation> {
        let job = self.job();
        let d = &job.data;
        let batch_size = d.val_batch_size.unwrap_or(d.batch_size);
        let mut parts = self.eval_parts();
        let parts = &mut *parts;
        let (set, streaming) = match &mut parts.metrics {
            Ok((set, streaming)) => (set.clone(), streaming),
            Err(e) => return Err(again(e)),
        };
        let source: Box<dyn DataLoader>;
        let (loader, label): (&dyn DataLoader, String) = match data {
            EvalData::Validation => match &parts.val {
                Some(v) => (v.as_ref(), "validation".into()),
                None => {
                    return Err(Error::config(
                        "data",
                        format!(
                            "the run in {} has no validation data: give a labelled source to \
                             evaluate on",
                            job.train.run_dir.display()
                        ),
                    ))
                }
            },
            EvalData::Source(path) => {
                let with_dir = super::predict::with_dir(path);
                let with_dir = with_dir.to_string_lossy();
                source = Box::new(job.auto_data(&with_dir, None, None, None, batch_size, false)?);
                (source.as_ref(), path.display().to_string())
            }
        };
        // The trainer's validation loader state, so the batches are the same.
        let mut state = LoaderState::new(
            batch_size,
            false,
            false,
            &RngStream::new(job.train.seed, StreamId::ValShuffle),
        );
        loader.configure_state(&mut state);
        let task = self.task();
        let loss_fn = self.loss();
        let mut metrics = Metrics {
            set,
            streaming,
            confusion: match task {
                Task::Classification { num_classes } => Some(
                    ConfusionMatrix::new(num_classes)
                        .map_err(|e| Error::config("model", e.to_string()))?,
                ),
                Task::Regression => None,
            },
        };
        metrics.streaming.iter_mut().for_each(|m| m.reset());
        let sets = loader.plan_epoch(1, &mut state)?;
        let mut samples = 0u64;
        for name in &sets {
            let mut window = 0;
            loop {
                let b = loader.load(&state, SetRef::new(name).window(window), self.device())?;
                let (x, y) = match self.transform(b.x.clone(), Some(b.y.clone()))? {
                    (x, Some(y)) => (x, y),
                    (_, None) => {
                        return Err(Error::Data(format!(
                            "{label}: a transform dropped the labels"
                        )))
                    }
                };
                let output = self.forward_scaled(&x)?;
                // Per-sample weights where the data has them (`data.val_weights`, or the
                // weights of samples split off by `data.val_split`).
                let weights = b.weights.as_ref();
                let loss = loss_fn.forward(&output, &y, weights)?;
                let loss = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
                metrics.update(task, (loss, weights), &output, &y, &label)?;
                if b.is_last_window() {
                    samples += b.size() as u64;
                    break;
                }
                window += 1;
            }
        }
        let (per_class, matrix) = match &metrics.confusion {
            Some(c) => (class_rows(c, job.data.class_names.as_deref()), rows_of(c)),
            None => (Vec::new(), Vec::new()),
        };
        let values: Vec<(String, f64)> = metrics
            .set
            .compute()
            .into_iter()
            .chain(metrics.streaming.iter().flat_map(|m| m.values()))
            .collect();
        // Nothing of this evaluation stays in the metrics (no file is written from it).
        metrics.streaming.iter_mut().for_each(|m| m.reset());
        Ok(Evaluation {
            checkpoint: self.checkpoint_dir().display().to_string(),
            data: label,
            samples,
            metrics: values
                .into_iter()
                .map(|(k, v)| (k, v.is_finite().then_some(v)))
                .collect(),
            per_class,
            confusion_matrix: matrix,
        })
    }
}

/// An error kept from when the predictor was loaded, reported again (errors are not
/// `Clone`): a setting's error as that setting's, anything else as a data error.
fn again(e: &Error) -> Error {
    match e {
        Error::Config { field, reason } => Error::Config {
            field: field.clone(),
            reason: reason.clone(),
        },
        other => Error::Data(format!("train.metrics: {other}")),
    }
}

/// What one evaluation accumulates: the run's metrics (the fixed set and the streaming
/// ones) and the confusion matrix (for a classifier).
struct Metrics<'a> {
    set: MetricSet,
    streaming: &'a mut Vec<Box<dyn StreamingMetric>>,
    confusion: Option<ConfusionMatrix>,
}

impl Metrics<'_> {
    /// One batch (its mean loss and sample weights) into the metrics, exactly as the
    /// trainer's validation does it, and into the confusion matrix (which counts samples,
    /// unweighted).
    fn update(
        &mut self,
        task: Task,
        (mean_loss, weights): (f64, Option<&candle_core::Tensor>),
        output: &candle_core::Tensor,
        y: &candle_core::Tensor,
        source: &str,
    ) -> Result<()> {
        let bad = |e: Error| match e {
            Error::Metric(e) => Error::Data(format!("{source}: {e}")),
            other => other,
        };
        let host =
            crate::trainer::update_metrics(&mut self.set, task, mean_loss, output, y, weights)
                .map_err(bad)?;
        let view = host.view();
        for m in self.streaming.iter_mut() {
            m.update(&view)
                .map_err(|e| Error::Data(format!("{source}: metric `{}`: {e}", m.name())))?;
        }
        if let (Some(c), Task::Classification { num_classes }, Ok(targets)) =
            (self.confusion.as_mut(), task, &host.targets)
        {
            for (row, &t) in host.scores.chunks_exact(num_classes).zip(targets) {
                c.record(t, argmax(row) as u32)
                    .map_err(|e| Error::Data(format!("{source}: {e}")))?;
            }
        }
        Ok(())
    }
}

/// `a / b`, 0 when `b` is 0 (scikit-learn's `zero_division=0`).
fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

fn class_rows(c: &ConfusionMatrix, names: Option<&[String]>) -> Vec<ClassRow> {
    let k = c.num_classes();
    (0..k)
        .map(|class| {
            let tp = c.count(class, class);
            let predicted: u64 = (0..k).map(|a| c.count(a, class)).sum();
            let support: u64 = (0..k).map(|p| c.count(class, p)).sum();
            ClassRow {
                class,
                name: names.and_then(|n| n.get(class)).cloned(),
                precision: ratio(tp, predicted),
                recall: ratio(tp, support),
                f1: ratio(2 * tp, predicted + support),
                support,
            }
        })
        .collect()
}

fn rows_of(c: &ConfusionMatrix) -> Vec<Vec<u64>> {
    let k = c.num_classes();
    (0..k)
        .map(|a| (0..k).map(|p| c.count(a, p)).collect())
        .collect()
}
