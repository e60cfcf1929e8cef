//! Job configs read from JSON: left-out fields take the default job's values; every
//! choice is an enum whose error names the field and the valid values.

use std::path::Path;

use deeptrain::callbacks::HealthPolicy;
use deeptrain::job::{DeviceSpec, EarlyStoppingConfig};
use deeptrain::optim::Schedule;
use deeptrain::registry::{AdamArgs, Component, MlpArgs, SgdArgs};
use deeptrain::trainer::Every;
use deeptrain::JobConfig;

fn parse(json: &str) -> deeptrain::Result<JobConfig> {
    JobConfig::from_json_str_with(json, Path::new("cfg.json"), deeptrain::registry::builtins())
}

/// The one-line error for a config that must not parse.
fn error(json: &str) -> String {
    let err = parse(json)
        .err()
        .unwrap_or_else(|| panic!("{json} parsed"))
        .to_string();
    assert!(err.starts_with("cfg.json: "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

/// `err` contains each of `parts`.
fn assert_says(err: &str, parts: &[&str]) {
    for p in parts {
        assert!(err.contains(p), "{err:?} does not say {p:?}");
    }
}

#[test]
fn partial_sections_keep_the_default_jobs_other_settings() {
    // Same as `deeptrain train --epochs 60`: seed, run dir and key metric of the default
    // job stay, rather than falling back to the generic `TrainConfig::default()`.
    let job = parse(r#"{"train": {"epochs": 60, "checkpoint_every": "never"}}"#).unwrap();
    let mut expected = JobConfig::default();
    expected.train.epochs = 60;
    expected.train.checkpoint_every = Every::Never;
    assert_eq!(job, expected);

    let job = parse(r#"{"optimizer": {"lr": 0.01}, "model": {"dropout": 0.1}}"#).unwrap();
    let mut expected = JobConfig::default();
    expected.optimizer.set("lr", 0.01);
    expected.model = Component::with_args(
        "mlp",
        MlpArgs {
            dropout: 0.1,
            ..MlpArgs::default()
        },
    )
    .unwrap();
    assert_eq!(job, expected);

    assert_eq!(parse("{}").unwrap(), JobConfig::default());
}

#[test]
fn defaults() {
    let job = JobConfig::default();
    assert_eq!(job.device, DeviceSpec::Cpu);
    assert_eq!(job.threads, 0);
    assert_eq!(
        job.optimizer,
        Component::with_args(
            "adamw",
            AdamArgs {
                lr: 3e-3,
                weight_decay: 1e-4,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            }
        )
        .unwrap()
    );
    assert_eq!(
        job.model,
        Component::with_args(
            "mlp",
            MlpArgs {
                hidden: vec![128],
                dropout: 0.2
            }
        )
        .unwrap()
    );
    assert_eq!(job.logging.health, HealthPolicy::Stop);
    assert_eq!(job.train.schedule, Schedule::Constant);
    assert_eq!(
        (
            job.train.epochs,
            job.train.seed,
            job.train.key_metric.as_str()
        ),
        (15, 7, "val_accuracy")
    );
    assert_eq!(job.run_dir(), Path::new("runs/digits"));

    // A kind alone gets that kind's defaults; a kind left out is adamw / mlp.
    let sgd = parse(r#"{"optimizer": {"kind": "sgd"}}"#).unwrap();
    assert_eq!(
        sgd.optimizer,
        Component::with_args("sgd", SgdArgs::default()).unwrap()
    );
    let adam = parse(r#"{"optimizer": {"kind": "adam", "beta2": 0.99}}"#).unwrap();
    assert_eq!(
        adam.optimizer,
        Component::with_args(
            "adam",
            AdamArgs {
                beta2: 0.99,
                ..AdamArgs::default()
            }
        )
        .unwrap()
    );
    let job = parse(r#"{"optimizer": {"eps": 1e-6}, "model": {}}"#).unwrap();
    assert_eq!(job.optimizer.name, "adamw");
    assert_eq!(job.optimizer.number("eps"), Some(1e-6));
    assert_eq!(job.model, JobConfig::default().model);

    // The device strings.
    for (text, spec) in [
        ("cpu", DeviceSpec::Cpu),
        ("auto", DeviceSpec::Auto),
        ("cuda", DeviceSpec::Cuda(0)),
        ("cuda:1", DeviceSpec::Cuda(1)),
    ] {
        let json: serde_json::Value = serde_json::json!({ "device": text });
        let job: JobConfig = serde_json::from_value(json).unwrap();
        assert_eq!(job.device, spec, "{text}");
    }
}

#[test]
fn every_field_round_trips() {
    let mut job = JobConfig {
        name: "rt".into(),
        device: DeviceSpec::Auto,
        threads: 2,
        ..JobConfig::default()
    };
    job.train.epochs = 3;
    job.train.seed = 99;
    job.train.validate_every = Every::Batches(7);
    job.train.keep_last = 5;
    job.train.key_metric = "val_loss".into();
    job.train.clip_grad_norm = Some(1.5);
    job.train.schedule = Schedule::Cosine {
        warmup_steps: 5,
        total_steps: 50,
        min_lr: 1e-5,
    };
    job.optimizer = Component::with_args(
        "sgd",
        SgdArgs {
            lr: 0.1,
            momentum: 0.5,
            // Nesterov needs dampening 0; dampening round-trips below.
            dampening: 0.0,
            nesterov: true,
            weight_decay: 0.0,
        },
    )
    .unwrap();
    job.model = Component::with_args(
        "mlp",
        MlpArgs {
            hidden: vec![16, 8],
            dropout: 0.0,
        },
    )
    .unwrap();
    job.data.batch_size = 17;
    job.data.file = Some("x.npy".into());
    job.logging.health = HealthPolicy::Warn;
    job.early_stopping = Some(EarlyStoppingConfig::default());
    assert_eq!(parse(&job.to_json()).unwrap(), job);
    job.optimizer = Component::with_args(
        "sgd",
        SgdArgs {
            lr: 0.1,
            momentum: 0.5,
            dampening: 0.1,
            nesterov: false,
            weight_decay: 0.0,
        },
    )
    .unwrap();
    assert_eq!(parse(&job.to_json()).unwrap(), job);
    // Every kind of every enum.
    for optimizer in [
        Component::with_args("adamw", AdamArgs::default()).unwrap(),
        Component::with_args("adam", AdamArgs::default()).unwrap(),
    ] {
        job.optimizer = optimizer;
        assert_eq!(parse(&job.to_json()).unwrap(), job);
    }
    for (device, health) in [
        (DeviceSpec::Cpu, HealthPolicy::Stop),
        (DeviceSpec::Auto, HealthPolicy::Skip),
    ] {
        job.device = device;
        job.logging.health = health;
        assert_eq!(parse(&job.to_json()).unwrap(), job);
    }
    // The default job, as `train` writes it into config.json.
    let default = JobConfig::default();
    assert_eq!(parse(&default.to_json()).unwrap(), default);
}

#[test]
fn unknown_train_field_is_named() {
    let err = error(r#"{"train": {"epochz": 3}}"#);
    assert_says(&err, &["epochz", "epochs"]);
    let err = error(r#"{"train": {"epochs": "many"}}"#);
    assert_says(&err, &["train.epochs", "u64"]);
    let err = error(r#"{"train": {"epochs": 0}}"#);
    assert_says(&err, &["train.epochs", "at least 1"]);
}

#[test]
fn enum_errors_name_the_field_and_the_valid_values() {
    let err = error(r#"{"optimizer": {"kind": "adamx"}}"#);
    assert_says(
        &err,
        &[
            "optimizer.name",
            "`adamx`",
            "did you mean `adam`",
            "adamw",
            "sgd",
        ],
    );
    let err = error(r#"{"model": {"name": "nope", "hidden": [8]}}"#);
    assert_says(
        &err,
        &[
            "model.name",
            "nope",
            "registered: cnn, gru, lstm, mlp, resnet",
        ],
    );
    // Read with the built-ins only, an unknown name is left for the registry the job is
    // built with; building it says the same.
    let lenient = JobConfig::from_json_str(r#"{"model": "nope"}"#, Path::new("c.json")).unwrap();
    let err = lenient.build_trainer().err().unwrap().to_string();
    assert_says(&err, &["model.name", "unknown model `nope`"]);
    let err = error(r#"{"logging": {"health": "panic"}}"#);
    assert_says(&err, &["logging.health", "panic", "stop", "skip", "warn"]);
    let err = error(r#"{"device": "gpu"}"#);
    assert_says(&err, &["device", "gpu", "cpu", "cuda:N", "auto"]);
    let err = error(r#"{"device": "cuda:x"}"#);
    assert_says(&err, &["device", "cuda:x"]);
    let err = error(r#"{"train": {"schedule": {"kind": "linear"}}}"#);
    assert_says(
        &err,
        &[
            "train.schedule.kind",
            "linear",
            "constant",
            "step",
            "cosine",
        ],
    );
    let err = error(r#"{"train": {"validate_every": {"weeks": 1}}}"#);
    assert_says(&err, &["train.validate_every", "weeks", "epochs", "never"]);
}

#[test]
fn a_field_of_another_kind_is_an_error() {
    let err = error(r#"{"optimizer": {"kind": "adamw", "momentum": 0.9}}"#);
    assert_says(&err, &["optimizer", "momentum", "beta1", "eps"]);
    // Also with the kind left out (adamw) and after the field.
    let err = error(r#"{"optimizer": {"nesterov": true}}"#);
    assert_says(&err, &["optimizer", "nesterov"]);
    let err = error(r#"{"optimizer": {"beta1": 0.8, "kind": "sgd"}}"#);
    assert_says(&err, &["optimizer", "beta1", "momentum"]);
    let err = error(r#"{"model": {"momentum": 1}}"#);
    assert_says(&err, &["model", "momentum", "hidden"]);
    let err = error(r#"{"optimiser": {}}"#);
    assert_says(&err, &["optimiser", "optimizer"]);
}

#[test]
fn bad_values_name_the_field() {
    let err = error(r#"{"optimizer": {"kind": "sgd", "lr": -1}}"#);
    assert_says(&err, &["optimizer.lr", "-1"]);
    let err = error(r#"{"data": {"val_fraction": 1.5}}"#);
    assert_says(&err, &["data.val_fraction", "1.5"]);
    let err = error(r#"{"data": {"batch_size": "x"}}"#);
    assert_says(&err, &["data.batch_size"]);
    let err = error(r#"{} {}"#);
    assert_says(&err, &["trailing"]);
}

/// Each value the fault report found accepted is refused, naming the field and the range.
#[test]
fn out_of_range_values_name_the_field_and_the_range() {
    let err = error(r#"{"optimizer": {"beta1": 1.5}}"#);
    assert_says(&err, &["optimizer.beta1", "1.5", "[0, 1)"]);
    let err = error(r#"{"optimizer": {"kind": "adam", "beta2": -1}}"#);
    assert_says(&err, &["optimizer.beta2", "-1", "[0, 1)"]);
    let err = error(r#"{"optimizer": {"weight_decay": -1}}"#);
    assert_says(&err, &["optimizer.weight_decay", "-1", "[0, inf)"]);
    let err = error(r#"{"optimizer": {"kind": "sgd", "weight_decay": -1}}"#);
    assert_says(&err, &["optimizer.weight_decay", "-1", "[0, inf)"]);
    let err = error(r#"{"optimizer": {"kind": "sgd", "momentum": 2, "nesterov": true}}"#);
    assert_says(&err, &["optimizer.momentum", "2", "[0, 1)"]);
    let err = error(r#"{"train": {"schedule": {"kind": "step", "step_size": 5, "gamma": -1}}}"#);
    assert_says(&err, &["train.schedule.gamma", "-1", "(0, 1]"]);
    let err = error(r#"{"train": {"clip_grad_norm": -1}}"#);
    assert_says(&err, &["train.clip_grad_norm", "-1", "(0, inf)"]);
    let err = error(r#"{"train": {"clip_grad_norm": 0}}"#);
    assert_says(&err, &["train.clip_grad_norm", "0", "(0, inf)"]);
}

/// The other numeric settings, one bad value each.
#[test]
fn every_numeric_setting_is_range_checked() {
    for (json, field, range) in [
        (r#"{"optimizer": {"eps": 0}}"#, "optimizer.eps", "(0, inf)"),
        (r#"{"optimizer": {"lr": 0}}"#, "optimizer.lr", "(0, inf)"),
        (
            r#"{"optimizer": {"kind": "sgd", "momentum": 1}}"#,
            "optimizer.momentum",
            "[0, 1)",
        ),
        (
            r#"{"optimizer": {"kind": "sgd", "dampening": 1.5}}"#,
            "optimizer.dampening",
            "[0, 1]",
        ),
        (
            r#"{"optimizer": {"kind": "sgd", "momentum": 0, "nesterov": true}}"#,
            "optimizer.momentum",
            "nesterov needs momentum > 0",
        ),
        (
            r#"{"optimizer": {"kind": "sgd", "dampening": 0.5, "nesterov": true}}"#,
            "optimizer.dampening",
            "nesterov needs dampening 0",
        ),
        (r#"{"model": {"dropout": 1}}"#, "model.dropout", "[0, 1)"),
        (
            r#"{"model": {"hidden": [8, 0]}}"#,
            "model.hidden[1]",
            "at least 1",
        ),
        (
            r#"{"data": {"batch_size": 0}}"#,
            "data.batch_size",
            "at least 1",
        ),
        (
            r#"{"data": {"val_batch_size": 0}}"#,
            "data.val_batch_size",
            "at least 1",
        ),
        (
            r#"{"data": {"val_fraction": -0.1}}"#,
            "data.val_fraction",
            "[0, 1)",
        ),
        (r#"{"data": {"scale": 0}}"#, "data.scale", "(0, inf)"),
        (
            r#"{"train": {"keep_last": 0}}"#,
            "train.keep_last",
            "at least 1",
        ),
        (
            r#"{"train": {"schedule": {"kind": "step", "step_size": 0, "gamma": 0.5}}}"#,
            "train.schedule.step_size",
            "at least 1",
        ),
        (
            r#"{"train": {"schedule": {"kind": "step", "step_size": 2, "gamma": 1.5}}}"#,
            "train.schedule.gamma",
            "(0, 1]",
        ),
        (
            r#"{"train": {"schedule": {"kind": "cosine", "warmup_steps": 10, "total_steps": 5, "min_lr": 0}}}"#,
            "train.schedule.total_steps",
            "at least warmup_steps",
        ),
        (
            r#"{"train": {"schedule": {"kind": "cosine", "warmup_steps": 0, "total_steps": 5, "min_lr": -1}}}"#,
            "train.schedule.min_lr",
            "[0, inf)",
        ),
        (
            r#"{"early_stopping": {"patience": 0}}"#,
            "early_stopping.patience",
            "at least 1",
        ),
        (
            r#"{"early_stopping": {"min_delta": -1}}"#,
            "early_stopping.min_delta",
            "[0, inf)",
        ),
    ] {
        let err = error(json);
        assert_says(&err, &[field, range]);
    }
    // The edges that are valid.
    parse(r#"{"optimizer": {"beta1": 0, "beta2": 0, "weight_decay": 0}}"#).unwrap();
    parse(r#"{"optimizer": {"kind": "sgd", "momentum": 0, "dampening": 1}}"#).unwrap();
    parse(r#"{"train": {"schedule": {"kind": "step", "step_size": 1, "gamma": 1}}}"#).unwrap();
    parse(r#"{"model": {"hidden": [], "dropout": 0}}"#).unwrap();
}

/// The default job, the README's job config and the MNIST example still validate.
#[test]
fn shipped_configs_validate() {
    JobConfig::default().validate().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let start = readme.find("```json\n").unwrap() + 8;
    let end = start + readme[start..].find("```").unwrap();
    JobConfig::from_json_str(&readme[start..end], Path::new("README.md"))
        .unwrap()
        .validate()
        .unwrap();
    JobConfig::from_file(&root.join("examples/configs/mnist.json"))
        .unwrap()
        .validate()
        .unwrap();
}

/// A model too big for the memory is refused before anything is allocated, with its size.
#[test]
fn a_model_past_available_memory_is_refused_with_its_size() {
    let mut job = parse(r#"{"model": {"hidden": [1000000, 1000000]}}"#).unwrap();
    job.validate().unwrap();
    // 64 inputs, 10 outputs: about 1.0e12 parameters, 4 f32 copies with AdamW.
    let err = job
        .check_model_memory_against(64, 10, 8 << 30)
        .unwrap_err()
        .to_string();
    assert_says(
        &err,
        &[
            "config model.hidden: [1000000, 1000000] needs about 14902.3 GiB",
            "for weights, gradients and optimizer state",
            "this machine has 8.0 GiB available",
        ],
    );
    job.model = JobConfig::default().model;
    job.check_model_memory_against(64, 10, 8 << 30).unwrap();

    // Through the binary: exit 1 with that one line, no abort, no run directory.
    let dir = crate::common::scratch("config_huge_model");
    std::fs::write(
        dir.join("cfg.json"),
        r#"{"model": {"hidden": [1000000, 1000000]}, "train": {"run_dir": "runs/huge"}}"#,
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_deeptrain"))
        .args(["train", "cfg.json"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert_says(
        &stderr,
        &[
            "error: config model.hidden: [1000000, 1000000] needs about",
            "GiB for weights, gradients and optimizer state; this machine has",
        ],
    );
    assert!(!dir.join("runs/huge").exists());
}
