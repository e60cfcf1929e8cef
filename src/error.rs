//! One error type for the whole crate.
//!
//! Every variant that concerns a file or a setting carries its path or name, so the
//! one line a user sees says *what* is wrong and *where*, without a backtrace.

use std::path::{Path, PathBuf};

/// Errors raised by deeptrain. Display is a single line meant for end users.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },

    /// The path holds no checkpoint at all (no `state.bin`, or not ours).
    #[error("{path}: not a deeptrain checkpoint or run directory ({reason})")]
    NotACheckpoint {
        /// The directory or file looked at.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },

    /// A checkpoint file is damaged: checksum, length or decoding failed.
    #[error("{path}: corrupt checkpoint: {reason}")]
    CorruptCheckpoint {
        /// The damaged file.
        path: PathBuf,
        /// What does not match.
        reason: String,
    },

    /// A checkpoint written in another format version than this build reads.
    #[error("{path}: {}", version_message(*found, *supported))]
    UnsupportedVersion {
        /// The `state.bin` read.
        path: PathBuf,
        /// The version it was written in.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },

    /// A run directory without any checkpoint that loads.
    #[error("{path}: no loadable checkpoint ({reason})")]
    NoCheckpoint {
        /// The run directory.
        path: PathBuf,
        /// Why each candidate was refused, or that there is none.
        reason: String,
    },

    /// A setting that cannot work.
    #[error("config {field}: {reason}")]
    Config {
        /// The setting, as a dotted path (`optimizer.lr`) or a builder name.
        field: String,
        /// What is wrong with its value.
        reason: String,
    },

    /// A job config file that is not valid JSON or does not fit the schema.
    #[error("{path}: invalid JSON config: {source}")]
    ConfigJson {
        /// The config file.
        path: PathBuf,
        /// serde's message, with line and column.
        #[source]
        source: serde_json::Error,
    },

    /// Data that cannot be loaded or batched as asked (a set that does not exist, ...).
    #[error("data: {0}")]
    Data(String),

    /// A data file in a format that cannot be read.
    #[error(transparent)]
    Format(#[from] crate::data_loaders::FormatError),

    /// A metric that cannot be computed (unknown name, bad targets, ...).
    #[error("metrics: {0}")]
    Metric(#[from] crate::metrics::MetricError),

    /// TensorBoard event files could not be written.
    #[error("tensorboard: {0}")]
    TensorBoard(#[from] crate::callbacks::tensorboard::TbError),

    /// Optimizer state that does not fit the optimizer's variables.
    #[error("optimizer state: {0}")]
    Optimizer(String),

    /// Something could not be encoded for a checkpoint.
    #[error("could not encode {what}: {reason}")]
    Encode {
        /// What was being encoded.
        what: String,
        /// The encoder's message.
        reason: String,
    },

    /// A callback returned an error; training stopped after saving a checkpoint.
    #[error("callback {callback} failed at stage {stage}: {source}")]
    Callback {
        /// The callback's name.
        callback: String,
        /// The stage it was running for.
        stage: String,
        /// Its error.
        #[source]
        source: Box<Error>,
    },

    /// The state report could not be drawn or written.
    #[error("report: {0}")]
    Report(#[from] crate::report::ReportError),

    /// The process's SIGINT/SIGTERM handler could not be installed (one already is).
    #[error("could not install the Ctrl-C/SIGTERM handler: {0}")]
    SignalHandler(#[source] ctrlc::Error),

    /// An error from candle's tensor operations.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
}

/// What a checkpoint of another format version means for the user.
fn version_message(found: u32, supported: u32) -> String {
    if found < supported {
        format!(
            "made by an older version of deeptrain (checkpoint format {found}; this build reads \
             format {supported}): finish the run with the deeptrain that started it, or train again"
        )
    } else {
        format!(
            "made by a newer version of deeptrain (checkpoint format {found}; this build reads \
             format {supported}): resume it with that version"
        )
    }
}

/// `Result` with deeptrain's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for wrapping an I/O error with the path it concerns.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// Shorthand for a [`Error::Config`] naming `field`.
    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Attaches a path to `std::io::Result`s.
pub trait IoContext<T> {
    /// Turns an I/O error into an [`Error::Io`] naming `path`.
    fn at(self, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
