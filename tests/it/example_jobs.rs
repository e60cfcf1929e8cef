//! The example jobs of `examples/configs/` (`mnist_cnn.json`, `resnet_cifar.json`) and the
//! `make_shapes` generator, cut short with `--set train.max_steps=N` so CI can afford
//! them: each config parses, builds its model from its data and trains through the real
//! binary. Their accuracy promise is `cargo bench --bench mnist_cnn`'s (minutes).

use std::path::{Path, PathBuf};

use crate::cli::run_program;
use crate::common::scratch;
use deeptrain::checkpoint;
use deeptrain::state::{DoneReason, RngStates};
use deeptrain::{Phase, TrainState};

#[path = "../../examples/make_shapes.rs"]
#[allow(dead_code)]
mod make_shapes;

const BIN: &str = env!("CARGO_BIN_EXE_deeptrain");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `deeptrain train CONFIG --run-dir RUN_DIR --set ...` from the repository root; the
/// finished run's state and model tensor shapes by name.
fn train(config: &str, run_dir: &Path, sets: &[String]) -> (TrainState, String, Vec<usize>) {
    let mut args = vec!["train", config, "--run-dir", run_dir.to_str().unwrap()];
    args.extend(["--set", "logging.progress=false"]);
    for s in sets {
        args.extend(["--set", s.as_str()]);
    }
    let ran = run_program(Path::new(BIN), &root(), &args);
    assert_eq!(ran.code, Some(0), "{ran}");
    let ckpt = checkpoint::load_latest(run_dir).unwrap();
    let fc = ["fc.1.weight", "fc.weight"]
        .iter()
        .find_map(|n| ckpt.model.get(*n))
        .expect("an output layer")
        .dims()
        .to_vec();
    (ckpt.meta.state, ckpt.meta.model_name, fc)
}

fn last(state: &TrainState, metric: &str) -> f64 {
    *state.val_history.metrics[metric].last().unwrap()
}

#[test]
fn mnist_cnn_config_trains_30_steps() {
    if !root().join("../shared/data/mnist").is_dir() {
        println!("skipped: ../shared/data/mnist not found");
        return;
    }
    let dir = scratch("example-mnist-cnn");
    let sets = ["train.max_steps=30".to_string()];
    let (state, model, fc) = train("examples/configs/mnist_cnn.json", &dir, &sets);
    assert_eq!(
        state.phase,
        Phase::Done {
            reason: DoneReason::Finished
        }
    );
    assert_eq!((state.batches_fit, state.batches_validated), (30, 10));
    assert_eq!(model, "cnn 16-32 / 128");
    // 32 x 7 x 7 after two poolings of 28x28 "same" convolutions, to 128, to 10 digits.
    assert_eq!(fc, [10, 128]);
    // The one_cycle schedule ran over the 30 steps: its last rate is max_lr / 25 / 1e4.
    let lr = *state.train_history.metrics["lr"].last().unwrap();
    assert!(lr < 1e-6, "last lr {lr}");
    // 30 steps of 128 images already beat chance (10%) by far (80.4% when written).
    let acc = last(&state, "val_accuracy");
    assert!(acc > 0.6, "val_accuracy after 30 steps {acc}");
}

#[test]
fn make_shapes_writes_the_same_balanced_set_every_time() {
    let (a, b) = (scratch("shapes-a"), scratch("shapes-b"));
    make_shapes::write_shapes(&a, 30, 20).unwrap();
    make_shapes::write_shapes(&b, 30, 20).unwrap();
    for f in [
        "train/images.npy",
        "train/labels.npy",
        "val/images.npy",
        "val/labels.npy",
    ] {
        let bytes = std::fs::read(a.join(f)).unwrap();
        assert!(bytes == std::fs::read(b.join(f)).unwrap(), "{f} differs");
    }
    let images = deeptrain::data_loaders::npy::read_npy(a.join("train/images.npy")).unwrap();
    assert_eq!(images.shape, [30, 3, 32, 32]);
    let labels = std::fs::read(a.join("train/labels.npy")).unwrap();
    let ids = &labels[labels.len() - 30..];
    assert!(
        ids.iter().enumerate().all(|(i, &c)| c as usize == i % 10),
        "{ids:?}"
    );
    // Train and validation are drawn from different seeds.
    let val = std::fs::read(a.join("val/images.npy")).unwrap();
    let train = std::fs::read(a.join("train/images.npy")).unwrap();
    assert!(val[128..1000] != train[128..1000]);
}

#[test]
fn resnet_cifar_config_trains_on_generated_shapes() {
    let data = scratch("example-shapes");
    make_shapes::write_shapes(&data, 200, 100).unwrap();
    let dir = scratch("example-resnet");
    let sets = [
        format!("data.source={}", data.join("train").display()),
        format!("data.val_source={}", data.join("val").display()),
        "train.max_steps=6".to_string(),
    ];
    let (state, model, fc) = train("examples/configs/resnet_cifar.json", &dir, &sets);
    assert_eq!(
        state.phase,
        Phase::Done {
            reason: DoneReason::Finished
        }
    );
    // 200 / 64 = 4 batches an epoch: 6 steps end in the second epoch, after validations
    // at the first epoch's end and at the last step, each one batch (100 images of 500).
    assert_eq!(
        (state.batches_fit, state.epoch, state.batches_validated),
        (6, 1, 2)
    );
    assert_eq!(model, "resnet 16-32-64 x1");
    assert_eq!(fc, [10, 64]);
    let acc = last(&state, "val_accuracy");
    assert!((0.0..=1.0).contains(&acc), "val_accuracy {acc}");
    // The random crop and flip drew from the augmentation stream.
    assert!(state.rng.augment != RngStates::augment_start(7));
}
