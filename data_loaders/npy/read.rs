//! Reading a `.npy`: memory-map the file, decode its header and check that the bytes
//! after it are exactly what the header describes.

use std::path::Path;
use std::sync::Arc;

use super::header::parse_header;
use crate::data_loaders::array::{byte_len, fmt_shape, ArrayData, Bytes, FormatError, MappedFile};

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
    let map = MappedFile::open(path, path)?;
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
