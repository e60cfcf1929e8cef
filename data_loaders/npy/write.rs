//! Writing a `.npy` byte-for-byte as `np.save` lays it out (used by examples, benches
//! and tests to produce fixtures).

use std::fs::File;
use std::io::Write;
use std::path::Path;

use super::header::npy_descr;
use super::MAGIC;
use crate::data_loaders::array::{byte_len, fmt_shape, DType, FormatError};

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
