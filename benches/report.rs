//! Rendering the state report of a finished default-sized run (target: well under 0.5 s).

use criterion::{criterion_group, criterion_main, Criterion};
use deeptrain::report::data::{report_data, status_line};
use deeptrain::report::{render_report, render_report_rgb};
use deeptrain::JobConfig;

fn report(c: &mut Criterion) {
    let dir = std::env::temp_dir().join("deeptrain-bench-report");
    let _ = std::fs::remove_dir_all(&dir);
    let mut job = JobConfig::default();
    job.train.run_dir = dir.clone();
    job.logging.progress = false;
    let mut trainer = job.build_trainer().expect("default job builds");
    trainer.fit().expect("default job runs");
    let data = report_data(
        &trainer.state,
        &trainer.run,
        &status_line(&trainer.state, None),
    );
    c.bench_function("report_render_rgb", |b| {
        b.iter(|| render_report_rgb(&data).expect("renders"))
    });
    let out = dir.join("bench.png");
    c.bench_function("report_render_png_file", |b| {
        b.iter(|| render_report(&data, &out).expect("renders"))
    });
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, report);
criterion_main!(benches);
