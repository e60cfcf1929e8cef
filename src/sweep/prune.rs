//! Successive halving: pruning that exact resume makes possible. Every trial trains to
//! the first rung (an epoch count) and ends there as a finished run; the best `keep`
//! share of them is promoted and *resumed* (`deeptrain resume DIR --epochs NEXT`, which
//! continues bit for bit as if NEXT had been configured from the start), and so on to the
//! last rung, which is the survivors' whole length. A trial that reaches the last rung
//! ends bit-identical to the same trial trained with `train.epochs` = the last rung.
//!
//! Each decision is written once to `SWEEP_DIR/sweep/prune.json` before any promoted
//! trial resumes, so an interrupted sweep continues the same schedule and never decides
//! again (a rerun with more finished trials could otherwise rank differently).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::plan::Plan;
use super::summary::{newest_state, Summary, TrialResult};
use super::{sweep_error, SWEEP_META_DIR};
use crate::error::{Error, IoContext, Result};
use crate::state::{DoneReason, Phase};

/// The decisions' file name inside `SWEEP_DIR/sweep/`.
pub const PRUNE_FILE: &str = "prune.json";

/// The status summary.csv gives a trial that was not promoted.
pub const PRUNED: &str = "pruned";

/// The pruning schemes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PruneKind {
    /// Train all to a rung, promote the best share, resume them to the next rung.
    SuccessiveHalving,
}

fn default_keep() -> f64 {
    0.5
}

/// A sweep file's `"prune"`: `{"kind": "successive_halving", "rungs": [1, 3, 9],
/// "keep": 0.34}` (`"name"` is accepted for `"kind"`, as components name theirs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneSpec {
    /// The scheme (only `successive_halving`).
    #[serde(alias = "name")]
    pub kind: PruneKind,
    /// Epoch counts, increasing: every trial trains to the first, the promoted ones on
    /// to the next; the last is the survivors' length (it replaces `train.epochs`).
    pub rungs: Vec<u64>,
    /// The share of a rung's trials promoted to the next, in (0, 1] [default 0.5]: the
    /// best `round(keep x n)`, at least one.
    #[serde(default = "default_keep")]
    pub keep: f64,
}

impl PruneSpec {
    /// Checks the rungs and `keep`; errors name the sweep file and the field.
    pub fn check(&self, file: &Path) -> Result<()> {
        if self.rungs.is_empty() {
            return Err(sweep_error(file, "prune.rungs", "needs at least one rung"));
        }
        if self.rungs[0] == 0 || self.rungs.windows(2).any(|w| w[0] >= w[1]) {
            return Err(sweep_error(
                file,
                "prune.rungs",
                format!(
                    "must be increasing epoch counts from 1, got {:?}",
                    self.rungs
                ),
            ));
        }
        if !(self.keep > 0.0 && self.keep <= 1.0) {
            return Err(sweep_error(
                file,
                "prune.keep",
                format!("must be in (0, 1], got {}", self.keep),
            ));
        }
        Ok(())
    }

    /// How many of `n` trials a rung promotes: `round(keep x n)`, at least 1, at most n.
    pub fn promoted_count(&self, n: usize) -> usize {
        ((self.keep * n as f64).round() as usize).clamp(1.min(n), n)
    }
}

/// One trial's standing at a rung.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ranked {
    /// The trial's number.
    pub trial: usize,
    /// Its directory name.
    pub name: String,
    /// Its best validation value of the sweep's metric up to the rung (none: never
    /// validated, ranked last).
    pub value: Option<f64>,
}

/// One rung's decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The rung's epoch count.
    pub epochs: u64,
    /// The metric ranked by.
    pub metric: String,
    /// The rung's trials, best first.
    pub ranked: Vec<Ranked>,
    /// The trials promoted to the next rung, in trial order.
    pub promoted: Vec<usize>,
}

/// `sweep/prune.json`: the scheme, and the decisions made so far (one per rung but the
/// last).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// The scheme the decisions follow.
    pub spec: PruneSpec,
    /// How many trials the sweep had when the first decision was made.
    pub trials: usize,
    /// The decisions, by rung.
    pub decisions: Vec<Decision>,
}

/// Whether the run in `run_dir` has trained `epochs` epochs and ended, or ended early
/// (stopped by a callback: it cannot go on).
pub fn reached(run_dir: &Path, epochs: u64) -> bool {
    newest_state(run_dir).is_some_and(|s| match &s.phase {
        Phase::Done {
            reason: DoneReason::Finished,
        } => s.epoch >= epochs,
        Phase::Done { .. } => true,
        _ => false,
    })
}

impl Schedule {
    /// The decisions' file of a sweep directory.
    pub fn path(sweep_dir: &Path) -> PathBuf {
        sweep_dir.join(SWEEP_META_DIR).join(PRUNE_FILE)
    }

    /// The schedule of the sweep in `sweep_dir` planned as `plan`: `None` without
    /// `prune`; the written decisions when there are some (which must be of the same
    /// scheme and trials), else none yet.
    pub fn open(sweep_dir: &Path, plan: &Plan) -> Result<Option<Schedule>> {
        let Some(spec) = &plan.sweep.prune else {
            return Ok(None);
        };
        let path = Self::path(sweep_dir);
        if !path.exists() {
            return Ok(Some(Schedule {
                spec: spec.clone(),
                trials: plan.trials.len(),
                decisions: Vec::new(),
            }));
        }
        let text = std::fs::read_to_string(&path).at(&path)?;
        let s: Schedule = serde_json::from_str(&text).map_err(|e| Error::ConfigJson {
            path: path.clone(),
            source: e,
        })?;
        if s.spec != *spec {
            return Err(Error::Config {
                field: format!("{} spec", path.display()),
                reason: "the sweep's prune settings differ from those its decisions were made with"
                    .into(),
            });
        }
        if s.trials != plan.trials.len() && !s.decisions.is_empty() {
            return Err(Error::Config {
                field: format!("{} trials", path.display()),
                reason: format!(
                    "decisions were made among {} trials, the plan has {} (a pruned sweep cannot be extended once it has decided)",
                    s.trials,
                    plan.trials.len()
                ),
            });
        }
        Ok(Some(s))
    }

    /// The rung trial `k` trains to (an index into `rungs`), or `None` once pruned.
    pub fn level(&self, k: usize) -> Option<usize> {
        let mut level = 0;
        for d in &self.decisions {
            if d.promoted.contains(&k) {
                level += 1;
            } else {
                return None;
            }
        }
        Some(level)
    }

    /// The epochs trial `k` trains to now, or `None` once pruned.
    pub fn target(&self, k: usize) -> Option<u64> {
        self.level(k).map(|l| self.spec.rungs[l])
    }

    /// Whether a rung is still to be decided (the current one is not the last).
    pub fn can_decide(&self) -> bool {
        self.decisions.len() + 1 < self.spec.rungs.len()
    }

    /// Ranks the trials of the current rung (every one must have reached it), promotes
    /// the best share, and writes the decision to `sweep/prune.json` (atomically).
    pub fn decide(&mut self, sweep_dir: &Path, plan: &Plan) -> Result<&Decision> {
        let level = self.decisions.len();
        let epochs = self.spec.rungs[level];
        let metric = plan.sweep.metric.as_deref();
        let mut metric_name = metric.unwrap_or_default().to_string();
        let mut higher = true;
        let mut ranked = Vec::new();
        for t in &plan.trials {
            if self.level(t.index) != Some(level) {
                continue;
            }
            let dir = sweep_dir.join(&t.name);
            if !reached(&dir, epochs) {
                return Err(Error::Config {
                    field: dir.display().to_string(),
                    reason: format!(
                        "has not reached rung {epochs} (epochs): nothing to decide yet"
                    ),
                });
            }
            let r = TrialResult::read(t, &dir, metric, plan.sweep.goal);
            if metric_name.is_empty() {
                metric_name = r.metric.clone();
            }
            higher = r.higher_is_better;
            // The best value up to the rung (the trial stopped there, but be exact).
            let value = r
                .curve
                .iter()
                .filter(|(at, _)| *at <= epochs as f64 + 1e-9)
                .map(|&(_, v)| v)
                .reduce(|a, b| match (higher && b > a) || (!higher && b < a) {
                    true => b,
                    false => a,
                });
            ranked.push(Ranked {
                trial: t.index,
                name: t.name.clone(),
                value,
            });
        }
        ranked.sort_by(|a, b| match (a.value, b.value) {
            (Some(x), Some(y)) => {
                let o = x.total_cmp(&y);
                let o = if higher { o.reverse() } else { o };
                o.then(a.trial.cmp(&b.trial))
            }
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.trial.cmp(&b.trial),
        });
        let n = self.spec.promoted_count(ranked.len());
        let mut promoted: Vec<usize> = ranked.iter().take(n).map(|r| r.trial).collect();
        promoted.sort_unstable();
        self.trials = plan.trials.len();
        self.decisions.push(Decision {
            epochs,
            metric: metric_name,
            ranked,
            promoted,
        });
        self.write(sweep_dir)?;
        Ok(&self.decisions[level])
    }

    fn write(&self, sweep_dir: &Path) -> Result<()> {
        let path = Self::path(sweep_dir);
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).at(dir)?;
        let json = serde_json::to_string_pretty(self).map_err(|e| Error::Encode {
            what: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let mut tmp = super::shared_tempfile(dir, ".prune.").at(dir)?;
        std::io::Write::write_all(tmp.as_file_mut(), format!("{json}\n").as_bytes())
            .at(tmp.path())?;
        tmp.as_file().sync_all().at(tmp.path())?;
        tmp.persist(&path).map_err(|e| Error::io(&path, e.error))?;
        Ok(())
    }

    /// Marks the pruned trials of `summary` (status [`PRUNED`]).
    pub fn mark(&self, summary: &mut Summary) {
        for r in &mut summary.results {
            if self.level(r.trial.index).is_none() {
                r.status = PRUNED.into();
            }
        }
    }
}

/// Refuses a trial job whose learning-rate schedule is as long as the run's planned
/// steps (`cosine`, `one_cycle` without `total_steps`): a trial paused at a rung would
/// plan fewer steps, and would not end like the same trial trained without pruning.
pub fn check_job(job: &crate::job::JobConfig, trial: &str) -> Result<()> {
    if let Some(s) = &job.schedule {
        if matches!(s.name.as_str(), "cosine" | "one_cycle") && !s.args.contains_key("total_steps")
        {
            return Err(Error::Config {
                field: format!("trial {trial} schedule.total_steps"),
                reason: format!(
                    "a pruned sweep needs it given: `{}` would otherwise last as long as each rung, not the whole run",
                    s.name
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_reads_kind_or_name_and_checks_its_rungs() {
        let a: PruneSpec = serde_json::from_str(
            r#"{"kind": "successive_halving", "rungs": [1, 3, 9], "keep": 0.34}"#,
        )
        .unwrap();
        let b: PruneSpec = serde_json::from_str(
            r#"{"name": "successive_halving", "rungs": [1, 3, 9], "keep": 0.34}"#,
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.promoted_count(9), 3);
        assert_eq!(a.promoted_count(3), 1);
        assert_eq!(a.promoted_count(1), 1);
        let c: PruneSpec =
            serde_json::from_str(r#"{"kind": "successive_halving", "rungs": [2]}"#).unwrap();
        assert_eq!(c.keep, 0.5);
        assert_eq!(c.promoted_count(5), 3);
        let p = Path::new("s.json");
        assert!(a.check(p).is_ok());
        let bad = PruneSpec {
            rungs: vec![3, 3],
            ..a.clone()
        };
        assert_eq!(
            bad.check(p).unwrap_err().to_string(),
            "config s.json prune.rungs: must be increasing epoch counts from 1, got [3, 3]"
        );
        let bad = PruneSpec { keep: 0.0, ..a };
        assert!(bad.check(p).unwrap_err().to_string().contains("prune.keep"));
    }

    #[test]
    fn levels_follow_the_decisions() {
        let s = Schedule {
            spec: PruneSpec {
                kind: PruneKind::SuccessiveHalving,
                rungs: vec![1, 2, 4],
                keep: 0.5,
            },
            trials: 4,
            decisions: vec![Decision {
                epochs: 1,
                metric: "m".into(),
                ranked: Vec::new(),
                promoted: vec![1, 3],
            }],
        };
        assert_eq!(s.target(0), None);
        assert_eq!(s.target(1), Some(2));
        assert_eq!(s.level(3), Some(1));
        assert!(s.can_decide());
    }
}
