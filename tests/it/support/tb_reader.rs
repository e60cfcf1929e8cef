//! A small strict reader for TensorBoard event files, for tests only: the library
//! writes event files and never reads them, so the reader lives here.
//!
//! Strict: any CRC error or truncation is an error, unlike TensorBoard, which silently
//! stops at the first bad record. Decodes just what `EventWriter` writes (scalars,
//! histograms, text); anything else is `ValueData::Other`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use deeptrain::callbacks::tensorboard::{masked_crc32c, Histogram};

/// `TensorProto.dtype` of a string tensor (text summaries).
const DT_STRING: u64 = 7;

/// Errors from reading event files; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("tensorboard events: cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "tensorboard events: {}: truncated record at byte offset {offset}: \
         {part} needs {needed} bytes, only {available} left",
        path.display()
    )]
    Truncated {
        path: PathBuf,
        offset: u64,
        part: &'static str,
        needed: u64,
        available: u64,
    },
    #[error(
        "tensorboard events: {}: {part} crc32c mismatch in record at byte offset {offset} \
         (stored {stored:#010x}, computed {computed:#010x})",
        path.display()
    )]
    Crc {
        path: PathBuf,
        offset: u64,
        part: &'static str,
        stored: u32,
        computed: u32,
    },
    #[error(
        "tensorboard events: {}: malformed event in record at byte offset {offset}: {reason}",
        path.display()
    )]
    Decode {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
}

/// All record payloads in `path`, after verifying both CRCs of every record.
pub fn read_records(path: &Path) -> Result<Vec<Vec<u8>>, ReadError> {
    Ok(read_records_with_offsets(path)?
        .into_iter()
        .map(|(_, data)| data)
        .collect())
}

fn read_records_with_offsets(path: &Path) -> Result<Vec<(u64, Vec<u8>)>, ReadError> {
    let bytes = fs::read(path).map_err(|source| ReadError::Io {
        op: "read",
        path: path.to_path_buf(),
        source,
    })?;
    let mut records = Vec::new();
    let mut pos = 0usize;
    while pos < bytes.len() {
        let offset = pos as u64;
        let rest = &bytes[pos..];
        let truncated = |part, needed: usize| ReadError::Truncated {
            path: path.to_path_buf(),
            offset,
            part,
            needed: needed as u64,
            available: rest.len() as u64,
        };
        let crc_err = |part, stored, computed| ReadError::Crc {
            path: path.to_path_buf(),
            offset,
            part,
            stored,
            computed,
        };
        if rest.len() < 12 {
            return Err(truncated("header", 12));
        }
        let (len_bytes, rest_after_len) = rest.split_at(8);
        let stored = u32::from_le_bytes([
            rest_after_len[0],
            rest_after_len[1],
            rest_after_len[2],
            rest_after_len[3],
        ]);
        let computed = masked_crc32c(len_bytes);
        if stored != computed {
            return Err(crc_err("length", stored, computed));
        }
        let mut len_arr = [0u8; 8];
        len_arr.copy_from_slice(len_bytes);
        let len = u64::from_le_bytes(len_arr);
        let needed = usize::try_from(len)
            .ok()
            .and_then(|l| l.checked_add(16))
            .ok_or_else(|| truncated("data", usize::MAX))?;
        if rest.len() < needed {
            return Err(truncated("data", needed));
        }
        let data = &rest[12..needed - 4];
        let c = &rest[needed - 4..needed];
        let stored = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        let computed = masked_crc32c(data);
        if stored != computed {
            return Err(crc_err("data", stored, computed));
        }
        records.push((offset, data.to_vec()));
        pos += needed;
    }
    Ok(records)
}

/// A decoded `Event`, with just the parts this module writes.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedEvent {
    pub wall_time: f64,
    pub step: i64,
    pub file_version: Option<String>,
    pub values: Vec<DecodedValue>,
}

/// One `Summary.Value`.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedValue {
    pub tag: String,
    pub data: ValueData,
}

/// What a `Summary.Value` holds; anything not written by this module is `Other`.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueData {
    Scalar(f32),
    Histogram(Histogram),
    Text(String),
    Other,
}

/// Every event in `path` (CRC-checked, then decoded).
pub fn read_events(path: &Path) -> Result<Vec<DecodedEvent>, ReadError> {
    read_records_with_offsets(path)?
        .into_iter()
        .map(|(offset, data)| {
            decode_event(&data).map_err(|reason| ReadError::Decode {
                path: path.to_path_buf(),
                offset,
                reason,
            })
        })
        .collect()
}

/// All scalars in file order as `(tag, step, value)`.
pub fn read_scalars(path: &Path) -> Result<Vec<(String, i64, f32)>, ReadError> {
    let mut out = Vec::new();
    for ev in read_events(path)? {
        for v in ev.values {
            if let ValueData::Scalar(x) = v.data {
                out.push((v.tag, ev.step, x));
            }
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy)]
enum Field<'a> {
    Varint(u64),
    Fixed64(u64),
    Len(&'a [u8]),
    Fixed32(u32),
}

fn get_varint(buf: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or("truncated varint")?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint longer than 10 bytes".to_string())
}

fn take<'a>(buf: &'a [u8], pos: &mut usize, n: usize) -> Result<&'a [u8], String> {
    let end = pos
        .checked_add(n)
        .filter(|&e| e <= buf.len())
        .ok_or_else(|| format!("field of {n} bytes runs past end of message"))?;
    let s = &buf[*pos..end];
    *pos = end;
    Ok(s)
}

/// Splits a message into `(field number, value)` pairs; groups are rejected.
fn fields(buf: &[u8]) -> Result<Vec<(u64, Field<'_>)>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let key = get_varint(buf, &mut pos)?;
        let field = match key & 7 {
            0 => Field::Varint(get_varint(buf, &mut pos)?),
            1 => {
                let mut a = [0u8; 8];
                a.copy_from_slice(take(buf, &mut pos, 8)?);
                Field::Fixed64(u64::from_le_bytes(a))
            }
            2 => {
                let n = get_varint(buf, &mut pos)?;
                let n = usize::try_from(n).map_err(|_| "length overflows usize")?;
                Field::Len(take(buf, &mut pos, n)?)
            }
            5 => {
                let mut a = [0u8; 4];
                a.copy_from_slice(take(buf, &mut pos, 4)?);
                Field::Fixed32(u32::from_le_bytes(a))
            }
            w => return Err(format!("unsupported wire type {w} (field {})", key >> 3)),
        };
        out.push((key >> 3, field));
    }
    Ok(out)
}

fn wrong_type(msg: &str, num: u64) -> String {
    format!("{msg} field {num} has an unexpected wire type")
}

fn utf8(b: &[u8], what: &str) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
}

fn decode_event(buf: &[u8]) -> Result<DecodedEvent, String> {
    let mut ev = DecodedEvent {
        wall_time: 0.0,
        step: 0,
        file_version: None,
        values: Vec::new(),
    };
    for (num, f) in fields(buf)? {
        match (num, f) {
            (1, Field::Fixed64(b)) => ev.wall_time = f64::from_bits(b),
            (2, Field::Varint(v)) => ev.step = v as i64,
            (3, Field::Len(b)) => ev.file_version = Some(utf8(b, "file_version")?),
            (5, Field::Len(b)) => {
                for (n, f) in fields(b)? {
                    match (n, f) {
                        (1, Field::Len(v)) => ev.values.push(decode_value(v)?),
                        (1, _) => return Err(wrong_type("Summary", n)),
                        _ => {}
                    }
                }
            }
            (1 | 2 | 3 | 5, _) => return Err(wrong_type("Event", num)),
            _ => {}
        }
    }
    Ok(ev)
}

fn decode_value(buf: &[u8]) -> Result<DecodedValue, String> {
    let mut tag = String::new();
    let mut data = ValueData::Other;
    let mut plugin = String::new();
    let mut text = None;
    for (num, f) in fields(buf)? {
        match (num, f) {
            (1, Field::Len(b)) => tag = utf8(b, "tag")?,
            (2, Field::Fixed32(b)) => data = ValueData::Scalar(f32::from_bits(b)),
            (5, Field::Len(b)) => data = ValueData::Histogram(decode_histogram(b)?),
            (8, Field::Len(b)) => {
                data = ValueData::Other;
                let mut dtype = 0;
                for (n, f) in fields(b)? {
                    match (n, f) {
                        (1, Field::Varint(v)) => dtype = v,
                        (8, Field::Len(s)) if text.is_none() => text = Some(s),
                        _ => {}
                    }
                }
                if dtype != DT_STRING {
                    text = None;
                }
            }
            (9, Field::Len(b)) => {
                for (n, f) in fields(b)? {
                    if let (1, Field::Len(pd)) = (n, f) {
                        for (n, f) in fields(pd)? {
                            if let (1, Field::Len(name)) = (n, f) {
                                plugin = utf8(name, "plugin_name")?;
                            }
                        }
                    }
                }
            }
            (1 | 2 | 5 | 8 | 9, _) => return Err(wrong_type("Summary.Value", num)),
            _ => {}
        }
    }
    if let (ValueData::Other, Some(s), "text") = (&data, text, plugin.as_str()) {
        data = ValueData::Text(utf8(s, "text")?);
    }
    Ok(DecodedValue { tag, data })
}

fn decode_histogram(buf: &[u8]) -> Result<Histogram, String> {
    let mut h = Histogram {
        min: 0.0,
        max: 0.0,
        num: 0.0,
        sum: 0.0,
        sum_squares: 0.0,
        bucket_limit: Vec::new(),
        bucket: Vec::new(),
    };
    for (num, f) in fields(buf)? {
        match (num, f) {
            (1, Field::Fixed64(b)) => h.min = f64::from_bits(b),
            (2, Field::Fixed64(b)) => h.max = f64::from_bits(b),
            (3, Field::Fixed64(b)) => h.num = f64::from_bits(b),
            (4, Field::Fixed64(b)) => h.sum = f64::from_bits(b),
            (5, Field::Fixed64(b)) => h.sum_squares = f64::from_bits(b),
            (6 | 7, f) => {
                let dst = if num == 6 {
                    &mut h.bucket_limit
                } else {
                    &mut h.bucket
                };
                match f {
                    Field::Fixed64(b) => dst.push(f64::from_bits(b)),
                    Field::Len(p) if p.len() % 8 == 0 => dst.extend(p.chunks_exact(8).map(|c| {
                        let mut a = [0u8; 8];
                        a.copy_from_slice(c);
                        f64::from_le_bytes(a)
                    })),
                    _ => return Err(wrong_type("HistogramProto", num)),
                }
            }
            (1..=5, _) => return Err(wrong_type("HistogramProto", num)),
            _ => {}
        }
    }
    Ok(h)
}
