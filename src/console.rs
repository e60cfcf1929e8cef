//! Lines for stdout and stderr that can never fail a run.
//!
//! `println!` panics when stdout is a closed pipe (`deeptrain train | head`), which would
//! kill a training run mid-epoch, without a checkpoint; `eprintln!` does the same with a
//! closed stderr. Output is a courtesy; the run is the work: a line that cannot be
//! written is dropped.

use std::io::Write;

/// Writes one line to stdout, ignoring errors (see the module docs).
pub fn line(args: std::fmt::Arguments) {
    let _ = writeln!(std::io::stdout().lock(), "{args}");
}

/// Writes one line to stderr, ignoring errors (see the module docs).
pub fn err_line(args: std::fmt::Arguments) {
    let _ = writeln!(std::io::stderr().lock(), "{args}");
}

/// `println!` that ignores a closed stdout.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::console::line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

/// `eprintln!` that ignores a closed stderr.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::console::err_line(format_args!($($arg)*))
    };
}
pub(crate) use errln;
