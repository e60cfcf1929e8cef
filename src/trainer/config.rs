//! Settings of the training loop itself: how long, how often to validate and checkpoint,
//! which metrics. The model, data and optimizer are built apart and handed to the builder.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
    /// Metrics computed per train batch and per validation (`loss`, `accuracy`,
    /// `top5_accuracy`, `f1_macro`, `roc_auc`, `mse`, `r2`, ...). Default (empty): `loss`
    /// and `accuracy` for classification, `loss`, `mse`, `mae`, `r2` for regression.
    pub metrics: Vec<String>,
    /// Metric deciding "best", e.g. `val_loss` (the default) or `val_accuracy`.
    pub key_metric: String,
    /// Learning-rate schedule over optimizer steps (base rate: the optimizer's own;
    /// default constant).
    pub schedule: Schedule,
    /// Clip the global gradient norm to this value (default: no clipping).
    pub clip_grad_norm: Option<f64>,
    /// Render `report.png` into every checkpoint and into the run directory when a
    /// session ends (default on).
    pub report: bool,
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
            report: true,
        }
    }
}
