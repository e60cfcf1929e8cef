//! The `data` section of a job: a validation split for any source, no hidden scaling,
//! class names, labels from a file of their own, preloading.

use std::path::{Path, PathBuf};

use deeptrain::{JobConfig, Outcome, Predictor};

use crate::common::{npy_f32, npy_i64, scratch, tensor_bytes};

/// `n` samples of 6 features in 3 classes (feature `class` is high), stored as 0-255
/// values in `x.npy`, labels in `labels_file` (i64 ids).
fn class_dir(name: &str, n: usize, labels_file: &str) -> PathBuf {
    let dir = scratch(name);
    let mut x = Vec::new();
    let mut y = Vec::new();
    for i in 0..n {
        let class = i % 3;
        for j in 0..6 {
            let noise = ((i * 7 + j * 13) % 17) as f32 * 4.0;
            x.push(if j == class { 180.0 + noise } else { noise });
        }
        y.push(class as i64);
    }
    npy_f32(&dir.join("x.npy"), &[n, 6], &x);
    npy_i64(&dir.join(labels_file), &y);
    dir
}

fn job(json: &str, run: &Path) -> JobConfig {
    let mut job = JobConfig::from_json_str(json, Path::new("job.json")).unwrap();
    job.train.run_dir = run.to_path_buf();
    job.logging.progress = false;
    job.logging.tensorboard = false;
    job
}

#[test]
fn any_source_splits_off_validation_data_and_nothing_is_scaled_unless_asked() {
    let data = class_dir("data-split", 150, "labels.npy");
    let json = format!(
        r#"{{"data": {{"source": "{}", "val_split": 0.2, "batch_size": 16}},
             "model": {{"hidden": [16]}}, "train": {{"epochs": 5}}}}"#,
        data.display()
    );
    let run = scratch("data-split-run");
    let job = job(&json, &run);
    assert_eq!(job.data.val_fraction, 0.2);
    // Stored 0-255 values reach the model as they are: no 1/16 from the digits job.
    assert_eq!(job.data.scale, Some(1.0));
    assert_eq!(job.data.input_scale(), 1.0);
    let mut trainer = job.build_trainer().unwrap();
    assert_eq!(trainer.fit().unwrap(), Outcome::Finished);
    let s = &trainer.state;
    // 150 samples: 120 train (8 batches of 16 a epoch), 30 validation.
    assert_eq!(s.batches_fit, 5 * 8);
    let val = s.val_history.latest();
    assert!(val["val_accuracy"] > 0.9, "{val:?}");
    let p = Predictor::load(&run).unwrap();
    let x = candle_core::Tensor::new(&[[0f32, 0.0, 250.0, 0.0, 0.0, 0.0]], p.device()).unwrap();
    assert_eq!(p.predict_classes(&x).unwrap(), [2]);

    // The digits still say their own scale, in a partial section too.
    let digits =
        JobConfig::from_json_str(r#"{"data": {"batch_size": 8}}"#, Path::new("j")).unwrap();
    assert_eq!(digits.data.input_scale(), 1.0 / 16.0);
    assert_eq!(JobConfig::default().data.scale, Some(1.0 / 16.0));
}

#[test]
fn preloading_and_a_labels_file_of_its_own_give_the_same_run() {
    let beside = class_dir("data-beside", 90, "labels.npy");
    // The same data with its labels in another directory.
    let apart = scratch("data-apart");
    std::fs::copy(beside.join("x.npy"), apart.join("x.npy")).unwrap();
    let elsewhere = scratch("data-apart-labels");
    std::fs::copy(beside.join("labels.npy"), elsewhere.join("targets.npy")).unwrap();
    let run = |name: &str, data: &Path, extra: &str| {
        let json = format!(
            r#"{{"data": {{"source": "{}", "val_split": 0.2, "batch_size": 16, "scale": 0.01 {extra}}},
                 "model": {{"hidden": [8]}}, "train": {{"epochs": 2, "checkpoint_every": "never"}}}}"#,
            data.display()
        );
        let dir = scratch(name);
        let mut t = job(&json, &dir).build_trainer().unwrap();
        assert_eq!(t.fit().unwrap(), Outcome::Finished);
        tensor_bytes(&dir)
    };
    let reference = run("data-ref", &beside, "");
    let labels = elsewhere.join("targets.npy");
    assert!(reference == run("data-preload", &beside, r#", "preload": true"#));
    let with_labels = format!(r#", "labels": "{}""#, labels.display());
    assert!(reference == run("data-labels", &apart, &with_labels));
    // Without it, the directory has no labels, and the job says so.
    let json = format!(r#"{{"data": {{"source": "{}"}}}}"#, apart.display());
    let err = job(&json, &scratch("data-nolabels"))
        .build_trainer()
        .err()
        .unwrap();
    assert!(err.to_string().contains("no labels found"), "{err}");
}

#[test]
fn class_names_reach_the_model_card_and_must_fit_the_classes() {
    let data = class_dir("data-names", 60, "labels.npy");
    let json = |names: &str| {
        format!(
            r#"{{"data": {{"source": "{}", "class_names": {names}, "batch_size": 20}},
                 "model": {{"hidden": [4]}}, "train": {{"epochs": 1}}}}"#,
            data.display()
        )
    };
    let run = scratch("data-names-run");
    let mut t = job(&json(r#"["red", "green", "blue"]"#), &run)
        .build_trainer()
        .unwrap();
    t.fit().unwrap();
    let card = Predictor::load(&run).unwrap().model_card().unwrap();
    assert_eq!(
        card.class_names,
        Some(vec!["red".to_string(), "green".into(), "blue".into()])
    );
    let err = job(&json(r#"["red", "green"]"#), &scratch("data-names-2"))
        .build_trainer()
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("data.class_names") && err.contains("2 names for the 3 classes"),
        "{err}"
    );
    let err = JobConfig::from_json_str(
        r#"{"data": {"class_names": ["a", "a"]}}"#,
        Path::new("j.json"),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("`a` is given twice"), "{err}");
}
