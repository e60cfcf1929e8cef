//! CSV logs: `train.csv` (one row per train batch) and `val.csv` (one per validation).
//!
//! Columns are fixed by the first row, so every row lines up. Rows are flushed at every
//! checkpoint; on resume, rows written after the checkpoint (by the session that was
//! stopped) are cut, so the files always match the train state exactly.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{Callback, Stage, TrainerView};
use crate::error::{Error, IoContext, Result};
use crate::state::{History, TrainState};

/// Writes `train.csv` (columns `batches_fit,epoch,global_step,set_name`, then the train
/// metrics in name order, e.g. `grad_norm`, `loss`, `lr`) and `val.csv` (`validation,
/// batches_fit,epoch,global_step`, then the `val_*` metrics). Values are the shortest text
/// that parses back to the same f64; NaN is an empty field. Rows beyond the train state
/// (left by a session that was stopped) are cut at `TrainBegin` and `Load`. Registered as
/// `csv_logger`.
pub struct CsvLogger {
    dir: PathBuf,
    train: Option<Log>,
    val: Option<Log>,
}

struct Log {
    path: PathBuf,
    columns: Vec<String>,
    out: BufWriter<File>,
}

impl CsvLogger {
    /// Logs into `dir/train.csv` and `dir/val.csv`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            train: None,
            val: None,
        }
    }

    /// `dir/train.csv`: one row per fit train set (skipped batches write none).
    pub fn train_path(&self) -> PathBuf {
        self.dir.join("train.csv")
    }

    /// `dir/val.csv`: one row per validation pass.
    pub fn val_path(&self) -> PathBuf {
        self.dir.join("val.csv")
    }

    fn flush(&mut self) -> Result<()> {
        for log in [&mut self.train, &mut self.val].into_iter().flatten() {
            log.out.flush().at(&log.path)?;
        }
        Ok(())
    }
}

const TRAIN_KEYS: [&str; 4] = ["batches_fit", "epoch", "global_step", "set_name"];
const VAL_KEYS: [&str; 4] = ["validation", "batches_fit", "epoch", "global_step"];

fn format_value(v: f64) -> String {
    if v.is_nan() {
        String::new()
    } else {
        // Shortest text that parses back to the same f64.
        format!("{v}")
    }
}

/// Opens `path` for appending, writing the header when the file is new or empty.
/// An existing header fixes the columns.
fn open_log(path: &Path, keys: &[&str], history: &History) -> Result<Log> {
    let existing = fs::read_to_string(path).ok();
    let columns: Vec<String> = match existing.as_deref().and_then(|t| t.lines().next()) {
        Some(header) if !header.is_empty() => header
            .split(',')
            .skip(keys.len())
            .map(String::from)
            .collect(),
        _ => history.metrics.keys().cloned().collect(),
    };
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .at(path)?;
    let mut out = BufWriter::new(file);
    if existing.as_deref().is_none_or(str::is_empty) {
        let mut header: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        header.extend(columns.iter().cloned());
        writeln!(out, "{}", header.join(",")).at(path)?;
    }
    Ok(Log {
        path: path.to_path_buf(),
        columns,
        out,
    })
}

/// Keeps the header and the rows whose first column is at most `last`.
fn cut_after(path: &Path, last: u64) -> Result<()> {
    let Ok(text) = fs::read_to_string(path) else {
        return Ok(());
    };
    let mut kept = String::new();
    for (i, line) in text.lines().enumerate() {
        let first = line.split(',').next().unwrap_or("");
        if i == 0 || first.parse::<u64>().is_ok_and(|n| n <= last) {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    if kept != text {
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir).at(dir)?;
        tmp.write_all(kept.as_bytes()).at(tmp.path())?;
        tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    }
    Ok(())
}

fn row(log: &mut Log, lead: &[String], history: &History) -> Result<()> {
    let i = history.len() - 1;
    let mut fields: Vec<String> = lead.to_vec();
    for c in &log.columns {
        fields.push(
            history
                .metrics
                .get(c)
                .map(|v| format_value(v[i]))
                .unwrap_or_default(),
        );
    }
    writeln!(log.out, "{}", fields.join(",")).at(&log.path)
}

fn train_lead(s: &TrainState) -> Vec<String> {
    vec![
        s.batches_fit.to_string(),
        s.epoch.to_string(),
        s.global_step.to_string(),
        s.set_name.clone(),
    ]
}

impl Callback for CsvLogger {
    fn name(&self) -> String {
        "csv_logger".into()
    }

    fn on_stage(&mut self, stage: Stage, view: &mut TrainerView) -> Result<()> {
        let s = view.state;
        match stage {
            Stage::TrainBegin | Stage::Load => {
                fs::create_dir_all(&self.dir).at(&self.dir)?;
                self.train = None;
                self.val = None;
                cut_after(&self.train_path(), s.batches_fit)?;
                cut_after(&self.val_path(), s.times_validated)?;
            }
            // A set's row exists once its last window is fit: `TrainBatchEnd` (a set cut
            // into windows ends several iterations, and only the last one adds a row).
            Stage::TrainBatchEnd => {
                let last_row = s.train_history.at_batches_fit.last().copied();
                if last_row != Some(s.batches_fit) {
                    return Ok(()); // skipped batch: no metrics to log
                }
                if self.train.is_none() {
                    self.train = Some(open_log(&self.train_path(), &TRAIN_KEYS, &s.train_history)?);
                }
                if let Some(log) = self.train.as_mut() {
                    row(log, &train_lead(s), &s.train_history)?;
                }
            }
            Stage::ValEnd => {
                if self.val.is_none() {
                    self.val = Some(open_log(&self.val_path(), &VAL_KEYS, &s.val_history)?);
                }
                let lead = vec![
                    s.times_validated.to_string(),
                    s.batches_fit.to_string(),
                    s.epoch.to_string(),
                    s.global_step.to_string(),
                ];
                if let Some(log) = self.val.as_mut() {
                    row(log, &lead, &s.val_history)?;
                }
                self.flush()?;
            }
            Stage::Save | Stage::Interrupt | Stage::TrainEnd | Stage::TrainEpochEnd => {
                self.flush()?
            }
            _ => {}
        }
        Ok(())
    }
}

impl Drop for CsvLogger {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            log::warn!("{e}");
        }
    }
}
