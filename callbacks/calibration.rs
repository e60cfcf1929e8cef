//! Threshold calibration of a binary classifier, run from the config: the callback keeps
//! the positive-class probabilities of the latest validation pass (from each batch's
//! outputs, `TrainerView::outputs`) and, when training ends, searches the decision
//! threshold that maximises a metric ([`crate::metrics::calibration::best_threshold`]),
//! writing the result to `calibration.json` in the run directory.
//!
//! What it has collected is saved into every checkpoint, so a run stopped mid-validation
//! resumes to the same file, bit for bit.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Callback, Stage, TrainerView};
use crate::error::{Error, IoContext, Result};
use crate::metrics::calibration::{best_threshold, default_grid, TiePreference};
use crate::metrics::{f32_bits, f32_from_bits, Metric, TargetsView};

/// What the callback has collected of the latest validation pass.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CalibrationState {
    /// The validation pass they come from (1 for the first).
    pub validation: u64,
    /// Positive-class probabilities, as `f32` bits (exact in JSON).
    pub scores: Vec<u32>,
    /// Their classes, 0 or 1.
    pub targets: Vec<u32>,
}

/// Searches the best decision threshold on the last validation's predictions at the end
/// of the run; registered as `calibration` (see the registry's `CalibrationArgs`).
pub struct Calibration {
    metric: Metric,
    grid: Vec<f32>,
    prefer: TiePreference,
    path: PathBuf,
    /// What has been collected (saved in checkpoints).
    pub state: CalibrationState,
}

impl Calibration {
    /// Picks the threshold that maximises `metric` (accuracy, or precision, recall or F1
    /// with any averaging) over `steps + 1` thresholds `0, 1/steps, ..., 1`, ties broken
    /// by `prefer`, and writes the result to `path`.
    pub fn new(metric: &str, steps: usize, prefer: TiePreference, path: &Path) -> Result<Self> {
        let metric = Metric::from_name(metric)
            .ok()
            .filter(|m| {
                matches!(
                    m,
                    Metric::Accuracy | Metric::Precision(_) | Metric::Recall(_) | Metric::F1(_)
                )
            })
            .ok_or_else(|| {
                Error::config(
                    "calibration.metric",
                    format!(
                        "`{metric}` is not one the threshold search maximises: accuracy, \
                         precision_*, recall_* or f1_* (binary, macro or micro)"
                    ),
                )
            })?;
        Ok(Self {
            metric,
            grid: default_grid(steps),
            prefer,
            path: path.to_path_buf(),
            state: CalibrationState::default(),
        })
    }

    /// Adds one batch's outputs: one logit per sample (sigmoid) or two (softmax of the
    /// second), and class ids 0/1.
    fn collect(&mut self, view: &TrainerView) -> Result<()> {
        let Some(batch) = view.outputs else {
            return Ok(());
        };
        let TargetsView::Classes(targets) = batch.targets else {
            return Err(not_binary("regression targets"));
        };
        let positive: Vec<f32> = match batch.columns {
            1 => batch
                .scores
                .iter()
                .map(|&s| (1.0 / (1.0 + (-f64::from(s)).exp())) as f32)
                .collect(),
            2 => batch
                .scores
                .chunks_exact(2)
                .map(|r| (1.0 / (1.0 + (f64::from(r[0]) - f64::from(r[1])).exp())) as f32)
                .collect(),
            n => return Err(not_binary(&format!("{n} outputs per sample"))),
        };
        if let Some(t) = targets.iter().find(|&&t| t > 1) {
            return Err(not_binary(&format!("class {t}")));
        }
        self.state.scores.extend(f32_bits(&positive));
        self.state.targets.extend_from_slice(targets);
        Ok(())
    }

    /// The search on what was collected, as the JSON `calibration.json` holds.
    pub fn result(&self) -> Result<serde_json::Value> {
        let scores = f32_from_bits(&self.state.scores);
        let targets = &self.state.targets;
        let search =
            |grid: &[f32]| best_threshold(&scores, targets, self.metric, grid, self.prefer);
        let (threshold, after) = search(&self.grid)?;
        let (_, before) = search(&[0.5])?;
        let values = self
            .grid
            .iter()
            .map(|&t| search(&[t]).map(|(_, v)| v))
            .collect::<std::result::Result<Vec<f64>, _>>()?;
        Ok(serde_json::json!({
            "metric": self.metric.name(),
            "threshold": threshold,
            "value": after,
            "before": { "threshold": 0.5, "value": before },
            "validation": self.state.validation,
            "samples": targets.len(),
            "positives": targets.iter().filter(|&&t| t == 1).count(),
            "prefer": format!("{:?}", self.prefer).to_lowercase(),
            "grid": self.grid,
            "values": values,
        }))
    }

    fn write(&self) -> Result<()> {
        let text = serde_json::to_string_pretty(&self.result()?).unwrap_or_default() + "\n";
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).at(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).at(dir)?;
        std::io::Write::write_all(&mut tmp, text.as_bytes()).at(tmp.path())?;
        tmp.persist(&self.path)
            .map_err(|e| Error::io(&self.path, e.error))?;
        Ok(())
    }
}

fn not_binary(what: &str) -> Error {
    Error::config(
        "calibration",
        format!("needs a binary classifier (1 or 2 outputs, classes 0 and 1), got {what}"),
    )
}

impl Callback for Calibration {
    fn name(&self) -> String {
        "calibration".into()
    }

    fn on_stage(&mut self, stage: Stage, view: &mut TrainerView) -> Result<()> {
        match stage {
            Stage::ValBegin => {
                self.state = CalibrationState {
                    validation: view.state.times_validated + 1,
                    ..Default::default()
                };
                Ok(())
            }
            Stage::ValIterEnd => self.collect(view),
            Stage::TrainEnd if self.state.targets.is_empty() => {
                log::warn!("calibration: no validation ran, nothing to calibrate");
                Ok(())
            }
            Stage::TrainEnd => self.write(),
            _ => Ok(()),
        }
    }

    fn save_state(&self) -> Option<serde_json::Value> {
        serde_json::to_value(&self.state).ok()
    }

    fn load_state(&mut self, state: serde_json::Value) -> Result<()> {
        self.state = serde_json::from_value(state)
            .map_err(|e| Error::config("calibration", format!("saved state: {e}")))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_searches_the_grid_and_reports_before_and_after() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Calibration::new(
            "f1_binary",
            4,
            TiePreference::Middle,
            &dir.path().join("c.json"),
        )
        .unwrap();
        // Scores [0.125, 0.625, 0.375, 0.875], targets [0, 0, 1, 1]: F1 over thresholds
        // 0, 0.25, 0.5, 0.75, 1 is 4/6, 4/5, 2/4, 2/3, 0 (see metrics::calibration).
        c.state.scores = f32_bits(&[0.125, 0.625, 0.375, 0.875]);
        c.state.targets = vec![0, 0, 1, 1];
        let r = c.result().unwrap();
        assert_eq!(r["threshold"], 0.25);
        assert_eq!(r["value"], 0.8);
        assert_eq!(r["before"]["value"], 0.5);
        assert_eq!(r["values"][0], 4.0 / 6.0);
        c.write().unwrap();
        let back: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("c.json")).unwrap()).unwrap();
        assert_eq!(back, r);
        let err = Calibration::new("roc_auc", 4, TiePreference::Middle, dir.path());
        assert!(err
            .err()
            .unwrap()
            .to_string()
            .contains("`roc_auc` is not one"));
    }
}
