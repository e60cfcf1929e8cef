//! What a data source factory is told and what it returns: the contract of the `sources`
//! kind (`"data": {"source": {"name": "series", ...}}`), apart from the registry's tables
//! so a user writing a source finds it in one place.

use crate::data_loaders::{DataLoader, TimeseriesWindows};

/// What a source factory is told besides its arguments: the job's batching settings,
/// which the loaders it makes should follow.
#[derive(Debug, Clone)]
pub struct SourceCtx {
    /// Samples per train batch (`data.batch_size`).
    pub batch_size: usize,
    /// Samples per validation batch (`data.val_batch_size`, else `batch_size`).
    pub val_batch_size: usize,
    /// Shuffle the train data every epoch (`data.shuffle`).
    pub shuffle: bool,
    /// Drop a last train batch smaller than `batch_size` (`data.drop_last`).
    pub drop_last: bool,
    /// The run's seed (`train.seed`): seeds the train loader's shuffle stream.
    pub seed: u64,
    /// Read file-backed data into memory at the start (`data.preload`).
    pub preload: bool,
    /// Inputs are multiplied by this (`data.scale`; 1 when not given).
    pub scale: f32,
    /// `data.windows` as a preprocessor, when the job cuts sequences into windows for a
    /// stateful model: a source of sequences hands it to its loaders.
    pub windows: Option<TimeseriesWindows>,
}

/// The loaders a source makes: train data and, where the source has a part of its own for
/// it (a test split, the later part of a series), validation data.
pub struct SourceData {
    /// The data trained on.
    pub train: Box<dyn DataLoader>,
    /// The data validated on, if the source has some.
    pub val: Option<Box<dyn DataLoader>>,
}
