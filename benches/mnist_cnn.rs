//! The accuracy benchmark of the MNIST CNN example job (`examples/configs/mnist_cnn.json`):
//! the promise is ">= 98.5% validation accuracy in <= 3 epochs". It trains the job
//! exactly as a user would (the `deeptrain` binary, `train CONFIG --run-dir DIR`), then
//! reads the run's own record, the newest checkpoint's state: validation accuracy at each
//! epoch end and `train_secs`. It prints a table and exits with status 1 when no epoch
//! within the first 3 reached 98.5%.
//!
//! `cargo bench --bench mnist_cnn` (minutes on 2 CPU cores; not part of `cargo test`).
//! Needs `../shared/data/mnist`; without it the benchmark says so and passes.

use std::path::{Path, PathBuf};
use std::process::Command;

use deeptrain::checkpoint;

/// The goal: this validation accuracy ...
const GOAL: f64 = 0.985;
/// ... within this many epochs.
const EPOCHS: usize = 3;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs nothing here.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    if !root().join("../shared/data/mnist").is_dir() {
        println!("skipped: ../shared/data/mnist is not there");
        return;
    }
    let config = "examples/configs/mnist_cnn.json";
    let run_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-mnist-cnn");
    let _ = std::fs::remove_dir_all(&run_dir);
    let status = Command::new(env!("CARGO_BIN_EXE_deeptrain"))
        .current_dir(root())
        .args([
            "train",
            config,
            "--set",
            "logging.progress=false",
            "--run-dir",
        ])
        .arg(&run_dir)
        .status()
        .expect("starting deeptrain");
    assert!(status.success(), "deeptrain train {config}: {status}");

    let state = checkpoint::load_latest(&run_dir)
        .unwrap_or_else(|e| panic!("{}: {e}", run_dir.display()))
        .meta
        .state;
    let val = &state.val_history;
    let acc = &val.metrics["val_accuracy"];
    // The validations at epoch ends: `epoch_ends` holds `batches_fit` at each.
    let per_epoch: Vec<f64> = state
        .epoch_ends
        .iter()
        .filter_map(|end| {
            let row = val.at_batches_fit.iter().rposition(|at| at == end)?;
            Some(acc[row])
        })
        .collect();
    println!("\n{config}: {}", run_dir.display());
    println!("| epoch | val_accuracy |\n|---|---|");
    for (i, a) in per_epoch.iter().enumerate() {
        println!("| {} | {:.2}% |", i + 1, 100.0 * a);
    }
    println!(
        "train_secs {:.0} (validation {:.0} s, whole run {:.0} s)",
        state.time.train_secs, state.time.validation_secs, state.time.total_secs
    );
    let best = per_epoch
        .iter()
        .take(EPOCHS)
        .cloned()
        .fold(f64::NAN, f64::max);
    if per_epoch.is_empty() || best.is_nan() || best < GOAL {
        println!(
            "FAILED: best val_accuracy in the first {EPOCHS} epochs {:.2}% < {:.1}%",
            100.0 * best,
            100.0 * GOAL
        );
        std::process::exit(1);
    }
    println!(
        "ok: {:.2}% >= {:.1}% within {EPOCHS} epochs",
        100.0 * best,
        100.0 * GOAL
    );
}
