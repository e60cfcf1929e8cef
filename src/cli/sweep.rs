//! `deeptrain sweep` and `deeptrain sweep-report`: many runs from one file, as stoppable
//! and resumable as one run.
//!
//! Every trial runs as `deeptrain sweep FILE --trial K`: in this process, that is
//! `deeptrain train` into the trial's run directory (or `deeptrain resume` of it, when
//! it holds checkpoints; nothing when it has ended), so each trial is an ordinary run
//! with its lock, checkpoints and exit status 130 on Ctrl-C. Without `--trial`, the
//! sweep starts such trial processes, `--jobs` at a time, each in its own process group
//! so that Ctrl-C reaches the sweep alone; the sweep forwards it (once per signal) to
//! every trial process, starts no new one, waits for them to save and exits 130. The
//! same command again skips the ended trials and resumes the interrupted ones.
//!
//! `SLURM_ARRAY_TASK_ID` stands for `--trial` when set, so that `--slurm`'s job-array
//! script runs one trial per array task.
//!
//! A trial whose process fails is recorded (`sweep::summary::TrialFailure`): by the
//! trial's process itself, with its error, or else by the sweep that started it (a death
//! by a signal, a panic); the record is removed when the trial is run again, or found
//! ended. A refusal because another process trains the trial (its run lock) is no
//! failure of the trial. On Linux each trial process dies with the sweep: killed even by
//! SIGKILL, the sweep leaves its trials a SIGTERM, so that they save and exit 130.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};

use clap::Args;

use super::{CliError, CliResult, EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE};
use crate::console::{errln, outln};
use crate::job::NotifyStatus;
use crate::registry::Registry;
use crate::sweep::prune::{self, Schedule};
use crate::sweep::summary::{Summary, TrialFailure, FAILED};
use crate::sweep::{figure, Plan, Sweep, Trial};

/// Run every trial of a sweep file (a grid, random samples, job files); again to resume.
#[derive(Debug, Args)]
#[command(
    after_help = "Ctrl-C saves the running trials and exits 130; the same command again skips the \
                  ended trials and resumes the interrupted ones. Results: SWEEP_DIR/sweep/summary.csv \
                  and summary.png (again from disk: `deeptrain sweep-report SWEEP_DIR`)."
)]
pub(super) struct SweepArgs {
    /// The sweep file (JSON: base, jobs, grid, random, set, metric, goal, dir, name)
    #[arg(value_name = "SWEEP")]
    file: PathBuf,
    /// Trials run at once, each as its own process
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    jobs: u64,
    /// Run only trial K (0-based) in this process [default: $SLURM_ARRAY_TASK_ID when set]
    #[arg(long, value_name = "K")]
    trial: Option<usize>,
    /// Accept a sweep file that adds trials to the planned ones (in grid, random or jobs)
    #[arg(long)]
    extend: bool,
    /// CPU threads of each trial it starts [default: the cores divided by --jobs, at
    /// least 1]; a resumed trial keeps its own
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    threads: Option<u64>,
    /// Print a Slurm job-array script (one array task per trial) instead of running
    #[arg(long)]
    slurm: bool,
    /// --slurm: CPUs per array task (also the trials' --threads) [default: 1]
    #[arg(long, value_name = "N", requires = "slurm")]
    cpus: Option<u64>,
    /// --slurm: time limit per trial (`#SBATCH --time`, e.g. 2:00:00)
    #[arg(long, value_name = "T", requires = "slurm")]
    time: Option<String>,
    /// --slurm: memory per trial (`#SBATCH --mem`, e.g. 8G)
    #[arg(long, value_name = "M", requires = "slurm")]
    mem: Option<String>,
    /// --slurm: partition (`#SBATCH --partition`)
    #[arg(long, value_name = "P", requires = "slurm")]
    partition: Option<String>,
    /// --slurm: GPUs per trial (`#SBATCH --gres=gpu:N`)
    #[arg(long, value_name = "N", requires = "slurm")]
    gpus: Option<u64>,
    /// --slurm: at most N array tasks at once (`--array=0-M%N`)
    #[arg(long, value_name = "N", requires = "slurm")]
    max_parallel: Option<u64>,
}

/// Write a sweep's summary.csv and summary.png again from its run directories.
#[derive(Debug, Args)]
pub(super) struct SweepReportArgs {
    /// The sweep directory (it holds sweep/plan.json)
    #[arg(value_name = "SWEEP_DIR")]
    dir: PathBuf,
}

/// The environment variable a Slurm job array sets to the task's index.
const SLURM_TASK_VAR: &str = "SLURM_ARRAY_TASK_ID";

pub(super) fn sweep(args: &SweepArgs, registry: &Registry) -> CliResult {
    let sweep = Sweep::load(&args.file)?;
    let plan = Plan::prepare(&sweep, args.extend)?;
    if args.slurm && plan.sweep.prune.is_some() {
        // Promotion waits for a whole rung: one `deeptrain sweep` process decides it.
        return Err(CliError::Usage(format!(
            "--slurm: {} prunes, which one `deeptrain sweep` process schedules (run it inside one Slurm job)",
            args.file.display()
        )));
    }
    if args.slurm {
        outln!("{}", slurm_script(args, &sweep, &plan)?);
        return Ok(0);
    }
    let trial = match args.trial {
        Some(k) => Some(k),
        None => match std::env::var(SLURM_TASK_VAR) {
            Ok(v) => Some(v.trim().parse::<usize>().map_err(|_| {
                CliError::Usage(format!("{SLURM_TASK_VAR}={v} is not a trial number"))
            })?),
            Err(_) => None,
        },
    };
    match trial {
        Some(k) => {
            let code = run_trial(args, &sweep, &plan, k, registry)?;
            // Each trial leaves the summary up to date (written atomically, so parallel
            // array tasks cannot leave a torn one).
            if code == 0 {
                write_summary(&sweep.dir(), &sweep.name(), &plan, false)?;
            }
            Ok(code)
        }
        None => {
            let result = run_all(args, &sweep, &plan);
            notify(&sweep, &plan, &result);
            result
        }
    }
}

/// The sweep file's `notify` section, once the whole sweep is over; a notifier that
/// fails is a warning.
fn notify(sweep: &Sweep, plan: &Plan, result: &CliResult) {
    let Some(config) = &sweep.file.notify else {
        return;
    };
    let status = match result {
        Ok(0) => NotifyStatus::Finished,
        Ok(EXIT_INTERRUPTED) => NotifyStatus::Stopped,
        _ => NotifyStatus::Failed,
    };
    let event = crate::notify::Event::for_sweep(sweep, plan, status);
    for failure in crate::notify::send(config, &event) {
        errln!("warning: {failure}");
    }
}

/// Trial `k` in this process: trained, resumed, or nothing when it has ended.
fn run_trial(
    args: &SweepArgs,
    sweep: &Sweep,
    plan: &Plan,
    k: usize,
    registry: &Registry,
) -> CliResult {
    // Ctrl-C from here on ends in a checkpoint (the train/resume below use this handler).
    if let Err(e) = super::train::signals() {
        return Err(CliError::Failed(e));
    }
    let Some(trial) = plan.trials.get(k) else {
        return Err(CliError::Usage(format!(
            "--trial {k}: the sweep {} has {} trials (0 to {})",
            args.file.display(),
            plan.trials.len(),
            plan.trials.len().saturating_sub(1)
        )));
    };
    let run = sweep.trial_run(trial);
    let dir = run.run_dir.display().to_string();
    // A new attempt: whatever an earlier one ended with is no longer the trial's state.
    TrialFailure::clear(&sweep.dir(), trial)?;
    // A pruned sweep trains each trial to its current rung (see sweep/prune.rs).
    let rung = match Schedule::open(&sweep.dir(), plan)? {
        None => None,
        Some(s) => match s.target(k) {
            None => {
                outln!("trial {k} was pruned: {dir}");
                return Ok(0);
            }
            Some(epochs) => Some(epochs),
        },
    };
    let ended = match rung {
        None => crate::sweep::summary::is_done(&run.run_dir),
        Some(epochs) => prune::reached(&run.run_dir, epochs),
    };
    if ended {
        outln!("trial {k} has ended: {dir}");
        return Ok(0);
    }
    outln!("trial {k}/{}: {}", plan.trials.len(), trial.name);
    let mut argv: Vec<String> = vec!["deeptrain".into()];
    if crate::checkpoint::list(&run.run_dir).is_ok_and(|l| !l.is_empty()) {
        // Resumed with its own settings (threads included: bitwise results need them);
        // promoted to a rung: as if its epochs had been configured from the start.
        argv.extend(["resume".into(), dir]);
        if let Some(epochs) = rung {
            argv.extend(["--epochs".into(), epochs.to_string()]);
        }
    } else {
        argv.push("train".into());
        if let Some(c) = &run.config {
            argv.push(c.display().to_string());
        }
        for (key, value) in &run.overrides {
            argv.extend(["--set".into(), format!("{key}={value}")]);
        }
        if let Some(epochs) = rung {
            argv.extend(["--epochs".into(), epochs.to_string()]);
        }
        argv.extend(["--run-dir".into(), dir]);
        if let Some(t) = args.threads {
            argv.extend(["--threads".into(), t.to_string()]);
        }
    }
    let result = train_or_resume(&argv, registry);
    let (code, error) = match &result {
        Ok(0) | Ok(EXIT_INTERRUPTED) => {
            // Cleared at the start too; again in case a refused process wrote one since.
            TrialFailure::clear(&sweep.dir(), trial)?;
            return result;
        }
        Ok(c) => (*c, None),
        Err(CliError::Usage(m)) => (EXIT_USAGE, Some(m.clone())),
        Err(CliError::Failed(e)) => (EXIT_FAILURE, Some(e.to_string())),
    };
    let failure = TrialFailure::new(
        trial,
        Some(code),
        None,
        format!("exit status: {code}"),
        error,
    );
    record_failure(&sweep.dir(), &run.run_dir, &failure);
    result
}

/// `deeptrain train ...` or `deeptrain resume ...` (`argv`) in this process, its error
/// returned rather than printed (`run_with` would print it) so that the trial can
/// record it; the caller has installed the signal handler.
fn train_or_resume(argv: &[String], registry: &Registry) -> CliResult {
    use clap::Parser;
    let cli = super::Cli::try_parse_from(argv).map_err(|e| {
        let msg = e.to_string();
        let first = msg.lines().next().unwrap_or_default();
        CliError::Usage(format!(
            "{}: {}",
            argv.join(" "),
            first.trim_start_matches("error: ")
        ))
    })?;
    match cli.command {
        Some(super::Command::Train(a)) => super::train::train(&a, registry),
        Some(super::Command::Resume(a)) => super::train::resume(&a, registry),
        _ => Err(CliError::Usage(format!(
            "not a trial's command: {}",
            argv.join(" ")
        ))),
    }
}

/// Writes `failure` for the trial in `run_dir`, unless another process trains the trial
/// now (its run lock is held: the attempt was refused, the trial did not fail); a
/// record that cannot be written is a warning.
fn record_failure(sweep_dir: &Path, run_dir: &Path, failure: &TrialFailure) {
    // Only a directory with a lock file can be locked: nothing is created to look.
    if run_dir.join(crate::trainer::LOCK_FILE).exists() {
        match crate::trainer::RunLock::acquire(run_dir) {
            Err(crate::error::Error::Io { source, .. })
                if source.kind() == std::io::ErrorKind::WouldBlock =>
            {
                return
            }
            // Held while the record is written: no process starts training it meanwhile.
            Ok(_lock) => return write_failure(sweep_dir, failure),
            Err(_) => {}
        }
    }
    write_failure(sweep_dir, failure)
}

/// Writes `failure`; an error is a warning (the trial's failure is reported anyway).
fn write_failure(sweep_dir: &Path, failure: &TrialFailure) {
    if let Err(e) = failure.write(sweep_dir) {
        errln!(
            "warning: the failure of trial {} is not recorded: {e}",
            failure.name
        );
    }
}

/// The failure record of `trial`, whose process ended with `status`, when its process
/// wrote none: a death by a signal, a panic, or an error before it could.
fn record_exit(sweep_dir: &Path, trial: &Trial, run_dir: &Path, status: std::process::ExitStatus) {
    if let Ok(Some(_)) = TrialFailure::read(sweep_dir, trial) {
        return;
    }
    #[cfg(unix)]
    let signal = std::os::unix::process::ExitStatusExt::signal(&status);
    #[cfg(not(unix))]
    let signal = None;
    // std's words: `exit status: 101`, `signal: 9 (SIGKILL)`.
    let failure = TrialFailure::new(trial, status.code(), signal, status.to_string(), None);
    record_failure(sweep_dir, run_dir, &failure);
}

/// Makes the trial process started by `cmd` die with this process: on Linux
/// (`PR_SET_PDEATHSIG`), a SIGTERM (which it answers by saving a checkpoint and exiting
/// 130) when the thread that
/// starts it ends, which for the sweep is the process (the sweep starts every trial
/// from its main thread and returns from there). Elsewhere nothing.
fn die_with_parent(cmd: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: the closure runs in the forked child before exec and makes only
        // async-signal-safe calls (prctl, getppid), allocating nothing.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                // The sweep died before prctl: no signal will come, so do not start.
                if libc::getppid() != parent {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

/// The trial processes started and not yet ended, by pid, for the signal handler.
type Running = Arc<Mutex<Vec<u32>>>;

/// Sends SIGINT to a trial process.
fn interrupt(pid: u32) {
    #[cfg(unix)]
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGINT);
    }
    #[cfg(not(unix))]
    let _ = pid;
}

/// Every trial, `--jobs` at a time, each as `deeptrain sweep FILE --trial K`.
fn run_all(args: &SweepArgs, sweep: &Sweep, plan: &Plan) -> CliResult {
    let running: Running = Arc::default();
    let forward = running.clone();
    let handle = crate::interrupt::install_signal_handler(move |n| {
        match n {
            1 => errln!("\ninterrupt: the running trials save a checkpoint; no new trial starts"),
            _ => errln!("\ninterrupt: passed on to the running trials"),
        }
        for &pid in forward.lock().map(|l| l.clone()).unwrap_or_default().iter() {
            interrupt(pid);
        }
    })?;
    let jobs = args.jobs as usize;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = args.threads.map_or((cores / jobs).max(1), |t| t as usize);
    let exe = std::env::current_exe()
        .map_err(|e| crate::error::Error::io("the deeptrain executable", e))?;
    let dir = sweep.dir();
    let mut schedule = Schedule::open(&dir, plan)?;
    let (mut interrupted, mut failed) = (false, Vec::new());
    // One stage per rung of a pruned sweep (the trials of the current rung, then the
    // decision); a single stage otherwise.
    loop {
        let mut queue: Vec<usize> = Vec::new();
        for t in &plan.trials {
            let target = schedule.as_ref().map(|s| s.target(t.index));
            if target == Some(None) {
                outln!("trial {} was pruned", t.index);
                continue;
            }
            let ended = match target.flatten() {
                Some(epochs) => prune::reached(&sweep.trial_dir(t), epochs),
                None => crate::sweep::summary::is_done(&sweep.trial_dir(t)),
            };
            if ended {
                // Nothing is left to run: no earlier failure is its state any more.
                TrialFailure::clear(&dir, t)?;
                outln!(
                    "trial {} has ended: {}",
                    t.index,
                    sweep.trial_dir(t).display()
                );
            } else {
                let job = sweep
                    .trial_job(t)
                    .map_err(|e| CliError::Usage(format!("trial {}: {e}", t.name)))?;
                if schedule.is_some() {
                    prune::check_job(&job, &t.name)?;
                }
                queue.push(t.index);
            }
        }
        outln!(
        "sweep {}: {} trials, {} to run, {jobs} at a time, {threads} thread(s) each; directory {}",
        sweep.name(),
        plan.trials.len(),
        queue.len(),
        dir.display()
    );
        queue.reverse();
        let mut children: Vec<(usize, Child)> = Vec::new();
        loop {
            while children.len() < jobs && !interrupted && !handle.is_set() {
                let Some(k) = queue.pop() else { break };
                let mut cmd = Command::new(&exe);
                cmd.arg("sweep")
                    .arg(&args.file)
                    .args(["--trial", &k.to_string(), "--threads", &threads.to_string()])
                    .env_remove(SLURM_TASK_VAR);
                #[cfg(unix)]
                {
                    use std::os::unix::process::CommandExt;
                    cmd.process_group(0);
                }
                die_with_parent(&mut cmd);
                let child = cmd.spawn().map_err(|e| crate::error::Error::io(&exe, e))?;
                running.lock().map(|mut l| l.push(child.id())).ok();
                children.push((k, child));
            }
            if children.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
            let mut i = 0;
            while i < children.len() {
                let (k, child) = &mut children[i];
                match child.try_wait() {
                    Ok(Some(status)) => {
                        let k = *k;
                        let pid = child.id();
                        running.lock().map(|mut l| l.retain(|&p| p != pid)).ok();
                        match status.code() {
                            Some(0) => {}
                            Some(EXIT_INTERRUPTED) => interrupted = true,
                            _ => {
                                let t = &plan.trials[k];
                                record_exit(&dir, t, &sweep.trial_dir(t), status);
                                failed.push(k);
                            }
                        }
                        children.remove(i);
                    }
                    Ok(None) => i += 1,
                    Err(e) => return Err(crate::error::Error::io(&exe, e).into()),
                }
            }
        }
        interrupted |= handle.is_set();
        match schedule.as_mut() {
            Some(s) if !interrupted && failed.is_empty() && s.can_decide() => {
                let d = s.decide(&dir, plan)?;
                outln!(
                    "rung {} epoch(s): {} of {} trials promoted by {} ({})",
                    d.epochs,
                    d.promoted.len(),
                    d.ranked.len(),
                    d.metric,
                    prune::Schedule::path(&dir).display()
                );
            }
            _ => break,
        }
    }
    let summary = write_summary(&dir, &sweep.name(), plan, true)?;
    if !failed.is_empty() {
        let names: Vec<String> = failed
            .iter()
            .map(|&k| plan.trials[k].name.clone())
            .collect();
        errln!(
            "error: {} trial(s) failed: {}",
            failed.len(),
            names.join(", ")
        );
    }
    if interrupted {
        outln!(
            "interrupted: {} of {} trials have ended; continue with the same command: deeptrain sweep {}",
            summary.done(),
            plan.trials.len(),
            args.file.display()
        );
        return Ok(EXIT_INTERRUPTED);
    }
    Ok(if failed.is_empty() { 0 } else { EXIT_FAILURE })
}

/// Writes summary.csv and summary.png of the sweep in `dir`; with `show`, prints the
/// ranked table and where the files are.
fn write_summary(dir: &Path, name: &str, plan: &Plan, show: bool) -> Result<Summary, CliError> {
    let summary = Summary::collect(dir, plan);
    let csv = summary.write_csv(dir)?;
    let png = figure::write_png(dir, name, &summary)?;
    crate::sweep::hparams::write(dir, &summary)?;
    if show {
        outln!(
            "rank  {:<10} {:<10} {:>5}  {:<9} trial",
            "best",
            "final",
            "epoch",
            "status"
        );
        for (rank, &i) in summary.ranked().iter().enumerate() {
            let r = &summary.results[i];
            let v = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.6}"));
            outln!(
                "{:>4}  {:<10} {:<10} {:>5}  {:<9} {}",
                rank + 1,
                v(r.best),
                v(r.last),
                r.best_epoch.map_or("-".into(), |e| e.to_string()),
                r.status,
                r.trial.name
            );
        }
        for r in summary.results.iter().filter(|r| r.status == FAILED) {
            let why = r.failure.as_deref().unwrap_or_default();
            outln!("failed: {}: {why}", r.trial.name);
        }
        outln!(
            "summary ({}): {}, {}",
            summary.metric,
            csv.display(),
            png.display()
        );
    }
    Ok(summary)
}

pub(super) fn sweep_report(args: &SweepReportArgs) -> CliResult {
    let plan = Plan::read(&args.dir)?;
    let name = plan.sweep.name.clone().unwrap_or_else(|| {
        let d = args
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        d.strip_prefix("sweep-").map(str::to_string).unwrap_or(d)
    });
    write_summary(&args.dir, &name, &plan, true)?;
    Ok(0)
}

/// The job-array script of `--slurm`: one array task per trial, each running
/// `deeptrain sweep FILE` (which reads `SLURM_ARRAY_TASK_ID`) from this directory.
fn slurm_script(args: &SweepArgs, sweep: &Sweep, plan: &Plan) -> Result<String, CliError> {
    let n = plan.trials.len();
    let cwd = std::env::current_dir().map_err(|e| crate::error::Error::io(".", e))?;
    let exe = std::env::current_exe()
        .map_err(|e| crate::error::Error::io("the deeptrain executable", e))?;
    let absolute = |p: &Path| -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            cwd.join(p)
        }
    };
    let cpus = args.cpus.or(args.threads).unwrap_or(1);
    let mut s = String::new();
    s.push_str("#!/bin/bash\n");
    s.push_str(&format!(
        "# Slurm job array of the sweep {}: {n} trials, one array task each (made by `deeptrain sweep --slurm`).\n",
        sweep.name()
    ));
    s.push_str("# Submit with `sbatch FILE`; submit it again after a time limit or preemption: ended trials are\n");
    s.push_str(&format!(
        "# skipped, interrupted ones resume. Results: deeptrain sweep-report {}\n",
        sweep.dir().display()
    ));
    s.push_str(&format!("#SBATCH --job-name=sweep-{}\n", sweep.name()));
    match args.max_parallel {
        Some(m) => s.push_str(&format!("#SBATCH --array=0-{}%{m}\n", n.saturating_sub(1))),
        None => s.push_str(&format!("#SBATCH --array=0-{}\n", n.saturating_sub(1))),
    }
    s.push_str("#SBATCH --ntasks=1\n");
    s.push_str(&format!("#SBATCH --cpus-per-task={cpus}\n"));
    if let Some(t) = &args.time {
        s.push_str(&format!("#SBATCH --time={t}\n"));
    }
    if let Some(m) = &args.mem {
        s.push_str(&format!("#SBATCH --mem={m}\n"));
    }
    if let Some(p) = &args.partition {
        s.push_str(&format!("#SBATCH --partition={p}\n"));
    }
    if let Some(g) = args.gpus {
        s.push_str(&format!("#SBATCH --gres=gpu:{g}\n"));
    }
    s.push_str(&format!(
        "#SBATCH --output={}/sweep/slurm-%A_%a.out\n",
        absolute(&sweep.dir()).display()
    ));
    s.push_str(
        "# SIGINT two minutes before the time limit: the trial saves a checkpoint and exits 130.\n",
    );
    s.push_str("#SBATCH --signal=B:INT@120\n");
    s.push_str("#SBATCH --requeue\n\n");
    s.push_str(&format!("cd {}\n", shell_quote(&cwd.display().to_string())));
    s.push_str(&format!(
        "exec {} sweep {} --threads {cpus}\n",
        shell_quote(&exe.display().to_string()),
        shell_quote(&args.file.display().to_string())
    ));
    // The trial of each array task comes from SLURM_ARRAY_TASK_ID.
    Ok(s.trim_end().to_string())
}

/// `s` quoted for bash when it holds anything but plain path characters.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
