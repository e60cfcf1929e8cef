//! The in-memory view every file reader produces: an n-d array whose first
//! axis is the sample axis and whose bytes are either a window into a
//! memory-mapped file (zero-copy, the OS pages data in on demand) or an owned
//! buffer (for formats that must be decoded, e.g. CSV text or big-endian idx).
//!
//! Element bytes are always little-endian and C (row-major) ordered; readers
//! convert or refuse anything else so consumers never have to care.

use std::fmt;
use std::fs::{self, File};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use super::format_error::FormatError;

/// Element type of an [`ArrayData`]. Only the types a training pipeline
/// actually feeds (features and labels) are supported, to keep conversion
/// code small and exhaustively tested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// 32-bit IEEE float (NumPy `<f4`, idx `0x0D`); serialized as `"f32"`.
    F32,
    /// 64-bit IEEE float (NumPy `<f8`, idx `0x0E`); batches get it as f32 unless
    /// [`InputDType::Native`](super::auto::InputDType::Native).
    F64,
    /// 16-bit IEEE half float (NumPy `<f2`; not in idx).
    F16,
    /// Unsigned byte (NumPy `|u1`, idx `0x08`), e.g. 0..=255 image pixels.
    U8,
    /// 32-bit signed integer (NumPy `<i4`, idx `0x0C`).
    I32,
    /// 64-bit signed integer (NumPy `<i8`; not in idx); CSV integer labels are read as this.
    I64,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::U8 => 1,
            DType::F16 => 2,
            DType::F32 | DType::I32 => 4,
            DType::F64 | DType::I64 => 8,
        }
    }

    /// Short lowercase name used in messages and configs (`"f32"`, `"u8"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::F16 => "f16",
            DType::U8 => "u8",
            DType::I32 => "i32",
            DType::I64 => "i64",
        }
    }

    /// Whether values of this type are integers (relevant for label checks).
    pub fn is_integer(self) -> bool {
        matches!(self, DType::U8 | DType::I32 | DType::I64)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Formats a shape the way NumPy prints it, `(100, 28, 28)` / `(5,)` / `()`,
/// because that is what users see when they inspect their files in Python.
pub fn fmt_shape(shape: &[usize]) -> String {
    match shape {
        [] => "()".to_string(),
        [n] => format!("({n},)"),
        _ => {
            let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
            format!("({})", dims.join(", "))
        }
    }
}

/// Number of bytes `shape` of `dtype` occupies, or `None` on overflow
/// (a corrupt header must produce an error, not a wrap-around). A zero dimension does not
/// hide an overflow of the others: `(0, 2**33, 2**33)` is `None`, because every size
/// derived from the shape (one sample's elements, its bytes) must fit in a `usize` too.
pub fn byte_len(shape: &[usize], dtype: DType) -> Option<usize> {
    let nonzero = shape
        .iter()
        .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d.max(1)))?;
    Some(if shape.contains(&0) { 0 } else { nonzero })
}

/// A read-only memory map of a whole file, with the file's path and identity, so a
/// reader can check that the file still has the mapped length before touching the map
/// (touching pages past the end of a truncated file raises SIGBUS).
pub struct MappedFile {
    map: memmap2::Mmap,
    path: PathBuf,
    /// (device, inode) of the mapped file: a file replaced by rename is a different
    /// file, and the map of the old one stays valid.
    id: Option<(u64, u64)>,
}

impl MappedFile {
    /// Opens and maps `path`. Errors name `shown` (the path the user gave, e.g. the
    /// `.gz` of a decompressed cache file) with the action that failed.
    pub fn open(path: &Path, shown: &Path) -> Result<Self, FormatError> {
        let file = File::open(path).map_err(|e| FormatError::io(shown, "open", e))?;
        // SAFETY: read-only mapping. The file must not be truncated while mapped: every
        // read through `Bytes` of a batch is preceded by `check_len`, which turns a
        // truncation before that point into an error. A truncation between the check and
        // the read itself can still raise SIGBUS (the residual risk of reading mapped
        // files that other programs may change).
        let map =
            unsafe { memmap2::Mmap::map(&file) }.map_err(|e| FormatError::io(shown, "mmap", e))?;
        let id = file.metadata().ok().and_then(|m| file_id(&m));
        Ok(MappedFile {
            map,
            path: path.to_path_buf(),
            id,
        })
    }

    /// The mapped file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Errors with [`FormatError::ChangedSize`] if the mapped file now has another
    /// length than the map (one `stat`, cheap enough to run before every batch). A file
    /// deleted or replaced by another one (rename) is fine: the map keeps the old one.
    pub fn check_len(&self) -> Result<(), FormatError> {
        let Ok(meta) = fs::metadata(&self.path) else {
            return Ok(());
        };
        if self.id.is_some() && file_id(&meta) != self.id {
            return Ok(());
        }
        let (was, now) = (self.map.len() as u64, meta.len());
        if was == now {
            Ok(())
        } else {
            Err(FormatError::ChangedSize {
                path: self.path.clone(),
                was,
                now,
            })
        }
    }
}

#[cfg(unix)]
fn file_id(meta: &fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn file_id(_meta: &fs::Metadata) -> Option<(u64, u64)> {
    None
}

impl Deref for MappedFile {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.map
    }
}

/// Where the bytes of an [`ArrayData`] live. Both variants are behind `Arc`
/// so cloning an array (e.g. into worker threads) never copies data.
#[derive(Clone)]
pub enum Bytes {
    /// `len` bytes starting at `offset` inside a memory-mapped file.
    Mapped {
        /// The mapping of the whole file, shared by every array of that file.
        map: Arc<MappedFile>,
        /// Byte offset of the array's first byte in the map (any alignment).
        offset: usize,
        /// Length of the array in bytes.
        len: usize,
    },
    /// Decoded data held in memory.
    Owned(Arc<Vec<u8>>),
}

impl Bytes {
    /// The bytes themselves.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Mapped { map, offset, len } => &map[*offset..*offset + *len],
            Bytes::Owned(v) => v,
        }
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        match self {
            Bytes::Mapped { len, .. } => *len,
            Bytes::Owned(v) => v.len(),
        }
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

// Hand-written so that debug-printing an array never dumps megabytes of data.
impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bytes::Mapped { offset, len, .. } => f
                .debug_struct("Mapped")
                .field("offset", offset)
                .field("len", len)
                .finish(),
            Bytes::Owned(v) => f.debug_struct("Owned").field("len", &v.len()).finish(),
        }
    }
}

/// An n-d array of samples. Invariant (checked by [`ArrayData::new`]):
/// `shape` is non-empty and `bytes.len() == prod(shape) * dtype.size()`.
/// The fields are public for easy inspection; build values through `new`.
///
/// Memory-mapped arrays assume the file is not modified or truncated while
/// mapped (truncation would make later reads fault), as with any mmap reader.
#[derive(Debug, Clone)]
pub struct ArrayData {
    /// Element type.
    pub dtype: DType,
    /// Dimensions; `shape[0]` is the number of samples.
    pub shape: Vec<usize>,
    /// The elements, little-endian and C order: exactly `prod(shape) * dtype.size()` bytes.
    pub bytes: Bytes,
    /// File the array came from, so later errors (e.g. bad labels) can name it.
    pub path: PathBuf,
}

impl ArrayData {
    /// Builds an array after checking the shape/bytes invariant.
    pub fn new(
        path: impl Into<PathBuf>,
        dtype: DType,
        shape: Vec<usize>,
        bytes: Bytes,
    ) -> Result<Self, FormatError> {
        let path = path.into();
        if shape.is_empty() {
            return Err(FormatError::NoSampleAxis {
                path,
                shape: fmt_shape(&shape),
            });
        }
        let Some(expected) = byte_len(&shape, dtype) else {
            return Err(FormatError::SizeOverflow {
                path,
                shape: fmt_shape(&shape),
                dtype,
            });
        };
        if let Bytes::Mapped { map, offset, len } = &bytes {
            if offset.checked_add(*len).is_none_or(|end| end > map.len()) {
                return Err(FormatError::Truncated {
                    path,
                    shape: fmt_shape(&shape),
                    dtype,
                    expected: *len as u64,
                    actual: map.len().saturating_sub(*offset) as u64,
                });
            }
        }
        if bytes.len() != expected {
            return Err(FormatError::BufferSize {
                path,
                shape: fmt_shape(&shape),
                dtype,
                expected,
                actual: bytes.len(),
            });
        }
        Ok(ArrayData {
            dtype,
            shape,
            bytes,
            path,
        })
    }

    /// Number of samples (length of the first axis).
    pub fn num_samples(&self) -> usize {
        self.shape[0]
    }

    /// Shape of one sample (all axes but the first).
    pub fn sample_shape(&self) -> &[usize] {
        &self.shape[1..]
    }

    /// Elements per sample.
    pub fn sample_len(&self) -> usize {
        self.shape[1..].iter().product()
    }

    /// Bytes per sample.
    pub fn sample_bytes(&self) -> usize {
        self.sample_len() * self.dtype.size()
    }

    /// All bytes, little-endian, C order.
    pub fn raw(&self) -> &[u8] {
        self.bytes.as_slice()
    }

    /// For an array in a memory-mapped file: errors if the file's length changed since
    /// it was mapped (see [`MappedFile::check_len`]). Call before reading a batch.
    pub fn check_mapped(&self) -> Result<(), FormatError> {
        match &self.bytes {
            Bytes::Mapped { map, .. } => map.check_len(),
            Bytes::Owned(_) => Ok(()),
        }
    }

    /// Zero-copy bytes of samples `start..end`.
    ///
    /// # Panics
    /// If `start > end` or `end > num_samples()` (a caller bug, like slicing).
    pub fn samples_raw(&self, start: usize, end: usize) -> &[u8] {
        assert!(
            start <= end && end <= self.num_samples(),
            "samples {start}..{end} out of range for {} samples",
            self.num_samples()
        );
        let sb = self.sample_bytes();
        &self.raw()[start * sb..end * sb]
    }

    /// Clears `out` and fills it with the samples at `indices` (in that
    /// order, repeats allowed) converted to f32 — the batch-assembly path.
    ///
    /// # Panics
    /// If an index is `>= num_samples()`.
    pub fn gather_f32(&self, indices: &[usize], out: &mut Vec<f32>) {
        out.clear();
        out.reserve(indices.len() * self.sample_len());
        for &i in indices {
            extend_f32(self.dtype, self.samples_raw(i, i + 1), out);
        }
    }

    /// Clears `out` and fills it with samples `start..end` converted to f32.
    ///
    /// # Panics
    /// Same as [`ArrayData::samples_raw`].
    pub fn range_f32(&self, start: usize, end: usize, out: &mut Vec<f32>) {
        out.clear();
        let bytes = self.samples_raw(start, end);
        out.reserve(bytes.len() / self.dtype.size());
        extend_f32(self.dtype, bytes, out);
    }

    /// Interprets the array as class ids, one per sample (shape `(n,)` or
    /// `(n, 1)`). Float labels are accepted when they hold exact integers,
    /// since many tools save class ids as floats.
    pub fn to_u32_labels(&self) -> Result<Vec<u32>, FormatError> {
        if self.sample_len() != 1 {
            return Err(FormatError::LabelShape {
                path: self.path.clone(),
                shape: fmt_shape(&self.shape),
                per_sample: self.sample_len(),
            });
        }
        let bad = |index: usize, value: String, reason: &'static str| FormatError::BadLabel {
            path: self.path.clone(),
            index,
            value,
            reason,
        };
        let from_i64 = |index: usize, v: i64| -> Result<u32, FormatError> {
            if v < 0 {
                Err(bad(index, v.to_string(), "negative"))
            } else {
                u32::try_from(v).map_err(|_| bad(index, v.to_string(), "larger than u32::MAX"))
            }
        };
        let from_f64 = |index: usize, v: f64| -> Result<u32, FormatError> {
            if !v.is_finite() {
                Err(bad(index, v.to_string(), "not finite"))
            } else if v.fract() != 0.0 {
                Err(bad(index, v.to_string(), "not an integer"))
            } else if v < 0.0 {
                Err(bad(index, v.to_string(), "negative"))
            } else if v > u32::MAX as f64 {
                Err(bad(index, v.to_string(), "larger than u32::MAX"))
            } else {
                Ok(v as u32)
            }
        };
        let raw = self.raw();
        let mut out = Vec::with_capacity(self.num_samples());
        match self.dtype {
            DType::U8 => out.extend(raw.iter().map(|&b| u32::from(b))),
            DType::I32 => {
                for (i, c) in raw.chunks_exact(4).enumerate() {
                    out.push(from_i64(i, i64::from(i32::from_le_bytes(arr(c))))?);
                }
            }
            DType::I64 => {
                for (i, c) in raw.chunks_exact(8).enumerate() {
                    out.push(from_i64(i, i64::from_le_bytes(arr(c)))?);
                }
            }
            DType::F16 => {
                for (i, c) in raw.chunks_exact(2).enumerate() {
                    out.push(from_f64(i, half::f16::from_le_bytes(arr(c)).to_f64())?);
                }
            }
            DType::F32 => {
                for (i, c) in raw.chunks_exact(4).enumerate() {
                    out.push(from_f64(i, f64::from(f32::from_le_bytes(arr(c))))?);
                }
            }
            DType::F64 => {
                for (i, c) in raw.chunks_exact(8).enumerate() {
                    out.push(from_f64(i, f64::from_le_bytes(arr(c)))?);
                }
            }
        }
        Ok(out)
    }
}

/// Copies a chunk into a fixed array. Callers use `chunks_exact(N)`, so the
/// length always matches; going through byte arrays (not pointer casts)
/// keeps reads correct at any alignment.
#[inline(always)]
fn arr<const N: usize>(c: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(c);
    a
}

/// Appends little-endian `bytes` of `dtype` to `out` as f32. Works for any
/// alignment of `bytes` (mapped files may place data at odd offsets).
pub fn extend_f32(dtype: DType, bytes: &[u8], out: &mut Vec<f32>) {
    match dtype {
        DType::U8 => out.extend(bytes.iter().map(|&b| f32::from(b))),
        DType::F16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes(arr(c)).to_f32()),
        ),
        DType::F32 => out.extend(bytes.chunks_exact(4).map(|c| f32::from_le_bytes(arr(c)))),
        DType::F64 => out.extend(
            bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(arr(c)) as f32),
        ),
        DType::I32 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(arr(c)) as f32),
        ),
        DType::I64 => out.extend(
            bytes
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(arr(c)) as f32),
        ),
    }
}

/// Helpers shared by the format tests (no tempfile crate: a directory under
/// the system temp dir, unique per test name and process, removed on drop).
#[cfg(test)]
pub(crate) mod test_util {
    use std::path::{Path, PathBuf};

    pub(crate) struct TestDir(PathBuf);

    impl std::ops::Deref for TestDir {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    pub(crate) fn test_dir(name: &str) -> TestDir {
        let dir =
            std::env::temp_dir().join(format!("deeptrain-formats-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TestDir(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(dtype: DType, shape: Vec<usize>, bytes: Vec<u8>) -> ArrayData {
        ArrayData::new("mem", dtype, shape, Bytes::Owned(Arc::new(bytes))).unwrap()
    }

    #[test]
    fn shape_formatting_matches_numpy() {
        assert_eq!(fmt_shape(&[]), "()");
        assert_eq!(fmt_shape(&[5]), "(5,)");
        assert_eq!(fmt_shape(&[100, 28, 28]), "(100, 28, 28)");
    }

    #[test]
    fn new_checks_invariants() {
        let e = ArrayData::new(
            "x.bin",
            DType::F32,
            vec![2, 3],
            Bytes::Owned(Arc::new(vec![0; 20])),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "x.bin: shape (2, 3) of f32 needs 24 bytes but the buffer holds 20 bytes"
        );
        let e = ArrayData::new("x.bin", DType::U8, vec![], Bytes::Owned(Arc::new(vec![1])))
            .unwrap_err()
            .to_string();
        assert!(e.contains("shape () has no sample axis"), "{e}");
        let e = ArrayData::new(
            "x.bin",
            DType::F64,
            vec![usize::MAX, 2],
            Bytes::Owned(Arc::new(vec![])),
        )
        .unwrap_err();
        assert!(matches!(e, FormatError::SizeOverflow { .. }), "{e}");
        // Found with the npy fuzz target (fuzz/corpus/npy/regression-empty-overflowing-sample):
        // an empty array whose samples would overflow was accepted, and `sample_len` then
        // panicked (debug) or wrapped to a wrong width (release).
        let e = ArrayData::new(
            "x.npy",
            DType::F32,
            vec![0, 1 << 33, 1 << 33],
            Bytes::Owned(Arc::new(vec![])),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "x.npy: shape (0, 8589934592, 8589934592) of f32 is too large to address \
             (its byte size overflows usize)"
        );
        assert_eq!(byte_len(&[0, 1 << 33, 1 << 33], DType::U8), None);
        assert_eq!(byte_len(&[0, 1 << 20, 1 << 20], DType::F64), Some(0));
        assert_eq!(byte_len(&[3, 0, 5], DType::I32), Some(0));
        assert_eq!(byte_len(&[3, 5], DType::I32), Some(60));
        assert_eq!(byte_len(&[usize::MAX], DType::U8), Some(usize::MAX));
    }

    #[test]
    fn sample_accessors_and_conversion() {
        let vals: Vec<i32> = (0..12).map(|v| v - 3).collect();
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let a = owned(DType::I32, vec![4, 3], bytes);
        assert_eq!(a.num_samples(), 4);
        assert_eq!(a.sample_shape(), &[3]);
        assert_eq!(a.sample_bytes(), 12);
        assert_eq!(a.samples_raw(1, 2), &a.raw()[12..24]);
        let mut out = vec![99.0];
        a.gather_f32(&[3, 0, 3], &mut out);
        assert_eq!(out, [6.0, 7.0, 8.0, -3.0, -2.0, -1.0, 6.0, 7.0, 8.0]);
        a.range_f32(1, 3, &mut out);
        assert_eq!(out, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        a.range_f32(2, 2, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn every_dtype_converts_at_unaligned_offsets() {
        let vals = [1.5f64, -2.0, 65504.0, 0.25];
        let encode = |dtype: DType| -> Vec<u8> {
            vals.iter()
                .flat_map(|&v| match dtype {
                    DType::F32 => (v as f32).to_le_bytes().to_vec(),
                    DType::F64 => v.to_le_bytes().to_vec(),
                    DType::F16 => half::f16::from_f64(v).to_le_bytes().to_vec(),
                    DType::U8 => vec![v.abs() as u8],
                    DType::I32 => (v as i32).to_le_bytes().to_vec(),
                    DType::I64 => (v as i64).to_le_bytes().to_vec(),
                })
                .collect()
        };
        for dtype in [
            DType::F32,
            DType::F64,
            DType::F16,
            DType::U8,
            DType::I32,
            DType::I64,
        ] {
            let expected: Vec<f32> = vals
                .iter()
                .map(|&v| match dtype {
                    DType::U8 => v.abs() as u8 as f32,
                    DType::I32 | DType::I64 => v.trunc() as f32,
                    _ => v as f32,
                })
                .collect();
            for shift in 0..8 {
                let mut buf = vec![0xAAu8; shift];
                buf.extend(encode(dtype));
                let mut out = Vec::new();
                extend_f32(dtype, &buf[shift..], &mut out);
                assert_eq!(out, expected, "{dtype} at offset {shift}");
            }
        }
    }

    #[test]
    fn labels_from_ints_and_floats() {
        let a = owned(DType::U8, vec![3], vec![0, 9, 255]);
        assert_eq!(a.to_u32_labels().unwrap(), [0, 9, 255]);
        let a = owned(
            DType::F32,
            vec![3, 1],
            [2.0f32, 0.0, 7.0]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        );
        assert_eq!(a.to_u32_labels().unwrap(), [2, 0, 7]);
        let a = owned(
            DType::I64,
            vec![3],
            [1i64, -4, 2].iter().flat_map(|v| v.to_le_bytes()).collect(),
        );
        assert_eq!(
            a.to_u32_labels().unwrap_err().to_string(),
            "mem: label -4 at index 1 is not a valid class id: negative"
        );
        let a = owned(
            DType::F64,
            vec![2],
            [1.0f64, 2.5].iter().flat_map(|v| v.to_le_bytes()).collect(),
        );
        assert_eq!(
            a.to_u32_labels().unwrap_err().to_string(),
            "mem: label 2.5 at index 1 is not a valid class id: not an integer"
        );
        let a = owned(DType::U8, vec![2, 2], vec![0; 4]);
        assert!(matches!(
            a.to_u32_labels().unwrap_err(),
            FormatError::LabelShape { per_sample: 2, .. }
        ));
    }

    #[test]
    fn arrays_can_be_shared_with_worker_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ArrayData>();
        assert_send_sync::<FormatError>();
    }

    #[test]
    fn dtype_names() {
        assert_eq!(DType::F16.name(), "f16");
        assert_eq!(DType::I64.size(), 8);
    }
}
