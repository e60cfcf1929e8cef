//! Stop when a validation metric stops improving.

use serde::{Deserialize, Serialize};

use super::{Callback, Stage, TrainerView};
use crate::error::{Error, Result};
use crate::metrics::Direction;

/// What early stopping remembers; saved in checkpoints so a resumed run decides the same.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EarlyStoppingState {
    /// Best `monitor` value after the warm-up; `None` until a finite one is seen.
    pub best: Option<f64>,
    /// Validations since the last improvement.
    pub bad_validations: u64,
    /// Validations seen (warm-up ones included).
    pub seen: u64,
}

/// Stops training after `patience` validations without an improvement of more than
/// `min_delta` in `monitor` (e.g. `val_loss`). The first `warmup` validations are ignored.
#[derive(Debug, Clone)]
pub struct EarlyStopping {
    /// Validation metric to watch, as named in `val_history` (`val_` + metric name, e.g.
    /// `val_loss`, `val_accuracy`); an unknown name fails at the first `ValEnd`.
    pub monitor: String,
    /// Stop once this many validations in a row fail to improve (default 5; 0 acts as 1).
    pub patience: u64,
    /// An improvement must beat the best by more than this (default 0.0, kept as `|d|`).
    pub min_delta: f64,
    /// Number of first validations ignored entirely (default 0).
    pub warmup: u64,
    /// Which way `monitor` improves: `Some` as given ([`direction`](Self::direction));
    /// `None` (what [`new`](Self::new) leaves) is resolved at the first `ValEnd` to the
    /// direction the run's metric declares (`TrainerView::metric_direction`: a user
    /// metric's `StreamingMetric::direction`), else the one its name suggests.
    pub direction: Option<Direction>,
    /// Counters and best value, saved in checkpoints.
    pub state: EarlyStoppingState,
}

impl EarlyStopping {
    /// Watches `monitor` (e.g. `"val_loss"`) with patience 5, `min_delta` 0 and no warm-up;
    /// the direction is the run's for that metric (declared, else by name), resolved at
    /// the first validation.
    pub fn new(monitor: &str) -> Self {
        Self {
            monitor: monitor.to_string(),
            patience: 5,
            min_delta: 0.0,
            warmup: 0,
            direction: None,
            state: EarlyStoppingState::default(),
        }
    }
    /// Validations without improvement before stopping (default 5).
    pub fn patience(mut self, n: u64) -> Self {
        self.patience = n;
        self
    }
    /// Smallest change that counts as an improvement (default 0.0; the sign is ignored).
    pub fn min_delta(mut self, d: f64) -> Self {
        self.min_delta = d.abs();
        self
    }
    /// Ignores the first `n` validations (default 0).
    pub fn warmup(mut self, n: u64) -> Self {
        self.warmup = n;
        self
    }
    /// Watches for `direction` whatever the metric declares (default: its declared
    /// direction, else the one its name suggests).
    pub fn direction(mut self, direction: Direction) -> Self {
        self.direction = Some(direction);
        self
    }
}

impl Callback for EarlyStopping {
    fn name(&self) -> String {
        format!("early_stopping({})", self.monitor)
    }

    fn on_stage(&mut self, stage: Stage, view: &mut TrainerView) -> Result<()> {
        if stage != Stage::ValEnd {
            return Ok(());
        }
        let latest = view.state.val_history.latest();
        let Some(&value) = latest.get(&self.monitor) else {
            return Err(Error::config(
                "early_stopping.monitor",
                format!(
                    "{:?} is not a validation metric; known: {}",
                    self.monitor,
                    latest.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        };
        let direction = *self
            .direction
            .get_or_insert_with(|| view.metric_direction(&self.monitor));
        let s = &mut self.state;
        s.seen += 1;
        if s.seen <= self.warmup {
            return Ok(());
        }
        let improved = direction.improves(value, s.best, self.min_delta);
        if improved {
            s.best = Some(value);
            s.bad_validations = 0;
        } else {
            s.bad_validations += 1;
            if s.bad_validations >= self.patience {
                let why = format!(
                    "{} did not improve for {} validations (best {:.6})",
                    self.monitor,
                    s.bad_validations,
                    s.best.unwrap_or(f64::NAN)
                );
                view.request_stop(&self.name(), why);
            }
        }
        Ok(())
    }

    fn save_state(&self) -> Option<serde_json::Value> {
        serde_json::to_value(&self.state).ok()
    }

    fn load_state(&mut self, state: serde_json::Value) -> Result<()> {
        self.state = serde_json::from_value(state)
            .map_err(|e| Error::Data(format!("early stopping state: {e}")))?;
        Ok(())
    }
}
