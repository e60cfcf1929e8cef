//! Progress display: a live bar on stderr when it is a terminal, plain periodic lines
//! otherwise (logs, CI), so piped output stays readable. One summary line per validation
//! always goes to stdout.

use crate::console::outln;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use super::{Callback, Stage, TrainerView};
use crate::error::Result;
use crate::state::TrainState;

/// Shows training progress (epoch, batches, latest loss, samples/s), as a live bar on
/// stderr or as plain lines on stdout, and prints one line per validation with every
/// `val_*` metric to stdout. Registered as `progress`.
pub struct Progress {
    epochs: u64,
    terminal: bool,
    /// Plain mode: at most one progress line per this interval (default 10 s; validation
    /// summaries always print).
    pub interval: Duration,
    last_print: Instant,
    epoch_started: Instant,
    samples_this_epoch: u64,
}

impl Progress {
    /// Progress for a run of `epochs` epochs (the `N` of `epoch i/N`); a live bar when stderr
    /// is a terminal, else a plain line at most every 10 s.
    pub fn new(epochs: u64) -> Self {
        Self {
            epochs,
            terminal: std::io::stderr().is_terminal(),
            interval: Duration::from_secs(10),
            last_print: Instant::now(),
            epoch_started: Instant::now(),
            samples_this_epoch: 0,
        }
    }

    /// Forces plain lines (or the live bar), whatever stderr is.
    pub fn terminal(mut self, on: bool) -> Self {
        self.terminal = on;
        self
    }

    fn line(&self, s: &TrainState, width: usize) -> String {
        let done = s.batch_in_epoch;
        let total = done + s.train_data.sets_to_process.len() as u64;
        let filled = if total == 0 {
            0
        } else {
            (done as usize * width) / total as usize
        };
        let bar: String = "#".repeat(filled) + &".".repeat(width - filled.min(width));
        let latest = s.train_history.latest();
        let secs = self.epoch_started.elapsed().as_secs_f64().max(1e-9);
        format!(
            "epoch {}/{} [{bar}] {done}/{total}  loss {:.4}  {:.0} samples/s",
            s.epoch + 1,
            self.epochs,
            latest.get("loss").copied().unwrap_or(f64::NAN),
            self.samples_this_epoch as f64 / secs
        )
    }
}

impl Callback for Progress {
    fn name(&self) -> String {
        "progress".into()
    }

    fn on_stage(&mut self, stage: Stage, view: &mut TrainerView) -> Result<()> {
        let s = view.state;
        match stage {
            Stage::TrainEpochBegin => {
                self.epoch_started = Instant::now();
                self.samples_this_epoch = 0;
            }
            Stage::TrainIterEnd => {
                self.samples_this_epoch += s.train_data.loader.batch_size as u64;
                if self.terminal {
                    eprint!("\r{}\x1b[K", self.line(s, 30));
                    let _ = std::io::stderr().flush();
                } else if self.last_print.elapsed() >= self.interval {
                    outln!("{}", self.line(s, 20));
                    self.last_print = Instant::now();
                }
            }
            Stage::ValEnd => {
                let latest = s.val_history.latest();
                let metrics: Vec<String> =
                    latest.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
                if self.terminal {
                    eprint!("\r\x1b[K");
                }
                let loss = s
                    .train_history
                    .latest()
                    .get("loss")
                    .copied()
                    .unwrap_or(f64::NAN);
                outln!(
                    "epoch {}/{} step {} validation {}: loss {loss:.4}  {}",
                    s.epoch,
                    self.epochs,
                    s.global_step,
                    s.times_validated,
                    metrics.join("  ")
                );
                self.last_print = Instant::now();
            }
            Stage::TrainEnd | Stage::Interrupt if self.terminal => eprintln!(),
            _ => {}
        }
        Ok(())
    }
}
