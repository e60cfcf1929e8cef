//! Job configs read from JSON: left-out fields take the default job's values; every
//! choice is an enum whose error names the field and the valid values.

use std::path::Path;

use deeptrain::callbacks::HealthPolicy;
use deeptrain::job::{
    AdamSettings, DeviceSpec, EarlyStoppingConfig, MlpSettings, ModelConfig, OptimizerConfig,
    SgdSettings,
};
use deeptrain::optim::Schedule;
use deeptrain::trainer::Every;
use deeptrain::JobConfig;

fn parse(json: &str) -> deeptrain::Result<JobConfig> {
    JobConfig::from_json_str(json, Path::new("cfg.json"))
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
    expected.optimizer.set_lr(0.01);
    expected.model = ModelConfig::Mlp(MlpSettings {
        dropout: 0.1,
        ..MlpSettings::default()
    });
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
        OptimizerConfig::AdamW(AdamSettings {
            lr: 3e-3,
            weight_decay: 1e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        })
    );
    assert_eq!(
        job.model,
        ModelConfig::Mlp(MlpSettings {
            hidden: vec![128],
            dropout: 0.2
        })
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
    assert_eq!(sgd.optimizer, OptimizerConfig::Sgd(SgdSettings::default()));
    let adam = parse(r#"{"optimizer": {"kind": "adam", "beta2": 0.99}}"#).unwrap();
    assert_eq!(
        adam.optimizer,
        OptimizerConfig::Adam(AdamSettings {
            beta2: 0.99,
            ..AdamSettings::default()
        })
    );
    let job = parse(r#"{"optimizer": {"eps": 1e-6}, "model": {}}"#).unwrap();
    assert!(matches!(job.optimizer, OptimizerConfig::AdamW(a) if a.eps == 1e-6));
    assert_eq!(job.model, ModelConfig::default());

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
    job.optimizer = OptimizerConfig::Sgd(SgdSettings {
        lr: 0.1,
        momentum: 0.5,
        dampening: 0.1,
        nesterov: true,
        weight_decay: 0.0,
    });
    job.model = ModelConfig::Mlp(MlpSettings {
        hidden: vec![16, 8],
        dropout: 0.0,
    });
    job.data.batch_size = 17;
    job.data.file = Some("x.npy".into());
    job.logging.health = HealthPolicy::Warn;
    job.early_stopping = Some(EarlyStoppingConfig::default());
    assert_eq!(parse(&job.to_json()).unwrap(), job);
    // Every kind of every enum.
    for optimizer in [
        OptimizerConfig::AdamW(AdamSettings::default()),
        OptimizerConfig::Adam(AdamSettings::default()),
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
    assert_says(&err, &["optimizer.kind", "adamx", "adamw", "adam", "sgd"]);
    let err = error(r#"{"model": {"kind": "cnn", "hidden": [8]}}"#);
    assert_says(&err, &["model.kind", "cnn", "mlp"]);
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
