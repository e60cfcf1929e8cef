//! NumPy `.npy` reader (memory-mapped) and a minimal writer.
//!
//! Format (numpy.lib.format): magic `\x93NUMPY`, major/minor version bytes,
//! little-endian header length (u16 for 1.0, u32 for 2.0/3.0), then an ASCII
//! Python dict literal `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`
//! padded with spaces and a final `\n`, then the raw data. The dict is parsed
//! by hand (no Python-literal crate) and we accept any spacing and trailing
//! commas, since third-party writers differ from NumPy in those details.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use super::array::{byte_len, fmt_shape, ArrayData, Bytes, DType, FormatError};

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The `descr` string NumPy writes for `dtype` on a little-endian machine.
pub fn npy_descr(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "<f4",
        DType::F64 => "<f8",
        DType::F16 => "<f2",
        DType::U8 => "|u1",
        DType::I32 => "<i4",
        DType::I64 => "<i8",
    }
}

/// Memory-maps a `.npy` file. Only the header is read eagerly; the data stays
/// in the page cache and is shared by all clones of the returned array.
///
/// Rejected (each with its own message): empty files, bad magic, unknown
/// versions, big-endian or unsupported descrs, `fortran_order: True` for
/// 2+ dims, scalar shape `()`, and any mismatch between the header's size and
/// the bytes actually in the file (short *or* long: a longer file means the
/// header does not describe the data and silently ignoring it hides bugs).
pub fn read_npy(path: impl AsRef<Path>) -> Result<ArrayData, FormatError> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| FormatError::io(path, "open", e))?;
    // SAFETY: the mapping is read-only; like every mmap reader we rely on the
    // file not being truncated or rewritten while the array is alive.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| FormatError::io(path, "mmap", e))?;
    let header = parse_header(path, &map)?;
    let file_len = map.len() as u64;
    let shape_text = fmt_shape(&header.shape);
    if header.shape.is_empty() {
        return Err(FormatError::NoSampleAxis {
            path: path.into(),
            shape: shape_text,
        });
    }
    let Some(expected) = byte_len(&header.shape, header.dtype) else {
        return Err(FormatError::SizeOverflow {
            path: path.into(),
            shape: shape_text,
            dtype: header.dtype,
        });
    };
    let actual = file_len - header.data_start as u64;
    let expected = expected as u64;
    if actual < expected {
        return Err(FormatError::Truncated {
            path: path.into(),
            shape: shape_text,
            dtype: header.dtype,
            expected,
            actual,
        });
    }
    if actual > expected {
        return Err(FormatError::TrailingBytes {
            path: path.into(),
            shape: shape_text,
            dtype: header.dtype,
            expected,
            actual,
        });
    }
    let bytes = Bytes::Mapped {
        map: Arc::new(map),
        offset: header.data_start,
        len: expected as usize,
    };
    ArrayData::new(path, header.dtype, header.shape, bytes)
}

/// Writes a C-order little-endian `.npy` (version 1.0, or 2.0 if the header
/// would not fit a u16) with the data starting at a multiple of 64 bytes,
/// exactly as `np.save` does. `bytes` must hold `prod(shape) * dtype.size()`
/// little-endian bytes.
pub fn write_npy(
    path: impl AsRef<Path>,
    dtype: DType,
    shape: &[usize],
    bytes: &[u8],
) -> Result<(), FormatError> {
    let path = path.as_ref();
    let expected = byte_len(shape, dtype).ok_or_else(|| FormatError::SizeOverflow {
        path: path.into(),
        shape: fmt_shape(shape),
        dtype,
    })?;
    if expected != bytes.len() {
        return Err(FormatError::BufferSize {
            path: path.into(),
            shape: fmt_shape(shape),
            dtype,
            expected,
            actual: bytes.len(),
        });
    }
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}",
        npy_descr(dtype),
        fmt_shape(shape)
    );
    // The length field counts the padded header (incl. '\n').
    let v1 = (10 + header.len() + 1).next_multiple_of(64) - 10 <= u16::MAX as usize;
    let prefix = if v1 { 10 } else { 12 };
    let total = (prefix + header.len() + 1).next_multiple_of(64);
    while prefix + header.len() + 1 < total {
        header.push(' ');
    }
    header.push('\n');

    let mut out = Vec::with_capacity(total + bytes.len());
    out.extend_from_slice(MAGIC);
    if v1 {
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&[2, 0]);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(bytes);
    let mut file = File::create(path).map_err(|e| FormatError::io(path, "create", e))?;
    file.write_all(&out)
        .map_err(|e| FormatError::io(path, "write", e))
}

struct Header {
    dtype: DType,
    shape: Vec<usize>,
    data_start: usize,
}

fn parse_header(path: &Path, buf: &[u8]) -> Result<Header, FormatError> {
    if buf.is_empty() {
        return Err(FormatError::Empty {
            path: path.into(),
            format: "NumPy .npy",
        });
    }
    if buf.len() < 8 || &buf[..6] != MAGIC {
        return Err(FormatError::BadMagic {
            path: path.into(),
            format: "NumPy .npy",
            expected: MAGIC.escape_ascii().to_string(),
            found: buf[..buf.len().min(8)].escape_ascii().to_string(),
        });
    }
    let (major, minor) = (buf[6], buf[7]);
    let len_bytes = match (major, minor) {
        (1, 0) => 2,
        (2, 0) | (3, 0) => 4,
        _ => {
            return Err(FormatError::UnsupportedVersion {
                path: path.into(),
                format: "NumPy .npy",
                version: format!("{major}.{minor} (supported: 1.0, 2.0, 3.0)"),
            })
        }
    };
    let start = 8 + len_bytes;
    let truncated = |header_end: u64| FormatError::TruncatedHeader {
        path: path.into(),
        header_end,
        file_len: buf.len() as u64,
    };
    let Some(len_field) = buf.get(8..start) else {
        return Err(truncated(start as u64));
    };
    let header_len = if len_bytes == 2 {
        u16::from_le_bytes([len_field[0], len_field[1]]) as usize
    } else {
        u32::from_le_bytes([len_field[0], len_field[1], len_field[2], len_field[3]]) as usize
    };
    let data_start = start + header_len;
    let Some(raw) = buf.get(start..data_start) else {
        return Err(truncated(data_start as u64));
    };
    // 1.0 and 2.0 headers are latin-1, 3.0 is UTF-8. Only ASCII matters to us.
    let text: String = if major == 3 {
        String::from_utf8_lossy(raw).into_owned()
    } else {
        raw.iter().map(|&b| b as char).collect()
    };
    let bad = |reason: String| FormatError::BadHeader {
        path: path.into(),
        header: text.trim_end().to_string(),
        reason,
    };
    let dict = DictParser::new(&text).parse().map_err(&bad)?;

    let mut descr = None;
    let mut fortran = None;
    let mut shape = None;
    for (key, value) in dict {
        match key.as_str() {
            "descr" => descr = Some(value),
            "fortran_order" => fortran = Some(value),
            "shape" => shape = Some(value),
            _ => {} // NumPy never writes others; tolerate extensions.
        }
    }
    let descr = match descr {
        Some(Value::Str(s)) => s,
        Some(Value::Seq(_)) => {
            return Err(FormatError::UnsupportedDType {
                path: path.into(),
                dtype: "structured (record) dtype".into(),
                reason: "only plain numeric arrays are supported".into(),
            })
        }
        Some(_) => return Err(bad("'descr' is not a string".into())),
        None => return Err(bad("missing key 'descr'".into())),
    };
    let fortran = match fortran {
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(bad("'fortran_order' is not True/False".into())),
        None => return Err(bad("missing key 'fortran_order'".into())),
    };
    let shape = match shape {
        Some(Value::Seq(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::Int(n) => Ok(n),
                _ => Err(bad(
                    "'shape' must be a tuple of non-negative integers".into()
                )),
            })
            .collect::<Result<Vec<usize>, _>>()?,
        Some(_) => return Err(bad("'shape' is not a tuple".into())),
        None => return Err(bad("missing key 'shape'".into())),
    };
    let dtype = parse_descr(path, &descr)?;
    // A 0/1-d array is identical in both orders; NumPy only flags 2+ dims.
    if fortran && shape.len() > 1 {
        return Err(FormatError::FortranOrder {
            path: path.into(),
            shape: fmt_shape(&shape),
        });
    }
    Ok(Header {
        dtype,
        shape,
        data_start,
    })
}

fn parse_descr(path: &Path, descr: &str) -> Result<DType, FormatError> {
    let unsupported = |reason: String| FormatError::UnsupportedDType {
        path: path.into(),
        dtype: format!("'{descr}'"),
        reason,
    };
    let (order, kind) = match descr.as_bytes().first() {
        Some(c @ (b'<' | b'>' | b'|' | b'=')) => (*c, &descr[1..]),
        _ => (b'=', descr),
    };
    let dtype = match kind {
        "f4" => DType::F32,
        "f8" => DType::F64,
        "f2" => DType::F16,
        "u1" => DType::U8,
        "i4" => DType::I32,
        "i8" => DType::I64,
        _ => {
            return Err(unsupported(
                "supported: '<f4', '<f8', '<f2', '|u1', '<i4', '<i8' \
                 (convert with a.astype(...) before saving)"
                    .into(),
            ))
        }
    };
    let big = order == b'>' || (order == b'=' && cfg!(target_endian = "big"));
    if big && dtype.size() > 1 {
        return Err(unsupported(format!(
            "big-endian data is not supported; save with a.astype('<{kind}')"
        )));
    }
    Ok(dtype)
}

/// A Python literal as it can appear in an npy header.
#[derive(Debug, PartialEq)]
enum Value {
    Str(String),
    Bool(bool),
    Int(usize),
    None,
    /// Tuple or list (the distinction never matters here).
    Seq(Vec<Value>),
}

/// Recursive-descent parser for the header dict. Errors are plain strings;
/// the caller attaches the file path and header text.
struct DictParser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> DictParser<'a> {
    fn new(text: &'a str) -> Self {
        DictParser {
            s: text.as_bytes(),
            pos: 0,
        }
    }

    fn parse(mut self) -> Result<Vec<(String, Value)>, String> {
        self.expect(b'{')?;
        let mut entries = Vec::new();
        loop {
            if self.eat(b'}') {
                break;
            }
            let key = match self.value()? {
                Value::Str(k) => k,
                other => return Err(format!("dict key {other:?} is not a string")),
            };
            self.expect(b':')?;
            let value = self.value()?;
            entries.push((key, value));
            if !self.eat(b',') {
                self.expect(b'}')?;
                break;
            }
        }
        self.skip_ws();
        if self.pos != self.s.len() {
            return Err(format!(
                "unexpected text after the dict at byte {}",
                self.pos
            ));
        }
        Ok(entries)
    }

    fn skip_ws(&mut self) {
        while self.pos < self.s.len()
            && (self.s[self.pos].is_ascii_whitespace() || self.s[self.pos] == 0)
        {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.pos).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(match self.peek() {
                Some(found) => format!(
                    "expected '{}' at byte {} but found '{}'",
                    c as char, self.pos, found as char
                ),
                None => format!("expected '{}' but the header ended", c as char),
            })
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        match self.peek() {
            None => Err("header ended where a value was expected".into()),
            Some(q @ (b'\'' | b'"')) => {
                self.pos += 1;
                let start = self.pos;
                while self.pos < self.s.len() && self.s[self.pos] != q {
                    self.pos += 1;
                }
                if self.pos == self.s.len() {
                    return Err("unterminated string".into());
                }
                let text = String::from_utf8_lossy(&self.s[start..self.pos]).into_owned();
                self.pos += 1;
                Ok(Value::Str(text))
            }
            Some(open @ (b'(' | b'[')) => {
                let close = if open == b'(' { b')' } else { b']' };
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    if self.eat(close) {
                        break;
                    }
                    items.push(self.value()?);
                    if !self.eat(b',') {
                        self.expect(close)?;
                        break;
                    }
                }
                Ok(Value::Seq(items))
            }
            Some(c) if c.is_ascii_digit() => {
                let start = self.pos;
                while self.pos < self.s.len() && self.s[self.pos].is_ascii_digit() {
                    self.pos += 1;
                }
                let digits = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("");
                let n = digits
                    .parse::<usize>()
                    .map_err(|_| format!("integer {digits} does not fit in usize"))?;
                // Python 2 wrote longs as `3L`.
                if self.s.get(self.pos) == Some(&b'L') {
                    self.pos += 1;
                }
                Ok(Value::Int(n))
            }
            Some(_) => {
                for (word, value) in [
                    ("True", Value::Bool(true)),
                    ("False", Value::Bool(false)),
                    ("None", Value::None),
                ] {
                    if self.s[self.pos..].starts_with(word.as_bytes()) {
                        self.pos += word.len();
                        return Ok(value);
                    }
                }
                let rest = String::from_utf8_lossy(&self.s[self.pos..]);
                let token: String = rest.chars().take(12).collect();
                Err(format!("unexpected {token:?} at byte {}", self.pos))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::array::test_util::test_dir;
    use super::*;
    use std::path::PathBuf;

    /// Builds an npy file by hand (independently of `write_npy`): `pad_to`
    /// controls where the data starts, so tests can force odd offsets.
    fn npy_bytes(major: u8, header: &str, pad_to: usize, data: &[u8]) -> Vec<u8> {
        let prefix = if major == 1 { 10 } else { 12 };
        let mut h = header.to_string();
        while !(prefix + h.len() + 1).is_multiple_of(pad_to) {
            h.push(' ');
        }
        h.push('\n');
        let mut out = b"\x93NUMPY".to_vec();
        out.push(major);
        out.push(0);
        if major == 1 {
            out.extend_from_slice(&(h.len() as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&(h.len() as u32).to_le_bytes());
        }
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn header(descr: &str, shape: &str) -> String {
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}")
    }

    fn as_f32(a: &ArrayData) -> Vec<f32> {
        let mut out = Vec::new();
        a.range_f32(0, a.num_samples(), &mut out);
        out
    }

    #[test]
    fn every_dtype_round_trips_from_hand_written_files() {
        let dir = test_dir("npy_dtypes");
        let vals = [0.0f64, 1.0, -2.0, 3.5, 100.0, -0.25];
        let cases: [(&str, DType, Vec<u8>); 6] = [
            (
                "<f4",
                DType::F32,
                vals.iter()
                    .flat_map(|&v| (v as f32).to_le_bytes())
                    .collect(),
            ),
            (
                "<f8",
                DType::F64,
                vals.iter().flat_map(|&v| v.to_le_bytes()).collect(),
            ),
            (
                "<f2",
                DType::F16,
                vals.iter()
                    .flat_map(|&v| half::f16::from_f64(v).to_le_bytes())
                    .collect(),
            ),
            ("|u1", DType::U8, vec![0, 1, 2, 3, 100, 255]),
            (
                "<i4",
                DType::I32,
                [0i32, 1, -2, 3, 100, -7]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            ),
            (
                "<i8",
                DType::I64,
                [0i64, 1, -2, 3, 100, -7]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            ),
        ];
        for (descr, dtype, data) in cases {
            let p = write(
                &dir,
                &format!("{}.npy", dtype.name()),
                &npy_bytes(1, &header(descr, "(3, 2)"), 64, &data),
            );
            let a = read_npy(&p).unwrap();
            assert_eq!(a.dtype, dtype);
            assert_eq!(a.shape, [3, 2]);
            assert_eq!(a.raw(), &data[..], "{descr}");
            let Bytes::Mapped { offset, .. } = a.bytes else {
                panic!("npy data must be memory-mapped")
            };
            assert_eq!(offset % 64, 0);
            let expected: Vec<f32> = match dtype {
                DType::U8 => vec![0.0, 1.0, 2.0, 3.0, 100.0, 255.0],
                DType::I32 | DType::I64 => vec![0.0, 1.0, -2.0, 3.0, 100.0, -7.0],
                _ => vals.iter().map(|&v| v as f32).collect(),
            };
            assert_eq!(as_f32(&a), expected, "{descr}");
            let mut out = Vec::new();
            a.gather_f32(&[2, 0], &mut out);
            assert_eq!(out, [expected[4], expected[5], expected[0], expected[1]]);
        }
    }

    #[test]
    fn unaligned_data_offsets_convert_correctly() {
        let dir = test_dir("npy_unaligned");
        let vals: Vec<f64> = (0..10).map(|i| i as f64 * 1.25 - 4.0).collect();
        for pad_to in [1usize, 3, 5, 7] {
            let data: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
            let bytes = npy_bytes(1, &header("<f8", "(5, 2)"), pad_to, &data);
            let p = write(&dir, &format!("odd{pad_to}.npy"), &bytes);
            let a = read_npy(&p).unwrap();
            let Bytes::Mapped { offset, .. } = a.bytes else {
                panic!("not mapped")
            };
            assert_eq!(offset, bytes.len() - 80);
            let expected: Vec<f32> = vals.iter().map(|&v| v as f32).collect();
            assert_eq!(as_f32(&a), expected);
            let mut out = Vec::new();
            a.gather_f32(&[4, 1], &mut out);
            assert_eq!(out, [expected[8], expected[9], expected[2], expected[3]]);
        }
        // At least one case must really be unaligned for 8-byte reads.
        let bytes = npy_bytes(
            1,
            &header("<i8", "(2,)"),
            7,
            &[1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0],
        );
        assert_ne!((bytes.len() - 16) % 8, 0);
        let a = read_npy(write(&dir, "i8.npy", &bytes)).unwrap();
        assert_eq!(as_f32(&a), [1.0, 2.0]);
    }

    #[test]
    fn header_parser_is_tolerant() {
        let dir = test_dir("npy_tolerant");
        let data: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        for h in [
            "{'descr':'<f4','fortran_order':False,'shape':(2,)}",
            "{ \"descr\" : \"<f4\" , 'shape' : ( 2 , ) , 'fortran_order' : False , }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2L,), }",
            "{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }",
            "{'descr': 'f4', 'fortran_order': False, 'shape': [2], 'extra': None}",
        ] {
            let p = write(&dir, "t.npy", &npy_bytes(1, h, 16, &data));
            let a = read_npy(&p).unwrap_or_else(|e| panic!("{h}: {e}"));
            assert_eq!(a.shape, [2]);
            assert_eq!(as_f32(&a), [1.0, 2.0]);
        }
    }

    #[test]
    fn version_2_and_3_headers() {
        let dir = test_dir("npy_v2");
        let data: Vec<u8> = (0..6i32).flat_map(|v| v.to_le_bytes()).collect();
        for major in [2, 3] {
            let p = write(
                &dir,
                &format!("v{major}.npy"),
                &npy_bytes(major, &header("<i4", "(3, 2)"), 64, &data),
            );
            let a = read_npy(&p).unwrap();
            assert_eq!(a.shape, [3, 2]);
            assert_eq!(as_f32(&a), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        }
    }

    #[test]
    fn write_npy_matches_numpy_layout() {
        let dir = test_dir("npy_write");
        let p = dir.join("w.npy");
        let data: Vec<u8> = [1.5f32, -2.0, 3.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        write_npy(&p, DType::F32, &[3], &data).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        // Same bytes np.save produces for np.array([1.5, -2, 3], dtype='<f4').
        let mut expected = b"\x93NUMPY\x01\x00\x76\x00".to_vec();
        let mut h = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }".to_string();
        h.push_str(&" ".repeat(128 - 10 - h.len() - 1));
        h.push('\n');
        expected.extend_from_slice(h.as_bytes());
        expected.extend_from_slice(&data);
        assert_eq!(bytes, expected);
        assert_eq!(as_f32(&read_npy(&p).unwrap()), [1.5, -2.0, 3.0]);

        let e = write_npy(&p, DType::F64, &[2], &data).unwrap_err();
        assert!(
            matches!(
                e,
                FormatError::BufferSize {
                    expected: 16,
                    actual: 12,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn truncated_and_lying_files() {
        let dir = test_dir("npy_truncated");
        let data = vec![0u8; 204800];
        let p = write(
            &dir,
            "batch_3.npy",
            &npy_bytes(1, &header("<f4", "(100, 28, 28)"), 64, &data),
        );
        let e = read_npy(&p).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}: header says shape (100, 28, 28) of f32 = 313600 bytes but only 204800 bytes follow the header",
                p.display()
            )
        );
        let p = write(
            &dir,
            "long.npy",
            &npy_bytes(1, &header("|u1", "(10,)"), 64, &[7u8; 12]),
        );
        let e = read_npy(&p).unwrap_err().to_string();
        assert!(e.ends_with("header says shape (10,) of u8 = 10 bytes but 12 bytes follow the header (2 extra): the header lies about the shape"), "{e}");

        // The header itself cut short.
        let full = npy_bytes(1, &header("<f4", "(2,)"), 64, &[0; 8]);
        let p = write(&dir, "cut.npy", &full[..40]);
        let e = read_npy(&p).unwrap_err().to_string();
        assert!(
            e.ends_with("header ends at byte 128 but the file has only 40 bytes"),
            "{e}"
        );
    }

    #[test]
    fn rejects_bad_files_with_clear_messages() {
        let dir = test_dir("npy_bad");
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("empty.npy", vec![], "file is empty (0 bytes)"),
            ("magic.npy", b"PK\x03\x04zipfile".to_vec(), "not a valid NumPy .npy file: expected magic \\x93NUMPY but the file starts with PK\\x03\\x04zipf"),
            ("ver.npy", b"\x93NUMPY\x04\x00\x10\x00".to_vec(), "unsupported NumPy .npy version 4.0"),
            (
                "fortran.npy",
                npy_bytes(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 64, &[0; 24]),
                "fortran_order is True for shape (2, 3)",
            ),
            (
                "big.npy",
                npy_bytes(1, &header(">f4", "(2,)"), 64, &[0; 8]),
                "unsupported dtype '>f4': big-endian data is not supported; save with a.astype('<f4')",
            ),
            ("i1.npy", npy_bytes(1, &header("|i1", "(2,)"), 64, &[0; 2]), "unsupported dtype '|i1'"),
            (
                "record.npy",
                npy_bytes(1, "{'descr': [('a', '<f4'), ('b', '<i4')], 'fortran_order': False, 'shape': (1,), }", 64, &[0; 8]),
                "unsupported dtype structured (record) dtype",
            ),
            ("scalar.npy", npy_bytes(1, &header("<f4", "()"), 64, &[0; 4]), "shape () has no sample axis"),
            ("noshape.npy", npy_bytes(1, "{'descr': '<f4', 'fortran_order': False}", 64, &[]), "missing key 'shape'"),
            ("garbage.npy", npy_bytes(1, "{'descr': '<f4', 'fortran_order': Nope, 'shape': (1,)}", 64, &[0; 4]), "unexpected \"Nope"),
            ("unclosed.npy", npy_bytes(1, "{'descr': '<f4', 'shape': (1,", 64, &[0; 4]), "header ended where a value was expected"),
            ("unclosed2.npy", npy_bytes(1, "{'descr': '<f4', 'shape': (1", 64, &[0; 4]), "expected ')' but the header ended"),
        ];
        for (name, bytes, want) in cases {
            let p = write(&dir, name, &bytes);
            let e = read_npy(&p).unwrap_err().to_string();
            assert!(e.starts_with(&p.display().to_string()), "{e}");
            assert!(e.contains(want), "{name}: {e}");
        }
        let e = read_npy(dir.join("missing.npy")).unwrap_err().to_string();
        assert!(e.contains("missing.npy: cannot open:"), "{e}");
    }

    #[test]
    fn zero_samples_is_fine() {
        let dir = test_dir("npy_zero");
        let p = write(
            &dir,
            "z.npy",
            &npy_bytes(1, &header("<f4", "(0, 5)"), 64, &[]),
        );
        let a = read_npy(&p).unwrap();
        assert_eq!(a.num_samples(), 0);
        assert_eq!(a.sample_shape(), &[5]);
    }

    /// Cross-checks against NumPy itself. Uses `$DEEPTRAIN_PYTHON` or
    /// `python3`; skips (with a message) when NumPy is not importable.
    #[test]
    fn reads_files_written_by_numpy() {
        let python = std::env::var("DEEPTRAIN_PYTHON").unwrap_or_else(|_| "python3".into());
        let ok = std::process::Command::new(&python)
            .args(["-c", "import numpy"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !ok {
            eprintln!("SKIP reads_files_written_by_numpy: `{python} -c 'import numpy'` failed (set DEEPTRAIN_PYTHON to an interpreter with numpy)");
            return;
        }
        let dir = test_dir("npy_numpy");
        let script = r#"
import sys, numpy as np
d = sys.argv[1]
np.save(d + '/f32.npy', np.arange(24, dtype=np.float32).reshape(2, 3, 4) * 0.5 - 3)
np.save(d + '/f64.npy', np.arange(7, dtype=np.float64) / 3)
np.save(d + '/f16.npy', (np.arange(10, dtype=np.float16) * 0.25).reshape(5, 2))
np.save(d + '/u8.npy', (np.arange(300) % 256).astype(np.uint8).reshape(100, 3))
np.save(d + '/i32.npy', np.arange(-5, 5, dtype=np.int32))
np.save(d + '/i64.npy', (np.arange(12, dtype=np.int64) * 10**10).reshape(3, 2, 2))
np.save(d + '/strided.npy', np.arange(20, dtype=np.float32).reshape(4, 5)[:, ::2])
np.save(d + '/empty.npy', np.zeros((0, 5), dtype=np.float32))
np.save(d + '/fortran.npy', np.asfortranarray(np.zeros((3, 4), dtype=np.float32)))
np.save(d + '/big.npy', np.arange(4, dtype='>f4'))
np.save(d + '/scalar.npy', np.float32(1.5))
with open(d + '/v2.npy', 'wb') as f:
    np.lib.format.write_array(f, np.arange(6, dtype=np.float32).reshape(3, 2), version=(2, 0))
"#;
        let out = std::process::Command::new(&python)
            .args(["-c", script, dir.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        let a = read_npy(dir.join("f32.npy")).unwrap();
        assert_eq!((a.dtype, a.shape.as_slice()), (DType::F32, &[2, 3, 4][..]));
        assert_eq!(
            as_f32(&a),
            (0..24).map(|i| i as f32 * 0.5 - 3.0).collect::<Vec<_>>()
        );

        let a = read_npy(dir.join("f64.npy")).unwrap();
        let got: Vec<f64> = a
            .raw()
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(got, (0..7).map(|i| i as f64 / 3.0).collect::<Vec<_>>());

        let a = read_npy(dir.join("f16.npy")).unwrap();
        assert_eq!((a.dtype, a.shape.as_slice()), (DType::F16, &[5, 2][..]));
        assert_eq!(
            as_f32(&a),
            (0..10).map(|i| i as f32 * 0.25).collect::<Vec<_>>()
        );

        let a = read_npy(dir.join("u8.npy")).unwrap();
        assert_eq!((a.dtype, a.shape.as_slice()), (DType::U8, &[100, 3][..]));
        assert_eq!(
            a.raw(),
            (0..300).map(|i| (i % 256) as u8).collect::<Vec<_>>()
        );

        let a = read_npy(dir.join("i32.npy")).unwrap();
        assert_eq!(as_f32(&a), (-5..5).map(|i| i as f32).collect::<Vec<_>>());

        let a = read_npy(dir.join("i64.npy")).unwrap();
        assert_eq!(a.shape, [3, 2, 2]);
        let got: Vec<i64> = a
            .raw()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(got, (0..12).map(|i| i * 10_000_000_000).collect::<Vec<_>>());

        let a = read_npy(dir.join("strided.npy")).unwrap();
        assert_eq!(a.shape, [4, 3]);
        assert_eq!(
            as_f32(&a),
            [0., 2., 4., 5., 7., 9., 10., 12., 14., 15., 17., 19.]
        );

        assert_eq!(read_npy(dir.join("empty.npy")).unwrap().shape, [0, 5]);
        let a = read_npy(dir.join("v2.npy")).unwrap();
        assert_eq!(as_f32(&a), [0., 1., 2., 3., 4., 5.]);

        let e = read_npy(dir.join("fortran.npy")).unwrap_err();
        assert!(matches!(e, FormatError::FortranOrder { .. }), "{e}");
        let e = read_npy(dir.join("big.npy")).unwrap_err().to_string();
        assert!(e.contains("big-endian"), "{e}");
        let e = read_npy(dir.join("scalar.npy")).unwrap_err();
        assert!(matches!(e, FormatError::NoSampleAxis { .. }), "{e}");

        // And NumPy can read what write_npy writes.
        let p = dir.join("ours.npy");
        let data: Vec<u8> = (0..6i64).flat_map(|v| (v * 3 - 1).to_le_bytes()).collect();
        write_npy(&p, DType::I64, &[2, 3], &data).unwrap();
        let check = "import sys, numpy as np; a = np.load(sys.argv[1]); \
                     assert a.dtype == np.int64 and a.shape == (2, 3), (a.dtype, a.shape); \
                     assert (a.ravel() == np.arange(6) * 3 - 1).all(), a";
        let out = std::process::Command::new(&python)
            .args(["-c", check, p.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
