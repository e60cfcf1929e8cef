//! A sweep in TensorBoard's HParams tab, checked with TensorBoard's own Python code: its
//! event multiplexer and `hparams.metadata` parsers read the records, and the HParams
//! plugin's backend (`list_session_groups`, what the tab shows) lists every trial with
//! its values and its metric. Skips when python3 cannot import tensorboard.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::common::scratch;

/// A 4-trial grid on the digits job, a fraction of a second per trial.
const GRID: &str = r#"{
  "grid": { "optimizer.lr": [0.003, 0.001], "model.hidden": [[32], [16]] },
  "set": { "train.epochs": 1, "logging.progress": false },
  "metric": "val_accuracy"
}"#;

const TRIALS: [&str; 4] = [
    "t000-optimizer.lr=0.003-model.hidden=_32_",
    "t001-optimizer.lr=0.003-model.hidden=_16_",
    "t002-optimizer.lr=0.001-model.hidden=_32_",
    "t003-optimizer.lr=0.001-model.hidden=_16_",
];

/// Reads SWEEP_DIR as `tensorboard --logdir SWEEP_DIR` does and prints, as JSON, the
/// hparams records per run and the HParams plugin's session groups.
const READER: &str = r#"
import json, sys
from google.protobuf import json_format
from tensorboard import context
from tensorboard.backend.event_processing import data_provider
from tensorboard.backend.event_processing import plugin_event_multiplexer as pem
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import api_pb2, backend_context, list_session_groups, metadata

d = sys.argv[1]
mux = pem.EventMultiplexer()
mux.AddRunsFromDirectory(d)
mux.Reload()
runs = {}
for run, tags in mux.PluginRunToTagToContent(metadata.PLUGIN_NAME).items():
    r = runs.setdefault(run, {})
    for tag, content in tags.items():
        if tag == metadata.EXPERIMENT_TAG:
            e = metadata.parse_experiment_plugin_data(content)
            r["experiment"] = {
                "hparams": [[h.name, api_pb2.DataType.Name(h.type),
                             [json_format.MessageToDict(v) for v in h.domain_discrete.values]]
                            for h in e.hparam_infos],
                "metrics": [[m.name.group, m.name.tag, m.display_name,
                             api_pb2.DatasetType.Name(m.dataset_type)] for m in e.metric_infos],
            }
        elif tag == metadata.SESSION_START_INFO_TAG:
            s = metadata.parse_session_start_info_plugin_data(content)
            r["hparams"] = {k: json_format.MessageToDict(v) for k, v in s.hparams.items()}
        elif tag == metadata.SESSION_END_INFO_TAG:
            r["status"] = api_pb2.Status.Name(metadata.parse_session_end_info_plugin_data(content).status)
        else:
            r.setdefault("other", []).append(tag)
ctx = backend_context.Context(base_plugin.TBContext(
    logdir=d, multiplexer=mux, data_provider=data_provider.MultiplexerDataProvider(mux, d)))
req = api_pb2.ListSessionGroupsRequest(start_index=0, slice_size=100, allowed_statuses=[0, 1, 2, 3])
groups = list_session_groups.Handler(context.RequestContext(), ctx, "", req).run()
tab = {}
for g in groups.session_groups:
    assert len(g.sessions) == 1, g
    tab[g.name] = {
        "hparams": {k: json_format.MessageToDict(v) for k, v in g.hparams.items()},
        "metrics": {m.name.tag: m.value for m in g.metric_values},
        "status": api_pb2.Status.Name(g.sessions[0].status),
    }
print(json.dumps({"runs": runs, "tab": tab}))
"#;

fn deeptrain(cwd: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_deeptrain"))
        .current_dir(cwd)
        .args(args)
        .env_remove("DEEPTRAIN_TEST_PAUSE")
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("CANDLE_NUM_THREADS")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "deeptrain {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn read_with_tensorboard(sweep_dir: &Path) -> Value {
    let out = Command::new("python3")
        .args(["-c", READER])
        .arg(sweep_dir)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "tensorboard's reader failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

/// The event files in `dir` whose name holds `tfevents`.
fn event_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("tfevents"))
        .collect();
    v.sort();
    v
}

/// Every trial's `final` value of the metric in summary.csv, by trial name.
fn final_values(sweep_dir: &Path) -> Vec<(String, f64)> {
    let mut r = csv::Reader::from_path(sweep_dir.join("sweep/summary.csv")).unwrap();
    let h = r.headers().unwrap().clone();
    let col = |name: &str| h.iter().position(|c| c == name).unwrap();
    let (name, fin) = (col("name"), col("final"));
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            (rec[name].to_string(), rec[fin].parse().unwrap())
        })
        .collect()
}

#[test]
fn every_trial_is_in_tensorboards_hparams_tab_with_its_values_and_metric() {
    let has_tb = Command::new("python3")
        .args(["-c", "import tensorboard.plugins.hparams.metadata"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_tb {
        println!("skipped: python3 cannot import tensorboard (pip install tensorboard)");
        return;
    }
    let cwd = scratch("sweep_hparams");
    std::fs::write(cwd.join("s.json"), GRID).unwrap();
    let dir = cwd.join("runs/sweep-s");
    let experiment = json!({
        "hparams": [
            ["optimizer.lr", "DATA_TYPE_FLOAT64", [0.001, 0.003]],
            ["model.hidden", "DATA_TYPE_STRING", ["[16]", "[32]"]],
        ],
        "metrics": [["", "val/accuracy", "val_accuracy", "DATASET_VALIDATION"]],
    });
    let values = |t: &str| match &t[..4] {
        "t000" => json!({"optimizer.lr": 0.003, "model.hidden": "[32]"}),
        "t001" => json!({"optimizer.lr": 0.003, "model.hidden": "[16]"}),
        "t002" => json!({"optimizer.lr": 0.001, "model.hidden": "[32]"}),
        _ => json!({"optimizer.lr": 0.001, "model.hidden": "[16]"}),
    };

    // One trial run: the experiment already names every trial's values; the trials not
    // started have no session (and no directory).
    deeptrain(&cwd, &["sweep", "s.json", "--trial", "0"]);
    let tb = read_with_tensorboard(&dir);
    let run0 = format!("{}/tensorboard", TRIALS[0]);
    assert_eq!(
        tb["runs"],
        json!({
            "sweep": {"experiment": experiment},
            run0.clone(): {"hparams": values(TRIALS[0]), "status": "STATUS_SUCCESS"},
        }),
        "{tb}"
    );
    assert!(!dir.join(TRIALS[1]).exists());

    // All of them, then the report twice: the records are replaced, never added to.
    deeptrain(&cwd, &["sweep", "s.json"]);
    deeptrain(&cwd, &["sweep-report", "runs/sweep-s"]);
    deeptrain(&cwd, &["sweep-report", "runs/sweep-s"]);
    let tb = read_with_tensorboard(&dir);
    let finals = final_values(&dir);
    assert_eq!(finals.len(), 4);
    let mut runs = json!({"sweep": {"experiment": experiment}});
    let mut tab = json!({});
    for (t, (name, value)) in TRIALS.iter().zip(&finals) {
        assert_eq!(name, t);
        let run = format!("{t}/tensorboard");
        runs[&run] = json!({"hparams": values(t), "status": "STATUS_SUCCESS"});
        // The tab's metric is the last `val/accuracy` scalar of the trial's run: the
        // summary's final value, as the f32 the event file holds.
        tab[&run] = json!({
            "hparams": values(t),
            "metrics": {"val/accuracy": f64::from(*value as f32)},
            "status": "STATUS_SUCCESS",
        });
        let files = event_files(&dir.join(t).join("tensorboard"));
        assert_eq!(files.len(), 2, "{files:?}");
        assert_eq!(files[0], "events.out.tfevents.0.hparams");
    }
    assert_eq!(tb["runs"], runs, "{tb}");
    assert_eq!(tb["tab"], tab, "{tb}");
    assert_eq!(
        event_files(&dir.join("sweep")),
        ["events.out.tfevents.0.hparams"]
    );
}

/// A trial whose process failed (its data does not exist) is a failed session in the
/// HParams tab, beside a finished one; once it has run again and finished, a success.
#[test]
fn a_failed_trial_is_a_failure_in_tensorboards_hparams_tab() {
    let has_tb = Command::new("python3")
        .args(["-c", "import tensorboard.plugins.hparams.metadata"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_tb {
        println!("skipped: python3 cannot import tensorboard (pip install tensorboard)");
        return;
    }
    let cwd = scratch("sweep_hparams_failed");
    std::fs::write(
        cwd.join("s.json"),
        r#"{"grid": {"data.source": ["digits", "D"]},
            "set": {"train.epochs": 1, "model.hidden": [16], "logging.progress": false},
            "metric": "val_accuracy"}"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_deeptrain"))
        .current_dir(&cwd)
        .args(["sweep", "s.json"])
        .env_remove("DEEPTRAIN_TEST_PAUSE")
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("CANDLE_NUM_THREADS")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let dir = cwd.join("runs/sweep-s");
    let status = |tb: &Value, part: &str, trial: &str| {
        tb[part][format!("{trial}/tensorboard")]["status"].clone()
    };
    let tb = read_with_tensorboard(&dir);
    for part in ["runs", "tab"] {
        assert_eq!(
            status(&tb, part, "t000-data.source=digits"),
            "STATUS_SUCCESS",
            "{tb}"
        );
        assert_eq!(
            status(&tb, part, "t001-data.source=D"),
            "STATUS_FAILURE",
            "{tb}"
        );
    }
    assert_eq!(
        tb["tab"]["t001-data.source=D/tensorboard"]["hparams"],
        json!({"data.source": "D"}),
        "{tb}"
    );

    // The data there, the trial runs again and succeeds: its session says so.
    std::fs::create_dir_all(cwd.join("D")).unwrap();
    let x: Vec<f32> = (0..400).map(|i| (i % 7) as f32).collect();
    let y: Vec<i64> = (0..100).map(|i| i % 3).collect();
    crate::common::npy_f32(&cwd.join("D/x.npy"), &[100, 4], &x);
    crate::common::npy_i64(&cwd.join("D/labels.npy"), &y);
    deeptrain(&cwd, &["sweep", "s.json"]);
    let tb = read_with_tensorboard(&dir);
    for part in ["runs", "tab"] {
        assert_eq!(
            status(&tb, part, "t001-data.source=D"),
            "STATUS_SUCCESS",
            "{tb}"
        );
    }
}
