//! Saving and loading a checkpoint: the default job (digits MLP 64-128-10, AdamW, ~9.6k
//! parameters) and the same job with a ~1M-parameter MLP (64-4096-180-10), the size the
//! performance goal names (a save under 50 ms on the training thread): a save that
//! returns when the checkpoint has landed, and the training thread's share of a
//! background one.

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use deeptrain::checkpoint;
use deeptrain::trainer::Every;
use deeptrain::JobConfig;

fn save_and_load(c: &mut Criterion, label: &str, hidden: Option<&[usize]>) {
    let run_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-checkpoint-{label}"));
    let _ = std::fs::remove_dir_all(&run_dir);
    let mut job = JobConfig::default();
    job.train.run_dir = run_dir.clone();
    job.train.epochs = 1;
    job.train.checkpoint_every = Every::Never;
    job.train.keep_last = 2;
    if let Some(hidden) = hidden {
        job.model
            .args
            .insert("hidden".into(), serde_json::json!(hidden));
    }
    let mut trainer = job.build_trainer().unwrap();
    // One epoch, so the state carries a realistic history.
    trainer.fit().unwrap();

    let mut group = c.benchmark_group(format!("checkpoint_{label}"));
    group.sample_size(20);
    group.bench_function("save (Trainer::save_checkpoint)", |b| {
        b.iter(|| trainer.save_checkpoint().unwrap())
    });
    // What a periodic save costs the training thread: the copy, then the background
    // thread writes (waited for outside the timing).
    group.bench_function(
        "save on the training thread (Trainer::queue_checkpoint)",
        |b| {
            b.iter_custom(|iters| {
                let mut spent = std::time::Duration::ZERO;
                for _ in 0..iters {
                    let started = std::time::Instant::now();
                    trainer.queue_checkpoint().unwrap();
                    spent += started.elapsed();
                    trainer.wait_for_saves().unwrap();
                }
                spent
            })
        },
    );
    let dir = trainer.save_checkpoint().unwrap();
    let bytes: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    println!("checkpoint size: {bytes} bytes in {}", dir.display());
    group.bench_function("load (checkpoint::load)", |b| {
        b.iter(|| checkpoint::load(&dir).unwrap())
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    save_and_load(c, "digits_mlp", None);
    save_and_load(c, "mlp_1m", Some(&[4096, 180]));
}

criterion_group!(group, benches);
criterion_main!(group);
