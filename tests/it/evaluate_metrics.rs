//! `evaluate` reports every metric of the run the way its validation does: users' own
//! metrics (built by the registry the predictor is loaded with, fed sample weights),
//! multi-class `roc_auc`, nothing for `confusion_matrix` (no file written); a user's
//! named source is evaluated through that registry too. And the direction rule: early
//! stopping and reduce-on-plateau watch a user metric the way it declares, a name's
//! guess only for metrics nobody declared, an explicit direction over both.

use std::collections::BTreeMap;
use std::path::Path;

use deeptrain::callbacks::{Callback, EarlyStopping, ReduceLrOnPlateau, Stage, TrainerView};
use deeptrain::data_loaders::InMemoryData;
use deeptrain::job::{CheckpointChoice, EvalData, Predictor};
use deeptrain::metrics::{argmax, BatchView, Direction, StreamingMetric};
use deeptrain::optim::LrSchedule;
use deeptrain::registry::{
    EarlyStoppingArgs, MetricCtx, ReduceOnPlateauArgs, Registry, SourceData,
};
use deeptrain::{Control, JobConfig, Outcome};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::common::{scratch, small_job};

/// Share of samples predicted as their class, weighted by the samples' weights
/// (`hits`), and the same unweighted (`hits_unweighted`); declares `direction`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Hits {
    name: String,
    direction_max: bool,
    weighted: (f64, f64),
    plain: (u64, u64),
}

impl StreamingMetric for Hits {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn update(&mut self, batch: &BatchView) -> deeptrain::Result<()> {
        let targets = batch.classes().unwrap_or_default();
        for (i, &t) in targets.iter().enumerate() {
            let hit = argmax(batch.row(i)) == t as usize;
            let w = batch.weights.map_or(1.0, |w| f64::from(w[i]));
            self.weighted.0 += w * f64::from(u8::from(hit));
            self.weighted.1 += w;
            self.plain.0 += u64::from(hit);
            self.plain.1 += 1;
        }
        Ok(())
    }
    fn values(&self) -> Vec<(String, f64)> {
        vec![
            (self.name.clone(), self.weighted.0 / self.weighted.1),
            (
                format!("{}_unweighted", self.name),
                self.plain.0 as f64 / self.plain.1 as f64,
            ),
        ]
    }
    fn reset(&mut self) {
        self.weighted = (0.0, 0.0);
        self.plain = (0, 0);
    }
    fn direction(&self) -> Direction {
        if self.direction_max {
            Direction::Max
        } else {
            Direction::Min
        }
    }
    fn save_state(&self) -> serde_json::Value {
        json!([self.weighted, self.plain])
    }
    fn load_state(&mut self, state: serde_json::Value) -> deeptrain::Result<()> {
        (self.weighted, self.plain) = serde_json::from_value(state)
            .map_err(|e| deeptrain::Error::config(&self.name, e.to_string()))?;
        Ok(())
    }
}

/// No arguments.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
struct NoArgs {}

/// Samples of a 3-class source.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
struct BlobArgs {
    /// Train samples.
    n: usize,
}

/// The built-ins, `hits` (maximised) and `error_rate_like` (a name that sounds
/// minimised, declared maximised), and a 3-class source `blobs` whose validation part
/// has uneven weights.
fn user_registry() -> Registry {
    let mut r = Registry::with_builtins();
    for name in ["hits", "error_rate_like"] {
        r.metric(name, move |_: NoArgs, _: &MetricCtx| {
            Ok(Box::new(Hits {
                name: name.into(),
                direction_max: true,
                ..Hits::default()
            }) as Box<dyn StreamingMetric>)
        });
    }
    r.source("blobs", |a: BlobArgs, _ctx| {
        let part = |n: usize, name: &str, shift: usize| {
            let mut x = Vec::new();
            let mut y = Vec::new();
            for i in 0..n {
                let class = (i * 7 + shift) % 3;
                let jitter = ((i * 13 + shift) % 11) as f32 / 11.0;
                x.extend([class as f32 + jitter, jitter * 2.0 - class as f32, jitter]);
                y.push(class as u32);
            }
            InMemoryData::classification(name, x, vec![3], y, 3)
        };
        let weights: Vec<f32> = (0..30).map(|i| ((i * 5) % 7) as f32 * 0.5).collect();
        Ok(SourceData {
            train: Box::new(part(a.n, "blobs/train", 0)?),
            val: Some(Box::new(
                part(30, "blobs/val", 1)?.with_weights(weights, "blobs/val")?,
            )),
        })
    });
    r
}

/// `name`'s value in `eval` and the run's last `val_name`, bitwise.
fn assert_same_bits(
    eval: &BTreeMap<String, Option<f64>>,
    latest: &BTreeMap<String, f64>,
    name: &str,
) {
    let evaluated = eval[name].unwrap_or_else(|| panic!("{name}: no value in {eval:?}"));
    let validated = latest[&format!("val_{name}")];
    assert_eq!(
        evaluated.to_bits(),
        validated.to_bits(),
        "{name}: evaluate {evaluated} vs validation {validated}"
    );
}

#[test]
fn evaluate_reports_every_metric_as_the_last_validation_did() {
    let dir = scratch("evaluate-metrics-digits");
    let registry = user_registry();
    let mut job = small_job(&dir);
    job.train.epochs = 1;
    job.train.metrics = serde_json::from_value(json!([
        "accuracy", "roc_auc", {"name": "top_k_accuracy", "k": 2}, "hits", "confusion_matrix"
    ]))
    .unwrap();
    let mut trainer = job.build_with(&registry).unwrap();
    assert_eq!(trainer.fit().unwrap(), Outcome::Finished);
    let latest = trainer.state.val_history.latest();
    let confusion_file = std::fs::read(dir.join("confusion_matrix.json")).unwrap();

    let p =
        Predictor::load_checkpoint_with(&dir, CheckpointChoice::Latest, &[], &registry).unwrap();
    let eval = p.evaluate(&EvalData::Validation).unwrap();
    assert_eq!(eval.samples, 359);
    // The user's metric (both its values), 10-class one-vs-rest ROC-AUC, the fixed set.
    for name in [
        "hits",
        "hits_unweighted",
        "roc_auc",
        "accuracy",
        "top2_accuracy",
        "loss",
    ] {
        assert_same_bits(&eval.metrics, &latest, name);
    }
    // confusion_matrix logs nothing and writes nothing here; the evaluation's own
    // matrix is the one the run's last validation wrote.
    assert_eq!(eval.metrics.len(), 6, "{:?}", eval.metrics);
    assert_eq!(
        std::fs::read(dir.join("confusion_matrix.json")).unwrap(),
        confusion_file
    );
    let file: serde_json::Value = serde_json::from_slice(&confusion_file).unwrap();
    assert_eq!(file["counts"], json!(eval.confusion_matrix));
    // Evaluating again starts from fresh metric states.
    assert_eq!(p.evaluate(&EvalData::Validation).unwrap(), eval);

    // Without the user's registry the model still loads and predicts; evaluating names
    // the metric it lacks, in one line.
    let stock = Predictor::load(&dir).unwrap();
    let err = stock
        .evaluate(&EvalData::Validation)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("config train.metrics: unknown metric `hits`") && !err.contains('\n'),
        "{err}"
    );
}

#[test]
fn a_users_source_and_weighted_metrics_evaluate_as_validated() {
    let dir = scratch("evaluate-metrics-blobs");
    let registry = user_registry();
    let json = r#"{"data": {"source": {"name": "blobs", "n": 60}, "batch_size": 8, "val_batch_size": 7},
                   "model": {"name": "mlp", "hidden": [8]},
                   "train": {"epochs": 2, "seed": 5, "metrics": ["accuracy", "roc_auc", "hits"]},
                   "logging": {"progress": false, "tensorboard": false, "csv": false}}"#;
    let mut job = JobConfig::from_json_str_with(json, Path::new("blobs.json"), &registry).unwrap();
    job.train.run_dir = dir.clone();
    let mut trainer = job.build_with(&registry).unwrap();
    assert_eq!(trainer.fit().unwrap(), Outcome::Finished);
    let latest = trainer.state.val_history.latest();

    let p =
        Predictor::load_checkpoint_with(&dir, CheckpointChoice::Latest, &[], &registry).unwrap();
    let eval = p.evaluate(&EvalData::Validation).unwrap();
    assert_eq!(eval.samples, 30);
    for name in ["hits", "hits_unweighted", "roc_auc", "accuracy", "loss"] {
        assert_same_bits(&eval.metrics, &latest, name);
    }
    // The user's metric saw the validation weights (uneven: weighted and plain differ).
    assert_ne!(eval.metrics["hits"], eval.metrics["hits_unweighted"]);

    // The built-in registry does not know the source: one line naming it.
    let err = Predictor::load(&dir).err().unwrap().to_string();
    assert!(
        err.contains("unknown source `blobs`") && !err.contains('\n'),
        "{err}"
    );
}

/// Feeds `values` of `val_error_rate_like` to `cb` at `ValEnd` with `declared`
/// directions; the validation (1-based) at which it asked to stop, and the last rate set.
fn drive(
    cb: &mut dyn Callback,
    declared: &BTreeMap<String, Direction>,
    values: &[f64],
) -> (Option<usize>, Option<f64>) {
    let dir = scratch("evaluate-metrics-drive");
    let trainer = small_job(&dir).build_trainer().unwrap();
    let mut state = trainer.state.clone();
    let mut lr = None;
    for (i, &v) in values.iter().enumerate() {
        state
            .val_history
            .push(i as u64, &[("val_error_rate_like".into(), v)]);
        let mut control = Control::default();
        let mut view = TrainerView {
            state: &state,
            vars: &[],
            grads: None,
            control: &mut control,
            outputs: None,
            metric_directions: declared,
        };
        cb.on_stage(Stage::ValEnd, &mut view).unwrap();
        lr = control.learning_rate.or(lr);
        if control.stop.is_some() {
            return (Some(i + 1), lr);
        }
    }
    (None, lr)
}

#[test]
fn callbacks_watch_a_user_metric_the_way_it_declares() {
    let rising = [0.1, 0.2, 0.3, 0.4, 0.5];
    let declared: BTreeMap<String, Direction> =
        [("error_rate_like".to_string(), Direction::Max)].into();
    let none = BTreeMap::new();
    let es = || EarlyStopping::new("val_error_rate_like").patience(2);
    // Declared Max: rising values always improve. Undeclared: the name says Min.
    assert_eq!(drive(&mut es(), &declared, &rising).0, None);
    assert_eq!(drive(&mut es(), &none, &rising).0, Some(3));
    // An explicit direction wins over the declared one.
    let mut explicit = es().direction(Direction::Min);
    assert_eq!(drive(&mut explicit, &declared, &rising).0, Some(3));
    // The job's early_stopping section builds the same.
    let args = EarlyStoppingArgs {
        monitor: "val_error_rate_like".into(),
        patience: 2,
        ..Default::default()
    };
    assert_eq!(drive(&mut args.callback(), &declared, &rising).0, None);
    // reduce-on-plateau as a callback...
    let plateau = || ReduceLrOnPlateau::new("val_error_rate_like").patience(2);
    assert_eq!(drive(&mut plateau(), &declared, &rising).1, None);
    assert!(drive(&mut plateau(), &none, &rising).1.is_some());
    // ... and as the job's schedule, told the directions by the schedule callback.
    let sched = ReduceOnPlateauArgs {
        monitor: "val_error_rate_like".into(),
        patience: 0,
        ..Default::default()
    };
    for (max, reduced) in [(true, false), (false, true)] {
        let mut s = sched.schedule();
        let mut rate = 1.0;
        for (i, v) in rising.iter().enumerate() {
            s.metric_directions(&|m: &str| m == "val_error_rate_like" && max);
            let m: BTreeMap<String, f64> = [("val_error_rate_like".to_string(), *v)].into();
            s.observe_validation(1.0, i as u64, &m).unwrap();
            rate = s.lr_at(1.0, i as u64);
        }
        assert_eq!(rate < 1.0, reduced, "maximize {max}: rate {rate}");
    }
}

/// The validation (1-based) at which early stopping with patience 1 would stop over
/// `values` watching for `direction`, if it would.
fn stop_point(values: &[f64], direction: Direction) -> Option<usize> {
    let mut best = None;
    for (i, &v) in values.iter().enumerate() {
        if direction.improves(v, best, 0.0) {
            best = Some(v);
        } else {
            return Some(i + 1);
        }
    }
    None
}

#[test]
fn early_stopping_from_json_follows_a_user_metrics_declared_direction() {
    let dir = scratch("evaluate-metrics-es");
    let registry = user_registry();
    let mut job = small_job(&dir);
    job.train.epochs = 3;
    job.train.metrics = serde_json::from_value(json!(["accuracy", "error_rate_like"])).unwrap();
    job.early_stopping = Some(EarlyStoppingArgs {
        monitor: "val_error_rate_like".into(),
        patience: 1,
        ..Default::default()
    });
    let mut trainer = job.build_with(&registry).unwrap();
    assert_eq!(
        trainer.metric_direction("val_error_rate_like"),
        Direction::Max
    );
    assert_eq!(trainer.metric_direction("val_loss"), Direction::Min);
    assert_eq!(trainer.metric_direction("val_other_error"), Direction::Min);
    let outcome = trainer.fit().unwrap();
    let values = trainer.state.val_history.metrics["val_error_rate_like"].clone();
    let validated = trainer.state.times_validated as usize;
    assert_eq!(values.len(), validated);
    // It stopped where watching for larger values stops, and only there: watching for
    // smaller ones (the name's guess) would have stopped elsewhere.
    match stop_point(&values, Direction::Max) {
        Some(at) => {
            assert_eq!(at, validated, "{values:?}");
            assert!(matches!(outcome, Outcome::Stopped { .. }), "{outcome:?}");
        }
        None => assert_eq!(outcome, Outcome::Finished),
    }
    assert_ne!(
        stop_point(&values, Direction::Min),
        Some(validated),
        "{values:?}"
    );
}
