//! TensorBoard logging: scalars per batch and per validation, histograms of weights and
//! gradients every N steps, and the run's config as text.
//!
//! This file is the [`TensorBoard`] callback; the event files it writes are made by
//! `writer.rs` ([`EventWriter`]) from `proto.rs` (protobuf encoding of the events),
//! `record.rs` (TFRecord framing and its masked CRC-32C) and `histogram.rs` (bucketing).

use std::path::PathBuf;

mod histogram;
pub mod hparams;
mod proto;
mod record;
mod writer;

pub use histogram::Histogram;
pub use record::masked_crc32c;
pub use writer::{system_wall_time, EventWriter, TbError};

use crate::callbacks::{Callback, Stage, TrainerView};
use crate::error::Result;
use crate::optim::with_cpu_f32;

/// Writes TensorBoard event files into a directory: `train/{metric}` scalars for every fit
/// train set and `val/{metric}` for every validation (x axis: `batches_fit`; non-finite
/// values are left out), plus optional `weights/{var}` and `grads/{var}` histograms and
/// texts. Each session writes its own file, created at the first event; flushed at every
/// validation, epoch end, checkpoint, interrupt and train end. Registered as `tensorboard`.
pub struct TensorBoard {
    dir: PathBuf,
    writer: Option<EventWriter>,
    /// Histograms of weights and gradients every this many optimizer steps (0: never).
    pub histogram_every: u64,
    /// `(tag, text)` pairs written at every `TrainBegin` (so once per session file), each
    /// as a Markdown code block, e.g. `("config", json)`.
    pub texts: Vec<(String, String)>,
}

impl TensorBoard {
    /// Logs into `dir` (created when needed), with no histograms and no texts.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            writer: None,
            histogram_every: 0,
            texts: Vec::new(),
        }
    }
    /// Weight and gradient histograms every `steps` optimizer steps (default 0: never).
    pub fn histogram_every(mut self, steps: u64) -> Self {
        self.histogram_every = steps;
        self
    }
    /// Adds a text shown under `tag` in TensorBoard's Text tab (e.g. the run's config).
    pub fn text(mut self, tag: &str, text: impl Into<String>) -> Self {
        self.texts.push((tag.to_string(), text.into()));
        self
    }

    fn writer(&mut self) -> Result<&mut EventWriter> {
        if self.writer.is_none() {
            // Each session writes its own file; TensorBoard merges them by name order.
            self.writer = Some(EventWriter::create(&self.dir)?);
        }
        match self.writer.as_mut() {
            Some(w) => Ok(w),
            None => unreachable!("writer was just created"),
        }
    }
}

impl Callback for TensorBoard {
    fn name(&self) -> String {
        "tensorboard".into()
    }

    fn on_stage(&mut self, stage: Stage, view: &mut TrainerView) -> Result<()> {
        let s = view.state;
        match stage {
            Stage::TrainBegin => {
                let texts = std::mem::take(&mut self.texts);
                let step = s.batches_fit as i64;
                for (tag, text) in &texts {
                    self.writer()?
                        .add_text(tag, &format!("```\n{text}\n```"), step)?;
                }
                self.texts = texts;
            }
            // A set's row exists once its last window is fit: `TrainBatchEnd` (a set cut
            // into windows ends several iterations, and only the last one adds a row).
            Stage::TrainBatchEnd => {
                let h = &s.train_history;
                if h.at_batches_fit.last() != Some(&s.batches_fit) {
                    return Ok(());
                }
                let step = s.batches_fit as i64;
                let i = h.len() - 1;
                let w = self.writer()?;
                for (name, values) in &h.metrics {
                    if values[i].is_finite() {
                        w.add_scalar(&format!("train/{name}"), values[i], step)?;
                    }
                }
                if self.histogram_every > 0 && s.global_step.is_multiple_of(self.histogram_every) {
                    for v in view.vars {
                        let values = with_cpu_f32(v.var.as_tensor(), |x| x.to_vec())?;
                        self.writer()?.add_histogram(
                            &format!("weights/{}", v.name),
                            &values,
                            step,
                        )?;
                        if let Some(g) = view.grads.and_then(|g| g.get(v.var.as_tensor())) {
                            let values = with_cpu_f32(g, |x| x.to_vec())?;
                            self.writer()?.add_histogram(
                                &format!("grads/{}", v.name),
                                &values,
                                step,
                            )?;
                        }
                    }
                }
            }
            Stage::ValEnd => {
                let step = s.batches_fit as i64;
                let latest = s.val_history.latest();
                let w = self.writer()?;
                for (name, value) in latest {
                    if value.is_finite() {
                        w.add_scalar(
                            &format!("val/{}", name.trim_start_matches("val_")),
                            value,
                            step,
                        )?;
                    }
                }
                w.flush()?;
            }
            Stage::Save | Stage::Interrupt | Stage::TrainEnd | Stage::TrainEpochEnd => {
                if let Some(w) = self.writer.as_mut() {
                    w.flush()?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}
