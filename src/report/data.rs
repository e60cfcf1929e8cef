//! What goes into `report.png`: the train state and run description, laid out for the
//! renderer in `mod.rs`. Reading only, so rendering never changes a run.

use super::{BestMarker, ReportData, Series};
use crate::checkpoint::{RunInfo, SaveReason};
use crate::state::{Phase, TrainState};

/// Flattens a config to `a.b.c: value` pairs, the sections that matter most first
/// (model, optimizer, train, data, then the rest); nulls are left out.
pub fn flatten_config(value: &serde_json::Value, prefix: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    flatten_json(value, prefix, &mut out);
    out.retain(|(_, v)| v != "null");
    let rank = |k: &str| {
        let section = k
            .split('.')
            .find(|p| !p.is_empty() && *p != prefix)
            .unwrap_or("");
        ["name", "model", "optimizer", "train", "data"]
            .iter()
            .position(|s| *s == section)
            .unwrap_or(5)
    };
    out.sort_by_key(|(k, _)| rank(k));
    out
}

/// Flattens JSON into `a.b.c: value` pairs, in document order.
pub fn flatten_json(value: &serde_json::Value, prefix: &str, out: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten_json(v, &key, out);
            }
        }
        serde_json::Value::String(s) => out.push((prefix.to_string(), s.clone())),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

/// A one-line status for the report header.
pub fn status_line(state: &TrainState, reason: Option<SaveReason>) -> String {
    match (&state.phase, reason) {
        (Phase::Done { reason }, _) => match reason {
            crate::state::DoneReason::Finished => "finished".into(),
            crate::state::DoneReason::Stopped(stop) => {
                format!("stopped early by {}: {}", stop.by, stop.why)
            }
        },
        (_, Some(SaveReason::Interrupt)) => format!("interrupted {}", state.interrupt_status()),
        (_, Some(SaveReason::CallbackError)) => {
            format!("stopped by a callback error, {}", state.interrupt_status())
        }
        _ => format!("running: {}", state.interrupt_status()),
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "—".into()
    } else {
        format!("{} ({})", items.join(", "), items.len())
    }
}

/// Everything the report shows, from the state and the run description.
pub fn report_data(state: &TrainState, run: &RunInfo, status: &str) -> ReportData {
    let s = state;
    let header = vec![
        (
            "model".into(),
            format!("{} ({} params)", run.model, run.parameters),
        ),
        ("optimizer".into(), run.optimizer.clone()),
        ("device".into(), run.device.clone()),
        ("seed".into(), run.seed.to_string()),
        ("status".into(), status.to_string()),
        ("wall time".into(), format!("{:.1} s", s.time.total_secs)),
    ];
    let best = s.best.as_ref().map(|b| {
        format!(
            "{:.4} @ batch {} (epoch {}, validation {})",
            b.value,
            b.batches_fit,
            b.epoch,
            b.validation + 1
        )
    });
    let train_state = vec![
        ("phase".into(), format!("{:?}", s.phase)),
        ("epoch".into(), format!("{} / {}", s.epoch, run.epochs)),
        ("global_step".into(), s.global_step.to_string()),
        ("batches_fit".into(), s.batches_fit.to_string()),
        ("batch_in_epoch".into(), s.batch_in_epoch.to_string()),
        ("batches_validated".into(), s.batches_validated.to_string()),
        ("times_validated".into(), s.times_validated.to_string()),
        (
            "set".into(),
            match s.set_kind {
                Some(kind) => format!("{} ({kind})", s.set_name),
                None => "—".into(),
            },
        ),
        (
            "key_metric".into(),
            format!(
                "{} ({})",
                s.key_metric,
                if s.key_metric_higher_is_better {
                    "max"
                } else {
                    "min"
                }
            ),
        ),
        ("best".into(), best.unwrap_or_else(|| "—".into())),
        ("learning_rate".into(), format!("{:.4e}", s.learning_rate)),
        ("grad_norm".into(), format!("{:.4}", s.grad_norm)),
    ];
    let d = &s.train_data;
    let data_state = vec![
        ("sets done (this epoch)".into(), list(&d.sets_done)),
        ("sets remaining".into(), list(&d.sets_to_process)),
        ("batch_size".into(), d.loader.batch_size.to_string()),
        ("shuffle".into(), d.loader.shuffle.to_string()),
        ("loader seed".into(), d.loader.rng.seed.to_string()),
        ("epochs planned".into(), d.epoch.to_string()),
    ];
    let series = |h: &crate::state::History, skip: &[&str]| -> Vec<Series> {
        h.metrics
            .iter()
            .filter(|(k, _)| !skip.contains(&k.as_str()))
            .map(|(k, v)| Series {
                name: k.clone(),
                points: h
                    .at_batches_fit
                    .iter()
                    .zip(v)
                    .map(|(x, y)| (*x as f64, *y))
                    .collect(),
            })
            .collect()
    };
    let column = |name: &str| -> Vec<(f64, f64)> {
        let h = &s.train_history;
        h.metrics
            .get(name)
            .map(|v| {
                h.at_batches_fit
                    .iter()
                    .zip(v)
                    .map(|(x, y)| (*x as f64, *y))
                    .collect()
            })
            .unwrap_or_default()
    };
    ReportData {
        title: run.name.clone(),
        header,
        hyperparameters: run.hyperparameters.clone(),
        train_state,
        data_state,
        train_series: series(&s.train_history, &["lr", "grad_norm"]),
        val_series: series(&s.val_history, &[]),
        epoch_ends: s.epoch_ends.iter().map(|x| *x as f64).collect(),
        best: s.best.as_ref().map(|b| BestMarker {
            metric: b.metric.clone(),
            x: b.batches_fit as f64,
            y: b.value,
        }),
        learning_rate: column("lr"),
        grad_norm: column("grad_norm"),
    }
}
