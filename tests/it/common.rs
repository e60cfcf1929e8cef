//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use deeptrain::checkpoint;
use deeptrain::data_loaders::array::DType as ArrayDType;
use deeptrain::data_loaders::npy::write_npy;
use deeptrain::registry::{Component, MlpArgs};
use deeptrain::trainer::Every;
use deeptrain::{JobConfig, Stage, TrainState, Trainer};

/// A fresh, empty directory under the target dir, unique per test name.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A small, fast job on the embedded digits: 2 epochs of 23 batches, validation every
/// 10 batches and at epoch ends (3 validation batches each), dropout on, shuffling on.
pub fn small_job(run_dir: &Path) -> JobConfig {
    let mut job = JobConfig::default();
    job.data.batch_size = 64;
    job.data.val_batch_size = Some(128);
    job.model = Component::with_args(
        "mlp",
        MlpArgs {
            hidden: vec![32],
            ..MlpArgs::default()
        },
    )
    .unwrap();
    job.train.epochs = 2;
    job.train.seed = 11;
    job.train.validate_every = Every::Batches(10);
    job.train.checkpoint_every = Every::Never;
    job.train.run_dir = run_dir.to_path_buf();
    job
}

/// The state with what legitimately differs between runs (wall time, number of
/// checkpoints written) cleared, as bytes: equal bytes mean bitwise-equal states,
/// NaNs included.
pub fn state_bytes(state: &TrainState) -> Vec<u8> {
    let mut s = state.clone();
    s.time = Default::default();
    s.checkpoints_saved = 0;
    bincode::serde::encode_to_vec(&s, bincode::config::standard()).unwrap()
}

/// Model and optimizer tensors of a checkpoint as (name, raw little-endian bytes).
pub fn tensor_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let ckpt = checkpoint::load_latest(dir).unwrap();
    let mut out = Vec::new();
    for (prefix, map) in [("model", &ckpt.model), ("optimizer", &ckpt.optimizer)] {
        let mut names: Vec<&String> = map.keys().collect();
        names.sort();
        for n in names {
            let t = map[n].flatten_all().unwrap();
            let bytes = match t.dtype() {
                candle_core::DType::F32 => t
                    .to_vec1::<f32>()
                    .unwrap()
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect(),
                candle_core::DType::I64 => t
                    .to_vec1::<i64>()
                    .unwrap()
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect(),
                other => panic!("unexpected dtype {other:?}"),
            };
            out.push((format!("{prefix}/{n}"), bytes));
        }
    }
    out
}

/// Stages that end a transition of the state machine; each transition fires exactly one.
const TRANSITION_ENDS: [Stage; 5] = [
    Stage::TrainEpochBegin,
    Stage::TrainIterEnd,
    Stage::TrainEpochEnd,
    Stage::ValIterEnd,
    Stage::ValEnd,
];

/// Makes `trainer` interrupt itself after `k` more transitions; returns the counter.
pub fn interrupt_after(trainer: &mut Trainer, k: usize) -> Arc<AtomicUsize> {
    let count = Arc::new(AtomicUsize::new(0));
    for stage in TRANSITION_ENDS {
        let handle = trainer.interrupt_handle();
        let count = count.clone();
        trainer.on(stage, move |_| {
            if count.fetch_add(1, Ordering::SeqCst) + 1 == k {
                handle.interrupt();
            }
            Ok(())
        });
    }
    count
}

/// Writes `values` as a float32 `.npy` of `shape` (through the library's own writer; the
/// reader's byte-level tests in `autodata.rs` build their files by hand instead).
pub fn npy_f32(path: &Path, shape: &[usize], values: &[f32]) {
    let bytes: Vec<u8> = values.iter().flat_map(|x| x.to_le_bytes()).collect();
    write_npy(path, ArrayDType::F32, shape, &bytes).unwrap();
}

/// Writes `values` as a one-dimensional int64 `.npy` (class ids).
pub fn npy_i64(path: &Path, values: &[i64]) {
    let bytes: Vec<u8> = values.iter().flat_map(|x| x.to_le_bytes()).collect();
    write_npy(path, ArrayDType::I64, &[values.len()], &bytes).unwrap();
}
