//! What the trainer writes to disk and reads back: checkpoints (periodic, best, at an
//! interrupt or a stop), the state report, and loading a checkpoint into a built trainer.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Tensor;

use super::Trainer;
use crate::callbacks::Stage;
use crate::checkpoint::{self, CheckpointMeta, CheckpointTensors, LoadedCheckpoint, SaveReason};
use crate::data_loaders::FormatError;
use crate::error::{Error, Result};
use crate::report::render_state_report;
use crate::rng::RngStream;
use crate::state::Phase;

/// Where the run stands, as far as "was a checkpoint already written here?" goes:
/// `(batches_fit, batches_validated, train window, val window, phase)`.
pub(super) type Position = (u64, u64, u64, u64, Phase);

impl Trainer {
    /// Writes a checkpoint of the run as it stands now and returns its directory.
    pub fn save_checkpoint(&mut self) -> Result<PathBuf> {
        self.save_checkpoint_because(SaveReason::Requested)
    }

    /// Like [`save_checkpoint`](Self::save_checkpoint), but written on the background
    /// thread as a periodic one is: returns as soon as the contents are copied, with the
    /// directory the checkpoint lands in. It has landed when
    /// [`wait_for_saves`](Self::wait_for_saves) or the next `fit` returns.
    pub fn queue_checkpoint(&mut self) -> Result<PathBuf> {
        self.save_numbered(SaveReason::Requested, true)
    }

    /// Loads model, optimizer, state and callback state from a checkpoint (or the newest
    /// good one of a run directory) into this trainer; returns the checkpoint's directory.
    pub fn load_checkpoint(&mut self, path: impl AsRef<Path>) -> Result<PathBuf> {
        // Its own saves in flight land first: the newest may be one of them.
        self.saves.wait()?;
        let ckpt = checkpoint::load_latest(path.as_ref())?;
        let dir = ckpt.dir.clone();
        self.apply_checkpoint(ckpt)?;
        Ok(dir)
    }

    /// Renders the report of the run as it stands now into `path`.
    pub fn render_report(&self, path: &Path) -> Result<()> {
        Ok(render_state_report(&self.state, &self.run, None, path)?)
    }

    pub(super) fn position(&self) -> Position {
        (
            self.state.batches_fit,
            self.state.batches_validated,
            self.state.train_data.window,
            self.state.val_data.window,
            self.state.phase.clone(),
        )
    }

    /// Saves a checkpoint unless one was already written at exactly this position.
    pub(super) fn checkpoint_if_new(&mut self, reason: SaveReason) -> Result<PathBuf> {
        // The last one may still be on its way to disk.
        if !self.in_background(reason) {
            self.saves.wait()?;
        }
        match (&self.saved_at, &self.last_checkpoint) {
            (Some(at), Some(path))
                if *at == self.position() && (path.exists() || self.saves.busy()) =>
            {
                Ok(path.clone())
            }
            _ => self.save_checkpoint_because(reason),
        }
    }

    /// `fit` hands every error of a transition here. A data file that changed size under
    /// the run ([`FormatError::ChangedSize`]) is found before its batch is read, and every
    /// batch is read before its transition changes anything: the run is still exactly
    /// where it was before that batch. So an interrupt checkpoint of it is saved (a
    /// `resume` after the file is restored goes on bit for bit) and the error is handed
    /// back; `last_checkpoint` says where. Any other error is handed back as it is.
    pub(super) fn checkpoint_if_data_changed(&mut self, e: Error) -> Error {
        if !matches!(e, Error::Format(FormatError::ChangedSize { .. })) {
            return e;
        }
        match self.checkpoint_if_new(SaveReason::Interrupt) {
            Ok(path) => {
                log::info!("checkpoint saved to {} before stopping", path.display());
                self.write_run_report(SaveReason::Interrupt);
            }
            // `resume` goes on from the last one saved before, as exactly.
            Err(save) => log::warn!("could not save a checkpoint after the error: {save}"),
        }
        e
    }

    /// Renders the state as it is now into `RUN_DIR/report.png` (a failure only warns:
    /// a report must never cost a run).
    pub(super) fn write_run_report(&self, reason: SaveReason) {
        if !self.config.report {
            return;
        }
        let path = self.config.run_dir.join("report.png");
        if let Err(e) = render_state_report(&self.state, &self.run, Some(reason), &path) {
            log::warn!("{e}");
        }
    }

    /// Everything a checkpoint holds, as of now: copies, which the checkpoint writer may
    /// read after the run has gone on (see [`checkpoint::prepare`]). The model's weights
    /// are taken from the model's own variables (frozen ones included), not from the
    /// optimizer's.
    fn checkpoint_contents(
        &mut self,
        reason: SaveReason,
    ) -> Result<(CheckpointMeta, CheckpointTensors)> {
        self.tick();
        self.state.rng.dropout = self.dropout_rng.state();
        let model: Vec<(String, Tensor)> = self
            .model_vars
            .iter()
            .map(|v| Ok((v.name.clone(), v.var.as_tensor().copy()?)))
            .collect::<Result<_>>()?;
        // Exported afresh from the optimizer's own buffers: copies already.
        let optimizer = self.optimizer.state_tensors()?;
        let carried = self
            .model
            .carried_state()?
            .into_iter()
            .map(|(n, t)| Ok((n, t.copy()?)))
            .collect::<Result<_>>()?;
        let tensors = CheckpointTensors {
            model,
            optimizer,
            carried,
        };
        let mut callbacks: Vec<(String, String)> = self
            .callbacks
            .iter()
            .filter_map(|c| c.save_state().map(|v| (c.name(), v.to_string())))
            .collect();
        callbacks.extend(self.streaming_states());
        // State loaded for a callback not registered (yet) is kept, never dropped.
        callbacks.extend(
            self.pending_callback_states
                .iter()
                .map(|(n, v)| (n.clone(), v.to_string())),
        );
        let meta = CheckpointMeta {
            state: self.state.clone(),
            model_name: self.model.name(),
            optimizer_name: self.optimizer.name().into(),
            run: self.run.clone(),
            saved_because: reason,
            job_config: self.job_config.clone(),
            callbacks,
            files: Vec::new(),
            created_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        };
        Ok((meta, tensors))
    }

    /// Writes `report.png` into a checkpoint directory before it is renamed into place.
    fn report_extras(&self) -> checkpoint::Extras {
        let with_report = self.config.report;
        Box::new(move |dir: &Path, meta: &CheckpointMeta| -> Result<()> {
            if with_report {
                render_state_report(
                    &meta.state,
                    &meta.run,
                    Some(meta.saved_because),
                    &dir.join("report.png"),
                )?;
            }
            Ok(())
        })
    }

    /// Whether a save for `reason` goes to the background writer: periodic and `best/`
    /// saves, unless `save_in_background` is off. The others are where a session may end
    /// (or a caller asked), so they are complete when they return.
    fn in_background(&self, reason: SaveReason) -> bool {
        self.config.save_in_background && matches!(reason, SaveReason::Periodic | SaveReason::Best)
    }

    /// Writes the checkpoint `name` under `parent`: in the background (see
    /// [`in_background`](Self::in_background)) or now, after every earlier save has landed.
    /// `then` runs once it has landed.
    fn write_checkpoint(
        &mut self,
        reason: SaveReason,
        background: bool,
        parent: &Path,
        name: &str,
        then: Option<checkpoint::Then>,
    ) -> Result<PathBuf> {
        let (meta, tensors) = self.checkpoint_contents(reason)?;
        let save = checkpoint::prepare(parent, name, meta, tensors, self.report_extras())?;
        let dir = save.dir();
        if background {
            self.saves.submit(save, then)?;
        } else {
            self.saves.wait()?;
            save.write()?;
            if let Some(then) = then {
                then()?;
            }
        }
        Ok(dir)
    }

    /// Waits for the checkpoints being written in the background; the first failure
    /// among them is returned.
    pub fn wait_for_saves(&mut self) -> Result<()> {
        self.saves.wait()
    }

    /// Hands back the failure of a background save that has ended, without waiting.
    pub(super) fn poll_saves(&mut self) -> Result<()> {
        self.saves.poll()
    }

    pub(super) fn save_checkpoint_because(&mut self, reason: SaveReason) -> Result<PathBuf> {
        self.save_numbered(reason, self.in_background(reason))
    }

    fn save_numbered(&mut self, reason: SaveReason, background: bool) -> Result<PathBuf> {
        let started = Instant::now();
        let sequence = self.state.checkpoints_saved + 1;
        self.state.checkpoints_saved = sequence;
        let parent = self.config.run_dir.join(checkpoint::CHECKPOINTS_DIR);
        let (run_dir, keep) = (self.config.run_dir.clone(), self.config.keep_last);
        let prune: checkpoint::Then = Box::new(move || checkpoint::prune(&run_dir, keep));
        let dir = match self.write_checkpoint(
            reason,
            background,
            &parent,
            &checkpoint::numbered(sequence),
            Some(prune),
        ) {
            Ok(dir) => dir,
            Err(e) => {
                self.state.checkpoints_saved -= 1;
                return Err(e);
            }
        };
        self.saved_at = Some(self.position());
        self.last_checkpoint = Some(dir.clone());
        self.state.time.checkpoint_secs += started.elapsed().as_secs_f64();
        self.fire(Stage::Save);
        Ok(dir)
    }

    /// Replaces `RUN_DIR/best/` with the run as it stands now (after a new best).
    pub(super) fn save_best(&mut self) -> Result<PathBuf> {
        let started = Instant::now();
        let parent = self.config.run_dir.clone();
        let dir = self.write_checkpoint(
            SaveReason::Best,
            self.in_background(SaveReason::Best),
            &parent,
            checkpoint::BEST_DIR,
            None,
        )?;
        self.state.time.checkpoint_secs += started.elapsed().as_secs_f64();
        Ok(dir)
    }

    /// Checks everything that can be checked before changing anything, so a checkpoint
    /// that does not fit this trainer leaves it as it was.
    pub(crate) fn apply_checkpoint(&mut self, ckpt: LoadedCheckpoint) -> Result<()> {
        let weights = ckpt.weights_for(&self.model_vars, &self.device)?;
        let mut callback_states = Vec::new();
        let mut metric_states = Vec::new();
        for (name, json) in &ckpt.meta.callbacks {
            let value: serde_json::Value =
                serde_json::from_str(json).map_err(|e| Error::CorruptCheckpoint {
                    path: ckpt.dir.join(checkpoint::STATE_FILE),
                    reason: format!("state of callback {name}: {e}"),
                })?;
            match name.strip_prefix(super::streaming::STATE_PREFIX) {
                Some(metric) => metric_states.push((metric.to_string(), value)),
                None => callback_states.push((name.clone(), value)),
            }
        }
        // Before the weights change: a metric state that does not load leaves them as
        // they were.
        for (name, value) in metric_states {
            self.load_streaming_state(&name, value)?;
        }
        // The optimizer's import is all or nothing; it goes first of the changes.
        self.optimizer
            .load_state_tensors(&ckpt.optimizer)
            .map_err(|e| Error::CorruptCheckpoint {
                path: ckpt.dir.join(checkpoint::OPTIMIZER_FILE),
                reason: e.to_string(),
            })?;
        for (v, t) in self.model_vars.iter().zip(&weights) {
            v.var.set(t)?;
        }
        self.model.load_carried_state(&ckpt.carried)?;
        self.state = ckpt.meta.state;
        self.dropout_rng = RngStream::from_state(&self.state.rng.dropout);
        self.pending_callback_states.clear();
        for (name, value) in callback_states {
            match self.callbacks.iter_mut().find(|c| c.name() == name) {
                Some(cb) => cb.load_state(value)?,
                // Registered later: `add_callback` hands it over.
                None => self.pending_callback_states.push((name, value)),
            }
        }
        self.saved_at = Some(self.position());
        self.last_checkpoint = Some(ckpt.dir);
        self.fire(Stage::Load);
        self.take_callback_error()
    }

    /// Before training: saved state that no registered callback took is an error, not
    /// something to drop silently.
    pub(super) fn check_callback_states(&self) -> Result<()> {
        match self.pending_callback_states.first() {
            None => Ok(()),
            Some((name, _)) => Err(Error::config(
                "callbacks",
                format!(
                    "the checkpoint holds the state of callback `{name}`, but no callback of \
                     that name is registered: add it before `fit` (or call \
                     `discard_callback_state(\"{name}\")`)"
                ),
            )),
        }
    }
}
