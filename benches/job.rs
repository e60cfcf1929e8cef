//! The whole-job benchmark: the MNIST MLP job (`examples/configs/mnist.json`: 784-256-10,
//! batch 128, AdamW, data in memory-mapped idx files) with everything a real run has on
//! (metrics, CSV, TensorBoard, health checks, checkpoints), timed by the run's own
//! `train_secs`, at 1 and 2 threads, in interleaved rounds so a busy machine shows as
//! spread rather than bias. When Python has `torch`, the same job in PyTorch
//! (`benches/peer/mnist_torch.py`) runs in the same rounds and the ratio is printed.
//!
//! `cargo bench --bench job` (`-- --rounds N --epochs N`). Needs `../shared/data/mnist`.
//!
//! candle's f32 matmul reads `RAYON_NUM_THREADS` on every call, so one process can
//! measure both thread counts; the CLI's `--threads` sets the same variables.

use std::path::{Path, PathBuf};
use std::process::Command;

use deeptrain::{JobConfig, Outcome};

fn set_threads(n: usize) {
    std::env::set_var("CANDLE_NUM_THREADS", n.to_string());
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Train samples per second of one run of the MNIST job.
fn deeptrain_rate(threads: usize, epochs: u64, run_dir: &Path) -> f64 {
    set_threads(threads);
    let _ = std::fs::remove_dir_all(run_dir);
    let mut job = JobConfig::from_file(&root().join("examples/configs/mnist.json")).unwrap();
    job.train.epochs = epochs;
    job.train.run_dir = run_dir.to_path_buf();
    job.logging.progress = false;
    let mut trainer = job.build_trainer().unwrap();
    assert_eq!(trainer.fit().unwrap(), Outcome::Finished);
    // 60,000 MNIST training images per epoch (the last batch of each epoch has 96).
    let samples = epochs as f64 * 60_000.0;
    samples / trainer.state.time.train_secs
}

/// The same job in PyTorch, or `None` when `torch` cannot be imported.
fn torch_rate(threads: usize, epochs: u64) -> Option<f64> {
    let script = root().join("benches/peer/mnist_torch.py");
    let out = Command::new("python3")
        .arg(&script)
        .args([
            "--threads",
            &threads.to_string(),
            "--epochs",
            &epochs.to_string(),
        ])
        .arg("--data")
        .arg(root().join("../shared/data/mnist"))
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("samples_per_sec "))
        .and_then(|v| v.trim().parse().ok())
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn spread(xs: &[f64]) -> String {
    if xs.is_empty() {
        return "-".into();
    }
    let lo = xs.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    format!("{:.1}-{:.1}k", lo / 1e3, hi / 1e3)
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
    let rounds = arg("--rounds", 3);
    let epochs = arg("--epochs", 1);
    let run_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-job");
    let mut ours: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut torch: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for round in 1..=rounds {
        for (i, threads) in [1usize, 2].into_iter().enumerate() {
            let r = deeptrain_rate(threads, epochs, &run_dir);
            ours[i].push(r);
            let t = torch_rate(threads, epochs);
            if let Some(t) = t {
                torch[i].push(t);
            }
            println!(
                "round {round} threads {threads}: deeptrain {:.1}k samples/s{}",
                r / 1e3,
                t.map_or(String::new(), |t| format!(", PyTorch {:.1}k", t / 1e3))
            );
        }
    }
    println!("\nMNIST MLP 784-256-10, batch 128, AdamW, {epochs} epoch(s), {rounds} rounds");
    println!("| | 1 thread | 2 threads |\n|---|---|---|");
    if torch[0].is_empty() {
        println!("| PyTorch | not installed | not installed |");
    } else {
        println!(
            "| PyTorch | {} | {} |",
            spread(&torch[0]),
            spread(&torch[1])
        );
    }
    println!(
        "| deeptrain | {} | {} |",
        spread(&ours[0]),
        spread(&ours[1])
    );
    if !torch[0].is_empty() {
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        println!(
            "| ratio | {:.2}x | {:.2}x |",
            mean(&ours[0]) / mean(&torch[0]),
            mean(&ours[1]) / mean(&torch[1])
        );
    }
}
