//! `sweep/summary.png`: the sweep's [`Summary`] as a comparison figure (drawn by
//! `report::comparison`): every trial's validation curve of the metric, the best trial
//! highlighted, and the trials ranked.

use std::path::{Path, PathBuf};

use super::summary::{Summary, SUMMARY_PNG};
use super::SWEEP_META_DIR;
use crate::error::Result;
use crate::report::comparison::{render_comparison, Comparison, RunLine};

/// A value as the table shows it: 4 significant digits.
fn short(v: Option<f64>) -> String {
    match v {
        Some(x) if x != 0.0 && (x.abs() < 1e-3 || x.abs() >= 1e6) => format!("{x:.3e}"),
        Some(x) => format!("{:.4}", x),
        None => "-".into(),
    }
}

/// The figure's data for `summary` of the sweep `name`.
pub fn comparison(name: &str, summary: &Summary) -> Comparison {
    let ranked = summary.ranked();
    let best = summary.best();
    let runs = ranked
        .iter()
        .map(|&i| {
            let r = &summary.results[i];
            RunLine {
                name: r.trial.name.clone(),
                points: r.curve.clone(),
                cells: vec![
                    short(r.best),
                    short(r.last),
                    r.best_epoch
                        .map(|e| e.to_string())
                        .unwrap_or_else(|| "-".into()),
                    r.status.clone(),
                ],
            }
        })
        .collect();
    let subtitle = format!(
        "{} trials, {} done  ·  metric {}  ·  best: {}",
        summary.results.len(),
        summary.done(),
        summary.metric,
        best.map(|i| {
            let r = &summary.results[i];
            format!("{} = {}", r.trial.name, short(r.best))
        })
        .unwrap_or_else(|| "none yet".into())
    );
    Comparison {
        title: format!("sweep {name}"),
        subtitle,
        metric: summary.metric.clone(),
        x_label: "epochs".into(),
        runs,
        highlight_first: best.is_some(),
        columns: ["best", "final", "epoch", "status"]
            .map(String::from)
            .to_vec(),
    }
}

/// Writes `SWEEP_DIR/sweep/summary.png`; returns its path.
pub fn write_png(sweep_dir: &Path, name: &str, summary: &Summary) -> Result<PathBuf> {
    let path = sweep_dir.join(SWEEP_META_DIR).join(SUMMARY_PNG);
    render_comparison(&comparison(name, summary), &path)?;
    Ok(path)
}
