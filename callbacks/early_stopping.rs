//! Stop when a validation metric stops improving.

use serde::{Deserialize, Serialize};

use super::{Callback, Stage, TrainerView};
use crate::error::{Error, Result};
use crate::metrics::direction_of;
use crate::metrics::Direction;

/// What early stopping remembers; saved in checkpoints so a resumed run decides the same.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EarlyStoppingState {
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
    pub monitor: String,
    pub patience: u64,
    pub min_delta: f64,
    pub warmup: u64,
    /// Which way `monitor` improves (from its name).
    pub direction: Direction,
    pub state: EarlyStoppingState,
}

impl EarlyStopping {
    pub fn new(monitor: &str) -> Self {
        Self {
            monitor: monitor.to_string(),
            patience: 5,
            min_delta: 0.0,
            warmup: 0,
            direction: direction_of(monitor),
            state: EarlyStoppingState::default(),
        }
    }
    pub fn patience(mut self, n: u64) -> Self {
        self.patience = n;
        self
    }
    pub fn min_delta(mut self, d: f64) -> Self {
        self.min_delta = d.abs();
        self
    }
    pub fn warmup(mut self, n: u64) -> Self {
        self.warmup = n;
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
        let s = &mut self.state;
        s.seen += 1;
        if s.seen <= self.warmup {
            return Ok(());
        }
        let improved = self.direction.improves(value, s.best, self.min_delta);
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
