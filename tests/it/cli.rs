//! The real `deeptrain` binary: train, resume, inspect, errors, and signals.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

pub(crate) use crate::common::Ran;
use crate::common::{scratch, Proc};
use deeptrain::checkpoint;
use deeptrain::JobConfig;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_deeptrain");

/// The command with a clean environment as far as deeptrain cares: default threads.
fn command(cwd: &Path, args: &[&str]) -> Command {
    program_command(Path::new(BIN), cwd, args)
}

/// [`command`] for another program built on deeptrain's CLI (an example's binary).
pub(crate) fn program_command(program: &Path, cwd: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("CANDLE_NUM_THREADS")
        .env_remove("RAYON_NUM_THREADS");
    cmd
}

/// Runs the binary to completion; a panic message on stderr fails the test.
fn run(cwd: &Path, args: &[&str]) -> Ran {
    run_program(Path::new(BIN), cwd, args)
}

/// [`run`] for another program built on deeptrain's CLI.
pub(crate) fn run_program(program: &Path, cwd: &Path, args: &[&str]) -> Ran {
    let out = program_command(program, cwd, args).output().unwrap();
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

/// Runs a command that must fail with `code`, printing exactly one line on stderr.
fn run_err(cwd: &Path, args: &[&str], code: i32) -> String {
    let ran = run(cwd, args);
    assert_eq!(ran.code, Some(code), "{args:?}:\n{ran}");
    let msg = ran.stderr.trim_end();
    if code != 2 {
        assert_eq!(msg.lines().count(), 1, "{args:?}: not one line:\n{ran}");
    }
    assert!(msg.starts_with("error: "), "{args:?}:\n{ran}");
    msg.to_string()
}

fn inspect_json(cwd: &Path, path: &str) -> Value {
    let ran = run_ok(cwd, &["inspect", path, "--json"]);
    serde_json::from_str(ran.stdout.trim())
        .unwrap_or_else(|e| panic!("inspect --json printed no JSON ({e}):\n{ran}"))
}

/// The highest-numbered checkpoint directory of a run.
fn final_checkpoint(run_dir: &Path) -> PathBuf {
    checkpoint::list(run_dir)
        .unwrap()
        .pop()
        .unwrap_or_else(|| panic!("no checkpoints in {}", run_dir.display()))
}

#[test]
fn default_job_trains_twice_in_one_cwd() {
    let cwd = scratch("cli-default");
    let ran = run_ok(&cwd, &["train"]);
    assert!(ran.stdout.contains("run directory: runs/digits\n"), "{ran}");
    assert!(ran.stdout.contains("epoch 15/15"), "{ran}");

    let j = inspect_json(&cwd, "runs/digits");
    for key in [
        "checkpoint",
        "epoch",
        "global_step",
        "batches_fit",
        "phase",
        "finished",
        "metrics",
    ] {
        assert!(j.get(key).is_some(), "inspect --json lacks {key}: {j}");
    }
    assert_eq!(j["finished"], Value::Bool(true), "{j}");
    assert_eq!(j["phase"], "done", "{j}");
    assert_eq!(j["epoch"], 15, "{j}");
    // 1797 digits, 20% held out: 1438 train samples in batches of 32 -> 45 per epoch.
    assert_eq!(j["batches_fit"], 15 * 45, "{j}");
    assert_eq!(j["global_step"], j["batches_fit"], "{j}");
    let ckpt = j["checkpoint"].as_str().unwrap();
    assert!(
        Path::new(ckpt).starts_with("runs/digits/checkpoints"),
        "{ckpt}"
    );
    let acc = j["metrics"]["val_accuracy"].as_f64().expect("val_accuracy");
    println!("default job: val_accuracy {acc:.4}");
    assert!(acc >= 0.95, "val_accuracy {acc} < 0.95: {j}");

    // The resolved config is saved and parses back to the default job (the thread
    // count may be written as resolved: 0 means the default, which is 1).
    let mut config = JobConfig::from_file(&cwd.join("runs/digits/config.json")).unwrap();
    assert!(config.threads <= 1, "threads {}", config.threads);
    config.threads = 0;
    assert_eq!(config, JobConfig::default().resolved());

    // The human view names the status.
    let human = run_ok(&cwd, &["inspect", "runs/digits"]);
    assert!(human.stdout.contains("status finished"), "{human}");

    // A second run in the same place gets a fresh directory instead of failing. (A
    // config with only a `train` section is still the default job: same run dir.)
    std::fs::write(cwd.join("one-epoch.json"), r#"{"train": {"epochs": 1}}"#).unwrap();
    let again = run_ok(&cwd, &["train", "one-epoch.json"]);
    assert!(
        again.stdout.contains("run directory: runs/digits-2\n"),
        "{again}"
    );
    assert!(cwd.join("runs/digits-2/config.json").is_file());
    assert_eq!(inspect_json(&cwd, "runs/digits-2")["epoch"], 1);
    // The first run is untouched.
    assert_eq!(inspect_json(&cwd, "runs/digits")["epoch"], 15);
}

#[test]
fn errors_are_one_line_naming_what_is_wrong() {
    let cwd = scratch("cli-errors");

    let msg = run_err(&cwd, &["resume", "/nonexistent"], 1);
    assert!(msg.contains("/nonexistent"), "{msg}");

    std::fs::write(cwd.join("bad.json"), r#"{"optimizer": {"lr": -1}}"#).unwrap();
    let msg = run_err(&cwd, &["train", "bad.json"], 1);
    assert!(msg.contains("optimizer.lr"), "{msg}");

    std::fs::write(
        cwd.join("unknown.json"),
        r#"{"optimizer": {"learning_rate": 0.1}}"#,
    )
    .unwrap();
    let msg = run_err(&cwd, &["train", "unknown.json"], 1);
    assert!(msg.contains("learning_rate"), "{msg}");
    assert!(msg.contains("unknown.json"), "{msg}");

    std::fs::write(cwd.join("malformed.json"), "{\"optimizer\": ").unwrap();
    let msg = run_err(&cwd, &["train", "malformed.json"], 1);
    assert!(msg.contains("malformed.json"), "{msg}");

    let msg = run_err(&cwd, &["train", "missing.json"], 1);
    assert!(msg.contains("missing.json"), "{msg}");

    let msg = run_err(&cwd, &["train", "--epochs", "abc"], 2);
    assert!(msg.contains("--epochs"), "{msg}");

    // None of these left a run behind.
    assert!(!cwd.join("runs").exists());

    // A run whose only checkpoint is damaged.
    std::fs::write(
        cwd.join("tiny.json"),
        r#"{"model": {"hidden": [16]}, "train": {"epochs": 1, "checkpoint_every": "never"}}"#,
    )
    .unwrap();
    run_ok(&cwd, &["train", "tiny.json", "--run-dir", "one"]);
    let ckpts = checkpoint::list(&cwd.join("one")).unwrap();
    assert_eq!(ckpts.len(), 1, "{ckpts:?}");
    let model = ckpts[0].join(checkpoint::MODEL_FILE);
    let mut bytes = std::fs::read(&model).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&model, bytes).unwrap();
    let shown = Path::new("one/checkpoints")
        .join(ckpts[0].file_name().unwrap())
        .join(checkpoint::MODEL_FILE);
    for args in [&["inspect", "one"][..], &["inspect", "one", "--json"][..]] {
        let msg = run_err(&cwd, args, 1);
        assert!(msg.contains(&shown.display().to_string()), "{msg}");
    }
    let msg = run_err(&cwd, &["resume", "one"], 1);
    assert!(msg.contains(&shown.display().to_string()), "{msg}");

    // An existing run is not overwritten by `train --run-dir`.
    let msg = run_err(&cwd, &["train", "tiny.json", "--run-dir", "one"], 2);
    assert!(msg.contains("deeptrain resume one"), "{msg}");
}

/// Starts `deeptrain ARGS` and reads its stdout up to a line starting with `prefix`
/// (failing the test if the process ends first).
fn run_until_line(cwd: &Path, args: &[&str], prefix: &str) -> Proc {
    let mut p = Proc::start(command(cwd, args));
    p.wait_for_line(prefix);
    p
}

/// 200 epochs of the default job: about 2 s alone, plenty of time to interrupt after the first.
const LONG_JOB: &str = r#"{"train": {"epochs": 200, "checkpoint_every": "never"}}"#;

/// Starts a long training run, waits for the first epoch line, sends `signal`, and
/// returns (exit code, stdout, stderr, milliseconds from the signal to the exit).
fn interrupt_after_first_epoch(cwd: &Path, run_dir: &str, signal: &str) -> (Ran, u128) {
    std::fs::write(cwd.join("cfg.json"), LONG_JOB).unwrap();
    let p = run_until_line(
        cwd,
        &["train", "cfg.json", "--run-dir", run_dir],
        "epoch 1/",
    );
    let sent = Instant::now();
    p.signal(signal);
    // Fails the test on a panic message.
    let ran = p.finish();
    let ms = sent.elapsed().as_millis();
    if ran.code == Some(0) {
        panic!(
            "the run finished before {signal} arrived ({ms} ms after sending): \
             make LONG_JOB longer\n{ran}"
        );
    }
    assert_eq!(ran.code, Some(130), "{signal} should exit with 130:\n{ran}");
    assert!(
        ran.stdout
            .contains(&format!("resume with: deeptrain resume {run_dir}")),
        "{ran}"
    );
    assert!(ran.stdout.contains("checkpoint saved: "), "{ran}");
    (ran, ms)
}

/// The interrupted run's checkpoint says it is unfinished, in both inspect views.
fn assert_unfinished(cwd: &Path, run_dir: &str) -> Value {
    let j = inspect_json(cwd, run_dir);
    assert_eq!(j["finished"], Value::Bool(false), "{j}");
    assert_ne!(j["phase"], "done", "{j}");
    assert!(j["epoch"].as_u64().unwrap() < 200, "{j}");
    let status = j["status"].as_str().unwrap().to_string();
    assert!(!status.contains("finished"), "{status}");
    let human = run_ok(cwd, &["inspect", run_dir]);
    let line = human
        .stdout
        .lines()
        .find(|l| l.starts_with("status "))
        .unwrap_or_else(|| panic!("no status line:\n{human}"));
    assert!(line.contains(&status), "{line:?} does not say {status:?}");
    j
}

#[test]
fn sigint_saves_resumes_and_matches_an_uninterrupted_run() {
    let cwd = scratch("cli-sigint");
    let (ran, ms) = interrupt_after_first_epoch(&cwd, "R", "-INT");
    println!("SIGINT to exit: {ms} ms");
    assert!(ran.stderr.contains("interrupt:"), "{ran}");
    let stopped = assert_unfinished(&cwd, "R");
    println!("stopped at: {}", stopped["status"]);
    // Exactly one checkpoint: the one the interrupt wrote.
    assert_eq!(checkpoint::list(&cwd.join("R")).unwrap().len(), 1);

    let resumed = run_ok(&cwd, &["resume", "R"]);
    assert!(resumed.stdout.contains("resuming R from "), "{resumed}");
    assert!(resumed.stdout.contains("finished: checkpoint"), "{resumed}");
    let a = inspect_json(&cwd, "R");
    assert_eq!(a["finished"], Value::Bool(true), "{a}");

    run_ok(&cwd, &["train", "cfg.json", "--run-dir", "R2"]);
    let b = inspect_json(&cwd, "R2");
    let (fa, fb) = (
        final_checkpoint(&cwd.join("R")),
        final_checkpoint(&cwd.join("R2")),
    );
    for file in [checkpoint::MODEL_FILE, checkpoint::OPTIMIZER_FILE] {
        let (x, y) = (
            std::fs::read(fa.join(file)).unwrap(),
            std::fs::read(fb.join(file)).unwrap(),
        );
        assert!(
            x == y,
            "{file} of the interrupted+resumed run differs from the uninterrupted one"
        );
    }
    for key in [
        "metrics",
        "epoch",
        "global_step",
        "batches_fit",
        "batches_validated",
        "best",
    ] {
        assert_eq!(a[key], b[key], "{key} differs: {a} vs {b}");
    }
    assert_eq!(a["epoch"], 200);
}

#[test]
fn sigterm_saves_and_exits_130() {
    let cwd = scratch("cli-sigterm");
    let (ran, ms) = interrupt_after_first_epoch(&cwd, "T", "-TERM");
    println!("SIGTERM to exit: {ms} ms");
    assert_unfinished(&cwd, "T");
    let ckpts = checkpoint::list(&cwd.join("T")).unwrap();
    assert_eq!(ckpts.len(), 1, "{ran}");
    checkpoint::load(&ckpts[0]).unwrap();
}

#[test]
fn st_digest_reads_our_safetensors() {
    let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/tools/st_digest.py");
    let python_ok = Command::new("python3")
        .args(["-c", "import safetensors, numpy"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !python_ok {
        println!("skipped: python3 with safetensors and numpy is not available");
        return;
    }
    if !tool.is_file() {
        println!("skipped: {} not found", tool.display());
        return;
    }
    let cwd = scratch("cli-st-digest");
    run_ok(&cwd, &["train", "--epochs", "1", "--run-dir", "D"]);
    let ckpt = final_checkpoint(&cwd.join("D"));
    let out = Command::new("python3")
        .arg(&tool)
        .arg(ckpt.join(checkpoint::MODEL_FILE))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "st_digest failed: {}{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Lines: "<first 16 hex of digest> <name> <dtype> <shape as a Python tuple>", then "all <hex>".
    let loaded = checkpoint::load(&ckpt).unwrap();
    let mut seen = Vec::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if parts[0] == "all" {
            assert_eq!(parts[1].len(), 64, "{line}");
            continue;
        }
        let (digest, name, dtype, shape) = (parts[0], parts[1], parts[2], parts[3..].join(" "));
        seen.push((name.to_string(), dtype.to_string(), shape.clone()));
        // The digest covers name, dtype, shape and the raw bytes we wrote.
        let t = &loaded.model[name];
        let bytes: Vec<u8> = t
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(format!("{name}|<f4|{shape}|").as_bytes());
        h.update(&bytes);
        let ours: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(&ours[..16], digest, "{name}: digest differs");
    }
    let expected: Vec<(String, String, String)> = [
        ("layers.0.bias", "(128,)"),
        ("layers.0.weight", "(128, 64)"),
        ("layers.1.bias", "(10,)"),
        ("layers.1.weight", "(10, 128)"),
    ]
    .iter()
    .map(|(n, s)| (n.to_string(), "float32".to_string(), s.to_string()))
    .collect();
    assert_eq!(seen, expected, "{text}");
}

/// Starts a long run that checkpoints every epoch, waits for its first epoch line and
/// sends `count` SIGINTs back to back.
fn sigint_burst(cwd: &Path, run_dir: &str, count: usize) -> Ran {
    std::fs::write(
        cwd.join("burst.json"),
        r#"{"train": {"epochs": 200, "checkpoint_every": {"epochs": 1}}}"#,
    )
    .unwrap();
    let p = run_until_line(
        cwd,
        &["train", "burst.json", "--run-dir", run_dir],
        "epoch 2/",
    );
    let pid = p.pid().to_string();
    let args: Vec<&str> = std::iter::repeat_n(["-INT", pid.as_str()], count)
        .flatten()
        .collect();
    // One `sh` sends them all, as fast as a user hammering Ctrl-C.
    let script = args
        .chunks(2)
        .map(|a| format!("kill {} {}", a[0], a[1]))
        .collect::<Vec<_>>()
        .join("; ");
    assert!(Command::new("sh")
        .args(["-c", &script])
        .status()
        .unwrap()
        .success());
    p.finish()
}

#[test]
fn a_second_sigint_waits_for_the_save() {
    let cwd = scratch("cli-sigint-twice");
    let ran = sigint_burst(&cwd, "R", 2);
    assert_eq!(ran.code, Some(130), "{ran}");
    assert!(!ran.stderr.contains("panicked"), "{ran}");
    // Either the save was already under way or not: it finished in both cases.
    assert!(ran.stdout.contains("checkpoint saved: "), "{ran}");
    let j = inspect_json(&cwd, "R");
    assert_eq!(j["finished"], Value::Bool(false), "{j}");
    run_ok(&cwd, &["resume", "R"]);
    assert_eq!(inspect_json(&cwd, "R")["finished"], Value::Bool(true));
}

#[test]
fn a_third_sigint_aborts_and_leaves_only_loadable_checkpoints() {
    let cwd = scratch("cli-sigint-thrice");
    let ran = sigint_burst(&cwd, "R", 3);
    assert_eq!(ran.code, Some(130), "{ran}");
    assert!(!ran.stderr.contains("panicked"), "{ran}");
    // Whatever was cut short, the newest checkpoint that loads is complete and verified,
    // and the run goes on from it to the end.
    let j = inspect_json(&cwd, "R");
    assert_eq!(j["finished"], Value::Bool(false), "{j}");
    run_ok(&cwd, &["resume", "R"]);
    let done = inspect_json(&cwd, "R");
    assert_eq!(done["finished"], Value::Bool(true), "{done}");
    assert_eq!(done["epoch"], 200);
    let leftovers: Vec<String> = std::fs::read_dir(cwd.join("R/checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(".tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "stale temp dirs after a later save: {leftovers:?}"
    );
}

#[test]
fn a_closed_stdout_never_stops_a_run() {
    // `deeptrain train | head -1`: the reader goes away; training must go on to the end.
    let cwd = scratch("cli-closed-stdout");
    let mut child = command(&cwd, &["train", "--epochs", "3", "--run-dir", "R"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(inspect_json(&cwd, "R")["finished"], Value::Bool(true));
    // The same for a command that prints a lot: no panic, clean exit.
    let mut child = command(&cwd, &["inspect", "R", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

/// The subcommands, each with the options its `--help` must list.
const SUBCOMMANDS: [(&str, &[&str]); 5] = [
    (
        "train",
        &["--run-dir", "--epochs", "--seed", "--device", "--threads"],
    ),
    ("resume", &["--threads"]),
    ("inspect", &["--json"]),
    ("report", &["--output"]),
    (
        "data",
        &[
            "--batch-size",
            "--shuffle",
            "--shuffle-samples",
            "--seed",
            "--drop-last",
            "--labels",
            "--file",
            "--format",
            "--json",
        ],
    ),
];

#[test]
fn every_subcommand_has_help_that_states_each_default() {
    let cwd = scratch("cli-help");
    for (sub, options) in SUBCOMMANDS {
        let ran = run_ok(&cwd, &[sub, "--help"]);
        assert!(
            ran.stdout.contains(&format!("Usage: deeptrain {sub}")),
            "{ran}"
        );
        assert!(ran.stderr.is_empty(), "{ran}");
        for opt in options {
            let line = ran
                .stdout
                .lines()
                .find(|l| l.trim_start().starts_with(opt) || l.contains(&format!(", {opt}")))
                .unwrap_or_else(|| panic!("{sub} --help does not list {opt}:\n{ran}"));
            // Help text of one option may continue on the next lines (long help).
            let rest: String = ran
                .stdout
                .lines()
                .skip_while(|l| *l != line)
                .take_while(|l| *l == line || !l.trim_start().starts_with('-'))
                .collect();
            assert!(
                rest.contains("[default: "),
                "{sub} {opt}: no default:\n{ran}"
            );
        }
    }
    // The top level lists every subcommand; `help SUB` is `SUB --help`.
    let top = run_ok(&cwd, &["--help"]);
    for (sub, _) in SUBCOMMANDS {
        assert!(top.stdout.contains(&format!("  {sub} ")), "{top}");
    }
    let help_train = run_ok(&cwd, &["help", "train"]);
    assert!(
        help_train.stdout.contains("Usage: deeptrain train"),
        "{help_train}"
    );
    // Nothing of that trained anything.
    assert!(!cwd.join("runs").exists());
}

#[test]
fn version_prints_the_crate_version() {
    let cwd = scratch("cli-version");
    let ran = run_ok(&cwd, &["--version"]);
    assert_eq!(
        ran.stdout.trim(),
        format!("deeptrain {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_exit_2_naming_the_argument() {
    let cwd = scratch("cli-usage");
    // Flags of other subcommands.
    for (args, named) in [
        (&["train", "--json"][..], "--json"),
        (&["train", "--labels", "x"][..], "--labels"),
        (&["train", "-o", "foo"][..], "-o"),
        (&["inspect", "R", "--shuffle"][..], "--shuffle"),
        (&["resume", "R", "--seed", "3"][..], "--seed"),
        (&["data", "D", "--run-dir", "x"][..], "--run-dir"),
    ] {
        let msg = run_err(&cwd, args, 2);
        assert!(msg.contains(named), "{args:?}: {msg}");
    }
    let msg = run_err(&cwd, &["frobnicate"], 2);
    assert!(msg.contains("frobnicate"), "{msg}");
    let msg = run_err(&cwd, &["train", "a.json", "b.json"], 2);
    assert!(msg.contains("b.json"), "{msg}");
    let msg = run_err(&cwd, &["resume"], 2);
    assert!(msg.contains("PATH"), "{msg}");
    let msg = run_err(&cwd, &["train", "--epochs=0"], 2);
    assert!(msg.contains("--epochs"), "{msg}");
    let msg = run_err(&cwd, &["train", "--device", "gpu"], 2);
    assert!(msg.contains("--device") && msg.contains("cuda:N"), "{msg}");
    let msg = run_err(&cwd, &["train", "--threads", "-1"], 2);
    assert!(msg.contains("-1"), "{msg}");
    // A config's errors are the config's: exit 1, naming file, field and valid values.
    std::fs::write(cwd.join("kind.json"), r#"{"optimizer": {"kind": "adamx"}}"#).unwrap();
    let msg = run_err(&cwd, &["train", "kind.json"], 1);
    for part in ["kind.json", "optimizer.name", "adamx", "adamw", "sgd"] {
        assert!(msg.contains(part), "{msg}");
    }
    assert!(!cwd.join("runs").exists());
}

#[test]
fn equals_form_options_and_no_command() {
    let cwd = scratch("cli-equals");
    let ran = run_ok(&cwd, &["train", "--epochs=1", "--run-dir=E", "--seed=3"]);
    assert!(ran.stdout.contains("run directory: E\n"), "{ran}");
    let j = inspect_json(&cwd, "E");
    assert_eq!(j["epoch"], 1, "{j}");
    assert_eq!(j["finished"], Value::Bool(true), "{j}");
    let config = JobConfig::from_file(&cwd.join("E/config.json")).unwrap();
    assert_eq!((config.train.epochs, config.train.seed), (1, 3));
    let out = cwd.join("r.png");
    let ran = run_ok(
        &cwd,
        &["report", "E", &format!("--output={}", out.display())],
    );
    assert_eq!(ran.stdout.trim(), out.display().to_string());
    assert!(out.is_file());

    // No command at all is `train`: the default job.
    let ran = run_ok(&cwd, &[]);
    assert!(ran.stdout.contains("run directory: runs/digits\n"), "{ran}");
    assert_eq!(inspect_json(&cwd, "runs/digits")["epoch"], 15);
}

/// The `batches_fit` column of a run's `logs/train.csv`, which must not repeat.
fn assert_no_duplicate_rows(run_dir: &Path) {
    let text = std::fs::read_to_string(run_dir.join("logs/train.csv")).unwrap();
    let mut seen = std::collections::HashSet::new();
    for line in text.lines().skip(1) {
        let first = line.split(',').next().unwrap().to_string();
        assert!(seen.insert(first.clone()), "row {first} twice in train.csv");
    }
    assert!(!seen.is_empty(), "no rows in train.csv");
}

#[test]
fn a_second_process_on_a_run_is_refused_naming_the_holder() {
    let cwd = scratch("cli-two-writers");
    std::fs::write(
        cwd.join("cfg.json"),
        r#"{"train": {"epochs": 200, "checkpoint_every": {"epochs": 1}}}"#,
    )
    .unwrap();
    let p = run_until_line(&cwd, &["train", "cfg.json", "--run-dir", "R"], "epoch 2/");
    let holder = format!("R: is being trained by pid {} on host ", p.pid());
    // `resume`, `train --resume-if-exists` and `train` into the same directory: each is
    // refused before it reads or writes anything there.
    for args in [
        &["resume", "R"][..],
        &["train", "cfg.json", "--run-dir", "R", "--resume-if-exists"],
    ] {
        let msg = run_err(&cwd, args, 1);
        assert!(msg.contains(&holder), "{args:?}: {msg}");
        assert!(msg.contains(" since 20"), "{msg}");
        assert!(msg.ends_with("wait for it or stop it"), "{msg}");
    }
    // Readers take no lock.
    run_ok(&cwd, &["inspect", "R"]);
    let first = p.finish();
    assert_eq!(first.code, Some(0), "the first run was harmed:\n{first}");
    assert_no_duplicate_rows(&cwd.join("R"));
    assert_eq!(inspect_json(&cwd, "R")["epoch"], 200);
    // The lock died with the process: the run can be resumed now.
    run_ok(&cwd, &["resume", "R"]);
}

/// Starts `deeptrain ARGS` with `DEEPTRAIN_TEST_PAUSE=point`, waits for it to pause
/// there, sends SIGINT and waits for the end.
fn sigint_at_pause(cwd: &Path, args: &[&str], point: &str) -> Ran {
    let mut cmd = command(cwd, args);
    cmd.env("DEEPTRAIN_TEST_PAUSE", point);
    let mut p = Proc::start(cmd);
    let paused = format!("paused at {point}");
    let sent = p.next_line_starting(&[&paused]).is_some();
    if sent {
        p.signal("-INT");
    }
    // Fails the test on a panic message.
    let ran = p.finish();
    assert!(sent, "never paused at {point}:\n{ran}");
    // It pauses once only.
    assert_eq!(ran.stdout.matches(&paused).count(), 1, "{ran}");
    ran
}

#[test]
fn a_sigint_before_training_starts_is_a_clean_interrupt() {
    let cwd = scratch("cli-sigint-early");
    std::fs::write(cwd.join("cfg.json"), LONG_JOB).unwrap();
    let ran = sigint_at_pause(&cwd, &["train", "cfg.json", "--run-dir", "R"], "before_fit");
    assert_eq!(ran.code, Some(130), "{ran}");
    assert!(
        ran.stdout.contains("resume with: deeptrain resume R"),
        "{ran}"
    );
    let j = inspect_json(&cwd, "R");
    assert_eq!(j["batches_fit"], 0, "{j}");
    run_ok(&cwd, &["resume", "R"]);
    assert_eq!(inspect_json(&cwd, "R")["finished"], Value::Bool(true));
}

#[test]
fn a_sigint_during_the_final_save_exits_130_saying_the_run_is_complete() {
    let cwd = scratch("cli-sigint-final-save");
    std::fs::write(
        cwd.join("cfg.json"),
        r#"{"train": {"epochs": 2, "checkpoint_every": "never"}}"#,
    )
    .unwrap();
    let ran = sigint_at_pause(&cwd, &["train", "cfg.json", "--run-dir", "R"], "train_end");
    assert_eq!(ran.code, Some(130), "{ran}");
    assert!(
        ran.stdout
            .contains("interrupted during the final save, which completed: the run is finished"),
        "{ran}"
    );
    let ckpt = final_checkpoint(&cwd.join("R"));
    assert!(
        ran.stdout.contains(&format!(
            "checkpoint: {}",
            Path::new("R")
                .join("checkpoints")
                .join(ckpt.file_name().unwrap())
                .display()
        )),
        "{ran}"
    );
    assert!(
        ran.stdout.contains("resume with: deeptrain resume R"),
        "{ran}"
    );
    assert_eq!(inspect_json(&cwd, "R")["finished"], Value::Bool(true));
    // Resuming a finished run changes nothing and succeeds.
    run_ok(&cwd, &["resume", "R"]);
}

/// A run killed (or whose disk filled) before its first checkpoint is no dead end:
/// `resume` says it never started, and `train` into it starts it fresh.
#[test]
fn a_run_that_never_wrote_a_checkpoint_is_trained_again_not_stuck() {
    let cwd = scratch("cli-never-started");
    let dir = cwd.join("R");
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    std::fs::write(dir.join("config.json"), "{}").unwrap();
    std::fs::write(dir.join("logs/train.csv"), "batches_fit,epoch\n1,0\n").unwrap();
    let e = run_err(&cwd, &["resume", "R"], 1);
    assert!(
        e.contains("never started") && e.contains("deeptrain train --run-dir R"),
        "{e}"
    );
    let ran = run_ok(&cwd, &["train", "--run-dir", "R", "--epochs", "1"]);
    assert!(ran.stdout.contains("run directory: R"), "{ran}");
    let j = inspect_json(&cwd, "R");
    assert_eq!(j["finished"], Value::Bool(true), "{j}");
    // The leftover row of the killed session is gone: one row per batch of this run.
    let csv = std::fs::read_to_string(dir.join("logs/train.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 45, "{csv}");
    // Now it holds a run: training into it again is refused.
    run_err(&cwd, &["train", "--run-dir", "R"], 2);
}
