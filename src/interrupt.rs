//! Stop requests: how Ctrl-C, SIGTERM or another thread asks a run to stop cleanly.
//!
//! The trainer polls an [`InterruptHandle`] between two transitions of its state machine
//! (where a checkpoint describes the run completely), saves, and returns
//! `Outcome::Interrupted`. The library installs no signal handler of its own: a program
//! that wants Ctrl-C to stop a run calls [`install_signal_handler`] once and hands the
//! handle to its trainers (the `deeptrain` binary does; see `cli`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};

/// A shared stop request. Cloning shares the count; a signal handler increments it.
#[derive(Debug, Clone, Default)]
pub struct InterruptHandle(Arc<AtomicUsize>);

impl InterruptHandle {
    /// A handle no signal feeds; stop a run through it with [`interrupt`](Self::interrupt).
    pub fn new() -> Self {
        Self::default()
    }
    /// Asks the trainer to stop after the current iteration (as a first Ctrl-C would).
    pub fn interrupt(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    /// How many stop requests arrived since the last [`clear`](Self::clear).
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
    /// Whether a stop was requested.
    pub fn is_set(&self) -> bool {
        self.count() > 0
    }
    /// Forgets the requests so far (`Trainer::fit` does this when it has honoured one).
    pub fn clear(&self) {
        self.0.store(0, Ordering::SeqCst);
    }
}

/// Routes SIGINT and SIGTERM of the whole process into the returned handle.
///
/// Every signal increments the handle's count, then calls `on_signal` with the new count
/// on the handler's own thread: the place for a message, or for aborting at the third
/// signal, as the `deeptrain` binary does. A process has one such handler: a second call
/// is an error.
pub fn install_signal_handler(
    on_signal: impl Fn(usize) + Send + 'static,
) -> Result<InterruptHandle> {
    let handle = InterruptHandle::new();
    let counter = handle.0.clone();
    ctrlc::set_handler(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        on_signal(n);
    })
    .map_err(Error::SignalHandler)?;
    Ok(handle)
}
