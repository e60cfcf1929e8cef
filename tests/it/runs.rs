//! Runs as users expect them: composed configs (`extends`, `--set`), run directory
//! naming, nothing left behind by a job that cannot start, `--resume-if-exists`, and
//! resuming with changes (`resume --epochs N` gives the bits of the longer run).

use std::path::Path;
use std::process::Command;

use crate::common::{scratch, small_job, state_bytes, tensor_bytes};
use deeptrain::job::ResumeChanges;
use deeptrain::registry::{Component, MlpArgs};
use deeptrain::trainer::Every;
use deeptrain::{JobConfig, Trainer};

const BIN: &str = env!("CARGO_BIN_EXE_deeptrain");

fn overrides(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Runs the binary in `cwd`: (exit code, stdout, stderr).
fn deeptrain(cwd: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env_remove("CANDLE_NUM_THREADS")
        .env_remove("RAYON_NUM_THREADS")
        .output()
        .unwrap();
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(!e.contains("panicked"), "{args:?} panicked:\n{e}");
    (out.status.code().unwrap_or(-1), o, e)
}

#[test]
fn extends_chains_merge_with_the_child_winning_and_cycles_are_errors() {
    let dir = scratch("runs-extends");
    std::fs::create_dir_all(dir.join("bases")).unwrap();
    std::fs::write(
        dir.join("bases/root.json"),
        r#"{"name": "root", "model": {"hidden": [64], "dropout": 0.3}, "train": {"epochs": 3, "seed": 5}}"#,
    )
    .unwrap();
    // Relative to the file that says it.
    std::fs::write(
        dir.join("bases/mid.json"),
        r#"{"extends": "root.json", "optimizer": {"lr": 0.01}, "train": {"epochs": 4}}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("job.json"),
        r#"{"extends": "bases/mid.json", "model": {"hidden": [32, 16]}, "name": "child"}"#,
    )
    .unwrap();
    let job = JobConfig::from_file(&dir.join("job.json")).unwrap();
    assert_eq!(job.name, "child");
    assert_eq!(
        job.model,
        Component::with_args(
            "mlp",
            MlpArgs {
                hidden: vec![32, 16],
                dropout: 0.3
            }
        )
        .unwrap()
    );
    assert_eq!(job.optimizer.number("lr").unwrap(), 0.01);
    assert_eq!((job.train.epochs, job.train.seed), (4, 5));

    // A cycle names the files.
    std::fs::write(dir.join("a.json"), r#"{"extends": "b.json"}"#).unwrap();
    std::fs::write(dir.join("b.json"), r#"{"extends": "a.json", "name": "b"}"#).unwrap();
    let err = JobConfig::from_file(&dir.join("a.json"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("cycle"), "{err}");
    assert!(err.contains("a.json") && err.contains("b.json"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // A missing base names it.
    std::fs::write(dir.join("lost.json"), r#"{"extends": "nowhere.json"}"#).unwrap();
    let err = JobConfig::from_file(&dir.join("lost.json"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("nowhere.json"), "{err}");
}

#[test]
fn set_overrides_numbers_lists_strings_and_refuses_unknown_keys() {
    let dir = scratch("runs-set");
    let path = dir.join("job.json");
    std::fs::write(
        &path,
        r#"{"model": {"hidden": [64]}, "train": {"epochs": 3}}"#,
    )
    .unwrap();
    let job = JobConfig::from_file_with_overrides(
        &path,
        &overrides(&[
            ("optimizer.lr", "0.001"),
            ("model.hidden", "[512, 256]"),
            ("name", "wide"),
            ("train.epochs", "9"),
        ]),
    )
    .unwrap();
    assert_eq!(job.optimizer.number("lr").unwrap(), 0.001);
    assert_eq!(
        job.model,
        Component::with_args(
            "mlp",
            MlpArgs {
                hidden: vec![512, 256],
                ..MlpArgs::default()
            }
        )
        .unwrap()
    );
    assert_eq!(job.name, "wide");
    assert_eq!(job.train.epochs, 9);

    // Over the default job, too; the last of two --set of one key wins.
    let job = JobConfig::default_with_overrides(&overrides(&[
        ("data.batch_size", "128"),
        ("data.batch_size", "64"),
    ]))
    .unwrap();
    let mut expected = JobConfig::default();
    expected.data.batch_size = 64;
    assert_eq!(job, expected);

    // An unknown key is the error a file with it gives, naming the --set.
    let err = JobConfig::from_file_with_overrides(&path, &overrides(&[("train.epochz", "3")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("--set train.epochz=3"), "{err}");
    assert!(err.contains("epochz") && err.contains("epochs"), "{err}");
    let err = JobConfig::default_with_overrides(&overrides(&[("train.epochs", "many")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("train.epochs"), "{err}");

    // On the command line: exit 2 for a malformed --set, 1 for an unknown key.
    let (code, _, err) = deeptrain(&dir, &["train", "--set", "no-equals-sign"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = deeptrain(&dir, &["train", "job.json", "--set", "model.width=3"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("model.width") || err.contains("width"),
        "{err}"
    );
    assert!(!dir.join("runs").exists(), "a refused job left a directory");
}

#[test]
fn run_directories_are_named_after_the_job_or_its_settings() {
    // The default job keeps runs/digits.
    assert_eq!(JobConfig::default().run_dir(), Path::new("runs/digits"));
    let mut job = JobConfig {
        name: "wide".into(),
        ..JobConfig::default()
    };
    assert_eq!(job.run_dir(), Path::new("runs/wide"));
    // No name: a descriptive one.
    job.name = String::new();
    job.model = Component::with_args(
        "mlp",
        MlpArgs {
            hidden: vec![256],
            ..MlpArgs::default()
        },
    )
    .unwrap();
    job.optimizer.set("lr", 1e-3);
    job.data.batch_size = 128;
    assert_eq!(job.descriptive_name(), "mlp-256_adamw-1e-3_b128_s7");
    let resolved = job.resolved();
    assert_eq!(resolved.name, "mlp-256_adamw-1e-3_b128_s7");
    assert_eq!(
        resolved.train.run_dir,
        Path::new("runs/mlp-256_adamw-1e-3_b128_s7")
    );
    // An explicit run_dir wins.
    job.train.run_dir = "elsewhere/x".into();
    assert_eq!(job.run_dir(), Path::new("elsewhere/x"));

    // On the command line, with a numbered suffix for a repeat.
    let cwd = scratch("runs-names");
    let args = [
        "train",
        "--set",
        "name=",
        "--set",
        "model.hidden=[8]",
        "--epochs",
        "1",
    ];
    let (code, out, err) = deeptrain(&cwd, &args);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("run directory: runs/mlp-8_adamw-3e-3_b32_s7\n"),
        "{out}"
    );
    let (code, out, err) = deeptrain(&cwd, &args);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("run directory: runs/mlp-8_adamw-3e-3_b32_s7-2\n"),
        "{out}"
    );
    let saved =
        JobConfig::from_file(&cwd.join("runs/mlp-8_adamw-3e-3_b32_s7-2/config.json")).unwrap();
    assert_eq!(saved.name, "mlp-8_adamw-3e-3_b32_s7");
    assert_eq!(
        saved.train.run_dir,
        Path::new("runs/mlp-8_adamw-3e-3_b32_s7-2")
    );
}

#[test]
fn a_job_that_cannot_start_leaves_nothing_behind() {
    let cwd = scratch("runs-failed-build");
    std::fs::write(
        cwd.join("bad.json"),
        r#"{"name": "bad", "data": {"source": "missing.csv"}}"#,
    )
    .unwrap();
    for _ in 0..2 {
        let (code, _, err) = deeptrain(&cwd, &["train", "bad.json"]);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("missing.csv"), "{err}");
        assert!(!cwd.join("runs/bad").exists());
        assert!(!cwd.join("runs/bad-2").exists());
    }
    // Fixed, it takes the directory it would have had.
    std::fs::write(
        cwd.join("bad.json"),
        r#"{"name": "bad", "train": {"epochs": 1}, "model": {"hidden": [8]}}"#,
    )
    .unwrap();
    let (code, out, err) = deeptrain(&cwd, &["train", "bad.json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("run directory: runs/bad\n"), "{out}");
}

#[test]
fn resume_if_exists_resumes_the_same_config_and_refuses_another() {
    let cwd = scratch("runs-resume-if-exists");
    std::fs::write(
        cwd.join("job.json"),
        r#"{"name": "again", "train": {"epochs": 2}, "model": {"hidden": [8]}, "logging": {"progress": false}}"#,
    )
    .unwrap();
    // Nothing there yet: a fresh run.
    let (code, out, err) = deeptrain(&cwd, &["train", "job.json", "--resume-if-exists"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("run directory: runs/again\n"), "{out}");
    // Same config: resumed (already finished: nothing more to do), no runs/again-2.
    let (code, out, err) = deeptrain(&cwd, &["train", "job.json", "--resume-if-exists"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("resuming runs/again"), "{out}");
    assert!(!cwd.join("runs/again-2").exists());
    // Another config: refused, naming what differs.
    let (code, _, err) = deeptrain(
        &cwd,
        &[
            "train",
            "job.json",
            "--resume-if-exists",
            "--set",
            "optimizer.lr=0.01",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("optimizer.lr"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

/// The small job with epoch-end validation only, constant rate and quiet logging.
fn epoch_job(dir: &Path, epochs: u64) -> JobConfig {
    let mut job = small_job(dir);
    job.train.epochs = epochs;
    job.train.validate_every = Every::Epochs(1);
    job.logging.progress = false;
    job.logging.tensorboard = false;
    job
}

#[test]
fn extending_a_finished_run_gives_the_bits_of_the_longer_run() {
    let root = scratch("runs-extend");
    let mut long = epoch_job(&root.join("long"), 4).build_trainer().unwrap();
    long.fit().unwrap();

    let short_dir = root.join("short");
    let mut short = epoch_job(&short_dir, 2).build_trainer().unwrap();
    short.fit().unwrap();
    assert_eq!(short.state.epoch, 2);

    let changes = ResumeChanges {
        epochs: Some(4),
        ..ResumeChanges::default()
    };
    let mut extended = Trainer::resume_changed(&short_dir, &changes).unwrap();
    assert_eq!(extended.config.epochs, 4);
    extended.fit().unwrap();
    assert_eq!(extended.state.epoch, 4);
    assert!(state_bytes(&extended.state) == state_bytes(&long.state));
    assert!(tensor_bytes(&short_dir) == tensor_bytes(&root.join("long")));

    // The larger count is saved with the run: a plain resume keeps it.
    let again = Trainer::resume(&short_dir).unwrap();
    assert_eq!(again.config.epochs, 4);
    let saved = JobConfig::from_json_str(again.job_config_json().unwrap(), Path::new("x")).unwrap();
    assert_eq!(saved.train.epochs, 4);

    // Fewer epochs than the run has done: refused, naming the flag's field.
    let fewer = ResumeChanges {
        epochs: Some(3),
        ..ResumeChanges::default()
    };
    let err = Trainer::resume_changed(&short_dir, &fewer)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("epochs") && err.contains('3'), "{err}");
}

#[test]
fn resume_takes_only_the_documented_changes() {
    let cwd = scratch("runs-resume-changes");
    std::fs::write(
        cwd.join("job.json"),
        r#"{"name": "r", "train": {"epochs": 2}, "model": {"hidden": [8]}, "logging": {"progress": false}}"#,
    )
    .unwrap();
    let (code, _, err) = deeptrain(&cwd, &["train", "job.json"]);
    assert_eq!(code, 0, "{err}");
    // Not a resume change: clap refuses it.
    let (code, _, err) = deeptrain(&cwd, &["resume", "runs/r", "--seed", "3"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--seed"), "{err}");
    // Past epoch 1 already.
    let (code, _, err) = deeptrain(&cwd, &["resume", "runs/r", "--epochs", "1"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.starts_with("error: --epochs"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    // No early stopping to change.
    let (code, _, err) = deeptrain(&cwd, &["resume", "runs/r", "--patience", "3"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("early stopping"), "{err}");
    // Extended: it goes on, and the run directory's config says so.
    let (code, out, err) = deeptrain(
        &cwd,
        &["resume", "runs/r", "--epochs", "3", "--no-tensorboard"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("finished"), "{out}");
    let saved = JobConfig::from_file(&cwd.join("runs/r/config.json")).unwrap();
    assert_eq!(saved.train.epochs, 3);
    assert!(!saved.logging.tensorboard);
    let ckpt = deeptrain::checkpoint::load_latest(&cwd.join("runs/r")).unwrap();
    assert_eq!(ckpt.meta.state.epoch, 3);
}
