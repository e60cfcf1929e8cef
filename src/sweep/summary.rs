//! A sweep's results, read back from its trials' run directories, and
//! `sweep/summary.csv`, one row per trial.
//!
//! Everything comes from each trial's newest checkpoint (its `state.bin` only: no
//! weights are read and no lock is taken, so a summary can be made while trials train),
//! so `deeptrain sweep-report DIR` gives the same summary from disk as the sweep itself.
//! A trial whose process failed has a record of it in `SWEEP_DIR/sweep/failed/` (see
//! [`TrialFailure`]) until it is run again; the summary shows it `failed`, with why.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::plan::{Plan, Trial};
use super::{Goal, SWEEP_META_DIR};
use crate::checkpoint;
use crate::error::{Error, IoContext, Result};
use crate::state::{DoneReason, Phase, TrainState};

/// The CSV file's name inside `SWEEP_DIR/sweep/`.
pub const SUMMARY_CSV: &str = "summary.csv";
/// The figure's name inside `SWEEP_DIR/sweep/`.
pub const SUMMARY_PNG: &str = "summary.png";
/// The folder inside `SWEEP_DIR/sweep/` with one [`TrialFailure`] record per failed trial.
pub const FAILED_DIR: &str = "failed";
/// The status of a trial whose last process failed.
pub const FAILED: &str = "failed";

/// Why a trial's process failed: `SWEEP_DIR/sweep/failed/NAME.json`, written atomically
/// when it fails (by the trial's own process, which knows its error, or by the sweep
/// that started it, which alone sees a death by a signal) and removed when the trial is
/// run again (`deeptrain sweep`, `--trial`, a Slurm array task). While it is there, the
/// trial's status is `failed`, whatever its checkpoints say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialFailure {
    /// The trial's number.
    pub trial: usize,
    /// The trial's name (its run directory's).
    pub name: String,
    /// The process's exit status, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that ended the process, when one did.
    pub signal: Option<i32>,
    /// How the process ended, in words (`exit status: 1`, `signal: 9 (SIGKILL)`).
    pub status: String,
    /// The error it reported (its last line on stderr), when known.
    pub error: Option<String>,
    /// When it failed (RFC 3339, UTC).
    pub at: String,
}

/// `SWEEP_DIR/sweep/failed/NAME.json`.
fn failure_path(sweep_dir: &Path, name: &str) -> PathBuf {
    sweep_dir
        .join(SWEEP_META_DIR)
        .join(FAILED_DIR)
        .join(format!("{name}.json"))
}

impl TrialFailure {
    /// A failure of `trial`'s process, now.
    pub fn new(
        trial: &Trial,
        exit_code: Option<i32>,
        signal: Option<i32>,
        status: String,
        error: Option<String>,
    ) -> TrialFailure {
        TrialFailure {
            trial: trial.index,
            name: trial.name.clone(),
            exit_code,
            signal,
            status,
            error,
            at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        }
    }

    /// Where the record of `trial` is.
    pub fn path(sweep_dir: &Path, trial: &Trial) -> PathBuf {
        failure_path(sweep_dir, &trial.name)
    }

    /// The record of `trial`, `None` when it has none.
    pub fn read(sweep_dir: &Path, trial: &Trial) -> Result<Option<TrialFailure>> {
        let path = Self::path(sweep_dir, trial);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::ConfigJson { path, source: e })
    }

    /// Writes the record (atomically, replacing an earlier one); returns its path.
    pub fn write(&self, sweep_dir: &Path) -> Result<PathBuf> {
        let path = failure_path(sweep_dir, &self.name);
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).at(dir)?;
        let json = serde_json::to_string_pretty(self).map_err(|e| Error::Encode {
            what: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let mut tmp = crate::sweep::shared_tempfile(dir, ".failed.").at(dir)?;
        std::io::Write::write_all(tmp.as_file_mut(), format!("{json}\n").as_bytes())
            .at(tmp.path())?;
        tmp.as_file().sync_all().at(tmp.path())?;
        tmp.persist(&path).map_err(|e| Error::io(&path, e.error))?;
        Ok(path)
    }

    /// Removes the record of `trial`; returns whether there was one.
    pub fn clear(sweep_dir: &Path, trial: &Trial) -> Result<bool> {
        let path = Self::path(sweep_dir, trial);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    /// How and why it failed, in one line: `exit status: 1: D: No such file or directory`.
    pub fn reason(&self) -> String {
        match &self.error {
            Some(e) => format!("{}: {e}", self.status),
            None => self.status.clone(),
        }
    }
}

/// Where one trial stands and what it reached.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialResult {
    /// The trial.
    pub trial: Trial,
    /// Its run directory.
    pub run_dir: PathBuf,
    /// `pending` (no checkpoint yet), `partial` (stopped before its end: resumable),
    /// `finished`, `stopped` (ended early by a callback, e.g. early stopping),
    /// `pruned` (not promoted past a rung of a pruned sweep), or `failed` (its last
    /// process failed: see [`TrialFailure`]).
    pub status: String,
    /// Why it failed ([`TrialFailure::reason`]) when its status is `failed`.
    pub failure: Option<String>,
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
            failure: None,
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
        for r in &mut summary.results {
            // A record that cannot be read still says the trial failed.
            let failure = match TrialFailure::read(sweep_dir, &r.trial) {
                Ok(f) => f.map(|f| f.reason()),
                Err(e) => Some(e.to_string()),
            };
            if let Some(reason) = failure {
                r.status = FAILED.into();
                r.failure = Some(reason);
            }
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
            "failure",
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
                    r.failure.clone().unwrap_or_default(),
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

    /// A failure record reads back as written, says how and why in one line, and is gone
    /// once cleared; a second clear finds nothing.
    #[test]
    fn a_failure_record_round_trips_and_clears() {
        let dir = tempfile::tempdir().unwrap();
        let trial = Trial {
            index: 3,
            name: "t003-data.source=D".into(),
            job: None,
            values: Default::default(),
        };
        assert_eq!(TrialFailure::read(dir.path(), &trial).unwrap(), None);
        let f = TrialFailure::new(
            &trial,
            Some(1),
            None,
            "exit status: 1".into(),
            Some("D: No such file or directory (os error 2)".into()),
        );
        let path = f.write(dir.path()).unwrap();
        assert_eq!(
            path,
            dir.path().join("sweep/failed/t003-data.source=D.json")
        );
        assert_eq!(
            TrialFailure::read(dir.path(), &trial).unwrap(),
            Some(f.clone())
        );
        assert_eq!(
            f.reason(),
            "exit status: 1: D: No such file or directory (os error 2)"
        );
        let killed = TrialFailure::new(&trial, None, Some(9), "signal: 9 (SIGKILL)".into(), None);
        assert_eq!(killed.reason(), "signal: 9 (SIGKILL)");
        // Replaced, not added to.
        killed.write(dir.path()).unwrap();
        assert_eq!(
            TrialFailure::read(dir.path(), &trial).unwrap(),
            Some(killed)
        );
        assert!(TrialFailure::clear(dir.path(), &trial).unwrap());
        assert!(!path.exists());
        assert!(!TrialFailure::clear(dir.path(), &trial).unwrap());
        // No temporary file is left beside the records.
        let left: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn loss_like_names_prefer_smaller_values() {
        assert!(lower_is_better("val_loss") && lower_is_better("val_mae"));
        assert!(!lower_is_better("val_accuracy"));
    }
}
