//! Grid of small weight / gradient histograms, one per layer.
//!
//! Separate from the train-state report because the number of layers is open-ended;
//! the figure grows downwards instead of squeezing the report. Shares the font,
//! text helpers, error type and atomic PNG write with [`crate::report`].

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::HPos;

use super::axes::padded;
use super::numbers::{fmt_value, tick_formatter};
use super::png::write_png;
use super::style::{ACCENT, ALERT, INK, MUTED, RULE};
use super::text::{fit_text, font, one_line, text_at, text_width};
use super::{draw_rgb, Area, ReportError};

const WIDTH: u32 = 1800;
const TITLE_H: i32 = 76;
const CELL_H: i32 = 300;
const MARGIN: i32 = 16;
/// Past this the figure gets unreadably tall; the rest are counted in the title.
const MAX_LAYERS: usize = 64;
/// Bin counts beyond this are below one pixel per bar at any cell width.
const MAX_BINS: usize = 512;
const BAR: RGBColor = RGBColor(31, 119, 180);

/// Renders one histogram per `(layer name, values)` into a PNG grid at `path`.
///
/// Non-finite values are skipped and counted in each subplot's caption, so a NaN
/// gradient is visible instead of silently breaking the bins. `bins` is clamped to
/// 1..=512. Written atomically (temp file, sync, rename), like [`crate::report::render_report`].
pub fn render_histograms(
    title: &str,
    layers: &[(String, Vec<f32>)],
    bins: usize,
    path: &Path,
) -> Result<(), ReportError> {
    let shown = &layers[..layers.len().min(MAX_LAYERS)];
    let cols = grid_cols(shown.len());
    let rows = shown.len().div_ceil(cols).max(1);
    let height = (TITLE_H + rows as i32 * CELL_H + MARGIN) as u32;
    let bins = bins.clamp(1, MAX_BINS);
    let size = (WIDTH, height);
    let pixels = draw_rgb(size, |root| {
        draw_grid(root, title, shown, layers.len(), bins, cols)
    })?;
    write_png(path, size, &pixels)
}

/// Wide cells read better than tall ones for value distributions: aim for about
/// two columns per row of height, at most four.
fn grid_cols(n: usize) -> usize {
    let c = ((2 * n) as f64).sqrt().ceil() as usize;
    c.clamp(1, 4).min(n.max(1))
}

/// Bin counts and summary of one layer's finite values.
struct LayerStats {
    counts: Vec<u64>,
    lo: f64,
    hi: f64,
    finite: usize,
    non_finite: usize,
    mean: f64,
    std: f64,
}

fn layer_stats(values: &[f32], bins: usize) -> LayerStats {
    let mut finite = 0usize;
    let (mut min, mut max, mut sum) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
    for v in values.iter().filter(|v| v.is_finite()) {
        let v = *v as f64;
        finite += 1;
        min = min.min(v);
        max = max.max(v);
        sum += v;
    }
    let non_finite = values.len() - finite;
    if finite == 0 {
        return LayerStats {
            counts: vec![0; bins],
            lo: -1.0,
            hi: 1.0,
            finite,
            non_finite,
            mean: f64::NAN,
            std: f64::NAN,
        };
    }
    let mean = sum / finite as f64;
    let var = values
        .iter()
        .filter(|v| v.is_finite())
        .map(|v| (*v as f64 - mean).powi(2))
        .sum::<f64>()
        / finite as f64;
    // A constant tensor (e.g. zero-initialised bias) still gets a visible bar.
    let (lo, hi) = if max > min {
        (min, max)
    } else {
        padded(min, max, 0.0)
    };
    let mut counts = vec![0u64; bins];
    let scale = bins as f64 / (hi - lo);
    for v in values.iter().filter(|v| v.is_finite()) {
        let i = ((*v as f64 - lo) * scale) as usize;
        counts[i.min(bins - 1)] += 1;
    }
    LayerStats {
        counts,
        lo,
        hi,
        finite,
        non_finite,
        mean,
        std: var.sqrt(),
    }
}

/// `1234567` -> `1,234,567`: counts are easier to compare at a glance.
fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn draw_grid(
    root: &Area,
    title: &str,
    layers: &[(String, Vec<f32>)],
    total_layers: usize,
    bins: usize,
    cols: usize,
) -> Result<(), ReportError> {
    root.fill(&WHITE)?;
    let (w, h) = root.dim_in_pixel();
    let (w, h) = (w as i32, h as i32);
    let title_style = font(30.0, INK);
    let title = if title.trim().is_empty() {
        "histograms"
    } else {
        title
    };
    let title = fit_text(&title_style, &one_line(title), w - 2 * MARGIN)?;
    text_at(root, &title, &title_style, MARGIN, 40, HPos::Left)?;
    let mut sub = format!("{} layers, {bins} bins; x = value, y = count", layers.len());
    if total_layers > layers.len() {
        sub = format!(
            "showing first {} of {total_layers} layers, {bins} bins; x = value, y = count",
            layers.len()
        );
    }
    text_at(root, &sub, &font(16.0, MUTED), MARGIN, 64, HPos::Left)?;
    root.draw(&PathElement::new(
        vec![(MARGIN, TITLE_H - 4), (w - MARGIN, TITLE_H - 4)],
        RULE.stroke_width(2),
    ))?;

    if layers.is_empty() {
        text_at(
            root,
            "no layers",
            &font(22.0, MUTED),
            w / 2,
            TITLE_H + CELL_H / 2,
            HPos::Center,
        )?;
        return Ok(());
    }
    let grid = root.clone().shrink(
        (MARGIN, TITLE_H),
        ((w - 2 * MARGIN) as u32, (h - TITLE_H - MARGIN) as u32),
    );
    let rows = layers.len().div_ceil(cols);
    let cells = grid.split_evenly((rows, cols));
    for ((name, values), cell) in layers.iter().zip(&cells) {
        draw_cell(cell, name, values, bins)?;
    }
    Ok(())
}

fn draw_cell(area: &Area, name: &str, values: &[f32], bins: usize) -> Result<(), ReportError> {
    let (w, h) = area.dim_in_pixel();
    let (w, h) = (w as i32, h as i32);
    let stats = layer_stats(values, bins);

    let name_style = font(18.0, ACCENT);
    let name = fit_text(&name_style, &one_line(name), w - 16)?;
    text_at(area, &name, &name_style, 8, 24, HPos::Left)?;

    let caption_base = h - 12;
    let chart_area = area
        .clone()
        .shrink((0, 32), (w as u32, (h - 32 - 30).max(10) as u32));
    let (x_lo, x_hi) = {
        let pad = (stats.hi - stats.lo) * 0.03;
        (stats.lo - pad, stats.hi + pad)
    };
    let max_count = stats.counts.iter().copied().max().unwrap_or(0);
    let y_hi = if max_count == 0 {
        1.0
    } else {
        max_count as f64 * 1.08
    };
    let xfmt = tick_formatter(x_lo, x_hi);
    let yfmt = tick_formatter(0.0, y_hi);
    let mut chart = ChartBuilder::on(&chart_area)
        .margin_right(16)
        .margin_top(4)
        .x_label_area_size(28)
        .y_label_area_size(62)
        .build_cartesian_2d(x_lo..x_hi, 0.0..y_hi)?;
    chart
        .configure_mesh()
        .light_line_style(RGBColor(244, 245, 248))
        .bold_line_style(RGBColor(225, 228, 233))
        .axis_style(RGBColor(120, 125, 135))
        .x_labels(5)
        .y_labels(4)
        .label_style(font(14.0, INK))
        .x_label_formatter(&xfmt)
        .y_label_formatter(&yfmt)
        .draw()?;

    let bin_w = (stats.hi - stats.lo) / bins as f64;
    chart.draw_series(
        stats
            .counts
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(i, &c)| {
                let x0 = stats.lo + i as f64 * bin_w;
                Rectangle::new([(x0, 0.0), (x0 + bin_w, c as f64)], BAR.filled())
            }),
    )?;

    if stats.finite == 0 {
        let msg = if values.is_empty() {
            "no values"
        } else {
            "no finite values"
        };
        let (px, py) = chart.plotting_area().get_pixel_range();
        let (ax, ay) = area.get_base_pixel();
        let (cx, cy) = ((px.start + px.end) / 2 - ax, (py.start + py.end) / 2 - ay);
        text_at(area, msg, &font(18.0, MUTED), cx, cy + 6, HPos::Center)?;
    }

    // Caption: the non-finite count is right-aligned and red when non-zero, so it is
    // never the part that gets truncated.
    let nf_style = font(14.0, if stats.non_finite > 0 { ALERT } else { MUTED });
    let nf = format!("non-finite {}", thousands(stats.non_finite));
    let nf_w = text_width(&nf_style, &nf)?;
    text_at(area, &nf, &nf_style, w - 16, caption_base, HPos::Right)?;
    let cap_style = font(14.0, INK);
    let caption = if stats.finite > 0 {
        format!(
            "n {}   mean {}   std {}",
            thousands(stats.finite),
            fmt_value(stats.mean),
            fmt_value(stats.std)
        )
    } else {
        format!("n {}", thousands(stats.finite))
    };
    let caption = fit_text(&cap_style, &caption, w - 16 - nf_w - 20 - 8)?;
    text_at(area, &caption, &cap_style, 8, caption_base, HPos::Left)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::png_stats;

    fn layers() -> Vec<(String, Vec<f32>)> {
        let mut out = Vec::new();
        let mut seed = 12345u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) as f64 / (1u64 << 31) as f64) as f32
        };
        for (i, n) in [
            (0, 784 * 128),
            (1, 128),
            (2, 128 * 64),
            (3, 64),
            (4, 640),
            (5, 10),
        ] {
            let kind = if i % 2 == 0 { "weight" } else { "bias" };
            let scale = 1.0 / (n as f32).sqrt().max(1.0);
            // Sum of uniforms: roughly normal, like an initialised / trained weight.
            let mut v: Vec<f32> = (0..n)
                .map(|_| (next() + next() + next() - 1.5) * scale)
                .collect();
            if i == 3 {
                v[0] = f32::NAN;
                v[1] = f32::INFINITY;
            }
            if i == 5 {
                v.iter_mut().for_each(|x| *x = 0.0);
            }
            out.push((format!("layers.{}.{kind}", i / 2), v));
        }
        out.push((
            "layers.3.weight.all_nan_gradient_with_a_long_name_for_truncation".into(),
            vec![f32::NAN; 5],
        ));
        out.push(("empty".into(), Vec::new()));
        out
    }

    #[test]
    fn histograms_render_and_decode() {
        let dir = std::env::temp_dir().join(format!("h_report_hist_{}", std::process::id()));
        let p = dir.join("hist.png");
        let t0 = std::time::Instant::now();
        render_histograms("weights @ epoch 3 (mnist-mlp)", &layers(), 40, &p).expect("render");
        eprintln!(
            "render_histograms took {:.1} ms",
            t0.elapsed().as_secs_f64() * 1e3
        );
        let (w, h, non_white, colors) = png_stats(&p);
        assert_eq!(w, WIDTH);
        assert!(h > 400, "{h}");
        assert!(non_white > 20_000, "{non_white}");
        assert!(colors > 3);
        let again = dir.join("hist2.png");
        render_histograms("weights @ epoch 3 (mnist-mlp)", &layers(), 40, &again).expect("render");
        assert_eq!(
            std::fs::read(&p).expect("read"),
            std::fs::read(&again).expect("read")
        );
        if let Ok(out) = std::env::var("REPORT_SAMPLE_DIR") {
            std::fs::copy(&p, Path::new(&out).join("sample_hist.png")).expect("copy sample");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn degenerate_inputs_render() {
        let dir = std::env::temp_dir().join(format!("h_report_hist_deg_{}", std::process::id()));
        render_histograms("", &[], 0, &dir.join("none.png")).expect("no layers");
        let many: Vec<_> = (0..70)
            .map(|i| (format!("l{i}"), vec![i as f32; 3]))
            .collect();
        render_histograms("many", &many, 10_000, &dir.join("many.png")).expect("many layers");
        let (_, h, _, _) = png_stats(&dir.join("many.png"));
        assert_eq!(h as i32, TITLE_H + 16 * CELL_H + MARGIN);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn stats_skip_non_finite() {
        let s = layer_stats(&[1.0, 2.0, f32::NAN, 3.0, f32::NEG_INFINITY], 3);
        assert_eq!((s.finite, s.non_finite), (3, 2));
        assert_eq!(s.counts, vec![1, 1, 1]);
        assert!((s.mean - 2.0).abs() < 1e-12);
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(grid_cols(1), 1);
        assert_eq!(grid_cols(8), 4);
    }
}
