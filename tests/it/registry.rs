//! Components by name: user components used from JSON, from Rust and from the user's own
//! CLI binary; every built-in in `deeptrain list` trained through a job; one clear line
//! for a wrong name or argument.

use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};
use candle_nn::{Linear, Module, VarMap};
use deeptrain::data_loaders::array::DType as ArrayDType;
use deeptrain::data_loaders::npy::write_npy;
use deeptrain::model::{build_seeded, ForwardCtx};
use deeptrain::registry::{ModelCtx, Registry};
use deeptrain::{JobConfig, Model, Outcome, Trainer};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::cli::run_program;
use crate::common::{interrupt_after, scratch, state_bytes, tensor_bytes};

const BIN: &str = env!("CARGO_BIN_EXE_deeptrain");

/// A user's model: one linear layer with a scale on its output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
struct ScaledArgs {
    /// Multiplies the logits (default 1).
    scale: f64,
}

impl Default for ScaledArgs {
    fn default() -> Self {
        Self { scale: 1.0 }
    }
}

struct Scaled {
    varmap: VarMap,
    layer: Linear,
    scale: f64,
}

impl Model for Scaled {
    fn name(&self) -> String {
        format!("scaled x{}", self.scale)
    }
    fn varmap(&self) -> &VarMap {
        &self.varmap
    }
    fn forward(&mut self, x: &Tensor, _: &mut ForwardCtx) -> deeptrain::Result<Tensor> {
        let x = x.flatten_from(1)?.to_dtype(DType::F32)?;
        Ok((self.layer.forward(&x)? * self.scale)?)
    }
}

fn user_registry() -> Registry {
    let mut r = Registry::with_builtins();
    r.model("scaled", |a: ScaledArgs, ctx: &mut ModelCtx| {
        let varmap = VarMap::new();
        let inputs: usize = ctx.sample_shape.iter().product();
        let layer = build_seeded(&varmap, ctx.init, DType::F32, ctx.device, |vb| {
            Ok(candle_nn::linear(inputs, ctx.outputs, vb.pp("layer"))?)
        })?;
        Ok(Box::new(Scaled {
            varmap,
            layer,
            scale: a.scale,
        }) as Box<dyn Model>)
    });
    r
}

/// A quick job on the embedded digits from JSON, into `dir`.
fn job(json: &str, dir: &Path, registry: &Registry) -> JobConfig {
    let mut job = JobConfig::from_json_str_with(json, Path::new("job.json"), registry).unwrap();
    job.train.run_dir = dir.to_path_buf();
    job.logging.progress = false;
    job.logging.tensorboard = false;
    job
}

#[test]
fn a_user_model_trains_from_json_records_its_arguments_and_resumes_bitwise() {
    let registry = user_registry();
    let json = r#"{"model": {"name": "scaled", "scale": 0.5},
                   "optimizer": {"lr": 0.01},
                   "data": {"batch_size": 32}, "train": {"epochs": 2, "seed": 3}}"#;
    let reference_dir = scratch("registry-user-reference");
    let mut reference = job(json, &reference_dir, &registry)
        .build_with(&registry)
        .unwrap();
    assert_eq!(reference.fit().unwrap(), Outcome::Finished);
    let acc = reference.state.val_history.latest()["val_accuracy"];
    assert!(acc > 0.8, "val_accuracy {acc}");

    let dir = scratch("registry-user-stopped");
    let mut stopped = job(json, &dir, &registry).build_with(&registry).unwrap();
    interrupt_after(&mut stopped, 9);
    assert!(matches!(
        stopped.fit().unwrap(),
        Outcome::Interrupted { .. }
    ));
    drop(stopped);
    // The run records the component by name with its arguments.
    let ckpt = deeptrain::checkpoint::load_latest(&dir).unwrap();
    let saved: serde_json::Value =
        serde_json::from_str(ckpt.meta.job_config.as_deref().unwrap()).unwrap();
    assert_eq!(
        saved["model"],
        serde_json::json!({"name": "scaled", "scale": 0.5})
    );

    // A program without the component is told which one it lacks.
    let err = Trainer::resume(&dir).err().unwrap().to_string();
    assert!(err.contains("unknown model `scaled`"), "{err}");
    // With it, the run finishes bit for bit as the uninterrupted one.
    let mut resumed = Trainer::resume_with(&dir, &registry).unwrap();
    assert_eq!(resumed.fit().unwrap(), Outcome::Finished);
    assert!(state_bytes(&resumed.state) == state_bytes(&reference.state));
    assert!(tensor_bytes(&dir) == tensor_bytes(&reference_dir));
}

#[test]
fn every_built_in_model_and_classification_loss_trains_from_json() {
    let registry = Registry::with_builtins();
    for (name, json, at_least) in [
        (
            "cnn",
            r#"{"model": {"name": "cnn", "channels": [8, 16], "batch_norm": true, "hidden": [32]},
                "loss": {"name": "cross_entropy", "label_smoothing": 0.05, "class_weights": "balanced"},
                "optimizer": {"name": "sgd", "lr": 0.1}, "train": {"epochs": 3}}"#,
            0.8,
        ),
        (
            "resnet",
            r#"{"model": {"name": "resnet", "channels": [4, 8], "blocks_per_stage": 1},
                "optimizer": {"name": "adam", "lr": 0.01},
                "callbacks": [{"name": "early_stopping", "monitor": "val_accuracy", "patience": 3}],
                "train": {"epochs": 1}}"#,
            0.5,
        ),
    ] {
        let dir = scratch(&format!("registry-zoo-{name}"));
        let mut trainer = job(json, &dir, &registry).build_with(&registry).unwrap();
        assert_eq!(trainer.fit().unwrap(), Outcome::Finished, "{name}");
        let acc = trainer.state.val_history.latest()["val_accuracy"];
        assert!(acc >= at_least, "{name}: val_accuracy {acc}");
        assert!(trainer.model().name().starts_with(name), "{name}");
    }
}

/// Regression data in a directory: 4 features, a float target per sample.
fn regression_dir(name: &str) -> PathBuf {
    let dir = scratch(name);
    let n = 96;
    let x: Vec<f32> = (0..n * 4)
        .map(|i| ((i * 37 % 101) as f32) / 101.0)
        .collect();
    let y: Vec<f32> = (0..n)
        .map(|i| x[i * 4] - 0.5 * x[i * 4 + 1] + 0.25)
        .collect();
    let bytes = |v: &[f32]| v.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>();
    write_npy(dir.join("x.npy"), ArrayDType::F32, &[n, 4], &bytes(&x)).unwrap();
    write_npy(dir.join("labels.npy"), ArrayDType::F32, &[n], &bytes(&y)).unwrap();
    dir
}

#[test]
fn every_built_in_regression_loss_trains_from_json_and_each_is_its_own() {
    let data = regression_dir("registry-regression-data");
    let registry = Registry::with_builtins();
    let mut finals = Vec::new();
    for loss in [
        r#"{"name": "mse"}"#,
        r#"{"name": "mae"}"#,
        r#"{"name": "huber", "delta": 0.1}"#,
        r#"{"name": "binary_cross_entropy", "pos_weight": 2.0}"#,
    ] {
        let json = format!(
            r#"{{"data": {{"source": "{}", "val_fraction": 0, "batch_size": 16, "scale": 1}},
                "model": {{"hidden": [8], "dropout": 0}}, "loss": {loss},
                "train": {{"epochs": 3, "key_metric": "loss"}}}}"#,
            data.display()
        );
        let dir = scratch("registry-regression-run");
        let mut trainer = job(&json, &dir, &registry).build_with(&registry).unwrap();
        let first = trainer.loss().name();
        assert_eq!(trainer.fit().unwrap(), Outcome::Finished, "{loss}");
        let m = trainer.state.train_history.latest();
        let l = m["loss"];
        assert!(l.is_finite(), "{loss}: loss {l}");
        finals.push((first, l));
    }
    let names: Vec<&str> = finals.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["mse", "mae", "huber", "binary_cross_entropy"]);
    // Four different losses of the same run: four different values.
    for i in 0..finals.len() {
        for j in i + 1..finals.len() {
            assert_ne!(finals[i].1, finals[j].1, "{finals:?}");
        }
    }
}

#[test]
fn wrong_names_and_arguments_are_one_line_naming_them() {
    let registry = Registry::with_builtins();
    let cases = [
        (
            r#"{"model": {"name": "cnnn"}}"#,
            &["model.name", "`cnnn`", "did you mean `cnn`", "resnet"][..],
        ),
        (
            r#"{"loss": {"name": "focal"}}"#,
            &["loss.name", "`focal`", "cross_entropy", "huber"],
        ),
        (
            r#"{"loss": "crossentropy"}"#,
            &["did you mean `cross_entropy`"],
        ),
        (
            r#"{"optimizer": {"name": "sgd", "momentun": 0.9}}"#,
            &["optimizer", "`sgd`", "momentun", "momentum"],
        ),
        (
            r#"{"model": {"name": "cnn", "channels": "wide"}}"#,
            &["model", "`cnn`", "argument `channels`", "invalid type"],
        ),
        (
            r#"{"loss": {"name": "cross_entropy", "class_weights": "even"}}"#,
            &["loss", "class_weights", "balanced"],
        ),
        (
            r#"{"callbacks": [{"name": "early_stop"}]}"#,
            &["callback.name", "did you mean `early_stopping`"],
        ),
        (
            r#"{"model": {"name": "cnn", "dropout": 1.5}}"#,
            &["model.dropout", "1.5", "[0, 1)"],
        ),
    ];
    for (json, parts) in cases {
        let err = JobConfig::from_json_str_with(json, Path::new("bad.json"), &registry)
            .err()
            .unwrap_or_else(|| panic!("{json} was accepted"))
            .to_string();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("bad.json: "), "{err}");
        for p in parts {
            assert!(err.contains(p), "{json}: {err:?} does not say {p:?}");
        }
    }
}

#[test]
fn list_shows_every_kind_with_arguments_and_defaults() {
    let cwd = scratch("registry-list");
    let ran = run_program(Path::new(BIN), &cwd, &["list", "--json"]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let kinds: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    let names = |plural: &str| -> Vec<String> {
        kinds
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["plural"] == plural)
            .unwrap()["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names("models"), ["cnn", "gru", "lstm", "mlp", "resnet"]);
    assert_eq!(
        names("losses"),
        [
            "binary_cross_entropy",
            "cross_entropy",
            "huber",
            "mae",
            "mse"
        ]
    );
    assert_eq!(
        names("optimizers"),
        ["adagrad", "adam", "adamw", "lion", "rmsprop", "sgd"]
    );
    assert_eq!(
        names("schedules"),
        [
            "constant",
            "cosine",
            "exponential",
            "multi_step",
            "one_cycle",
            "reduce_on_plateau",
            "step"
        ]
    );
    assert_eq!(names("callbacks"), ["calibration", "early_stopping"]);
    let text = run_program(Path::new(BIN), &cwd, &["list", "model"]).stdout;
    assert!(
        text.starts_with("models (\"model\": {\"name\": ...}):"),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.contains("channels")
            && l.contains("[32,64]")
            && l.contains("array of integer")),
        "{text}"
    );
    assert!(!text.contains("optimizers"), "{text}");
    let ran = run_program(Path::new(BIN), &cwd, &["list", "schedulers"]);
    assert_eq!(ran.code, Some(2));
    assert!(
        ran.stderr.contains("kinds: models, losses"),
        "{}",
        ran.stderr
    );
}

/// The example program's binary (`cargo test` builds examples; a filtered run may not
/// have, so it is built here then).
fn example_binary(name: &str) -> PathBuf {
    let path = Path::new(BIN).parent().unwrap().join("examples").join(name);
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "--release", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success());
    }
    path
}

#[test]
fn a_users_own_cli_trains_resumes_and_lists_its_components() {
    let program = example_binary("custom_components");
    let cwd = scratch("registry-user-cli");
    let config =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/configs/custom_components.json");
    let config = config.to_str().unwrap();
    let listed = run_program(&program, &cwd, &["list"]).stdout;
    for name in ["tanh_mlp", "focal", "gamma", "cnn", "cross_entropy"] {
        assert!(listed.contains(name), "{listed}");
    }
    // Interrupted by its epoch budget, then resumed by the same program to more epochs.
    let ran = run_program(
        &program,
        &cwd,
        &[
            "train",
            config,
            "--epochs",
            "2",
            "--run-dir",
            "run",
            "--threads",
            "1",
        ],
    );
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    // The stock binary does not know the components and says which.
    let stock = run_program(Path::new(BIN), &cwd, &["resume", "run", "--epochs", "3"]);
    assert_eq!(stock.code, Some(1));
    assert!(
        stock.stderr.contains("unknown model `tanh_mlp`"),
        "{}",
        stock.stderr
    );
    let ran = run_program(&program, &cwd, &["resume", "run", "--epochs", "3"]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let ran = run_program(&program, &cwd, &["inspect", "run", "--json"]);
    let state: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(state["epoch"], 3);
    assert!(
        state["metrics"]["val_accuracy"].as_f64().unwrap() > 0.8,
        "{state}"
    );
    // The user's callback ran at every validation: its file holds the last one, as the
    // checkpoint has it.
    let logged: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cwd.join("run/my_logger.json")).unwrap()).unwrap();
    assert_eq!(logged["epoch"], 3, "{logged}");
    assert_eq!(logged["validation"], state["times_validated"], "{logged}");
    for name in ["val_accuracy", "val_iou", "val_loss"] {
        assert_eq!(
            logged["metrics"][name], state["metrics"][name],
            "{name}: {logged}"
        );
    }
    // evaluate reports the user's metric, equal to the run's last validation (the
    // latest checkpoint is the run's end, where it last validated).
    let ran = run_program(&program, &cwd, &["evaluate", "run", "--json"]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let eval: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    for name in ["iou", "accuracy", "f1_macro"] {
        assert_eq!(
            eval["metrics"][name],
            state["metrics"][format!("val_{name}")],
            "{name}: {eval}"
        );
    }
    assert!(eval["metrics"].get("confusion_matrix").is_none(), "{eval}");

    // The user's transform ran on train batches: the same job without it trains other
    // weights, and the job with it the same weights again.
    let weights = |run: &str, extra: &[&str]| {
        let mut args = vec!["train", config, "--epochs", "1", "--run-dir", run];
        args.extend_from_slice(extra);
        let ran = run_program(&program, &cwd, &args);
        assert_eq!(ran.code, Some(0), "{}", ran.stderr);
        let ckpts = deeptrain::checkpoint::list(&cwd.join(run)).unwrap();
        std::fs::read(ckpts.last().unwrap().join("model.safetensors")).unwrap()
    };
    let with = weights("with", &[]);
    assert_eq!(weights("with-again", &[]), with);
    assert_ne!(weights("without", &["--set", "data.transforms=[]"]), with);
}

/// Sequences of a noisy sine, `[n, steps, 1]`, with the next step as per-step targets.
fn sequence_dir(name: &str, n: usize, steps: usize, phase: usize) -> PathBuf {
    let dir = scratch(name);
    let value = |i: usize, t: usize| (((i * 5 + t + phase) as f32) * 0.4).sin();
    let mut x = Vec::new();
    let mut y = Vec::new();
    for i in 0..n {
        for t in 0..steps {
            x.push(value(i, t));
            y.push(value(i, t + 1));
        }
    }
    let bytes = |v: &[f32]| v.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>();
    write_npy(
        dir.join("series.npy"),
        ArrayDType::F32,
        &[n, steps, 1],
        &bytes(&x),
    )
    .unwrap();
    write_npy(
        dir.join("labels.npy"),
        ArrayDType::F32,
        &[n, steps, 1],
        &bytes(&y),
    )
    .unwrap();
    dir
}

#[test]
fn recurrent_models_train_on_windows_from_json_and_resume_bitwise_everywhere() {
    let train = sequence_dir("registry-seq-train", 12, 24, 0);
    let val = sequence_dir("registry-seq-val", 4, 24, 3);
    let registry = Registry::with_builtins();
    for cell in ["lstm", "gru"] {
        let json = format!(
            r#"{{"data": {{"source": "{}", "val_source": "{}", "batch_size": 4, "val_batch_size": 4,
                          "windows": {{"length": 8, "start_increments": [0, 4]}}}},
                 "model": {{"name": "{cell}", "hidden": 6, "per_step": true}},
                 "optimizer": {{"lr": 0.02, "weight_decay": 0}},
                 "train": {{"epochs": 2, "key_metric": "val_loss", "validate_every": {{"epochs": 1}}}}}}"#,
            train.display(),
            val.display()
        );
        let make = |run: &Path| job(&json, run, &registry).build_with(&registry).unwrap();
        let mut first = make(&scratch(&format!("registry-seq-{cell}")));
        assert!(
            first.model().name().contains(cell),
            "{}",
            first.model().name()
        );
        assert_eq!(first.fit().unwrap(), Outcome::Finished);
        let checkpoints = crate::autodata_train::check_resume_everywhere(
            &format!("registry-seq-{cell}-resume"),
            &make,
        );
        assert!(checkpoints.len() > 10, "{cell}: {}", checkpoints.len());
    }
    // Windows need validation data of their own.
    let json = format!(
        r#"{{"data": {{"source": "{}", "windows": {{"length": 8}}}}, "model": {{"name": "gru"}}}}"#,
        train.display()
    );
    let err = job(&json, &scratch("registry-seq-noval"), &registry)
        .build_with(&registry)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("data.val_source") && err.contains("windows"),
        "{err}"
    );
}
