//! Resuming a run with changes: the explicit set of settings that may differ from what
//! the run was started with. Everything else (model, data, optimizer, seed, schedule)
//! is part of what makes a resumed run the same run, and cannot be changed this way.

use std::path::Path;

use super::{DeviceSpec, JobConfig};
use crate::callbacks::{Callback, CsvLogger, Progress, TensorBoard};
use crate::checkpoint::{self, LoadedCheckpoint};
use crate::error::{Error, Result};
use crate::trainer::Trainer;

/// What may change when a run is resumed; `None` keeps the run's own setting. The new
/// values go into the job config that later checkpoints save, so a later plain resume
/// keeps them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResumeChanges {
    /// Train to this many epochs in all: extends a finished or running run (see
    /// [`Trainer::extend_epochs`]); fewer than the run has begun is refused.
    pub epochs: Option<u64>,
    /// CPU threads (results are bitwise reproducible for a given count only).
    pub threads: Option<usize>,
    /// The device to go on with.
    pub device: Option<DeviceSpec>,
    /// Early-stopping patience; refused when the run has no early stopping.
    pub patience: Option<u64>,
    /// Progress output on or off.
    pub progress: Option<bool>,
    /// TensorBoard event files on or off.
    pub tensorboard: Option<bool>,
    /// CSV logs on or off.
    pub csv: Option<bool>,
}

impl ResumeChanges {
    /// Applies the changes to a run's job config.
    pub fn apply(&self, job: &mut JobConfig) -> Result<()> {
        if let Some(n) = self.epochs {
            if n == 0 {
                return Err(Error::config("epochs", "must be at least 1"));
            }
            job.train.epochs = n;
        }
        if let Some(n) = self.threads {
            job.threads = n;
        }
        if let Some(d) = self.device {
            job.device = d;
        }
        if let Some(p) = self.patience {
            match &mut job.early_stopping {
                Some(es) => es.patience = p,
                None => {
                    return Err(Error::config(
                        "patience",
                        "the run has no early stopping to change",
                    ))
                }
            }
        }
        if let Some(on) = self.progress {
            job.logging.progress = on;
        }
        if let Some(on) = self.tensorboard {
            job.logging.tensorboard = on;
        }
        if let Some(on) = self.csv {
            job.logging.csv = on;
        }
        Ok(())
    }
}

impl Trainer {
    /// [`Trainer::resume`] with `changes` applied: `path` is a run directory or one
    /// checkpoint directory.
    pub fn resume_changed(path: impl AsRef<Path>, changes: &ResumeChanges) -> Result<Trainer> {
        Self::from_checkpoint_changed(
            checkpoint::load_latest(path.as_ref())?,
            crate::registry::builtins(),
            changes,
        )
    }

    /// [`Trainer::from_checkpoint_with`] with `changes` applied.
    pub fn from_checkpoint_changed(
        ckpt: LoadedCheckpoint,
        registry: &crate::registry::Registry,
        changes: &ResumeChanges,
    ) -> Result<Trainer> {
        let mut job = JobConfig::from_checkpoint(&ckpt)?;
        job.train.run_dir = checkpoint::run_dir_of(&ckpt.dir);
        changes.apply(&mut job)?;
        // The checkpoint's weights replace init_from's, whose source may be gone.
        let mut trainer = job.build_trainer_inner(registry, false)?;
        trainer.apply_checkpoint(ckpt)?;
        if let Some(n) = changes.epochs {
            trainer.extend_epochs(n)?;
        }
        // Callbacks switched off: their saved state is let go rather than refused.
        let off: [(Option<bool>, Box<dyn Callback>); 3] = [
            (changes.progress, Box::new(Progress::new(0))),
            (changes.tensorboard, Box::new(TensorBoard::new(""))),
            (changes.csv, Box::new(CsvLogger::new(""))),
        ];
        for (on, cb) in off {
            if on == Some(false) {
                trainer.discard_callback_state(&cb.name());
            }
        }
        Ok(trainer)
    }
}
