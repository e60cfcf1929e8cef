//! Fault injection on the real `deeptrain` binary, the faults a user meets: kill -9 at
//! seeded points (inside checkpoint saves too), SIGINT and SIGTERM, a full disk, a
//! read-only run directory, two processes started on one run, data files that change size
//! under a run, and single-byte damage to checkpoint files. Every case must end in a run
//! directory that resumes (or trains again) to bitwise the weights, state and logs of an
//! uninterrupted run: no dead ends, no temp files left, no panics.
//!
//! Points are chosen by a seeded generator, and reached through the binary's test pause
//! hook (`DEEPTRAIN_TEST_PAUSE=iter:N` / `in_save:K` / `after_save:K`, see
//! `src/cli/train.rs`), so a kill lands exactly there; in the full measurement a quarter
//! of the kills are timed (a seeded delay), for the places no hook reaches (pruning, log
//! writes).
//!
//! The default is small, for CI. `DEEPTRAIN_FAULT_ROUNDS=N` makes N kill rounds, N/4
//! signal rounds and 2N/5 races, and sweeps every byte of the checkpoint files; run
//! `DEEPTRAIN_FAULT_ROUNDS=100 cargo test --release --test it faults -- --nocapture
//! --test-threads 1` for the figures. The full-disk and read-only cases mount a tmpfs and
//! are skipped, saying so, where that is not allowed (not root).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::common::{npy_f32, npy_i64, scratch, state_bytes, Proc, Ran};
use deeptrain::checkpoint;

const BIN: &str = env!("CARGO_BIN_EXE_deeptrain");

/// The job of the kill, signal and race rounds: the default MLP on the embedded digits,
/// 2 epochs of 45 batches, validation (and `best/`) at epoch ends, a checkpoint every 7
/// batches with its report (so a save takes long enough for timed kills to land in it),
/// two kept: about 1.5 s.
const JOB: &str = r#"{"train": {"epochs": 2, "checkpoint_every": {"batches": 7}, "keep_last": 2}}"#;

/// The full-disk job: as `JOB` without reports, so that a checkpoint's size is known.
const DISK_JOB: &str = r#"{"train": {"epochs": 2, "checkpoint_every": {"batches": 10}, "keep_last": 2, "report": false}}"#;

/// `DEEPTRAIN_FAULT_ROUNDS`, when set: the full measurement.
fn full_rounds() -> Option<usize> {
    std::env::var("DEEPTRAIN_FAULT_ROUNDS")
        .ok()
        .map(|v| v.parse().expect("DEEPTRAIN_FAULT_ROUNDS must be a number"))
}

/// A seeded generator of test choices (splitmix64; the points must not depend on a crate's
/// algorithm changing).
struct Choices(u64);

impl Choices {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `1..=n`.
    fn one_to(&mut self, n: u64) -> u64 {
        1 + self.next() % n.max(1)
    }
}

/// The command with the environment that matters to deeptrain cleared.
fn command(cwd: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("CANDLE_NUM_THREADS")
        .env_remove("RAYON_NUM_THREADS")
        .env_remove("DEEPTRAIN_TEST_PAUSE");
    cmd
}

/// Runs the binary to its end; a panic fails the test.
fn run(cwd: &Path, args: &[&str]) -> Ran {
    let out = command(cwd, args).stdin(Stdio::null()).output().unwrap();
    let ran = Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !ran.stderr.contains("panicked"),
        "{args:?} panicked:\n{ran}"
    );
    ran
}

fn run_ok(cwd: &Path, args: &[&str]) -> Ran {
    let ran = run(cwd, args);
    assert_eq!(ran.code, Some(0), "{args:?} failed:\n{ran}");
    ran
}

/// A command that must fail with exit status 1 and one `error: ` line; returns the line.
fn run_failing(cwd: &Path, args: &[&str]) -> String {
    let ran = run(cwd, args);
    one_error_line(&ran, args)
}

fn one_error_line(ran: &Ran, what: impl std::fmt::Debug) -> String {
    assert_eq!(ran.code, Some(1), "{what:?}:\n{ran}");
    let msg = ran.stderr.trim_end();
    assert_eq!(msg.lines().count(), 1, "{what:?}: not one line:\n{ran}");
    assert!(msg.starts_with("error: "), "{what:?}:\n{ran}");
    msg.to_string()
}

/// Starts `deeptrain ARGS`, with `DEEPTRAIN_TEST_PAUSE=pause` when given.
fn start(cwd: &Path, args: &[&str], pause: Option<&str>) -> Proc {
    let mut cmd = command(cwd, args);
    if let Some(p) = pause {
        cmd.env("DEEPTRAIN_TEST_PAUSE", p);
    }
    Proc::start(cmd)
}

/// What must come out of a run bitwise, by name: the final checkpoint's weights,
/// optimizer buffers and state (wall times and the checkpoint count aside), `best/`'s
/// weights and the CSV logs.
fn outcome(run: &Path) -> Vec<(String, Vec<u8>)> {
    let last = checkpoint::list(run)
        .unwrap()
        .pop()
        .unwrap_or_else(|| panic!("no checkpoint in {}", run.display()));
    let state = checkpoint::load(&last).unwrap().meta.state;
    assert!(state.is_done(), "{}: not finished", last.display());
    let mut out = vec![("state".to_string(), state_bytes(&state))];
    for (name, path) in [
        ("model", last.join(checkpoint::MODEL_FILE)),
        ("optimizer", last.join(checkpoint::OPTIMIZER_FILE)),
        ("best model", run.join("best").join(checkpoint::MODEL_FILE)),
        ("train.csv", run.join("logs/train.csv")),
        ("val.csv", run.join("logs/val.csv")),
    ] {
        out.push((name.to_string(), std::fs::read(&path).unwrap_or_default()));
    }
    out
}

/// The names of `a` whose bytes differ in `b`.
fn differences(a: &[(String, Vec<u8>)], b: &[(String, Vec<u8>)]) -> Vec<String> {
    a.iter()
        .zip(b)
        .filter(|(x, y)| x != y)
        .map(|(x, _)| x.0.clone())
        .collect()
}

/// Entries a killed process may leave behind: hidden names in the run directory and its
/// `checkpoints/`, the lock file aside.
fn leftovers(run: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for dir in [run.to_path_buf(), run.join(checkpoint::CHECKPOINTS_DIR)] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name != ".lock" {
                found.push(dir.join(name).display().to_string());
            }
        }
    }
    found
}

/// An uninterrupted run of `JOB`, shared by the tests of this file.
struct Reference {
    outcome: Vec<(String, Vec<u8>)>,
    /// Numbered checkpoints it writes; every `in_save:K` up to this is reached.
    saves: u64,
    /// Train iterations: every `iter:N` up to this is reached.
    iterations: u64,
    /// From start to exit.
    wall: Duration,
}

fn reference() -> &'static Reference {
    static REF: OnceLock<Reference> = OnceLock::new();
    REF.get_or_init(|| {
        let cwd = scratch("faults-reference");
        std::fs::write(cwd.join("job.json"), JOB).unwrap();
        let started = Instant::now();
        run_ok(&cwd, &["train", "job.json", "--run-dir", "R"]);
        let wall = started.elapsed();
        let run = cwd.join("R");
        let state = checkpoint::load_latest(&run).unwrap().meta.state;
        assert_eq!(state.batches_fit, 90);
        Reference {
            outcome: outcome(&run),
            saves: state.checkpoints_saved,
            iterations: state.batches_fit,
            wall,
        }
    })
}

/// Takes the run in `cwd/run` to its end: `resume` when it holds a checkpoint, else
/// `train` again. Either must work: a run directory where neither does is a dead end.
fn finish_run(cwd: &Path, name: &str) -> Ran {
    match checkpoint::list(&cwd.join(name)).is_ok_and(|l| !l.is_empty()) {
        true => run(cwd, &["resume", name]),
        false => run(cwd, &["train", "job.json", "--run-dir", name]),
    }
}

/// Where a round's process is stopped.
#[derive(Debug, Clone)]
enum Point {
    /// `DEEPTRAIN_TEST_PAUSE=iter:N`.
    Iter(u64),
    /// `DEEPTRAIN_TEST_PAUSE=in_save:K`: the K-th save, before its rename.
    InSave(u64),
    /// `DEEPTRAIN_TEST_PAUSE=after_save:K`: the K-th save, right after its rename.
    AfterSave(u64),
    /// This long after the run says which directory it trains.
    After(Duration),
}

impl Point {
    fn pause(&self) -> Option<String> {
        match self {
            Point::Iter(n) => Some(format!("iter:{n}")),
            Point::InSave(k) => Some(format!("in_save:{k}")),
            Point::AfterSave(k) => Some(format!("after_save:{k}")),
            Point::After(_) => None,
        }
    }
}

/// Starts the next session of `cwd/run` (`resume`, or `train` when it holds no
/// checkpoint) and stops it at `point` with `signal` (`None`: SIGKILL). Returns the
/// session's output and whether the stop arrived before the session ended.
fn stop_at(cwd: &Path, run: &str, point: &Point, signal: Option<&str>) -> (Ran, bool) {
    let used = checkpoint::list(&cwd.join(run)).is_ok_and(|l| !l.is_empty());
    let args: Vec<&str> = match used {
        true => vec!["resume", run],
        false => vec!["train", "job.json", "--run-dir", run],
    };
    let pause = point.pause();
    let mut p = start(cwd, &args, pause.as_deref());
    let reached = match point {
        Point::After(delay) => {
            let started = p.next_line_starting(&["run directory:", "resuming "]);
            if started.is_some() {
                std::thread::sleep(*delay);
            }
            started.is_some()
        }
        _ => p.next_line_starting(&["paused at "]).is_some(),
    };
    if reached {
        match signal {
            None => {
                p.kill();
            }
            Some(s) => p.signal(s),
        }
    }
    let ran = p.finish();
    let stopped = reached && ran.code != Some(0);
    (ran, stopped)
}

/// How one kill round ended, when not as the uninterrupted run.
struct Failure {
    run: String,
    points: Vec<Point>,
    what: String,
    /// A log was found damaged on resume and rebuilt (a `*.damaged-*` file is beside it).
    logs_rebuilt: bool,
}

#[test]
fn kill_9_at_seeded_points_then_resume_is_bitwise_identical() {
    let reference = reference();
    let cwd = scratch("faults-kill");
    std::fs::write(cwd.join("job.json"), JOB).unwrap();
    let full = full_rounds();
    // CI: pause points only (deterministic); the measurement adds timed kills and kills
    // right after a checkpoint's rename.
    let rounds = full.unwrap_or(4);
    let mut choose = Choices(14);
    let (mut kills, mut in_save, mut after_save, mut in_save_timed, mut never_started) =
        (0, 0, 0, 0, 0);
    let mut failures: Vec<Failure> = Vec::new();
    for round in 0..rounds {
        let run = format!("r{round:03}");
        // Full runs kill some resumed sessions again.
        let sessions = if full.is_some() && choose.next().is_multiple_of(3) {
            2
        } else {
            1
        };
        let mut points = Vec::new();
        for _ in 0..sessions {
            let kind = match full {
                Some(_) => choose.next() % 4,
                None => round as u64 % 2,
            };
            let point = match kind {
                0 => Point::InSave(choose.one_to(reference.saves)),
                1 => Point::Iter(choose.one_to(reference.iterations)),
                2 => Point::AfterSave(choose.one_to(reference.saves)),
                _ => Point::After(Duration::from_micros(
                    choose.next() % reference.wall.as_micros() as u64,
                )),
            };
            let (ran, killed) = stop_at(&cwd, &run, &point, None);
            if !killed {
                assert_eq!(ran.code, Some(0), "{run} {point:?}:\n{ran}");
                continue;
            }
            assert_eq!(ran.code, None, "{run} {point:?}: not killed:\n{ran}");
            kills += 1;
            let left = leftovers(&cwd.join(&run));
            let cut_save = left.iter().any(|n| n.contains("/.tmp-"));
            match point {
                Point::InSave(_) => {
                    assert!(cut_save, "{run}: killed in a save, no temp dir: {left:?}");
                    in_save += 1;
                }
                Point::AfterSave(_) => after_save += 1,
                Point::After(_) if cut_save => in_save_timed += 1,
                _ => {}
            }
            if checkpoint::list(&cwd.join(&run)).unwrap().is_empty() {
                never_started += 1;
            }
            points.push(point);
        }
        let dir = cwd.join(&run);
        let ran = finish_run(&cwd, &run);
        let logs_rebuilt = std::fs::read_dir(dir.join("logs")).is_ok_and(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().contains(".damaged-"))
        });
        let mut what = Vec::new();
        if ran.code != Some(0) {
            what.push(format!("dead end:\n{ran}"));
        } else {
            let differ = differences(&reference.outcome, &outcome(&dir));
            if !differ.is_empty() {
                what.push(format!("{differ:?} differ from the uninterrupted run"));
            }
            let left = leftovers(&dir);
            if !left.is_empty() {
                what.push(format!("left behind {left:?}"));
            }
        }
        match what.is_empty() {
            true => std::fs::remove_dir_all(&dir).unwrap(),
            // Kept to be looked at.
            false => failures.push(Failure {
                run,
                points,
                what: what.join("; "),
                logs_rebuilt,
            }),
        }
    }
    let dead = failures
        .iter()
        .filter(|f| f.what.contains("dead end"))
        .count();
    let logs_only = failures
        .iter()
        .filter(|f| {
            f.logs_rebuilt
                && f.what
                    .ends_with(r#"["train.csv"] differ from the uninterrupted run"#)
        })
        .count();
    println!(
        "kill -9: {kills} kills in {rounds} runs; {in_save} inside a save (temp dir complete, \
         not renamed), {after_save} right after a save's rename, {in_save_timed} timed ones \
         that cut a save short; {never_started} left no checkpoint; dead ends: {dead}; runs \
         that differ: {} ({logs_only} in train.csv only, rebuilt on resume)",
        failures.len()
    );
    let report: Vec<String> = failures
        .iter()
        .map(|f| format!("{} {:?}: {}", f.run, f.points, f.what))
        .collect();
    assert!(report.is_empty(), "{}", report.join("\n"));
    // Every kind of point was exercised.
    assert!(kills >= rounds.min(4) && in_save >= 1, "{kills} kills");
}

/// A kill right after a checkpoint is renamed into place keeps the logs whole: the CSV
/// logger writes each row through as it logs it (it used to flush at `Stage::Save`, after
/// the rename, and the next `resume` set `train.csv` aside as damaged).
#[test]
fn a_kill_right_after_a_checkpoint_rename_keeps_the_logs() {
    let reference = reference();
    let cwd = scratch("faults-after-rename");
    std::fs::write(cwd.join("job.json"), JOB).unwrap();
    // The 5th save: batch 35, rows 29 to 35 still in the logger's buffer.
    let (ran, killed) = stop_at(&cwd, "R", &Point::AfterSave(5), None);
    assert!(killed, "{ran}");
    run_ok(&cwd, &["resume", "R"]);
    let differ = differences(&reference.outcome, &outcome(&cwd.join("R")));
    assert!(differ.is_empty(), "{differ:?} differ");
}

#[test]
fn sigint_and_sigterm_at_seeded_points_save_and_resume_bitwise() {
    let reference = reference();
    let cwd = scratch("faults-signals");
    std::fs::write(cwd.join("job.json"), JOB).unwrap();
    let rounds = full_rounds().map_or(2, |n| (n / 4).max(2));
    let mut choose = Choices(15);
    let (mut stops, mut in_save) = (0, 0);
    for round in 0..rounds {
        let run = format!("s{round:03}");
        let signal = ["-INT", "-TERM"][round % 2];
        let point = match round.is_multiple_of(2) || choose.next().is_multiple_of(2) {
            true => Point::InSave(choose.one_to(reference.saves)),
            false => Point::Iter(choose.one_to(reference.iterations - 1)),
        };
        let (ran, stopped) = stop_at(&cwd, &run, &point, Some(signal));
        assert!(stopped, "{run} {point:?} {signal}: not stopped:\n{ran}");
        assert_eq!(ran.code, Some(130), "{run} {point:?} {signal}:\n{ran}");
        assert!(
            ran.stdout
                .contains(&format!("resume with: deeptrain resume {run}")),
            "{run} {point:?}:\n{ran}"
        );
        stops += 1;
        in_save += matches!(point, Point::InSave(_)) as usize;
        let dir = cwd.join(&run);
        assert!(leftovers(&dir).is_empty(), "{run}: {:?}", leftovers(&dir));
        run_ok(&cwd, &["resume", &run]);
        let differ = differences(&reference.outcome, &outcome(&dir));
        assert!(
            differ.is_empty(),
            "{run} {point:?} {signal}: {differ:?} differ"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
    println!(
        "SIGINT/SIGTERM: {stops} stops (alternating), {in_save} of them during a save; all resumed bitwise"
    );
}

/// Copies a directory tree.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        match e.file_type().unwrap().is_dir() {
            true => copy_dir(&e.path(), &target),
            false => {
                std::fs::copy(e.path(), &target).unwrap();
            }
        }
    }
}

/// A train log whose `batches_fit` column repeats a value has rows of two writers.
fn assert_no_duplicate_rows(run: &Path) {
    let text = std::fs::read_to_string(run.join("logs/train.csv")).unwrap();
    let mut seen = std::collections::HashSet::new();
    for line in text.lines().skip(1) {
        let first = line.split(',').next().unwrap().to_string();
        assert!(seen.insert(first.clone()), "row {first} twice in train.csv");
    }
}

#[test]
fn two_processes_started_at_once_on_one_run_exactly_one_trains() {
    let reference = reference();
    let cwd = scratch("faults-race");
    std::fs::write(cwd.join("job.json"), JOB).unwrap();
    // An interrupted run for the `resume` races.
    let (ran, stopped) = stop_at(&cwd, "template", &Point::Iter(20), Some("-INT"));
    assert!(stopped && ran.code == Some(130), "{ran}");
    let rounds = full_rounds().map_or(2, |n| (n * 2 / 5).max(2));
    let (mut by_lock, mut by_used) = (0, 0);
    for round in 0..rounds {
        let run = format!("x{round:03}");
        let resume = round % 2 == 1;
        let args: Vec<&str> = match resume {
            true => {
                copy_dir(&cwd.join("template"), &cwd.join(&run));
                vec!["resume", &run]
            }
            false => vec!["train", "job.json", "--run-dir", &run],
        };
        let (a, b) = (start(&cwd, &args, None), start(&cwd, &args, None));
        let pids = [a.pid(), b.pid()];
        let ran = [a.finish(), b.finish()];
        let winners: Vec<usize> = (0..2).filter(|&i| ran[i].code == Some(0)).collect();
        assert_eq!(
            winners.len(),
            1,
            "{run} {args:?}: not exactly one trained:\n{}\n{}",
            ran[0],
            ran[1]
        );
        let (w, l) = (winners[0], 1 - winners[0]);
        let loser = &ran[l];
        let msg = loser.stderr.trim_end();
        let refused_by_lock = format!("{run}: is being trained by ");
        if msg.starts_with(&format!("error: {refused_by_lock}")) {
            assert_eq!(loser.code, Some(1), "{loser}");
            assert!(msg.ends_with("; wait for it or stop it"), "{msg}");
            let named = msg
                .split("is being trained by pid ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .and_then(|pid| pid.parse::<u32>().ok());
            match named {
                Some(pid) if pid == pids[w] => {
                    assert!(
                        msg.contains(" on host ") && msg.contains(" since 20"),
                        "{msg}"
                    );
                    by_lock += 1;
                }
                _ => panic!("{run}: does not name the holder (pid {}): {msg}", pids[w]),
            }
        } else {
            // Only `train`: the winner had written its first checkpoint before the other
            // looked, and a directory holding a run is refused before the lock is tried.
            assert!(
                !resume && loser.code == Some(2) && msg.contains("already holds a run"),
                "{run} {args:?}: not refused by the lock:\n{loser}"
            );
            by_used += 1;
        }
        let dir = cwd.join(&run);
        assert_no_duplicate_rows(&dir);
        let differ = differences(&reference.outcome, &outcome(&dir));
        assert!(differ.is_empty(), "{run}: {differ:?} differ");
        std::fs::remove_dir_all(&dir).unwrap();
    }
    println!(
        "races: {rounds} pairs started at once ({} train, {} resume); exactly one trained each \
         time; {by_lock} refused naming the holder, {by_used} refused as a used directory",
        rounds.div_ceil(2),
        rounds / 2
    );
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it) at `dir`; `None`, saying
    /// why the test is skipped, where mounting is not allowed.
    fn mount(dir: &Path, size: &str, test: &str) -> Option<Tmpfs> {
        // A mount left by an aborted earlier run of the test.
        let _ = Command::new("umount").arg("-l").arg(dir).output();
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs(dir.to_path_buf())),
            Ok(o) => {
                println!(
                    "{test}: skipped: cannot mount a tmpfs (run as root to test this): {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                println!("{test}: skipped: cannot run mount: {e}");
                None
            }
        }
    }

    fn remount(&self, options: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.0)
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount {options} failed");
    }

    /// Bytes free, as the file system says.
    fn free(&self) -> u64 {
        let out = Command::new("stat")
            .args(["-f", "-c", "%a %S"])
            .arg(&self.0)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let v: Vec<u64> = text
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        v[0] * v[1]
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Space a checkpoint takes on a file system of 4 KiB blocks.
fn on_disk(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len().div_ceil(4096) * 4096)
        .sum()
}

#[test]
fn a_full_disk_fails_the_save_clearly_and_leaves_no_dead_end() {
    let cwd = scratch("faults-full-disk");
    std::fs::write(cwd.join("job.json"), DISK_JOB).unwrap();
    run_ok(&cwd, &["train", "job.json", "--run-dir", "ref"]);
    let expected = outcome(&cwd.join("ref"));
    let size = on_disk(&checkpoint::list(&cwd.join("ref")).unwrap()[0]);
    let Some(disk) = Tmpfs::mount(&cwd.join("M"), "16m", "full disk") else {
        return;
    };
    // The disk fills up after the first checkpoint (at batch 10), then before it.
    for (pause, saved_before) in [("iter:12", 1), ("iter:5", 0)] {
        let run = format!("M/{}", pause.replace(':', ""));
        let mut p = start(&cwd, &["train", "job.json", "--run-dir", &run], Some(pause));
        p.wait_for_line("paused at ");
        // Half a checkpoint's room is left.
        let filler = cwd.join("M/filler");
        let fill = disk.free().saturating_sub(size / 2);
        std::fs::write(&filler, vec![7u8; fill as usize]).unwrap();
        p.release();
        let ran = p.finish();
        let msg = one_error_line(&ran, pause);
        assert!(
            msg.contains(&format!("{run}/")) && msg.contains("No space left on device"),
            "{pause}: {msg}"
        );
        let dir = cwd.join(&run);
        assert!(leftovers(&dir).is_empty(), "{pause}: {:?}", leftovers(&dir));
        let kept = checkpoint::list(&dir).unwrap();
        assert_eq!(kept.len(), saved_before, "{pause}: {kept:?}");
        if saved_before > 0 {
            // The checkpoint before the failed save still loads.
            let ckpt = checkpoint::load_latest(&dir).unwrap();
            assert_eq!(ckpt.meta.state.batches_fit, 10);
        } else {
            // Nothing to resume, and it says how to start again.
            let e = run_failing(&cwd, &["resume", &run]);
            assert!(e.contains("never started"), "{e}");
        }
        // With room again, the same directory goes on (or starts again) to the end.
        std::fs::remove_file(&filler).unwrap();
        let args: Vec<&str> = match saved_before {
            0 => vec!["train", "job.json", "--run-dir", &run],
            _ => vec!["resume", &run],
        };
        run_ok(&cwd, &args);
        let differ = differences(&expected, &outcome(&dir));
        assert!(differ.is_empty(), "{pause}: {differ:?} differ");
        println!("full disk at {pause}: {msg}");
    }
}

#[test]
fn a_read_only_run_directory_is_one_clear_error_naming_the_path() {
    let cwd = scratch("faults-read-only");
    std::fs::write(cwd.join("job.json"), JOB).unwrap();
    let Some(disk) = Tmpfs::mount(&cwd.join("M"), "64m", "read-only") else {
        return;
    };
    let (ran, stopped) = stop_at(&cwd, "M/R", &Point::Iter(20), Some("-INT"));
    assert!(stopped && ran.code == Some(130), "{ran}");
    disk.remount("ro");
    let e = run_failing(&cwd, &["resume", "M/R"]);
    assert!(
        e.contains("M/R/.lock") && e.contains("Read-only file system"),
        "{e}"
    );
    let e = run_failing(&cwd, &["train", "job.json", "--run-dir", "M/R2"]);
    assert!(
        e.contains("M/R2") && e.contains("Read-only file system"),
        "{e}"
    );
    assert!(!cwd.join("M/R2").exists());
    // Readers need no write access.
    run_ok(&cwd, &["inspect", "M/R"]);
    println!("read-only: {e}");
    disk.remount("rw");
    run_ok(&cwd, &["resume", "M/R"]);
    let differ = differences(&reference().outcome, &outcome(&cwd.join("M/R")));
    assert!(differ.is_empty(), "{differ:?} differ");
}

/// `files` npy files of `rows` samples of 6 features (several pages each, so that a read
/// through a truncated map would raise SIGBUS) and their class ids, in `dir`.
fn data_dir(dir: &Path, files: usize, rows: usize) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let mut labels = Vec::new();
    let mut paths = Vec::new();
    for f in 0..files {
        let mut x = Vec::new();
        for i in f * rows..(f + 1) * rows {
            let class = i % 4;
            for j in 0..6 {
                let noise = ((i * 7 + j * 13) % 17) as f32 / 17.0;
                x.push(if j == class { 1.0 + noise } else { noise });
            }
            labels.push(class as i64);
        }
        let path = dir.join(format!("batch_{f}.npy"));
        npy_f32(&path, &[rows, 6], &x);
        paths.push(path);
    }
    npy_i64(&dir.join("labels.npy"), &labels);
    paths
}

/// Issue 14 item 11: a mapped data file that changes size under a run ends it with an
/// error naming the file, after a checkpoint of the state before the batch that could not
/// be read; once the file is restored, `resume` ends bitwise where an uninterrupted run
/// does. Truncated train files (read next by a train batch) and extended validation files
/// (read next by a validation batch).
#[test]
fn a_data_file_changing_size_mid_run_stops_with_a_checkpoint_and_resumes_bitwise() {
    let cwd = scratch("faults-data-changed");
    let train = data_dir(&cwd.join("D"), 4, 1000);
    let val = data_dir(&cwd.join("V"), 1, 200);
    std::fs::write(
        cwd.join("job.json"),
        r#"{"data": {"source": "D", "val_source": "V", "batch_size": 50},
            "train": {"epochs": 2, "validate_every": {"batches": 8},
                      "checkpoint_every": {"batches": 10}, "report": false}}"#,
    )
    .unwrap();
    run_ok(&cwd, &["train", "job.json", "--run-dir", "ref"]);
    let expected = outcome(&cwd.join("ref"));
    // (pause, files changed, their new length from the old, validating when stopped)
    type Change = fn(u64) -> u64;
    let cases: [(&str, &[PathBuf], Change, bool); 2] = [
        ("iter:5", &train, |_| 100, false),
        ("iter:8", &val, |n| n + 4096, true),
    ];
    for (pause, files, change, validating) in cases {
        let run = format!("R-{}", pause.replace(':', ""));
        let mut p = start(&cwd, &["train", "job.json", "--run-dir", &run], Some(pause));
        p.wait_for_line("paused at ");
        let originals: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
        for (f, bytes) in files.iter().zip(&originals) {
            let file = std::fs::OpenOptions::new().write(true).open(f).unwrap();
            file.set_len(change(bytes.len() as u64)).unwrap();
        }
        p.release();
        let ran = p.finish();
        let msg = one_error_line(&ran, pause);
        let named = files.iter().zip(&originals).find(|(f, _)| {
            msg.starts_with(&format!(
                "error: {}: changed size under the run",
                f.strip_prefix(&cwd).unwrap().display()
            ))
        });
        let Some((_, bytes)) = named else {
            panic!("{pause}: the error names none of the changed files: {msg}");
        };
        let (was, now) = (bytes.len() as u64, change(bytes.len() as u64));
        assert!(
            msg.contains(&format!("(was {was} bytes, now {now})")),
            "{msg}"
        );
        // The checkpoint of the state before the batch that could not be read.
        let line = ran
            .stdout
            .lines()
            .find(|l| l.starts_with("stopped before the batch it could not read; checkpoint: "))
            .unwrap_or_else(|| panic!("{pause}: no checkpoint line:\n{ran}"));
        let ckpt = cwd.join(line.rsplit(": ").next().unwrap());
        assert!(
            ran.stdout.contains(&format!(
                "resume with: deeptrain resume {run} (once the file is restored)"
            )),
            "{ran}"
        );
        let state = checkpoint::load(&ckpt).unwrap().meta.state;
        let stopped_at: u64 = pause[5..].parse().unwrap();
        assert_eq!(state.batches_fit, stopped_at, "{pause}");
        assert_eq!(
            matches!(state.phase, deeptrain::Phase::Validate { .. }),
            validating,
            "{pause}: {:?}",
            state.phase
        );
        assert_eq!(state.batches_validated, 0);
        assert_eq!(checkpoint::load_latest(&cwd.join(&run)).unwrap().dir, ckpt);
        for (f, bytes) in files.iter().zip(&originals) {
            std::fs::write(f, bytes).unwrap();
        }
        run_ok(&cwd, &["resume", &run]);
        let differ = differences(&expected, &outcome(&cwd.join(&run)));
        assert!(differ.is_empty(), "{pause}: {differ:?} differ");
        println!("data changed at {pause}: {msg}");
    }
}

/// Flips one byte at `at` (xor `mask`).
fn flip(path: &Path, at: usize, mask: u8) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= mask;
    std::fs::write(path, bytes).unwrap();
}

/// Single-byte damage anywhere in the newest checkpoint: loading falls back to the
/// previous one, or loads this one with the same bits (a file no digest covers: the
/// report), never anything else, never a panic; and a `resume` from such damage ends
/// where an uninterrupted run does. CI tries a few bytes per file; the full measurement
/// every byte of the checksummed files and every 64th of the report.
#[test]
fn a_flipped_byte_in_any_checkpoint_file_falls_back_or_refuses_never_other_bits() {
    let reference = reference();
    let cwd = scratch("faults-flips");
    std::fs::write(cwd.join("job.json"), JOB).unwrap();
    let (ran, stopped) = stop_at(&cwd, "template", &Point::Iter(40), Some("-INT"));
    assert!(stopped && ran.code == Some(130), "{ran}");
    let template = cwd.join("template");
    let all = checkpoint::list(&template).unwrap();
    let (previous, newest) = (all[all.len() - 2].clone(), all[all.len() - 1].clone());
    let original = checkpoint::load(&newest).unwrap();
    let original_state = state_bytes(&original.meta.state);
    let full = full_rounds().is_some();
    let mut choose = Choices(16);
    let (mut flips, mut fell_back, mut same_bits) = (0, 0, 0);
    let files = [
        checkpoint::STATE_FILE,
        checkpoint::MODEL_FILE,
        checkpoint::OPTIMIZER_FILE,
        checkpoint::CARRIED_FILE,
        "report.png",
    ];
    for file in files {
        let path = newest.join(file);
        let len = std::fs::metadata(&path).unwrap().len() as usize;
        let positions: Vec<usize> = match (full, file) {
            (true, "report.png") => (0..len).step_by(64).collect(),
            (true, _) => (0..len).collect(),
            (false, _) => {
                let mut v = vec![0, len / 2, len - 1];
                v.extend((0..5).map(|_| choose.next() as usize % len));
                v
            }
        };
        for at in positions {
            let mask = 1u8 << (choose.next() % 8);
            flip(&path, at, mask);
            let loaded = std::panic::catch_unwind(|| checkpoint::load_latest(&template));
            flip(&path, at, mask);
            let loaded = loaded.unwrap_or_else(|_| panic!("{file} byte {at}: load panicked"));
            flips += 1;
            let ckpt = match loaded {
                Ok(c) => c,
                Err(e) => panic!("{file} byte {at}: the previous checkpoint was not used: {e}"),
            };
            if ckpt.dir == previous {
                fell_back += 1;
                continue;
            }
            assert_eq!(ckpt.dir, newest, "{file} byte {at}");
            assert_eq!(file, "report.png", "{file} byte {at}: damage not found");
            // Its checksummed files are untouched: the same state, weights and buffers.
            assert!(state_bytes(&ckpt.meta.state) == original_state);
            same_bits += 1;
        }
    }
    // The whole way: a damaged newest checkpoint, resumed, ends as an uninterrupted run.
    let resumed: &[&str] = match full {
        true => &files[..4],
        false => &[checkpoint::MODEL_FILE],
    };
    for file in resumed {
        let run = format!("damaged-{file}");
        copy_dir(&template, &cwd.join(&run));
        let newest = checkpoint::list(&cwd.join(&run)).unwrap().pop().unwrap();
        let path = newest.join(file);
        flip(
            &path,
            std::fs::metadata(&path).unwrap().len() as usize / 2,
            0x10,
        );
        let ran = run_ok(&cwd, &["resume", &run]);
        assert!(ran.stderr.contains("skipped damaged checkpoint"), "{ran}");
        let differ = differences(&reference.outcome, &outcome(&cwd.join(&run)));
        assert!(differ.is_empty(), "{file}: {differ:?} differ");
    }
    println!(
        "byte flips: {flips} single-byte flips in the newest checkpoint; {fell_back} fell back \
         to the previous checkpoint, {same_bits} (report.png, not covered by a digest) loaded \
         the same bits; {} resumed end to end bitwise",
        resumed.len()
    );
}
