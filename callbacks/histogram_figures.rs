//! Weight and gradient histograms per layer, saved as PNG figures every N steps.

use std::path::PathBuf;

use super::{Callback, Stage, TrainerView};
use crate::error::Result;
use crate::optim::with_cpu_f32;
use crate::report::histograms::render_histograms;

/// Writes `DIR/weights-step{N}.png` and `DIR/grads-step{N}.png` (one panel per variable, at
/// most 64) at `TrainIterEnd` whenever `global_step` is a multiple of `every`; the
/// gradient figure only when the batch made gradients. Registered as `histogram_figures`.
pub struct HistogramFigures {
    dir: PathBuf,
    /// Optimizer steps between figures (0: never).
    pub every: u64,
    /// Bins per histogram (default 40, clamped to 1..=512).
    pub bins: usize,
}

impl HistogramFigures {
    /// Figures into `dir` (created when needed) every `every` steps, with 40 bins.
    pub fn new(dir: impl Into<PathBuf>, every: u64) -> Self {
        Self {
            dir: dir.into(),
            every,
            bins: 40,
        }
    }
}

impl Callback for HistogramFigures {
    fn name(&self) -> String {
        "histogram_figures".into()
    }

    fn on_stage(&mut self, stage: Stage, view: &mut TrainerView) -> Result<()> {
        let step = view.state.global_step;
        if stage != Stage::TrainIterEnd || self.every == 0 || !step.is_multiple_of(self.every) {
            return Ok(());
        }
        let mut weights = Vec::new();
        let mut grads = Vec::new();
        for v in view.vars {
            weights.push((
                v.name.clone(),
                with_cpu_f32(v.var.as_tensor(), |x| x.to_vec())?,
            ));
            if let Some(g) = view.grads.and_then(|g| g.get(v.var.as_tensor())) {
                grads.push((v.name.clone(), with_cpu_f32(g, |x| x.to_vec())?));
            }
        }
        let title = |what: &str| format!("{what} at step {step} (epoch {})", view.state.epoch + 1);
        render_histograms(
            &title("weights"),
            &weights,
            self.bins,
            &self.dir.join(format!("weights-step{step}.png")),
        )?;
        if !grads.is_empty() {
            render_histograms(
                &title("gradients"),
                &grads,
                self.bins,
                &self.dir.join(format!("grads-step{step}.png")),
            )?;
        }
        Ok(())
    }
}
