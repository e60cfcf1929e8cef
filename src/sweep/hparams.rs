//! A sweep in TensorBoard's HParams tab: `tensorboard --logdir SWEEP_DIR` compares the
//! trials by the values they vary and the sweep's metric.
//!
//! Written with the summary (`deeptrain sweep`, `sweep-report`), each time replacing the
//! earlier records:
//! - `SWEEP_DIR/sweep/events.out.tfevents.0.hparams`: the experiment (every varied key,
//!   plus `job` when the sweep runs job files, with the values the trials give it; the
//!   metric, as the `val/...` scalar the TensorBoard callback writes);
//! - `TRIAL_DIR/tensorboard/events.out.tfevents.0.hparams` for every trial that has
//!   started or failed: its values, and its status once it has ended or failed. That directory is the run of
//!   the trial's own scalars, so the HParams tab shows each trial's metric beside its
//!   values.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::summary::{Summary, TrialResult};
use super::SWEEP_META_DIR;
use crate::callbacks::tensorboard::hparams::{
    write_experiment, write_session, Experiment, HParamInfo, HValue, Session, SessionStatus,
};
use crate::callbacks::tensorboard::system_wall_time;
use crate::error::Result;

/// The hparam naming the job file of each trial, when the sweep has several.
pub const JOB_HPARAM: &str = "job";

/// The scalar tag the TensorBoard callback gives a validation metric (`val_accuracy` ->
/// `val/accuracy`).
pub fn metric_tag(metric: &str) -> String {
    format!("val/{}", metric.trim_start_matches("val_"))
}

/// The trial's value of every hparam, JSON as given.
fn trial_values(summary: &Summary, r: &TrialResult) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    if summary.has_jobs {
        let job = r.trial.job.as_ref().map(|j| j.display().to_string());
        out.push((
            JOB_HPARAM.to_string(),
            Value::String(job.unwrap_or_else(|| "base".into())),
        ));
    }
    for k in &summary.varied {
        if let Some((_, v)) = r.trial.values.0.iter().find(|(key, _)| key == k) {
            out.push((k.clone(), v.clone()));
        }
    }
    out
}

/// The hparams values of one key: numbers stay numbers and booleans booleans when all of
/// the key's values are; otherwise every value is its text (a string as is, anything
/// else as JSON).
fn as_hvalues(values: &[&Value]) -> Vec<HValue> {
    if values.iter().all(|v| v.is_number()) {
        values
            .iter()
            .map(|v| HValue::Number(v.as_f64().unwrap_or(f64::NAN)))
            .collect()
    } else if values.iter().all(|v| v.is_boolean()) {
        values
            .iter()
            .map(|v| HValue::Bool(v.as_bool() == Some(true)))
            .collect()
    } else {
        values
            .iter()
            .map(|v| match v {
                Value::String(s) => HValue::Text(s.clone()),
                v => HValue::Text(v.to_string()),
            })
            .collect()
    }
}

/// The experiment and each trial's session (`None` for trials not started yet).
fn records(summary: &Summary) -> (Experiment, Vec<Option<Session>>) {
    let per_trial: Vec<Vec<(String, Value)>> = summary
        .results
        .iter()
        .map(|r| trial_values(summary, r))
        .collect();
    let mut names: Vec<String> = Vec::new();
    for values in &per_trial {
        for (k, _) in values {
            if !names.contains(k) {
                names.push(k.clone());
            }
        }
    }
    // Each key's values as hparams, typed over all of its values (so every trial's value
    // of a key has the domain's type).
    let mut typed: Vec<Vec<(String, HValue)>> = vec![Vec::new(); per_trial.len()];
    let mut hparams = Vec::new();
    for name in &names {
        let given: Vec<(usize, &Value)> = per_trial
            .iter()
            .enumerate()
            .filter_map(|(i, vs)| vs.iter().find(|(k, _)| k == name).map(|(_, v)| (i, v)))
            .collect();
        let hv = as_hvalues(&given.iter().map(|(_, v)| *v).collect::<Vec<_>>());
        let mut domain: Vec<HValue> = Vec::new();
        for v in &hv {
            if !domain.contains(v) {
                domain.push(v.clone());
            }
        }
        domain.sort_by(|a, b| match (a, b) {
            (HValue::Number(x), HValue::Number(y)) => x.total_cmp(y),
            (HValue::Text(x), HValue::Text(y)) => x.cmp(y),
            (HValue::Bool(x), HValue::Bool(y)) => x.cmp(y),
            _ => std::cmp::Ordering::Equal,
        });
        hparams.push(HParamInfo {
            name: name.clone(),
            values: domain,
        });
        for ((i, _), v) in given.iter().zip(hv) {
            typed[*i].push((name.clone(), v));
        }
    }
    let experiment = Experiment {
        hparams,
        metrics: vec![(metric_tag(&summary.metric), summary.metric.clone())],
    };
    let sessions = summary
        .results
        .iter()
        .zip(typed)
        .map(|(r, values)| {
            let status = match r.status.as_str() {
                "pending" => return None,
                // A pruned trial ended normally too: the sweep stopped it at a rung.
                "finished" | "stopped" | "pruned" => Some(SessionStatus::Success),
                // Whether or not it wrote a checkpoint first.
                super::summary::FAILED => Some(SessionStatus::Failure),
                _ => None,
            };
            Some(Session {
                hparams: values,
                status,
            })
        })
        .collect();
    (experiment, sessions)
}

/// Writes the HParams records of `summary`'s sweep in `sweep_dir` (see the module's
/// comment); returns the files written, the experiment's first.
pub fn write(sweep_dir: &Path, summary: &Summary) -> Result<Vec<PathBuf>> {
    let (experiment, sessions) = records(summary);
    let now = system_wall_time();
    let mut files = vec![write_experiment(
        &sweep_dir.join(SWEEP_META_DIR),
        &experiment,
        now,
    )?];
    for (r, session) in summary.results.iter().zip(sessions) {
        if let Some(s) = session {
            files.push(write_session(&r.run_dir.join("tensorboard"), &s, now)?);
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::{Ordered, Trial};
    use serde_json::json;

    fn result(index: usize, job: Option<&str>, values: Value, status: &str) -> TrialResult {
        let values = match values {
            Value::Object(m) => Ordered(m.into_iter().collect()),
            _ => unreachable!(),
        };
        TrialResult {
            trial: Trial {
                index,
                name: format!("t{index:03}"),
                job: job.map(PathBuf::from),
                values,
            },
            run_dir: PathBuf::from(format!("s/t{index:03}")),
            status: status.into(),
            failure: None,
            metric: "val_loss".into(),
            higher_is_better: false,
            best: None,
            last: None,
            best_epoch: None,
            steps: 0,
            train_secs: 0.0,
            wall_secs: 0.0,
            curve: Vec::new(),
        }
    }

    /// A key with numbers and a string is text throughout; booleans stay booleans; job
    /// files are the `job` hparam; not-started trials have no session, running ones no
    /// status, failed ones (with or without a checkpoint) TensorBoard's failure.
    #[test]
    fn values_are_typed_per_key_and_sessions_follow_the_status() {
        let summary = Summary {
            metric: "val_loss".into(),
            varied: vec!["a".into(), "b".into()],
            has_jobs: true,
            results: vec![
                result(0, None, json!({"a": 1, "b": true}), "finished"),
                result(1, Some("j.json"), json!({"a": "x", "b": false}), "partial"),
                result(2, Some("j.json"), json!({"a": 0.5}), "pending"),
                result(3, None, json!({"a": 2}), "failed"),
            ],
        };
        let (e, sessions) = records(&summary);
        let text = |s: &str| HValue::Text(s.into());
        assert_eq!(
            e.hparams,
            [
                HParamInfo {
                    name: JOB_HPARAM.into(),
                    values: vec![text("base"), text("j.json")]
                },
                HParamInfo {
                    name: "a".into(),
                    values: vec![text("0.5"), text("1"), text("2"), text("x")]
                },
                HParamInfo {
                    name: "b".into(),
                    values: vec![HValue::Bool(false), HValue::Bool(true)]
                },
            ]
        );
        assert_eq!(e.metrics, [("val/loss".into(), "val_loss".into())]);
        assert_eq!(
            sessions,
            [
                Some(Session {
                    hparams: vec![
                        ("job".into(), text("base")),
                        ("a".into(), text("1")),
                        ("b".into(), HValue::Bool(true)),
                    ],
                    status: Some(SessionStatus::Success),
                }),
                Some(Session {
                    hparams: vec![
                        ("job".into(), text("j.json")),
                        ("a".into(), text("x")),
                        ("b".into(), HValue::Bool(false)),
                    ],
                    status: None,
                }),
                None,
                Some(Session {
                    hparams: vec![("job".into(), text("base")), ("a".into(), text("2"))],
                    status: Some(SessionStatus::Failure),
                }),
            ]
        );
    }
}
