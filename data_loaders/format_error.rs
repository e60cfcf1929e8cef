//! The error of every file reader (npy, idx, safetensors, CSV, memory maps): its own
//! file, because it names every way a data file can be wrong, with the numbers needed to
//! fix it, and that list is long.

use std::io;
use std::path::PathBuf;

use super::array::DType;

/// Errors of all file readers. Every variant carries the file path and the
/// concrete numbers involved so a message alone is enough to fix the file.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// An I/O operation failed.
    #[error("{}: cannot {action}: {source}", path.display())]
    Io {
        /// File or directory the operation was on.
        path: PathBuf,
        /// What was attempted, worded to follow "cannot": `"open"`, `"mmap"`, `"read"`,
        /// `"decompress gzip"`, `"rename into"`, and so on.
        action: &'static str,
        /// The underlying OS error.
        source: io::Error,
    },
    /// The file has 0 bytes.
    #[error("{}: file is empty (0 bytes); expected {format} data", path.display())]
    Empty {
        /// The empty file.
        path: PathBuf,
        /// Format it was read as: `"NumPy .npy"`, `"safetensors"`, `"CSV"`, `"idx"` or
        /// `"gzip"`.
        format: &'static str,
    },
    /// The file does not start with its format's magic bytes (or is too short to hold
    /// them): usually a file of another format, or a download error page.
    #[error("{}: not a valid {format} file: expected magic {expected} but the file starts with {found}", path.display())]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// Format it was read as: `"NumPy .npy"`, `"idx"` or `"gzip"`.
        format: &'static str,
        /// The magic the format requires, as text (e.g. `"1f 8b"`, `"\x93NUMPY"`).
        expected: String,
        /// The file's first bytes, written the same way (gzip: with the file length).
        found: String,
    },
    /// A format version this reader does not know (`.npy`: only 1.0, 2.0 and 3.0 are read).
    #[error("{}: unsupported {format} version {version}", path.display())]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Format name (`"NumPy .npy"`).
        format: &'static str,
        /// The version found, followed by the supported ones.
        version: String,
    },
    /// A `.npy` header dict that does not parse, or lacks or mistypes one of the keys
    /// `descr`, `fortran_order`, `shape`.
    #[error("{}: bad header {header:?}: {reason}", path.display())]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// The header text, without its trailing padding.
        header: String,
        /// What is wrong with it (e.g. `"missing key 'shape'"`).
        reason: String,
    },
    /// The file ends before its header does (a cut-off download or copy).
    #[error("{}: header ends at byte {header_end} but the file has only {file_len} bytes", path.display())]
    TruncatedHeader {
        /// The file.
        path: PathBuf,
        /// Byte offset where the header (as its own length fields say) ends.
        header_end: u64,
        /// Length of the file in bytes (less than `header_end`).
        file_len: u64,
    },
    /// An element type with no [`DType`]: idx i8/i16, a NumPy structured dtype or
    /// other `descr`, or big-endian multi-byte data.
    #[error("{}: unsupported dtype {dtype}: {reason}", path.display())]
    UnsupportedDType {
        /// The file.
        path: PathBuf,
        /// The type as the file spells it (e.g. `"'<u2'"`, `"idx type code 0x09 (i8)"`).
        dtype: String,
        /// What is supported, or how to convert the data before saving.
        reason: String,
    },
    /// A `.npy` saved in Fortran (column-major) order with 2 or more dimensions.
    #[error("{}: fortran_order is True for shape {shape}; only C-order arrays are supported (save with np.ascontiguousarray(a))", path.display())]
    FortranOrder {
        /// The file.
        path: PathBuf,
        /// The array's shape in NumPy notation (2 or more dimensions).
        shape: String,
    },
    /// A scalar array (shape `()`): there is no first axis to index samples by.
    #[error("{}: shape {shape} has no sample axis; arrays need at least one dimension (the first one indexes samples)", path.display())]
    NoSampleAxis {
        /// The file.
        path: PathBuf,
        /// The shape, `"()"`.
        shape: String,
    },
    /// `prod(shape) * dtype.size()` overflows `usize`: a corrupt header.
    #[error("{}: shape {shape} of {dtype} is too large to address (its byte size overflows usize)", path.display())]
    SizeOverflow {
        /// The file.
        path: PathBuf,
        /// The shape in NumPy notation, e.g. `"(100, 28, 28)"`.
        shape: String,
        /// Element type.
        dtype: DType,
    },
    /// Fewer data bytes follow the header than its shape and dtype need (a cut-off file),
    /// or a mapped window runs past the end of its map.
    #[error("{}: header says shape {shape} of {dtype} = {expected} bytes but only {actual} bytes follow the header", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// The shape in NumPy notation.
        shape: String,
        /// Element type.
        dtype: DType,
        /// Data bytes the shape needs.
        expected: u64,
        /// Data bytes present (less than `expected`).
        actual: u64,
    },
    /// More data bytes follow the header than its shape and dtype account for: the
    /// header does not describe the data, so the file is refused rather than cut.
    #[error("{}: header says shape {shape} of {dtype} = {expected} bytes but {actual} bytes follow the header ({} extra): the header lies about the shape", path.display(), actual - expected)]
    TrailingBytes {
        /// The file.
        path: PathBuf,
        /// The shape in NumPy notation.
        shape: String,
        /// Element type.
        dtype: DType,
        /// Data bytes the shape needs.
        expected: u64,
        /// Data bytes present (more than `expected`).
        actual: u64,
    },
    /// A buffer handed to [`ArrayData::new`] or `npy::write_npy` does not hold exactly
    /// `prod(shape) * dtype.size()` bytes.
    #[error("{}: shape {shape} of {dtype} needs {expected} bytes but the buffer holds {actual} bytes", path.display())]
    BufferSize {
        /// The file the array belongs to (or is to be written to).
        path: PathBuf,
        /// The shape in NumPy notation.
        shape: String,
        /// Element type.
        dtype: DType,
        /// Bytes the shape needs.
        expected: usize,
        /// Bytes the buffer holds.
        actual: usize,
    },
    /// The `safetensors` crate rejected the file (bad header JSON, offsets, coverage).
    #[error("{}: invalid safetensors file: {reason}", path.display())]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// The `safetensors` crate's message.
        reason: String,
    },
    /// One tensor of a valid safetensors file cannot be used (unsupported dtype, a
    /// scalar shape, or data that does not match its shape).
    #[error("{}: tensor {tensor:?}: {reason}", path.display())]
    Tensor {
        /// The file.
        path: PathBuf,
        /// The tensor's name (key) in the file.
        tensor: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A CSV data field that does not parse as a number (as f32; labels as i64 or f32).
    #[error("{}: line {line}, column {column}: cannot parse {text:?} as a number", path.display())]
    BadNumber {
        /// The file.
        path: PathBuf,
        /// 1-based line the record starts on, as an editor shows it.
        line: usize,
        /// 1-based column (field) number.
        column: usize,
        /// The field, trimmed.
        text: String,
    },
    /// A CSV data field that is empty after trimming: missing values are not imputed.
    #[error("{}: line {line}, column {column}: empty field (fill or drop missing values before loading)", path.display())]
    EmptyField {
        /// The file.
        path: PathBuf,
        /// 1-based line the record starts on.
        line: usize,
        /// 1-based column (field) number.
        column: usize,
    },
    /// A CSV record whose number of fields differs from the first record's.
    #[error("{}: line {line} has {actual} columns but line {first_line} has {expected}", path.display())]
    RaggedRow {
        /// The file.
        path: PathBuf,
        /// 1-based line of the offending record.
        line: usize,
        /// 1-based line of the first record (the header, if any), which sets the width.
        first_line: usize,
        /// Fields on `first_line`.
        expected: usize,
        /// Fields on `line`.
        actual: usize,
    },
    /// A memory-mapped file whose length changed after it was mapped (truncated or
    /// rewritten by another program while a run reads it). Found by
    /// [`MappedFile::check_len`] before a read, instead of the SIGBUS that touching a
    /// truncated map raises.
    #[error("{}: changed size under the run (was {was} bytes, now {now}); the run stops here: restore the file, then resume from the last checkpoint", path.display())]
    ChangedSize {
        /// The mapped file.
        path: PathBuf,
        /// Its length when it was mapped.
        was: u64,
        /// Its length now.
        now: u64,
    },
    /// Anything else, described by `reason`: CSV syntax or options (bad delimiter, no
    /// rows, unknown label column, unterminated quote, invalid UTF-8), a `.gz` path
    /// without a name before the suffix, a data file holding no samples.
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The file (or directory).
        path: PathBuf,
        /// What is wrong, with the line, column or value involved where there is one.
        reason: String,
    },
    /// A label that is not a class id (a `u32`), from [`ArrayData::to_u32_labels`].
    #[error("{}: label {value} at index {index} is not a valid class id: {reason}", path.display())]
    BadLabel {
        /// The labels file.
        path: PathBuf,
        /// 0-based index of the sample the label belongs to.
        index: usize,
        /// The label, as text.
        value: String,
        /// `"negative"`, `"not an integer"`, `"not finite"` or `"larger than u32::MAX"`.
        reason: &'static str,
    },
    /// Labels read as class ids have more (or fewer) than one value per sample.
    #[error("{}: labels need one value per sample but shape {shape} has {per_sample} values per sample", path.display())]
    LabelShape {
        /// The labels file.
        path: PathBuf,
        /// The labels' whole shape in NumPy notation.
        shape: String,
        /// Values per sample (product of all axes but the first; not 1).
        per_sample: usize,
    },
}

impl FormatError {
    /// Shorthand for wrapping an I/O error with the file and what we tried to do.
    pub fn io(path: impl Into<PathBuf>, action: &'static str, source: io::Error) -> Self {
        FormatError::Io {
            path: path.into(),
            action,
            source,
        }
    }
}
