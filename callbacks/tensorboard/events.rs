//! TensorBoard event-file writer, plus a small strict reader for tests.
//!
//! Why hand-rolled: the format is tiny (TFRecord framing + a handful of
//! protobuf messages), and pulling in a protobuf toolchain for it would cost
//! far more in build time than the ~200 lines of encoding below.
//!
//! File layout (TFRecord): every record is
//! `u64 LE length | u32 LE masked crc32c(length bytes) | data | u32 LE masked crc32c(data)`,
//! and every `data` is one serialized `tensorboard.Event`
//! (`tensorboard/compat/proto/event.proto`). The first record carries
//! `file_version = "brain.Event:2"`, which TensorBoard uses to recognise the file.
//!
//! Protobuf field numbers used here (checked against tensorboard 2.21's
//! generated `*_pb2` descriptors):
//! - `Event`: 1 wall_time double, 2 step int64, 3 file_version string, 5 summary.
//! - `Summary`: 1 repeated value.
//! - `Summary.Value`: 1 tag, 2 simple_value float, 5 histo, 8 tensor, 9 metadata
//!   (simple_value / histo / tensor are a oneof, so they are written even when zero).
//! - `HistogramProto`: 1 min, 2 max, 3 num, 4 sum, 5 sum_squares (doubles),
//!   6 bucket_limit, 7 bucket (packed repeated doubles).
//! - `SummaryMetadata`: 1 plugin_data; `PluginData`: 1 plugin_name.
//! - `TensorProto`: 1 dtype (DT_STRING = 7), 2 tensor_shape, 8 string_val.
//!
//! Non-oneof scalar fields are omitted when zero (canonical proto3), so the
//! bytes match what Python's protobuf would serialize for the same message.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Errors from writing or reading event files; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum TbError {
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

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> TbError + 'a {
    move |source| TbError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

// ---------------------------------------------------------------------------
// CRC32C (Castagnoli), as required by TFRecord framing.
// ---------------------------------------------------------------------------

const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// Plain CRC-32C (reflected polynomial 0x82F63B78).
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc = CRC32C_TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// TFRecord's masked CRC: rotating and offsetting keeps a CRC of data that
/// itself contains CRCs from being trivially zero.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    crc32c(data).rotate_right(15).wrapping_add(0xa282_ead8)
}

// ---------------------------------------------------------------------------
// Histogram
// ---------------------------------------------------------------------------

/// A `HistogramProto`. `bucket[i]` counts values in `[bucket_limit[i-1], bucket_limit[i])`;
/// TensorBoard uses `min` / `max` as the outer edges of the first / last bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    pub min: f64,
    pub max: f64,
    pub num: f64,
    pub sum: f64,
    pub sum_squares: f64,
    pub bucket_limit: Vec<f64>,
    pub bucket: Vec<f64>,
}

/// TensorFlow's default bucket limits: `±1e-12 * 1.1^k` up to 1e20, 0, and
/// `±f64::MAX`. Same edges TF's own histogram summaries use, so runs written by
/// either look alike; each bucket is 10% wide, i.e. fine resolution at any scale.
fn default_bucket_limits() -> &'static [f64] {
    static LIMITS: OnceLock<Vec<f64>> = OnceLock::new();
    LIMITS.get_or_init(|| {
        let mut pos = Vec::new();
        let mut v = 1.0e-12;
        while v < 1.0e20 {
            pos.push(v);
            v *= 1.1;
        }
        pos.push(f64::MAX);
        let mut all: Vec<f64> = pos.iter().rev().map(|v| -v).collect();
        all.push(0.0);
        all.extend_from_slice(&pos);
        all
    })
}

impl Histogram {
    /// Builds a histogram on TensorFlow's default exponential buckets (see
    /// `default_bucket_limits`): interior runs of empty buckets are collapsed
    /// into one as TF does, and empty buckets at either end are dropped.
    ///
    /// Non-finite values (NaN, ±Inf) are skipped: they have no bucket and would
    /// poison min/max/sum. With no finite values the result is an empty
    /// histogram (`num = 0`, `min = max = 0`, one empty bucket up to `f64::MAX`),
    /// which TensorBoard displays as having no data.
    pub fn from_values(values: &[f32]) -> Histogram {
        let limits = default_bucket_limits();
        let mut counts = vec![0.0f64; limits.len()];
        let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
        let (mut num, mut sum, mut sum_squares) = (0.0f64, 0.0f64, 0.0f64);
        for &v in values {
            if !v.is_finite() {
                continue;
            }
            let x = f64::from(v);
            // upper_bound, as in TF: bucket i holds [limit[i-1], limit[i]).
            let idx = limits.partition_point(|&l| l <= x).min(limits.len() - 1);
            counts[idx] += 1.0;
            min = min.min(x);
            max = max.max(x);
            num += 1.0;
            sum += x;
            sum_squares += x * x;
        }
        if num == 0.0 {
            return Histogram {
                min: 0.0,
                max: 0.0,
                num: 0.0,
                sum: 0.0,
                sum_squares: 0.0,
                bucket_limit: vec![f64::MAX],
                bucket: vec![0.0],
            };
        }
        // Collapse each run of empty buckets into one (TF's EncodeToProto),
        // and, unlike TF, drop the empty runs at both ends: TensorBoard's fast
        // (Rust) loader uses `min`/`max` as outer edges without trimming, so
        // TF's leading/trailing empty buckets show up as "backwards" bins.
        let first = counts.iter().position(|&c| c > 0.0).unwrap_or(0);
        let last = counts.iter().rposition(|&c| c > 0.0).unwrap_or(0);
        let (mut bucket_limit, mut bucket) = (Vec::new(), Vec::new());
        let mut i = first;
        while i <= last {
            let mut end = limits[i];
            let count = counts[i];
            i += 1;
            if count <= 0.0 {
                while i <= last && counts[i] <= 0.0 {
                    end = limits[i];
                    i += 1;
                }
            }
            bucket_limit.push(end);
            bucket.push(count);
        }
        Histogram {
            min,
            max,
            num,
            sum,
            sum_squares,
            bucket_limit,
            bucket,
        }
    }
}

// ---------------------------------------------------------------------------
// Protobuf encoding (just the wire types we need).
// ---------------------------------------------------------------------------

const WIRE_VARINT: u8 = 0;
const WIRE_FIXED64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_FIXED32: u8 = 5;
const DT_STRING: u64 = 7;
const FILE_VERSION: &str = "brain.Event:2";

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn put_key(buf: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(buf, (u64::from(field) << 3) | u64::from(wire));
}

/// Omits zero (canonical proto3); `-0.0` is kept, as protobuf does.
fn put_f64(buf: &mut Vec<u8>, field: u32, v: f64) {
    if v.to_bits() != 0 {
        put_key(buf, field, WIRE_FIXED64);
        buf.extend_from_slice(&v.to_le_bytes());
    }
}

fn put_i64(buf: &mut Vec<u8>, field: u32, v: i64) {
    if v != 0 {
        put_key(buf, field, WIRE_VARINT);
        put_varint(buf, v as u64);
    }
}

fn put_bytes(buf: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key(buf, field, WIRE_LEN);
    put_varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

fn put_packed_f64(buf: &mut Vec<u8>, field: u32, vs: &[f64]) {
    if vs.is_empty() {
        return;
    }
    put_key(buf, field, WIRE_LEN);
    put_varint(buf, (vs.len() * 8) as u64);
    for v in vs {
        buf.extend_from_slice(&v.to_le_bytes());
    }
}

fn encode_file_version_event(wall_time: f64) -> Vec<u8> {
    let mut ev = Vec::new();
    put_f64(&mut ev, 1, wall_time);
    put_bytes(&mut ev, 3, FILE_VERSION.as_bytes());
    ev
}

/// `Event{wall_time, step, summary: Summary{value: [value]}}`; fields in number
/// order so the bytes are canonical.
fn encode_summary_event(wall_time: f64, step: i64, value: &[u8]) -> Vec<u8> {
    let mut summary = Vec::with_capacity(value.len() + 4);
    put_bytes(&mut summary, 1, value);
    let mut ev = Vec::with_capacity(summary.len() + 24);
    put_f64(&mut ev, 1, wall_time);
    put_i64(&mut ev, 2, step);
    put_bytes(&mut ev, 5, &summary);
    ev
}

fn encode_scalar_value(tag: &str, value: f32) -> Vec<u8> {
    let mut v = Vec::with_capacity(tag.len() + 8);
    put_bytes(&mut v, 1, tag.as_bytes());
    // Oneof member: always present, even for 0.0.
    put_key(&mut v, 2, WIRE_FIXED32);
    v.extend_from_slice(&value.to_le_bytes());
    v
}

fn encode_histogram_value(tag: &str, h: &Histogram) -> Vec<u8> {
    let mut histo = Vec::new();
    put_f64(&mut histo, 1, h.min);
    put_f64(&mut histo, 2, h.max);
    put_f64(&mut histo, 3, h.num);
    put_f64(&mut histo, 4, h.sum);
    put_f64(&mut histo, 5, h.sum_squares);
    put_packed_f64(&mut histo, 6, &h.bucket_limit);
    put_packed_f64(&mut histo, 7, &h.bucket);
    let mut v = Vec::with_capacity(histo.len() + tag.len() + 8);
    put_bytes(&mut v, 1, tag.as_bytes());
    put_bytes(&mut v, 5, &histo);
    v
}

/// Text summaries are scalar DT_STRING tensors tagged with the "text" plugin;
/// TensorBoard's text dashboard keys off `plugin_name`.
fn encode_text_value(tag: &str, text: &str) -> Vec<u8> {
    let mut tensor = Vec::with_capacity(text.len() + 8);
    put_key(&mut tensor, 1, WIRE_VARINT);
    put_varint(&mut tensor, DT_STRING);
    put_bytes(&mut tensor, 2, &[]); // empty TensorShapeProto = scalar
    put_bytes(&mut tensor, 8, text.as_bytes());
    let mut plugin_data = Vec::new();
    put_bytes(&mut plugin_data, 1, b"text");
    let mut metadata = Vec::new();
    put_bytes(&mut metadata, 1, &plugin_data);
    let mut v = Vec::with_capacity(tensor.len() + metadata.len() + tag.len() + 8);
    put_bytes(&mut v, 1, tag.as_bytes());
    put_bytes(&mut v, 8, &tensor);
    put_bytes(&mut v, 9, &metadata);
    v
}

fn write_record(out: &mut impl Write, data: &[u8]) -> io::Result<()> {
    let len = (data.len() as u64).to_le_bytes();
    out.write_all(&len)?;
    out.write_all(&masked_crc32c(&len).to_le_bytes())?;
    out.write_all(data)?;
    out.write_all(&masked_crc32c(data).to_le_bytes())
}

// ---------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------

/// Seconds since the Unix epoch; 0.0 if the system clock is before 1970.
pub fn system_wall_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Keeps file names unique when several writers start in the same second.
static FILE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Host name for the file name (TensorBoard convention); std has no
/// gethostname, so read what Linux/env expose and fall back to "deeptrain".
fn host_name() -> String {
    let raw = fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_default();
    let clean: String = raw
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() {
        "deeptrain".to_string()
    } else {
        clean
    }
}

/// Writes one TensorBoard event file. Records are buffered; call
/// [`EventWriter::flush`] (e.g. at epoch end) for TensorBoard to see them
/// live. Drop flushes too, ignoring errors.
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
    clock: Box<dyn FnMut() -> f64 + Send>,
}

impl std::fmt::Debug for EventWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventWriter")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl EventWriter {
    /// Creates `dir` (and parents) and a new
    /// `events.out.tfevents.{unix_secs}.{host}.{pid}.{counter}` file in it,
    /// starting with the `file_version` record. Never overwrites a file.
    pub fn create(dir: &Path) -> Result<EventWriter, TbError> {
        Self::create_with_clock(dir, system_wall_time)
    }

    /// Like [`EventWriter::create`], but every `wall_time` (including the
    /// first record's) comes from `clock`, so tests can get deterministic bytes.
    pub fn create_with_clock(
        dir: &Path,
        clock: impl FnMut() -> f64 + Send + 'static,
    ) -> Result<EventWriter, TbError> {
        fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let host = host_name();
        let pid = std::process::id();
        let (path, file) = loop {
            let n = FILE_COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!("events.out.tfevents.{secs}.{host}.{pid}.{n}"));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => break (path, file),
                // Another writer (or an earlier run with a reused pid) got there first.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < u64::MAX => continue,
                Err(e) => return Err(io_err("create event file", &path)(e)),
            }
        };
        let mut w = EventWriter {
            path,
            out: BufWriter::new(file),
            clock: Box::new(clock),
        };
        let wall_time = (w.clock)();
        w.write_event(&encode_file_version_event(wall_time))?;
        // Flush the header now so TensorBoard recognises the file immediately.
        w.flush()?;
        Ok(w)
    }

    /// The event file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the wall-time source for subsequent records.
    pub fn set_clock(&mut self, clock: impl FnMut() -> f64 + Send + 'static) {
        self.clock = Box::new(clock);
    }

    /// Scalar at `step`; stored as f32 (`simple_value` is a proto float).
    pub fn add_scalar(&mut self, tag: &str, value: f64, step: i64) -> Result<(), TbError> {
        let wall_time = (self.clock)();
        self.add_scalar_at(tag, value, step, wall_time)
    }

    /// [`EventWriter::add_scalar`] with an explicit wall time (seconds since epoch).
    pub fn add_scalar_at(
        &mut self,
        tag: &str,
        value: f64,
        step: i64,
        wall_time: f64,
    ) -> Result<(), TbError> {
        let value = encode_scalar_value(tag, value as f32);
        self.write_event(&encode_summary_event(wall_time, step, &value))
    }

    /// Histogram of `values` (see [`Histogram::from_values`]: TF default
    /// exponential buckets, non-finite values skipped, empty input allowed).
    pub fn add_histogram(&mut self, tag: &str, values: &[f32], step: i64) -> Result<(), TbError> {
        let wall_time = (self.clock)();
        self.add_histogram_at(tag, values, step, wall_time)
    }

    /// [`EventWriter::add_histogram`] with an explicit wall time.
    pub fn add_histogram_at(
        &mut self,
        tag: &str,
        values: &[f32],
        step: i64,
        wall_time: f64,
    ) -> Result<(), TbError> {
        self.add_histogram_proto_at(tag, &Histogram::from_values(values), step, wall_time)
    }

    /// Writes a precomputed histogram as-is (e.g. one accumulated over batches).
    pub fn add_histogram_proto_at(
        &mut self,
        tag: &str,
        histogram: &Histogram,
        step: i64,
        wall_time: f64,
    ) -> Result<(), TbError> {
        let value = encode_histogram_value(tag, histogram);
        self.write_event(&encode_summary_event(wall_time, step, &value))
    }

    /// Text (rendered as Markdown by TensorBoard's text dashboard).
    pub fn add_text(&mut self, tag: &str, text: &str, step: i64) -> Result<(), TbError> {
        let wall_time = (self.clock)();
        self.add_text_at(tag, text, step, wall_time)
    }

    /// [`EventWriter::add_text`] with an explicit wall time.
    pub fn add_text_at(
        &mut self,
        tag: &str,
        text: &str,
        step: i64,
        wall_time: f64,
    ) -> Result<(), TbError> {
        let value = encode_text_value(tag, text);
        self.write_event(&encode_summary_event(wall_time, step, &value))
    }

    /// Pushes buffered records to the OS so TensorBoard can read them.
    pub fn flush(&mut self) -> Result<(), TbError> {
        self.out
            .flush()
            .map_err(io_err("flush event file", &self.path))
    }

    fn write_event(&mut self, event: &[u8]) -> Result<(), TbError> {
        write_record(&mut self.out, event).map_err(io_err("write event file", &self.path))
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        // Best effort: Drop cannot report errors; call flush() to see them.
        let _ = self.out.flush();
    }
}

// ---------------------------------------------------------------------------
// Reader (strict: any CRC error or truncation is an error, unlike TensorBoard,
// which silently stops at the first bad record).
// ---------------------------------------------------------------------------

/// All record payloads in `path`, after verifying both CRCs of every record.
pub fn read_records(path: &Path) -> Result<Vec<Vec<u8>>, TbError> {
    Ok(read_records_with_offsets(path)?
        .into_iter()
        .map(|(_, data)| data)
        .collect())
}

fn read_records_with_offsets(path: &Path) -> Result<Vec<(u64, Vec<u8>)>, TbError> {
    let bytes = fs::read(path).map_err(io_err("read", path))?;
    let mut records = Vec::new();
    let mut pos = 0usize;
    while pos < bytes.len() {
        let offset = pos as u64;
        let rest = &bytes[pos..];
        let truncated = |part, needed: usize| TbError::Truncated {
            path: path.to_path_buf(),
            offset,
            part,
            needed: needed as u64,
            available: rest.len() as u64,
        };
        let crc_err = |part, stored, computed| TbError::Crc {
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
pub fn read_events(path: &Path) -> Result<Vec<DecodedEvent>, TbError> {
    read_records_with_offsets(path)?
        .into_iter()
        .map(|(offset, data)| {
            decode_event(&data).map_err(|reason| TbError::Decode {
                path: path.to_path_buf(),
                offset,
                reason,
            })
        })
        .collect()
}

/// All scalars in file order as `(tag, step, value)`.
pub fn read_scalars(path: &Path) -> Result<Vec<(String, i64, f32)>, TbError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Self-cleaning temp dir (std only).
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            static N: AtomicU64 = AtomicU64::new(0);
            let dir = std::env::temp_dir().join(format!(
                "deeptrain_tb_{}_{}_{}_{name}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed),
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0)
            ));
            fs::create_dir_all(&dir).expect("create temp dir");
            TempDir(dir)
        }
        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// Fixed clock ticking 1 s per call, for deterministic files.
    fn ticking_clock() -> impl FnMut() -> f64 + Send + 'static {
        let mut t = 1_700_000_000.0;
        move || {
            t += 1.0;
            t
        }
    }

    /// Writes the sample run used by several tests (and the Python interop).
    fn write_sample(dir: &Path) -> PathBuf {
        let mut w = EventWriter::create_with_clock(dir, ticking_clock()).expect("create");
        for step in 0..5i64 {
            w.add_scalar("loss", 1.0 / (step as f64 + 1.0), step)
                .expect("scalar");
            w.add_scalar("acc", 0.1 * step as f64, step)
                .expect("scalar");
        }
        let values = [-2.5f32, -0.0, 0.0, 0.001, 1.0, 1.0, 3.0, 100.0, f32::NAN];
        w.add_histogram("weights", &values, 4).expect("histogram");
        w.add_text("notes", "hello **tensorboard**", 4)
            .expect("text");
        let path = w.path().to_path_buf();
        drop(w);
        path
    }

    #[test]
    fn crc32c_vectors() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62A8_AB43);
        assert_eq!(crc32c(b""), 0);
        // Masked values as computed by TensorBoard's Python `masked_crc32c`.
        assert_eq!(masked_crc32c(b"123456789"), 0xC78A_B0E5);
        assert_eq!(masked_crc32c(&[0u8; 8]), 0x0798_0329);
    }

    #[test]
    fn varint_encoding_of_negative_step() {
        let mut b = Vec::new();
        put_i64(&mut b, 2, -1);
        assert_eq!(b.len(), 11); // key + 10-byte two's complement varint
        let f = fields(&b).expect("decode");
        assert!(matches!(f[0], (2, Field::Varint(v)) if v as i64 == -1));
    }

    /// Golden bytes produced by Python protobuf (tensorboard 2.21) for the same
    /// messages, i.e. `Event(...).SerializeToString()`.
    #[test]
    fn encoding_matches_python_protobuf() {
        assert_eq!(
            encode_summary_event(1.5, 3, &encode_scalar_value("a/b", 0.25)),
            [
                0x09, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f, 0x10, 0x03, 0x2a, 0x0c, 0x0a, 0x0a, 0x0a, 0x03,
                b'a', b'/', b'b', 0x15, 0, 0, 0x80, 0x3e
            ]
        );
        assert_eq!(
            encode_file_version_event(2.0),
            [
                0x09, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x1a, 0x0d, b'b', b'r', b'a', b'i', b'n', b'.',
                b'E', b'v', b'e', b'n', b't', b':', b'2'
            ]
        );
        assert_eq!(
            encode_text_value("t", "hi"),
            [
                0x0a, 0x01, b't', 0x42, 0x08, 0x08, 0x07, 0x12, 0x00, 0x42, 0x02, b'h', b'i', 0x4a,
                0x08, 0x0a, 0x06, 0x0a, 0x04, b't', b'e', b'x', b't'
            ]
        );
    }

    #[test]
    fn round_trip_scalars_histogram_text() {
        let dir = TempDir::new("roundtrip");
        let path = write_sample(dir.path());
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("file name");
        assert!(name.starts_with("events.out.tfevents."), "{name}");

        let records = read_records(&path).expect("records");
        assert_eq!(records.len(), 1 + 10 + 1 + 1);

        let scalars = read_scalars(&path).expect("scalars");
        assert_eq!(scalars.len(), 10);
        for step in 0..5i64 {
            let i = step as usize * 2;
            assert_eq!(
                scalars[i],
                ("loss".to_string(), step, (1.0 / (step as f64 + 1.0)) as f32)
            );
            assert_eq!(
                scalars[i + 1],
                ("acc".to_string(), step, (0.1 * step as f64) as f32)
            );
        }

        let events = read_events(&path).expect("events");
        assert_eq!(events[0].file_version.as_deref(), Some("brain.Event:2"));
        assert_eq!(events[0].wall_time, 1_700_000_001.0);
        assert_eq!(events[1].wall_time, 1_700_000_002.0);

        let ValueData::Histogram(h) = &events[11].values[0].data else {
            panic!("expected histogram, got {:?}", events[11]);
        };
        assert_eq!(events[11].values[0].tag, "weights");
        assert_eq!(events[11].step, 4);
        assert_eq!(h.num, 8.0); // NaN skipped
        assert_eq!((h.min, h.max), (-2.5, 100.0));
        assert!((h.sum - (-2.5 + 0.001f32 as f64 + 1.0 + 1.0 + 3.0 + 100.0)).abs() < 1e-12);
        assert_eq!(h.bucket.iter().sum::<f64>(), 8.0);
        assert_eq!(h.bucket.len(), h.bucket_limit.len());
        assert!(h.bucket_limit.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(
            h,
            &Histogram::from_values(&[-2.5, -0.0, 0.0, 0.001, 1.0, 1.0, 3.0, 100.0])
        );

        assert_eq!(
            events[12].values[0],
            DecodedValue {
                tag: "notes".into(),
                data: ValueData::Text("hello **tensorboard**".into())
            }
        );
    }

    #[test]
    fn deterministic_bytes_with_fixed_clock() {
        let dir = TempDir::new("det");
        let a = fs::read(write_sample(dir.path())).expect("read a");
        let b = fs::read(write_sample(dir.path())).expect("read b");
        assert_eq!(a, b);
    }

    #[test]
    fn histogram_edge_cases() {
        let empty = Histogram::from_values(&[]);
        assert_eq!(empty.num, 0.0);
        assert_eq!(empty.bucket_limit, vec![f64::MAX]);
        assert_eq!(empty, Histogram::from_values(&[f32::NAN, f32::INFINITY]));

        let h = Histogram::from_values(&[f32::MAX, f32::MIN, f32::NEG_INFINITY]);
        assert_eq!(h.num, 2.0);
        assert_eq!(h.bucket.iter().sum::<f64>(), 2.0);

        // Each value lands in the bucket whose right edge is just above it.
        let h = Histogram::from_values(&[-5.0, 1.0]);
        assert_eq!(h.bucket.len(), 3); // value, collapsed empty run, value
        assert!(h.bucket_limit[0] > -5.0 && h.bucket_limit[0] / -5.0 > 1.0 / 1.11);
        assert!(h.bucket_limit[2] > 1.0 && h.bucket_limit[1] <= 1.0);
        assert!(h.bucket_limit[2] / h.bucket_limit[1] < 1.11);
        // No empty buckets at either end (see `from_values`).
        let h = Histogram::from_values(&[0.5; 3]);
        assert_eq!(h.bucket, vec![3.0]);

        let dir = TempDir::new("hedge");
        let mut w = EventWriter::create(dir.path()).expect("create");
        w.add_histogram("empty", &[], 0).expect("empty");
        w.add_histogram("nan", &[f32::NAN], 1).expect("nan");
        w.flush().expect("flush");
        assert_eq!(read_events(w.path()).expect("read").len(), 3);
    }

    #[test]
    fn corrupt_byte_names_offset() {
        let dir = TempDir::new("corrupt");
        let path = write_sample(dir.path());
        let mut bytes = fs::read(&path).expect("read");
        let first_len = read_records(&path).expect("records")[0].len() + 16;
        // Flip a data byte of the second record.
        bytes[first_len + 20] ^= 0x01;
        fs::write(&path, &bytes).expect("write");
        let err = read_records(&path).expect_err("must fail");
        assert!(
            matches!(err, TbError::Crc { offset, part: "data", .. } if offset == first_len as u64),
            "{err}"
        );
        let msg = err.to_string();
        assert!(msg.contains(&format!("byte offset {first_len}")), "{msg}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");

        // Corrupt the length field instead: caught by the length CRC.
        let mut bytes = fs::read(&path).expect("read");
        bytes[first_len + 20] ^= 0x01;
        bytes[first_len] ^= 0x40;
        fs::write(&path, &bytes).expect("write");
        let err = read_scalars(&path).expect_err("must fail");
        assert!(matches!(err, TbError::Crc { part: "length", .. }), "{err}");
    }

    #[test]
    fn truncated_file_is_an_error() {
        let dir = TempDir::new("trunc");
        let path = write_sample(dir.path());
        let bytes = fs::read(&path).expect("read");
        let total = read_records(&path)
            .expect("ok")
            .iter()
            .map(|r| r.len() + 16)
            .sum::<usize>();
        assert_eq!(total, bytes.len());
        let last_start = total - (read_records(&path).expect("ok")[12].len() + 16);
        for cut in [bytes.len() - 1, last_start + 5, last_start + 13] {
            fs::write(&path, &bytes[..cut]).expect("write");
            let err = read_records(&path).expect_err("must fail");
            assert!(
                matches!(err, TbError::Truncated { offset, .. } if offset == last_start as u64),
                "{err}"
            );
            assert!(err.to_string().contains("truncated"), "{err}");
        }
    }

    #[test]
    fn io_errors_name_the_path() {
        let missing = std::env::temp_dir().join("deeptrain_tb_definitely_missing/events");
        let err = read_records(&missing).expect_err("missing");
        assert!(
            err.to_string().contains(&missing.display().to_string()),
            "{err}"
        );

        let dir = TempDir::new("ioerr");
        let file = dir.path().join("a_file");
        fs::write(&file, b"x").expect("write");
        let err = EventWriter::create(&file.join("sub")).expect_err("dir under a file");
        assert!(err.to_string().contains("a_file"), "{err}");
    }

    #[test]
    fn unique_file_names() {
        let dir = TempDir::new("unique");
        let a = EventWriter::create(dir.path()).expect("a");
        let b = EventWriter::create(dir.path()).expect("b");
        assert_ne!(a.path(), b.path());
    }

    /// Cross-checks our files with TensorBoard's own (strict) Python reader.
    /// Skips when tensorboard is not importable. Script path:
    /// `$DEEPTRAIN_TB_EVENTS_PY`, else `<crate root>/../shared/tools/tb_events.py`.
    #[test]
    fn tb_events_py_interop() {
        let has_tb = Command::new("python3")
            .args(["-c", "import tensorboard"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !has_tb {
            println!("skipped: tensorboard not installed");
            return;
        }
        let script = std::env::var_os("DEEPTRAIN_TB_EVENTS_PY")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/tools/tb_events.py")
            });
        assert!(
            script.is_file(),
            "tb_events.py not found at {}; set DEEPTRAIN_TB_EVENTS_PY",
            script.display()
        );
        let dir = TempDir::new("interop");
        let path = write_sample(dir.path());
        let out = Command::new("python3")
            .arg(&script)
            .arg(&path)
            .output()
            .expect("run python3");
        assert!(
            out.status.success(),
            "tb_events.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(json["records"], 13, "{json}");
        assert_eq!(json["file_version"], "brain.Event:2", "{json}");
        for (tag, f) in [
            ("loss", (|s: f64| 1.0 / (s + 1.0)) as fn(f64) -> f64),
            ("acc", |s: f64| 0.1 * s),
        ] {
            let series = json["scalars"][tag].as_array().expect("series");
            assert_eq!(series.len(), 5, "{json}");
            for (step, point) in series.iter().enumerate() {
                assert_eq!(point[0].as_i64(), Some(step as i64), "{json}");
                let expected = f64::from(f(step as f64) as f32);
                assert_eq!(point[1].as_f64(), Some(expected), "{tag} {json}");
            }
        }
        assert_eq!(json["histograms"], serde_json::json!(["weights"]), "{json}");
        assert_eq!(json["other"], serde_json::json!(["notes"]), "{json}");
    }
}
