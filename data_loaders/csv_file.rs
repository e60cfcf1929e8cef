//! Numeric CSV reader (`.csv`, or gzip-compressed `.csv.gz`) producing an
//! owned f32 feature matrix and an optional label vector.
//!
//! CSV is text, so unlike the binary formats it cannot be memory-mapped: the
//! file is decoded in a single pass straight into little-endian buffers.
//! Deliberately strict: empty fields, ragged rows and non-numbers are errors
//! naming line and column, because silently imputing values corrupts training.
//!
//! Limits (documented rather than half-supported): fields may be wrapped in
//! double quotes, but quoted fields containing the delimiter or a newline are
//! rejected; blank lines are skipped; a UTF-8 BOM is ignored.

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
    #[default]
    Last,
    First,
    /// 0-based column index.
    Index(usize),
    /// Column name from the header row (requires a header).
    Name(String),
    /// No labels: every column is a feature.
    None,
}

/// How to read a CSV file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsvOptions {
    /// `None` = auto-detect: the first row is a header if any of its
    /// non-empty fields is not a number.
    pub has_header: Option<bool>,
    pub label_column: LabelColumn,
    /// Single ASCII byte, e.g. `b','`, `b';'`, `b'\t'`.
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
    let delim = opts.delimiter as char;
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

    let mut lines = text
        .split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((first_line, first)) = lines.next() else {
        return Err(csv_err("no rows (file has no non-blank lines)".into()));
    };
    let first_fields = split(path, first_line, first, delim)?;
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
    let data_lines = std::iter::once((first_line, first))
        .filter(|_| !has_header)
        .chain(lines);
    for (line, text) in data_lines {
        let fields = split(path, line, text, delim)?;
        if fields.len() != ncols {
            return Err(FormatError::RaggedRow {
                path: path.into(),
                line,
                first_line,
                expected: ncols,
                actual: fields.len(),
            });
        }
        for (j, field) in fields.iter().enumerate() {
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

/// Splits one line into trimmed fields with surrounding double quotes removed.
fn split<'a>(
    path: &Path,
    line: usize,
    text: &'a str,
    delim: char,
) -> Result<Vec<&'a str>, FormatError> {
    text.split(delim)
        .enumerate()
        .map(|(j, f)| {
            let f = f.trim();
            match f.strip_prefix('"') {
                None => Ok(f),
                Some(rest) => rest.strip_suffix('"').map(str::trim).ok_or_else(|| {
                    FormatError::Invalid {
                        path: path.into(),
                        reason: format!(
                            "line {line}, column {}: unterminated quoted field {f:?} (quoted fields containing the delimiter or newlines are not supported)",
                            j + 1
                        ),
                    }
                }),
            }
        })
        .collect()
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
mod tests {
    use super::super::array::test_util::test_dir;
    use super::*;
    use std::io::Write;
    use std::path::PathBuf;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn floats(a: &ArrayData) -> Vec<f32> {
        let mut out = Vec::new();
        a.range_f32(0, a.num_samples(), &mut out);
        out
    }

    fn opts(has_header: Option<bool>, label_column: LabelColumn) -> CsvOptions {
        CsvOptions {
            has_header,
            label_column,
            delimiter: b',',
        }
    }

    #[test]
    fn header_auto_detect_and_label_columns() {
        let dir = test_dir("csv_labels");
        let with_header = write(
            &dir,
            "h.csv",
            "a,b,label,c\r\n1,2,0,3\r\n\r\n4.5,-5,2,6e1\r\n",
        );
        let no_header = write(&dir, "n.csv", "1,2,0,3\n4.5,-5,2,60\n");

        for p in [&with_header, &no_header] {
            let (x, y) = read_csv(p, opts(None, LabelColumn::Last)).unwrap();
            assert_eq!(x.shape, [2, 3]);
            assert_eq!(x.dtype, DType::F32);
            assert_eq!(floats(&x), [1.0, 2.0, 0.0, 4.5, -5.0, 2.0]);
            let y = y.unwrap();
            assert_eq!(y.shape, [2]);
            assert_eq!(y.to_u32_labels().unwrap(), [3, 60]);
        }
        // "6e1" is not an integer literal, so that file's labels are floats.
        let y = |p| {
            read_csv(p, opts(None, LabelColumn::Last))
                .unwrap()
                .1
                .unwrap()
                .dtype
        };
        assert_eq!((y(&with_header), y(&no_header)), (DType::F32, DType::I64));
        let (x, y) = read_csv(&with_header, opts(None, LabelColumn::Name("label".into()))).unwrap();
        assert_eq!(floats(&x), [1.0, 2.0, 3.0, 4.5, -5.0, 60.0]);
        assert_eq!(y.unwrap().to_u32_labels().unwrap(), [0, 2]);

        let (x, y) = read_csv(&no_header, opts(None, LabelColumn::Index(2))).unwrap();
        assert_eq!(floats(&x), [1.0, 2.0, 3.0, 4.5, -5.0, 60.0]);
        assert_eq!(y.unwrap().to_u32_labels().unwrap(), [0, 2]);

        let (x, y) = read_csv(&no_header, opts(None, LabelColumn::First)).unwrap();
        assert_eq!(floats(&x), [2.0, 0.0, 3.0, -5.0, 2.0, 60.0]);
        assert_eq!(floats(&y.unwrap()), [1.0, 4.5]);

        let (x, y) = read_csv(&no_header, opts(None, LabelColumn::None)).unwrap();
        assert_eq!(x.shape, [2, 4]);
        assert!(y.is_none());

        // Forcing has_header on a numeric file drops its first row.
        let (x, _) = read_csv(&no_header, opts(Some(true), LabelColumn::None)).unwrap();
        assert_eq!(floats(&x), [4.5, -5.0, 2.0, 60.0]);

        let e = read_csv(&no_header, opts(None, LabelColumn::Name("label".into())))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no header row"), "{e}");
        let e = read_csv(&with_header, opts(None, LabelColumn::Name("y".into())))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no column named \"y\""), "{e}");
        let e = read_csv(&no_header, opts(None, LabelColumn::Index(4)))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("label column index 4 is out of range: line 1 has 4 columns"),
            "{e}"
        );
    }

    #[test]
    fn float_labels_quotes_and_delimiters() {
        let dir = test_dir("csv_misc");
        let p = write(&dir, "r.tsv", "\u{feff}\"x\"\t\"y\"\n1\t0.5\n2\t3\n");
        let o = CsvOptions {
            delimiter: b'\t',
            ..CsvOptions::default()
        };
        let (x, y) = read_csv(&p, o).unwrap();
        assert_eq!(floats(&x), [1.0, 2.0]);
        let y = y.unwrap();
        assert_eq!(y.dtype, DType::F32);
        assert_eq!(floats(&y), [0.5, 3.0]);
        // Integer labels first, then a float: switches to f32 keeping values.
        let p = write(&dir, "m.csv", "1,7\n2,8\n3,9.5\n");
        let (_, y) = read_csv(&p, CsvOptions::default()).unwrap();
        assert_eq!(floats(&y.unwrap()), [7.0, 8.0, 9.5]);
    }

    #[test]
    fn gzip_input() {
        let dir = test_dir("csv_gz");
        let p = dir.join("d.csv.gz");
        let mut enc = flate2::write::GzEncoder::new(
            File::create(&p).unwrap(),
            flate2::Compression::default(),
        );
        enc.write_all(b"f1,f2,target\n0.25,1,3\n0.5,2,1\n0.75,3,2\n")
            .unwrap();
        enc.finish().unwrap();
        let (x, y) = read_csv(&p, CsvOptions::default()).unwrap();
        assert_eq!(x.shape, [3, 2]);
        assert_eq!(floats(&x), [0.25, 1.0, 0.5, 2.0, 0.75, 3.0]);
        assert_eq!(y.unwrap().to_u32_labels().unwrap(), [3, 1, 2]);
    }

    #[test]
    fn errors_name_line_and_column() {
        let dir = test_dir("csv_errors");
        let cases = [
            (
                "ragged.csv",
                "a,b,c\n1,2,3\n\n4,5\n",
                "line 4 has 2 columns but line 1 has 3",
            ),
            (
                "bad.csv",
                "1,2,3\n4,x5,6\n",
                "line 2, column 2: cannot parse \"x5\" as a number",
            ),
            (
                "badlabel.csv",
                "1,2,3\n4,5,cat\n",
                "line 2, column 3: cannot parse \"cat\" as a number",
            ),
            (
                "empty_field.csv",
                "a,b\n1,\n",
                "line 2, column 2: empty field",
            ),
            (
                "header_only.csv",
                "a,b\n",
                "no data rows (only the header on line 1)",
            ),
            ("blank.csv", "\n\n", "no rows"),
            (
                "quote.csv",
                "1,\"2,3\n",
                "line 1, column 2: unterminated quoted field",
            ),
            (
                "one_col.csv",
                "1\n2\n",
                "single column and it is the label column",
            ),
        ];
        for (name, text, want) in cases {
            let p = write(&dir, name, text);
            let e = read_csv(&p, CsvOptions::default()).unwrap_err().to_string();
            assert!(e.starts_with(&p.display().to_string()), "{e}");
            assert!(e.contains(want), "{name}: {e}");
        }
        let p = write(&dir, "zero.csv", "");
        assert!(matches!(
            read_csv(&p, CsvOptions::default()),
            Err(FormatError::Empty { .. })
        ));
        let p = dir.join("latin1.csv");
        std::fs::write(&p, b"1,2\n3,\xe9\n").unwrap();
        let e = read_csv(&p, CsvOptions::default()).unwrap_err().to_string();
        assert!(e.ends_with("line 2: not valid UTF-8"), "{e}");
    }
}
