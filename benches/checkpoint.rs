//! Saving and loading a checkpoint of the default job (digits MLP 64-128-10, AdamW).

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use deeptrain::checkpoint;
use deeptrain::trainer::Every;
use deeptrain::JobConfig;

fn save_and_load(c: &mut Criterion) {
    let run_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-checkpoint");
    let _ = std::fs::remove_dir_all(&run_dir);
    let mut job = JobConfig::default();
    job.train.run_dir = run_dir.clone();
    job.train.epochs = 1;
    job.train.checkpoint_every = Every::Never;
    job.train.keep_last = 2;
    let mut trainer = job.build_trainer().unwrap();
    // One epoch, so the state carries a realistic history.
    trainer.fit().unwrap();

    let mut group = c.benchmark_group("checkpoint_digits_mlp");
    group.bench_function("save (Trainer::save_checkpoint)", |b| {
        b.iter(|| trainer.save_checkpoint().unwrap())
    });
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

criterion_group!(benches, save_and_load);
criterion_main!(benches);
