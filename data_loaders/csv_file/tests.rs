//! Tests of the CSV reader: header detection and label columns, quoting, gzip, errors
//! naming line and column, and the embedded digits set read bit-identically.

use std::io::Write;
use std::path::PathBuf;

use super::*;
use crate::data_loaders::array::test_util::test_dir;

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
    let mut enc =
        flate2::write::GzEncoder::new(File::create(&p).unwrap(), flate2::Compression::default());
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

#[test]
fn quoted_numbers_and_header_names() {
    let dir = test_dir("csv_quoted");
    // Quoted numbers, quoted header names (one holding the delimiter, one an escaped
    // quote), CRLF endings and a quote after a space (read as before the csv crate).
    let p = write(
        &dir,
        "q.csv",
        "\"a,b\",\"say \"\"hi\"\"\",\"label\"\r\n\"1.5\",\"-2\",\"3\"\r\n4, \"5e-1\" ,\" 6 \"\r\n",
    );
    let (x, y) = read_csv(&p, opts(None, LabelColumn::Name("label".into()))).unwrap();
    assert_eq!(x.shape, [2, 2]);
    assert_eq!(floats(&x), [1.5, -2.0, 4.0, 0.5]);
    let y = y.unwrap();
    assert_eq!(y.dtype, DType::I64, "quoted integer labels stay integers");
    assert_eq!(y.to_u32_labels().unwrap(), [3, 6]);
    for (name, want) in [("a,b", [1.5, 4.0]), ("say \"hi\"", [-2.0, 0.5])] {
        let (_, y) = read_csv(&p, opts(None, LabelColumn::Name(name.into()))).unwrap();
        assert_eq!(floats(&y.unwrap()), want, "{name}");
    }

    // A quoted numeric first row is data, not a header.
    let p = write(&dir, "n.csv", "\"1\",\"2\"\n\"3\",\"4\"\n");
    let (x, y) = read_csv(&p, CsvOptions::default()).unwrap();
    assert_eq!(floats(&x), [1.0, 3.0]);
    assert_eq!(y.unwrap().to_u32_labels().unwrap(), [2, 4]);

    // Quoted text where a number belongs names line and column; the record's line is
    // where it starts even after a header field spanning two lines.
    let p = write(&dir, "t.csv", "\"x\ny\",z\n1,2\n3,\"four\"\n");
    let e = read_csv(&p, CsvOptions::default()).unwrap_err().to_string();
    assert!(
        e.ends_with("line 4, column 2: cannot parse \"four\" as a number"),
        "{e}"
    );
}

#[test]
fn ragged_row_names_its_line() {
    let dir = test_dir("csv_ragged");
    // Line 1-2: header with a quoted line break; 3: data; 4: blank; 5: spaces; 6: short.
    let p = write(
        &dir,
        "r.csv",
        "\"x\ny\",b\r\n1,2\r\n\r\n   \r\n3\r\n5,6\r\n",
    );
    let e = read_csv(&p, CsvOptions::default()).unwrap_err();
    assert!(
        matches!(
            e,
            FormatError::RaggedRow {
                line: 6,
                first_line: 1,
                expected: 2,
                actual: 1,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!("{}: line 6 has 1 columns but line 1 has 2", p.display())
    );
    // Too many fields, after blank lines at the start of the file.
    let p = write(&dir, "long.csv", "\n\n1,2\n3,4,5\n");
    let e = read_csv(&p, CsvOptions::default()).unwrap_err().to_string();
    assert!(e.ends_with("line 4 has 3 columns but line 3 has 2"), "{e}");
}

/// The embedded digits set, read as `job` reads it, gives exactly the arrays the
/// hand-written parser gave before the `csv` crate replaced it (SHA-256 of the raw
/// little-endian bytes, computed with the old parser and cross-checked with Python).
#[test]
fn digits_parse_bit_identically() {
    use sha2::{Digest, Sha256};
    let raw = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/digits.csv.gz"));
    let opts = CsvOptions {
        has_header: Some(false),
        label_column: LabelColumn::Last,
        delimiter: b',',
    };
    let (x, y) = parse_csv(raw, Path::new("assets/digits.csv.gz"), opts).unwrap();
    let y = y.unwrap();
    let hex = |bytes: &[u8]| -> String {
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    assert_eq!((x.dtype, x.shape.as_slice()), (DType::F32, &[1797, 64][..]));
    assert_eq!((y.dtype, y.shape.as_slice()), (DType::I64, &[1797][..]));
    assert_eq!(
        hex(x.raw()),
        "a627aed550b0b29bf76a981bc1ecbab5ef775aac454c94154f20ec9f61a04c83"
    );
    assert_eq!(
        hex(y.raw()),
        "a3c91c262eddcf7ba8f0e37507c30284493c9b20412ffe4af30d536401f7ba21"
    );
}
