//! Callbacks: when each stage fires, callback state across resume, errors, logs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::common::{scratch, small_job, state_bytes};
use crate::support::tb_reader::read_scalars;
use deeptrain::callbacks::{
    Callback, EarlyStopping, HealthCheck, HealthPolicy, Stage, TrainerView,
};
use deeptrain::job::EarlyStoppingConfig;
use deeptrain::trainer::Every;
use deeptrain::{Outcome, Result, Trainer};

/// Counts every stage it sees.
#[derive(Clone, Default)]
struct Counter(Arc<Mutex<BTreeMap<Stage, u64>>>);

impl Callback for Counter {
    fn name(&self) -> String {
        "counter".into()
    }
    fn on_stage(&mut self, stage: Stage, _: &mut TrainerView) -> Result<()> {
        *self.0.lock().unwrap().entry(stage).or_default() += 1;
        Ok(())
    }
}

#[test]
fn every_stage_fires_exactly_as_often_as_it_should() {
    let dir = scratch("cb-counts");
    let mut trainer = small_job(&dir).build_trainer().unwrap();
    let counter = Counter::default();
    trainer.add_callback(counter.clone()).unwrap();
    assert_eq!(trainer.fit().unwrap(), Outcome::Finished);
    let counts = counter.0.lock().unwrap().clone();
    let expect: BTreeMap<Stage, u64> = [
        (Stage::TrainBegin, 1),
        (Stage::TrainEpochBegin, 2),
        (Stage::TrainIterBegin, 46),
        (Stage::BeforeStep, 46),
        (Stage::TrainBatchEnd, 46),
        (Stage::TrainIterEnd, 46),
        (Stage::TrainEpochEnd, 2),
        (Stage::ValBegin, 5),
        (Stage::ValBatchEnd, 15),
        (Stage::ValIterEnd, 15),
        (Stage::ValEnd, 5),
        // one checkpoint, at the end (checkpoint_every is Never in small_job)
        (Stage::Save, 1),
        (Stage::TrainEnd, 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(counts, expect);
}

#[test]
fn interrupt_and_load_stages_fire_on_stop_and_resume() {
    let dir = scratch("cb-interrupt");
    let mut trainer = small_job(&dir).build_trainer().unwrap();
    let counter = Counter::default();
    trainer.add_callback(counter.clone()).unwrap();
    let handle = trainer.interrupt_handle();
    trainer.on(Stage::TrainIterEnd, move |v| {
        if v.state.batches_fit == 5 {
            handle.interrupt();
        }
        Ok(())
    });
    assert!(matches!(
        trainer.fit().unwrap(),
        Outcome::Interrupted { .. }
    ));
    let c = counter.0.lock().unwrap().clone();
    assert_eq!(
        (
            c[&Stage::Interrupt],
            c[&Stage::Save],
            c.get(&Stage::TrainEnd)
        ),
        (1, 1, None)
    );

    let mut resumed = small_job(&dir).build_trainer().unwrap();
    let counter = Counter::default();
    resumed.add_callback(counter.clone()).unwrap();
    resumed.load_checkpoint(&dir).unwrap();
    assert_eq!(counter.0.lock().unwrap()[&Stage::Load], 1);
    resumed.fit().unwrap();
    assert_eq!(counter.0.lock().unwrap()[&Stage::TrainIterEnd], 46 - 5);
}

fn early_stopping_job(dir: &std::path::Path) -> deeptrain::JobConfig {
    let mut job = small_job(dir);
    job.train.epochs = 40;
    job.train.validate_every = Every::Epochs(1);
    job.optimizer.set("lr", 0.05); // noisy enough that val_loss stops improving early
    job.early_stopping = Some(EarlyStoppingConfig {
        monitor: "val_loss".into(),
        patience: 2,
        min_delta: 0.0,
        warmup: 1,
    });
    job
}

#[test]
fn early_stopping_decides_the_same_after_a_resume() {
    let reference_dir = scratch("es-reference");
    let mut trainer = early_stopping_job(&reference_dir).build_trainer().unwrap();
    let Outcome::Stopped { stop, .. } = trainer.fit().unwrap() else {
        panic!("expected early stopping before 40 epochs");
    };
    let (by, why) = (stop.by, stop.why);
    assert_eq!(by, "early_stopping(val_loss)");
    assert!(why.contains("did not improve for 2 validations"), "{why}");
    let stopped_at = trainer.state.epoch;
    assert!(stopped_at < 40);
    let reference = state_bytes(&trainer.state);

    // Interrupt right after each validation (where early stopping's counters change),
    // resume from disk, and check the run stops at the same place with the same state.
    for stop_after in 1..stopped_at {
        let dir = scratch(&format!("es-resume-{stop_after}"));
        let mut t = early_stopping_job(&dir).build_trainer().unwrap();
        let handle = t.interrupt_handle();
        t.on(Stage::ValEnd, move |v| {
            if v.state.times_validated == stop_after {
                handle.interrupt();
            }
            Ok(())
        });
        assert!(matches!(t.fit().unwrap(), Outcome::Interrupted { .. }));
        let mut resumed = Trainer::resume(&dir).unwrap();
        assert!(matches!(resumed.fit().unwrap(), Outcome::Stopped { .. }));
        assert_eq!(resumed.state.epoch, stopped_at, "stop_after={stop_after}");
        assert!(
            state_bytes(&resumed.state) == reference,
            "stop_after={stop_after}"
        );
    }
}

#[test]
fn early_stopping_counts_by_hand() {
    // val_loss: 1.0, 0.9, 0.95, 0.91, 0.89 with patience 2 → stops at the 4th.
    let mut es = EarlyStopping::new("val_loss").patience(2);
    let dir = scratch("es-hand");
    let trainer = small_job(&dir).build_trainer().unwrap();
    let mut state = trainer.state.clone();
    let mut stopped_at = None;
    for (i, v) in [1.0, 0.9, 0.95, 0.91, 0.89].into_iter().enumerate() {
        state.val_history.push(i as u64, &[("val_loss".into(), v)]);
        let mut control = deeptrain::Control::default();
        let mut view = TrainerView {
            state: &state,
            vars: &[],
            grads: None,
            control: &mut control,
            outputs: None,
            metric_directions: &Default::default(),
        };
        es.on_stage(Stage::ValEnd, &mut view).unwrap();
        if control.stop.is_some() {
            stopped_at = Some(i + 1);
            break;
        }
    }
    assert_eq!(stopped_at, Some(4));
    assert_eq!(es.state.best, Some(0.9));
}

#[test]
fn a_failing_callback_stops_with_a_checkpoint_and_names_itself() {
    let dir = scratch("cb-error");
    let mut trainer = small_job(&dir).build_trainer().unwrap();
    trainer.on(Stage::TrainBatchEnd, |v| {
        if v.state.batches_fit == 7 {
            return Err(deeptrain::Error::Data("boom".into()));
        }
        Ok(())
    });
    let err = trainer.fit().unwrap_err().to_string();
    assert!(
        err.contains("TrainBatchEnd") && err.contains("boom") && err.contains("closure#"),
        "{err}"
    );
    let ckpt = deeptrain::checkpoint::load_latest(&dir).unwrap();
    assert_eq!(ckpt.meta.state.batches_fit, 7);
    // The run goes on from there.
    let mut resumed = Trainer::resume(&dir).unwrap();
    assert_eq!(resumed.fit().unwrap(), Outcome::Finished);
}

#[test]
fn callbacks_run_in_registration_order() {
    let dir = scratch("cb-order");
    let mut trainer = small_job(&dir).build_trainer().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    for i in 0..3 {
        let log = log.clone();
        trainer.on(Stage::TrainBegin, move |_| {
            log.lock().unwrap().push(i);
            Ok(())
        });
    }
    trainer.fit().unwrap();
    assert_eq!(*log.lock().unwrap(), vec![0, 1, 2]);
}

/// Sets the output layer's bias to NaN (a NaN before a ReLU would be swallowed by it).
fn poison_weights_at(trainer: &mut Trainer, batch: u64) {
    trainer.on(Stage::TrainIterEnd, move |v| {
        if v.state.batches_fit == batch {
            let w = &v
                .vars
                .iter()
                .find(|v| v.name == "layers.1.bias")
                .unwrap()
                .var;
            let nan = candle_core::Tensor::full(f32::NAN, w.shape(), w.device())?;
            w.set(&nan)?;
        }
        Ok(())
    });
}

#[test]
fn health_check_stops_on_nan_with_a_checkpoint() {
    let dir = scratch("health-stop");
    let mut job = small_job(&dir);
    job.logging.health = HealthPolicy::Stop;
    let mut trainer = job.build_trainer().unwrap();
    poison_weights_at(&mut trainer, 3);
    let outcome = trainer.fit().unwrap();
    let Outcome::Stopped { stop, checkpoint } = outcome else {
        panic!("expected a stop, got {outcome:?} at {}", trainer.info());
    };
    let (by, why) = (stop.by, stop.why);
    assert_eq!(by, "health_check");
    assert!(why.contains("not finite"), "{why}");
    assert!(checkpoint.exists());
    assert_eq!(trainer.state.batches_fit, 4);
    assert_eq!(trainer.state.global_step, 3);
}

#[test]
fn health_check_skip_policy_skips_updates_with_bad_gradients() {
    let dir = scratch("health-skip");
    // Once the output bias is NaN every loss is NaN and every update is skipped; the
    // run goes on (and validation records the damage) instead of stopping.
    let mut job = small_job(&dir);
    job.logging.health = HealthPolicy::Skip;
    let mut trainer = job.build_trainer().unwrap();
    poison_weights_at(&mut trainer, 3);
    assert_eq!(trainer.fit().unwrap(), Outcome::Finished);
    assert_eq!(trainer.state.batches_fit, 46);
    assert_eq!(
        trainer.state.global_step, 3,
        "no update after the weights went NaN"
    );
    assert!(trainer.state.val_history.metrics["val_loss"][4].is_nan());
    // A health check registered by hand with the same policy behaves the same.
    let mut manual = small_job(&scratch("health-skip-manual"));
    manual.logging.health = HealthPolicy::Warn;
    let mut t = manual.build_trainer().unwrap();
    t.add_callback(HealthCheck::new(HealthPolicy::Skip).named("health_check_skip"))
        .unwrap();
    poison_weights_at(&mut t, 3);
    t.fit().unwrap();
    assert_eq!(t.state.global_step, 3);
}

#[test]
fn csv_logs_match_history_and_survive_a_resume_unchanged() {
    let reference = scratch("csv-reference");
    let mut t = small_job(&reference).build_trainer().unwrap();
    t.fit().unwrap();
    let train_csv = std::fs::read_to_string(reference.join("logs/train.csv")).unwrap();
    let val_csv = std::fs::read_to_string(reference.join("logs/val.csv")).unwrap();
    let lines: Vec<&str> = train_csv.lines().collect();
    assert_eq!(
        lines[0],
        "batches_fit,epoch,global_step,set_name,accuracy,grad_norm,loss,lr"
    );
    assert_eq!(lines.len(), 1 + 46);
    let h = &t.state.train_history;
    for (i, line) in lines[1..].iter().enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f[0].parse::<u64>().unwrap(), h.at_batches_fit[i]);
        assert_eq!(
            f[6].parse::<f64>().unwrap().to_bits(),
            h.metrics["loss"][i].to_bits()
        );
        assert_eq!(
            f[4].parse::<f64>().unwrap().to_bits(),
            h.metrics["accuracy"][i].to_bits()
        );
    }
    let val: Vec<&str> = val_csv.lines().collect();
    assert_eq!(
        val[0],
        "validation,batches_fit,epoch,global_step,val_accuracy,val_loss"
    );
    assert_eq!(val.len(), 1 + 5);
    assert!(val[5].starts_with("5,46,2,46,"));

    // Interrupted mid-epoch after the CSV was flushed past the checkpoint: the rows
    // written after it are cut on resume, and the final files are byte-identical.
    let dir = scratch("csv-resume");
    let mut t = small_job(&dir).build_trainer().unwrap();
    let handle = t.interrupt_handle();
    t.on(Stage::TrainIterEnd, move |v| {
        if v.state.batches_fit == 17 {
            handle.interrupt();
        }
        Ok(())
    });
    t.fit().unwrap();
    drop(t);
    // Simulate a session that logged rows and died before its next checkpoint.
    let mut extra = std::fs::read_to_string(dir.join("logs/train.csv")).unwrap();
    extra.push_str("18,0,18,3,0.5,1.0,1.0,0.003\n19,0,19,4,0.5,1.0,1.0,0.003\n");
    std::fs::write(dir.join("logs/train.csv"), extra).unwrap();
    Trainer::resume(&dir).unwrap().fit().unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("logs/train.csv")).unwrap(),
        train_csv
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("logs/val.csv")).unwrap(),
        val_csv
    );
}

/// Files in `dir/logs` named `train.csv.damaged-*`, with their contents.
fn damaged_copies(dir: &std::path::Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir.join("logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("train.csv.damaged-")
        })
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    out.sort();
    out
}

#[test]
fn a_damaged_csv_log_is_set_aside_and_rebuilt_on_resume() {
    let reference = scratch("csv-damaged-reference");
    small_job(&reference)
        .build_trainer()
        .unwrap()
        .fit()
        .unwrap();
    let train_csv = std::fs::read_to_string(reference.join("logs/train.csv")).unwrap();
    let val_csv = std::fs::read_to_string(reference.join("logs/val.csv")).unwrap();

    type Damage = fn(&str) -> String;
    let cases: [(&str, Damage); 3] = [
        // A number garbled in a row before the checkpoint.
        ("garbled", |t| {
            let mut lines: Vec<String> = t.lines().map(String::from).collect();
            let f: Vec<&str> = lines[5].split(',').collect();
            let mut f: Vec<String> = f.iter().map(|x| x.to_string()).collect();
            f[6] = format!("{}7", f[6]);
            lines[5] = f.join(",");
            lines.join("\n") + "\n"
        }),
        // Cut short in the middle of the last row (a metric value of row 17).
        ("truncated", |t| t[..t.len() - 4].to_string()),
        // A row lost.
        ("row-lost", |t| {
            let lines: Vec<&str> = t.lines().collect();
            let kept: Vec<&str> = lines
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != 3)
                .map(|(_, l)| *l)
                .collect();
            kept.join("\n") + "\n"
        }),
    ];
    for (name, damage) in cases {
        let dir = scratch(&format!("csv-damaged-{name}"));
        let mut t = small_job(&dir).build_trainer().unwrap();
        let handle = t.interrupt_handle();
        t.on(Stage::TrainIterEnd, move |v| {
            if v.state.batches_fit == 17 {
                handle.interrupt();
            }
            Ok(())
        });
        t.fit().unwrap();
        drop(t);
        let path = dir.join("logs/train.csv");
        let damaged = damage(&std::fs::read_to_string(&path).unwrap());
        std::fs::write(&path, &damaged).unwrap();
        Trainer::resume(&dir).unwrap().fit().unwrap();
        // The values come from the checkpoint; a lost row's global_step and set_name
        // were only in the file, and stay empty.
        let want = match name {
            "row-lost" => train_csv.replacen("\n3,0,3,2,", "\n3,0,,,", 1),
            _ => train_csv.clone(),
        };
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            want,
            "{name}: train.csv was not rebuilt to the uninterrupted run's"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("logs/val.csv")).unwrap(),
            val_csv,
            "{name}"
        );
        assert_eq!(damaged_copies(&dir), [damaged], "{name}: no damaged copy");
    }
}

#[test]
fn tensorboard_files_hold_every_scalar() {
    let dir = scratch("tb-run");
    let mut job = small_job(&dir);
    job.logging.histogram_every = 10;
    let mut t = job.build_trainer().unwrap();
    t.fit().unwrap();
    let files: Vec<_> = std::fs::read_dir(dir.join("tensorboard"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    let scalars = read_scalars(&files[0]).unwrap();
    let count = |tag: &str| scalars.iter().filter(|(t, _, _)| t == tag).count();
    assert_eq!(count("train/loss"), 46);
    assert_eq!(count("val/accuracy"), 5);
    let last_val = scalars
        .iter()
        .rfind(|(t, _, _)| t == "val/accuracy")
        .unwrap();
    assert_eq!(last_val.1, 46);
    assert_eq!(
        last_val.2,
        t.state.val_history.metrics["val_accuracy"][4] as f32
    );

    // TensorBoard's own strict reader, where Python has it.
    let tool =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/tools/tb_events.py");
    let has_tb = std::process::Command::new("python3")
        .args(["-c", "import tensorboard"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_tb || !tool.exists() {
        println!("skipped: tensorboard or {} not available", tool.display());
        return;
    }
    let out = std::process::Command::new("python3")
        .arg(&tool)
        .arg(&files[0])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["scalars"]["train/loss"].as_array().unwrap().len(), 46);
    assert_eq!(json["scalars"]["val/accuracy"].as_array().unwrap().len(), 5);
    let hist: Vec<&str> = json["histograms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        hist.contains(&"weights/layers.0.weight") && hist.contains(&"grads/layers.1.bias"),
        "{hist:?}"
    );
    assert!(json["other"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v == "config"));
}

#[test]
fn reduce_on_plateau_rate_survives_resume() {
    use deeptrain::callbacks::ReduceLrOnPlateau;
    let run = |dir: &std::path::Path, stop_at: Option<u64>| {
        let mut job = small_job(dir);
        job.train.epochs = 6;
        job.train.validate_every = Every::Epochs(1);
        job.optimizer.set("lr", 0.05);
        let mut t = job.build_trainer().unwrap();
        t.add_callback(ReduceLrOnPlateau::new("val_loss").patience(1).factor(0.5))
            .unwrap();
        if stop_at.is_some() {
            let _ = t.load_checkpoint(dir);
        }
        if let Some(k) = stop_at {
            let h = t.interrupt_handle();
            t.on(Stage::ValEnd, move |v| {
                if v.state.times_validated == k {
                    h.interrupt();
                }
                Ok(())
            });
        }
        (t.fit().unwrap(), t)
    };
    let (_, reference) = run(&scratch("plateau-ref"), None);
    let lrs = &reference.state.train_history.metrics["lr"];
    assert!(
        lrs.last().unwrap() < &0.05,
        "the plateau callback never reduced the rate: {:?} {:?}",
        reference.state.val_history.metrics["val_loss"],
        &lrs[lrs.len() - 3..]
    );
    let dir = scratch("plateau-resume");
    let (first, _) = run(&dir, Some(3));
    assert!(matches!(first, Outcome::Interrupted { .. }));
    let mut job = small_job(&dir);
    job.train.epochs = 6;
    job.train.validate_every = Every::Epochs(1);
    job.optimizer.set("lr", 0.05);
    let mut t = job.build_trainer().unwrap();
    t.add_callback(ReduceLrOnPlateau::new("val_loss").patience(1).factor(0.5))
        .unwrap();
    t.load_checkpoint(&dir).unwrap();
    t.fit().unwrap();
    assert!(state_bytes(&t.state) == state_bytes(&reference.state));
}

#[test]
fn dataset_grad_norms_leave_the_run_unchanged() {
    let a = scratch("gn-a");
    let b = scratch("gn-b");
    let mut ta = small_job(&a).build_trainer().unwrap();
    let stats = ta.dataset_grad_norms().unwrap();
    assert_eq!(stats.per_batch.len(), 23);
    assert!(stats.median > 0.0 && stats.max >= stats.p90 && stats.p90 >= stats.median);
    ta.fit().unwrap();
    let mut tb = small_job(&b).build_trainer().unwrap();
    tb.fit().unwrap();
    assert!(state_bytes(&ta.state) == state_bytes(&tb.state));
    // Per-layer norms are recorded for every batch and add up to the global norm.
    let h = &ta.state.grad_norm_history;
    assert_eq!(h.len(), 46);
    let sum_sq: f64 = h.metrics.values().map(|v| v[10] * v[10]).sum();
    let global = ta.state.train_history.metrics["grad_norm"][10];
    assert!((sum_sq.sqrt() - global).abs() < 1e-9 * global.max(1.0));
}

/// Remembers a number across resumes (its saved state).
struct Memory {
    name: String,
    value: u64,
}

impl Callback for Memory {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn on_stage(&mut self, stage: Stage, _: &mut TrainerView) -> Result<()> {
        if stage == Stage::TrainIterEnd {
            self.value += 1;
        }
        Ok(())
    }
    fn save_state(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!(self.value))
    }
    fn load_state(&mut self, state: serde_json::Value) -> Result<()> {
        self.value = state.as_u64().unwrap_or_default();
        Ok(())
    }
}

fn memory(name: &str) -> Memory {
    Memory {
        name: name.into(),
        value: 0,
    }
}

#[test]
fn callback_names_are_unique() {
    let mut t = small_job(&scratch("cb-names")).build_trainer().unwrap();
    t.add_callback(memory("m")).unwrap();
    let e = t.add_callback(memory("m")).err().expect("a second `m`");
    assert!(e.to_string().contains("two callbacks are named `m`"), "{e}");
    // The job's own early stopping keyed by its monitor: a second one on the same
    // metric is refused too, one on another metric is fine.
    t.add_callback(EarlyStopping::new("val_loss")).unwrap();
    assert!(t.add_callback(EarlyStopping::new("val_loss")).is_err());
    t.add_callback(EarlyStopping::new("val_accuracy")).unwrap();
}

#[test]
fn saved_callback_state_waits_for_its_callback_and_is_never_dropped() {
    let run = scratch("cb-pending");
    let mut t = small_job(&run).build_trainer().unwrap();
    t.add_callback(memory("m")).unwrap();
    crate::common::interrupt_after(&mut t, 7);
    assert!(matches!(t.fit().unwrap(), Outcome::Interrupted { .. }));

    // Loaded before `m` is registered: handed over when it is.
    let mut resumed = Trainer::resume(&run).unwrap();
    let probe = Arc::new(Mutex::new(0u64));
    let seen = probe.clone();
    resumed.add_callback(memory("m")).unwrap();
    resumed.on(Stage::TrainBegin, move |_| {
        *seen.lock().unwrap() = 1;
        Ok(())
    });
    assert_eq!(resumed.fit().unwrap(), Outcome::Finished);
    assert_eq!(*probe.lock().unwrap(), 1);
    let saved = deeptrain::checkpoint::load_latest(&run).unwrap();
    let (_, m) = saved
        .meta
        .callbacks
        .iter()
        .find(|(n, _)| n == "m")
        .expect("m's state is saved");
    // One count per train iteration, over both sessions: 46 batches.
    assert_eq!(m, "46");

    // Not registered at all: `fit` refuses rather than drop it, until told to.
    let run2 = scratch("cb-pending-2");
    let mut t = small_job(&run2).build_trainer().unwrap();
    t.add_callback(memory("m")).unwrap();
    crate::common::interrupt_after(&mut t, 7);
    t.fit().unwrap();
    let mut resumed = Trainer::resume(&run2).unwrap();
    let e = resumed.fit().expect_err("m's state has no callback");
    assert!(e.to_string().contains("callback `m`"), "{e}");
    assert!(resumed.discard_callback_state("m"));
    assert_eq!(resumed.fit().unwrap(), Outcome::Finished);
}
