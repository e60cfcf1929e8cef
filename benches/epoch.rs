//! One epoch of the default job (digits MLP 64-128-10, 45 train batches of 32 and one
//! validation pass, plus the final checkpoint save) with 1 and 2 candle threads.
//!
//! candle's f32 matmul reads `RAYON_NUM_THREADS` on every call (`CANDLE_NUM_THREADS` only
//! sizes its quantized-kernel pool, once); the CLI's `--threads` sets both, and so do we.

use std::path::Path;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use deeptrain::trainer::Every;
use deeptrain::{JobConfig, Outcome};

fn set_threads(n: usize) {
    std::env::set_var("CANDLE_NUM_THREADS", n.to_string());
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
}

fn one_epoch(c: &mut Criterion) {
    let run_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-epoch");
    let mut job = JobConfig::default();
    job.train.epochs = 1;
    job.train.checkpoint_every = Every::Never;
    job.train.keep_last = 1;
    job.train.run_dir = run_dir.clone();

    let mut group = c.benchmark_group("epoch_default_digits");
    group.sample_size(10);
    for threads in [1, 2] {
        group.bench_function(format!("threads={threads}"), |b| {
            set_threads(threads);
            b.iter_batched(
                || {
                    let _ = std::fs::remove_dir_all(&run_dir);
                    job.build_trainer().unwrap()
                },
                |mut trainer| assert_eq!(trainer.fit().unwrap(), Outcome::Finished),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, one_epoch);
criterion_main!(benches);
