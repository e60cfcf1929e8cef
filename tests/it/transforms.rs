//! Transforms of batches named in a job (`data.transforms`): a run with random crops,
//! flips and noise resumes bit for bit from a stop at every transition and is the same in
//! every process; augmentation changes train batches only; deterministic transforms and
//! the label map reach validation, evaluation, prediction and the model card; old
//! checkpoints without the augmentation stream still load; wrong names and arguments are
//! one line naming the transform and the argument.

use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::{Device, Tensor};
use deeptrain::checkpoint::{self, STATE_FILE};
use deeptrain::job::EvalData;
use deeptrain::registry::Registry;
use deeptrain::rng::RngState;
use deeptrain::state::RngStates;
use deeptrain::transforms::ApplyCtx;
use deeptrain::{JobConfig, Outcome, Predictor, RngStream, Stage, StreamId, Trainer};

use crate::autodata_train::check_resume_everywhere;
use crate::checkpoints::{format3_payload, state_file};
use crate::cli::run_program;
use crate::common::{interrupt_after, scratch, small_job, state_bytes, tensor_bytes};

const BIN: &str = env!("CARGO_BIN_EXE_deeptrain");

/// Crops of the zero-padded 8x8 digits, flips, noise, then standardisation.
const AUGMENT: &str = r#"[
    {"name": "random_crop", "padding": 1},
    {"name": "random_flip", "p": 0.5},
    {"name": "gaussian_noise", "std": 0.05},
    {"name": "normalize", "mean": [0.3], "std": [0.4]}
]"#;

/// A small digits job (6 train batches of 256 per epoch, 2 epochs, a validation every 4
/// batches and at epoch ends) with `transforms` (JSON) in its data section.
fn job(run_dir: &Path, transforms: &str) -> JobConfig {
    let json = format!(
        r#"{{"data": {{"batch_size": 256, "val_batch_size": 512, "transforms": {transforms}}},
            "model": {{"name": "mlp", "hidden": [16]}},
            "train": {{"epochs": 2, "seed": 5, "validate_every": {{"batches": 4}},
                       "checkpoint_every": "never"}},
            "logging": {{"progress": false, "tensorboard": false}}}}"#
    );
    let mut job = JobConfig::from_json_str(&json, Path::new("augment.json")).unwrap();
    job.train.run_dir = run_dir.to_path_buf();
    job
}

#[test]
fn a_run_with_augmentation_resumes_bitwise_from_a_stop_at_every_transition() {
    let checkpoints = check_resume_everywhere("transforms-resume", &|run| {
        job(run, AUGMENT).build_trainer().unwrap()
    });
    assert!(checkpoints.len() > 15, "{} transitions", checkpoints.len());
    // The stream moved, and its position is in the checkpoints.
    let last = checkpoint::load(checkpoints.last().unwrap()).unwrap();
    let start = RngStates::augment_start(5);
    assert_eq!(
        (
            last.meta.state.rng.augment.seed,
            last.meta.state.rng.augment.stream
        ),
        (start.seed, start.stream)
    );
    assert!(last.meta.state.rng.augment.word_pos > start.word_pos);

    // Rebuilt from nothing but the run directory (the transforms from the saved config),
    // mid-epoch, the run also finishes as the uninterrupted one.
    let reference_dir = scratch("transforms-resume-job-reference");
    let mut reference = job(&reference_dir, AUGMENT).build_trainer().unwrap();
    assert_eq!(reference.fit().unwrap(), Outcome::Finished);
    let run = scratch("transforms-resume-job");
    let mut stopped = job(&run, AUGMENT).build_trainer().unwrap();
    interrupt_after(&mut stopped, 5);
    assert!(matches!(
        stopped.fit().unwrap(),
        Outcome::Interrupted { .. }
    ));
    drop(stopped);
    let mut resumed = Trainer::resume(&run).unwrap();
    assert_eq!(resumed.transforms().names().len(), 4);
    assert_eq!(resumed.fit().unwrap(), Outcome::Finished);
    assert!(state_bytes(&resumed.state) == state_bytes(&reference.state));
    assert!(tensor_bytes(&run) == tensor_bytes(&reference_dir));
}

/// The word position of the augmentation stream at every train and validation
/// iteration end of a run.
fn positions(trainer: &mut Trainer) -> Arc<Mutex<Vec<(Stage, u128)>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    for stage in [Stage::ValBegin, Stage::ValIterEnd, Stage::TrainIterEnd] {
        let seen = seen.clone();
        trainer.on(stage, move |view| {
            let at = view.state.rng.augment.word_pos;
            seen.lock().unwrap().push((stage, at));
            Ok(())
        });
    }
    seen
}

#[test]
fn augmentation_draws_on_train_batches_only_and_changes_them() {
    let dir = scratch("transforms-draws");
    let mut trainer = job(&dir, AUGMENT).build_trainer().unwrap();
    let seen = positions(&mut trainer);
    assert_eq!(trainer.fit().unwrap(), Outcome::Finished);
    let seen = seen.lock().unwrap();
    let mut last = 0;
    let mut train_iterations = 0;
    for (stage, at) in seen.iter() {
        match stage {
            // Every train batch draws (crop offsets, flips, noise) ...
            Stage::TrainIterEnd => {
                assert!(*at > last, "a train batch drew nothing: {seen:?}");
                train_iterations += 1;
            }
            // ... no validation batch does.
            _ => assert_eq!(*at, last, "{stage}: {seen:?}"),
        }
        last = *at;
    }
    assert_eq!(train_iterations, 12);

    // The job's chain on a train batch: every sample changed; on a validation batch only
    // `normalize` acts (the crop of the own size around a padding is the image itself).
    let batch_x = Tensor::from_vec(
        (0..4 * 64)
            .map(|i| (i % 17) as f32 / 16.0)
            .collect::<Vec<_>>(),
        (4, 64),
        &Device::Cpu,
    )
    .unwrap();
    let x = batch_x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let mut rng = RngStream::new(5, StreamId::Augment);
    let chain = trainer.transforms();
    let mut ctx = ApplyCtx {
        train: true,
        rng: &mut rng,
    };
    let (train, _) = chain.apply(batch_x.clone(), None, &mut ctx).unwrap();
    assert_eq!(train.dims(), batch_x.dims());
    let train = train.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for (s, (a, b)) in train.chunks(64).zip(x.chunks(64)).enumerate() {
        let normalized: Vec<f32> = b.iter().map(|v| (v - 0.3f32) / 0.4f32).collect();
        assert_ne!(a, &normalized[..], "train sample {s} was not augmented");
    }
    let mut ctx = ApplyCtx {
        train: false,
        rng: &mut rng,
    };
    let (val, _) = chain.apply(batch_x.clone(), None, &mut ctx).unwrap();
    let want: Vec<f32> = x.iter().map(|v| (v - 0.3f32) / 0.4f32).collect();
    assert_eq!(val.flatten_all().unwrap().to_vec1::<f32>().unwrap(), want);

    // Augmentation changes what is learnt: the same job without it ends elsewhere.
    let plain = scratch("transforms-draws-plain");
    let mut t = job(&plain, "[]").build_trainer().unwrap();
    assert_eq!(t.fit().unwrap(), Outcome::Finished);
    assert_eq!(t.state.rng.augment, RngStates::augment_start(5));
    assert!(tensor_bytes(&plain) != tensor_bytes(&dir));
}

#[test]
fn the_same_augmented_job_gives_the_same_bits_in_every_process() {
    let cwd = scratch("transforms-processes");
    let config = cwd.join("augment.json");
    let mut job = job(&cwd.join("unused"), AUGMENT);
    job.train.run_dir = Default::default();
    std::fs::write(&config, job.to_json()).unwrap();
    let config = config.to_str().unwrap();
    for dir in ["a", "b"] {
        let ran = run_program(Path::new(BIN), &cwd, &["train", config, "--run-dir", dir]);
        assert_eq!(ran.code, Some(0), "{ran}");
    }
    let (a, b) = (cwd.join("a"), cwd.join("b"));
    assert!(tensor_bytes(&a) == tensor_bytes(&b));
    let state = |d: &Path| state_bytes(&checkpoint::load_latest(d).unwrap().meta.state);
    assert!(state(&a) == state(&b));
    let augment = checkpoint::load_latest(&a).unwrap().meta.state.rng.augment;
    assert!(augment.word_pos > 0, "{augment:?}");
    // The run directory records the transforms with every argument filled in.
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        saved["data"]["transforms"][1],
        serde_json::json!({"name": "random_flip", "axis": "horizontal", "p": 0.5})
    );
    assert_eq!(
        saved["data"]["transforms"][0],
        serde_json::json!({"name": "random_crop", "size": null, "padding": 1})
    );
}

#[test]
fn deterministic_transforms_and_the_label_map_reach_evaluation_prediction_and_export() {
    // 7x7 crops of the 8x8 digits (a model of 49 inputs), "is it a 0?" (2 classes).
    let run = scratch("transforms-use").join("run");
    let transforms = r#"[
        {"name": "random_crop", "size": [7, 7]},
        {"name": "scale", "factor": 2.0},
        {"name": "label_map", "map": {"0": 1}, "other": 0}
    ]"#;
    let mut job = job(&run, transforms);
    job.optimizer.set("lr", 0.01);
    job.data.batch_size = 32;
    let mut trainer = job.build_trainer().unwrap();
    assert_eq!(trainer.model().name(), "mlp 49-16-2");
    assert_eq!(
        trainer.task(),
        deeptrain::Task::Classification { num_classes: 2 }
    );
    assert_eq!(trainer.fit().unwrap(), Outcome::Finished);
    let acc = trainer.state.val_history.latest()["val_accuracy"];
    assert!(acc > 0.93, "val_accuracy {acc}");

    // Evaluation: the run's validation batches through the same deterministic chain,
    // so its numbers are exactly the run's last validation.
    let p = Predictor::load(&run).unwrap();
    assert_eq!(
        p.transforms().names(),
        ["random_crop", "scale", "label_map"]
    );
    let eval = p.evaluate(&EvalData::Validation).unwrap();
    let last = trainer.state.val_history.latest();
    for (name, value) in &eval.metrics {
        assert_eq!(value.unwrap(), last[&format!("val_{name}")], "{name}");
    }
    assert_eq!(eval.confusion_matrix.len(), 2);
    let zeros: u64 = eval.per_class[1].support;
    assert!((25..50).contains(&zeros), "{zeros} zeros of 359");

    // Prediction takes raw 8x8 inputs: the model sees their centre crop, at (8 - 7) / 2 = 0
    // from the top left, scaled.
    let raw: Vec<f32> = (0..3 * 64).map(|i| (i % 17) as f32).collect();
    let x = Tensor::from_vec(raw.clone(), (3, 64), &Device::Cpu).unwrap();
    let probs = p.predict(&x).unwrap();
    assert_eq!(probs.dims(), [3, 2]);
    let centre: Vec<f32> = (0..3)
        .flat_map(|s| (0..7).flat_map(move |r| (0..7).map(move |c| (s, r, c))))
        .map(|(s, r, c)| raw[s * 64 + r * 8 + c] / 16.0 * 2.0)
        .collect();
    let centre = Tensor::from_vec(centre, (3, 49), &Device::Cpu).unwrap();
    let mut model = p.job().build_model().unwrap();
    for (name, t) in p.variables().unwrap() {
        let vars = model.varmap().data().lock().unwrap();
        vars[&name].set(&t).unwrap();
    }
    let mut rng = RngStream::new(0, StreamId::Dropout);
    let mut ctx = deeptrain::model::ForwardCtx {
        train: false,
        dropout_rng: &mut rng,
    };
    let logits = model.forward(&centre, &mut ctx).unwrap();
    let by_hand = candle_nn::ops::softmax_last_dim(&logits).unwrap();
    assert_eq!(
        probs.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        by_hand.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );

    // The model card says the chain, with every argument.
    let card = p.model_card().unwrap();
    assert_eq!(card.input_shape, [64]);
    assert_eq!(card.num_classes, Some(2));
    let names: Vec<&str> = card.transforms.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["random_crop", "scale", "label_map"]);
    assert_eq!(card.transforms[0].args["padding"], 0);
}

#[test]
fn a_checkpoint_of_format_3_loads_with_the_augmentation_stream_at_its_start() {
    let reference_dir = scratch("transforms-format3-reference");
    let mut reference = small_job(&reference_dir).build_trainer().unwrap();
    assert_eq!(reference.fit().unwrap(), Outcome::Finished);
    let run = scratch("transforms-format3");
    let mut stopped = small_job(&run).build_trainer().unwrap();
    interrupt_after(&mut stopped, 9);
    let Outcome::Interrupted { checkpoint: ckpt } = stopped.fit().unwrap() else {
        panic!("expected an interrupt");
    };
    drop(stopped);
    // The checkpoint as a build of format 3 wrote it: no augmentation stream.
    let path = ckpt.join(STATE_FILE);
    let current = std::fs::read(&path).unwrap();
    let old = format3_payload(&path, &current);
    std::fs::write(&path, state_file(3, &old, true)).unwrap();
    let loaded = checkpoint::load(&ckpt).unwrap();
    let start: RngState = RngStates::augment_start(11);
    assert_eq!(loaded.meta.state.rng.augment, start);
    // It resumes, and finishes as the run that never stopped.
    let mut resumed = Trainer::resume(&run).unwrap();
    assert_eq!(resumed.fit().unwrap(), Outcome::Finished);
    assert!(state_bytes(&resumed.state) == state_bytes(&reference.state));
    assert!(tensor_bytes(&run) == tensor_bytes(&reference_dir));
}

#[test]
fn no_transforms_leave_the_default_job_as_it_was() {
    // Left out, the section is not written: configs of older runs compare equal.
    let job = JobConfig::default();
    assert!(job.data.transforms.is_empty());
    assert!(!job.to_json().contains("transforms"));
    let dir = scratch("transforms-none");
    let t = small_job(&dir).build_trainer().unwrap();
    assert!(t.transforms().is_empty());
}

#[test]
fn wrong_names_and_arguments_are_one_line_naming_the_transform_and_argument() {
    let cases: [(&str, &[&str]); 7] = [
        (
            r#"[{"name": "random_flip"}, {"name": "rnadom_crop"}]"#,
            &[
                "data.transforms[1].name",
                "unknown transform `rnadom_crop`",
                "did you mean `random_crop`",
                "gaussian_noise",
            ],
        ),
        (
            r#"[{"name": "random_flip", "p": 2}]"#,
            &["data.transforms[0]: `random_flip`: argument `p`: 2 is not in [0, 1]"],
        ),
        (
            r#"[{"name": "random_flip", "axis": "diagonal"}]"#,
            &[
                "data.transforms[0]: `random_flip`: argument `axis`",
                "diagonal",
                "horizontal",
            ],
        ),
        (
            r#"[{"name": "scale", "factr": 2}]"#,
            &[
                "data.transforms[0]: `scale`: argument `factr`",
                "unknown field",
            ],
        ),
        (
            r#"[{"name": "normalize", "mean": [0.1, 0.2], "std": [1]}]"#,
            &["data.transforms[0]: `normalize`: argument `std`: 1 values for 2"],
        ),
        (
            r#"[{"name": "gaussian_noise", "std": 0}]"#,
            &["data.transforms[0]: `gaussian_noise`: argument `std`: 0 is not in (0, inf)"],
        ),
        (
            r#"[{"name": "label_map", "map": {"x": 1}}]"#,
            &["data.transforms[0]: `label_map`: argument `map.x`: `x` is not a class id"],
        ),
    ];
    let registry = Registry::with_builtins();
    for (transforms, parts) in cases {
        let json = format!(r#"{{"data": {{"transforms": {transforms}}}}}"#);
        let err = JobConfig::from_json_str_with(&json, Path::new("bad.json"), &registry)
            .err()
            .unwrap_or_else(|| panic!("{transforms} was accepted"))
            .to_string();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("bad.json: "), "{err}");
        for p in parts {
            assert!(err.contains(p), "{transforms}: {err:?} does not say {p:?}");
        }
    }
    // What only the data can tell is told when the job is built, as one line too.
    let dir = scratch("transforms-bad-build");
    for (transforms, want) in [
        (
            r#"[{"name": "scale"}, {"name": "normalize", "mean": [0, 0, 0], "std": [1, 1, 1]}]"#,
            "config data.transforms[1]: `normalize`: argument `mean`: 3 values are per channel",
        ),
        (
            r#"[{"name": "random_crop", "size": [9, 9]}]"#,
            "config data.transforms[0]: `random_crop`: argument `size`: [9, 9] does not fit in images of 8x8",
        ),
        (
            r#"[{"name": "label_map", "map": {"10": 0}}]"#,
            "config data.transforms[0]: `label_map`: argument `map.10`: the data has classes 0 to 9",
        ),
    ] {
        let err = job(&dir, transforms).build_trainer().err().unwrap().to_string();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with(want), "{err}");
    }
    // `deeptrain list transforms` lists every built-in with its arguments.
    let ran = run_program(Path::new(BIN), &dir, &["list", "transforms"]);
    assert_eq!(ran.code, Some(0), "{ran}");
    for name in [
        "gaussian_noise",
        "label_map",
        "normalize",
        "random_crop",
        "random_flip",
        "scale",
        "padding",
        "\"data\": {\"transforms\"",
    ] {
        assert!(ran.stdout.contains(name), "{name}: {}", ran.stdout);
    }
}
