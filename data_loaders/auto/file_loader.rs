//! The extension point for formats AutoData does not read itself. It lives apart from
//! the built-in readers so a user writing a loader finds the whole contract here: a
//! closure from a path to arrays, registered per extension on the builder.

use std::path::Path;

use crate::data_loaders::array::ArrayData;
use crate::error::Result;

/// What a [`FileLoader`] returns: a data array (samples first) and, optionally, labels.
#[derive(Debug, Clone)]
pub struct LoadedFile {
    pub data: ArrayData,
    pub labels: Option<ArrayData>,
}

/// Reads files of an extension AutoData does not know. Any
/// `Fn(&Path) -> Result<LoadedFile>` closure is one.
pub trait FileLoader: Send + Sync {
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
