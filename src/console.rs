//! Lines for stdout that can never fail a run.
//!
//! `println!` panics when stdout is a closed pipe (`deeptrain train | head`), which would
//! kill a training run mid-epoch, without a checkpoint. Output is a courtesy; the run
//! is the work: a line that cannot be written is dropped.

use std::io::Write;

/// Writes one line to stdout, ignoring errors (see the module docs).
pub fn line(args: std::fmt::Arguments) {
    let _ = writeln!(std::io::stdout().lock(), "{args}");
}

/// `println!` that ignores a closed stdout.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::console::line(format_args!($($arg)*))
    };
}
pub(crate) use outln;
