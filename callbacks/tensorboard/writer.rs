//! The TensorBoard event-file writer: creates a uniquely named
//! `events.out.tfevents.*` file and appends scalar, histogram and text events to it,
//! each one protobuf-encoded (`proto.rs`) in a TFRecord frame (`record.rs`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::histogram::Histogram;
use super::proto::{
    encode_file_version_event, encode_histogram_value, encode_scalar_value, encode_summary_event,
    encode_text_value,
};
use super::record::write_record;

/// Errors from writing event files; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum TbError {
    /// A file-system operation on the event file or its directory failed.
    #[error("tensorboard events: cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done: `create directory`, `create event file`, `write event file`
        /// or `flush event file`.
        op: &'static str,
        /// The directory or event file concerned.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> TbError + 'a {
    move |source| TbError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn create_error_names_the_path() {
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
}
