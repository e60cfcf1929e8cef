//! A job config over a directory read by AutoData: real MNIST from ../shared.

use std::path::{Path, PathBuf};

use crate::common::scratch;
use deeptrain::{JobConfig, Outcome, Trainer};

fn mnist_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mnist");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("skipped: {} not found", dir.display());
        None
    }
}

fn mnist_job(run_dir: &Path) -> Option<JobConfig> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/configs/mnist.json"),
    )
    .unwrap();
    let mut job =
        JobConfig::from_json_str(&text, Path::new("examples/configs/mnist.json")).unwrap();
    job.data.source = mnist_dir()?.to_string_lossy().to_string().into();
    job.train.run_dir = run_dir.to_path_buf();
    job.logging.progress = false;
    Some(job)
}

#[test]
fn one_epoch_of_mnist_from_its_idx_files() {
    let dir = scratch("mnist-job");
    let Some(mut job) = mnist_job(&dir) else {
        return;
    };
    job.train.epochs = 1;
    let mut trainer = job.build_trainer().unwrap();
    assert_eq!(trainer.fit().unwrap(), Outcome::Finished);
    let s = &trainer.state;
    // 60000 / 128 = 468.75 → 469 train batches; 10000 / 1000 = 10 validation batches.
    assert_eq!((s.batches_fit, s.batches_validated), (469, 10));
    let acc = s.val_history.metrics["val_accuracy"][0];
    assert!(acc > 0.93, "val_accuracy {acc}");
    assert_eq!(trainer.model().name(), "mlp 784-256-10");
}

#[test]
fn mnist_resumes_mid_epoch_bitwise() {
    let Some(mut job) = mnist_job(&scratch("mnist-ref")) else {
        return;
    };
    job.train.epochs = 1;
    job.logging.tensorboard = false;
    let mut reference = job.build_trainer().unwrap();
    reference.fit().unwrap();
    let dir = scratch("mnist-resume");
    job.train.run_dir = dir.clone();
    let mut t = job.build_trainer().unwrap();
    let h = t.interrupt_handle();
    t.on(deeptrain::Stage::TrainIterEnd, move |v| {
        if v.state.batches_fit == 200 {
            h.interrupt();
        }
        Ok(())
    });
    assert!(matches!(t.fit().unwrap(), Outcome::Interrupted { .. }));
    let mut resumed = Trainer::resume(&dir).unwrap();
    resumed.fit().unwrap();
    assert!(
        crate::common::state_bytes(&resumed.state) == crate::common::state_bytes(&reference.state)
    );
    assert!(
        crate::common::tensor_bytes(&dir) == crate::common::tensor_bytes(&reference.config.run_dir)
    );
}
