//! AutoData under the trainer: bitwise resume mid-epoch and between time-series windows,
//! editable set lists, and the reset of recurrent state after each set's last window.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::common::{interrupt_after, npy_f32, npy_i64, scratch, state_bytes, tensor_bytes};
use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use deeptrain::checkpoint;
use deeptrain::data_loaders::{AutoData, TimeseriesWindows};
use deeptrain::model::recurrent::Cell;
use deeptrain::model::ForwardCtx;
use deeptrain::trainer::Every;
use deeptrain::{
    AdamConfig, AdamW, Mlp, MlpConfig, Model, Outcome, Recurrent, RecurrentConfig, RngStream,
    Stage, StreamId, Task, Trainer,
};

/// Files of unequal sizes, 6 features per sample, 5 classes learnable from the features.
fn class_dir(name: &str, sizes: &[(u64, usize)]) -> PathBuf {
    let dir = scratch(name);
    let mut id = 0usize;
    let mut labels = Vec::new();
    for (num, n) in sizes {
        let mut x = Vec::new();
        for i in id..id + n {
            let class = i % 5;
            for j in 0..6 {
                let noise = ((i * 7 + j * 13) % 17) as f32 / 17.0;
                x.push(if j == class { 1.0 + noise } else { noise });
            }
            labels.push(class as i64);
        }
        npy_f32(&dir.join(format!("batch_{num}.npy")), &[*n, 6], &x);
        id += n;
    }
    npy_i64(&dir.join("labels.npy"), &labels);
    dir
}

fn configure(c: &mut deeptrain::TrainConfig, run: &Path) {
    c.epochs = 2;
    c.seed = 7;
    c.run_dir = run.to_path_buf();
    c.validate_every = Every::Batches(4);
    c.checkpoint_every = Every::Never;
}

fn mlp_trainer(train_dir: &Path, val_dir: &Path, run: &Path) -> Trainer {
    let train = AutoData::from_dir(train_dir)
        .unwrap()
        .batch_size(32)
        .shuffle(true)
        .shuffle_samples(true)
        .build()
        .unwrap();
    let val = AutoData::from_dir(val_dir)
        .unwrap()
        .batch_size(64)
        .build()
        .unwrap();
    let mut init = RngStream::new(7, StreamId::Init);
    let model = Mlp::new(
        MlpConfig {
            inputs: 6,
            hidden: vec![16],
            outputs: 5,
            dropout: 0.1,
        },
        &mut init,
        &Device::Cpu,
    )
    .unwrap();
    let opt = AdamW::from_varmap(
        model.varmap(),
        AdamConfig {
            lr: 1e-2,
            ..AdamConfig::default()
        },
    );
    Trainer::builder(model, opt)
        .train_data(train)
        .val_data(val)
        .init_rng(init)
        .configure(|c| configure(c, run))
        .build()
        .unwrap()
}

/// Runs `make` to the end, then for every transition k: stop after k, rebuild, load the
/// checkpoint, finish, and compare state and tensors bitwise with the uninterrupted run.
pub(crate) fn check_resume_everywhere(name: &str, make: &dyn Fn(&Path) -> Trainer) -> Vec<PathBuf> {
    let reference_dir = scratch(&format!("{name}-reference"));
    let mut reference = make(&reference_dir);
    let count = interrupt_after(&mut reference, usize::MAX);
    assert_eq!(reference.fit().unwrap(), Outcome::Finished);
    let transitions = count.load(Ordering::SeqCst);
    let want_state = state_bytes(&reference.state);
    let want_tensors = tensor_bytes(&reference_dir);
    let dir = scratch(&format!("{name}-runs"));
    let mut checkpoints = Vec::new();
    for k in 1..transitions {
        let run = dir.join(format!("k{k:03}"));
        let mut trainer = make(&run);
        interrupt_after(&mut trainer, k);
        let Outcome::Interrupted { checkpoint } = trainer.fit().unwrap() else {
            panic!("k={k}: expected an interrupt");
        };
        drop(trainer);
        checkpoints.push(checkpoint);
        let mut resumed = make(&run);
        resumed.load_checkpoint(&run).unwrap();
        assert_eq!(resumed.fit().unwrap(), Outcome::Finished, "k={k}");
        assert!(
            state_bytes(&resumed.state) == want_state,
            "k={k}: state differs"
        );
        assert!(
            tensor_bytes(&run) == want_tensors,
            "k={k}: weights or optimizer differ"
        );
    }
    checkpoints
}

#[test]
fn resume_mid_epoch_is_bitwise_with_shuffled_unequal_files() {
    let train = class_dir(
        "autotrain-mlp-data",
        &[(0, 60), (1, 20), (2, 45), (10, 15), (3, 30)],
    );
    let val = class_dir("autotrain-mlp-val", &[(0, 40), (1, 40)]);
    let reference_dir = scratch("autotrain-mlp-check");
    let mut t = mlp_trainer(&train, &val, &reference_dir);
    assert_eq!(t.task(), Task::Classification { num_classes: 5 });
    assert_eq!(t.fit().unwrap(), Outcome::Finished);
    let s = &t.state;
    // 170 samples in batches of 32: 6 per epoch, the last one of 10 samples.
    assert_eq!((s.epoch, s.batches_fit, s.global_step), (2, 12, 12));
    assert_eq!(
        s.train_data.loader.batch_size, 32,
        "the loader's batch size wins"
    );
    assert!(s.train_data.loader.shuffle && s.train_data.loader.shuffle_samples);
    assert_eq!(s.val_data.sets_done, ["0+1-a", "1-b"]);
    let acc = s.val_history.latest()["val_accuracy"];
    assert!(acc > 0.5, "val accuracy {acc}");

    let checkpoints =
        check_resume_everywhere("autotrain-mlp", &|run| mlp_trainer(&train, &val, run));
    assert!(checkpoints.len() > 20);
}

#[test]
fn sets_edited_in_the_state_are_skipped_or_repeated() {
    let train = class_dir("autotrain-edit-data", &[(0, 16), (1, 16), (2, 16), (3, 16)]);
    let val = class_dir("autotrain-edit-val", &[(0, 8)]);
    let run = scratch("autotrain-edit");
    let make = || {
        let train = AutoData::from_dir(&train)
            .unwrap()
            .batch_size(16)
            .shuffle(false)
            .build()
            .unwrap();
        let val = AutoData::from_dir(&val).unwrap().build().unwrap();
        let mut init = RngStream::new(1, StreamId::Init);
        let model = Mlp::new(
            MlpConfig {
                inputs: 6,
                hidden: vec![4],
                outputs: 5,
                dropout: 0.0,
            },
            &mut init,
            &Device::Cpu,
        )
        .unwrap();
        let opt = AdamW::from_varmap(model.varmap(), AdamConfig::default());
        Trainer::builder(model, opt)
            .train_data(train)
            .val_data(val)
            .configure(|c| {
                configure(c, &run);
                c.epochs = 1;
                c.validate_every = Every::Epochs(1);
            })
            .build()
            .unwrap()
    };
    let mut t = make();
    interrupt_after(&mut t, 1);
    assert!(matches!(t.fit().unwrap(), Outcome::Interrupted { .. }));
    assert_eq!(t.state.train_data.sets_to_process, ["0", "1", "2", "3"]);
    // Skip set 1, repeat set 3, and fit a set the plan does not hold ("0+2").
    t.state.train_data.sets_to_process = vec!["0".into(), "3".into(), "3".into(), "0+2".into()];
    assert_eq!(t.fit().unwrap(), Outcome::Finished);
    assert_eq!(t.state.train_data.sets_done, ["0", "3", "3", "0+2"]);
    assert_eq!(t.state.batches_fit, 4);
}

// ---- stateful time series ----------------------------------------------------------------

/// Sequences cut from a noisy sine; labels are the next step (per-step forecasting).
fn series_dir(name: &str, n_seq: usize, len: usize) -> PathBuf {
    let dir = scratch(name);
    let value = |t: usize| ((t as f32) * 0.37).sin() + 0.1 * ((t * 31 % 7) as f32 / 7.0);
    let mut x = Vec::new();
    let mut y = Vec::new();
    for s in 0..n_seq {
        for t in 0..len {
            x.push(value(s * 5 + t));
            y.push(value(s * 5 + t + 1));
        }
    }
    npy_f32(&dir.join("series.npy"), &[n_seq, len, 1], &x);
    npy_f32(&dir.join("labels.npy"), &[n_seq, len, 1], &y);
    dir
}

/// Wraps a model to count `reset_states` calls and record input shapes.
struct Counting {
    inner: Recurrent,
    resets: Arc<AtomicUsize>,
    shapes: Arc<Mutex<Vec<Vec<usize>>>>,
}

impl Model for Counting {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn varmap(&self) -> &VarMap {
        self.inner.varmap()
    }
    fn forward(&mut self, x: &Tensor, ctx: &mut ForwardCtx) -> deeptrain::Result<Tensor> {
        self.shapes.lock().unwrap().push(x.dims().to_vec());
        self.inner.forward(x, ctx)
    }
    fn carried_state(&self) -> deeptrain::Result<Vec<(String, Tensor)>> {
        self.inner.carried_state()
    }
    fn load_carried_state(&mut self, s: &HashMap<String, Tensor>) -> deeptrain::Result<()> {
        self.inner.load_carried_state(s)
    }
    fn reset_states(&mut self) {
        self.resets.fetch_add(1, Ordering::SeqCst);
        self.inner.reset_states()
    }
}

fn lstm(cell: Cell) -> (Recurrent, RngStream) {
    let mut init = RngStream::new(3, StreamId::Init);
    let model = Recurrent::new(
        RecurrentConfig {
            cell,
            inputs: 1,
            hidden: 8,
            outputs: 1,
            per_step: true,
        },
        &mut init,
        &Device::Cpu,
    )
    .unwrap();
    (model, init)
}

fn series_trainer(data: &Path, run: &Path, model: Box<dyn Model>, init: RngStream) -> Trainer {
    let windows = || TimeseriesWindows::new(8, 8).start_increments(vec![0, 4]);
    let train = AutoData::from_dir(data)
        .unwrap()
        .batch_size(2)
        .shuffle(true)
        .preprocessor(windows())
        .build()
        .unwrap();
    let val = AutoData::from_dir(data)
        .unwrap()
        .batch_size(3)
        .preprocessor(windows())
        .build()
        .unwrap();
    let opt = AdamW::from_varmap(
        model.varmap(),
        AdamConfig {
            lr: 1e-2,
            ..AdamConfig::default()
        },
    );
    Trainer::builder_boxed(model, Box::new(opt))
        .boxed_data(Box::new(train), Some(Box::new(val)))
        .task(Task::Regression)
        .init_rng(init)
        .configure(|c| configure(c, run))
        .build()
        .unwrap()
}

#[test]
fn windows_are_iterations_and_states_reset_after_each_set() {
    let data = series_dir("autotrain-series-count", 6, 24);
    let run = scratch("autotrain-series-count-run");
    let (inner, init) = lstm(Cell::Lstm);
    let resets = Arc::new(AtomicUsize::new(0));
    let shapes = Arc::new(Mutex::new(Vec::new()));
    let model = Counting {
        inner,
        resets: resets.clone(),
        shapes: shapes.clone(),
    };
    let mut t = series_trainer(&data, &run, Box::new(model), init);
    // Logs get one row per set, not one per window.
    t.add_callback(deeptrain::callbacks::CsvLogger::new(run.join("logs")))
        .unwrap();
    t.add_callback(deeptrain::callbacks::TensorBoard::new(run.join("tb")))
        .unwrap();
    let batch_ends = Arc::new(AtomicUsize::new(0));
    let b = batch_ends.clone();
    t.on(Stage::TrainBatchEnd, move |_| {
        b.fetch_add(1, Ordering::SeqCst);
        Ok(())
    });
    assert_eq!(t.fit().unwrap(), Outcome::Finished);
    let s = &t.state;
    // 6 sequences of 24 steps in sets of 2: 3 sets per epoch. Epoch 1 starts at 0:
    // 3 windows of 8 per set; epoch 2 starts at 4: 2 windows.
    assert_eq!(s.batches_fit, 6);
    assert_eq!(s.global_step, 3 * 3 + 3 * 2);
    assert_eq!(batch_ends.load(Ordering::SeqCst), 6);
    assert_eq!(s.train_history.len(), 6, "one row per set");
    let csv = std::fs::read_to_string(run.join("logs/train.csv")).unwrap();
    let firsts: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(firsts, ["1", "2", "3", "4", "5", "6"], "{csv}");
    let tb = std::fs::read_dir(run.join("tb"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let losses = crate::support::tb_reader::read_scalars(&tb)
        .unwrap()
        .iter()
        .filter(|(tag, ..)| tag == "train/loss")
        .count();
    assert_eq!(losses, 6, "one train/loss scalar per set");
    // Validation (sets of 3, 2 sets): after 4 sets (epoch 2) and after the last epoch.
    assert_eq!(s.batches_validated, 2 * 2);
    let train_windows = 15;
    // The validation loader counts its own epochs: its first pass starts at 0 (3 windows
    // per set), its second at 4 (2 windows per set).
    let val_windows = 2 * 3 + 2 * 2;
    let shapes = shapes.lock().unwrap();
    assert_eq!(shapes.len(), train_windows + val_windows);
    assert!(shapes.iter().all(|d| d[1] == 8));
    // One reset per train set and per validation set.
    assert_eq!(resets.load(Ordering::SeqCst), 6 + 4);
    assert!(t.model().carried_state().unwrap().is_empty());
    assert!(s.train_history.latest()["loss"].is_finite());
}

#[test]
fn resume_between_time_series_windows_is_bitwise() {
    let data = series_dir("autotrain-series", 6, 24);
    let checkpoints = check_resume_everywhere("autotrain-series", &|run| {
        let (model, init) = lstm(Cell::Lstm);
        series_trainer(&data, run, Box::new(model), init)
    });
    // Some stops fell between two windows of a set: their checkpoints carry (h, c).
    let mut between = 0;
    for c in &checkpoints {
        let ckpt = checkpoint::load_latest(c).unwrap();
        let s = &ckpt.meta.state;
        if s.train_data.window > 0 || s.val_data.window > 0 {
            between += 1;
            let mut names: Vec<&String> = ckpt.carried.keys().collect();
            names.sort();
            assert_eq!(names, ["rnn.c", "rnn.h"]);
            assert_eq!(ckpt.carried["rnn.h"].dims()[1], 8);
        }
    }
    assert!(between >= 10, "{between} stops between windows");
}

#[test]
fn gru_variant_carries_only_h() {
    let data = series_dir("autotrain-gru", 4, 16);
    let run = scratch("autotrain-gru-run");
    let (model, init) = lstm(Cell::Gru);
    let mut t = series_trainer(&data, &run, Box::new(model), init);
    interrupt_after(&mut t, 2); // epoch begin, window 0 of 2: mid-set
    assert!(matches!(t.fit().unwrap(), Outcome::Interrupted { .. }));
    assert_eq!(t.state.train_data.window, 1);
    let carried = t.model().carried_state().unwrap();
    assert_eq!(carried.len(), 1);
    assert_eq!(carried[0].0, "rnn.h");
    assert_eq!(t.fit().unwrap(), Outcome::Finished);
    assert!(t.state.train_history.latest()["loss"].is_finite());
}

/// A job over data without usable labels is refused when the data is read, naming the
/// labels (before, AutoData fed `y = x` or (n, 3) labels to the loss: a shape mismatch
/// deep inside `fit`).
#[test]
fn a_job_refuses_data_without_usable_labels() {
    let job_on = |dir: &Path| {
        let mut job = crate::common::small_job(&dir.join("run"));
        job.data.source = dir.display().to_string().into();
        job.data.val_fraction = 0.0;
        job.train.validate_every = Every::Never;
        job
    };
    let x: Vec<f32> = (0..200 * 4).map(|i| (i % 7) as f32).collect();

    // No labels file: y would be x.
    let dir = scratch("labels-none");
    npy_f32(&dir.join("x.npy"), &[200, 4], &x);
    let e = job_on(&dir).build_trainer().err().unwrap().to_string();
    assert!(
        e.contains("data.source")
            && e.contains(&format!("no labels found for {}", dir.display()))
            && e.contains("labels.npy"),
        "{e}"
    );

    // idx images without their ...-labels-idx1-... partner.
    let dir = scratch("labels-idx");
    let mut idx = vec![0u8, 0, 8, 3];
    for d in [200u32, 2, 2] {
        idx.extend_from_slice(&d.to_be_bytes());
    }
    idx.extend((0..800).map(|i| (i % 251) as u8));
    std::fs::write(dir.join("train-images-idx3-ubyte"), idx).unwrap();
    let e = job_on(&dir).build_trainer().err().unwrap().to_string();
    assert!(e.contains("no labels found for"), "{e}");
    let data = AutoData::from_dir(&dir).unwrap().build().unwrap();
    let report = data.report(0, &data.new_state()).unwrap().to_string();
    assert!(
        report.contains("labels      none found (y = x; "),
        "{report}"
    );

    // Labels of shape (200, 3): three values per sample for a one-output model.
    let dir = scratch("labels-200x3");
    npy_f32(&dir.join("x.npy"), &[200, 4], &x);
    npy_f32(&dir.join("labels.npy"), &[200, 3], &vec![1.0; 600]);
    let e = job_on(&dir).build_trainer().err().unwrap().to_string();
    assert!(
        e.contains("data.source")
            && e.contains("labels labels.npy")
            && e.contains("shape (200, 3) for data of shape (200, 4)"),
        "{e}"
    );

    // Labels of another sample count: named with both counts.
    let dir = scratch("labels-count");
    npy_f32(&dir.join("x.npy"), &[200, 4], &x);
    npy_i64(&dir.join("labels.npy"), &[1; 150]);
    let e = job_on(&dir).build_trainer().err().unwrap().to_string();
    assert!(e.contains("labels.npy") && e.contains("150"), "{e}");
    assert!(e.contains("200"), "{e}");

    // Class ids (n,) train.
    let dir = scratch("labels-ok");
    npy_f32(&dir.join("x.npy"), &[200, 4], &x);
    npy_i64(
        &dir.join("labels.npy"),
        &(0..200).map(|i| i % 3).collect::<Vec<_>>(),
    );
    let mut job = job_on(&dir);
    job.train.epochs = 1;
    job.build_trainer().unwrap().fit().unwrap();
}

/// A mapped data file truncated between two `fit` calls (as by another program while
/// the run reads it) ends the run with an error naming the file, not with SIGBUS (the
/// file spans several pages, so reading its cut-off pages through the map would raise it).
#[test]
fn a_data_file_truncated_under_the_run_is_an_error_not_a_crash() {
    let train = class_dir("truncated-train", &[(1, 96), (2, 1000), (3, 80)]);
    let val = class_dir("truncated-val", &[(1, 64)]);
    let run = scratch("truncated-run");
    let mut t = mlp_trainer(&train, &val, &run);
    interrupt_after(&mut t, 2);
    assert!(matches!(t.fit().unwrap(), Outcome::Interrupted { .. }));
    let victim = train.join("batch_2.npy");
    let was = std::fs::metadata(&victim).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&victim)
        .unwrap()
        .set_len(100)
        .unwrap();
    let Err(e) = t.fit() else {
        panic!("a truncated file must stop the run");
    };
    let e = e.to_string();
    assert!(
        e.contains(&format!(
            "{}: changed size under the run (was {was} bytes, now 100)",
            victim.display()
        )),
        "{e}"
    );
}
