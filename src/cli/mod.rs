//! The `deeptrain` command line: the application layer over the library.
//!
//! Parsing is clap's (derive); each subcommand is one file with its arguments and what
//! it does. This is the only module that prints for the user (through
//! `crate::console`, which survives a closed stdout), installs the signal handler and
//! picks exit codes; `src/main.rs` only calls [`main`].

mod allocator;
pub use allocator::tune_allocator;
mod data;
mod evaluate;
mod export;
mod inspect;
mod list;
mod predict;
mod report;
mod summary;
mod sweep;
mod train;

use clap::{Parser, Subcommand};

use crate::console::errln;
use crate::error::Error;
use crate::registry::Registry;

pub use inspect::inspect_json;

/// Exit status of a run stopped by a signal, as shells report for SIGINT.
pub const EXIT_INTERRUPTED: i32 = 130;
/// Exit status of a command line that asks for something impossible (clap's too).
pub const EXIT_USAGE: i32 = 2;
/// Exit status of a command that failed.
pub const EXIT_FAILURE: i32 = 1;

/// CPU threads used when the user sets none. candle's pool spins while it waits, so with
/// more threads than free cores every step slows down several times; small models gain
/// little from a second thread anyway. Measured figures are in the README.
pub fn default_threads() -> usize {
    1
}

#[derive(Debug, Parser)]
#[command(
    name = "deeptrain",
    version,
    about = "Train, stop anywhere, resume bit-for-bit: a resumable training framework on candle",
    after_help = "With no command, deeptrain trains the default job (`deeptrain train`): an MLP on \
                  the embedded digits data set.\n\
                  Exit status: 0 done, 1 failed, 2 bad command line, 130 interrupted (resume \
                  with `deeptrain resume RUN_DIR`)."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    Train(train::TrainArgs),
    Resume(train::ResumeArgs),
    Inspect(inspect::InspectArgs),
    Report(report::ReportArgs),
    Data(data::DataArgs),
    Summary(summary::SummaryArgs),
    Evaluate(evaluate::EvaluateArgs),
    Predict(predict::PredictArgs),
    Export(export::ExportArgs),
    List(list::ListArgs),
    Sweep(sweep::SweepArgs),
    SweepReport(sweep::SweepReportArgs),
}

/// Why a command did not succeed.
#[derive(Debug)]
pub enum CliError {
    /// The command line asks for something that cannot be done as asked.
    Usage(String),
    /// The command failed.
    Failed(Error),
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        CliError::Failed(e)
    }
}

/// What a command returns: its exit status, or why it failed.
type CliResult = Result<i32, CliError>;

/// The program: logging, the process's arguments, the command; returns the exit status.
pub fn main() -> i32 {
    main_with(Registry::with_builtins())
}

/// [`main`] for a program of the user's own that registers its components in `registry`
/// (start from [`Registry::with_builtins`]): `my-trainer train job.json` then trains
/// jobs that name them, and `my-trainer list` shows them. See
/// `examples/custom_components.rs`.
pub fn main_with(registry: Registry) -> i32 {
    tune_allocator();
    init_logging();
    run_with(std::env::args_os(), &registry)
}

/// Parses `args` (the program name first) and runs the command with the built-in
/// components; prints errors as one `error: ...` line and returns the exit status.
pub fn run<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    run_with(args, crate::registry::builtins())
}

/// [`run`] with the components of `registry`.
pub fn run_with<I, T>(args: I, registry: &Registry) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with status 0, usage errors to stderr with 2.
            let _ = e.print();
            return e.exit_code();
        }
    };
    // Ctrl-C and SIGTERM are turned into a clean stop from here on, before the job is
    // read or built: a signal at any moment of `train`/`resume` ends in a checkpoint.
    if matches!(
        cli.command,
        None | Some(Command::Train(_)) | Some(Command::Resume(_))
    ) {
        if let Err(e) = train::signals() {
            errln!("error: {e}");
            return EXIT_FAILURE;
        }
    }
    let result = match cli.command {
        None => train::train(&train::TrainArgs::default(), registry),
        Some(Command::Train(a)) => train::train(&a, registry),
        Some(Command::Resume(a)) => train::resume(&a, registry),
        Some(Command::Inspect(a)) => inspect::inspect(&a, registry),
        Some(Command::Report(a)) => report::report(&a),
        Some(Command::Data(a)) => data::data(&a, registry),
        Some(Command::Summary(a)) => summary::summary(&a, registry),
        Some(Command::Evaluate(a)) => evaluate::evaluate(&a, registry),
        Some(Command::Predict(a)) => predict::predict(&a, registry),
        Some(Command::Export(a)) => export::export(&a, registry),
        Some(Command::List(a)) => list::list(&a, registry),
        Some(Command::Sweep(a)) => sweep::sweep(&a, registry),
        Some(Command::SweepReport(a)) => sweep::sweep_report(&a),
    };
    match result {
        Ok(code) => code,
        Err(CliError::Usage(msg)) => {
            errln!("error: {msg}");
            EXIT_USAGE
        }
        Err(CliError::Failed(e)) => {
            errln!("error: {e}");
            EXIT_FAILURE
        }
    }
}

/// Library `log` records reach the user as `warning: ...` lines on stderr (`RUST_LOG`
/// changes the level: `RUST_LOG=off`, `RUST_LOG=info`).
pub fn init_logging() {
    use std::io::Write;
    let env = env_logger::Env::default().default_filter_or("warn");
    let _ = env_logger::Builder::from_env(env)
        .format(|out, record| {
            let level = match record.level() {
                log::Level::Error => "error",
                log::Level::Warn => "warning",
                log::Level::Info => "info",
                log::Level::Debug => "debug",
                log::Level::Trace => "trace",
            };
            writeln!(out, "{level}: {}", record.args())
        })
        .try_init();
}

/// Sets candle's thread count; must run before the first tensor operation.
fn set_threads(n: usize) {
    let n = if n == 0 { default_threads() } else { n };
    // Both names: candle reads CANDLE_NUM_THREADS, its rayon pool RAYON_NUM_THREADS.
    std::env::set_var("CANDLE_NUM_THREADS", n.to_string());
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
}

/// `--threads`, else `CANDLE_NUM_THREADS`, else `configured` (0: the default).
fn threads_from_env_or(flag: Option<usize>, configured: usize) -> usize {
    flag.or_else(|| {
        std::env::var("CANDLE_NUM_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
    })
    .unwrap_or(configured)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
