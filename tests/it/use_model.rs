//! Using a trained run: `deeptrain evaluate`, `predict` and `export` against the library's
//! `Predictor` on the same checkpoint.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use candle_core::{Device, Tensor};
use deeptrain::data_loaders::array::DType;
use deeptrain::data_loaders::csv_file::{parse_csv, CsvOptions, LabelColumn};
use deeptrain::data_loaders::npy::{read_npy, write_npy};
use deeptrain::job::{EvalData, Evaluation, ModelCard, DIGITS_CSV_GZ};
use deeptrain::{checkpoint, Predictor};

use crate::common::{scratch, small_job};

const BIN: &str = env!("CARGO_BIN_EXE_deeptrain");

/// A small digits run, trained once for every test here, with a few configured metrics.
fn trained() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = scratch("use-model").join("run");
        let mut job = small_job(&dir);
        job.train.metrics = vec!["accuracy".into(), "f1_macro".into(), "top3_accuracy".into()];
        job.logging.progress = false;
        job.logging.tensorboard = false;
        job.build_trainer().unwrap().fit().unwrap();
        dir
    })
}

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Ran {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("CANDLE_NUM_THREADS")
        .env_remove("RAYON_NUM_THREADS")
        .output()
        .unwrap();
    let ran = Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(!ran.stderr.contains("panicked"), "{args:?}: {}", ran.stderr);
    ran
}

fn run_ok(args: &[&str]) -> Ran {
    let ran = run(args);
    assert_eq!(
        ran.code,
        Some(0),
        "{args:?}:\n{}\n{}",
        ran.stdout,
        ran.stderr
    );
    ran
}

/// The first `n` digits samples, raw (pixels 0-16), as `[n, 64]` f32.
fn raw_digits(n: usize) -> Vec<f32> {
    let opts = CsvOptions {
        has_header: Some(false),
        label_column: LabelColumn::Last,
        delimiter: b',',
    };
    let (features, _) = parse_csv(DIGITS_CSV_GZ, Path::new("digits.csv.gz"), opts).unwrap();
    let mut values = Vec::new();
    features.range_f32(0, n, &mut values);
    values
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn evaluate_cli_equals_the_library_and_the_runs_last_validation() {
    let run_dir = trained();
    let out = scratch("use-model-eval");
    let ran = run_ok(&["evaluate", s(run_dir), "--json", "-o", s(&out)]);
    let cli: Evaluation = serde_json::from_str(&ran.stdout).unwrap();
    let p = Predictor::load(run_dir).unwrap();
    let lib = p.evaluate(&EvalData::Validation).unwrap();
    assert_eq!(cli, lib);
    let written: Evaluation =
        serde_json::from_str(&std::fs::read_to_string(out.join("evaluation.json")).unwrap())
            .unwrap();
    assert_eq!(written, lib);

    // Same data, same batches, eval mode: exactly the run's last validation.
    let last = p.meta().state.val_history.latest();
    assert_eq!(lib.metrics.len(), 4, "{:?}", lib.metrics);
    for (name, value) in &lib.metrics {
        let logged = last[&format!("val_{name}")];
        match value {
            Some(v) => assert_eq!(v.to_bits(), logged.to_bits(), "{name}: {v} vs {logged}"),
            None => assert!(logged.is_nan(), "{name}: null vs {logged}"),
        }
    }
    assert_eq!(lib.samples, 359);
    let total: u64 = lib.confusion_matrix.iter().flatten().sum();
    assert_eq!(total, 359);
    assert_eq!(lib.per_class.iter().map(|r| r.support).sum::<u64>(), 359);

    // The human view shows the tables.
    let ran = run_ok(&["evaluate", s(run_dir), "-o", s(&out)]);
    assert!(ran.stdout.contains("confusion matrix"), "{}", ran.stdout);
    assert!(ran.stdout.contains("f1_macro"), "{}", ran.stdout);
}

#[test]
fn evaluate_best_uses_the_best_checkpoint() {
    let run_dir = trained();
    let p = Predictor::load_checkpoint(run_dir, deeptrain::job::CheckpointChoice::Best).unwrap();
    assert_eq!(p.checkpoint_dir(), run_dir.join(checkpoint::BEST_DIR));
    let out = scratch("use-model-eval-best");
    let ran = run_ok(&[
        "evaluate",
        s(run_dir),
        "--checkpoint",
        "best",
        "--json",
        "-o",
        s(&out),
    ]);
    let cli: Evaluation = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(cli, p.evaluate(&EvalData::Validation).unwrap());
}

#[test]
fn predict_cli_equals_the_library_bit_for_bit() {
    let run_dir = trained();
    let dir = scratch("use-model-predict");
    let n = 300;
    let raw = raw_digits(n);
    let bytes: Vec<u8> = raw.iter().flat_map(|v| v.to_le_bytes()).collect();
    let input = dir.join("x.npy");
    write_npy(&input, DType::F32, &[n, 64], &bytes).unwrap();
    let out = dir.join("pred.npy");
    run_ok(&["predict", s(run_dir), "--input", s(&input), "-o", s(&out)]);

    let p = Predictor::load(run_dir).unwrap();
    let x = Tensor::from_vec(raw, (n, 64), &Device::Cpu).unwrap();
    let lib = p
        .predict(&x)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let written = read_npy(&out).unwrap();
    assert_eq!(written.shape, vec![n, 10]);
    let mut cli = Vec::new();
    written.range_f32(0, n, &mut cli);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&cli), bits(&lib));

    let classes = read_npy(dir.join("pred.classes.npy")).unwrap();
    let mut cli_classes = Vec::new();
    classes.range_f32(0, n, &mut cli_classes);
    let lib_classes: Vec<f32> = p
        .predict_classes(&x)
        .unwrap()
        .into_iter()
        .map(|c| c as f32)
        .collect();
    assert_eq!(cli_classes, lib_classes);

    // CSV: one row per sample, probabilities then the class.
    let csv_out = dir.join("pred.csv");
    run_ok(&[
        "predict",
        s(run_dir),
        "--input",
        s(&input),
        "-o",
        s(&csv_out),
    ]);
    let text = std::fs::read_to_string(&csv_out).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("p0,p1,p2,p3,p4,p5,p6,p7,p8,p9,class"));
    let first: Vec<&str> = lines.next().unwrap().split(',').collect();
    let p0: f32 = first[0].parse().unwrap();
    assert_eq!(p0.to_bits(), lib[0].to_bits());
    assert_eq!(first[10], (lib_classes[0] as u32).to_string());
    assert_eq!(text.lines().count(), n + 1);
}

#[test]
fn export_is_read_by_python_with_the_checkpoints_names_and_bits() {
    let run_dir = trained();
    let out = scratch("use-model-export").join("export");
    run_ok(&["export", s(run_dir), "-o", s(&out)]);
    let card: ModelCard =
        serde_json::from_str(&std::fs::read_to_string(out.join("model_card.json")).unwrap())
            .unwrap();
    let ckpt = checkpoint::load_latest(run_dir).unwrap();
    assert_eq!(card.source_checkpoint, ckpt.dir.display().to_string());
    assert_eq!(card.input_shape, vec![64]);
    assert_eq!(card.num_classes, Some(10));
    assert_eq!(card.task, "classification");
    let mut names: Vec<&String> = ckpt.model.keys().collect();
    names.sort();
    let card_names: Vec<&String> = card.tensors.iter().map(|t| &t.name).collect();
    assert_eq!(card_names, names);
    assert!(
        card.metrics.contains_key("val_accuracy"),
        "{:?}",
        card.metrics
    );

    let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/tools/st_digest.py");
    let importable = Command::new("python3")
        .args(["-c", "import safetensors, numpy"])
        .status()
        .is_ok_and(|s| s.success());
    if !tool.is_file() || !importable {
        eprintln!(
            "skipped the Python check: needs {} and `pip install safetensors numpy`",
            tool.display()
        );
        return;
    }
    let digest = |file: &Path| -> serde_json::Value {
        let o = Command::new("python3")
            .arg(&tool)
            .arg(file)
            .arg("--json")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let exported = digest(&out.join("model.safetensors"));
    let saved = digest(&ckpt.dir.join(checkpoint::MODEL_FILE));
    assert_eq!(exported, saved);
    assert_eq!(exported["tensors"].as_object().unwrap().len(), names.len());
}

#[test]
fn bad_input_is_one_clear_line() {
    let run_dir = trained();
    let dir = scratch("use-model-bad");
    let missing = dir.join("no-such-run");
    for args in [
        vec!["evaluate", s(&missing)],
        vec!["export", s(&missing), "-o", s(&dir)],
        vec!["predict", s(&missing), "--input", "x.npy", "-o", "out.npy"],
    ] {
        let ran = run(&args);
        assert_eq!(ran.code, Some(1), "{args:?}: {}", ran.stderr);
        assert_eq!(ran.stderr.lines().count(), 1, "{args:?}: {}", ran.stderr);
        assert!(ran.stderr.contains("no-such-run"), "{}", ran.stderr);
    }
    let ran = run(&[
        "predict",
        s(run_dir),
        "--input",
        "x.npy",
        "-o",
        s(&dir.join("out.txt")),
    ]);
    assert_eq!(ran.code, Some(2), "{}", ran.stderr);
    assert_eq!(ran.stderr.lines().count(), 1, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("out.txt") && ran.stderr.contains(".npy"),
        "{}",
        ran.stderr
    );
}

#[test]
fn evaluate_on_another_source_with_set_and_a_confusion_figure() {
    use std::io::Read;
    let run_dir = trained();
    let out = scratch("use-model-eval-data");
    // The first 200 digits, as a CSV file with the label last (what AutoData reads).
    let mut text = String::new();
    flate2::read::GzDecoder::new(DIGITS_CSV_GZ)
        .read_to_string(&mut text)
        .unwrap();
    let rows: Vec<&str> = text.lines().take(200).collect();
    let csv = out.join("test.csv");
    std::fs::write(&csv, rows.join("\n") + "\n").unwrap();
    let ran = run_ok(&[
        "evaluate",
        s(run_dir),
        "--data",
        s(&csv),
        "--set",
        "data.val_batch_size=50",
        "--json",
        "-o",
        s(&out),
    ]);
    let cli: Evaluation = serde_json::from_str(&ran.stdout).unwrap();
    let overrides = [("data.val_batch_size".to_string(), "50".to_string())];
    let p = Predictor::load_checkpoint_with(
        run_dir,
        deeptrain::job::CheckpointChoice::Latest,
        &overrides,
        deeptrain::registry::builtins(),
    )
    .unwrap();
    assert_eq!(cli, p.evaluate(&EvalData::Source(csv.clone())).unwrap());
    assert_eq!(cli.samples, 200);
    assert_eq!(cli.per_class.iter().map(|r| r.support).sum::<u64>(), 200);
    let acc = cli.metrics["accuracy"].unwrap();
    assert!(acc > 0.8, "accuracy on 200 digits {acc}");
    // The figure is a real PNG of the matrix.
    let png = std::fs::read(out.join("confusion_matrix.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    // A setting that changes the model's shape cannot load its weights: one clear line.
    let bad = run(&["evaluate", s(run_dir), "--set", "model.hidden=[7]"]);
    assert_eq!(bad.code, Some(1), "{}", bad.stderr);
    assert!(bad.stderr.contains("layers.0"), "{}", bad.stderr);
}
