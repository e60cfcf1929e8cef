//! The `deeptrain` command line: `train`, `resume`, `inspect`, `data`.

use crate::console::outln;
use std::path::{Path, PathBuf};

use crate::checkpoint;
use crate::error::{Error, IoContext, Result};
use crate::job::JobConfig;
use crate::report::data::{report_data, status_line};
use crate::report::render_report;
use crate::state::{Phase, TrainState};
use crate::trainer::{Outcome, Trainer};

pub const USAGE: &str = "\
usage:
  deeptrain train [CONFIG.json] [--run-dir DIR] [--epochs N] [--seed S] [--device cpu|cuda:N|auto] [--threads N]
  deeptrain resume PATH [--threads N]      PATH: a run directory or a checkpoint directory
  deeptrain inspect PATH [--json]
  deeptrain report PATH [-o FILE]         renders report.png (default: into the checkpoint directory)
  deeptrain data DIR|FILE [--batch-size N] [--shuffle [--shuffle-samples] --seed S] [--drop-last]
                 [--labels PATH] [--file NAME] [--format EXT] [--json]
                 what the AutoData loader infers, and the batches of one epoch
With no CONFIG, `train` runs the default job: an MLP on the embedded digits data set.";

/// Exit status of a run stopped by a signal, as shells report for SIGINT.
pub const EXIT_INTERRUPTED: i32 = 130;

/// CPU threads used when the user sets none. candle's pool spins while it waits, so with
/// more threads than free cores every step slows down several times; small models gain
/// little from a second thread anyway. Measured figures are in the README.
pub fn default_threads() -> usize {
    1
}

struct Args {
    positional: Vec<String>,
    options: Vec<(String, Option<String>)>,
}

const VALUE_OPTIONS: &[&str] = &[
    "--run-dir",
    "--epochs",
    "--seed",
    "--device",
    "--threads",
    "-o",
    "--output",
    "--batch-size",
    "--labels",
    "--file",
    "--format",
];
const FLAG_OPTIONS: &[&str] = &["--json", "--shuffle", "--shuffle-samples", "--drop-last"];

fn parse_args(args: &[String]) -> Result<Args> {
    let mut positional = Vec::new();
    let mut options = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if VALUE_OPTIONS.contains(&a.as_str()) {
            let v = it
                .next()
                .ok_or_else(|| Error::Usage(format!("{a} needs a value")))?;
            options.push((a.clone(), Some(v.clone())));
        } else if FLAG_OPTIONS.contains(&a.as_str()) {
            options.push((a.clone(), None));
        } else if a.starts_with("--") {
            return Err(Error::Usage(format!("unknown option {a}")));
        } else {
            positional.push(a.clone());
        }
    }
    Ok(Args {
        positional,
        options,
    })
}

impl Args {
    fn value(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref())
    }
    fn flag(&self, name: &str) -> bool {
        self.options.iter().any(|(k, _)| k == name)
    }
    fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>> {
        self.value(name)
            .map(|v| {
                v.parse().map_err(|_| {
                    Error::Usage(format!("{name} {v:?}: expected a non-negative integer"))
                })
            })
            .transpose()
    }
}

/// Sets candle's thread count; must run before the first tensor operation.
fn set_threads(n: usize) {
    let n = if n == 0 { default_threads() } else { n };
    // Both names: candle reads CANDLE_NUM_THREADS, its rayon pool RAYON_NUM_THREADS.
    std::env::set_var("CANDLE_NUM_THREADS", n.to_string());
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
}

/// Runs the command line; returns the process exit status.
pub fn run(args: &[String]) -> Result<i32> {
    let (command, rest) = match args.split_first() {
        None => ("train", &[][..]),
        Some((c, rest)) => (c.as_str(), rest),
    };
    let args = parse_args(rest)?;
    match command {
        "train" => train(&args),
        "resume" => resume(&args),
        "inspect" => inspect(&args),
        "report" => report(&args),
        "data" => data(&args),
        "help" | "--help" | "-h" => {
            outln!("{USAGE}");
            Ok(0)
        }
        other => Err(Error::Usage(format!("unknown command {other:?}\n{USAGE}"))),
    }
}

fn threads_from_env_or(args: &Args, configured: usize) -> Result<usize> {
    if let Some(n) = args.number::<usize>("--threads")? {
        return Ok(n);
    }
    if let Some(n) = std::env::var("CANDLE_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return Ok(n);
    }
    Ok(configured)
}

fn train(args: &Args) -> Result<i32> {
    let mut job = match args.positional.as_slice() {
        [] => JobConfig::default(),
        [path] => JobConfig::from_file(Path::new(path))?,
        more => {
            return Err(Error::Usage(format!(
                "train takes at most one CONFIG, got {more:?}"
            )))
        }
    };
    let explicit_dir = args.value("--run-dir").map(PathBuf::from);
    if let Some(n) = args.number("--epochs")? {
        job.train.epochs = n;
    }
    if let Some(s) = args.number("--seed")? {
        job.train.seed = s;
    }
    if let Some(d) = args.value("--device") {
        job.device = d.to_string();
    }
    job.threads = match threads_from_env_or(args, job.threads)? {
        0 => default_threads(),
        n => n,
    };
    job.validate()?;
    job.train.run_dir = match explicit_dir {
        Some(dir) if is_used(&dir) => {
            return Err(Error::Usage(format!(
                "{} already holds a run: continue it with `deeptrain resume {}` or choose another --run-dir",
                dir.display(),
                dir.display()
            )))
        }
        Some(dir) => dir,
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

fn resume(args: &Args) -> Result<i32> {
    let [path] = args.positional.as_slice() else {
        return Err(Error::Usage(
            "resume takes exactly one PATH (run or checkpoint directory)".into(),
        ));
    };
    let ckpt = checkpoint::load_latest(Path::new(path))?;
    // The run's own thread count, unless overridden: results are bitwise reproducible
    // only for the same number of threads.
    let configured = ckpt
        .meta
        .job_config
        .as_deref()
        .and_then(|j| serde_json::from_str::<JobConfig>(j).ok())
        .map_or(0, |j| j.threads);
    set_threads(threads_from_env_or(args, configured)?);
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
fn signals() -> Result<crate::interrupt::InterruptHandle> {
    static HANDLE: std::sync::OnceLock<crate::interrupt::InterruptHandle> =
        std::sync::OnceLock::new();
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let h = crate::interrupt::install_signal_handler(|n| {
        match n {
        1 => eprintln!("\ninterrupt: finishing the current iteration and saving a checkpoint (again: wait for the save, third time: abort)"),
        2 => eprintln!("\ninterrupt: a checkpoint is being saved; waiting for it to finish (once more to abort)"),
        _ => {
            eprintln!("\ninterrupt: aborting now; the last complete checkpoint is kept");
            std::process::exit(EXIT_INTERRUPTED);
        }
    }
    })?;
    Ok(HANDLE.get_or_init(|| h).clone())
}

fn fit_and_report(trainer: &mut Trainer) -> Result<i32> {
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

fn phase_name(phase: &Phase) -> &'static str {
    match phase {
        Phase::EpochStart => "epoch_start",
        Phase::Train => "train",
        Phase::Validate { .. } => "validate",
        Phase::Done { .. } => "done",
    }
}

/// The JSON that `deeptrain inspect --json` prints.
pub fn inspect_json(checkpoint: &Path, state: &TrainState) -> serde_json::Value {
    let metrics: serde_json::Map<String, serde_json::Value> = state
        .latest_metrics()
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                serde_json::json!(if v.is_finite() { Some(v) } else { None }),
            )
        })
        .collect();
    serde_json::json!({
        "checkpoint": checkpoint.display().to_string(),
        "epoch": state.epoch,
        "global_step": state.global_step,
        "batches_fit": state.batches_fit,
        "batches_validated": state.batches_validated,
        "times_validated": state.times_validated,
        "batch_in_epoch": state.batch_in_epoch,
        "set_name": state.set_name,
        "phase": phase_name(&state.phase),
        "status": state.interrupt_status().to_string(),
        "finished": state.is_done(),
        "learning_rate": state.learning_rate,
        "metrics": metrics,
        "best": state.best.as_ref().map(|b| serde_json::json!({
            "metric": b.metric, "value": b.value, "epoch": b.epoch, "batches_fit": b.batches_fit,
        })),
        "remaining_sets": state.train_data.sets_to_process,
        "wall_time_secs": state.time.total_secs,
        "train_secs": state.time.train_secs,
        "validation_secs": state.time.validation_secs,
        "checkpoint_secs": state.time.checkpoint_secs,
    })
}

fn report(args: &Args) -> Result<i32> {
    let [path] = args.positional.as_slice() else {
        return Err(Error::Usage("report takes exactly one PATH".into()));
    };
    let ckpt = checkpoint::load_latest(Path::new(path))?;
    let out = args
        .value("-o")
        .or(args.value("--output"))
        .map(PathBuf::from)
        .unwrap_or_else(|| ckpt.dir.join("report.png"));
    let meta = &ckpt.meta;
    let status = status_line(&meta.state, Some(meta.saved_because));
    render_report(&report_data(&meta.state, &meta.run, &status), &out)?;
    outln!("{}", out.display());
    Ok(0)
}

fn inspect(args: &Args) -> Result<i32> {
    let [path] = args.positional.as_slice() else {
        return Err(Error::Usage("inspect takes exactly one PATH".into()));
    };
    let ckpt = checkpoint::load_latest(Path::new(path))?;
    let state = &ckpt.meta.state;
    if args.flag("--json") {
        outln!("{}", inspect_json(&ckpt.dir, state));
    } else {
        outln!("checkpoint {}", ckpt.dir.display());
        outln!(
            "model {}  optimizer {}",
            ckpt.meta.model_name,
            ckpt.meta.optimizer_name
        );
        outln!(
            "status {}",
            status_line(state, Some(ckpt.meta.saved_because))
        );
        outln!("saved because {:?}", ckpt.meta.saved_because);
        outln!(
            "epoch {}  global_step {}  batches_fit {}  batches_validated {}  times_validated {}",
            state.epoch,
            state.global_step,
            state.batches_fit,
            state.batches_validated,
            state.times_validated
        );
        for (k, v) in state.latest_metrics() {
            outln!("  {k:<16} {v:.6}");
        }
        if let Some(b) = &state.best {
            outln!(
                "best {} = {:.6} at epoch {} (batches_fit {})",
                b.metric,
                b.value,
                b.epoch,
                b.batches_fit
            );
        }
    }
    Ok(0)
}

/// `deeptrain data`: what AutoData infers from a directory (or file) and the exact batch
/// sequence of one epoch, as a trainer seeded with `--seed` would see it.
fn data(args: &Args) -> Result<i32> {
    use crate::data_loaders::{AutoData, DataLoader};
    let [path] = args.positional.as_slice() else {
        return Err(Error::Usage(
            "data takes exactly one DIR (or one data FILE)".into(),
        ));
    };
    let path = Path::new(path);
    let mut builder = if path.is_file() {
        AutoData::from_file(path)?
    } else {
        AutoData::from_dir(path)?
    };
    if let Some(n) = args.number::<usize>("--batch-size")? {
        builder = builder.batch_size(n);
    }
    if let Some(s) = args.number::<u64>("--seed")? {
        builder = builder.seed(s);
    }
    if let Some(l) = args.value("--labels") {
        builder = builder.labels(l);
    }
    if let Some(f) = args.value("--file") {
        builder = builder.file(f);
    }
    if let Some(f) = args.value("--format") {
        builder = builder.format(f);
    }
    let loader = builder
        .shuffle(args.flag("--shuffle"))
        .shuffle_samples(args.flag("--shuffle-samples"))
        .drop_last(args.flag("--drop-last"))
        .build()?;
    let mut state = loader.new_state();
    loader.plan_epoch(1, &mut state)?;
    let report = loader.report(1, &state)?;
    if args.flag("--json") {
        outln!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| Error::Data(e.to_string()))?
        );
    } else {
        // Listings are long and often piped into `head`: a closed pipe is not an error.
        use std::io::Write;
        match write!(std::io::stdout().lock(), "{report}") {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                return Err(Error::io("stdout", e))
            }
            _ => {}
        }
    }
    Ok(0)
}
