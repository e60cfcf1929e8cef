//! Per-sample weights from the data (`data.weights`, `data.val_weights`,
//! `data.weight_column`): JSON jobs with an npy weights file and with a CSV weight column
//! train; weights of all 1.0 give the weights and metrics of no weights; a sample of
//! weight 0 is a sample left out of the loss and the metrics; bad weights files are one
//! line naming the file; a run with weights resumes bit for bit from a stop at every
//! transition.

use std::path::{Path, PathBuf};

use deeptrain::data_loaders::array::DType;
use deeptrain::data_loaders::npy::write_npy;
use deeptrain::job::EvalData;
use deeptrain::{JobConfig, Outcome, Predictor, Trainer};

use crate::autodata_train::check_resume_everywhere;
use crate::common::{scratch, tensor_bytes};

const FEATURES: usize = 6;

/// Sample `i`: its features (class `i % 3` has a bump in its feature) and class.
fn sample(i: usize) -> ([f32; FEATURES], i64) {
    let class = i % 3;
    let mut x = [0.0; FEATURES];
    for (j, v) in x.iter_mut().enumerate() {
        let noise = ((i * 7 + j * 13) % 17) as f32 / 17.0;
        *v = if j == class { 0.6 + noise } else { noise };
    }
    (x, class as i64)
}

fn npy_f32(path: &Path, shape: &[usize], v: &[f32]) {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    write_npy(path, DType::F32, shape, &bytes).unwrap();
}

fn npy_f64(path: &Path, v: &[f64]) {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    write_npy(path, DType::F64, &[v.len()], &bytes).unwrap();
}

fn npy_i64(path: &Path, v: &[i64]) {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    write_npy(path, DType::I64, &[v.len()], &bytes).unwrap();
}

/// Samples `ids` as files `batch_0.npy`, ... of `sizes` samples, and `labels.npy`.
fn data_dir(name: &str, ids: &[usize], sizes: &[usize]) -> PathBuf {
    assert_eq!(sizes.iter().sum::<usize>(), ids.len());
    let dir = scratch(name);
    let mut at = 0;
    let mut labels = Vec::new();
    for (num, n) in sizes.iter().enumerate() {
        let mut x = Vec::new();
        for &i in &ids[at..at + n] {
            let (f, l) = sample(i);
            x.extend(f);
            labels.push(l);
        }
        npy_f32(&dir.join(format!("batch_{num}.npy")), &[*n, FEATURES], &x);
        at += n;
    }
    npy_i64(&dir.join("labels.npy"), &labels);
    dir
}

/// Uneven weights of `n` samples, some 0.
fn uneven(n: usize) -> Vec<f64> {
    (0..n).map(|i| ((i * 5) % 7) as f64 * 0.5).collect()
}

/// A job on `data` (a JSON object's fields) with a small MLP: 2 epochs, shuffled, a
/// validation every 3 batches.
fn job(run: &Path, data: &str) -> JobConfig {
    let json = format!(
        r#"{{"data": {{"batch_size": 16, {data}}},
            "model": {{"name": "mlp", "hidden": [8]}},
            "train": {{"epochs": 2, "seed": 3, "validate_every": {{"batches": 3}},
                       "checkpoint_every": "never",
                       "metrics": ["loss", "accuracy", "f1_macro"]}},
            "logging": {{"progress": false, "tensorboard": false, "csv": false}}}}"#
    );
    let mut job = JobConfig::from_json_str(&json, Path::new("weights.json")).unwrap();
    job.train.run_dir = run.to_path_buf();
    job
}

fn fit(job: &JobConfig) -> Trainer {
    let mut t = job.build_trainer().unwrap();
    assert_eq!(t.fit().unwrap(), Outcome::Finished);
    t
}

/// Every value of the train and validation histories, as bits (NaN included).
fn history_bits(t: &Trainer) -> Vec<(String, Vec<u64>)> {
    let s = &t.state;
    let mut out = Vec::new();
    for (prefix, h) in [("train", &s.train_history), ("val", &s.val_history)] {
        for (k, v) in &h.metrics {
            out.push((
                format!("{prefix} {k}"),
                v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            ));
        }
    }
    assert!(out
        .iter()
        .any(|(k, v)| k == "val val_loss" && !v.is_empty()));
    out
}

/// Histories `a` and `b` are the same: bitwise, except losses, which may differ in the
/// last bits of f32. Why: with weights the cross-entropy is `sum(w l) / sum(w)`, without
/// them candle-nn's `sum(l) * (-1/n)`; with weights of 1 both sums are the same, but
/// dividing by n and multiplying by 1/n round differently when 1/n is not a power of two
/// (a validation batch of 24). Everything counted (accuracy, F1) is bitwise the same.
fn assert_same_runs(a: &Trainer, b: &Trainer) {
    let (a, b) = (history_bits(a), history_bits(b));
    assert_eq!(a.len(), b.len());
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert_eq!(x.len(), y.len(), "{name}");
        for (x, y) in x.iter().zip(y) {
            let (x, y) = (f64::from_bits(*x), f64::from_bits(*y));
            if name.ends_with("loss") {
                assert!((x - y).abs() <= 1e-6 * y.abs(), "{name}: {x} vs {y}");
            } else {
                assert_eq!(x.to_bits(), y.to_bits(), "{name}: {x} vs {y}");
            }
        }
    }
}

/// The last value of validation metric `m`.
fn last(t: &Trainer, m: &str) -> f64 {
    *t.state.val_history.metrics[m].last().unwrap()
}

fn err_of(job: &JobConfig) -> String {
    match job.build_trainer() {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn npy_weights_of_one_train_as_no_weights_and_are_checked() {
    let ids: Vec<usize> = (0..120).collect();
    let dir = data_dir("sw-npy-data", &ids, &[50, 30, 40]);
    // Beside the data: read as weights, not as a data file. f64, converted.
    let weights = dir.join("weights.npy");
    npy_f64(&weights, &[1.0; 120]);
    let source = format!(
        r#""source": "{}", "val_split": 0.25, "val_batch_size": 24"#,
        dir.display()
    );
    let plain = fit(&job(&scratch("sw-npy-plain"), &source));
    let w = weights.display();
    let ones = fit(&job(
        &scratch("sw-npy-ones"),
        &format!(r#"{source}, "weights": "{w}""#),
    ));
    // With weights of 1 the model and optimizer are bitwise those of no weights, and so
    // is every metric but the loss (see `assert_same_runs`).
    assert_eq!(
        tensor_bytes(&scratch_dir("sw-npy-plain")),
        tensor_bytes(&scratch_dir("sw-npy-ones"))
    );
    assert_same_runs(&plain, &ones);

    // Uneven weights change the run.
    npy_f64(&weights, &uneven(120));
    let weighted = fit(&job(
        &scratch("sw-npy-uneven"),
        &format!(r#"{source}, "weights": "{w}""#),
    ));
    assert_ne!(history_bits(&plain), history_bits(&weighted));

    // Wrong length: one line naming the file and both counts.
    npy_f64(&weights, &[1.0; 119]);
    let e = err_of(&job(
        &scratch("sw-npy-short"),
        &format!(r#"{source}, "weights": "{w}""#),
    ));
    assert!(
        e.contains(&w.to_string()) && e.contains("119 weights") && e.contains("120 samples"),
        "{e}"
    );
    assert!(!e.contains('\n'), "{e}");
    // Negative and NaN: one line naming the file and the sample.
    for (bad, what) in [(-1.0, "negative"), (f64::NAN, "NaN")] {
        let mut v = vec![1.0; 120];
        v[77] = bad;
        npy_f64(&weights, &v);
        let e = err_of(&job(
            &scratch("sw-npy-bad"),
            &format!(r#"{source}, "weights": "{w}""#),
        ));
        assert!(
            e.contains(&w.to_string()) && e.contains("sample 77") && e.contains(what),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
    }
}

fn scratch_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// A CSV file of `rows` samples: features, a weight column at `weight_at` (if any), the
/// label last.
fn csv_file(name: &str, rows: usize, weight_at: Option<usize>, weight: &dyn Fn(usize) -> f64) {
    let mut text = String::new();
    for i in 0..rows {
        let (x, l) = sample(i);
        let mut fields: Vec<String> = x.iter().map(|v| format!("{v}")).collect();
        if let Some(c) = weight_at {
            fields.insert(c, format!("{}", weight(i)));
        }
        fields.push(l.to_string());
        text.push_str(&fields.join(","));
        text.push('\n');
    }
    let dir = scratch(name);
    std::fs::write(dir.join("data.csv"), text).unwrap();
}

#[test]
fn a_csv_weight_column_is_taken_out_of_the_features() {
    csv_file("sw-csv-plain", 90, None, &|_| 1.0);
    csv_file("sw-csv-ones", 90, Some(2), &|_| 1.0);
    let src = |name: &str| {
        format!(
            r#""source": "{}/data.csv", "val_batch_size": 24"#,
            scratch_dir(name).display()
        )
    };
    let plain = fit(&job(&scratch("sw-csv-run-plain"), &src("sw-csv-plain")));
    let ones = fit(&job(
        &scratch("sw-csv-run-ones"),
        &format!(r#"{}, "weight_column": 2"#, src("sw-csv-ones")),
    ));
    // The model sees the 6 features, not the weights: the same run.
    assert_eq!(
        tensor_bytes(&scratch_dir("sw-csv-run-plain")),
        tensor_bytes(&scratch_dir("sw-csv-run-ones"))
    );
    assert_same_runs(&plain, &ones);

    csv_file("sw-csv-bad", 90, Some(0), &|i| {
        if i == 41 {
            -2.0
        } else {
            1.0
        }
    });
    let e = err_of(&job(
        &scratch("sw-csv-run-bad"),
        &format!(r#"{}, "weight_column": 0"#, src("sw-csv-bad")),
    ));
    assert!(
        e.contains("sw-csv-bad/data.csv") && e.contains("sample 41") && e.contains("negative"),
        "{e}"
    );
    assert!(!e.contains('\n'), "{e}");
    // The label column (the last, 7) is no weight column.
    let e = err_of(&job(
        &scratch("sw-csv-run-bad"),
        &format!(r#"{}, "weight_column": 7"#, src("sw-csv-bad")),
    ));
    assert!(e.contains("data.weight_column") && e.contains("7"), "{e}");
}

#[test]
fn a_zero_weight_is_a_sample_left_out_of_the_loss_and_the_metrics() {
    // The same train data; validation on 60 samples, 10 of them weighing 0, against the
    // 50 others alone.
    let train_ids: Vec<usize> = (0..96).collect();
    let train = data_dir("sw-zero-train", &train_ids, &[96]);
    let val_ids: Vec<usize> = (200..260).collect();
    let val = data_dir("sw-zero-val", &val_ids, &[60]);
    let zero = |k: usize| k % 6 == 1;
    let kept: Vec<usize> = (0..60).filter(|k| !zero(*k)).map(|k| val_ids[k]).collect();
    let val_kept = data_dir("sw-zero-val-kept", &kept, &[50]);
    let w: Vec<f64> = (0..60).map(|k| if zero(k) { 0.0 } else { 1.0 }).collect();
    let val_w = scratch("sw-zero-w").join("val_weights.npy");
    npy_f64(&val_w, &w);
    let data = |val: &Path, weights: Option<&Path>| {
        let w = weights.map_or(String::new(), |w| {
            format!(r#", "val_weights": "{}""#, w.display())
        });
        format!(
            r#""source": "{}", "val_source": "{}", "val_batch_size": 1000{w}"#,
            train.display(),
            val.display()
        )
    };
    let weighted = fit(&job(&scratch("sw-zero-run-w"), &data(&val, Some(&val_w))));
    let left_out = fit(&job(&scratch("sw-zero-run-kept"), &data(&val_kept, None)));
    // Validation does not change training: the same model.
    assert_eq!(
        tensor_bytes(&scratch_dir("sw-zero-run-w")),
        tensor_bytes(&scratch_dir("sw-zero-run-kept"))
    );
    // Accuracy and F1 from counts of weight 0 or 1: exactly equal. The loss is one batch's
    // weighted mean against a plain mean of the kept samples: equal up to f32 rounding.
    assert_eq!(
        last(&weighted, "val_accuracy"),
        last(&left_out, "val_accuracy")
    );
    assert_eq!(
        last(&weighted, "val_f1_macro"),
        last(&left_out, "val_f1_macro")
    );
    let (a, b) = (last(&weighted, "val_loss"), last(&left_out, "val_loss"));
    assert!((a - b).abs() <= 1e-6 * b.abs(), "{a} vs {b}");

    // `evaluate` on the run's validation data weighs the samples too.
    let p = Predictor::load(scratch_dir("sw-zero-run-w")).unwrap();
    let ev = p.evaluate(&EvalData::Validation).unwrap();
    let p2 = Predictor::load(scratch_dir("sw-zero-run-kept")).unwrap();
    let ev2 = p2.evaluate(&EvalData::Validation).unwrap();
    assert_eq!(ev.metrics["accuracy"], ev2.metrics["accuracy"]);
    assert_eq!(
        ev.metrics["accuracy"],
        Some(last(&left_out, "val_accuracy"))
    );
    assert_eq!(ev.samples, 60);
}

#[test]
fn a_run_with_weights_resumes_bitwise_from_a_stop_at_every_transition() {
    let ids: Vec<usize> = (0..70).collect();
    let train = data_dir("sw-resume-train", &ids, &[30, 15, 25]);
    let weights = train.join("w.npy");
    npy_f64(&weights, &uneven(70));
    let val_ids: Vec<usize> = (300..330).collect();
    let val = data_dir("sw-resume-val", &val_ids, &[30]);
    let val_w = val.join("vw.npy");
    npy_f64(&val_w, &uneven(30));
    let data = format!(
        r#""source": "{}", "weights": "{}", "val_source": "{}", "val_weights": "{}",
           "val_batch_size": 8"#,
        train.display(),
        weights.display(),
        val.display(),
        val_w.display()
    );
    let checkpoints =
        check_resume_everywhere("sw-resume", &|run| job(run, &data).build_trainer().unwrap());
    assert!(checkpoints.len() > 15, "{} transitions", checkpoints.len());
}
