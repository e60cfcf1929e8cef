//! A sweep's results, read back from its trials' run directories, and
//! `sweep/summary.csv`, one row per trial.
//!
//! Everything comes from each trial's newest checkpoint (its `state.bin` only: no
//! weights are read and no lock is taken, so a summary can be made while trials train),
//! so `deeptrain sweep-report DIR` gives the same summary from disk as the sweep itself.

use std::path::{Path, PathBuf};

use super::plan::{Plan, Trial};
use super::{Goal, SWEEP_META_DIR};
use crate::checkpoint;
use crate::error::{Error, IoContext, Result};
use crate::state::{DoneReason, Phase, TrainState};

/// The CSV file's name inside `SWEEP_DIR/sweep/`.
pub const SUMMARY_CSV: &str = "summary.csv";
/// The figure's name inside `SWEEP_DIR/sweep/`.
pub const SUMMARY_PNG: &str = "summary.png";

/// Where one trial stands and what it reached.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialResult {
    /// The trial.
    pub trial: Trial,
    /// Its run directory.
    pub run_dir: PathBuf,
    /// `pending` (no checkpoint yet), `partial` (stopped before its end: resumable),
    /// `finished`, `stopped` (ended early by a callback, e.g. early stopping), or
    /// `pruned` (not promoted past a rung of a pruned sweep).
    pub status: String,
    /// The metric it is compared by (the sweep's, else the run's key metric).
    pub metric: String,
    /// Whether larger values of `metric` are better.
    pub higher_is_better: bool,
    /// The best validation value of the metric.
    pub best: Option<f64>,
    /// The last validation value of the metric.
    pub last: Option<f64>,
    /// The 1-based epoch of the best validation.
    pub best_epoch: Option<u64>,
    /// Optimizer steps taken.
    pub steps: u64,
    /// Seconds spent fitting batches.
    pub train_secs: f64,
    /// Seconds of the run in all (all sessions).
    pub wall_secs: f64,
    /// The metric over training: (epochs, value), epochs fractional for validations
    /// inside an epoch.
    pub curve: Vec<(f64, f64)>,
}

/// A whole sweep's results, in trial order.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The metric name shown as the comparison's.
    pub metric: String,
    /// The keys the trials vary, in order.
    pub varied: Vec<String>,
    /// Whether the trials run several job files (a `job` column).
    pub has_jobs: bool,
    /// One result per trial.
    pub results: Vec<TrialResult>,
}

/// The newest checkpoint state of `run_dir` that reads, without loading weights.
pub(crate) fn newest_state(run_dir: &Path) -> Option<TrainState> {
    let all = checkpoint::list(run_dir).ok()?;
    all.iter().rev().find_map(|dir| {
        let path = dir.join(checkpoint::STATE_FILE);
        let bytes = std::fs::read(&path).ok()?;
        checkpoint::decode_state(&path, &bytes)
            .ok()
            .map(|m| m.state)
    })
}

/// Whether the newest checkpoint of `run_dir` is of a run that has ended (nothing is
/// left to train).
pub fn is_done(run_dir: &Path) -> bool {
    newest_state(run_dir).is_some_and(|s| s.is_done())
}

/// Whether `metric` is one where smaller is better, by its name.
fn lower_is_better(metric: &str) -> bool {
    let m = metric.to_ascii_lowercase();
    ["loss", "mse", "mae", "error", "rmse"]
        .iter()
        .any(|w| m.contains(w))
}

/// Where a validation at `at` batches fit lies, in epochs (1.5: half way into the second).
fn epoch_position(at: u64, epoch_ends: &[u64]) -> f64 {
    let k = epoch_ends.iter().filter(|&&e| e < at).count();
    let start = if k > 0 { epoch_ends[k - 1] } else { 0 };
    let end = match epoch_ends.get(k) {
        Some(&e) => e,
        None if k > 0 => start + (start - if k > 1 { epoch_ends[k - 2] } else { 0 }),
        None => at,
    };
    match end > start {
        true => k as f64 + (at - start) as f64 / (end - start) as f64,
        false => k as f64,
    }
}

impl TrialResult {
    /// The result of `trial` from its run directory `run_dir`.
    pub fn read(
        trial: &Trial,
        run_dir: &Path,
        metric: Option<&str>,
        goal: Option<Goal>,
    ) -> TrialResult {
        let state = newest_state(run_dir);
        let mut r = TrialResult {
            trial: trial.clone(),
            run_dir: run_dir.to_path_buf(),
            status: "pending".into(),
            metric: metric.unwrap_or_default().to_string(),
            higher_is_better: true,
            best: None,
            last: None,
            best_epoch: None,
            steps: 0,
            train_secs: 0.0,
            wall_secs: 0.0,
            curve: Vec::new(),
        };
        let Some(s) = state else {
            r.higher_is_better = metric.is_none_or(|m| !lower_is_better(m));
            if let Some(Goal::Min) = goal {
                r.higher_is_better = false;
            }
            return r;
        };
        r.status = match &s.phase {
            Phase::Done {
                reason: DoneReason::Finished,
            } => "finished",
            Phase::Done { .. } => "stopped",
            _ => "partial",
        }
        .into();
        if r.metric.is_empty() {
            r.metric = s.key_metric.clone();
        }
        r.higher_is_better = match goal {
            Some(g) => g == Goal::Max,
            None if r.metric == s.key_metric => s.key_metric_higher_is_better,
            None => !lower_is_better(&r.metric),
        };
        r.steps = s.global_step;
        r.train_secs = s.time.train_secs;
        r.wall_secs = s.time.total_secs;
        if let Some(values) = s.val_history.metrics.get(&r.metric) {
            for (&at, &v) in s.val_history.at_batches_fit.iter().zip(values) {
                if !v.is_finite() {
                    continue;
                }
                r.curve.push((epoch_position(at, &s.epoch_ends), v));
                r.last = Some(v);
                let better = match r.best {
                    None => true,
                    Some(b) if r.higher_is_better => v > b,
                    Some(b) => v < b,
                };
                if better {
                    r.best = Some(v);
                    let k = s.epoch_ends.iter().filter(|&&e| e < at).count() as u64;
                    r.best_epoch = Some(k + 1);
                }
            }
        }
        r
    }
}

impl Summary {
    /// The results of every trial of `plan` under `sweep_dir`.
    pub fn collect(sweep_dir: &Path, plan: &Plan) -> Summary {
        let metric = plan.sweep.metric.as_deref();
        let results: Vec<TrialResult> = plan
            .trials
            .iter()
            .map(|t| TrialResult::read(t, &sweep_dir.join(&t.name), metric, plan.sweep.goal))
            .collect();
        let metric = metric
            .map(str::to_string)
            .or_else(|| {
                results
                    .iter()
                    .map(|r| r.metric.clone())
                    .find(|m| !m.is_empty())
            })
            .unwrap_or_else(|| "key metric".into());
        let mut summary = Summary {
            metric,
            varied: plan.varied_keys(),
            has_jobs: !plan.sweep.jobs.is_empty(),
            results,
        };
        if let Ok(Some(schedule)) = super::prune::Schedule::open(sweep_dir, plan) {
            schedule.mark(&mut summary);
        }
        summary
    }

    /// Trial positions (into `results`) from best to worst by their best value; trials
    /// with no value come last, in trial order.
    pub fn ranked(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.results.len()).collect();
        order.sort_by(|&a, &b| {
            let (ra, rb) = (&self.results[a], &self.results[b]);
            match (ra.best, rb.best) {
                (Some(x), Some(y)) => {
                    let o = x.total_cmp(&y);
                    let o = if ra.higher_is_better { o.reverse() } else { o };
                    o.then(a.cmp(&b))
                }
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => a.cmp(&b),
            }
        });
        order
    }

    /// The position of the best trial, if any has a value.
    pub fn best(&self) -> Option<usize> {
        self.ranked()
            .first()
            .copied()
            .filter(|&i| self.results[i].best.is_some())
    }

    /// The CSV's header row.
    pub fn header(&self) -> Vec<String> {
        let mut h = vec!["trial".to_string(), "name".to_string()];
        if self.has_jobs {
            h.push("job".into());
        }
        h.extend(self.varied.iter().cloned());
        for c in [
            "status",
            "metric",
            "best",
            "final",
            "best_epoch",
            "steps",
            "train_secs",
            "wall_secs",
            "run_dir",
        ] {
            h.push(c.to_string());
        }
        h
    }

    /// The CSV's rows, one per trial in trial order (floats in their shortest exact form).
    pub fn rows(&self) -> Vec<Vec<String>> {
        let opt = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
        self.results
            .iter()
            .map(|r| {
                let mut row = vec![r.trial.index.to_string(), r.trial.name.clone()];
                if self.has_jobs {
                    row.push(
                        r.trial
                            .job
                            .as_ref()
                            .map(|j| j.display().to_string())
                            .unwrap_or_default(),
                    );
                }
                for k in &self.varied {
                    let v = r.trial.values.0.iter().find(|(key, _)| key == k);
                    row.push(match v {
                        Some((_, serde_json::Value::String(s))) => s.clone(),
                        Some((_, v)) => v.to_string(),
                        None => String::new(),
                    });
                }
                row.extend([
                    r.status.clone(),
                    r.metric.clone(),
                    opt(r.best),
                    opt(r.last),
                    r.best_epoch.map(|e| e.to_string()).unwrap_or_default(),
                    r.steps.to_string(),
                    format!("{:.3}", r.train_secs),
                    format!("{:.3}", r.wall_secs),
                    r.run_dir.display().to_string(),
                ]);
                row
            })
            .collect()
    }

    /// Writes `SWEEP_DIR/sweep/summary.csv` (atomically); returns its path.
    pub fn write_csv(&self, sweep_dir: &Path) -> Result<PathBuf> {
        let path = sweep_dir.join(SWEEP_META_DIR).join(SUMMARY_CSV);
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).at(dir)?;
        let mut tmp = crate::sweep::shared_tempfile(dir, ".summary.").at(dir)?;
        {
            let mut w = csv::Writer::from_writer(tmp.as_file_mut());
            let enc = |e: csv::Error| Error::Encode {
                what: path.display().to_string(),
                reason: e.to_string(),
            };
            w.write_record(self.header()).map_err(enc)?;
            for row in self.rows() {
                w.write_record(row).map_err(enc)?;
            }
            w.flush().at(&path)?;
        }
        tmp.persist(&path).map_err(|e| Error::io(&path, e.error))?;
        Ok(path)
    }

    /// How many trials have ended (finished, stopped or pruned).
    pub fn done(&self) -> usize {
        self.results
            .iter()
            .filter(|r| matches!(r.status.as_str(), "finished" | "stopped" | "pruned"))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validations_are_placed_in_epochs() {
        let ends = [10, 20];
        assert_eq!(epoch_position(5, &ends), 0.5);
        assert_eq!(epoch_position(10, &ends), 1.0);
        assert_eq!(epoch_position(20, &ends), 2.0);
        // Beyond the last known end: epochs as long as the last one.
        assert_eq!(epoch_position(25, &ends), 2.5);
        assert_eq!(epoch_position(7, &[]), 1.0);
    }

    #[test]
    fn loss_like_names_prefer_smaller_values() {
        assert!(lower_is_better("val_loss") && lower_is_better("val_mae"));
        assert!(!lower_is_better("val_accuracy"));
    }
}
