//! Rebuilding a run from its checkpoint: the job config saved in it describes the run.
//!
//! These are `Trainer` functions, but they live with the job configs so the trainer
//! layer does not depend on this one (an inherent impl may sit in any module of the
//! crate).

use std::path::Path;

use super::JobConfig;
use crate::checkpoint::{self, LoadedCheckpoint};
use crate::error::{Error, Result};
use crate::trainer::{run_dir_of, Trainer};

impl Trainer {
    /// Rebuilds a run described by a job config from its newest good checkpoint.
    /// `path` is a run directory or one checkpoint directory.
    pub fn resume(path: impl AsRef<Path>) -> Result<Trainer> {
        Self::from_checkpoint(checkpoint::load_latest(path.as_ref())?)
    }

    /// Rebuilds a run described by a job config from a checkpoint already loaded.
    pub fn from_checkpoint(ckpt: LoadedCheckpoint) -> Result<Trainer> {
        let mut job = JobConfig::from_checkpoint(&ckpt)?;
        // The run directory may have moved since; it is where the checkpoint is now.
        job.train.run_dir = run_dir_of(&ckpt.dir);
        let mut trainer = job.build_trainer()?;
        trainer.apply_checkpoint(ckpt)?;
        Ok(trainer)
    }
}

impl JobConfig {
    /// The job config saved in a checkpoint.
    pub fn from_checkpoint(ckpt: &LoadedCheckpoint) -> Result<JobConfig> {
        let json = ckpt.meta.job_config.as_deref().ok_or_else(|| Error::NotACheckpoint {
            path: ckpt.dir.clone(),
            reason: "the run was built in code, not from a job config: build the trainer the same way and call `load_checkpoint`".into(),
        })?;
        let origin = ckpt.dir.join(checkpoint::STATE_FILE);
        JobConfig::from_json_str(&upgrade_saved_config(json), &origin)
    }
}

/// Configs saved before the optimizer section was typed by `kind` held the settings of
/// every optimizer (`momentum` under `adamw`); the build ignored those of other kinds,
/// so dropping them describes the same run. Anything else is returned as it is.
fn upgrade_saved_config(json: &str) -> String {
    let Ok(mut job) = serde_json::from_str::<serde_json::Value>(json) else {
        return json.to_string();
    };
    let Some(opt) = job.get_mut("optimizer").and_then(|o| o.as_object_mut()) else {
        return json.to_string();
    };
    let foreign: &[&str] = match opt.get("kind").and_then(|k| k.as_str()) {
        Some("adamw" | "adam") => &["momentum", "dampening", "nesterov"],
        Some("sgd") => &["beta1", "beta2", "eps"],
        _ => &[],
    };
    if !foreign.iter().any(|f| opt.contains_key(*f)) {
        return json.to_string();
    }
    for f in foreign {
        opt.remove(*f);
    }
    job.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_saved_with_every_optimizers_settings_still_read() {
        let old = r#"{"optimizer": {"kind": "adamw", "lr": 0.01, "weight_decay": 0.0001,
            "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "momentum": 0.9, "dampening": 0.0,
            "nesterov": false}}"#;
        assert!(JobConfig::from_json_str(old, Path::new("old.json")).is_err());
        let job =
            JobConfig::from_json_str(&upgrade_saved_config(old), Path::new("old.json")).unwrap();
        assert_eq!(job.optimizer.lr(), 0.01);
        let new = JobConfig::default().to_json();
        assert_eq!(upgrade_saved_config(&new), new);
    }
}
