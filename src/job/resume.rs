//! Rebuilding a run from its checkpoint: the job config saved in it describes the run.
//!
//! These are `Trainer` functions, but they live with the job configs so the trainer
//! layer does not depend on this one (an inherent impl may sit in any module of the
//! crate).

use std::path::Path;

use super::JobConfig;
use crate::checkpoint::{self, LoadedCheckpoint};
use crate::error::{Error, Result};
use crate::registry::{self, Registry};
use crate::trainer::Trainer;

impl Trainer {
    /// Rebuilds a run described by a job config from its newest good checkpoint.
    /// `path` is a run directory or one checkpoint directory.
    pub fn resume(path: impl AsRef<Path>) -> Result<Trainer> {
        Self::resume_with(path, registry::builtins())
    }

    /// [`Trainer::resume`] for a run that may use components of `registry` (the user's
    /// own): each is rebuilt by the name the run recorded; a name `registry` lacks is an
    /// error naming it.
    pub fn resume_with(path: impl AsRef<Path>, registry: &Registry) -> Result<Trainer> {
        Self::from_checkpoint_with(checkpoint::load_latest(path.as_ref())?, registry)
    }

    /// Rebuilds a run described by a job config from a checkpoint already loaded.
    pub fn from_checkpoint(ckpt: LoadedCheckpoint) -> Result<Trainer> {
        Self::from_checkpoint_with(ckpt, registry::builtins())
    }

    /// [`Trainer::from_checkpoint`] with the components of `registry`.
    pub fn from_checkpoint_with(ckpt: LoadedCheckpoint, registry: &Registry) -> Result<Trainer> {
        let mut job = JobConfig::from_checkpoint(&ckpt)?;
        // The run directory may have moved since; it is where the checkpoint is now.
        job.train.run_dir = checkpoint::run_dir_of(&ckpt.dir);
        // The checkpoint's weights replace init_from's, whose source may be gone.
        let mut trainer = job.build_trainer_inner(registry, false)?;
        trainer.apply_checkpoint(ckpt)?;
        Ok(trainer)
    }
}

impl JobConfig {
    /// The job config saved in a checkpoint.
    pub fn from_checkpoint(ckpt: &LoadedCheckpoint) -> Result<JobConfig> {
        let json = ckpt.meta.job_config.as_deref().ok_or_else(|| Error::NotACheckpoint {
            path: ckpt.dir.clone(),
            reason: "the run was built in code, not from a job config: build the trainer the same way with `.resume_from(dir)`".into(),
        })?;
        let origin = ckpt.dir.join(checkpoint::STATE_FILE);
        JobConfig::from_json_str(json, &origin)
    }
}
