//! SIGINT / SIGTERM handling.
//!
//! The handler only counts signals; the trainer polls the count between iterations.
//! First signal: finish the current iteration, save, return `Outcome::Interrupted`.
//! Second: nothing more (the save in progress is finished, never left half-written).
//! Third: exit at once with status 130; a save in progress leaves only a `.tmp-*`
//! directory, which the loader ignores.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

static SIGNALS: OnceLock<Arc<AtomicUsize>> = OnceLock::new();

/// A shared stop request. Cloning shares the count; the signal handler increments it.
#[derive(Debug, Clone, Default)]
pub struct InterruptHandle(Arc<AtomicUsize>);

impl InterruptHandle {
    /// Asks the trainer to stop after the current iteration (as a first Ctrl-C would).
    pub fn interrupt(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
    pub fn is_set(&self) -> bool {
        self.count() > 0
    }
    pub fn clear(&self) {
        self.0.store(0, Ordering::SeqCst);
    }
}

/// The process-wide handle fed by SIGINT and SIGTERM; installs the handler on first use.
pub fn signal_handle() -> InterruptHandle {
    let counter = SIGNALS.get_or_init(|| {
        let counter = Arc::new(AtomicUsize::new(0));
        let c = counter.clone();
        let installed = ctrlc::set_handler(move || {
            let n = c.fetch_add(1, Ordering::SeqCst) + 1;
            match n {
                1 => eprintln!("\ninterrupt: finishing the current iteration and saving a checkpoint (again: wait for the save, third time: abort)"),
                2 => eprintln!("\ninterrupt: a checkpoint is being saved; waiting for it to finish (once more to abort)"),
                _ => {
                    eprintln!("\ninterrupt: aborting now; the last complete checkpoint is kept");
                    std::process::exit(130);
                }
            }
        });
        if let Err(e) = installed {
            eprintln!("warning: could not install the Ctrl-C handler: {e}");
        }
        counter
    });
    InterruptHandle(counter.clone())
}
