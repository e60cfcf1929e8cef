//! Data sources by name (`"source": {"name": "series", ...}`): the sunspots LSTM job
//! from its JSON file (training, recorded arguments, every-transition bitwise resume),
//! the one-line errors, the string form unchanged, a user's source, `deeptrain data JOB`,
//! and (with the `datasets` feature) MNIST through candle-datasets' loader.

use std::path::{Path, PathBuf};

use crate::common::scratch;
use deeptrain::data_loaders::InMemoryData;
use deeptrain::job::DataSource;
use deeptrain::registry::{Registry, SourceData};
use deeptrain::{JobConfig, Outcome, Trainer};
use serde_json::Value;

const SUNSPOTS_JOB: &str = "examples/configs/sunspots.json";

/// The sunspots CSV: `../shared`'s when there, else a stand-in of the same layout (309
/// years, `YEAR`, `SUNACTIVITY`), so the test runs everywhere.
fn sunspots_csv() -> PathBuf {
    let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/timeseries/sunspots.csv");
    if real.is_file() {
        return real;
    }
    let path = scratch("sources-sunspots-csv").join("sunspots.csv");
    let mut text = String::from("\"YEAR\",\"SUNACTIVITY\"\n");
    for i in 0..309 {
        let v = 50.0 + 45.0 * ((i as f64) * std::f64::consts::TAU / 11.0).sin();
        text.push_str(&format!("{},{v:.1}\n", 1700 + i));
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// The sunspots job with `overrides` (as `--set` gives them) and its run directory.
fn sunspots_job(run_dir: &Path, overrides: &[(&str, &str)]) -> JobConfig {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(SUNSPOTS_JOB);
    let csv = sunspots_csv().display().to_string();
    let mut all = vec![("data.source.path".to_string(), format!("\"{csv}\""))];
    all.extend(
        overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let mut job = JobConfig::from_file_with_overrides(&file, &all).unwrap();
    job.train.run_dir = run_dir.to_path_buf();
    job.logging.progress = false;
    job.logging.tensorboard = false;
    job
}

/// The fast variant: 2 epochs over every fourth train sequence.
const FAST: &[(&str, &str)] = &[("train.epochs", "2"), ("data.source.stride", "24")];

#[test]
fn sunspots_job_trains_from_json_and_records_its_source() {
    let dir = scratch("sources-sunspots");
    let job = sunspots_job(&dir, FAST);
    let mut t = job.build_trainer().unwrap();
    assert_eq!(t.model().name(), "lstm 1-24-1 per step");
    assert_eq!(t.fit().unwrap(), Outcome::Finished);
    let s = &t.state;
    // Train starts 0, 24, ..., 192 (the last target, at start + 48, before row 259): 9
    // sequences in sets of 6 and 3, each cut into 4 windows of 12 (epoch 1 starts at 0)
    // and 3 (epoch 2 starts at 6); validation: 3 sequences, one set, 4 windows from 0.
    assert_eq!(s.batches_fit, 4);
    assert_eq!(s.global_step, 2 * 4 + 2 * 3);
    assert_eq!(s.batches_validated, 2);
    let val = s.val_history.metrics["val_loss"].clone();
    assert!(val.iter().all(|v| v.is_finite() && *v > 0.0), "{val:?}");
    // The run's checkpoints record the source with every argument filled in ...
    let ckpt = deeptrain::checkpoint::load(t.last_checkpoint().unwrap()).unwrap();
    let recorded = JobConfig::from_checkpoint(&ckpt).unwrap();
    let source = serde_json::to_value(&recorded.data.source).unwrap();
    assert_eq!(source["name"], "series");
    assert_eq!(source["stride"], 24);
    assert_eq!(source["val_from"], 259);
    assert_eq!(source["normalize"], "standard");
    assert_eq!(source["header"], Value::Null);
    assert!(source.as_object().unwrap().contains_key("target"));
    // ... which is the job's source as the registry reads it.
    let resolved = job.resolve_with(&Registry::with_builtins(), &dir).unwrap();
    assert_eq!(recorded.data.source, resolved.data.source);
}

#[test]
fn sunspots_job_resumes_bitwise_from_every_transition() {
    let make = |run: &Path| -> Trainer { sunspots_job(run, FAST).build_trainer().unwrap() };
    let checkpoints = crate::autodata_train::check_resume_everywhere("sources-sunspots", &make);
    // 14 windows fit and 2 validations of 4 windows: well over 10 places to stop.
    assert!(checkpoints.len() > 10, "{}", checkpoints.len());
}

/// The error building `json` gives, as one line.
fn build_error(json: &str, name: &str) -> String {
    let origin = PathBuf::from(format!("{name}.json"));
    let run = scratch(name);
    let err = match JobConfig::from_json_str(json, &origin) {
        Err(e) => e.to_string(),
        Ok(mut job) => {
            job.train.run_dir = run;
            job.logging.progress = false;
            job.build_trainer()
                .err()
                .expect("the job must fail")
                .to_string()
        }
    };
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

#[test]
fn source_errors_are_one_line_naming_the_source_and_what_is_wrong() {
    let err = build_error(
        r#"{"data": {"source": {"name": "seris", "path": "x.csv"}}}"#,
        "sources-unknown",
    );
    assert!(
        err.contains("data.source")
            && err.contains("`seris`")
            && err.contains("did you mean `series`"),
        "{err}"
    );
    let err = build_error(
        r#"{"data": {"source": {"name": "series", "path": "x.csv", "lenght": 4}}}"#,
        "sources-bad-arg",
    );
    assert!(
        err.contains("data.source") && err.contains("`series`") && err.contains("`lenght`"),
        "{err}"
    );
    let err = build_error(
        r#"{"data": {"source": {"name": "series", "path": "x.csv", "val_from": 1.5}}}"#,
        "sources-bad-fraction",
    );
    assert!(err.contains("`val_from`") && err.contains("1.5"), "{err}");
    let csv = sunspots_csv();
    let err = build_error(
        &format!(
            r#"{{"data": {{"source": {{"name": "series", "path": "{}", "column": "sunspots"}}}},
                "model": {{"name": "lstm"}}}}"#,
            csv.display()
        ),
        "sources-no-column",
    );
    assert!(
        err.contains(&csv.display().to_string())
            && err.contains("`sunspots`")
            && err.contains("SUNACTIVITY"),
        "{err}"
    );
    let err = build_error(
        r#"{"data": {"source": {"no_name": 1}}}"#,
        "sources-nameless",
    );
    assert!(
        err.contains("data.source") && err.contains("`name`"),
        "{err}"
    );
    let err = build_error(
        r#"{"data": {"source": {"name": "mnist"}}}"#,
        "sources-no-dir",
    );
    assert!(err.contains("`mnist`") && err.contains("`dir`"), "{err}");
}

#[cfg(not(feature = "datasets"))]
#[test]
fn standard_sets_say_which_feature_they_need() {
    for name in ["mnist", "cifar10"] {
        let err = build_error(
            &format!(r#"{{"data": {{"source": {{"name": "{name}", "dir": "."}}}}}}"#),
            &format!("sources-{name}-feature"),
        );
        assert!(
            err.contains(&format!("`{name}`")) && err.contains("--features datasets"),
            "{err}"
        );
    }
}

#[test]
fn string_sources_read_and_write_as_before() {
    let json = r#"{"data": {"source": "some/dir", "val_source": "other/dir"}}"#;
    let job = JobConfig::from_json_str(json, Path::new("old.json")).unwrap();
    assert_eq!(job.data.source, DataSource::Path("some/dir".into()));
    assert_eq!(
        job.data.val_source,
        Some(DataSource::Path("other/dir".into()))
    );
    let written: Value = serde_json::from_str(&job.to_json()).unwrap();
    assert_eq!(written["data"]["source"], "some/dir");
    assert_eq!(written["data"]["val_source"], "other/dir");
    // The default job's source is still the string "digits", with its own scale.
    let default: Value = serde_json::from_str(&JobConfig::default().to_json()).unwrap();
    assert_eq!(default["data"]["source"], "digits");
    let digits =
        JobConfig::from_json_str(r#"{"data": {"source": "digits"}}"#, Path::new("d.json")).unwrap();
    assert_eq!(digits.data.scale, Some(1.0 / 16.0));
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
struct RampArgs {
    /// Samples.
    n: usize,
}

#[test]
fn a_users_source_is_registered_listed_and_trained_on() {
    let mut registry = Registry::with_builtins();
    registry.source("ramp", |a: RampArgs, _ctx| {
        let part = |n: usize, name: &str| {
            let features: Vec<f32> = (0..n * 2).map(|i| (i % 7) as f32 / 7.0).collect();
            let labels: Vec<u32> = (0..n as u32).map(|i| i % 2).collect();
            InMemoryData::classification(name, features, vec![2], labels, 2)
        };
        Ok(SourceData {
            train: Box::new(part(a.n, "ramp/train")?),
            val: Some(Box::new(part(8, "ramp/val")?)),
        })
    });
    assert!(registry
        .listing()
        .iter()
        .any(|k| k.plural == "sources" && k.entries.iter().any(|e| e.name == "ramp")));
    let json = r#"{"data": {"source": {"name": "ramp", "n": 20}, "batch_size": 5},
                   "train": {"epochs": 1}, "logging": {"progress": false, "tensorboard": false}}"#;
    let mut job = JobConfig::from_json_str_with(json, Path::new("ramp.json"), &registry).unwrap();
    job.train.run_dir = scratch("sources-user");
    let mut t = job.build_with(&registry).unwrap();
    assert_eq!(t.fit().unwrap(), Outcome::Finished);
    assert_eq!((t.state.batches_fit, t.state.batches_validated), (4, 1));
    // Unknown to the built-ins: building without the user's registry names it.
    let err = job.build_trainer().err().unwrap().to_string();
    assert!(err.contains("unknown source `ramp`"), "{err}");
}

#[test]
fn data_command_shows_a_jobs_sources_and_transform_chain() {
    let dir = scratch("sources-data-cli");
    let job = dir.join("job.json");
    std::fs::write(
        &job,
        r#"{"data": {"source": "digits", "transforms": [
              {"name": "normalize", "mean": [0.5], "std": [0.25]},
              {"name": "gaussian_noise", "std": 0.1}]}}"#,
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_deeptrain"))
        .args(["data", job.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("source: \"digits\""), "{text}");
    // 1797 digits, 20% held out.
    assert!(text.contains("train: 1438 samples of shape [64]"), "{text}");
    assert!(text.contains("val: 359 samples"), "{text}");
    assert!(text.contains("[0] normalize"), "{text}");
    assert!(
        text.contains("[1] gaussian_noise") && text.contains("(random, train only)"),
        "{text}"
    );
}

/// Tiny MNIST-format idx files (8 x 8 images) in a fresh directory; the train images are
/// gzipped, as downloads are, to exercise the decompression.
#[cfg(feature = "datasets")]
fn tiny_mnist(name: &str, train: usize, test: usize) -> PathBuf {
    use std::io::Write;
    let dir = scratch(name);
    let images = |n: usize| -> Vec<u8> {
        let mut b = Vec::new();
        for v in [2051u32, n as u32, 8, 8] {
            b.extend(v.to_be_bytes());
        }
        // Class c lights row c; every image a little different.
        for i in 0..n {
            let c = i % 8;
            for p in 0..64 {
                b.push(if p / 8 == c {
                    200 + (i % 50) as u8
                } else {
                    (p % 5) as u8
                });
            }
        }
        b
    };
    let labels = |n: usize| -> Vec<u8> {
        let mut b = Vec::new();
        for v in [2049u32, n as u32] {
            b.extend(v.to_be_bytes());
        }
        b.extend((0..n).map(|i| (i % 8) as u8));
        b
    };
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&images(train)).unwrap();
    std::fs::write(dir.join("train-images-idx3-ubyte.gz"), gz.finish().unwrap()).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), labels(train)).unwrap();
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), images(test)).unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), labels(test)).unwrap();
    dir
}

#[cfg(feature = "datasets")]
#[test]
fn mnist_source_trains_one_epoch_through_candle_datasets() {
    let data = tiny_mnist("sources-mnist-data", 48, 16);
    let json = format!(
        r#"{{"data": {{"source": {{"name": "mnist", "dir": "{}"}}, "batch_size": 16}},
            "model": {{"name": "mlp", "hidden": [16]}},
            "train": {{"epochs": 1}}, "logging": {{"progress": false, "tensorboard": false}}}}"#,
        data.display()
    );
    let registry = Registry::with_builtins();
    let mut job = JobConfig::from_json_str(&json, Path::new("mnist.json")).unwrap();
    job.train.run_dir = scratch("sources-mnist-run");
    let overview = job.data_overview(&registry).unwrap();
    assert_eq!(overview.train.num_samples, 48);
    assert_eq!(overview.train.sample_shape, [1, 8, 8]);
    assert_eq!(overview.train.num_classes, Some(10));
    assert_eq!(overview.val.as_ref().map(|v| v.num_samples), Some(16));
    let mut t = job.build_trainer().unwrap();
    assert_eq!(t.model().name(), "mlp 64-16-10");
    assert_eq!(t.fit().unwrap(), Outcome::Finished);
    assert_eq!((t.state.batches_fit, t.state.batches_validated), (3, 1));
    assert!(t.state.val_history.metrics["val_accuracy"][0].is_finite());

    // A missing file: one line naming the directory and the file.
    std::fs::remove_file(data.join("t10k-labels-idx1-ubyte")).unwrap();
    let err = job.build_trainer().err().unwrap().to_string();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&data.display().to_string()) && err.contains("t10k-labels-idx1-ubyte"),
        "{err}"
    );
}
