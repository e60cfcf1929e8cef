//! The PNG state report: size, content, determinism, and that drawing it changes nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::common::{scratch, small_job, state_bytes};
use deeptrain::callbacks::HistogramFigures;
use deeptrain::checkpoint::{RunInfo, SaveReason};
use deeptrain::report::data::{report_data, status_line};
use deeptrain::report::{render_report, render_state_report};
use deeptrain::{Outcome, Stage, Trainer};

/// (width, height, count of non-white pixels, distinct colours) of a PNG file.
fn png_stats(path: &std::path::Path) -> (u32, u32, usize, usize) {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let pixels = &buf[..info.buffer_size()];
    let mut colours = std::collections::HashSet::new();
    let mut ink = 0;
    for p in pixels.chunks(channels) {
        if p[..3] != [255, 255, 255] {
            ink += 1;
        }
        colours.insert(p[..3].to_vec());
    }
    (info.width, info.height, ink, colours.len())
}

#[test]
fn every_checkpoint_and_the_run_dir_get_a_readable_report() {
    let dir = scratch("report-run");
    let mut trainer = small_job(&dir).build_trainer().unwrap();
    assert_eq!(trainer.fit().unwrap(), Outcome::Finished);
    for png in [
        dir.join("report.png"),
        trainer.last_checkpoint().unwrap().join("report.png"),
    ] {
        let (w, h, ink, colours) = png_stats(&png);
        assert!(w >= 1600 && h >= 1000, "{w}x{h}");
        assert!(ink > 50_000, "nearly blank: {ink} non-white pixels");
        assert!(colours > 10, "only {colours} colours");
    }
}

#[test]
fn rendering_is_deterministic_for_a_fixed_state() {
    let dir = scratch("report-determinism");
    let mut trainer = small_job(&dir).build_trainer().unwrap();
    trainer.fit().unwrap();
    let a = dir.join("a.png");
    let b = dir.join("b.png");
    trainer.render_report(&a).unwrap();
    trainer.render_report(&b).unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    // The one-call chain draws exactly what status_line -> report_data -> render_report does.
    let (c, d) = (dir.join("c.png"), dir.join("d.png"));
    let reason = Some(SaveReason::Interrupt);
    render_state_report(&trainer.state, &trainer.run, reason, &c).unwrap();
    let status = status_line(&trainer.state, reason);
    render_report(&report_data(&trainer.state, &trainer.run, &status), &d).unwrap();
    assert_eq!(std::fs::read(&c).unwrap(), std::fs::read(&d).unwrap());
}

#[test]
fn reports_drawn_mid_run_change_nothing() {
    let reference = scratch("report-mid-ref");
    let mut t = small_job(&reference).build_trainer().unwrap();
    t.fit().unwrap();
    let expected = state_bytes(&t.state);

    let dir = scratch("report-mid");
    let mut t = small_job(&dir).build_trainer().unwrap();
    let drawn = Arc::new(AtomicUsize::new(0));
    let (out, n) = (dir.join("mid.png"), drawn.clone());
    t.on(Stage::TrainIterEnd, move |v| {
        if v.state.batches_fit % 5 == 0 {
            let data = report_data(v.state, &RunInfo::default(), "running");
            render_report(&data, &out)?;
            n.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    });
    t.add_callback(HistogramFigures::new(dir.join("histograms"), 20))
        .unwrap();
    t.fit().unwrap();
    assert_eq!(drawn.load(Ordering::SeqCst), 9);
    assert!(state_bytes(&t.state) == expected);
    // Histogram figures at steps 20 and 40, weights and gradients.
    for f in [
        "weights-step20.png",
        "grads-step20.png",
        "weights-step40.png",
        "grads-step40.png",
    ] {
        let (w, h, ink, _) = png_stats(&dir.join("histograms").join(f));
        assert!(w > 0 && h > 0 && ink > 1000, "{f}");
    }
}

#[test]
fn a_run_interrupted_in_its_first_batch_still_renders() {
    let dir = scratch("report-empty");
    let mut trainer = small_job(&dir).build_trainer().unwrap();
    let handle = trainer.interrupt_handle();
    trainer.on(Stage::TrainEpochBegin, move |_| {
        handle.interrupt();
        Ok(())
    });
    assert!(matches!(
        trainer.fit().unwrap(),
        Outcome::Interrupted { .. }
    ));
    assert!(trainer.state.train_history.is_empty());
    let (w, h, ink, _) = png_stats(&dir.join("report.png"));
    assert!(w >= 1600 && h >= 1000 && ink > 10_000);
    // And after a resume the run finishes as usual.
    assert_eq!(
        Trainer::resume(&dir).unwrap().fit().unwrap(),
        Outcome::Finished
    );
}

#[test]
fn report_command_renders_a_checkpoint() {
    let dir = scratch("report-cli");
    small_job(&dir).build_trainer().unwrap().fit().unwrap();
    let out = dir.join("from-cli.png");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_deeptrain"))
        .args(["report", dir.to_str().unwrap(), "-o", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&status.stdout).trim(),
        out.display().to_string()
    );
    let (w, h, ink, _) = png_stats(&out);
    assert!(w >= 1600 && h >= 1000 && ink > 50_000);
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_deeptrain"))
        .args(["report", dir.join("nope").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("nope") && !err.contains("panicked"), "{err}");
}
