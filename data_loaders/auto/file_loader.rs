//! The extension point for formats AutoData does not read itself. It lives apart from
//! the built-in readers so a user writing a loader finds the whole contract here: a
//! closure from a path to arrays, registered per extension on the builder.

use std::path::Path;

use crate::data_loaders::array::ArrayData;
use crate::error::Result;

/// What a [`FileLoader`] returns: a data array (samples first) and, optionally, labels.
#[derive(Debug, Clone)]
pub struct LoadedFile {
    /// The samples, first axis = samples; every file of a data set must have the same
    /// sample shape and dtype, and at least one sample.
    pub data: ArrayData,
    /// Labels stored in the file, one per sample (first axis), if any. Used only when
    /// labels are left to inference ([`LabelSource::Auto`](super::LabelSource::Auto)) and
    /// there is no labels file; then either every file has them or it is an error.
    pub labels: Option<ArrayData>,
}

/// Reads files of an extension AutoData does not know. Any
/// `Fn(&Path) -> Result<LoadedFile>` closure is one.
pub trait FileLoader: Send + Sync {
    /// Reads the file at `path` (called once per file, at build time); errors should
    /// name `path`.
    fn load(&self, path: &Path) -> Result<LoadedFile>;
}

impl<F> FileLoader for F
where
    F: Fn(&Path) -> Result<LoadedFile> + Send + Sync,
{
    fn load(&self, path: &Path) -> Result<LoadedFile> {
        self(path)
    }
}
