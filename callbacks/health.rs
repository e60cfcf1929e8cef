//! Health checks: NaN/Inf in the loss, gradients or weights; dead or exploding weights.

use super::{Callback, Stage, TrainerView};
use crate::error::Result;
use crate::optim::with_cpu_f32;

/// What to do when a check fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthPolicy {
    /// Stop training with a checkpoint (the job config's default, `"stop"`).
    Stop,
    /// Skip the offending batch's update (for NaN loss or gradients), else warn.
    Skip,
    /// Log a warning (`log::warn!`) and go on; a non-finite loss or gradient still skips
    /// its update.
    Warn,
}

/// Checks every batch's loss and gradients, and the weights every `weights_every` steps.
#[derive(Debug, Clone)]
pub struct HealthCheck {
    /// What to do when a check fails.
    pub policy: HealthPolicy,
    /// Weights are checked at `TrainIterEnd` whenever `global_step` is a multiple of this
    /// (default 50; 0: never).
    pub weights_every: u64,
    /// A weight tensor whose largest magnitude exceeds this is "exploding" (default 1e4).
    pub max_abs_weight: f32,
    /// A tensor named `*weight` whose largest magnitude is below this is "dead" (default
    /// 1e-12; biases are never dead).
    pub dead_below: f32,
    /// Problems found so far, newest last (for inspection).
    pub findings: Vec<String>,
    /// The callback's name (default `health_check`); two health checks need two names.
    pub name: String,
}

impl HealthCheck {
    /// A check named `health_check`: loss and gradients every batch, weights every 50 steps
    /// (exploding above 1e4, dead below 1e-12).
    pub fn new(policy: HealthPolicy) -> Self {
        Self {
            policy,
            weights_every: 50,
            max_abs_weight: 1e4,
            dead_below: 1e-12,
            findings: Vec::new(),
            name: "health_check".into(),
        }
    }
    /// Names this check (default `health_check`), e.g. to register a second one.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
    /// Checks the weights every `steps` optimizer steps (default 50; 0: never).
    pub fn weights_every(mut self, steps: u64) -> Self {
        self.weights_every = steps;
        self
    }
    /// Largest weight magnitude still healthy (default 1e4).
    pub fn max_abs_weight(mut self, x: f32) -> Self {
        self.max_abs_weight = x;
        self
    }

    fn act(&mut self, view: &mut TrainerView, problem: String, skippable: bool) {
        let at = format!(
            "{problem} (epoch {}, batch {}, set {}, step {})",
            view.state.epoch + 1,
            view.state.batch_in_epoch,
            view.state.set_name,
            view.state.global_step
        );
        self.findings.push(at.clone());
        match self.policy {
            HealthPolicy::Stop => view.request_stop("health_check", at),
            // A NaN update cannot be applied, so "warn" skips it too.
            HealthPolicy::Skip | HealthPolicy::Warn if skippable => {
                log::warn!("health check: {at}; skipping the update");
                view.skip_batch();
            }
            _ => log::warn!("health check: {at}"),
        }
    }
}

/// (count of non-finite values, largest finite magnitude)
fn scan(values: &[f32]) -> (usize, f32) {
    let mut bad = 0;
    let mut max = 0f32;
    for &x in values {
        if x.is_finite() {
            max = max.max(x.abs());
        } else {
            bad += 1;
        }
    }
    (bad, max)
}

impl Callback for HealthCheck {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn on_stage(&mut self, stage: Stage, view: &mut TrainerView) -> Result<()> {
        match stage {
            Stage::Exception => {
                let loss = format!("loss is not finite at batch {}", view.state.set_name);
                self.act(view, loss, true);
            }
            Stage::BeforeStep => {
                // The trainer's per-layer norms are non-finite exactly when a layer has a
                // NaN or Inf gradient (or one so large its square overflows): only such
                // layers are scanned, so a healthy step costs no extra pass.
                let mut problems = Vec::new();
                let suspect = view
                    .state
                    .layer_grad_norms
                    .iter()
                    .filter(|(_, n)| !n.is_finite());
                for (name, _) in suspect {
                    let grad = view
                        .vars
                        .iter()
                        .find(|v| &v.name == name)
                        .and_then(|v| view.grads.and_then(|g| g.get(v.var.as_tensor())));
                    if let Some(g) = grad {
                        let (bad, max) = with_cpu_f32(g, scan)?;
                        problems.push(match bad {
                            0 => format!("gradient norm of {name} overflows (max |g| = {max:.3e})"),
                            n => format!("{n} non-finite gradient values in {name}"),
                        });
                    }
                }
                if !problems.is_empty() {
                    self.act(view, problems.join("; "), true);
                }
            }
            Stage::TrainIterEnd
                if self.weights_every > 0
                    && view.state.global_step.is_multiple_of(self.weights_every) =>
            {
                let mut problems = Vec::new();
                for v in view.vars {
                    let (bad, max) = with_cpu_f32(v.var.as_tensor(), scan)?;
                    if bad > 0 {
                        problems.push(format!("{bad} non-finite weights in {}", v.name));
                    } else if max > self.max_abs_weight {
                        problems.push(format!("{} is exploding (max |w| = {max:.3e})", v.name));
                    } else if max < self.dead_below && v.name.ends_with("weight") {
                        problems.push(format!("{} is dead (max |w| = {max:.3e})", v.name));
                    }
                }
                if !problems.is_empty() {
                    self.act(view, problems.join("; "), false);
                }
            }
            _ => {}
        }
        Ok(())
    }
}
