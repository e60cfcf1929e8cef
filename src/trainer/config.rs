//! Settings of the training loop itself: how long, how often to validate and checkpoint,
//! which metrics. The model, data and optimizer are built apart and handed to the builder.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::metrics::MetricSpec;
use crate::optim::Schedule;
use crate::state::TrainState;

/// How often something happens. `Never` switches it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Every {
    /// Off.
    Never,
    /// Every N train epochs.
    Epochs(u64),
    /// Every N train batches (skipped batches included).
    Batches(u64),
    /// Every N optimizer updates.
    Steps(u64),
}

impl Every {
    /// Whether the run's counters are at a multiple of N: epochs completed for `Epochs`,
    /// batches fit for `Batches`, optimizer steps for `Steps`. `Never` and N = 0 are
    /// never due. The one rule behind every "every N" in deeptrain; *when* it is asked
    /// (after a batch, at an epoch end) is the caller's choice.
    pub fn due(self, state: &TrainState) -> bool {
        match self {
            Every::Never => false,
            Every::Epochs(n) => n > 0 && state.epoch.is_multiple_of(n),
            Every::Batches(n) => n > 0 && state.batches_fit.is_multiple_of(n),
            Every::Steps(n) => n > 0 && state.global_step.is_multiple_of(n),
        }
    }

    /// Whether this ever falls due (`Never` and a batch or step count of 0 do not).
    pub fn is_on(self) -> bool {
        match self {
            Every::Never => false,
            Every::Epochs(_) => true,
            Every::Batches(n) | Every::Steps(n) => n > 0,
        }
    }

    /// Whether N counts epochs (due at epoch ends rather than after batches).
    pub fn counts_epochs(self) -> bool {
        matches!(self, Every::Epochs(_))
    }
}

/// Settings of the training loop itself (the model, data and optimizer are built apart).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Train epochs to run (default 10).
    pub epochs: u64,
    /// Seeds the dropout and shuffle streams (default 0).
    pub seed: u64,
    /// Where checkpoints, logs and reports go (default `runs/default`).
    pub run_dir: PathBuf,
    /// When to validate (default every epoch). Epoch-based validation also runs after the
    /// last epoch.
    pub validate_every: Every,
    /// When to write a checkpoint, besides on interrupt, stop and finish (default every
    /// epoch).
    pub checkpoint_every: Every,
    /// Checkpoints kept in `checkpoints/`; older ones are deleted (default 3).
    pub keep_last: usize,
    /// Keep the checkpoint with the best key metric in `RUN_DIR/best/` (default on).
    pub save_best: bool,
    /// Metrics computed per train batch and per validation, by name (`loss`, `accuracy`,
    /// `top5_accuracy`, `f1_macro`, `roc_auc`, `mse`, `r2`, `confusion_matrix`, a user's
    /// registered metric; `deeptrain list metrics`), each a name or `{"name": ...,
    /// arguments}`. Default (empty): `loss` and `accuracy` for classification, `loss`,
    /// `mse`, `mae`, `r2` for regression.
    pub metrics: Vec<MetricSpec>,
    /// Metric deciding "best", e.g. `val_loss` (the default) or `val_accuracy`.
    pub key_metric: String,
    /// Learning-rate schedule over optimizer steps (base rate: the optimizer's own;
    /// default constant). The older form of a job's `schedule` section, which has more
    /// schedules; a job gives one or the other.
    pub schedule: Schedule,
    /// Clip the global gradient norm to this value (default: no clipping). With
    /// `accumulate_batches`, the norm of the accumulated mean gradient.
    pub clip_grad_norm: Option<f64>,
    /// Gradient accumulation: the mean gradient of this many batches makes one optimizer
    /// update (default 1: every batch). A group left open at an epoch end is applied
    /// there; an open group's sums are saved in checkpoints, so a stop anywhere resumes
    /// exactly. `global_step` counts updates.
    pub accumulate_batches: u64,
    /// Finish after this many optimizer updates (default: none), even inside an epoch;
    /// validation then runs once more, as after the last epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<u64>,
    /// Stop once the run has trained this long, over all its sessions (`"90s"`, `"2h"`,
    /// `"1h 30m"`; default: no limit): `TrainState::time.total_secs`, checked after every
    /// transition; the run ends stopped by `max_time`, with a checkpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_time: Option<String>,
    /// Render `report.png` into every checkpoint and into the run directory when a
    /// session ends (default on).
    pub report: bool,
    /// Write periodic and `best/` checkpoints on a background thread (default on): the
    /// training thread only copies their contents and goes on, at most two saves are in
    /// flight, and a failed one stops the run at the next transition. Saves at an
    /// interrupt, a stop, the end or on request are always complete when they return, and
    /// `fit` returns only once every save has landed. Turn it off when a `Save`-stage
    /// callback reads the checkpoint's files.
    pub save_in_background: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 10,
            seed: 0,
            run_dir: PathBuf::from("runs/default"),
            validate_every: Every::Epochs(1),
            checkpoint_every: Every::Epochs(1),
            keep_last: 3,
            save_best: true,
            metrics: Vec::new(),
            key_metric: "val_loss".into(),
            schedule: Schedule::Constant,
            clip_grad_norm: None,
            accumulate_batches: 1,
            max_steps: None,
            max_time: None,
            report: true,
            save_in_background: true,
        }
    }
}

impl TrainConfig {
    /// `max_time` in seconds; an error names the field when it is not a positive
    /// duration.
    pub fn max_time_secs(&self) -> Result<Option<f64>> {
        let Some(text) = &self.max_time else {
            return Ok(None);
        };
        let secs = humantime::parse_duration(text)
            .map_err(|e| {
                Error::config(
                    "train.max_time",
                    format!("`{text}` is not a duration ({e}); write e.g. \"90s\", \"2h\" or \"1h 30m\""),
                )
            })?
            .as_secs_f64();
        if secs <= 0.0 {
            return Err(Error::config(
                "train.max_time",
                format!("`{text}` is not a duration > 0"),
            ));
        }
        Ok(Some(secs))
    }
}
