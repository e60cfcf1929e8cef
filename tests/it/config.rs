//! Job configs read from JSON: left-out fields take the default job's values.

use std::path::Path;

use deeptrain::trainer::Every;
use deeptrain::JobConfig;

fn parse(json: &str) -> deeptrain::Result<JobConfig> {
    JobConfig::from_json_str(json, Path::new("cfg.json"))
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
    expected.optimizer.lr = 0.01;
    expected.model.dropout = 0.1;
    assert_eq!(job, expected);

    assert_eq!(parse("{}").unwrap(), JobConfig::default());
}

#[test]
fn every_field_round_trips() {
    let mut job = JobConfig::default();
    job.train.epochs = 3;
    job.train.seed = 99;
    job.train.validate_every = Every::Batches(7);
    job.train.keep_last = 5;
    job.train.key_metric = "val_loss".into();
    job.train.clip_grad_norm = Some(1.5);
    job.optimizer.kind = "sgd".into();
    job.data.batch_size = 17;
    assert_eq!(parse(&job.to_json()).unwrap(), job);
}

#[test]
fn unknown_train_field_is_named() {
    let err = parse(r#"{"train": {"epochz": 3}}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("epochz"), "{err}");
    assert!(err.contains("cfg.json"), "{err}");
    let err = parse(r#"{"train": {"epochs": "many"}}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("cfg.json"), "{err}");
    let err = parse(r#"{"train": {"epochs": 0}}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("train.epochs"), "{err}");
}
