//! Data sources by name (`"source": {"name": "series", ...}`): the sunspots LSTM job
//! from its JSON file (training, recorded arguments, every-transition bitwise resume),
//! the one-line errors, the string form unchanged, a user's source, `deeptrain data JOB`,
//! the standard vision sets (`mnist`, `fashion_mnist`, `cifar10`) from tiny local files
//! through the binary and from the real MNIST when `../shared` has it, and (with the
//! `datasets` feature) both of their readers giving bitwise the same tensors.

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

/// Runs `deeptrain train JOB --run-dir RUN` on the job `json` and returns the run's last
/// checkpoint (the command must succeed).
fn train_through_binary(name: &str, json: &str) -> deeptrain::checkpoint::LoadedCheckpoint {
    let dir = scratch(name);
    let job = dir.join("job.json");
    std::fs::write(&job, json).unwrap();
    let run = dir.join("run");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_deeptrain"))
        .args([
            "train",
            job.to_str().unwrap(),
            "--run-dir",
            run.to_str().unwrap(),
        ])
        .env_remove("CANDLE_NUM_THREADS")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    deeptrain::checkpoint::load_latest(&run).unwrap()
}

/// A one-epoch job on `source` (a JSON object) with batches of 16 and a small MLP.
fn one_epoch_job(source: &str) -> String {
    format!(
        r#"{{"data": {{"source": {source}, "batch_size": 16}},
            "model": {{"name": "mlp", "hidden": [16]}},
            "train": {{"epochs": 1}}, "logging": {{"progress": false, "tensorboard": false}}}}"#
    )
}

/// The error building the job on `source` gives, as one line.
fn source_error(source: &str, name: &str) -> String {
    let json = one_epoch_job(source);
    let mut job = JobConfig::from_json_str(&json, Path::new("job.json")).unwrap();
    job.train.run_dir = scratch(name);
    let err = job
        .build_trainer()
        .err()
        .expect("the job must fail")
        .to_string();
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

#[test]
fn mnist_source_trains_one_epoch_from_local_idx_files() {
    let data = tiny_mnist("sources-mnist-data", 48, 16);
    for name in ["mnist", "fashion_mnist"] {
        let source = format!(r#"{{"name": "{name}", "dir": "{}"}}"#, data.display());
        let json = one_epoch_job(&source);
        let job = JobConfig::from_json_str(&json, Path::new("mnist.json")).unwrap();
        let overview = job.data_overview(&Registry::with_builtins()).unwrap();
        assert_eq!(overview.train.num_samples, 48);
        assert_eq!(overview.train.sample_shape, [1, 8, 8]);
        assert_eq!(overview.train.num_classes, Some(10));
        assert_eq!(overview.val.as_ref().map(|v| v.num_samples), Some(16));
        assert_eq!(overview.train.files, [format!("{name}/train")]);

        let ckpt = train_through_binary(&format!("sources-{name}-run"), &json);
        assert_eq!(ckpt.meta.model_name, "mlp 64-16-10");
        let s = &ckpt.meta.state;
        assert_eq!((s.epoch, s.batches_fit, s.batches_validated), (1, 3, 1));
        assert!(s.val_history.metrics["val_accuracy"][0].is_finite());
    }

    // Missing files: one line naming the directory and each missing file.
    std::fs::remove_file(data.join("t10k-labels-idx1-ubyte")).unwrap();
    std::fs::remove_file(data.join("train-images-idx3-ubyte.gz")).unwrap();
    let source = format!(r#"{{"name": "mnist", "dir": "{}"}}"#, data.display());
    let err = source_error(&source, "sources-mnist-missing");
    assert!(
        err.contains(&data.display().to_string())
            && err.contains(
                "has no train-images-idx3-ubyte (nor train-images-idx3-ubyte.gz), \
                             t10k-labels-idx1-ubyte (nor"
            )
            && err.contains("nothing is downloaded"),
        "{err}"
    );
}

/// Tiny CIFAR-10 batches in a fresh directory: `train[i]` records in `data_batch_{i+1}.bin`
/// and `test` in `test_batch.bin`; the label of record r is r % 10, its pixels depend on
/// the label and the record.
fn tiny_cifar10(name: &str, train: [usize; 5], test: usize) -> PathBuf {
    let dir = scratch(name);
    let batch = |n: usize, seed: usize| -> Vec<u8> {
        let mut b = Vec::new();
        for r in 0..n {
            let label = (r % 10) as u8;
            b.push(label);
            b.extend(
                (0..3072)
                    .map(|p| ((p / 1024) * 60 + label as usize * 17 + (p + r + seed) % 7) as u8),
            );
        }
        b
    };
    for (i, n) in train.iter().enumerate() {
        std::fs::write(dir.join(format!("data_batch_{}.bin", i + 1)), batch(*n, i)).unwrap();
    }
    std::fs::write(dir.join("test_batch.bin"), batch(test, 9)).unwrap();
    dir
}

#[cfg(not(feature = "datasets"))]
#[test]
fn cifar10_source_trains_one_epoch_from_local_batches() {
    let root = scratch("sources-cifar10-data");
    // The folder holding `cifar-10-batches-bin`, as the tarball unpacks.
    let data = tiny_cifar10(
        "sources-cifar10-data/cifar-10-batches-bin",
        [8, 8, 8, 4, 4],
        16,
    );
    assert_eq!(data, root.join("cifar-10-batches-bin"));
    let source = format!(r#"{{"name": "cifar10", "dir": "{}"}}"#, root.display());
    let json = one_epoch_job(&source);
    let job = JobConfig::from_json_str(&json, Path::new("cifar.json")).unwrap();
    let overview = job.data_overview(&Registry::with_builtins()).unwrap();
    assert_eq!(overview.train.num_samples, 32);
    assert_eq!(overview.train.sample_shape, [3, 32, 32]);
    assert_eq!(overview.train.num_classes, Some(10));
    assert_eq!(overview.val.as_ref().map(|v| v.num_samples), Some(16));

    // The values: byte / 255, channels first, records in file order.
    let args = deeptrain::data_loaders::vision_sets::Cifar10Args {
        dir: root.display().to_string(),
    };
    let (train, test) = deeptrain::data_loaders::vision_sets::read_cifar10(&args, 0.5).unwrap();
    let bytes = std::fs::read(data.join("data_batch_2.bin")).unwrap();
    let sample = 8 + 3; // record 3 of the second file
    let record = &bytes[3 * 3073..4 * 3073];
    let got = &train.features[sample * 3072..(sample + 1) * 3072];
    for (p, (v, b)) in got.iter().zip(&record[1..]).enumerate() {
        assert_eq!(
            v.to_bits(),
            (*b as f32 * (1.0f64 / 255.0) as f32 * 0.5).to_bits(),
            "pixel {p}"
        );
    }
    match (&train.targets, &test.targets) {
        (
            deeptrain::data_loaders::Targets::Classes {
                labels,
                num_classes: 10,
            },
            deeptrain::data_loaders::Targets::Classes { labels: test, .. },
        ) => {
            assert_eq!(labels[sample], u32::from(record[0]));
            assert_eq!(labels.len(), 32);
            assert_eq!(test.len(), 16);
        }
        other => panic!("{other:?}"),
    }

    let ckpt = train_through_binary("sources-cifar10-run", &json);
    assert_eq!(ckpt.meta.model_name, "mlp 3072-16-10");
    let s = &ckpt.meta.state;
    assert_eq!((s.epoch, s.batches_fit, s.batches_validated), (1, 2, 1));
    assert!(s.val_history.metrics["val_accuracy"][0].is_finite());

    // A batch file that is not whole records: one line naming it and its size.
    let cut = data.join("data_batch_4.bin");
    let mut bytes = std::fs::read(&cut).unwrap();
    bytes.pop();
    std::fs::write(&cut, &bytes).unwrap();
    let err = source_error(&source, "sources-cifar10-bad-size");
    assert!(
        err.contains(&cut.display().to_string()) && err.contains("has 12291 bytes"),
        "{err}"
    );
}

#[test]
fn cifar10_missing_batches_are_one_line_naming_each() {
    let data = tiny_cifar10("sources-cifar10-missing", [2; 5], 2);
    std::fs::remove_file(data.join("data_batch_3.bin")).unwrap();
    std::fs::remove_file(data.join("test_batch.bin")).unwrap();
    let source = format!(r#"{{"name": "cifar10", "dir": "{}"}}"#, data.display());
    let err = source_error(&source, "sources-cifar10-missing-run");
    assert!(
        err.contains(&data.display().to_string())
            && err.contains("has no data_batch_3.bin, test_batch.bin;")
            && err.contains("nothing is downloaded"),
        "{err}"
    );
}

#[test]
fn mnist_source_reads_the_real_mnist() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mnist");
    if !dir.is_dir() {
        println!("skipped: ../shared/data/mnist not found");
        return;
    }
    let source = format!(r#"{{"name": "mnist", "dir": "{}"}}"#, dir.display());
    let job = JobConfig::from_json_str(&one_epoch_job(&source), Path::new("m.json")).unwrap();
    let overview = job.data_overview(&Registry::with_builtins()).unwrap();
    assert_eq!(overview.train.num_samples, 60000);
    assert_eq!(overview.train.sample_shape, [1, 28, 28]);
    assert_eq!(overview.val.as_ref().map(|v| v.num_samples), Some(10000));
    // The first sample against the idx reader's bytes.
    let args = deeptrain::data_loaders::vision_sets::MnistArgs {
        dir: dir.display().to_string(),
    };
    let (train, _) = deeptrain::data_loaders::vision_sets::read_mnist("mnist", &args, 1.0).unwrap();
    let cache = scratch("sources-real-mnist-cache");
    let idx = |name: &str| deeptrain::data_loaders::idx::read_idx(dir.join(name), &cache).unwrap();
    let labels = idx("train-labels-idx1-ubyte.gz");
    let images = idx("train-images-idx3-ubyte.gz");
    let deeptrain::data_loaders::Targets::Classes { labels: got, .. } = &train.targets else {
        panic!("class targets expected");
    };
    assert_eq!(got[0], u32::from(labels.raw()[0]));
    assert_eq!(got[0], 5);
    let first: Vec<u32> = images.raw()[..784]
        .iter()
        .map(|b| (*b as f32 * (1.0f64 / 255.0) as f32).to_bits())
        .collect();
    let read: Vec<u32> = train.features[..784].iter().map(|v| v.to_bits()).collect();
    assert_eq!(read, first);
}

#[cfg(feature = "datasets")]
#[test]
fn mnist_readers_give_bitwise_equal_tensors() {
    use deeptrain::data_loaders::vision_sets::{read_mnist_candle, read_mnist_own, MnistArgs};
    use deeptrain::data_loaders::{DataLoader, LoaderState, SetRef};
    let data = tiny_mnist("sources-mnist-readers", 40, 12);
    let args = MnistArgs {
        dir: data.display().to_string(),
    };
    for scale in [1.0, 0.3] {
        let own = read_mnist_own("mnist", &args, scale).unwrap();
        let candle = read_mnist_candle("mnist", &args, scale).unwrap();
        for (a, b) in [(&own.0, &candle.0), (&own.1, &candle.1)] {
            assert_eq!(a.name, b.name);
            assert_eq!(a.sample_shape, b.sample_shape);
            let bits =
                |d: &InMemoryData| d.features.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(a), bits(b));
            // And as the batches the trainer gets.
            let rng = deeptrain::RngStream::new(1, deeptrain::StreamId::TrainShuffle);
            let mut sa = LoaderState::new(64, false, false, &rng);
            let mut sb = sa.clone();
            let sets = a.plan_epoch(1, &mut sa).unwrap();
            assert_eq!(sets, b.plan_epoch(1, &mut sb).unwrap());
            let dev = candle_core::Device::Cpu;
            let ba = a.load(&sa, SetRef::new(&sets[0]), &dev).unwrap();
            let bb = b.load(&sb, SetRef::new(&sets[0]), &dev).unwrap();
            assert_eq!(ba.x.dims(), bb.x.dims());
            let flat = |t: &candle_core::Tensor| -> Vec<u32> {
                t.flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect()
            };
            assert_eq!(flat(&ba.x), flat(&bb.x));
            assert_eq!(
                ba.y.to_vec1::<u32>().unwrap(),
                bb.y.to_vec1::<u32>().unwrap()
            );
        }
    }
}
