//! Metrics by name: every built-in metric from a job config, a user's metric registered
//! from Rust, the `confusion_matrix` files against a recount, multi-class `roc_auc`
//! against a recomputation, callbacks reading each batch's outputs, and the
//! `calibration` callback; a run with a user metric and calibration stopped at every
//! transition resumes to the same bits (state, `calibration.json`, confusion files).

use std::path::Path;
use std::sync::{Arc, Mutex};

use deeptrain::data_loaders::array::DType as ArrayDType;
use deeptrain::data_loaders::npy::write_npy;
use deeptrain::metrics::{argmax, BatchView, StreamingMetric};
use deeptrain::registry::{Component, MetricCtx, Registry};
use deeptrain::{JobConfig, Outcome, Stage, Trainer};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::common::{interrupt_after, scratch, small_job, state_bytes};

/// Share of samples predicted as `class` (argmax), a user's streaming metric.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
struct PredRateArgs {
    /// The class counted (default 1).
    class: usize,
}

impl Default for PredRateArgs {
    fn default() -> Self {
        Self { class: 1 }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct PredRate {
    class: usize,
    hits: u64,
    total: u64,
}

impl StreamingMetric for PredRate {
    fn name(&self) -> String {
        "pred_rate".into()
    }
    fn update(&mut self, batch: &BatchView) -> deeptrain::Result<()> {
        for i in 0..batch.rows() {
            self.hits += u64::from(argmax(batch.row(i)) == self.class);
            self.total += 1;
        }
        Ok(())
    }
    fn values(&self) -> Vec<(String, f64)> {
        vec![(self.name(), self.hits as f64 / self.total as f64)]
    }
    fn reset(&mut self) {
        (self.hits, self.total) = (0, 0);
    }
    fn save_state(&self) -> serde_json::Value {
        json!([self.hits, self.total])
    }
    fn load_state(&mut self, state: serde_json::Value) -> deeptrain::Result<()> {
        (self.hits, self.total) = serde_json::from_value(state)
            .map_err(|e| deeptrain::Error::config("pred_rate", e.to_string()))?;
        Ok(())
    }
}

fn user_registry() -> Registry {
    let mut r = Registry::with_builtins();
    r.metric("pred_rate", |a: PredRateArgs, _: &MetricCtx| {
        Ok(Box::new(PredRate {
            class: a.class,
            ..PredRate::default()
        }) as Box<dyn StreamingMetric>)
    });
    r
}

fn specs(v: serde_json::Value) -> Vec<deeptrain::metrics::MetricSpec> {
    serde_json::from_value(v).unwrap()
}

/// Every validation batch's outputs and targets, as a callback sees them.
type Seen = Arc<Mutex<Vec<(Vec<f32>, usize, Vec<u32>)>>>;

/// Collects the outputs of every validation iteration through `TrainerView::outputs`.
fn watch_validation(trainer: &mut Trainer) -> Seen {
    let seen: Seen = Arc::default();
    let sink = seen.clone();
    trainer.on(Stage::ValBegin, {
        let sink = seen.clone();
        move |_| {
            sink.lock().unwrap().clear();
            Ok(())
        }
    });
    trainer.on(Stage::ValIterEnd, move |view| {
        let b = view.outputs.expect("outputs at ValIterEnd");
        let targets = b.classes().unwrap().to_vec();
        sink.lock()
            .unwrap()
            .push((b.scores.to_vec(), b.columns, targets));
        Ok(())
    });
    seen
}

/// One-vs-rest macro AUC by pairs over softmax probabilities (the definition, O(n²)).
fn ovr_auc_by_pairs(rows: &[Vec<f64>], targets: &[u32], k: usize) -> f64 {
    let mut sum = 0.0;
    let mut n = 0.0;
    for c in 0..k {
        let pos: Vec<f64> = (0..rows.len())
            .filter(|&i| targets[i] as usize == c)
            .map(|i| rows[i][c])
            .collect();
        let neg: Vec<f64> = (0..rows.len())
            .filter(|&i| targets[i] as usize != c)
            .map(|i| rows[i][c])
            .collect();
        if pos.is_empty() || neg.is_empty() {
            continue;
        }
        let mut wins = 0.0;
        for p in &pos {
            for q in &neg {
                wins += if p > q {
                    1.0
                } else if p == q {
                    0.5
                } else {
                    0.0
                };
            }
        }
        sum += wins / (pos.len() * neg.len()) as f64;
        n += 1.0;
    }
    sum / n
}

#[test]
fn every_classification_metric_by_name_with_confusion_files_and_multiclass_auc() {
    let dir = scratch("metrics-by-name-multiclass");
    let mut job = small_job(&dir);
    job.train.epochs = 1;
    job.data.class_names = Some((0..10).map(|c| format!("digit {c}")).collect());
    job.train.metrics = specs(json!([
        "accuracy", "top3_accuracy", {"name": "top_k_accuracy", "k": 2},
        "precision_macro", "precision_micro", "recall_macro", "recall_micro",
        "f1_macro", "f1_micro", "roc_auc", "loss", "confusion_matrix"
    ]));
    let registry = Registry::with_builtins();
    let mut trainer = job.build_with(&registry).unwrap();
    let seen = watch_validation(&mut trainer);
    // Train batches lend their outputs too, at TrainBatchEnd, and only there of the
    // train stages.
    let train_rows = Arc::new(Mutex::new((0usize, 0usize)));
    for stage in [
        Stage::TrainBatchEnd,
        Stage::BeforeStep,
        Stage::TrainEpochEnd,
    ] {
        let rows = train_rows.clone();
        trainer.on(stage, move |view| {
            let mut r = rows.lock().unwrap();
            match (stage, view.outputs) {
                (Stage::TrainBatchEnd, Some(b)) => r.0 += b.rows(),
                (_, Some(_)) => r.1 += 1,
                _ => {}
            }
            Ok(())
        });
    }
    assert_eq!(trainer.fit().unwrap(), Outcome::Finished);
    // 1438 train samples (of 1797; 359 validate), each seen once; no outputs at other stages.
    assert_eq!(*train_rows.lock().unwrap(), (1438, 0));
    let s = &trainer.state;
    let latest = s.val_history.latest();
    for name in [
        "val_accuracy",
        "val_top3_accuracy",
        "val_top2_accuracy",
        "val_precision_macro",
        "val_precision_micro",
        "val_recall_macro",
        "val_recall_micro",
        "val_f1_macro",
        "val_f1_micro",
        "val_roc_auc",
        "val_loss",
    ] {
        assert!(latest[name].is_finite(), "{name}: {latest:?}");
    }
    // The confusion matrix logs nothing.
    assert!(
        !latest.keys().any(|k| k.contains("confusion")),
        "{latest:?}"
    );
    assert!(s.train_history.metrics.contains_key("roc_auc"));
    assert!(latest["val_top2_accuracy"] <= latest["val_top3_accuracy"]);
    assert_eq!(latest["val_accuracy"], latest["val_f1_micro"]);

    // Recount of the last validation from the outputs the callback saw.
    let seen = seen.lock().unwrap();
    let mut counts = vec![vec![0u64; 10]; 10];
    let mut probs = Vec::new();
    let mut targets = Vec::new();
    for (scores, columns, t) in seen.iter() {
        assert_eq!(*columns, 10);
        for (row, &y) in scores.chunks_exact(10).zip(t) {
            counts[y as usize][argmax(row)] += 1;
            let max = row
                .iter()
                .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
            let e: Vec<f64> = row.iter().map(|&v| (f64::from(v) - max).exp()).collect();
            let total: f64 = e.iter().sum();
            probs.push(e.iter().map(|x| x / total).collect::<Vec<f64>>());
            targets.push(y);
        }
    }
    assert_eq!(targets.len(), 359);
    let auc = ovr_auc_by_pairs(&probs, &targets, 10);
    assert!(
        (auc - latest["val_roc_auc"]).abs() < 1e-12,
        "{auc} vs {}",
        latest["val_roc_auc"]
    );
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("confusion_matrix.json")).unwrap()).unwrap();
    assert_eq!(file["counts"], json!(counts));
    assert_eq!(file["validation"], 3);
    assert_eq!(file["epoch"], 1);
    assert_eq!(file["samples"], 359);
    assert_eq!(file["classes"][3], "digit 3");
    // Every validation's files are kept; the latest equals the last of them.
    for v in 1..=3 {
        for ext in ["json", "png"] {
            let f = dir.join(format!("confusion/validation_{v:03}.{ext}"));
            assert!(f.metadata().unwrap().len() > 100, "{}", f.display());
        }
    }
    assert_eq!(
        std::fs::read(dir.join("confusion/validation_003.json")).unwrap(),
        std::fs::read(dir.join("confusion_matrix.json")).unwrap()
    );
    assert!(dir.join("confusion_matrix.png").exists());
}

/// The small job made a binary task (digits 0-4 against 5-9), with `metrics` and the
/// `calibration` callback.
fn binary_job(dir: &Path, metrics: serde_json::Value) -> JobConfig {
    let mut job = small_job(dir);
    job.train.epochs = 1;
    job.data.transforms = vec![serde_json::from_value::<Component>(
        json!({"name": "label_map", "map": {"0": 1, "1": 1, "2": 1, "3": 1, "4": 1}, "other": 0}),
    )
    .unwrap()];
    job.train.metrics = specs(metrics);
    job.callbacks = vec![serde_json::from_value::<Component>(
        json!({"name": "calibration", "metric": "f1_binary", "steps": 50}),
    )
    .unwrap()];
    job
}

const BINARY_METRICS: &str = r#"["precision_binary", "recall_binary", "f1_binary", "roc_auc",
    "confusion_matrix", {"name": "pred_rate", "class": 1}]"#;

#[test]
fn binary_metrics_a_user_metric_and_calibration_from_the_config() {
    let dir = scratch("metrics-by-name-binary");
    let registry = user_registry();
    let job = binary_job(&dir, serde_json::from_str(BINARY_METRICS).unwrap());
    let mut trainer = job.build_with(&registry).unwrap();
    let seen = watch_validation(&mut trainer);
    assert_eq!(trainer.fit().unwrap(), Outcome::Finished);
    let latest = trainer.state.val_history.latest();
    let seen = seen.lock().unwrap();
    let (mut predicted_1, mut total) = (0u64, 0u64);
    let mut p1 = Vec::new();
    let mut targets = Vec::new();
    for (scores, columns, t) in seen.iter() {
        assert_eq!(*columns, 2);
        for (row, &y) in scores.chunks_exact(2).zip(t) {
            predicted_1 += u64::from(argmax(row) == 1);
            total += 1;
            p1.push((1.0 / (1.0 + (f64::from(row[0]) - f64::from(row[1])).exp())) as f32);
            targets.push(y);
        }
    }
    // The user's metric, recounted.
    assert_eq!(latest["val_pred_rate"], predicted_1 as f64 / total as f64);
    assert!(trainer
        .state
        .train_history
        .metrics
        .contains_key("pred_rate"));
    for name in [
        "val_precision_binary",
        "val_recall_binary",
        "val_f1_binary",
        "val_roc_auc",
    ] {
        assert!(latest[name].is_finite(), "{name}");
    }
    // The config records the user metric with its arguments; the run resumes with it.
    let ckpt = deeptrain::checkpoint::load_latest(&dir).unwrap();
    let config = ckpt.meta.job_config.unwrap();
    assert!(
        config.contains(r#""name": "pred_rate""#) && config.contains(r#""class": 1"#),
        "{config}"
    );

    // calibration.json: the search over the last validation's probabilities.
    let cal: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("calibration.json")).unwrap()).unwrap();
    assert_eq!(cal["metric"], "f1_binary");
    assert_eq!(cal["samples"], 359);
    assert_eq!(cal["validation"], 3);
    assert_eq!(cal["grid"].as_array().unwrap().len(), 51);
    let grid = deeptrain::metrics::calibration::default_grid(50);
    let f1 = deeptrain::metrics::Metric::from_name("f1_binary").unwrap();
    let prefer = deeptrain::metrics::calibration::TiePreference::Middle;
    let (t, v) =
        deeptrain::metrics::calibration::best_threshold(&p1, &targets, f1, &grid, prefer).unwrap();
    assert_eq!(cal["threshold"].as_f64().unwrap() as f32, t);
    assert_eq!(cal["value"].as_f64().unwrap(), v);
    assert!(v >= cal["before"]["value"].as_f64().unwrap());
}

#[test]
fn a_user_metric_and_calibration_resume_bitwise_from_every_transition() {
    let registry = user_registry();
    let metrics: serde_json::Value = serde_json::from_str(BINARY_METRICS).unwrap();
    let files = |dir: &Path| -> Vec<Vec<u8>> {
        [
            "calibration.json",
            "confusion_matrix.json",
            "confusion/validation_002.json",
        ]
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect()
    };
    let reference = scratch("metrics-resume-reference");
    let mut trainer = binary_job(&reference, metrics.clone())
        .build_with(&registry)
        .unwrap();
    let count = interrupt_after(&mut trainer, usize::MAX);
    assert_eq!(trainer.fit().unwrap(), Outcome::Finished);
    let transitions = count.load(std::sync::atomic::Ordering::SeqCst);
    // 1 epoch begin + 23 batches + 1 epoch end + 3 validations x (3 batches + end).
    assert_eq!(transitions, 25 + 3 * 4);
    let state = state_bytes(&trainer.state);
    let expected = files(&reference);
    let dir = scratch("metrics-resume-every");
    let mut mid_validation = 0;
    for k in 1..transitions {
        let run = dir.join(format!("k{k:03}"));
        let mut trainer = binary_job(&run, metrics.clone())
            .build_with(&registry)
            .unwrap();
        interrupt_after(&mut trainer, k);
        assert!(matches!(
            trainer.fit().unwrap(),
            Outcome::Interrupted { .. }
        ));
        if matches!(trainer.state.phase, deeptrain::Phase::Validate { .. }) {
            mid_validation += 1;
        }
        drop(trainer);
        let mut resumed = Trainer::resume_with(&run, &registry).unwrap();
        assert_eq!(resumed.fit().unwrap(), Outcome::Finished, "k={k}");
        assert!(state_bytes(&resumed.state) == state, "k={k}: state differs");
        assert!(files(&run) == expected, "k={k}: files differ");
        std::fs::remove_dir_all(&run).unwrap();
    }
    assert_eq!(mid_validation, 3 * 4);
    // Without the user's registry the run does not resume, and says which metric.
    let err = Trainer::resume(&reference).err().unwrap().to_string();
    assert!(err.contains("unknown metric `pred_rate`"), "{err}");
}

#[test]
fn wrong_metric_names_and_arguments_are_one_line_naming_them() {
    let origin = Path::new("job.json");
    let read = |metrics: &str| {
        let text = format!(r#"{{"train": {{"metrics": {metrics}}}}}"#);
        let job = JobConfig::from_json_str(&text, origin);
        let err = match job {
            Err(e) => e,
            Ok(job) => job
                .build_with(&Registry::with_builtins())
                .err()
                .expect("an error"),
        };
        let text = err.to_string();
        assert!(!text.contains('\n'), "{text}");
        text
    };
    let err = read(r#"["acuracy"]"#);
    assert!(
        err.starts_with(
            "config train.metrics: unknown metric `acuracy` (did you mean `accuracy`?); \
             registered: accuracy, confusion_matrix,"
        ),
        "{err}"
    );
    let err = read(r#"[{"name": "top_k_accuracy", "kk": 3}]"#);
    assert!(
        err.contains("metric: `top_k_accuracy`: argument `kk`: unknown field `kk`, expected `k`"),
        "{err}"
    );
    let err = read(r#"[{"name": "top_k_accuracy", "k": 0}]"#);
    assert!(
        err.contains("top_k_accuracy.k: 0 is not in [1, inf)"),
        "{err}"
    );
    let err = read(r#"[{"name": "confusion_matrix", "history": "yes"}]"#);
    assert!(
        err.contains("`confusion_matrix`: argument `history`: invalid type"),
        "{err}"
    );
    let err = read(r#"[{"k": 3}]"#);
    assert!(err.contains("a metric needs a `name`"), "{err}");
    let err = read(r#"["accuracy", "accuracy", "roc_auc", "roc_auc"]"#);
    assert!(err.contains("`roc_auc` is listed twice"), "{err}");
    // Calibration's arguments, named the same way.
    let text = r#"{"callbacks": [{"name": "calibration", "metric": "roc_auc"}]}"#;
    let err = JobConfig::from_json_str(text, origin)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("calibration.metric: `roc_auc` is not one"),
        "{err}"
    );
    let text = r#"{"callbacks": [{"name": "calibration", "prefer": "left"}]}"#;
    let err = JobConfig::from_json_str(text, origin)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("calibration.prefer: `left`"), "{err}");
}

/// The issue's one-file form: `metrics` at the top level reads into `train.metrics`
/// (what the recorded config shows); giving both is one line naming the field.
#[test]
fn top_level_metrics_read_into_train_metrics() {
    let origin = Path::new("job.json");
    let job = JobConfig::from_json_str(
        r#"{"metrics": ["accuracy", "f1_macro", {"name": "top_k_accuracy", "k": 3}]}"#,
        origin,
    )
    .unwrap();
    let names: Vec<String> = job.train.metrics.iter().map(|m| m.to_string()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(job.metrics.is_empty());
    let recorded = JobConfig::from_json_str(&job.to_json(), origin).unwrap();
    assert_eq!(recorded.train.metrics, job.train.metrics);
    let err = JobConfig::from_json_str(
        r#"{"metrics": ["accuracy"], "train": {"metrics": ["f1_macro"]}}"#,
        origin,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("job.json")
            && err.contains("metrics: give `metrics` or `train.metrics`, not both"),
        "{err}"
    );
}

#[test]
fn regression_metrics_by_name() {
    let data = scratch("metrics-regression-data");
    let n = 64;
    let x: Vec<f32> = (0..n * 3)
        .map(|i| ((i * 37 % 101) as f32) / 101.0)
        .collect();
    let y: Vec<f32> = (0..n).map(|i| x[i * 3] - 0.5 * x[i * 3 + 1]).collect();
    let bytes = |v: &[f32]| v.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>();
    write_npy(data.join("x.npy"), ArrayDType::F32, &[n, 3], &bytes(&x)).unwrap();
    write_npy(data.join("labels.npy"), ArrayDType::F32, &[n], &bytes(&y)).unwrap();
    let dir = scratch("metrics-regression-run");
    let text = format!(
        r#"{{"data": {{"source": "{}", "batch_size": 16, "scale": 1}},
            "model": {{"hidden": [8], "dropout": 0}},
            "train": {{"epochs": 2, "run_dir": "{}", "metrics": ["mse", "mae", "r2"]}}}}"#,
        data.display(),
        dir.display()
    );
    let job = JobConfig::from_json_str(&text, Path::new("job.json")).unwrap();
    let mut trainer = job.build_trainer().unwrap();
    assert_eq!(trainer.fit().unwrap(), Outcome::Finished);
    let latest = trainer.state.val_history.latest();
    // With the default loss (MSE), val_mse is the validation loss (the loss is summed in
    // f32, the metric in f64).
    let (mse, loss) = (latest["val_mse"], latest["val_loss"]);
    assert!((mse - loss).abs() < 1e-6 * loss, "{mse} vs {loss}");
    assert!(latest["val_mae"].is_finite() && latest["val_r2"].is_finite());
    // A classification metric on regression data is refused, naming it.
    let bad = text.replace(r#"["mse", "mae", "r2"]"#, r#"["confusion_matrix"]"#);
    let err = JobConfig::from_json_str(&bad, Path::new("job.json"))
        .unwrap()
        .build_trainer()
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("`confusion_matrix` needs class ids"), "{err}");
}
