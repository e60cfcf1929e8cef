//! `deeptrain train` and `deeptrain resume`: running a job to its end, with Ctrl-C and
//! SIGTERM turned into a checkpoint and exit status 130.
//!
//! The handler is installed by `cli::run` before the job is read, so a signal at any
//! moment counts: one before training starts is honoured at the first iteration, and one
//! during the final save (after the last check) still exits 130, saying that the run is
//! complete and where its checkpoint is.
//!
//! A data file that changes size under the run ends it with that error, after an
//! interrupt checkpoint of the state before the batch that could not be read; the
//! command says where it is and how to resume once the file is restored.
//!
//! Test hook (fault-injection tests only; nothing is paused without the variable):
//! `DEEPTRAIN_TEST_PAUSE=POINT` prints `paused at POINT` and waits there (up to a
//! minute), so that tests can signal or kill at exactly that moment without timing.
//! `before_fit` and `train_end` wait for a signal; `iter:N` (at the end of this
//! process's N-th train iteration), `in_save:K` (inside its K-th checkpoint save,
//! numbered or `best/`, when the temporary directory is complete and before it is
//! renamed into place; the line also names that directory) and `after_save:K` (right
//! after that rename, before old checkpoints are pruned and logs flushed) wait for a
//! signal or a line on stdin, which lets the run go on without a stop request.

use crate::registry::Registry;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use clap::Args;

use super::{set_threads, threads_from_env_or, CliError, CliResult, EXIT_INTERRUPTED};
use crate::checkpoint;
use crate::console::{errln, outln};
use crate::data_loaders::FormatError;
use crate::error::{Error, IoContext};
use crate::interrupt::InterruptHandle;
use crate::job::{
    config_differences, parse_override, DeviceSpec, JobConfig, NotifyStatus, ResumeChanges,
};
use crate::trainer::{Outcome, RunLock, Trainer};

/// Train a job: a JSON job config, or the default job (an MLP on the embedded digits set).
#[derive(Debug, Default, Args)]
pub(super) struct TrainArgs {
    /// A JSON job config; every field is optional, "extends": "base.json" merges it over
    /// another [default: the default job]
    #[arg(value_name = "CONFIG")]
    config: Option<PathBuf>,
    /// Set one config value, e.g. optimizer.lr=0.001 or model.hidden=[512] (VALUE is JSON,
    /// else a string); repeatable
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_override)]
    set: Vec<(String, String)>,
    /// Run directory; must not hold a run yet [default: the config's train.run_dir, else
    /// runs/NAME (runs/digits), or DIR-2, DIR-3, ... if that one is in use]
    #[arg(long, value_name = "DIR")]
    run_dir: Option<PathBuf>,
    /// Epochs to train [default: the config's train.epochs (15)]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    epochs: Option<u64>,
    /// Seed of initialization, dropout and shuffling [default: the config's train.seed (7)]
    #[arg(long, value_name = "S")]
    seed: Option<u64>,
    /// cpu, cuda, cuda:N or auto (CUDA when built with it and present)
    /// [default: the config's device (cpu)]
    #[arg(long, value_name = "DEVICE")]
    device: Option<DeviceSpec>,
    /// CPU threads for candle; 0: the default [default: $CANDLE_NUM_THREADS, else the
    /// config's threads, else 1]
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// When the run directory holds a run of this same config, resume it instead of
    /// starting a new one (a run of another config is refused)
    #[arg(long)]
    resume_if_exists: bool,
}

/// Continue a run from its newest good checkpoint, to the end it was configured for.
#[derive(Debug, Args)]
#[command(
    after_help = "Only the settings above may change on resume; they are saved with the run, so a \
                  later plain `resume` keeps them. Model, data, optimizer, seed and schedule \
                  are the run's own."
)]
pub(super) struct ResumeArgs {
    /// A run directory (its newest good checkpoint is used) or one checkpoint directory
    #[arg(value_name = "PATH")]
    path: PathBuf,
    /// Train to N epochs in all: extends a finished or running run exactly as if N had
    /// been configured [default: the run's]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    epochs: Option<u64>,
    /// CPU threads for candle; results are bitwise reproducible only for the run's own
    /// [default: $CANDLE_NUM_THREADS, else the run's]
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// cpu, cuda, cuda:N or auto [default: the run's]
    #[arg(long, value_name = "DEVICE")]
    device: Option<DeviceSpec>,
    /// Early-stopping patience (runs with early stopping only) [default: the run's]
    #[arg(long, value_name = "N")]
    patience: Option<u64>,
    /// No progress output from now on
    #[arg(long)]
    no_progress: bool,
    /// No TensorBoard event files from now on
    #[arg(long)]
    no_tensorboard: bool,
    /// No CSV logs from now on
    #[arg(long)]
    no_csv: bool,
}

pub(super) fn train(args: &TrainArgs, registry: &Registry) -> CliResult {
    let mut job = match &args.config {
        None => JobConfig::default_with_overrides(&args.set)?,
        Some(path) => JobConfig::from_file_with_overrides(path, &args.set)?,
    };
    if let Some(n) = args.epochs {
        job.train.epochs = n;
    }
    if let Some(s) = args.seed {
        job.train.seed = s;
    }
    if let Some(d) = args.device {
        job.device = d;
    }
    job.threads = match threads_from_env_or(args.threads, job.threads) {
        0 => super::default_threads(),
        n => n,
    };
    job.validate()?;
    // Every component known and its arguments read before anything is written.
    let origin = match &args.config {
        Some(path) => path.clone(),
        None => PathBuf::from("the default job"),
    };
    let mut job = job.resolve_with(registry, &origin)?.resolved();
    let wanted = args.run_dir.clone().unwrap_or(job.train.run_dir.clone());
    if args.resume_if_exists && is_used(&wanted) {
        return resume_matching(&job, &wanted, registry);
    }
    job.train.run_dir = match &args.run_dir {
        Some(dir) if is_used(dir) => {
            return Err(CliError::Usage(format!(
                "{} already holds a run: continue it with `deeptrain resume {}` or choose another --run-dir",
                dir.display(),
                dir.display()
            )))
        }
        Some(dir) => dir.clone(),
        None => first_free(&job.train.run_dir),
    };
    set_threads(job.threads);
    let dir = job.train.run_dir.clone();
    // Built before anything is written: a job that cannot start leaves no directory.
    let mut trainer = job.build_with(registry)?;
    let existed = dir.exists();
    // One writer per run: locked before anything is written into the directory, and
    // checked again under the lock (another process may have started a run there since).
    let lock = RunLock::acquire(&dir)?;
    if is_used(&dir) {
        return Err(CliError::Usage(format!(
            "{} already holds a run: continue it with `deeptrain resume {}` or choose another --run-dir",
            dir.display(),
            dir.display()
        )));
    }
    trainer.hold_run_lock(lock)?;
    let config_path = dir.join(checkpoint::CONFIG_FILE);
    std::fs::write(&config_path, job.to_json()).at(&config_path)?;
    outln!("run directory: {}", dir.display());
    let result = fit_and_report(&mut trainer);
    let resumable = matches!(&result, Err(CliError::Failed(e)) if data_changed(e));
    if result.is_err() && !existed && trainer.state.batches_fit == 0 && !resumable {
        // Failed before its first step: nothing worth keeping, and nothing in the way of
        // the next try.
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

/// `train --resume-if-exists` on a used directory: resume it when it holds a run of the
/// same resolved config (its directory and thread count aside).
fn resume_matching(job: &JobConfig, dir: &Path, registry: &Registry) -> CliResult {
    let lock = RunLock::acquire(dir)?;
    let ckpt = checkpoint::load_latest(dir)?;
    let mut saved = JobConfig::from_checkpoint(&ckpt)?.resolve_components(registry, true)?;
    let mut ours = job.clone();
    for j in [&mut saved, &mut ours] {
        j.train.run_dir = dir.to_path_buf();
        j.threads = 0;
    }
    let differences = config_differences(&saved, &ours);
    if !differences.is_empty() {
        return Err(CliError::Usage(format!(
            "{} holds a run of another config (differs in {}): resume it with `deeptrain resume {}` or drop --resume-if-exists",
            dir.display(),
            differences.join(", "),
            dir.display()
        )));
    }
    set_threads(job.threads);
    let mut trainer = Trainer::from_checkpoint_with(ckpt, registry)?;
    trainer.hold_run_lock(lock)?;
    resume_and_report(&mut trainer)
}

pub(super) fn resume(args: &ResumeArgs, registry: &Registry) -> CliResult {
    // Locked before the checkpoint is read: loading one trims the logs to it, which must
    // not happen under a process still training there.
    let run_dir = match args.path.join(checkpoint::STATE_FILE).is_file() {
        true => checkpoint::run_dir_of(&args.path),
        false => args.path.clone(),
    };
    let lock = match run_dir.is_dir() {
        true => Some(RunLock::acquire(&run_dir)?),
        false => None, // `load_latest` says what is missing
    };
    let ckpt = checkpoint::load_latest(&args.path)?;
    let changes = ResumeChanges {
        epochs: args.epochs,
        threads: args.threads,
        device: args.device,
        patience: args.patience,
        progress: args.no_progress.then_some(false),
        tensorboard: args.no_tensorboard.then_some(false),
        csv: args.no_csv.then_some(false),
    };
    // The run's own thread count, unless overridden: results are bitwise reproducible
    // only for the same number of threads.
    let configured = JobConfig::from_checkpoint(&ckpt).map_or(0, |j| j.threads);
    set_threads(threads_from_env_or(args.threads, configured));
    let changed = changes != ResumeChanges::default();
    let mut trainer =
        Trainer::from_checkpoint_changed(ckpt, registry, &changes).map_err(|e| match e {
            // A change the run cannot take is a command-line problem.
            Error::Config { field, reason } if field == "epochs" || field == "patience" => {
                CliError::Usage(format!("--{field}: {reason}"))
            }
            other => CliError::Failed(other),
        })?;
    if let Some(lock) = lock {
        trainer.hold_run_lock(lock)?;
    }
    if changed {
        // The run directory's config says what the run now is.
        if let Some(json) = trainer.job_config_json() {
            let job = JobConfig::from_json_str(json, Path::new("the run's job config"))?;
            let path = trainer.config.run_dir.join("config.json");
            std::fs::write(&path, job.to_json()).at(&path)?;
        }
    }
    resume_and_report(&mut trainer)
}

/// A run directory that already holds a run: at least one checkpoint (damaged ones too).
fn is_used(dir: &Path) -> bool {
    // A directory whose run never wrote a checkpoint (killed, or its disk full, before the
    // first one) holds nothing to resume: training into it again starts the run fresh.
    checkpoint::list(dir).is_ok_and(|l| !l.is_empty())
}

/// `dir`, or `dir-2`, `dir-3`, ... whichever is not used yet.
fn first_free(dir: &Path) -> PathBuf {
    if !is_used(dir) {
        return dir.to_path_buf();
    }
    let base = dir.to_string_lossy().to_string();
    (2..)
        .map(|i| PathBuf::from(format!("{base}-{i}")))
        .find(|d| !is_used(d))
        .unwrap_or_else(|| dir.to_path_buf())
}

/// The process's Ctrl-C/SIGTERM handle: installed on first use, with the messages and
/// the abort at the third signal that the command line promises.
pub(super) fn signals() -> crate::error::Result<InterruptHandle> {
    static HANDLE: std::sync::OnceLock<InterruptHandle> = std::sync::OnceLock::new();
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let h = crate::interrupt::install_signal_handler(|n| {
        match n {
        1 => errln!("\ninterrupt: finishing the current iteration and saving a checkpoint (again: wait for the save, third time: abort)"),
        2 => errln!("\ninterrupt: a checkpoint is being saved; waiting for it to finish (once more to abort)"),
        _ => {
            errln!("\ninterrupt: aborting now; the last complete checkpoint is kept");
            std::process::exit(EXIT_INTERRUPTED);
        }
    }
    })?;
    Ok(HANDLE.get_or_init(|| h).clone())
}

/// Runs the trainer to its end and says how it ended; 130 when interrupted. Then the
/// job's `notify` section, if any: a notifier that fails is a warning, nothing more.
fn fit_and_report(trainer: &mut Trainer) -> CliResult {
    let result = fit_and_report_quietly(trainer);
    let job = trainer
        .job_config_json()
        .and_then(|json| JobConfig::from_json_str(json, Path::new("the run's job config")).ok());
    if let Some(config) = job.and_then(|j| j.notify) {
        let (status, error) = match &result {
            Ok(0) => (NotifyStatus::Finished, None),
            Ok(_) => (NotifyStatus::Stopped, None),
            Err(CliError::Usage(e)) => (NotifyStatus::Failed, Some(e.clone())),
            Err(CliError::Failed(e)) => (NotifyStatus::Failed, Some(e.to_string())),
        };
        let event = crate::notify::Event::for_run(trainer, status, error);
        for failure in crate::notify::send(&config, &event) {
            errln!("warning: {failure}");
        }
    }
    result
}

/// What [`fit_and_report`] does before notifying.
fn fit_and_report_quietly(trainer: &mut Trainer) -> CliResult {
    let handle = signals()?;
    trainer.set_interrupt_handle(handle.clone());
    pause_for_test("before_fit", &handle);
    install_test_pauses(trainer, &handle);
    let dir = trainer.config.run_dir.clone();
    let outcome = match trainer.fit() {
        Ok(outcome) => outcome,
        Err(e) => {
            if data_changed(&e) {
                if let Some(ckpt) = trainer.last_checkpoint() {
                    outln!(
                        "stopped before the batch it could not read; checkpoint: {}\nresume with: deeptrain resume {} (once the file is restored)",
                        ckpt.display(),
                        dir.display()
                    );
                }
            }
            return Err(e.into());
        }
    };
    if handle.is_set() && !matches!(outcome, Outcome::Interrupted { .. }) {
        // The signal came after the last check, during the final save: the save
        // completed, the run is whole, but the user asked to stop, so say so and exit 130.
        let checkpoint = match &outcome {
            Outcome::Stopped { checkpoint, .. } => Some(checkpoint.clone()),
            _ => trainer.last_checkpoint().map(Path::to_path_buf),
        };
        outln!(
            "interrupted during the final save, which completed: the run is {}; checkpoint: {}\nresume with: deeptrain resume {} (nothing is left to train)",
            match &outcome {
                Outcome::Stopped { stop, .. } => format!("stopped by {stop}"),
                _ => "finished".to_string(),
            },
            checkpoint.map(|p| p.display().to_string()).unwrap_or_default(),
            dir.display()
        );
        return Ok(EXIT_INTERRUPTED);
    }
    match outcome {
        Outcome::Finished => {
            outln!("{}", trainer.info().trim_end());
            outln!(
                "finished: checkpoint {}\nrun directory: {}",
                trainer
                    .last_checkpoint()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                dir.display()
            );
            Ok(0)
        }
        Outcome::Stopped { stop, checkpoint } => {
            outln!("stopped by {stop}\ncheckpoint: {}", checkpoint.display());
            Ok(0)
        }
        Outcome::Interrupted { checkpoint } => {
            outln!(
                "interrupted ({}); checkpoint saved: {}\nresume with: deeptrain resume {}",
                trainer.interrupt_status(),
                checkpoint.display(),
                dir.display()
            );
            Ok(EXIT_INTERRUPTED)
        }
    }
}

/// A data file changed size under the run: the trainer saved a checkpoint before the
/// batch it could not read.
fn data_changed(e: &Error) -> bool {
    matches!(e, Error::Format(FormatError::ChangedSize { .. }))
}

/// The environment variable of the test hook (see the module comment).
const PAUSE_VAR: &str = "DEEPTRAIN_TEST_PAUSE";

/// Sets up the `iter:N` and `in_save:K` pauses of the test hook when asked for (see the
/// module comment); does nothing otherwise.
fn install_test_pauses(trainer: &mut Trainer, handle: &InterruptHandle) {
    let Some(point) = std::env::var_os(PAUSE_VAR).map(|v| v.to_string_lossy().into_owned()) else {
        return;
    };
    if point == "train_end" {
        let h = handle.clone();
        trainer.on(crate::callbacks::Stage::TrainEnd, move |_| {
            pause_for_test("train_end", &h);
            Ok(())
        });
        return;
    }
    let Some((kind, n)) = point
        .split_once(':')
        .and_then(|(k, n)| Some((k.to_string(), n.parse::<u64>().ok()?)))
    else {
        return;
    };
    let seen = AtomicU64::new(0);
    let at_nth = move || seen.fetch_add(1, Ordering::SeqCst) + 1 == n;
    let h = handle.clone();
    match kind.as_str() {
        "iter" => {
            trainer.on(crate::callbacks::Stage::TrainIterEnd, move |_| {
                if at_nth() {
                    pause_until_released(&point, &h);
                }
                Ok(())
            });
        }
        "in_save" | "after_save" => {
            let after = kind == "after_save";
            // Whether the save under way is the K-th (counted before its rename).
            let this_one = AtomicBool::new(false);
            let hook = move |dir: &Path, renamed: bool| {
                if !renamed {
                    this_one.store(at_nth(), Ordering::SeqCst);
                }
                if renamed == after && this_one.load(Ordering::SeqCst) {
                    pause_until_released(&format!("{point} {}", dir.display()), &h);
                }
            };
            checkpoint::set_save_hook_for_tests(Box::new(hook));
        }
        _ => {}
    }
}

/// Says `paused at POINT` on stdout and waits until `handle` is set, a line (or the end)
/// comes on stdin, or a minute has passed.
fn pause_until_released(point: &str, handle: &InterruptHandle) {
    let released = std::sync::Arc::new(AtomicBool::new(false));
    let flag = released.clone();
    // Left blocked on stdin when a signal releases the pause; it ends with the process.
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_line(&mut String::new());
        flag.store(true, Ordering::SeqCst);
    });
    outln!("paused at {point}");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !handle.is_set() && !released.load(Ordering::SeqCst) && std::time::Instant::now() < until
    {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// When `DEEPTRAIN_TEST_PAUSE` is `point`: says so on stdout and waits until `handle` is
/// set (at most a minute), so that a test can signal at exactly this point.
fn pause_for_test(point: &str, handle: &InterruptHandle) {
    if std::env::var_os(PAUSE_VAR).is_none_or(|v| v != point) {
        return;
    }
    outln!("paused at {point}");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !handle.is_set() && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Says which run continues from where, then trains it to its end.
fn resume_and_report(trainer: &mut Trainer) -> CliResult {
    outln!(
        "resuming {} from {} ({})",
        trainer.config.run_dir.display(),
        trainer
            .last_checkpoint()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        trainer.interrupt_status()
    );
    fit_and_report(trainer)
}
