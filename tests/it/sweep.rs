//! `deeptrain sweep`: the plan's order and its refusal of a changed file, a parallel
//! sweep interrupted twice by real SIGINTs ending bit-for-bit like an uninterrupted one,
//! one trial per process (`--trial`, `SLURM_ARRAY_TASK_ID`) under the run lock, the
//! Slurm script and the summary files; successive-halving pruning (promoted trials end
//! bitwise like unpruned ones).

use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::common::{scratch, tensor_bytes, Proc};

/// A 6-trial grid on the digits job, a fraction of a second per trial.
const GRID: &str = r#"{
  "grid": { "optimizer.lr": [0.003, 0.001, 0.0003], "data.batch_size": [64, 128] },
  "set": { "train.epochs": 2, "model.hidden": [32], "logging.progress": false,
           "train.validate_every": {"batches": 10} },
  "metric": "val_accuracy"
}"#;

const TRIALS: [&str; 6] = [
    "t000-optimizer.lr=0.003-data.batch_size=64",
    "t001-optimizer.lr=0.003-data.batch_size=128",
    "t002-optimizer.lr=0.001-data.batch_size=64",
    "t003-optimizer.lr=0.001-data.batch_size=128",
    "t004-optimizer.lr=0.0003-data.batch_size=64",
    "t005-optimizer.lr=0.0003-data.batch_size=128",
];

fn deeptrain(cwd: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_deeptrain"));
    c.current_dir(cwd)
        .args(args)
        .env_remove("DEEPTRAIN_TEST_PAUSE")
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("CANDLE_NUM_THREADS");
    c
}

/// Runs to the end: (exit code, stdout, stderr).
fn run(cwd: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = deeptrain(cwd, args).stdin(Stdio::null()).output().unwrap();
    let s = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (out.status.code(), s(out.stdout), s(out.stderr))
}

/// `deeptrain sweep s.json --jobs 2` with every trial process pausing at its 5th
/// iteration; once `pauses` trials have paused, one SIGINT to the sweep process.
fn interrupted_sweep(cwd: &Path, pauses: usize) -> (Option<i32>, String) {
    let mut cmd = deeptrain(cwd, &["sweep", "s.json", "--jobs", "2"]);
    cmd.env("DEEPTRAIN_TEST_PAUSE", "iter:5");
    let mut p = Proc::start(cmd);
    for _ in 0..pauses {
        p.wait_for_line("paused at iter:5");
    }
    p.signal("-INT");
    let ran = p.finish();
    let text = format!("{}\n{}", ran.stdout, ran.stderr);
    // No trial paused again after the interrupt.
    let seen = ran
        .stdout
        .lines()
        .filter(|l| l.starts_with("paused at iter:5"))
        .count();
    assert_eq!(seen, pauses, "{text}");
    (ran.code, text)
}

/// summary.csv without the columns that legitimately differ (times, directories).
fn summary_numbers(sweep_dir: &Path) -> Vec<Vec<String>> {
    let mut r = csv::Reader::from_path(sweep_dir.join("sweep/summary.csv")).unwrap();
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    let keep: Vec<usize> = (0..header.len())
        .filter(|&i| !matches!(header[i].as_str(), "train_secs" | "wall_secs" | "run_dir"))
        .collect();
    let mut rows = vec![keep.iter().map(|&i| header[i].clone()).collect::<Vec<_>>()];
    for rec in r.records() {
        let rec = rec.unwrap();
        rows.push(keep.iter().map(|&i| rec[i].to_string()).collect());
    }
    rows
}

#[test]
fn an_interrupted_parallel_sweep_ends_bit_for_bit_like_an_uninterrupted_one() {
    let reference = scratch("sweep_reference");
    std::fs::write(reference.join("s.json"), GRID).unwrap();
    let (code, out, err) = run(&reference, &["sweep", "s.json", "--jobs", "2"]);
    assert_eq!(code, Some(0), "{out}\n{err}");

    let cwd = scratch("sweep_interrupted");
    std::fs::write(cwd.join("s.json"), GRID).unwrap();
    // Two interruptions, each while both trial processes are inside a trial.
    for _ in 0..2 {
        let (code, text) = interrupted_sweep(&cwd, 2);
        assert_eq!(code, Some(130), "{text}");
        assert!(text.contains("continue with the same command"), "{text}");
    }
    let partial = summary_numbers(&cwd.join("runs/sweep-s"));
    assert_eq!(partial[1][4], "partial", "{partial:?}");
    assert_eq!(partial[3][4], "pending", "{partial:?}");
    let (code, out, err) = run(&cwd, &["sweep", "s.json", "--jobs", "2"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    // Nothing is trained again: a finished sweep rerun starts no trial.
    let (code, again, _) = run(&cwd, &["sweep", "s.json", "--jobs", "2"]);
    assert_eq!(code, Some(0));
    assert!(again.contains("6 trials, 0 to run"), "{again}");

    let want = summary_numbers(&reference.join("runs/sweep-s"));
    let got = summary_numbers(&cwd.join("runs/sweep-s"));
    assert_eq!(got, want);
    assert_eq!(want.len(), 7);
    assert!(
        want[1..]
            .iter()
            .all(|r| r[4] == "finished" && !r[6].is_empty()),
        "{want:?}"
    );
    for name in TRIALS {
        let a = tensor_bytes(&reference.join("runs/sweep-s").join(name));
        let b = tensor_bytes(&cwd.join("runs/sweep-s").join(name));
        assert!(a == b, "{name}: weights or optimizer state differ");
    }
}

#[test]
fn the_plan_is_stable_a_changed_file_is_refused_and_extend_adds_trials() {
    let cwd = scratch("sweep_plan");
    std::fs::write(cwd.join("s.json"), GRID).unwrap();
    // --slurm plans without training.
    let (code, script, err) = run(
        &cwd,
        &[
            "sweep",
            "s.json",
            "--slurm",
            "--cpus",
            "2",
            "--time",
            "1:00:00",
            "--mem",
            "4G",
            "--max-parallel",
            "3",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    for line in [
        "#SBATCH --array=0-5%3",
        "#SBATCH --cpus-per-task=2",
        "#SBATCH --time=1:00:00",
        "#SBATCH --mem=4G",
        "#SBATCH --signal=B:INT@120",
    ] {
        assert!(
            script.lines().any(|l| l == line),
            "no `{line}` in\n{script}"
        );
    }
    let exec = script.lines().last().unwrap();
    assert!(
        exec.starts_with("exec ") && exec.ends_with(" sweep s.json --threads 2"),
        "{exec}"
    );
    let plan_path = cwd.join("runs/sweep-s/sweep/plan.json");
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan_path).unwrap()).unwrap();
    let names: Vec<&str> = plan["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, TRIALS);
    assert!(!cwd.join("runs/sweep-s").join(TRIALS[0]).exists());

    let changed = GRID.replace("[0.003, 0.001, 0.0003]", "[0.003, 0.001, 0.0003, 0.01]");
    std::fs::write(cwd.join("s.json"), &changed).unwrap();
    let (code, _, err) = run(&cwd, &["sweep", "s.json", "--slurm"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("s.json changed since this sweep was planned (in grid.optimizer.lr)")
            && err.contains("--extend")
            && err.lines().count() == 1,
        "{err}"
    );
    let unchanged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan_path).unwrap()).unwrap();
    assert_eq!(unchanged, plan);
    // A changed `set` would change the planned trials: --extend refuses it.
    let set_changed = changed.replace("\"train.epochs\": 2", "\"train.epochs\": 3");
    std::fs::write(cwd.join("s.json"), &set_changed).unwrap();
    let (code, _, err) = run(&cwd, &["sweep", "s.json", "--slurm", "--extend"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("s.json set.train.epochs: changed, but --extend only adds trials"),
        "{err}"
    );

    std::fs::write(cwd.join("s.json"), &changed).unwrap();
    let (code, script, err) = run(&cwd, &["sweep", "s.json", "--slurm", "--extend"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(script.contains("#SBATCH --array=0-7\n"), "{script}");
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan_path).unwrap()).unwrap();
    let names: Vec<&str> = plan["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names[..6], TRIALS);
    assert_eq!(
        names[6..],
        [
            "t006-optimizer.lr=0.01-data.batch_size=64",
            "t007-optimizer.lr=0.01-data.batch_size=128"
        ]
    );
    // The extended file is now the plan's: no --extend needed any more.
    let (code, _, err) = run(&cwd, &["sweep", "s.json", "--slurm"]);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn two_processes_on_one_trial_one_trains_and_the_other_is_refused_naming_it() {
    let cwd = scratch("sweep_lock");
    std::fs::write(cwd.join("s.json"), GRID).unwrap();
    let mut cmd = deeptrain(&cwd, &["sweep", "s.json", "--trial", "1"]);
    cmd.env("DEEPTRAIN_TEST_PAUSE", "iter:3");
    let mut first = Proc::start(cmd);
    first.wait_for_line("paused at iter:3");
    // The second process, as a Slurm array task of the same trial.
    let out = deeptrain(&cwd, &["sweep", "s.json"])
        .env("SLURM_ARRAY_TASK_ID", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("is being trained by pid {} on host", first.pid())),
        "{err}"
    );
    // The first goes on to the end, unharmed.
    first.release();
    let ran = first.finish();
    assert_eq!(ran.code, Some(0), "{ran}");
    let rows = summary_numbers(&cwd.join("runs/sweep-s"));
    assert_eq!(rows[2][4], "finished", "{rows:?}");
    assert_eq!(rows[2][9], "24", "{rows:?}"); // 2 epochs of 12 batches of 128
    let (code, out, _) = run(&cwd, &["sweep", "s.json", "--trial", "1"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("trial 1 has ended"), "{out}");
    let (code, _, err) = run(&cwd, &["sweep", "s.json", "--trial", "6"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("--trial 6: the sweep s.json has 6 trials (0 to 5)"),
        "{err}"
    );
}

#[test]
fn array_tasks_in_parallel_run_every_trial_and_the_report_is_drawn() {
    let cwd = scratch("sweep_array");
    std::fs::write(cwd.join("s.json"), GRID).unwrap();
    // The plan first (as `--slurm` does before `sbatch`), then one process per task.
    assert_eq!(run(&cwd, &["sweep", "s.json", "--slurm"]).0, Some(0));
    let children: Vec<Child> = (0..6)
        .map(|k| {
            deeptrain(&cwd, &["sweep", "s.json"])
                .env("SLURM_ARRAY_TASK_ID", k.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert_eq!(c.wait().unwrap().code(), Some(0));
    }
    let dir = cwd.join("runs/sweep-s");
    // Each task wrote the summary as it saw it when it ended; the report reads them all.
    std::fs::remove_file(dir.join("sweep/summary.png")).unwrap();
    let (code, out, err) = run(&cwd, &["sweep-report", "runs/sweep-s"]);
    assert_eq!(code, Some(0), "{err}");
    let rows = summary_numbers(&dir);
    assert!(rows[1..].iter().all(|r| r[4] == "finished"), "{rows:?}");
    // The ranked table: the best trial first.
    let first = out.lines().nth(1).unwrap();
    let best = rows[1..]
        .iter()
        .max_by(|a, b| {
            a[6].parse::<f64>()
                .unwrap()
                .total_cmp(&b[6].parse().unwrap())
        })
        .unwrap();
    assert!(first.ends_with(&best[1]), "{out}");

    let decoder = png::Decoder::new(std::fs::File::open(dir.join("sweep/summary.png")).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (1800, 1000));
    let px = &buf[..info.buffer_size()];
    // Not blank: dark text, and the best trial's red curve and row.
    let count = |f: &dyn Fn(&[u8]) -> bool| px.chunks(3).filter(|p| f(p)).count();
    assert!(count(&|p| p[0] < 80 && p[1] < 80 && p[2] < 80) > 2000);
    assert!(count(&|p| p == [214, 39, 40]) > 500);
}

/// A 4-trial digits grid trained for 3 epochs, validated at each epoch's end.
const PLAIN: &str = r#"{
  "grid": { "optimizer.lr": [0.01, 0.003, 0.001, 0.0003] },
  "set": { "train.epochs": 3, "model.hidden": [32], "logging.progress": false,
           "data.batch_size": 128 },
  "metric": "val_accuracy"
}"#;

/// The state of a run directory's newest checkpoint.
fn newest(dir: &Path) -> deeptrain::TrainState {
    deeptrain::checkpoint::load_latest(dir).unwrap().meta.state
}

#[test]
fn successive_halving_promotes_the_best_and_they_end_bitwise_like_unpruned_trials() {
    let reference = scratch("sweep_prune_reference");
    std::fs::write(reference.join("s.json"), PLAIN).unwrap();
    let (code, out, err) = run(&reference, &["sweep", "s.json"]);
    assert_eq!(code, Some(0), "{out}\n{err}");

    // The same trials pruned: rung 1 for all, the best half on to 3 (the last rung
    // replaces the file's train.epochs).
    let cwd = scratch("sweep_prune");
    let pruned = PLAIN.replace("\"train.epochs\": 3", "\"train.epochs\": 9").replace(
        "\"metric\"",
        "\"prune\": {\"name\": \"successive_halving\", \"rungs\": [1, 3], \"keep\": 0.5},\n  \"metric\"",
    );
    std::fs::write(cwd.join("s.json"), &pruned).unwrap();
    let (code, out, err) = run(&cwd, &["sweep", "s.json", "--jobs", "2"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        out.contains("rung 1 epoch(s): 2 of 4 trials promoted by val_accuracy"),
        "{out}"
    );

    let (rdir, pdir) = (reference.join("runs/sweep-s"), cwd.join("runs/sweep-s"));
    let names: Vec<String> = summary_numbers(&rdir)[1..]
        .iter()
        .map(|r| r[1].clone())
        .collect();
    assert_eq!(names.len(), 4);
    // The ranking is the metric's at epoch 1, best first, as the unpruned trials had it.
    let log: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(pdir.join("sweep/prune.json")).unwrap())
            .unwrap();
    let decisions = log["decisions"].as_array().unwrap();
    assert_eq!(decisions.len(), 1);
    let ranked = decisions[0]["ranked"].as_array().unwrap();
    assert_eq!(ranked.len(), 4);
    let at_rung: Vec<f64> = ranked
        .iter()
        .map(|r| r["value"].as_f64().unwrap())
        .collect();
    assert!(at_rung.windows(2).all(|w| w[0] >= w[1]), "{at_rung:?}");
    for r in ranked {
        let k = r["trial"].as_u64().unwrap() as usize;
        let s = newest(&rdir.join(&names[k]));
        assert_eq!(s.val_history.metrics["val_accuracy"].len(), 3);
        assert_eq!(
            r["value"].as_f64().unwrap(),
            s.val_history.metrics["val_accuracy"][0],
            "{r}"
        );
    }
    let promoted: Vec<usize> = decisions[0]["promoted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let mut best: Vec<usize> = ranked[..2]
        .iter()
        .map(|r| r["trial"].as_u64().unwrap() as usize)
        .collect();
    best.sort_unstable();
    assert_eq!(promoted, best);

    let rows = summary_numbers(&pdir);
    let want = summary_numbers(&rdir);
    for (k, name) in names.iter().enumerate() {
        let state = newest(&pdir.join(name));
        if promoted.contains(&k) {
            // Paused at epoch 1, resumed to 3: the unpruned trial's bits and results.
            assert_eq!(state.epoch, 3);
            let a = tensor_bytes(&rdir.join(name));
            let b = tensor_bytes(&pdir.join(name));
            assert!(a == b, "{name}: weights or optimizer state differ");
            assert_eq!(rows[k + 1], want[k + 1], "{name}");
            assert_eq!(rows[k + 1][3], "finished");
        } else {
            // Stopped at the first rung.
            assert_eq!(state.epoch, 1, "{name}");
            assert_eq!(state.global_step, 12, "{name}"); // 1 epoch of 12 batches of 128
            assert_eq!(rows[k + 1][3], "pruned", "{rows:?}");
        }
    }

    // A rerun starts nothing, decides nothing again; a pruned trial alone does nothing.
    let (code, again, err) = run(&cwd, &["sweep", "s.json", "--jobs", "2"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(again.contains("4 trials, 0 to run"), "{again}");
    assert!(!again.contains("promoted"), "{again}");
    let after: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(pdir.join("sweep/prune.json")).unwrap())
            .unwrap();
    assert_eq!(after, log);
    let k = (0..4).find(|k| !promoted.contains(k)).unwrap();
    let (code, out, _) = run(&cwd, &["sweep", "s.json", "--trial", &k.to_string()]);
    assert_eq!(code, Some(0));
    assert!(out.contains(&format!("trial {k} was pruned")), "{out}");
    // Promotion needs one process to see a whole rung: no job array.
    let (code, _, err) = run(&cwd, &["sweep", "s.json", "--slurm"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--slurm: s.json prunes"), "{err}");
}

/// Three trials, one per data source: the embedded digits, `D` and `E` (directories of
/// `.npy` files the test writes; `D` only after the first sweep, so that its trial fails).
const SOURCES: &str = r#"{
  "grid": { "data.source": ["digits", "D", "E"] },
  "set": { "train.epochs": 1, "model.hidden": [16], "logging.progress": false,
           "data.batch_size": 50 },
  "metric": "val_accuracy"
}"#;

const SOURCE_TRIALS: [&str; 3] = [
    "t000-data.source=digits",
    "t001-data.source=D",
    "t002-data.source=E",
];

/// 200 samples of 6 features in 4 classes, as `.npy` files in `dir`.
fn npy_source(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for i in 0..200usize {
        let class = i % 4;
        for j in 0..6 {
            let noise = ((i * 7 + j * 13) % 17) as f32 / 17.0;
            x.push(if j == class { 1.0 + noise } else { noise });
        }
        y.push(class as i64);
    }
    crate::common::npy_f32(&dir.join("x.npy"), &[200, 6], &x);
    crate::common::npy_i64(&dir.join("labels.npy"), &y);
}

/// summary.csv's `status` and `failure` columns, by trial name.
fn statuses(sweep_dir: &Path) -> Vec<(String, String, String)> {
    let mut r = csv::Reader::from_path(sweep_dir.join("sweep/summary.csv")).unwrap();
    let h = r.headers().unwrap().clone();
    // The failure is the last column: the others keep their places.
    assert_eq!(h.get(h.len() - 1), Some("failure"), "{h:?}");
    assert_eq!(h.get(2), Some("data.source"), "{h:?}");
    assert_eq!(h.get(3), Some("status"), "{h:?}");
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            (
                rec[1].to_string(),
                rec[3].to_string(),
                rec[h.len() - 1].to_string(),
            )
        })
        .collect()
}

/// The files in `SWEEP_DIR/sweep/failed/` (none when it does not exist).
fn failure_records(sweep_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(sweep_dir.join("sweep/failed")) {
        Ok(d) => d
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

#[test]
fn a_failed_trial_is_failed_in_the_summary_and_the_report_until_it_runs_again() {
    let cwd = scratch("sweep_failed");
    std::fs::write(cwd.join("s.json"), SOURCES).unwrap();
    npy_source(&cwd.join("E"));
    let dir = cwd.join("runs/sweep-s");
    let (code, out, err) = run(&cwd, &["sweep", "s.json", "--jobs", "2"]);
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(
        err.contains("error: D: No such file or directory")
            && err.contains("error: 1 trial(s) failed: t001-data.source=D\n"),
        "{err}"
    );
    let rows = statuses(&dir);
    let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(names, SOURCE_TRIALS);
    let why = "exit status: 1: D: No such file or directory";
    for (name, status, failure) in &rows {
        match name.as_str() {
            "t001-data.source=D" => {
                assert_eq!(status, "failed", "{rows:?}");
                assert!(failure.starts_with(why), "{rows:?}");
            }
            _ => assert_eq!((status.as_str(), failure.as_str()), ("finished", "")),
        }
    }
    // The record: the exit status and the trial's error.
    assert_eq!(failure_records(&dir), ["t001-data.source=D.json"]);
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("sweep/failed/t001-data.source=D.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(record["trial"], 1, "{record}");
    assert_eq!(record["exit_code"], 1, "{record}");
    assert_eq!(record["signal"], serde_json::Value::Null, "{record}");
    assert!(
        record["error"]
            .as_str()
            .unwrap()
            .starts_with("D: No such file or directory"),
        "{record}"
    );
    // The sweep's table says so too (its rows: `   1  best ...`, the rank right-aligned).
    let row = |out: &str, name: &str| -> String {
        out.lines()
            .find(|l| l.starts_with("   ") && l.ends_with(&format!(" {name}")))
            .unwrap_or_else(|| panic!("no row of {name} in\n{out}"))
            .to_string()
    };
    assert!(row(&out, SOURCE_TRIALS[1]).contains(" failed "), "{out}");
    assert!(
        out.contains(&format!("failed: {}: {why}", SOURCE_TRIALS[1])),
        "{out}"
    );

    // `sweep-report`, from disk: the same summary and table.
    let before = summary_numbers(&dir);
    std::fs::remove_file(dir.join("sweep/summary.csv")).unwrap();
    let (code, report, err) = run(&cwd, &["sweep-report", "runs/sweep-s"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(summary_numbers(&dir), before);
    assert!(
        row(&report, SOURCE_TRIALS[1]).contains(" failed "),
        "{report}"
    );
    for t in [SOURCE_TRIALS[0], SOURCE_TRIALS[2]] {
        assert!(row(&report, t).contains(" finished "), "{report}");
    }
    assert!(
        report.contains(&format!("failed: {}: {why}", SOURCE_TRIALS[1])),
        "{report}"
    );

    // Once its data exists, the same command runs that trial alone, which succeeds: its
    // record is gone and every trial has finished.
    npy_source(&cwd.join("D"));
    let (code, out, err) = run(&cwd, &["sweep", "s.json", "--jobs", "2"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("3 trials, 1 to run"), "{out}");
    assert!(!out.contains("failed"), "{out}");
    assert!(
        failure_records(&dir).is_empty(),
        "{:?}",
        failure_records(&dir)
    );
    let rows = statuses(&dir);
    assert!(
        rows.iter().all(|(_, s, f)| s == "finished" && f.is_empty()),
        "{rows:?}"
    );
}

/// Whether process `pid` runs: it exists and is no zombie (a process that ended and
/// that no one has reaped yet, as the killed sweep's children are where nothing reaps
/// orphans).
#[cfg(target_os = "linux")]
fn running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `PID (COMM) STATE PPID ...`; COMM may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    !rest.starts_with('Z')
}

/// The parent process id of `pid`.
#[cfg(target_os = "linux")]
fn parent_of(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    rest.split(' ').nth(1).unwrap().parse().unwrap()
}

#[cfg(target_os = "linux")]
#[test]
fn a_sigkilled_sweep_takes_its_trials_down_and_the_same_command_finishes_it() {
    let cwd = scratch("sweep_sigkill");
    std::fs::write(cwd.join("s.json"), GRID).unwrap();
    let dir = cwd.join("runs/sweep-s");
    let mut cmd = deeptrain(&cwd, &["sweep", "s.json", "--jobs", "2"]);
    cmd.env("DEEPTRAIN_TEST_PAUSE", "iter:5");
    let mut sweep = Proc::start(cmd);
    sweep.wait_for_line("paused at iter:5");
    sweep.wait_for_line("paused at iter:5");
    // The two trial processes, by the pids their run locks name: the sweep's children.
    let trials: Vec<u32> = TRIALS[..2]
        .iter()
        .map(|t| {
            let lock = std::fs::read_to_string(dir.join(t).join(".lock")).unwrap();
            let holder: serde_json::Value = serde_json::from_str(&lock).unwrap();
            holder["pid"].as_u64().unwrap() as u32
        })
        .collect();
    for &pid in &trials {
        assert!(running(pid), "trial process {pid} is not running");
        assert_eq!(
            parent_of(pid),
            sweep.pid(),
            "{pid} is not the sweep's child"
        );
    }
    sweep.signal("-KILL");
    // Paused, a trial would wait a minute for its stdin (held open here) before going on;
    // with its parent dead, it gets a SIGTERM at once.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while trials.iter().any(|&pid| running(pid)) {
        assert!(
            std::time::Instant::now() < deadline,
            "the trial processes {trials:?} still run 30 s after the sweep was killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let ran = sweep.finish();
    assert_eq!(ran.code, None, "{ran}");
    // Each trial saved where it was paused, on the SIGTERM, and wrote no failure.
    assert_eq!(
        ran.stdout
            .matches("interrupted (mid-train: epoch 1, batch 5 done")
            .count(),
        2,
        "{ran}"
    );
    assert_eq!(ran.stdout.matches("checkpoint saved: ").count(), 2, "{ran}");
    assert!(
        failure_records(&dir).is_empty(),
        "{:?}",
        failure_records(&dir)
    );
    for t in &TRIALS[..2] {
        // The run lock is free.
        drop(deeptrain::trainer::RunLock::acquire(&dir.join(t)).unwrap());
    }
    let (code, _, err) = run(&cwd, &["sweep-report", "runs/sweep-s"]);
    assert_eq!(code, Some(0), "{err}");
    let rows = summary_numbers(&dir);
    for (k, r) in rows[1..].iter().enumerate() {
        let want = if k < 2 {
            ["partial", "5"]
        } else {
            ["pending", "0"]
        };
        assert_eq!([r[4].as_str(), r[9].as_str()], want, "{rows:?}");
    }

    // The same command resumes the two and runs the rest to the end.
    let (code, out, err) = run(&cwd, &["sweep", "s.json", "--jobs", "2"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("6 trials, 6 to run"), "{out}");
    for t in &TRIALS[..2] {
        assert!(
            out.contains(&format!("resuming runs/sweep-s/{t} from ")),
            "{out}"
        );
    }
    let rows = summary_numbers(&dir);
    for r in &rows[1..] {
        // 2 epochs of 23 batches of 64, or of 12 of 128.
        let steps = if r[3] == "64" { "46" } else { "24" };
        assert_eq!(
            [r[4].as_str(), r[9].as_str()],
            ["finished", steps],
            "{rows:?}"
        );
    }
}
