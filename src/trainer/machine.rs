//! The state machine. Read this file top to bottom.
//!
//! `fit` runs `advance` in a loop; each call makes exactly one transition:
//!
//! ```text
//!            ┌──────────────┐ plan epoch  ┌───────┐ one batch per call
//!  start ──▶ │  EpochStart  │ ──────────▶ │ Train │ ◀──────────┐
//!            └──────────────┘             └───────┘ ───────────┘
//!                   ▲                      │    │ every N batches / steps
//!                   │         epoch end    │    ▼
//!                   │  ◀───────────────────┘  ┌──────────────────────┐ one batch per call
//!                   └──────────────────────── │ Validate { then }    │ ◀──────┐
//!                        then = EpochStart    └──────────────────────┘ ───────┘
//!                                               │ then = Finish      ▲ then = Train (back to
//!                                               ▼                    │ the epoch in progress)
//!                                             Done
//! ```
//! Between two transitions the whole run is described by `TrainState`, the model's
//! variables and the optimizer's buffers (with the sums of an open gradient-accumulation
//! group): that is what a checkpoint holds, and a stop is checked for (and honoured) only
//! there, so a stop anywhere resumes exactly.
//!
//! Two limits end a run early: `max_steps` (checked after every train batch: the run
//! validates once more, as after its last epoch, and finishes) and `max_time` (checked
//! after every transition, like a stop request: the run ends stopped by `max_time`).

use std::time::Instant;

use candle_core::{DType, Tensor};

use super::{Outcome, Trainer};
use crate::callbacks::{Control, Stage, TrainerView};
use crate::checkpoint::SaveReason;
use crate::data_loaders::SetRef;
use crate::error::{Error, Result};
use crate::metrics::{Direction, HostBatch, MetricSet};
use crate::model::{ForwardCtx, Task};
use crate::optim::grad_sq_norms;
use crate::state::{AfterValidation, Best, DoneReason, Phase, SetKind, StopRequest};

impl Trainer {
    /// Trains until done, interrupted or stopped. Call again after an interrupt to go on.
    ///
    /// A stop request made before `fit` starts (a signal while the job was being built)
    /// is honoured at the first check: nothing is trained, and an interrupt checkpoint is
    /// written. The interrupt handle is cleared only when `fit` returns
    /// `Outcome::Interrupted` (the request was honoured); a request that arrives after the
    /// last check (during the final save) is left set, for the caller to see.
    ///
    /// Holds the run directory's lock ([`RunLock`](super::RunLock)) until it returns (or
    /// trains under the one given to [`hold_run_lock`](Self::hold_run_lock)): a second
    /// trainer on the same directory, in this process or another, is refused.
    ///
    /// Returns once every checkpoint it wrote has landed, background ones included (see
    /// `TrainConfig::save_in_background`); a background save that failed is its error.
    pub fn fit(&mut self) -> Result<Outcome> {
        let held = self
            .run_lock
            .as_ref()
            .is_some_and(|l| l.is_for(&self.config.run_dir));
        // Held until the last background save has landed too.
        let _lock = match held {
            true => None,
            false => Some(super::RunLock::acquire(&self.config.run_dir)?),
        };
        // Saves queued before (`queue_checkpoint`) land before `clean_stale` looks for
        // what killed sessions left.
        self.wait_for_saves()?;
        let outcome = self.fit_session();
        let landed = self.wait_for_saves();
        match (outcome, landed) {
            (Ok(outcome), Ok(())) => Ok(outcome),
            (Ok(_), Err(e)) | (Err(e), _) => Err(e),
        }
    }

    /// `fit` under the run lock, until it returns; background saves may still be landing.
    fn fit_session(&mut self) -> Result<Outcome> {
        self.check_callback_states()?;
        // What killed sessions left behind goes before anything is written.
        if let Err(e) = crate::checkpoint::clean_stale(&self.config.run_dir) {
            log::warn!("{e}");
        }
        self.state.time.sessions += 1;
        self.clock = Instant::now();
        self.fire(Stage::TrainBegin);
        self.take_callback_error_with_checkpoint()?;
        loop {
            if let Phase::Done { reason } = &self.state.phase {
                let reason = reason.clone();
                let why = match reason {
                    DoneReason::Finished => SaveReason::Finish,
                    DoneReason::Stopped(_) => SaveReason::Stop,
                };
                let checkpoint = self.checkpoint_if_new(why)?;
                self.write_run_report(why);
                self.fire(Stage::TrainEnd);
                self.take_callback_error()?;
                return Ok(match reason {
                    DoneReason::Finished => Outcome::Finished,
                    DoneReason::Stopped(stop) => Outcome::Stopped { stop, checkpoint },
                });
            }
            if self.interrupt.is_set() {
                let checkpoint = self.checkpoint_if_new(SaveReason::Interrupt)?;
                self.write_run_report(SaveReason::Interrupt);
                self.fire(Stage::Interrupt);
                self.take_callback_error()?;
                // Honoured: the next `fit` goes on.
                self.interrupt.clear();
                return Ok(Outcome::Interrupted { checkpoint });
            }
            // A background save that failed stops the run here, one transition later.
            self.poll_saves()?;
            self.control = Control::default();
            if let Err(e) = self.advance() {
                return Err(self.checkpoint_if_data_changed(e));
            }
            self.take_callback_error_with_checkpoint()?;
            if let Some(lr) = self.control.learning_rate {
                self.state.learning_rate_override = Some(lr);
            }
            if let Some(stop) = self
                .control
                .stop
                .take()
                .or_else(|| self.time_limit_reached())
            {
                self.state.phase = Phase::Done {
                    reason: DoneReason::Stopped(stop),
                };
            }
            if self.control.checkpoint {
                self.checkpoint_if_new(SaveReason::Periodic)?;
            }
            if std::mem::take(&mut self.best_improved) && self.config.save_best {
                self.save_best()?;
            }
        }
    }

    /// Makes exactly one transition of the state machine.
    fn advance(&mut self) -> Result<()> {
        match self.state.phase.clone() {
            Phase::EpochStart => {
                let epoch = self.state.train_data.epoch + 1;
                let sets = self
                    .train_data
                    .plan_epoch(epoch, &mut self.state.train_data.loader)?;
                self.state.train_data.start_epoch(epoch, sets);
                self.state.batch_in_epoch = 0;
                self.state.phase = Phase::Train;
                self.fire(Stage::TrainEpochBegin);
                Ok(())
            }
            Phase::Train if self.state.train_data.current().is_none() => self.end_epoch(),
            // Only mid-set (between the windows of a set) or with a lowered `max_steps`:
            // a batch that reaches it ends the run itself.
            Phase::Train if self.steps_exhausted() => self.finish_early(),
            Phase::Train => self.train_iteration(),
            Phase::Validate { then } if self.state.val_data.current().is_none() => {
                self.end_validation(then)
            }
            Phase::Validate { .. } => self.val_iteration(),
            Phase::Done { .. } => Ok(()),
        }
    }

    fn train_iteration(&mut self) -> Result<()> {
        let started = Instant::now();
        self.last_batch = None;
        let steps_before = self.state.global_step;
        // Windows (stateful time series): a set may be cut into several windows, one per
        // iteration. It stays first in `sets_to_process` until its last window is fit;
        // only then does it count as a batch. A set skipped at `TrainIterBegin` is
        // skipped whole. Sets without windows are one window, so all of this is a no-op.
        let cursor = &self.state.train_data;
        let name = cursor.current().unwrap_or_default().to_string();
        let at = SetRef {
            name: &name,
            window: cursor.window as usize,
            epoch: cursor.epoch,
        };
        // Loaded before anything changes (callbacks included): a batch that cannot be
        // read leaves the run as it was before it (see `fit` on data changed under the run).
        let batch = self
            .train_data
            .load(&self.state.train_data.loader, at, &self.device)?;
        self.fire(Stage::TrainIterBegin);
        self.state.set_name = name.clone();
        self.state.set_kind = Some(SetKind::Train);
        let mut row: Vec<(String, f64)> = Vec::new();
        let mut last_window = true;
        if !self.control.skip_batch {
            let batch = self.transformed(batch, true)?;
            last_window = batch.is_last_window();
            let lr = self.current_learning_rate();
            self.optimizer.set_learning_rate(lr);
            let mut ctx = ForwardCtx {
                train: true,
                dropout_rng: &mut self.dropout_rng,
            };
            let output = self.model.forward(&batch.x, &mut ctx)?;
            self.state.rng.dropout = self.dropout_rng.state();
            let loss = self
                .loss
                .forward(&output, &batch.y, batch.weights.as_ref())?;
            let loss_value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            if !loss_value.is_finite() {
                self.fire(Stage::Exception);
                if self.control.stop.is_none() && !self.control.skip_batch {
                    self.control.stop = Some(StopRequest::new(
                        "trainer",
                        format!(
                            "loss is {loss_value} at batch {name} (step {})",
                            self.state.global_step
                        ),
                    ));
                }
            } else {
                let grads = loss.backward()?;
                let sq = grad_sq_norms(self.optimizer.vars(), &grads)?;
                let global = sq.iter().sum::<f64>().sqrt();
                // Published before `BeforeStep`, so checks can use them instead of
                // scanning the gradients again (a NaN or Inf makes its layer's norm so).
                self.state.grad_norm = global;
                self.state.layer_grad_norms = self
                    .optimizer
                    .vars()
                    .iter()
                    .zip(&sq)
                    .map(|(v, s)| (v.name.clone(), s.sqrt()))
                    .collect();
                self.grads = Some(grads);
                self.fire(Stage::BeforeStep);
                if !self.control.skip_batch {
                    if let Some(grads) = &self.grads {
                        // With `accumulate_batches` N, every Nth batch makes the update.
                        if self
                            .optimizer
                            .fit(grads, global, self.config.clip_grad_norm)?
                        {
                            self.state.global_step += 1;
                        }
                    }
                }
                self.state.learning_rate = lr;
                let mut m = self.metrics.clone();
                let host = update_metrics(
                    &mut m,
                    self.task,
                    loss_value,
                    &output,
                    &batch.y,
                    batch.weights.as_ref(),
                )?;
                row = m.compute();
                self.streaming_train_row(&host, &mut row)?;
                self.last_batch = Some(host);
                row.push(("lr".into(), lr));
                row.push(("grad_norm".into(), global));
            }
        }
        if !row.is_empty() {
            self.state.window_rows.push(row);
        }
        let stepped = self.state.global_step > steps_before;
        if !last_window {
            // More windows of this set follow: the carried state is kept, the set is not
            // done. Validation and batch-based checkpoints wait for the set's end.
            self.state.train_data.next_window();
            self.state.time.train_secs += started.elapsed().as_secs_f64();
            self.tick();
            self.fire(Stage::TrainIterEnd);
            self.grads = None;
            let every = self.config.checkpoint_every;
            if stepped && matches!(every, super::Every::Steps(_)) && every.due(&self.state) {
                self.control.checkpoint = true;
            }
            return Ok(());
        }
        // The set is done: forget the recurrent state, and record one history row (the
        // mean of its windows' rows).
        self.state.train_data.finish_set();
        let row = mean_rows(std::mem::take(&mut self.state.window_rows));
        self.model.reset_states();
        self.state.batches_fit += 1;
        self.state.batch_in_epoch += 1;
        if !row.is_empty() {
            self.state.train_history.push(self.state.batches_fit, &row);
            let layers: Vec<(String, f64)> = self
                .state
                .layer_grad_norms
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            self.state
                .grad_norm_history
                .push(self.state.batches_fit, &layers);
        }
        self.state.time.train_secs += started.elapsed().as_secs_f64();
        self.tick();
        self.fire(Stage::TrainBatchEnd);
        self.fire(Stage::TrainIterEnd);
        self.grads = None;
        // Step-based validation counts only batches that made a step (a skipped batch,
        // or one accumulated toward a later update, leaves `global_step` where it was).
        let validate = self.config.validate_every;
        let due = !validate.counts_epochs()
            && validate.due(&self.state)
            && (stepped || !matches!(validate, super::Every::Steps(_)));
        // A validation due exactly at an epoch end waits for the end-of-epoch check, and
        // so does `max_steps` reached there.
        let mid_epoch = self.state.train_data.current().is_some();
        if mid_epoch && self.steps_exhausted() {
            self.finish_early()?;
        } else if due && mid_epoch {
            self.start_validation(AfterValidation::Train)?;
        }
        let every = self.config.checkpoint_every;
        let counts = !matches!(every, super::Every::Steps(_)) || stepped;
        if !every.counts_epochs() && counts && every.due(&self.state) {
            self.control.checkpoint = true;
        }
        Ok(())
    }

    /// Whether `max_steps` optimizer updates have been made.
    fn steps_exhausted(&self) -> bool {
        self.config
            .max_steps
            .is_some_and(|max| self.state.global_step >= max)
    }

    /// `max_steps` reached inside an epoch: the run validates once more where validation
    /// is on (as after its last epoch), then finishes.
    fn finish_early(&mut self) -> Result<()> {
        if self.config.validate_every.is_on() && self.val_data.is_some() {
            return self.start_validation(AfterValidation::Finish);
        }
        self.state.phase = Phase::Done {
            reason: DoneReason::Finished,
        };
        Ok(())
    }

    /// A stop by `max_time` once the run's wall-clock total (over all its sessions)
    /// reaches it; `None` before, and for a run already done.
    fn time_limit_reached(&self) -> Option<StopRequest> {
        let limit = self.max_time_secs?;
        let spent = self.state.time.total_secs;
        (spent >= limit && !self.state.is_done()).then(|| {
            StopRequest::new(
                "max_time",
                format!(
                    "the run has trained {spent:.1} s, its max_time is {} ({limit} s)",
                    self.config.max_time.as_deref().unwrap_or_default()
                ),
            )
        })
    }

    fn end_epoch(&mut self) -> Result<()> {
        // A gradient-accumulation group still open is applied at the epoch's end, at the
        // rate of the step it makes.
        let mut flushed = false;
        if self.optimizer.pending() > 0 {
            let lr = self.current_learning_rate();
            self.optimizer.set_learning_rate(lr);
            flushed = self.optimizer.flush(self.config.clip_grad_norm)?;
            self.state.global_step += u64::from(flushed);
            self.state.learning_rate = lr;
        }
        self.state.epoch += 1;
        self.state.epoch_ends.push(self.state.batches_fit);
        self.fire(Stage::TrainEpochEnd);
        let last = self.state.epoch >= self.config.epochs || self.steps_exhausted();
        let then = if last {
            AfterValidation::Finish
        } else {
            AfterValidation::EpochStart
        };
        // Batch- and step-based validation also runs once after the last epoch.
        let validate = self.config.validate_every;
        let due = validate.is_on() && (last || validate.due(&self.state));
        if due && self.val_data.is_some() {
            self.start_validation(then)?;
        } else {
            self.state.phase = if last {
                Phase::Done {
                    reason: DoneReason::Finished,
                }
            } else {
                Phase::EpochStart
            };
        }
        let every = self.config.checkpoint_every;
        let counts = every.counts_epochs() || (flushed && matches!(every, super::Every::Steps(_)));
        if counts && every.due(&self.state) {
            self.control.checkpoint = true;
        }
        Ok(())
    }

    fn start_validation(&mut self, then: AfterValidation) -> Result<()> {
        let Some(val) = &self.val_data else {
            return Ok(());
        };
        let epoch = self.state.val_data.epoch + 1;
        let sets = val.plan_epoch(epoch, &mut self.state.val_data.loader)?;
        self.state.val_data.start_epoch(epoch, sets);
        self.state.val_metrics = self.metrics.clone();
        self.streaming_reset();
        self.state.phase = Phase::Validate { then };
        self.fire(Stage::ValBegin);
        Ok(())
    }

    fn val_iteration(&mut self) -> Result<()> {
        let started = Instant::now();
        self.last_batch = None;
        let Some(val) = &self.val_data else {
            return Err(Error::Data(
                "validation phase without validation data".into(),
            ));
        };
        // Windows: as in `train_iteration`, the set stays first until its last window.
        let cursor = &self.state.val_data;
        let name = cursor.current().unwrap_or_default().to_string();
        let at = SetRef {
            name: &name,
            window: cursor.window as usize,
            epoch: cursor.epoch,
        };
        let batch = val.load(&cursor.loader, at, &self.device)?;
        let batch = self.transformed(batch, false)?;
        self.state.set_name = name;
        self.state.set_kind = Some(SetKind::Val);
        let mut ctx = ForwardCtx {
            train: false,
            dropout_rng: &mut self.dropout_rng,
        };
        let output = self.model.forward(&batch.x, &mut ctx)?;
        let loss = self
            .loss
            .forward(&output, &batch.y, batch.weights.as_ref())?;
        let loss_value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        let mut m = std::mem::take(&mut self.state.val_metrics);
        let host = update_metrics(
            &mut m,
            self.task,
            loss_value,
            &output,
            &batch.y,
            batch.weights.as_ref(),
        );
        self.state.val_metrics = m;
        let host = host?;
        self.streaming_update(&host)?;
        self.last_batch = Some(host);
        let last_window = batch.is_last_window();
        if last_window {
            self.state.val_data.finish_set();
            self.model.reset_states();
            self.state.batches_validated += 1;
        } else {
            self.state.val_data.next_window();
        }
        self.state.time.validation_secs += started.elapsed().as_secs_f64();
        self.tick();
        if last_window {
            self.fire(Stage::ValBatchEnd);
        }
        self.fire(Stage::ValIterEnd);
        Ok(())
    }

    fn end_validation(&mut self, then: AfterValidation) -> Result<()> {
        let values: Vec<(String, f64)> = self
            .state
            .val_metrics
            .compute()
            .into_iter()
            .chain(self.streaming_values())
            .map(|(k, v)| (format!("val_{k}"), v))
            .collect();
        self.state.val_history.push(self.state.batches_fit, &values);
        self.state.times_validated += 1;
        self.state.val_metrics.reset();
        self.streaming_validation_end();
        self.update_best(&values);
        self.state.phase = match then {
            AfterValidation::Train => Phase::Train,
            AfterValidation::EpochStart => Phase::EpochStart,
            AfterValidation::Finish => Phase::Done {
                reason: DoneReason::Finished,
            },
        };
        self.fire(Stage::ValEnd);
        Ok(())
    }

    fn update_best(&mut self, values: &[(String, f64)]) {
        let s = &mut self.state;
        let Some((_, value)) = values.iter().find(|(k, _)| *k == s.key_metric) else {
            return;
        };
        let direction = if s.key_metric_higher_is_better {
            Direction::Max
        } else {
            Direction::Min
        };
        if direction.improves(*value, s.best.as_ref().map(|b| b.value), 0.0) {
            self.best_improved = true;
            s.best = Some(Best {
                metric: s.key_metric.clone(),
                value: *value,
                epoch: s.epoch,
                batches_fit: s.batches_fit,
                global_step: s.global_step,
                validation: s.times_validated - 1,
            });
        }
    }

    /// Adds the time since the last call to the run's wall-clock total.
    pub(super) fn tick(&mut self) {
        self.state.time.total_secs += self.clock.elapsed().as_secs_f64();
        self.clock = Instant::now();
    }

    // ---- callbacks ----------------------------------------------------------------------

    /// Runs every callback for `stage`; the first failure is kept for `fit` to act on
    /// once the transition is complete (so the state stays consistent for the checkpoint).
    pub(super) fn fire(&mut self, stage: Stage) {
        for cb in self.callbacks.iter_mut() {
            let mut view = TrainerView {
                state: &self.state,
                vars: &self.model_vars,
                grads: self.grads.as_ref(),
                control: &mut self.control,
                outputs: match stage {
                    Stage::TrainBatchEnd
                    | Stage::TrainIterEnd
                    | Stage::ValBatchEnd
                    | Stage::ValIterEnd => self.last_batch.as_ref().map(HostBatch::view),
                    _ => None,
                },
                metric_directions: &self.metric_directions,
            };
            if let Err(e) = cb.on_stage(stage, &mut view) {
                if self.callback_error.is_none() {
                    self.callback_error = Some(Error::Callback {
                        callback: cb.name(),
                        stage: stage.to_string(),
                        source: Box::new(e),
                    });
                }
            }
        }
    }

    pub(super) fn take_callback_error(&mut self) -> Result<()> {
        match self.callback_error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// A callback failed: save a checkpoint of the consistent state first, then report.
    fn take_callback_error_with_checkpoint(&mut self) -> Result<()> {
        if let Some(e) = self.callback_error.take() {
            match self.checkpoint_if_new(SaveReason::CallbackError) {
                Ok(path) => log::warn!("checkpoint saved to {} before stopping", path.display()),
                Err(save) => log::warn!("could not save a checkpoint after the error: {save}"),
            }
            self.callback_error = None;
            return Err(e);
        }
        Ok(())
    }
}

/// One history row for a set fit in several windows: the mean of the windows' rows
/// (a set of one window keeps its row as it is).
fn mean_rows(mut rows: Vec<Vec<(String, f64)>>) -> Vec<(String, f64)> {
    if rows.len() <= 1 {
        return rows.pop().unwrap_or_default();
    }
    let n = rows.len() as f64;
    let mut sums: Vec<(String, f64)> = Vec::new();
    for row in &rows {
        for (k, v) in row {
            match sums.iter_mut().find(|(name, _)| name == k) {
                Some((_, s)) => *s += v,
                None => sums.push((k.clone(), *v)),
            }
        }
    }
    sums.into_iter().map(|(k, s)| (k, s / n)).collect()
}

/// Adds one batch to `m`: its mean loss (weighted by the samples, or by the predicted
/// values for regression, as the loss itself) and its outputs against the targets `y`.
/// With per-sample `weights` (`[batch]`) the loss is the batch's weighted mean and every
/// metric is weighted (a regression sample's weight goes to each of its values).
/// Returns the host copy the metrics saw (non-finite scores ranked last), for streaming
/// metrics, callbacks and callers that want more than the metric set (a confusion
/// matrix). Training, validation and `evaluate` all go through here, so their numbers
/// agree exactly.
pub(crate) fn update_metrics(
    m: &mut MetricSet,
    task: Task,
    mean_loss: f64,
    output: &Tensor,
    y: &Tensor,
    weights: Option<&Tensor>,
) -> Result<HostBatch> {
    let n = output.dims().first().copied().unwrap_or(0);
    let weights = match weights {
        Some(w) => Some(w.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?),
        None => None,
    };
    // The loss's weighted mean times the weights' sum: the batch's weighted loss sum.
    let weighted_sum = |w: &[f32]| mean_loss * w.iter().map(|x| f64::from(*x)).sum::<f64>();
    let mut scores = output
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    // A diverged model still gets metrics (its loss is NaN); non-finite scores rank last.
    for x in scores.iter_mut().filter(|x| !x.is_finite()) {
        *x = f32::MIN;
    }
    let columns = scores.len().checked_div(n).unwrap_or(1);
    let (targets, num_classes) = match task {
        Task::Classification { num_classes } => {
            let targets = y.to_dtype(DType::U32)?.to_vec1::<u32>()?;
            let loss_sum = weights
                .as_deref()
                .map_or(mean_loss * n as f64, weighted_sum);
            m.update_classification(loss_sum, &scores, num_classes, &targets, weights.as_deref())?;
            (Ok(targets), Some(num_classes))
        }
        Task::Regression => {
            let targets = y.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
            // The regression loss is a mean over every predicted value (several per
            // sample for per-step time-series outputs), and so is the metric.
            let per_value = match &weights {
                Some(w) if !w.is_empty() && scores.len() % w.len() == 0 => {
                    let k = scores.len() / w.len();
                    Some(w.iter().flat_map(|x| std::iter::repeat_n(*x, k)).collect())
                }
                Some(w) => {
                    return Err(Error::Data(format!(
                        "{} sample weights do not split {} predicted values into samples",
                        w.len(),
                        scores.len()
                    )))
                }
                None => None,
            };
            let per_value: Option<Vec<f32>> = per_value;
            let loss_sum = per_value
                .as_deref()
                .map_or(mean_loss * scores.len() as f64, weighted_sum);
            m.update_regression(loss_sum, &scores, &targets, per_value.as_deref())?;
            (Err(targets), None)
        }
    };
    Ok(HostBatch {
        scores,
        columns,
        targets,
        weights,
        num_classes,
        mean_loss,
    })
}
