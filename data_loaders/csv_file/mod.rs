//! Numeric CSV reader (`.csv`, or gzip-compressed `.csv.gz`) producing an
//! owned f32 feature matrix and an optional label vector.
//!
//! CSV is text, so unlike the binary formats it cannot be memory-mapped: the
//! file is decoded in a single pass straight into little-endian buffers.
//! Deliberately strict: empty fields, ragged rows and non-numbers are errors
//! naming line and column, because silently imputing values corrupts training.
//!
//! Tokenizing is the `csv` crate's (RFC 4180: fields may be double-quoted, and a quoted
//! field may hold the delimiter, `""` for a quote, or a line break, which matters for
//! header names). On top of it this module adds what `csv` leaves to the caller: header
//! detection, the label column, number parsing, and errors naming the line each record
//! starts on. Fields are trimmed; blank lines are skipped; a UTF-8 BOM is ignored.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use flate2::read::MultiGzDecoder;
use serde::{Deserialize, Serialize};

use super::array::{ArrayData, Bytes, DType, FormatError};

/// Which column holds the label.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelColumn {
    /// The last column (the default).
    #[default]
    Last,
    /// The first column.
    First,
    /// 0-based column index; out of range is an error naming the column count.
    Index(usize),
    /// Column name from the header row (requires a header).
    Name(String),
    /// No labels: every column is a feature.
    None,
}

/// How to read a CSV file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsvOptions {
    /// `None` (the default) = auto-detect: the first row is a header if any of its
    /// non-empty fields is not a number.
    pub has_header: Option<bool>,
    /// Which column holds the labels (default [`LabelColumn::Last`]); the other columns
    /// are the features, and at least one must be left.
    pub label_column: LabelColumn,
    /// Single ASCII byte, e.g. `b','` (the default), `b';'`, `b'\t'`; a non-ASCII byte
    /// is an error.
    pub delimiter: u8,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            has_header: None,
            label_column: LabelColumn::Last,
            delimiter: b',',
        }
    }
}

/// Reads a numeric CSV. Returns features as owned F32 with shape
/// `(rows, feature_columns)` and, unless `LabelColumn::None`, labels with
/// shape `(rows,)`: I64 if every label is an integer literal, else F32
/// (regression targets). gzip input is detected by its magic bytes, so a
/// `.csv.gz` works regardless of name. Line and column numbers in errors
/// are 1-based, as editors show them.
pub fn read_csv(
    path: impl AsRef<Path>,
    opts: CsvOptions,
) -> Result<(ArrayData, Option<ArrayData>), FormatError> {
    let path = path.as_ref();
    let mut raw = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut raw))
        .map_err(|e| FormatError::io(path, "read", e))?;
    parse_csv(&raw, path, opts)
}

/// [`read_csv`] for bytes already in memory (e.g. a data set embedded in the binary);
/// `path` is what errors name.
pub fn parse_csv(
    raw: &[u8],
    path: &Path,
    opts: CsvOptions,
) -> Result<(ArrayData, Option<ArrayData>), FormatError> {
    let csv_err = |reason: String| FormatError::Invalid {
        path: path.into(),
        reason,
    };
    if !opts.delimiter.is_ascii() {
        return Err(csv_err(format!(
            "delimiter byte 0x{:02x} is not ASCII",
            opts.delimiter
        )));
    }
    let bytes = gunzip_if_gzip(raw, path)?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        csv_err(format!("line {line}: not valid UTF-8"))
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut records = Records::new(text, opts.delimiter);

    let Some(first_line) = records.next(path)? else {
        return Err(csv_err("no rows (file has no non-blank lines)".into()));
    };
    let first_fields: Vec<String> = (0..records.record.len())
        .map(|j| records.field(j).to_string())
        .collect();
    let ncols = first_fields.len();
    let has_header = opts.has_header.unwrap_or_else(|| {
        first_fields
            .iter()
            .any(|f| !f.is_empty() && f.parse::<f64>().is_err())
    });

    let label_idx = match &opts.label_column {
        LabelColumn::None => None,
        LabelColumn::Last => Some(ncols - 1),
        LabelColumn::First => Some(0),
        LabelColumn::Index(i) if *i < ncols => Some(*i),
        LabelColumn::Index(i) => {
            return Err(csv_err(format!(
                "label column index {i} is out of range: line {first_line} has {ncols} columns (indices 0..{})",
                ncols - 1
            )))
        }
        LabelColumn::Name(name) => {
            if !has_header {
                return Err(csv_err(format!(
                    "label column {name:?} requested by name but there is no header row (line {first_line} is numeric; set has_header: Some(true) if it is a header)"
                )));
            }
            match first_fields.iter().position(|f| f == name) {
                Some(i) => Some(i),
                None => {
                    return Err(csv_err(format!(
                        "no column named {name:?} in header line {first_line}; columns are {first_fields:?}"
                    )))
                }
            }
        }
    };
    let nfeat = ncols - usize::from(label_idx.is_some());
    if nfeat == 0 {
        return Err(csv_err(format!(
            "line {first_line} has a single column and it is the label column; no features left"
        )));
    }

    let mut features: Vec<u8> = Vec::new();
    let mut labels = Labels::Int(Vec::new());
    let mut rows = 0usize;
    // The first record is data unless it is the header; then come the others.
    let mut next = if has_header {
        records.next(path)?
    } else {
        Some(first_line)
    };
    while let Some(line) = next {
        let width = records.record.len();
        if width != ncols {
            return Err(FormatError::RaggedRow {
                path: path.into(),
                line,
                first_line,
                expected: ncols,
                actual: width,
            });
        }
        for j in 0..ncols {
            let field = records.field(j);
            let column = j + 1;
            if field.is_empty() {
                return Err(FormatError::EmptyField {
                    path: path.into(),
                    line,
                    column,
                });
            }
            let bad = || FormatError::BadNumber {
                path: path.into(),
                line,
                column,
                text: field.to_string(),
            };
            if Some(j) == label_idx {
                labels.push(field).ok_or_else(bad)?;
            } else {
                let v: f32 = field.parse().map_err(|_| bad())?;
                features.extend_from_slice(&v.to_le_bytes());
            }
        }
        rows += 1;
        next = records.next(path)?;
    }
    if rows == 0 {
        return Err(csv_err(format!(
            "no data rows (only the header on line {first_line})"
        )));
    }

    let features = ArrayData::new(
        path,
        DType::F32,
        vec![rows, nfeat],
        Bytes::Owned(Arc::new(features)),
    )?;
    let labels = match label_idx {
        None => None,
        Some(_) => {
            let (dtype, bytes) = labels.into_bytes();
            Some(ArrayData::new(
                path,
                dtype,
                vec![rows],
                Bytes::Owned(Arc::new(bytes)),
            )?)
        }
    };
    Ok((features, labels))
}

/// Takes feature column `column` (0-based, of the features `read_csv` returns, i.e. with
/// the label column already removed) out of `features`: returns the other columns and
/// that column's values, one per row (a CSV's per-sample weights, say). Out of range is
/// an error naming the file and the number of feature columns.
pub fn take_column(
    features: &ArrayData,
    column: usize,
) -> Result<(ArrayData, Vec<f32>), FormatError> {
    let cols = features.sample_len();
    let rows = features.num_samples();
    if column >= cols || cols < 2 || features.dtype != DType::F32 {
        return Err(FormatError::Invalid {
            path: features.path.clone(),
            reason: format!(
                "feature column {column} cannot be taken out of {cols} feature columns (one \
                 must be left)"
            ),
        });
    }
    let mut values = Vec::with_capacity(rows * cols);
    features.range_f32(0, rows, &mut values);
    let mut rest: Vec<u8> = Vec::with_capacity(rows * (cols - 1) * 4);
    let mut taken = Vec::with_capacity(rows);
    for row in values.chunks_exact(cols) {
        for (j, v) in row.iter().enumerate() {
            if j == column {
                taken.push(*v);
            } else {
                rest.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    let rest = ArrayData::new(
        features.path.clone(),
        DType::F32,
        vec![rows, cols - 1],
        Bytes::Owned(Arc::new(rest)),
    )?;
    Ok((rest, taken))
}

/// The records of a CSV text, tokenized by the `csv` crate (RFC 4180 quoting: quoted
/// fields may hold the delimiter, `""` and line breaks), with blank lines skipped and
/// the 1-based line each record starts on.
///
/// The line is counted here because `csv`'s own `Position::line` is where the reader
/// stood after the previous record, i.e. before any blank lines (or a pending `\n` of a
/// `\r\n`) in between, while errors must name the line an editor shows.
struct Records<'a> {
    text: &'a str,
    reader: csv::Reader<&'a [u8]>,
    /// The current record, as the `csv` crate decoded it.
    record: csv::StringRecord,
    /// Line-count cursor: `line` is the 1-based line of byte `counted`.
    counted: usize,
    line: usize,
}

impl<'a> Records<'a> {
    fn new(text: &'a str, delimiter: u8) -> Self {
        let reader = csv::ReaderBuilder::new()
            .has_headers(false) // header detection is ours (auto or `has_header`)
            .flexible(true) // ragged rows get our error, naming both lines
            .delimiter(delimiter)
            .from_reader(text.as_bytes());
        Records {
            text,
            reader,
            record: csv::StringRecord::new(),
            counted: 0,
            line: 1,
        }
    }

    /// Reads the next non-blank record into `self.record`; returns the line it starts
    /// on, or `None` at the end.
    fn next(&mut self, path: &Path) -> Result<Option<usize>, FormatError> {
        loop {
            let found = self.reader.read_record(&mut self.record).map_err(|e| {
                let at = e
                    .position()
                    .map(|p| format!("line {}: ", self.line_at(p.byte() as usize)))
                    .unwrap_or_default();
                FormatError::Invalid {
                    path: path.into(),
                    reason: format!("{at}{e}"),
                }
            })?;
            if !found {
                return Ok(None);
            }
            let start = self.record.position().map_or(0, |p| p.byte() as usize);
            let end = self.reader.position().byte() as usize;
            let raw = &self.text[start.min(end)..end];
            // csv skips empty lines; a line of only spaces is one blank field.
            if self.record.len() == 1 && raw.trim().is_empty() {
                continue;
            }
            let skipped = raw.len() - raw.trim_start_matches(['\r', '\n']).len();
            let line = self.line_at(start + skipped);
            // `csv` reads a quote that is never closed as a field running to the end of
            // the file, without an error. Such a record is the last one and holds an odd
            // number of quotes (a closed quoted field has an even number); a stray quote
            // inside an unquoted field would be rejected anyway (not a number, or a
            // header with no data after it), so this catches nothing valid.
            if end == self.text.len() && raw.matches('"').count() % 2 == 1 {
                return Err(FormatError::Invalid {
                    path: path.into(),
                    reason: format!(
                        "line {line}, column {}: unterminated quoted field (its closing quote is missing, so the rest of the file was read as this one field)",
                        self.record.len()
                    ),
                });
            }
            return Ok(Some(line));
        }
    }

    /// Field `j` of the current record, trimmed (Unicode whitespace, like `str::trim`).
    /// A quote after leading spaces (`1, "2"`) is not a quote to RFC 4180 (`csv` keeps it
    /// as text), but such files are common and were always read as intended, so one
    /// surrounding pair of quotes left after trimming is removed.
    fn field(&self, j: usize) -> &str {
        let f = self.record[j].trim();
        match f.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            Some(inner) if !self.record[j].starts_with('"') => inner.trim(),
            _ => f,
        }
    }

    /// 1-based line of byte `byte`; bytes are asked for in increasing order.
    fn line_at(&mut self, byte: usize) -> usize {
        let byte = byte.min(self.text.len());
        if byte > self.counted {
            let newlines = self.text.as_bytes()[self.counted..byte]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            self.line += newlines;
            self.counted = byte;
        }
        self.line
    }
}

/// The bytes, gunzipped if they start with the gzip magic.
fn gunzip_if_gzip<'a>(
    raw: &'a [u8],
    path: &Path,
) -> Result<std::borrow::Cow<'a, [u8]>, FormatError> {
    if raw.is_empty() {
        return Err(FormatError::Empty {
            path: path.into(),
            format: "CSV",
        });
    }
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        MultiGzDecoder::new(raw)
            .read_to_end(&mut out)
            .map_err(|e| FormatError::io(path, "decompress gzip", e))?;
        return Ok(out.into());
    }
    Ok(raw.into())
}

/// Labels stay integers until the first non-integer literal, then switch to
/// floats, so one pass decides the dtype.
enum Labels {
    Int(Vec<i64>),
    Float(Vec<f32>),
}

impl Labels {
    /// Parses and stores one label; `None` if it is not a number.
    fn push(&mut self, text: &str) -> Option<()> {
        if let Labels::Int(v) = self {
            if let Ok(i) = text.parse::<i64>() {
                v.push(i);
                return Some(());
            }
            let floats = v.iter().map(|&i| i as f32).collect();
            *self = Labels::Float(floats);
        }
        let Labels::Float(v) = self else {
            return None;
        };
        v.push(text.parse::<f32>().ok()?);
        Some(())
    }

    fn into_bytes(self) -> (DType, Vec<u8>) {
        match self {
            Labels::Int(v) => (DType::I64, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            Labels::Float(v) => (DType::F32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        }
    }
}

#[cfg(test)]
mod tests;
