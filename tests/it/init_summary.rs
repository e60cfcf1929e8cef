//! Starting from trained weights (`init_from`, `init_map`), freezing variables (`freeze`)
//! and the model summary table (`deeptrain summary`, `inspect`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::{Device, Tensor};
use candle_nn::VarMap;

use crate::common::{interrupt_after, scratch, small_job, state_bytes, tensor_bytes};
use deeptrain::checkpoint;
use deeptrain::model::ForwardCtx;
use deeptrain::registry::{Component, MlpArgs};
use deeptrain::rng::{RngStream, StreamId};
use deeptrain::{JobConfig, Outcome, Trainer};

/// One finished small run (hidden 32, 1 epoch), trained once for every test here.
fn source_run() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = scratch("init-source");
        let mut job = small_job(&dir);
        job.train.epochs = 1;
        job.logging.progress = false;
        job.build_trainer().unwrap().fit().unwrap();
        assert!(dir.join("best").is_dir());
        dir
    })
}

/// A job that starts from `source`, with a seed other than the source's.
fn job_from(run_dir: &Path, source: &Path) -> JobConfig {
    let mut job = small_job(run_dir);
    job.train.epochs = 1;
    job.train.seed = 99;
    job.logging.progress = false;
    job.init_from = Some(source.to_path_buf());
    job
}

fn var_values(varmap: &VarMap) -> BTreeMap<String, Vec<f32>> {
    let data = varmap.data().lock().unwrap();
    data.iter()
        .map(|(n, v)| (n.clone(), v.flatten_all().unwrap().to_vec1().unwrap()))
        .collect()
}

fn tensor_values(map: &HashMap<String, Tensor>) -> BTreeMap<String, Vec<f32>> {
    map.iter()
        .map(|(n, t)| (n.clone(), t.flatten_all().unwrap().to_vec1().unwrap()))
        .collect()
}

fn error_of(job: &JobConfig) -> String {
    job.build_trainer().err().expect("must fail").to_string()
}

#[test]
fn init_from_best_loads_every_weight_and_gives_the_same_outputs() {
    let best = source_run().join("best");
    let run = scratch("init-best");
    let job = job_from(&run, &best);
    let ckpt = checkpoint::load(&best).unwrap();
    let trainer = job.build_trainer().unwrap();
    assert_eq!(
        var_values(trainer.model().varmap()),
        tensor_values(&ckpt.model)
    );
    // Without init_from the seed-99 model differs.
    let mut plain = job.clone();
    plain.init_from = None;
    let fresh = plain.build_trainer().unwrap();
    assert_ne!(
        var_values(fresh.model().varmap()),
        tensor_values(&ckpt.model)
    );

    // The first batch's forward output equals the source model's, bit for bit.
    let x = Tensor::arange(0f32, 64.0 * 32.0, &Device::Cpu)
        .unwrap()
        .reshape((32, 64))
        .unwrap()
        .affine(1.0 / 2048.0, 0.0)
        .unwrap();
    let mut rng = RngStream::new(0, StreamId::Dropout);
    let mut forward = |m: &mut dyn deeptrain::Model| -> Vec<f32> {
        let mut ctx = ForwardCtx {
            train: false,
            dropout_rng: &mut rng,
        };
        m.forward(&x, &mut ctx)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    let mut source = JobConfig::from_checkpoint(&ckpt)
        .unwrap()
        .model_for_checkpoint(deeptrain::registry::builtins(), &ckpt)
        .unwrap();
    let mut started = job.build_model().unwrap();
    let report = deeptrain::job::load_weights(started.varmap(), &best, &BTreeMap::new()).unwrap();
    assert_eq!(report.loaded.len(), 4);
    assert!(report.kept.is_empty() && report.unused.is_empty());
    assert_eq!(report.source, best);
    assert_eq!(forward(source.as_mut()), forward(started.as_mut()));

    // A run directory means its newest good checkpoint.
    let from_run = job_from(&scratch("init-run-dir"), source_run());
    let newest = checkpoint::load_latest(source_run()).unwrap();
    assert_eq!(
        var_values(from_run.build_trainer().unwrap().model().varmap()),
        tensor_values(&newest.model)
    );
}

#[test]
fn init_from_an_exported_model_dir_or_safetensors_file() {
    let ckpt = checkpoint::load(&source_run().join("best")).unwrap();
    let export = scratch("init-export");
    let file = export.join(checkpoint::MODEL_FILE);
    candle_core::safetensors::save(&ckpt.model, &file).unwrap();
    for source in [&export, &file] {
        let job = job_from(&scratch("init-export-run"), source);
        let trainer = job.build_trainer().unwrap();
        assert_eq!(
            var_values(trainer.model().varmap()),
            tensor_values(&ckpt.model)
        );
    }
}

#[test]
fn init_map_renames_source_tensors_before_matching() {
    let ckpt = checkpoint::load(&source_run().join("best")).unwrap();
    let dir = scratch("init-map");
    let file = dir.join("renamed.safetensors");
    let renamed: HashMap<String, Tensor> = ckpt
        .model
        .iter()
        .map(|(n, t)| (n.replace("layers.0", "encoder"), t.clone()))
        .collect();
    candle_core::safetensors::save(&renamed, &file).unwrap();
    let mut job = job_from(&dir.join("run"), &file);
    // Without the map only layer 1 matches.
    let report =
        deeptrain::job::load_weights(job.build_model().unwrap().varmap(), &file, &BTreeMap::new())
            .unwrap();
    assert_eq!(report.loaded, ["layers.1.bias", "layers.1.weight"]);
    assert_eq!(report.kept, ["layers.0.bias", "layers.0.weight"]);
    assert_eq!(report.unused, ["encoder.bias", "encoder.weight"]);
    job.init_map = BTreeMap::from([
        ("encoder.weight".into(), "layers.0.weight".into()),
        ("encoder.bias".into(), "layers.0.bias".into()),
    ]);
    let trainer = job.build_trainer().unwrap();
    assert_eq!(
        var_values(trainer.model().varmap()),
        tensor_values(&ckpt.model)
    );

    // A rename of a tensor the source lacks is an error naming it.
    job.init_map.insert("decoder.weight".into(), "x".into());
    let err = error_of(&job);
    assert!(err.contains("init_map.decoder.weight"), "{err}");
    // init_map needs init_from.
    job.init_from = None;
    let err = error_of(&job);
    assert!(
        err.contains("init_map") && err.contains("init_from"),
        "{err}"
    );
}

#[test]
fn shape_mismatch_and_no_match_are_errors_naming_them() {
    let best = source_run().join("best");
    let mut job = job_from(&scratch("init-mismatch"), &best);
    job.model = Component::with_args(
        "mlp",
        MlpArgs {
            hidden: vec![16],
            ..MlpArgs::default()
        },
    )
    .unwrap();
    let err = error_of(&job);
    assert!(
        err.contains("`layers.0.bias` has shape [32]") && err.contains("but [16] in the model"),
        "{err}"
    );

    let dir = scratch("init-nomatch");
    let file = dir.join("other.safetensors");
    let t = Tensor::zeros((3, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
    candle_core::safetensors::save(&HashMap::from([("foo.weight".to_string(), t)]), &file).unwrap();
    let err = error_of(&job_from(&dir.join("run"), &file));
    assert!(
        err.contains("init_from")
            && err.contains("other.safetensors")
            && err.contains("foo.weight"),
        "{err}"
    );
    let err = error_of(&job_from(&dir.join("run"), &dir.join("missing")));
    assert!(
        err.contains("init_from") && err.contains("missing"),
        "{err}"
    );
}

#[test]
fn frozen_weights_stay_bit_identical_and_are_checkpointed() {
    let best = source_run().join("best");
    let source = tensor_values(&checkpoint::load(&best).unwrap().model);
    let run = scratch("init-freeze");
    let mut job = job_from(&run, &best);
    job.freeze = vec!["layers.0.*".into()];
    let mut trainer = job.build_trainer().unwrap();
    assert_eq!(trainer.fit().unwrap(), Outcome::Finished);
    let after = var_values(trainer.model().varmap());
    assert_eq!(after["layers.0.weight"], source["layers.0.weight"]);
    assert_eq!(after["layers.0.bias"], source["layers.0.bias"]);
    assert_ne!(after["layers.1.weight"], source["layers.1.weight"]);
    assert_ne!(after["layers.1.bias"], source["layers.1.bias"]);
    // The checkpoint holds every variable, frozen ones included; the optimizer only the
    // trained ones.
    let ckpt = checkpoint::load_latest(&run).unwrap();
    assert_eq!(tensor_values(&ckpt.model), after);
    assert!(ckpt.optimizer.keys().any(|k| k.contains("layers.1")));
    assert!(!ckpt.optimizer.keys().any(|k| k.contains("layers.0")));
    // The resolved config keeps the settings.
    let saved = JobConfig::from_checkpoint(&ckpt).unwrap();
    assert_eq!(saved.freeze, ["layers.0.*"]);
    assert_eq!(saved.init_from.as_deref(), Some(best.as_path()));

    job.freeze = vec!["layers.9.*".into()];
    let err = error_of(&job);
    assert!(
        err.contains("freeze") && err.contains("layers.9.*"),
        "{err}"
    );
}

#[test]
fn a_config_without_init_settings_serializes_as_before() {
    let json = JobConfig::default().to_json();
    for field in ["init_from", "init_map", "freeze"] {
        assert!(!json.contains(field), "{json}");
    }
    let text = r#"{"init_from": "runs/x/best", "init_map": {"a.w": "layers.0.weight"}, "freeze": ["layers.0.*"]}"#;
    let job = JobConfig::from_json_str(text, Path::new("job.json")).unwrap();
    assert_eq!(
        JobConfig::from_json_str(&job.to_json(), Path::new("j")).unwrap(),
        job
    );
}

#[test]
fn resume_does_not_reload_init_from_even_when_the_source_is_gone() {
    let dir = scratch("init-resume");
    let source = dir.join("source");
    let ckpt = checkpoint::load(&source_run().join("best")).unwrap();
    std::fs::create_dir_all(&source).unwrap();
    candle_core::safetensors::save(&ckpt.model, source.join(checkpoint::MODEL_FILE)).unwrap();
    let with_freeze = |run: &Path| {
        let mut job = job_from(run, &source);
        job.freeze = vec!["layers.0.bias".into()];
        job
    };
    let reference = dir.join("reference");
    with_freeze(&reference)
        .build_trainer()
        .unwrap()
        .fit()
        .unwrap();
    let run = dir.join("run");
    let mut trainer = with_freeze(&run).build_trainer().unwrap();
    interrupt_after(&mut trainer, 9);
    assert!(matches!(
        trainer.fit().unwrap(),
        Outcome::Interrupted { .. }
    ));
    drop(trainer);
    std::fs::remove_dir_all(&source).unwrap();
    let mut resumed = Trainer::resume(&run).unwrap();
    assert_eq!(resumed.fit().unwrap(), Outcome::Finished);
    let reference_state = checkpoint::load_latest(&reference).unwrap().meta.state;
    assert!(state_bytes(&resumed.state) == state_bytes(&reference_state));
    assert!(tensor_bytes(&run) == tensor_bytes(&reference));
}

const BIN: &str = env!("CARGO_BIN_EXE_deeptrain");

fn deeptrain(cwd: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The default job's rows: 64 → 128 → 10.
fn assert_default_table(table: &str) {
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let find = |name: &str| rows.iter().find(|r| r.first() == Some(&name)).unwrap();
    assert_eq!(find("layers.0")[1..4], ["[128]", "8320", "yes"], "{table}");
    assert_eq!(find("layers.1")[1..4], ["[10]", "1290", "yes"], "{table}");
    assert_eq!(find("total")[1], "9610", "{table}");
    assert!(table.contains("weight [128, 64]"), "{table}");
}

#[test]
fn summary_of_the_default_job_from_the_library_and_the_cli() {
    let job = JobConfig::default();
    let model = job.build_model().unwrap();
    assert_eq!(model.name(), "mlp 64-128-10");
    let layers = model.layers();
    let shapes: Vec<_> = layers.iter().map(|l| l.output_shape.clone()).collect();
    assert_eq!(shapes, [Some(vec![128]), Some(vec![10])]);
    let params: Vec<usize> = layers.iter().map(|l| l.params()).collect();
    assert_eq!(params, [8320, 1290]);
    let table = deeptrain::model::summary_table(model.as_ref(), &[]);
    assert_default_table(&table);
    assert!(table.contains("9610 trainable, 0 frozen"), "{table}");

    let dir = scratch("summary-cli");
    std::fs::write(dir.join("job.json"), r#"{"freeze": ["layers.1.bias"]}"#).unwrap();
    let out = deeptrain(&dir, &["summary", "job.json"]);
    assert!(out.starts_with("model mlp 64-128-10\n"), "{out}");
    assert!(out.contains("layers.1  [10]      1290  partly"), "{out}");
    assert!(out.contains("9600 trainable, 10 frozen"), "{out}");
    std::fs::write(dir.join("job.json"), "{}").unwrap();
    assert_default_table(&deeptrain(&dir, &["summary", "job.json"]));
}

#[test]
fn summary_and_inspect_of_a_run_show_the_layers() {
    let dir = scratch("summary-run");
    let mut job = JobConfig::default();
    job.train.epochs = 1;
    job.train.run_dir = dir.join("run");
    job.logging.progress = false;
    job.freeze = vec!["layers.0.*".into()];
    job.build_trainer().unwrap().fit().unwrap();

    let out = deeptrain(&dir, &["summary", "run"]);
    assert!(out.contains("model mlp 64-128-10"), "{out}");
    assert!(out.contains("1290 trainable, 8320 frozen"), "{out}");
    assert!(out.contains("layers.0  [128]     8320  no"), "{out}");

    let out = deeptrain(&dir, &["inspect", "run"]);
    assert!(out.contains("layers.1  [10]      1290  yes"), "{out}");
    assert!(out.contains("total               9610"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&deeptrain(&dir, &["inspect", "--json", "run/best"])).unwrap();
    let layers = json["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    assert_eq!(layers[0]["name"], "layers.0");
    assert_eq!(layers[0]["output_shape"], serde_json::json!([128]));
    assert_eq!(layers[0]["params"], 8320);
    assert_eq!(layers[0]["frozen_params"], 8320);
    assert_eq!(layers[1]["params"], 1290);
    assert_eq!(layers[1]["frozen_params"], 0);
    assert_eq!(
        layers[1]["variables"][1]["shape"],
        serde_json::json!([10, 128])
    );
}
