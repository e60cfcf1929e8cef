//! The `.npy` preamble (magic, version, header length) and the meaning of the header
//! dict's keys: which dtype, which shape, where the data starts.

use std::path::Path;

use super::dict::{DictParser, Value};
use super::MAGIC;
use crate::data_loaders::array::{fmt_shape, DType, FormatError};

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

/// What a valid header says about the data that follows it.
pub(super) struct Header {
    pub(super) dtype: DType,
    pub(super) shape: Vec<usize>,
    /// Byte offset of the first data byte (end of the padded header).
    pub(super) data_start: usize,
}

/// Decodes the preamble and header dict of the `.npy` bytes `buf` (`path` is what errors
/// name); the data itself is not looked at.
pub(super) fn parse_header(path: &Path, buf: &[u8]) -> Result<Header, FormatError> {
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
