//! One numeric column of a CSV file as a time series, cut into sequences for recurrent
//! models: the `series` data source (`"source": {"name": "series", "path": ...}`).
//!
//! The series is split by time at `val_from`: train sequences lie wholly before it (inputs
//! and targets), so nothing of the validation part leaks into training; validation
//! sequences end at the series' last value and step back by `val_stride`, each forecasting
//! at least one value at or after `val_from` (their earlier steps are the model's context,
//! as in `examples/sunspots.rs`). Normalisation statistics come from the train part only.
//! The sequences are handed to AutoData as the arrays of one file (a [`FileLoader`]), so
//! `data.windows`, batching, shuffling and resuming work as for any file source.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::array::{ArrayData, Bytes, DType};
use super::auto::{FileLoader, LoadedFile};
use crate::error::{Error, Result};

/// A column of a CSV file as a time series: sequences for recurrent models, split by time.
///
/// Inputs are `length` steps; the target is the next value of every step (or of the
/// last one). Train sequences lie before `val_from`, validation ones forecast after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SeriesArgs {
    /// The CSV file (`.csv` or `.csv.gz`; required).
    pub path: String,
    /// The column holding the series: its header name or its 0-based index (default
    /// `null`: the last column).
    pub column: Option<SeriesColumn>,
    /// Whether the first row names the columns (default `null`: it does when one of its
    /// fields is not a number).
    pub header: Option<bool>,
    /// Time steps per sequence (default 32).
    pub length: usize,
    /// Steps between the starts of consecutive train sequences (default 1).
    pub stride: usize,
    /// Where validation starts: a row index (an integer, e.g. 259) or the share of the
    /// series at its end (a number in (0, 1), default 0.2).
    pub val_from: SplitPoint,
    /// Steps between the ends of consecutive validation sequences, counted back from the
    /// series' last value (default `null`: `length`).
    pub val_stride: Option<usize>,
    /// At most this many validation sequences, the latest ones (default `null`: every
    /// one that forecasts a value at or after `val_from`).
    pub val_sequences: Option<usize>,
    /// `"standard"` (mean 0, std 1), `"minmax"` (to [0, 1]) or `"none"`; statistics come
    /// from the train part only (default `"standard"`).
    pub normalize: SeriesNormalize,
    /// `"steps"` (the next value of every step: for `data.windows` and `per_step`
    /// models) or `"last"` (one target per sequence: the value after it) (default `null`:
    /// `"steps"` when the job has `data.windows`, else `"last"`).
    pub target: Option<SeriesTarget>,
}

impl Default for SeriesArgs {
    fn default() -> Self {
        Self {
            path: String::new(),
            column: None,
            header: None,
            length: 32,
            stride: 1,
            val_from: SplitPoint::Fraction(0.2),
            val_stride: None,
            val_sequences: None,
            normalize: SeriesNormalize::Standard,
            target: None,
        }
    }
}

/// A column by header name or by 0-based index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SeriesColumn {
    /// The column's 0-based index.
    Index(usize),
    /// The column's name in the header row.
    Name(String),
}

/// Where the validation part of a series starts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SplitPoint {
    /// The row index (0-based, header not counted) of the first validation value.
    Index(usize),
    /// The share of the series, at its end, held out for validation, in (0, 1).
    Fraction(f64),
}

/// How the series is normalised (statistics from the train part).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SeriesNormalize {
    /// `(v - mean) / std`.
    Standard,
    /// `(v - min) / (max - min)`.
    Minmax,
    /// Values as stored.
    None,
}

/// What a series sequence is trained to predict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SeriesTarget {
    /// The next value of every step: targets shaped like the inputs.
    Steps,
    /// The value after the sequence: one target per sequence.
    Last,
}

/// The train or the validation part of a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesPart {
    /// Sequences wholly before `val_from`.
    Train,
    /// Sequences forecasting values at or after `val_from`.
    Val,
}

impl SeriesArgs {
    /// Checks the arguments that need no file: a path, lengths and strides of at least 1,
    /// a fraction in (0, 1). Errors name the source and the argument.
    pub fn validate(&self) -> Result<()> {
        let bad = |arg: &str, why: String| {
            Err(Error::config(
                "source",
                format!("`series`: argument `{arg}`: {why}"),
            ))
        };
        if self.path.is_empty() {
            return bad("path", "is required (the CSV file of the series)".into());
        }
        for (arg, v) in [
            ("length", Some(self.length)),
            ("stride", Some(self.stride)),
            ("val_stride", self.val_stride),
            ("val_sequences", self.val_sequences),
        ] {
            if v == Some(0) {
                return bad(arg, "0 is not at least 1".into());
            }
        }
        if let SplitPoint::Fraction(f) = self.val_from {
            if !(f > 0.0 && f < 1.0) {
                return bad(
                    "val_from",
                    format!("{f} is neither a row index (an integer) nor a share in (0, 1)"),
                );
            }
        }
        Ok(())
    }
}

/// A series read, split and normalised: what both parts' sequences are cut from.
#[derive(Debug, Clone)]
pub struct Series {
    /// The file read.
    pub path: PathBuf,
    /// The column read, as `name` or `#index`.
    pub column: String,
    /// Every value, normalised.
    pub values: Vec<f32>,
    /// Index of the first validation value.
    pub val_from: usize,
    /// The normalisation: `(v - offset) / divisor` (0 and 1 for `none`).
    pub offset: f64,
    /// See `offset`.
    pub divisor: f64,
    args: SeriesArgs,
}

impl Series {
    /// Reads `args.path`'s column, splits it at `val_from` and normalises it with the
    /// train part's statistics. Errors name the file (and the column or row at fault).
    pub fn read(args: &SeriesArgs) -> Result<Series> {
        args.validate()?;
        let path = PathBuf::from(&args.path);
        let (column, raw) = read_column(&path, args.column.as_ref(), args.header)?;
        let n = raw.len();
        let val_from = match args.val_from {
            SplitPoint::Index(i) => i,
            SplitPoint::Fraction(f) => n - ((n as f64) * f).round() as usize,
        };
        // A train sequence needs `length` inputs and one more value for its last target.
        if val_from < args.length + 1 || val_from >= n {
            return Err(Error::Data(format!(
                "{}: series `{column}` of {n} values split at {val_from}: the train part needs \
                 at least length + 1 = {} values and the validation part at least one",
                path.display(),
                args.length + 1
            )));
        }
        let train = &raw[..val_from];
        let (offset, divisor) = match args.normalize {
            SeriesNormalize::None => (0.0, 1.0),
            SeriesNormalize::Standard => {
                let mean = train.iter().sum::<f64>() / train.len() as f64;
                let var =
                    train.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / train.len() as f64;
                (mean, var.sqrt())
            }
            SeriesNormalize::Minmax => {
                let min = train.iter().copied().fold(f64::INFINITY, f64::min);
                let max = train.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                (min, max - min)
            }
        };
        if !(divisor.is_finite() && divisor > 0.0) {
            return Err(Error::Data(format!(
                "{}: series `{column}` is constant over its train part: it cannot be \
                 normalised ({:?}); use \"normalize\": \"none\"",
                path.display(),
                args.normalize
            )));
        }
        let values = raw
            .iter()
            .map(|v| ((v - offset) / divisor) as f32)
            .collect();
        Ok(Series {
            path,
            column,
            values,
            val_from,
            offset,
            divisor,
            args: args.clone(),
        })
    }

    /// Start indices of the sequences of `part`, ascending.
    pub fn starts(&self, part: SeriesPart) -> Vec<usize> {
        let len = self.args.length;
        match part {
            SeriesPart::Train => (0..=self.val_from - len - 1)
                .step_by(self.args.stride)
                .collect(),
            SeriesPart::Val => {
                let n = self.values.len();
                let step = self.args.val_stride.unwrap_or(len);
                let most = self.args.val_sequences.unwrap_or(usize::MAX);
                let mut starts = Vec::new();
                // The sequence ending at the last value first, then back by `step` while
                // its last target (at start + len) is in the validation part.
                let mut end = n - 1;
                while end >= len && end >= self.val_from && starts.len() < most {
                    starts.push(end - len);
                    match end.checked_sub(step) {
                        Some(e) => end = e,
                        None => break,
                    }
                }
                starts.reverse();
                starts
            }
        }
    }

    /// The sequences of `part` as a file AutoData reads: inputs `(n, length, 1)` and
    /// targets `(n, length, 1)` (`steps`) or `(n,)` (`last`).
    pub fn sequences(&self, part: SeriesPart, target: SeriesTarget) -> Result<LoadedFile> {
        let len = self.args.length;
        let starts = self.starts(part);
        if starts.is_empty() {
            return Err(Error::Data(format!(
                "{}: series `{column}` has no {part:?} sequence of length {len} (split at {})",
                self.path.display(),
                self.val_from,
                column = self.column
            )));
        }
        let s = &self.values;
        let mut x = Vec::with_capacity(starts.len() * len);
        let mut y = Vec::new();
        for &o in &starts {
            x.extend_from_slice(&s[o..o + len]);
            match target {
                SeriesTarget::Steps => y.extend_from_slice(&s[o + 1..o + len + 1]),
                SeriesTarget::Last => y.push(s[o + len]),
            }
        }
        let n = starts.len();
        let y_shape = match target {
            SeriesTarget::Steps => vec![n, len, 1],
            SeriesTarget::Last => vec![n],
        };
        let array = |values: Vec<f32>, shape: Vec<usize>| -> Result<ArrayData> {
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            let a = ArrayData::new(&self.path, DType::F32, shape, Bytes::Owned(Arc::new(bytes)))?;
            Ok(a)
        };
        Ok(LoadedFile {
            data: array(x, vec![n, len, 1])?,
            labels: Some(array(y, y_shape)?),
        })
    }

    /// The sequences of `part` as a [`FileLoader`] for AutoData (whatever path it is
    /// handed, it gives these sequences).
    pub fn loader(self: &Arc<Self>, part: SeriesPart, target: SeriesTarget) -> impl FileLoader {
        let series = Arc::clone(self);
        move |_: &Path| series.sequences(part, target)
    }

    /// One line saying what was read and how it was normalised (for logs and
    /// `deeptrain data`).
    pub fn describe(&self) -> String {
        format!(
            "series `{}` of {}: {} values, validation from row {}, {:?} normalisation \
             (offset {}, divisor {})",
            self.column,
            self.path.display(),
            self.values.len(),
            self.val_from,
            self.args.normalize,
            self.offset,
            self.divisor
        )
    }
}

/// The values of one column of a CSV file and the column's name (`#i` without a header).
/// Hand-read over the `csv` crate rather than through `csv_file::read_csv`: that reader
/// makes a feature matrix and keeps no column names, and a series needs one named column.
fn read_column(
    path: &Path,
    column: Option<&SeriesColumn>,
    header: Option<bool>,
) -> Result<(String, Vec<f64>)> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut text = String::new();
    let read = if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::GzDecoder::new(file).read_to_string(&mut text)
    } else {
        std::io::BufReader::new(file).read_to_string(&mut text)
    };
    read.map_err(|e| Error::io(path, e))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut rows = Vec::new();
    for (i, r) in reader.records().enumerate() {
        let r = r.map_err(|e| Error::Data(format!("{}: row {}: {e}", path.display(), i + 1)))?;
        rows.push(r);
    }
    let number = |f: &str| f.trim().parse::<f64>().ok();
    let has_header = header.unwrap_or_else(|| {
        rows.first().is_some_and(|r| {
            r.iter()
                .any(|f| !f.trim().is_empty() && number(f).is_none())
        })
    });
    let names: Vec<String> = match (has_header, rows.first()) {
        (true, Some(r)) => r.iter().map(|f| f.trim().to_string()).collect(),
        _ => Vec::new(),
    };
    let body = if has_header {
        &rows[1.min(rows.len())..]
    } else {
        &rows[..]
    };
    let width = body.first().map_or(names.len(), |r| r.len());
    let shown = || {
        if names.is_empty() {
            format!("{width} columns, no header")
        } else {
            format!("columns: {}", names.join(", "))
        }
    };
    let index = match column {
        None => width.saturating_sub(1),
        Some(SeriesColumn::Index(i)) if *i < width => *i,
        Some(SeriesColumn::Index(i)) => {
            return Err(Error::Data(format!(
                "{}: no column {i} ({})",
                path.display(),
                shown()
            )))
        }
        Some(SeriesColumn::Name(n)) => match names.iter().position(|m| m == n) {
            Some(i) => i,
            None => {
                return Err(Error::Data(format!(
                    "{}: no column `{n}` ({})",
                    path.display(),
                    shown()
                )))
            }
        },
    };
    let name = names
        .get(index)
        .cloned()
        .unwrap_or_else(|| format!("#{index}"));
    let first_row = 1 + usize::from(has_header);
    let mut values = Vec::with_capacity(body.len());
    for (i, r) in body.iter().enumerate() {
        let field = r.get(index).unwrap_or("");
        match number(field) {
            Some(v) if v.is_finite() => values.push(v),
            _ => {
                return Err(Error::Data(format!(
                    "{}: line {}: column `{name}` holds {field:?}, not a number",
                    path.display(),
                    first_row + i
                )))
            }
        }
    }
    if values.is_empty() {
        return Err(Error::Data(format!(
            "{}: column `{name}` has no values",
            path.display()
        )));
    }
    Ok((name, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(name: &str, text: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        (dir, path.to_string_lossy().to_string())
    }

    fn series_csv(n: usize) -> String {
        let mut s = String::from("\"t\",\"v\"\n");
        for i in 0..n {
            s.push_str(&format!("{i},{}\n", i * 2));
        }
        s
    }

    #[test]
    fn train_sequences_stay_before_the_split_and_val_ones_forecast_after_it() {
        let (_d, path) = csv("s.csv", &series_csv(20));
        let args = SeriesArgs {
            path,
            column: Some(SeriesColumn::Name("v".into())),
            length: 4,
            stride: 2,
            val_from: SplitPoint::Index(12),
            val_stride: Some(3),
            normalize: SeriesNormalize::None,
            ..SeriesArgs::default()
        };
        let s = Series::read(&args).unwrap();
        assert_eq!(s.column, "v");
        // Last train target at start + 4 must be < 12: starts 0, 2, 4, 6.
        assert_eq!(s.starts(SeriesPart::Train), [0, 2, 4, 6]);
        // Ends 19, 16, 13 (>= 12): starts 15, 12, 9.
        assert_eq!(s.starts(SeriesPart::Val), [9, 12, 15]);
        let f = s.sequences(SeriesPart::Train, SeriesTarget::Steps).unwrap();
        assert_eq!(f.data.shape, [4, 4, 1]);
        let x: Vec<f32> = f
            .data
            .bytes
            .as_slice()
            .chunks(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        let y: Vec<f32> = f
            .labels
            .as_ref()
            .unwrap()
            .bytes
            .as_slice()
            .chunks(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(&x[4..8], [4.0, 6.0, 8.0, 10.0]);
        assert_eq!(&y[4..8], [6.0, 8.0, 10.0, 12.0]);
        let last = s.sequences(SeriesPart::Val, SeriesTarget::Last).unwrap();
        assert_eq!(last.labels.unwrap().shape, [3]);
        let capped = Series::read(&SeriesArgs {
            val_sequences: Some(2),
            ..args
        })
        .unwrap();
        assert_eq!(capped.starts(SeriesPart::Val), [12, 15]);
    }

    #[test]
    fn standard_statistics_come_from_the_train_part_only() {
        let (_d, path) = csv("s.csv", &series_csv(10));
        let s = Series::read(&SeriesArgs {
            path,
            length: 2,
            val_from: SplitPoint::Fraction(0.5),
            ..SeriesArgs::default()
        })
        .unwrap();
        assert_eq!(s.val_from, 5);
        // Train values 0, 2, 4, 6, 8: mean 4, population std sqrt(8).
        assert_eq!(s.offset, 4.0);
        assert_eq!(s.divisor, 8f64.sqrt());
        assert_eq!(s.values[9], ((18.0 - 4.0) / 8f64.sqrt()) as f32);
    }

    #[test]
    fn a_missing_column_or_a_bad_value_names_the_file_and_the_column() {
        let (_d, path) = csv("s.csv", &series_csv(10));
        let err = Series::read(&SeriesArgs {
            path: path.clone(),
            column: Some(SeriesColumn::Name("sunspots".into())),
            length: 2,
            ..SeriesArgs::default()
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(&path) && err.contains("`sunspots`") && err.contains("t, v"),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1);
        let (_d2, bad) = csv("b.csv", "1\n2\nx3\n4\n");
        let err = Series::read(&SeriesArgs {
            path: bad,
            header: Some(false),
            length: 1,
            ..SeriesArgs::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("line 3") && err.contains("x3"), "{err}");
        let err = SeriesArgs {
            path: "x.csv".into(),
            length: 0,
            ..SeriesArgs::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`series`") && err.contains("`length`"),
            "{err}"
        );
    }
}
