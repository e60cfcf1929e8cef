//! `deeptrain train` and `deeptrain resume`: running a job to its end, with Ctrl-C and
//! SIGTERM turned into a checkpoint and exit status 130.

use std::path::{Path, PathBuf};

use clap::Args;

use super::{set_threads, threads_from_env_or, CliError, CliResult, EXIT_INTERRUPTED};
use crate::checkpoint;
use crate::console::{errln, outln};
use crate::error::IoContext;
use crate::interrupt::InterruptHandle;
use crate::job::{DeviceSpec, JobConfig};
use crate::trainer::{Outcome, Trainer};

/// Train a job: a JSON job config, or the default job (an MLP on the embedded digits set).
#[derive(Debug, Default, Args)]
pub(super) struct TrainArgs {
    /// A JSON job config; every field is optional [default: the default job]
    #[arg(value_name = "CONFIG")]
    config: Option<PathBuf>,
    /// Run directory; must not hold a run yet [default: the config's train.run_dir
    /// (runs/digits), or DIR-2, DIR-3, ... if that one is in use]
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
}

/// Continue a run from its newest good checkpoint, to the end it was configured for.
#[derive(Debug, Args)]
pub(super) struct ResumeArgs {
    /// A run directory (its newest good checkpoint is used) or one checkpoint directory
    #[arg(value_name = "PATH")]
    path: PathBuf,
    /// CPU threads for candle; results are bitwise reproducible only for the run's own
    /// [default: $CANDLE_NUM_THREADS, else the run's]
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
}

pub(super) fn train(args: &TrainArgs) -> CliResult {
    let mut job = match &args.config {
        None => JobConfig::default(),
        Some(path) => JobConfig::from_file(path)?,
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
    std::fs::create_dir_all(&dir).at(&dir)?;
    let config_path = dir.join("config.json");
    std::fs::write(&config_path, job.to_json()).at(&config_path)?;
    outln!("run directory: {}", dir.display());
    let mut trainer = job.build_trainer()?;
    fit_and_report(&mut trainer)
}

pub(super) fn resume(args: &ResumeArgs) -> CliResult {
    let ckpt = checkpoint::load_latest(&args.path)?;
    // The run's own thread count, unless overridden: results are bitwise reproducible
    // only for the same number of threads.
    let configured = JobConfig::from_checkpoint(&ckpt).map_or(0, |j| j.threads);
    set_threads(threads_from_env_or(args.threads, configured));
    let mut trainer = Trainer::from_checkpoint(ckpt)?;
    outln!(
        "resuming {} from {} ({})",
        trainer.config.run_dir.display(),
        trainer
            .last_checkpoint()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        trainer.interrupt_status()
    );
    fit_and_report(&mut trainer)
}

/// A run directory that already has checkpoints or a config.
fn is_used(dir: &Path) -> bool {
    dir.join(checkpoint::CHECKPOINTS_DIR).exists() || dir.join("config.json").exists()
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
fn signals() -> crate::error::Result<InterruptHandle> {
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

/// Runs the trainer to its end and says how it ended; 130 when interrupted.
fn fit_and_report(trainer: &mut Trainer) -> CliResult {
    trainer.set_interrupt_handle(signals()?);
    let outcome = trainer.fit()?;
    let dir = trainer.config.run_dir.clone();
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
