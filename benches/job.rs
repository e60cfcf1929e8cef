//! The whole-job benchmark: the MNIST MLP job (`examples/configs/mnist.json`: 784-256-10,
//! batch 128, AdamW) and the MNIST CNN job (`examples/configs/mnist_cnn.json`), trained by
//! the `deeptrain` binary exactly as a user runs them (metrics, CSV, TensorBoard, health
//! checks, checkpoints all on), timed by the run's own `train_secs` (`deeptrain inspect
//! --json`), at 1 and 2 threads, in interleaved rounds so that a busy machine shows as
//! spread rather than bias. When Python has `torch` (`DEEPTRAIN_PYTHON`, else `python3`),
//! the same jobs in PyTorch (`benches/peer/mnist_torch.py`) run in the same rounds and the
//! ratio is printed. The table it ends with is the README's performance table.
//!
//! `cargo bench --bench job` (`-- --rounds N --epochs N --cnn-steps N --models mlp,cnn`).
//! Needs `../shared/data/mnist`. Every run is a fresh process: candle sizes its thread
//! pools once per process, so one process cannot measure two thread counts.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn data_dir() -> PathBuf {
    root().join("../shared/data/mnist")
}

/// One of the two jobs.
#[derive(Clone, Copy)]
enum Job {
    Mlp,
    Cnn,
}

impl Job {
    fn name(self) -> &'static str {
        match self {
            Job::Mlp => "mlp",
            Job::Cnn => "cnn",
        }
    }

    fn config(self) -> PathBuf {
        root().join(match self {
            Job::Mlp => "examples/configs/mnist.json",
            Job::Cnn => "examples/configs/mnist_cnn.json",
        })
    }

    fn title(self) -> &'static str {
        match self {
            Job::Mlp => "MNIST MLP 784-256-10",
            Job::Cnn => "MNIST CNN conv16-conv32-dense128",
        }
    }
}

/// How much of the job one run trains.
#[derive(Clone, Copy)]
enum Length {
    Epochs(u64),
    Steps(u64),
}

/// Train samples per second of one run of `job`, from the run's own `train_secs`.
fn deeptrain_rate(job: Job, threads: usize, length: Length, run_dir: &Path) -> f64 {
    let _ = std::fs::remove_dir_all(run_dir);
    let bin = env!("CARGO_BIN_EXE_deeptrain");
    let limit = match length {
        Length::Epochs(e) => format!("train.epochs={e}"),
        Length::Steps(s) => format!("train.max_steps={s}"),
    };
    let status = Command::new(bin)
        .arg("train")
        .arg(job.config())
        .args(["--threads", &threads.to_string(), "--set", &limit])
        .arg("--run-dir")
        .arg(run_dir)
        .env_remove("CANDLE_NUM_THREADS")
        .env_remove("RAYON_NUM_THREADS")
        .current_dir(root())
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run deeptrain");
    assert!(status.success(), "deeptrain train {}: {status}", job.name());
    let out = Command::new(bin)
        .args(["inspect", "--json"])
        .arg(run_dir)
        .output()
        .expect("run deeptrain inspect");
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> f64 {
        let key = format!("\"{name}\":");
        let at = text
            .find(&key)
            .unwrap_or_else(|| panic!("{name} in {text}"))
            + key.len();
        text[at..]
            .split([',', '}'])
            .next()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in {text}"))
    };
    // 60,000 MNIST training images per epoch in batches of 128 (the last one has 96).
    let samples = match length {
        Length::Epochs(e) => e as f64 * 60_000.0,
        Length::Steps(_) => field("global_step") * 128.0,
    };
    samples / field("train_secs")
}

/// The same job in PyTorch, or `None` when `torch` cannot be imported.
fn torch_rate(job: Job, threads: usize, length: Length) -> Option<f64> {
    let python = std::env::var("DEEPTRAIN_PYTHON").unwrap_or_else(|_| "python3".into());
    let (flag, n) = match length {
        Length::Epochs(e) => ("--epochs", e),
        Length::Steps(s) => ("--steps", s),
    };
    let out = Command::new(python)
        .arg(root().join("benches/peer/mnist_torch.py"))
        .args(["--model", job.name(), "--threads", &threads.to_string()])
        .args([flag, &n.to_string()])
        .arg("--data")
        .arg(data_dir())
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

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn num(name: &str, default: u64) -> u64 {
    arg(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn spread(xs: &[f64]) -> String {
    if xs.is_empty() {
        return "-".into();
    }
    let lo = xs.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    format!("{:.1}-{:.1}k", lo / 1e3, hi / 1e3)
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let avx512 = std::arch::is_x86_feature_detected!("avx512f");
    format!(
        "{cpu}, {cores} cores, AVX-512 {}",
        if avx512 { "yes" } else { "no" }
    )
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs nothing here.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    if !data_dir().is_dir() {
        println!("skipped: ../shared/data/mnist is not there");
        return;
    }
    let rounds = num("--rounds", 3);
    let epochs = num("--epochs", 1);
    let cnn_steps = num("--cnn-steps", 100);
    let models = arg("--models").unwrap_or_else(|| "mlp,cnn".into());
    let jobs: Vec<Job> = models
        .split(',')
        .map(|m| match m {
            "mlp" => Job::Mlp,
            "cnn" => Job::Cnn,
            other => panic!("--models: unknown model `{other}` (mlp, cnn)"),
        })
        .collect();
    let run_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-job");
    let start_load = load();
    // results[job][threads - 1] = (ours, torch)
    let mut results = vec![[(Vec::new(), Vec::new()), (Vec::new(), Vec::new())]; jobs.len()];
    for round in 1..=rounds {
        for (j, &job) in jobs.iter().enumerate() {
            let length = match job {
                Job::Mlp => Length::Epochs(epochs),
                Job::Cnn => Length::Steps(cnn_steps),
            };
            for threads in [1usize, 2] {
                let ours = deeptrain_rate(job, threads, length, &run_dir);
                let torch = torch_rate(job, threads, length);
                let slot = &mut results[j][threads - 1];
                slot.0.push(ours);
                slot.1.extend(torch);
                println!(
                    "round {round} {} threads {threads}: deeptrain {:.1}k samples/s{}",
                    job.name(),
                    ours / 1e3,
                    torch.map_or(String::new(), |t| format!(", PyTorch {:.1}k", t / 1e3))
                );
            }
        }
    }
    println!(
        "\n{}; load {start_load} at the start, {} at the end; {rounds} rounds; MLP {epochs} \
         epoch(s), CNN {cnn_steps} steps; batch 128, AdamW; train samples/s (low-high)\n",
        machine(),
        load()
    );
    println!("| job | 1 thread | 2 threads |\n|---|---|---|");
    for (j, job) in jobs.iter().enumerate() {
        let [one, two] = &results[j];
        if !one.1.is_empty() {
            println!(
                "| {} PyTorch | {} | {} |",
                job.title(),
                spread(&one.1),
                spread(&two.1)
            );
        }
        println!(
            "| {} deeptrain | {} | {} |",
            job.title(),
            spread(&one.0),
            spread(&two.0)
        );
        if !one.1.is_empty() && !two.1.is_empty() {
            println!(
                "| {} ratio (medians) | {:.2}x | {:.2}x |",
                job.title(),
                median(&one.0) / median(&one.1),
                median(&two.0) / median(&two.1)
            );
        }
    }
}
