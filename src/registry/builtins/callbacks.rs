//! The built-in callbacks that a job file can name, and their argument types.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::callbacks::EarlyStopping;
use crate::error::Result;
use crate::range::{at_least_one, non_negative};
use crate::registry::Registry;

/// Registers the built-in callbacks.
pub(super) fn register(r: &mut Registry) {
    r.callback_checked(
        "early_stopping",
        EarlyStoppingArgs::validate,
        |a: EarlyStoppingArgs, _| Ok(Box::new(a.callback())),
    );
}

/// Stops the run when a validation metric stops improving.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct EarlyStoppingArgs {
    /// The metric watched (default `val_loss`; its direction is known by name).
    pub monitor: String,
    /// Validations without improvement before stopping, at least 1 (default 5).
    pub patience: u64,
    /// Smallest change that counts as an improvement (default 0).
    pub min_delta: f64,
    /// Validations ignored at the start (default 0).
    pub warmup: u64,
}

impl Default for EarlyStoppingArgs {
    fn default() -> Self {
        Self {
            monitor: "val_loss".into(),
            patience: 5,
            min_delta: 0.0,
            warmup: 0,
        }
    }
}

impl EarlyStoppingArgs {
    /// Checks `patience` and `min_delta`.
    pub fn validate(&self) -> Result<()> {
        at_least_one("early_stopping.patience", self.patience)?;
        non_negative("early_stopping.min_delta", self.min_delta)
    }

    /// The callback these settings describe.
    pub fn callback(&self) -> EarlyStopping {
        EarlyStopping::new(&self.monitor)
            .patience(self.patience)
            .min_delta(self.min_delta)
            .warmup(self.warmup)
    }
}
