//! CSV logs: `train.csv` (one row per train batch) and `val.csv` (one per validation).
//!
//! Columns are fixed by the first row, so every row lines up. Each row is written through
//! as it is logged (before any checkpoint that holds it exists); on resume, rows written after the checkpoint (by the session that was
//! stopped) are cut, so the files always match the train state exactly.
//!
//! On resume the rows up to the checkpoint are also checked against the state's history
//! (row count, the `batches_fit`/`validation` columns, every value). A file that does not
//! match (damaged on disk, edited, cut short inside its rows) is renamed aside as
//! `train.csv.damaged-<unix time>` and rebuilt from the history, with a warning naming both
//! files. Values and `batches_fit`/`validation`/`epoch` come from the history; the
//! `global_step` and `set_name` of a row only the damaged file knew are taken from it where
//! that row's leading fields are intact, and left empty otherwise (the warning says so).

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
/// (left by a session that was stopped) are cut at `TrainBegin` and `Load`, and the rest is
/// checked against the history: a damaged file is set aside and rebuilt (see the module
/// documentation). Registered as `csv_logger`.
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

/// Which log a file is: the two differ in their leading columns.
#[derive(Clone, Copy)]
enum Kind {
    Train,
    Val,
}

impl Kind {
    fn keys(self) -> &'static [&'static str] {
        match self {
            Kind::Train => &TRAIN_KEYS,
            Kind::Val => &VAL_KEYS,
        }
    }
}

/// Brings the log at `path` in line with the train state `s` at a (re)start: rows past
/// the state (first column above `last`) and a last line cut short by a kill are dropped;
/// the rest must match `history` row for row, else the file is set aside and rebuilt.
fn reconcile(path: &Path, kind: Kind, history: &History, last: u64, s: &TrainState) -> Result<()> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(path, e)),
    };
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(_) => return rebuild(path, kind, history, s, "", "it is not UTF-8 text"),
    };
    let mut lines: Vec<&str> = text.split('\n').collect();
    // The piece after the last newline: empty, or a line whose write was cut short.
    lines.pop();
    let mut kept: Vec<&str> = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        let first = line.split(',').next().unwrap_or("");
        // Garbage stays, to be found by `check`.
        if i == 0 || !first.parse::<u64>().is_ok_and(|n| n > last) {
            kept.push(line);
        }
    }
    if let Err(reason) = check(&kept, kind, history) {
        return rebuild(path, kind, history, s, &text, &reason);
    }
    let mut out = String::with_capacity(text.len());
    for line in &kept {
        out.push_str(line);
        out.push('\n');
    }
    if out != text {
        write_atomically(path, &out)?;
    }
    Ok(())
}

/// Whether `lines` (header first) are exactly the rows this logger writes for `history`.
fn check(lines: &[&str], kind: Kind, history: &History) -> std::result::Result<(), String> {
    let keys = kind.keys();
    let Some(header) = lines.first() else {
        return match history.len() {
            0 => Ok(()),
            n => Err(format!(
                "it is empty, but the checkpoint's history has {n} rows"
            )),
        };
    };
    let columns = columns_of(header, keys).ok_or("its header is not this log's")?;
    let rows = &lines[1..];
    if rows.len() != history.len() {
        return Err(format!(
            "it has {} rows up to the checkpoint, the checkpoint's history {}",
            rows.len(),
            history.len()
        ));
    }
    for (i, line) in rows.iter().enumerate() {
        let fields: Vec<&str> = line.split(',').collect();
        let bad = |what: &str| format!("row {} ({what}): {line:?}", i + 1);
        if fields.len() != keys.len() + columns.len() {
            return Err(bad(&format!(
                "{} fields, not {}",
                fields.len(),
                keys.len() + columns.len()
            )));
        }
        let at = history.at_batches_fit[i].to_string();
        let lead_ok = match kind {
            Kind::Train => fields[0] == at,
            Kind::Val => fields[0] == (i + 1).to_string() && fields[1] == at,
        };
        if !lead_ok {
            return Err(bad("not the checkpoint's batch"));
        }
        for (c, field) in columns.iter().zip(&fields[keys.len()..]) {
            let want = history.metrics.get(c).map_or(f64::NAN, |v| v[i]);
            let same = match field.parse::<f64>() {
                Ok(v) => v.to_bits() == want.to_bits(),
                Err(_) => field.is_empty() && want.is_nan(),
            };
            if !same {
                return Err(bad(&format!(
                    "{c} is not the checkpoint's {}",
                    format_value(want)
                )));
            }
        }
    }
    Ok(())
}

/// The metric columns a header names after `keys`, or `None` when it is not such a header.
fn columns_of(header: &str, keys: &[&str]) -> Option<Vec<String>> {
    let fields: Vec<&str> = header.split(',').collect();
    (fields.len() >= keys.len() && fields[..keys.len()] == *keys)
        .then(|| fields[keys.len()..].iter().map(|c| c.to_string()).collect())
}

/// Sets the damaged log at `path` aside and writes it anew from `history`.
fn rebuild(
    path: &Path,
    kind: Kind,
    history: &History,
    s: &TrainState,
    damaged: &str,
    reason: &str,
) -> Result<()> {
    let keys = kind.keys();
    let header = damaged.lines().next().unwrap_or("");
    let columns =
        columns_of(header, keys).unwrap_or_else(|| history.metrics.keys().cloned().collect());
    // Leading fields of the damaged rows, by their first field, where they are intact
    // (the last line too, even when cut short after them).
    let mut leads: std::collections::HashMap<&str, Vec<&str>> = Default::default();
    for line in damaged.split('\n').skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() > keys.len() && fields[1..3].iter().all(|f| f.parse::<u64>().is_ok()) {
            leads.entry(fields[0]).or_insert(fields);
        }
    }
    let mut out = keys.join(",");
    if !columns.is_empty() {
        out.push(',');
        out.push_str(&columns.join(","));
    }
    out.push('\n');
    let mut unknown = 0;
    for (i, &b) in history.at_batches_fit.iter().enumerate() {
        let mut fields: Vec<String> = match kind {
            Kind::Train => {
                let epoch = s.epoch_ends.iter().filter(|&&e| e < b).count();
                let found = leads.get(b.to_string().as_str());
                if found.is_none() {
                    unknown += 1;
                }
                let pick = |j: usize| found.map(|f| f[j].to_string()).unwrap_or_default();
                vec![b.to_string(), epoch.to_string(), pick(2), pick(3)]
            }
            Kind::Val => {
                let epoch = s.epoch_ends.iter().filter(|&&e| e <= b).count();
                let found = leads
                    .get((i + 1).to_string().as_str())
                    .filter(|f| f[1] == b.to_string());
                if found.is_none() {
                    unknown += 1;
                }
                let step = found.map(|f| f[3].to_string()).unwrap_or_default();
                vec![(i + 1).to_string(), b.to_string(), epoch.to_string(), step]
            }
        };
        fields.extend(metric_fields(&columns, history, i));
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    let aside = aside_name(path);
    fs::rename(path, &aside).at(path)?;
    write_atomically(path, &out)?;
    let missing = match (unknown, kind) {
        (0, _) => String::new(),
        (n, Kind::Train) => {
            format!("; {n} rows lack global_step and set_name, which only the damaged file had")
        }
        (n, Kind::Val) => format!("; {n} rows lack global_step, which only the damaged file had"),
    };
    log::warn!(
        "{}: damaged log ({reason}): set aside as {} and rebuilt from the checkpoint's history ({} rows){missing}",
        path.display(),
        aside.display(),
        history.len()
    );
    Ok(())
}

/// `PATH.damaged-<unix time>`, with `-2`, `-3`, ... when that name is taken.
fn aside_name(path: &Path) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let base = format!("{}.damaged-{secs}", path.display());
    (1..)
        .map(|i| match i {
            1 => PathBuf::from(&base),
            i => PathBuf::from(format!("{base}-{i}")),
        })
        .find(|p| !p.exists())
        .unwrap_or_else(|| PathBuf::from(base))
}

/// Replaces `path` with `text` in one step (a temp file renamed over it).
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).at(dir)?;
    tmp.write_all(text.as_bytes()).at(tmp.path())?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// The metric fields of history row `i`, one per column (empty where a column has no
/// such metric): what a logged row and a rebuilt row both hold.
fn metric_fields<'a>(
    columns: &'a [String],
    history: &'a History,
    i: usize,
) -> impl Iterator<Item = String> + 'a {
    columns.iter().map(move |c| {
        history
            .metrics
            .get(c)
            .map(|v| format_value(v[i]))
            .unwrap_or_default()
    })
}

fn row(log: &mut Log, lead: &[String], history: &History) -> Result<()> {
    let i = history.len() - 1;
    let mut fields: Vec<String> = lead.to_vec();
    fields.extend(metric_fields(&log.columns, history, i));
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
                reconcile(
                    &self.train_path(),
                    Kind::Train,
                    &s.train_history,
                    s.batches_fit,
                    s,
                )?;
                reconcile(
                    &self.val_path(),
                    Kind::Val,
                    &s.val_history,
                    s.times_validated,
                    s,
                )?;
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
                    // On disk before any checkpoint that holds this batch can be: a kill
                    // just after a checkpoint's rename must not leave the log behind it.
                    log.out.flush().at(&log.path)?;
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
