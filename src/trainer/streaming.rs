//! The trainer's streaming metrics (users' own, `confusion_matrix`, multi-class
//! `roc_auc`): fed from the host copy the fixed metric set already made of each batch,
//! and their states carried in checkpoints beside the callbacks' (as
//! `metric:NAME` entries), so a stop mid-validation resumes to the same values.

use super::Trainer;
use crate::error::{Error, Result};
use crate::metrics::{HostBatch, ValidationEnd};

/// Prefix of a streaming metric's entry among a checkpoint's saved states.
pub(super) const STATE_PREFIX: &str = "metric:";

impl Trainer {
    /// Measures one train batch on its own with every streaming metric that wants train
    /// batches, appending their values to the batch's `row`. Runs outside validation
    /// only, so the accumulated validation state is never touched.
    pub(super) fn streaming_train_row(
        &mut self,
        host: &HostBatch,
        row: &mut Vec<(String, f64)>,
    ) -> Result<()> {
        let view = host.view();
        for m in self.streaming.iter_mut().filter(|m| m.on_train_batches()) {
            m.reset();
            m.update(&view)?;
            row.extend(m.values());
            m.reset();
        }
        Ok(())
    }

    /// Adds one validation batch to every streaming metric.
    pub(super) fn streaming_update(&mut self, host: &HostBatch) -> Result<()> {
        let view = host.view();
        for m in &mut self.streaming {
            m.update(&view)?;
        }
        Ok(())
    }

    /// Every streaming metric's values, in order.
    pub(super) fn streaming_values(&self) -> Vec<(String, f64)> {
        self.streaming.iter().flat_map(|m| m.values()).collect()
    }

    /// Forgets every streaming metric's samples (a validation starts).
    pub(super) fn streaming_reset(&mut self) {
        self.streaming.iter_mut().for_each(|m| m.reset());
    }

    /// A validation ended (and `times_validated` counts it): metrics that write files
    /// write them (a failure only warns, as reports do), then every one is reset.
    pub(super) fn streaming_validation_end(&mut self) {
        let at = ValidationEnd {
            validation: self.state.times_validated,
            epoch: self.state.epoch,
            batches_fit: self.state.batches_fit,
        };
        for m in &mut self.streaming {
            if let Err(e) = m.validation_end(&at) {
                log::warn!("metric {}: {e}", m.name());
            }
            m.reset();
        }
    }

    /// `(metric:NAME, state as JSON text)` of every streaming metric, for a checkpoint.
    pub(super) fn streaming_states(&self) -> Vec<(String, String)> {
        self.streaming
            .iter()
            .map(|m| {
                (
                    format!("{STATE_PREFIX}{}", m.name()),
                    m.save_state().to_string(),
                )
            })
            .collect()
    }

    /// Hands a checkpoint's saved metric state to the metric of that name; a state no
    /// metric of this trainer takes is an error naming it.
    pub(super) fn load_streaming_state(
        &mut self,
        name: &str,
        state: serde_json::Value,
    ) -> Result<()> {
        match self.streaming.iter_mut().find(|m| m.name() == name) {
            Some(m) => m.load_state(state),
            None => Err(Error::config(
                "train.metrics",
                format!(
                    "the checkpoint holds the state of metric `{name}`, but this trainer has \
                     no metric of that name: build it with the run's metrics"
                ),
            )),
        }
    }
}
