//! One error type for the whole crate.
//!
//! Every variant that concerns a file or a setting carries its path or name, so the
//! one line a user sees says *what* is wrong and *where*, without a backtrace.

use std::path::{Path, PathBuf};

/// Errors raised by deeptrain. Display is a single line meant for end users.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: not a deeptrain checkpoint or run directory ({reason})")]
    NotACheckpoint { path: PathBuf, reason: String },

    #[error("{path}: corrupt checkpoint: {reason}")]
    CorruptCheckpoint { path: PathBuf, reason: String },

    #[error(
        "{path}: checkpoint format version {found} is not supported (this build reads version {supported})"
    )]
    UnsupportedVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },

    #[error("{path}: no loadable checkpoint ({reason})")]
    NoCheckpoint { path: PathBuf, reason: String },

    #[error("config {field}: {reason}")]
    Config { field: String, reason: String },

    #[error("{path}: invalid JSON config: {source}")]
    ConfigJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("data: {0}")]
    Data(String),

    #[error(transparent)]
    Format(#[from] crate::data_loaders::FormatError),

    #[error("metrics: {0}")]
    Metric(#[from] crate::metrics::MetricError),

    #[error("tensorboard: {0}")]
    TensorBoard(#[from] crate::callbacks::tensorboard::events::TbError),

    #[error("optimizer state: {0}")]
    Optimizer(String),

    #[error("callback {callback} failed at stage {stage}: {message}")]
    Callback {
        callback: String,
        stage: String,
        message: String,
    },

    #[error("training diverged at step {step}: {reason}")]
    Diverged { step: u64, reason: String },

    #[error("report: {0}")]
    Report(#[from] crate::report::ReportError),

    #[error("could not install the Ctrl-C/SIGTERM handler: {0}")]
    SignalHandler(#[source] ctrlc::Error),

    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for wrapping an I/O error with the path it concerns.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Attaches a path to `std::io::Result`s.
pub trait IoContext<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
