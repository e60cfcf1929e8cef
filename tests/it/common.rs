//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use deeptrain::checkpoint;
use deeptrain::data_loaders::array::DType as ArrayDType;
use deeptrain::data_loaders::npy::write_npy;
use deeptrain::registry::{Component, MlpArgs};
use deeptrain::trainer::Every;
use deeptrain::{JobConfig, Stage, TrainState, Trainer};

/// A fresh, empty directory under the target dir, unique per test name.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A small, fast job on the embedded digits: 2 epochs of 23 batches, validation every
/// 10 batches and at epoch ends (3 validation batches each), dropout on, shuffling on.
pub fn small_job(run_dir: &Path) -> JobConfig {
    let mut job = JobConfig::default();
    job.data.batch_size = 64;
    job.data.val_batch_size = Some(128);
    job.model = Component::with_args(
        "mlp",
        MlpArgs {
            hidden: vec![32],
            ..MlpArgs::default()
        },
    )
    .unwrap();
    job.train.epochs = 2;
    job.train.seed = 11;
    job.train.validate_every = Every::Batches(10);
    job.train.checkpoint_every = Every::Never;
    job.train.run_dir = run_dir.to_path_buf();
    job
}

/// The state with what legitimately differs between runs (wall time, number of
/// checkpoints written) cleared, as bytes: equal bytes mean bitwise-equal states,
/// NaNs included.
pub fn state_bytes(state: &TrainState) -> Vec<u8> {
    let mut s = state.clone();
    s.time = Default::default();
    s.checkpoints_saved = 0;
    bincode::serde::encode_to_vec(&s, bincode::config::standard()).unwrap()
}

/// Model and optimizer tensors of a checkpoint as (name, raw little-endian bytes).
pub fn tensor_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let ckpt = checkpoint::load_latest(dir).unwrap();
    let mut out = Vec::new();
    for (prefix, map) in [("model", &ckpt.model), ("optimizer", &ckpt.optimizer)] {
        let mut names: Vec<&String> = map.keys().collect();
        names.sort();
        for n in names {
            let t = map[n].flatten_all().unwrap();
            let bytes = match t.dtype() {
                candle_core::DType::F32 => t
                    .to_vec1::<f32>()
                    .unwrap()
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect(),
                candle_core::DType::I64 => t
                    .to_vec1::<i64>()
                    .unwrap()
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect(),
                other => panic!("unexpected dtype {other:?}"),
            };
            out.push((format!("{prefix}/{n}"), bytes));
        }
    }
    out
}

/// Stages that end a transition of the state machine; each transition fires exactly one.
const TRANSITION_ENDS: [Stage; 5] = [
    Stage::TrainEpochBegin,
    Stage::TrainIterEnd,
    Stage::TrainEpochEnd,
    Stage::ValIterEnd,
    Stage::ValEnd,
];

/// Makes `trainer` interrupt itself after `k` more transitions; returns the counter.
pub fn interrupt_after(trainer: &mut Trainer, k: usize) -> Arc<AtomicUsize> {
    let count = Arc::new(AtomicUsize::new(0));
    for stage in TRANSITION_ENDS {
        let handle = trainer.interrupt_handle();
        let count = count.clone();
        trainer.on(stage, move |_| {
            if count.fetch_add(1, Ordering::SeqCst) + 1 == k {
                handle.interrupt();
            }
            Ok(())
        });
    }
    count
}

/// Writes `values` as a float32 `.npy` of `shape` (through the library's own writer; the
/// reader's byte-level tests in `autodata.rs` build their files by hand instead).
pub fn npy_f32(path: &Path, shape: &[usize], values: &[f32]) {
    let bytes: Vec<u8> = values.iter().flat_map(|x| x.to_le_bytes()).collect();
    write_npy(path, ArrayDType::F32, shape, &bytes).unwrap();
}

/// Writes `values` as a one-dimensional int64 `.npy` (class ids).
pub fn npy_i64(path: &Path, values: &[i64]) {
    let bytes: Vec<u8> = values.iter().flat_map(|x| x.to_le_bytes()).collect();
    write_npy(path, ArrayDType::I64, &[values.len()], &bytes).unwrap();
}

/// How a process ended and what it printed.
pub struct Ran {
    /// Its exit status; `None` when a signal ended it.
    pub code: Option<i32>,
    /// All of its stdout.
    pub stdout: String,
    /// All of its stderr.
    pub stderr: String,
}

impl std::fmt::Display for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A running process (a `deeptrain` command) whose stdout is read line by line, up to
/// the lines a test waits for, while a thread collects its stderr. Its stdin is a pipe
/// held open until its stdout ends (or [`release`](Self::release)), so that a
/// `DEEPTRAIN_TEST_PAUSE` pause waits for the test. Dropped unfinished (a failed
/// assertion), it kills the process.
pub struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    reader: BufReader<ChildStdout>,
    /// Its stdout read so far.
    pub stdout: String,
    stderr: Option<JoinHandle<String>>,
}

impl Proc {
    /// Starts `cmd` with its stdin, stdout and stderr piped to the test.
    pub fn start(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Proc {
            stdin: child.stdin.take(),
            reader: BufReader::new(child.stdout.take().unwrap()),
            child,
            stdout: String::new(),
            stderr: Some(stderr),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads stdout up to the next line starting with any of `prefixes` and returns it
    /// (without its line end); `None` when stdout ends first.
    pub fn next_line_starting(&mut self, prefixes: &[&str]) -> Option<String> {
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).unwrap_or(0) == 0 {
                return None;
            }
            self.stdout.push_str(&line);
            if prefixes.iter().any(|p| line.starts_with(p)) {
                return Some(line.trim_end().to_string());
            }
        }
    }

    /// Reads stdout up to the next line starting with `prefix` and returns it; fails the
    /// test, with all the output and how the process ended, when it ends first.
    pub fn wait_for_line(&mut self, prefix: &str) -> String {
        match self.next_line_starting(&[prefix]) {
            Some(line) => line,
            None => {
                drop(self.stdin.take());
                let status = self.child.wait().unwrap();
                let stderr = self.stderr.take().map(|h| h.join().unwrap());
                panic!(
                    "the process ended ({status}) before printing {prefix:?}:\n--- stdout\n{}--- stderr\n{}",
                    self.stdout,
                    stderr.unwrap_or_default()
                );
            }
        }
    }

    /// Sends `signal` (as `kill` takes it: `-INT`, `-TERM`, `-KILL`).
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {signal} {} failed", self.pid());
    }

    /// Kills the process (SIGKILL); nothing when it has ended.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
    }

    /// Lets a paused process go on without a stop request (a line on its stdin).
    pub fn release(&mut self) {
        let mut stdin = self.stdin.take().expect("released twice");
        stdin.write_all(b"go\n").unwrap();
    }

    /// Reads the rest of stdout, closes stdin and waits for the end; a panic message on
    /// stderr fails the test. Stdin stays open until stdout ends, so that a pause is
    /// only ever left by the signal the test sent (or [`release`](Self::release)).
    pub fn finish(mut self) -> Ran {
        let mut stdout = std::mem::take(&mut self.stdout);
        let _ = self.reader.read_to_string(&mut stdout);
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        let ran = Ran {
            code: status.code(),
            stdout,
            stderr: self.stderr.take().unwrap().join().unwrap(),
        };
        assert!(!ran.stderr.contains("panicked"), "panicked:\n{ran}");
        ran
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Unfinished: a test failed on the way; leave no process behind.
        if self.stderr.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
