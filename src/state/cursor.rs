//! Where the trainer stands in an epoch of one data set: the data cursor.
//!
//! The trainer owns it and is the only one that moves it; the loader only plans epochs
//! (filling `sets_to_process` once per epoch) and loads the set the cursor points at. Its
//! own state (shuffle stream, plan) rides along in `loader`, so one struct says exactly
//! which batch comes next and the checkpoint holds it whole.

use serde::{Deserialize, Serialize};

use crate::data_loaders::LoaderState;

/// Which data set a batch comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetKind {
    /// The training data.
    Train,
    /// The validation data.
    Val,
}

impl std::fmt::Display for SetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SetKind::Train => "train",
            SetKind::Val => "val",
        })
    }
}

/// The trainer's position in one data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataCursor {
    /// Epochs planned so far: the epoch in progress (1-based); 0 before the first. For
    /// validation data, one epoch is one validation pass.
    pub epoch: u64,
    /// Sets (batches) still to process this epoch, in order. Edit to skip or repeat one.
    /// The first one is the set being fit: it stays here until its last window is done.
    pub sets_to_process: Vec<String>,
    /// Sets processed this epoch, in order.
    pub sets_done: Vec<String>,
    /// Window (iteration) of `sets_to_process[0]` to fit next. A set is a single window
    /// unless a time-series preprocessor cuts it into several; 0 between sets.
    pub window: u64,
    /// The loader's own state: settings, shuffle stream and epoch plan. Only the loader
    /// writes it.
    pub loader: LoaderState,
}

impl DataCursor {
    /// A cursor before the first epoch.
    pub fn new(loader: LoaderState) -> Self {
        Self {
            epoch: 0,
            sets_to_process: Vec::new(),
            sets_done: Vec::new(),
            window: 0,
            loader,
        }
    }

    /// The set to process next, if any is left in this epoch.
    pub fn current(&self) -> Option<&str> {
        self.sets_to_process.first().map(String::as_str)
    }

    /// Starts epoch `epoch` with the sets a loader planned for it.
    pub fn start_epoch(&mut self, epoch: u64, sets: Vec<String>) {
        self.epoch = epoch;
        self.sets_to_process = sets;
        self.sets_done.clear();
        self.window = 0;
    }

    /// Moves on to the next window of the current set.
    pub fn next_window(&mut self) {
        self.window += 1;
    }

    /// The current set is done: it moves from `sets_to_process` to `sets_done`.
    pub fn finish_set(&mut self) -> Option<String> {
        if self.sets_to_process.is_empty() {
            return None;
        }
        let name = self.sets_to_process.remove(0);
        self.window = 0;
        self.sets_done.push(name.clone());
        Some(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{RngStream, StreamId};

    fn cursor() -> DataCursor {
        let rng = RngStream::new(1, StreamId::TrainShuffle);
        DataCursor::new(LoaderState::new(4, false, false, &rng))
    }

    #[test]
    fn a_set_is_done_only_when_finished_and_windows_restart_at_zero() {
        let mut c = cursor();
        c.start_epoch(1, vec!["0".into(), "1".into()]);
        assert_eq!(c.current(), Some("0"));
        c.next_window();
        c.next_window();
        assert_eq!((c.current(), c.window), (Some("0"), 2));
        assert_eq!(c.finish_set().as_deref(), Some("0"));
        assert_eq!((c.current(), c.window), (Some("1"), 0));
        assert_eq!(c.sets_done, ["0"]);
        c.finish_set();
        assert_eq!(c.finish_set(), None);
        c.start_epoch(2, vec!["1".into()]);
        assert_eq!((c.epoch, c.sets_done.len(), c.current()), (2, 0, Some("1")));
    }
}
