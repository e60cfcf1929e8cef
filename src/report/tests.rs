//! Whole-report tests: a realistic fixture rendered to PNG, degenerate inputs, and
//! the `png_stats` helper (also used by `histograms.rs`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::axes::decimate;
use super::{render_report, render_report_rgb, BestMarker, ReportData, Series};

/// Deterministic noise in [-1, 1] so the fixture is reproducible without a rand dep.
fn noise(i: usize) -> f64 {
    let mut z = (i as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

fn kv(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// Three epochs of plausible MLP training, interrupted late in epoch 3.
fn realistic() -> ReportData {
    let per_epoch = 140usize;
    let fit = 3 * per_epoch - 9;
    let mut loss = Vec::new();
    let mut acc = Vec::new();
    for b in 1..=fit {
        let t = b as f64;
        loss.push((t, 0.08 + 2.2 * (-t / 60.0).exp() + 0.06 * noise(b)));
        acc.push((
            t,
            (0.97 - 0.86 * (-t / 55.0).exp() + 0.02 * noise(b + 7777)).min(1.0),
        ));
    }
    let val_x = [70.0, 140.0, 210.0, 280.0, 350.0, 412.0];
    let val_loss: Vec<_> = val_x
        .iter()
        .map(|&x: &f64| (x, 0.11 + 2.0 * (-x / 65.0).exp()))
        .collect();
    let val_acc: Vec<_> = val_x
        .iter()
        .enumerate()
        .map(|(i, &x)| (x, 0.973 - 0.8 * (-x / 50.0).exp() - 0.004 * (5 - i) as f64))
        .collect();
    let val_f1: Vec<_> = val_acc.iter().map(|&(x, y)| (x, y - 0.015)).collect();
    let steps = fit;
    let lr: Vec<_> = (1..=steps)
        .map(|s| {
            let s = s as f64;
            let warm = (s / 40.0).min(1.0);
            let cos = 0.5 * (1.0 + (std::f64::consts::PI * s / steps as f64).cos());
            (s, 1e-5 + 1e-3 * warm * cos)
        })
        .collect();
    let gn: Vec<_> = (1..=steps)
        .map(|s| {
            (
                s as f64,
                0.4 + 6.0 * (-(s as f64) / 30.0).exp() + 0.15 * noise(s + 99).abs(),
            )
        })
        .collect();

    let mut hyper = Vec::new();
    for i in 0..40 {
        let (k, v) = match i {
            0 => ("model.name".to_string(), "mlp".to_string()),
            1 => ("model.hidden".to_string(), "[128, 64]".to_string()),
            2 => ("optimizer.name".to_string(), "adamw".to_string()),
            3 => ("optimizer.lr".to_string(), "0.001".to_string()),
            4 => ("optimizer.weight_decay".to_string(), "0.0001".to_string()),
            5 => (
                "data.train_files".to_string(),
                (0..20)
                    .map(|j| format!("/data/mnist/train_{j:03}.npy"))
                    .collect::<Vec<_>>()
                    .join(",")[..200]
                    .to_string(),
            ),
            9 => (
                "callbacks.checkpoint.path_template_with_a_really_long_key_name".to_string(),
                "x".repeat(200),
            ),
            _ => (
                format!("section{}.param_{i}", i % 5),
                format!("value {i} {}", "abc ".repeat(i % 7)),
            ),
        };
        hyper.push((k, v));
    }
    let done: Vec<String> = (0..131).map(|i| format!("train_{i:03}.npy")).collect();
    let remaining: Vec<String> = (131..140).map(|i| format!("train_{i:03}.npy")).collect();

    ReportData {
        title: "mnist-mlp-adamw-2024".into(),
        header: kv(&[
            ("model", "mlp 784-128-64-10 (109,386 params)".into()),
            ("device", "cpu".into()),
            ("seed", "7".into()),
            (
                "status",
                "interrupted at epoch 3, batch 131/140 (train)".into(),
            ),
            ("wall time", "12.3 s".into()),
            ("checkpoint", "runs/mnist-mlp/ckpt/epoch_002.bin".into()),
        ]),
        hyperparameters: hyper,
        train_state: kv(&[
            ("epoch", "3".into()),
            ("val_epoch", "2".into()),
            ("global_step", fit.to_string()),
            ("batches_fit", fit.to_string()),
            ("batches_this_epoch", "131 / 140".into()),
            ("key_metric", "val_accuracy (max)".into()),
            ("best", "0.973 @ batch 412 (epoch 3)".into()),
            ("last val_loss", "0.1285".into()),
            ("patience left", "3".into()),
        ]),
        data_state: kv(&[
            ("sets done (this epoch)", done.join(", ")),
            ("sets remaining", remaining.join(", ")),
            ("batch_size", "256".into()),
            ("shuffle", "true".into()),
            ("loader seed", "7".into()),
        ]),
        train_series: vec![
            Series {
                name: "loss".into(),
                points: loss,
            },
            Series {
                name: "accuracy".into(),
                points: acc,
            },
        ],
        val_series: vec![
            Series {
                name: "val_loss".into(),
                points: val_loss,
            },
            Series {
                name: "val_accuracy".into(),
                points: val_acc,
            },
            Series {
                name: "val_f1".into(),
                points: val_f1,
            },
        ],
        epoch_ends: vec![140.0, 280.0],
        best: Some(BestMarker {
            metric: "val_accuracy".into(),
            x: 412.0,
            y: 0.973,
        }),
        learning_rate: lr,
        grad_norm: gn,
    }
}

/// Decodes a PNG and returns (width, height, non-white pixels, distinct colors).
pub(crate) fn png_stats(path: &Path) -> (u32, u32, usize, usize) {
    let file = std::fs::File::open(path).expect("open png");
    let decoder = ::png::Decoder::new(std::io::BufReader::new(file));
    let mut reader = decoder.read_info().expect("png header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("png frame");
    assert_eq!(info.color_type, ::png::ColorType::Rgb);
    let px = &buf[..info.buffer_size()];
    let mut colors = std::collections::BTreeSet::new();
    let mut non_white = 0;
    for p in px.chunks_exact(3) {
        if p != [255, 255, 255] {
            non_white += 1;
        }
        if colors.len() < 10_000 {
            colors.insert((p[0], p[1], p[2]));
        }
    }
    (info.width, info.height, non_white, colors.len())
}

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("h_report_{name}_{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

#[test]
fn realistic_report_renders_decodes_and_is_deterministic() {
    let data = realistic();
    let dir = tmp_dir("realistic");
    let (a, b) = (dir.join("a.png"), dir.join("b.png"));
    let t0 = Instant::now();
    render_report(&data, &a).expect("render a");
    let dt = t0.elapsed();
    eprintln!(
        "render_report (realistic) took {:.1} ms",
        dt.as_secs_f64() * 1e3
    );
    render_report(&data, &b).expect("render b");
    let (w, h, non_white, colors) = png_stats(&a);
    assert!(w >= 1600 && h >= 1000, "{w}x{h}");
    assert!(non_white > 50_000, "only {non_white} non-white pixels");
    assert!(colors > 3, "only {colors} colors");
    let (ba, bb) = (
        std::fs::read(&a).expect("read a"),
        std::fs::read(&b).expect("read b"),
    );
    assert_eq!(ba, bb, "rendering is not deterministic");
    // No temp files left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .expect("list")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
    if let Ok(out) = std::env::var("REPORT_SAMPLE_DIR") {
        std::fs::copy(&a, Path::new(&out).join("sample_report.png")).expect("copy sample");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rgb_buffer_matches_dimensions() {
    let data = realistic();
    let _ = render_report_rgb(&data).expect("warm-up");
    let t0 = Instant::now();
    let (w, h, px) = render_report_rgb(&data).expect("rgb");
    eprintln!(
        "render_report_rgb (realistic) took {:.1} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(px.len(), (w * h * 3) as usize);
    assert!(px.iter().any(|&b| b != 255));
}

#[test]
fn long_history_is_decimated() {
    let mut d = realistic();
    let n = 200_000;
    d.train_series[0].points = (1..=n)
        .map(|i| (i as f64, 1.0 / (1.0 + i as f64 * 1e-3) + 0.05 * noise(i)))
        .collect();
    d.train_series[1].points = (1..=n)
        .map(|i| (i as f64, 0.9 + 0.05 * noise(i + n)))
        .collect();
    d.learning_rate = (1..=n).map(|i| (i as f64, 1e-3)).collect();
    d.grad_norm = (1..=n)
        .map(|i| (i as f64, 1.0 + noise(i + 3 * n).abs()))
        .collect();
    d.epoch_ends = (1..100).map(|e| (e * 2000) as f64).collect();
    d.best = None;
    let t0 = Instant::now();
    let (_, _, px) = render_report_rgb(&d).expect("render long history");
    eprintln!(
        "render_report_rgb (4 x 200k points, 99 epochs) took {:.1} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );
    assert!(px.iter().any(|&b| b != 255));
    assert!(decimate(&d.grad_norm, 1000).len() <= 2000);
    if let Ok(out) = std::env::var("REPORT_SAMPLE_DIR") {
        render_report(&d, &Path::new(&out).join("sample_long.png")).expect("sample");
    }
}

#[test]
fn wide_range_uses_log_axis() {
    let mut d = realistic();
    d.learning_rate = (1..=400)
        .map(|s| (s as f64, 1e-2 * (-(s as f64) / 40.0).exp()))
        .collect();
    d.grad_norm.push((401.0, 5e3));
    let (_, _, px) = render_report_rgb(&d).expect("log axes");
    assert!(px.iter().any(|&b| b != 255));
    if let Ok(out) = std::env::var("REPORT_SAMPLE_DIR") {
        render_report(&d, &Path::new(&out).join("sample_log.png")).expect("sample");
    }
}

#[test]
fn empty_report_renders() {
    let dir = tmp_dir("empty");
    let p = dir.join("empty.png");
    render_report(&ReportData::default(), &p).expect("render empty");
    let (w, h, non_white, _) = png_stats(&p);
    assert!(w >= 1600 && h >= 1000);
    assert!(non_white > 5_000, "axes and labels must still be drawn");
    if let Ok(out) = std::env::var("REPORT_SAMPLE_DIR") {
        std::fs::copy(&p, Path::new(&out).join("sample_empty.png")).expect("copy sample");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn single_points_and_non_finite_values_render() {
    let mut d = realistic();
    d.train_series[0].points = vec![(1.0, 2.3)];
    d.train_series[1].points = vec![
        (1.0, f64::NAN),
        (2.0, 0.5),
        (3.0, f64::INFINITY),
        (4.0, 0.6),
        (5.0, 0.7),
    ];
    d.val_series = vec![Series {
        name: "val_loss".into(),
        points: vec![(f64::NAN, f64::NAN)],
    }];
    d.learning_rate = vec![(1.0, 1e-3)];
    d.grad_norm = vec![
        (1.0, f64::NAN),
        (2.0, f64::NEG_INFINITY),
        (3.0, 1e308),
        (4.0, -1e308),
        (5.0, 2.0),
    ];
    d.epoch_ends = vec![f64::NAN, 3.0];
    d.best = Some(BestMarker {
        metric: "val_accuracy".into(),
        x: f64::NAN,
        y: 1.0,
    });
    let (_, _, px) = render_report_rgb(&d).expect("render with NaN");
    assert!(px.iter().any(|&b| b != 255));
    if let Ok(out) = std::env::var("REPORT_SAMPLE_DIR") {
        render_report(&d, &Path::new(&out).join("sample_nan.png")).expect("sample");
    }
}

#[test]
fn write_error_carries_path() {
    let dir = tmp_dir("err");
    let blocker = dir.join("file");
    std::fs::write(&blocker, b"x").expect("write");
    let target = blocker.join("report.png");
    let err = render_report(&ReportData::default(), &target).expect_err("must fail");
    assert!(err.to_string().contains("file"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
