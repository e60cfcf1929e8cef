//! Training options through JSON jobs: gradient accumulation, `max_steps`, `max_time`,
//! the optimizers `rmsprop`, `adagrad` and `lion`, and the `schedule` section with every
//! built-in schedule. The stateful ones (accumulation, reduce-on-plateau, each
//! optimizer's buffers) resume bit for bit from a stop at every transition.

use std::path::Path;

use deeptrain::optim::{LrSchedule, OneCycle};
use deeptrain::registry::Registry;
use deeptrain::{JobConfig, Outcome, Phase, Trainer};

use crate::autodata_train::check_resume_everywhere;
use crate::common::scratch;

/// A small, fast job on the embedded digits: 2 epochs of 7 batches of 224 (the last one
/// of 94 samples), validation every 2 batches and at epoch ends, dropout on, no logs.
const BASE: &str = r#"{
    "name": "options",
    "data": {"source": "digits", "batch_size": 224, "val_batch_size": 512},
    "model": {"name": "mlp", "hidden": [12], "dropout": 0.1},
    "train": {"epochs": 2, "seed": 5, "validate_every": {"batches": 2},
              "checkpoint_every": "never", "report": false},
    "logging": {"csv": false, "tensorboard": false, "progress": false}
}"#;

/// `BASE` with `extra` merged over it (objects key by key).
fn job_json(extra: &str) -> String {
    let mut base: serde_json::Value = serde_json::from_str(BASE).unwrap();
    let extra: serde_json::Value = serde_json::from_str(extra).unwrap();
    merge(&mut base, extra);
    base.to_string()
}

fn merge(base: &mut serde_json::Value, extra: serde_json::Value) {
    match (base, extra) {
        (serde_json::Value::Object(b), serde_json::Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

/// The job `BASE` + `extra`, read and built with the built-in registry, in `run`.
fn trainer(extra: &str, run: &Path) -> Trainer {
    let registry = Registry::with_builtins();
    let mut job =
        JobConfig::from_json_str_with(&job_json(extra), Path::new("options.json"), &registry)
            .unwrap();
    job.train.run_dir = run.to_path_buf();
    job.build_with(&registry).unwrap()
}

/// The config error of `BASE` + `extra`, as one line.
fn error(extra: &str) -> String {
    let registry = Registry::with_builtins();
    JobConfig::from_json_str_with(&job_json(extra), Path::new("options.json"), &registry)
        .unwrap_err()
        .to_string()
}

/// The rate of every fit batch, in order.
fn rates(t: &Trainer) -> Vec<f64> {
    t.state.train_history.metrics["lr"].clone()
}

fn trained(extra: &str, name: &str) -> Trainer {
    let mut t = trainer(extra, &scratch(name));
    assert_eq!(t.fit().unwrap(), Outcome::Finished);
    t
}

#[test]
fn accumulation_applies_every_third_batch_and_the_rest_at_the_epoch_end() {
    let one = trained(r#"{"optimizer": {"name": "sgd", "lr": 0.05}}"#, "opts-acc1");
    assert_eq!(one.batches_per_epoch().unwrap(), 7);
    assert_eq!((one.state.batches_fit, one.state.global_step), (14, 14));
    let extra = r#"{"optimizer": {"name": "sgd", "lr": 0.05}, "train": {"accumulate_batches": 3}}"#;
    let three = trained(extra, "opts-acc3");
    // 7 batches an epoch: groups of 3, 3 and 1 (applied at the epoch end).
    assert_eq!((three.state.batches_fit, three.state.global_step), (14, 6));
    assert_eq!(three.optimizer().steps(), 6);
    assert_eq!(three.pending_accumulation(), 0);
    let loss = three.state.val_history.latest()["val_loss"];
    assert!(loss.is_finite() && loss < 2.3, "val_loss {loss}");
    // Both runs saw the same batches (the same dropout and shuffle streams) but made
    // different updates.
    assert_eq!(one.state.rng, three.state.rng);
    assert_ne!(one.state.train_history, three.state.train_history);
}

/// Accumulation with stops mid-group (the open sums are in the checkpoint), RMSprop with
/// momentum and centring, a multi-step schedule, and `max_steps` ending the run inside
/// the second epoch.
#[test]
fn rmsprop_with_accumulation_and_max_steps_resumes_bitwise_from_every_transition() {
    let extra = r#"{
        "optimizer": {"name": "rmsprop", "lr": 0.003, "momentum": 0.9, "centered": true},
        "schedule": {"name": "multi_step", "milestones": [2, 4], "gamma": 0.5},
        "train": {"accumulate_batches": 3, "max_steps": 5}
    }"#;
    let t = trained(extra, "opts-rmsprop-check");
    // Epoch 1: 3 steps (3 + 3 + 1 batches); epoch 2: 2 more steps after 6 batches.
    assert_eq!(
        (t.state.epoch, t.state.batches_fit, t.state.global_step),
        (1, 13, 5)
    );
    assert_eq!(t.state.val_history.at_batches_fit.last(), Some(&13));
    assert!(matches!(t.state.phase, Phase::Done { .. }));
    // The rate of each batch is the one of the update its group makes.
    let want: Vec<f64> = [0, 0, 0, 1, 1, 1, 2, 3, 3, 3, 4, 4, 4]
        .iter()
        .map(|&step| 0.003 * 0.5f64.powi([0, 0, 1, 1, 2][step]))
        .collect();
    assert_eq!(rates(&t), want);
    let checkpoints = check_resume_everywhere("opts-rmsprop", &|run| trainer(extra, run));
    assert!(checkpoints.len() > 25, "{}", checkpoints.len());
    // Some stops were made with a group open, and saved its sums.
    let open = checkpoints
        .iter()
        .filter(|c| {
            let ckpt = deeptrain::checkpoint::load(c).unwrap();
            ckpt.optimizer.contains_key("grad_accum.batches")
        })
        .count();
    assert!(open > 5, "{open} checkpoints with an open group");
}

/// Reduce-on-plateau lowers the rate several times; its counters and rate are state.
#[test]
fn lion_with_reduce_on_plateau_resumes_bitwise_from_every_transition() {
    let extra = r#"{
        "optimizer": {"name": "lion", "lr": 0.002, "weight_decay": 0.1, "decoupled": true},
        "schedule": {"name": "reduce_on_plateau", "monitor": "val_accuracy", "patience": 0,
                     "threshold": 0.05, "factor": 0.5}
    }"#;
    let t = trained(extra, "opts-lion-check");
    let lrs = rates(&t);
    let mut distinct = lrs.clone();
    distinct.dedup();
    assert!(distinct.len() >= 3, "{lrs:?}");
    assert_eq!(distinct[0], 0.002);
    for w in distinct.windows(2) {
        assert_eq!(w[1], w[0] * 0.5, "{lrs:?}");
    }
    let checkpoints = check_resume_everywhere("opts-lion", &|run| trainer(extra, run));
    assert!(checkpoints.len() > 25, "{}", checkpoints.len());
    // The schedule's state is saved with the callbacks'.
    let last = deeptrain::checkpoint::load(checkpoints.last().unwrap()).unwrap();
    assert!(
        last.meta
            .callbacks
            .iter()
            .any(|(n, s)| n == "schedule" && s.contains("bad_validations")),
        "{:?}",
        last.meta.callbacks
    );
}

/// One-cycle with its length from the run (2 epochs of 7 batches), and Adagrad.
#[test]
fn adagrad_with_one_cycle_resumes_bitwise_from_every_transition() {
    let extra = r#"{
        "optimizer": {"name": "adagrad", "lr": 0.05, "initial_accumulator_value": 0.1},
        "schedule": {"name": "one_cycle", "max_lr": 0.2}
    }"#;
    let t = trained(extra, "opts-adagrad-check");
    let cycle = OneCycle {
        max_lr: 0.2,
        total_steps: 14,
        pct_start: 0.3,
        div_factor: 25.0,
        final_div_factor: 1e4,
        anneal: deeptrain::optim::Anneal::Cos,
        three_phase: false,
    };
    let want: Vec<f64> = (0..14).map(|k| cycle.lr_at(0.05, k)).collect();
    assert_eq!(rates(&t), want);
    // From max_lr / div_factor (a cosine's end plus its whole span: within rounding).
    assert!((want[0] - 0.2 / 25.0).abs() < 1e-15, "{}", want[0]);
    let checkpoints = check_resume_everywhere("opts-adagrad", &|run| trainer(extra, run));
    assert!(checkpoints.len() > 25, "{}", checkpoints.len());
}

/// The rate a schedule should give at each optimizer step.
type RateOf = Box<dyn Fn(u64) -> f64>;

#[test]
fn every_built_in_schedule_sets_the_rates_it_defines() {
    const BASE_LR: f64 = 0.01;
    let base = BASE_LR;
    let cases: [(&str, RateOf); 7] = [
        (r#"{"name": "constant"}"#, Box::new(|_| BASE_LR)),
        (
            r#"{"name": "step", "step_size": 3, "gamma": 0.5}"#,
            Box::new(|k| BASE_LR * 0.5f64.powi((k / 3) as i32)),
        ),
        (
            r#"{"name": "cosine", "warmup_steps": 2}"#,
            // Decays to 0 at the run's 14th step.
            Box::new(|k| match k {
                0 | 1 => BASE_LR * (k + 1) as f64 / 2.0,
                _ => {
                    let p = (k - 2) as f64 / 12.0;
                    0.5 * BASE_LR * (1.0 + (std::f64::consts::PI * p).cos())
                }
            }),
        ),
        (
            r#"{"name": "multi_step", "milestones": [1, 5], "gamma": 0.1}"#,
            Box::new(|k| BASE_LR * 0.1f64.powi((k >= 1) as i32 + (k >= 5) as i32)),
        ),
        (
            r#"{"name": "exponential", "gamma": 0.9}"#,
            Box::new(|k| BASE_LR * 0.9f64.powi(k as i32)),
        ),
        (
            r#"{"name": "one_cycle", "total_steps": 10, "anneal_strategy": "linear",
                "pct_start": 0.5, "div_factor": 10, "final_div_factor": 100}"#,
            // Up from 0.001 to 0.01 over steps 0..=4, down to 1e-5 at step 9, then kept.
            Box::new(|k| match k {
                0..=4 => 0.001 + (0.01 - 0.001) * k as f64 / 4.0,
                _ => 0.01 + (1e-5 - 0.01) * (k.min(9) - 4) as f64 / 5.0,
            }),
        ),
        (
            r#"{"name": "reduce_on_plateau", "patience": 100}"#,
            Box::new(|_| BASE_LR),
        ),
    ];
    for (i, (schedule, want)) in cases.iter().enumerate() {
        let extra =
            format!(r#"{{"optimizer": {{"name": "sgd", "lr": {base}}}, "schedule": {schedule}}}"#);
        let t = trained(&extra, &format!("opts-schedule-{i}"));
        let got = rates(&t);
        assert_eq!(got.len(), 14);
        for (k, lr) in got.iter().enumerate() {
            let w = want(k as u64);
            assert!(
                (lr - w).abs() <= 1e-12 * w,
                "{schedule}: step {k}: {lr} vs {w} ({got:?})"
            );
        }
    }
}

#[test]
fn max_time_stops_with_a_checkpoint_and_counts_earlier_sessions() {
    let run = scratch("opts-max-time");
    let extra = r#"{"train": {"max_time": "2h"}}"#;
    let mut t = trainer(extra, &run);
    // Two hours already spent in earlier sessions: the first transition ends the run.
    t.state.time.total_secs = 7200.0;
    let Outcome::Stopped { stop, checkpoint } = t.fit().unwrap() else {
        panic!("expected a stop by max_time");
    };
    assert_eq!(stop.by, "max_time");
    assert!(stop.why.contains("max_time is 2h (7200 s)"), "{}", stop.why);
    assert_eq!((t.state.batches_fit, t.state.global_step), (0, 0));
    let saved = deeptrain::checkpoint::load(&checkpoint).unwrap();
    assert!(saved.meta.state.time.total_secs >= 7200.0);
    assert!(saved.meta.state.is_done());
    // Resumed, the run is over.
    let mut resumed = Trainer::resume(&run).unwrap();
    assert!(matches!(resumed.fit().unwrap(), Outcome::Stopped { .. }));
    assert_eq!(resumed.state.batches_fit, 0);
    // Under the limit, it trains to the end.
    let t = trained(extra, "opts-max-time-free");
    assert_eq!(t.state.epoch, 2);
}

#[test]
fn wrong_options_and_arguments_name_the_field() {
    let cases = [
        (
            r#"{"train": {"accumulate_batches": 0}}"#,
            "train.accumulate_batches: 0 is not in [1, inf)",
        ),
        (
            r#"{"train": {"max_steps": 0}}"#,
            "train.max_steps: 0 is not in [1, inf)",
        ),
        (
            r#"{"train": {"max_time": "2 parsecs"}}"#,
            "train.max_time: `2 parsecs` is not a duration",
        ),
        (
            r#"{"train": {"max_time": "0s"}}"#,
            "train.max_time: `0s` is not a duration > 0",
        ),
        (
            r#"{"schedule": {"name": "exponential"},
                "train": {"schedule": {"kind": "step", "step_size": 2, "gamma": 0.5}}}"#,
            "give the schedule once",
        ),
        (
            r#"{"schedule": {"name": "one_cycel"}}"#,
            "unknown schedule `one_cycel` (did you mean `one_cycle`?)",
        ),
        (
            r#"{"schedule": {"name": "one_cycle", "pct_start": 1.0}}"#,
            "schedule.pct_start: 1 is not in (0, 1)",
        ),
        (
            r#"{"schedule": {"name": "one_cycle", "anneal_strategy": "cosine"}}"#,
            "unknown variant `cosine`",
        ),
        (
            r#"{"schedule": {"name": "multi_step", "milestones": [4, 2]}}"#,
            "schedule.milestones[1]: 2 is not in (4, inf)",
        ),
        (
            r#"{"schedule": {"name": "reduce_on_plateau", "monitor": "accuracy"}}"#,
            "schedule.monitor: `accuracy` is not a validation metric: name one as `val_accuracy`",
        ),
        (
            r#"{"schedule": {"name": "reduce_on_plateau", "factor": 1.0}}"#,
            "schedule.factor: 1 is not in (0, 1)",
        ),
        (
            r#"{"optimizer": {"name": "rmsprop", "alpha": 1.5}}"#,
            "optimizer.alpha: 1.5 is not in [0, 1)",
        ),
        (
            r#"{"optimizer": {"name": "adagrad", "lr_decay": -1}}"#,
            "optimizer.lr_decay: -1 is not in [0, inf)",
        ),
        (
            r#"{"optimizer": {"name": "lion", "beta2": 1.5}}"#,
            "optimizer.beta2: 1.5 is not in [0, 1]",
        ),
        (
            r#"{"optimizer": {"name": "lion", "betas": [0.9, 0.99]}}"#,
            "argument `betas`: unknown field `betas`",
        ),
    ];
    for (extra, want) in cases {
        let err = error(extra);
        assert!(err.contains(want), "{extra}: {err}");
        assert!(err.contains("options.json"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
}

#[test]
fn the_schedule_section_is_recorded_with_its_defaults_and_train_schedule_still_reads() {
    let t = trainer(
        r#"{"schedule": {"name": "one_cycle"}}"#,
        &scratch("opts-record"),
    );
    let saved: serde_json::Value = serde_json::from_str(t.job_config_json().unwrap()).unwrap();
    assert_eq!(saved["schedule"]["name"], "one_cycle");
    assert_eq!(saved["schedule"]["pct_start"], 0.3);
    assert_eq!(saved["schedule"]["max_lr"], serde_json::Value::Null);
    assert_eq!(saved["train"]["accumulate_batches"], 1);
    assert!(saved["train"].get("max_steps").is_none());
    // The older `train.schedule` keeps working on its own.
    let old = trained(
        r#"{"optimizer": {"name": "sgd", "lr": 0.01},
            "train": {"schedule": {"kind": "step", "step_size": 4, "gamma": 0.5}}}"#,
        "opts-old-schedule",
    );
    let want: Vec<f64> = (0..14).map(|k| 0.01 * 0.5f64.powi(k / 4)).collect();
    assert_eq!(rates(&old), want);
}
