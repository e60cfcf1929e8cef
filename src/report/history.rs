//! The metric history figure: loss-like and bounded metrics in stacked panels,
//! epoch boundaries, the best key metric and the legend column.

use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::HPos;

use super::axes::{decimate, finite, finite_segments, min_max, padded, plottable, polyline};
use super::layout::PANEL_TITLE_FONT;
use super::numbers::{fmt_count, fmt_value, tick_formatter};
use super::style::{ACCENT, INK, MUTED, PALETTE};
use super::text::{fit_text, font, one_line, text_at, text_width};
use super::{Area, BestMarker, ReportData, ReportError, Series};

fn is_loss_like(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("loss") || n.contains("mse") || n.contains("mae")
}

/// `val_loss` and `loss` share a color, so the pair reads as one quantity.
fn base_name(name: &str) -> &str {
    for p in ["val_", "val/", "val.", "valid_", "validation_"] {
        if let Some(rest) = name.strip_prefix(p) {
            return rest;
        }
    }
    name
}

struct Curve<'a> {
    series: &'a Series,
    color: RGBColor,
    val: bool,
}

const LEGEND_W: i32 = 230;

/// The history figure in `area`: title, one panel per series group, legend column.
pub(super) fn draw_history(area: &Area, data: &ReportData) -> Result<(), ReportError> {
    let (w, h) = area.dim_in_pixel();
    let (w, h) = (w as i32, h as i32);
    text_at(
        area,
        "History",
        &font(PANEL_TITLE_FONT, ACCENT),
        4,
        20,
        HPos::Left,
    )?;
    text_at(
        area,
        "thin = train (per batch), thick + dots = validation, x = batches fit",
        &font(16.0, MUTED),
        110,
        20,
        HPos::Left,
    )?;

    let mut bases: Vec<&str> = Vec::new();
    let mut curves = Vec::new();
    for (val, list) in [(false, &data.train_series), (true, &data.val_series)] {
        for s in list {
            let b = base_name(&s.name);
            let idx = match bases.iter().position(|x| *x == b) {
                Some(i) => i,
                None => {
                    bases.push(b);
                    bases.len() - 1
                }
            };
            curves.push(Curve {
                series: s,
                color: PALETTE[idx % PALETTE.len()],
                val,
            });
        }
    }
    let (loss, other): (Vec<&Curve>, Vec<&Curve>) =
        curves.iter().partition(|c| is_loss_like(&c.series.name));

    // Shared x range over every series, epoch end and the best marker.
    let xs = curves
        .iter()
        .flat_map(|c| c.series.points.iter().filter(|p| finite(p)).map(|p| p.0))
        .chain(data.epoch_ends.iter().copied())
        .chain(
            data.best
                .iter()
                .filter(|b| finite(&(b.x, b.y)))
                .map(|b| b.x),
        );
    let x_range = match min_max(xs) {
        Some((lo, hi)) => {
            let lo = lo.min(0.0);
            let (_, phi) = padded(lo, hi, 0.02);
            (lo, phi)
        }
        None => (0.0, 1.0),
    };

    let plot = area
        .clone()
        .shrink((0, 30), ((w - LEGEND_W) as u32, (h - 30) as u32));
    let legend = area.clone().shrink(
        (w - LEGEND_W + 10, 30),
        ((LEGEND_W - 10) as u32, (h - 30) as u32),
    );

    let groups: Vec<(&str, Vec<&Curve>)> = match (loss.is_empty(), other.is_empty()) {
        (false, false) => vec![("loss", loss), ("metric", other)],
        (false, true) => vec![("loss", loss)],
        (true, false) => vec![("metric", other)],
        (true, true) => vec![("value", Vec::new())],
    };
    let n = groups.len();
    let plots = plot.split_evenly((n, 1));
    let legends = legend.split_evenly((n, 1));
    let best_group = data.best.as_ref().map(|b| {
        if n == 2 && !is_loss_like(&b.metric) {
            1
        } else {
            0
        }
    });
    for (i, (ylabel, group)) in groups.iter().enumerate() {
        let best = if best_group == Some(i) {
            data.best.as_ref().filter(|b| finite(&(b.x, b.y)))
        } else {
            None
        };
        draw_history_panel(
            &plots[i],
            group,
            ylabel,
            x_range,
            &data.epoch_ends,
            best,
            i + 1 == n,
            i == 0,
        )?;
        draw_legend(
            &legends[i],
            group,
            i == 0 && !data.epoch_ends.is_empty(),
            best.is_some(),
        )?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn draw_history_panel(
    area: &Area,
    curves: &[&Curve],
    ylabel: &str,
    x_range: (f64, f64),
    epoch_ends: &[f64],
    best: Option<&BestMarker>,
    show_x: bool,
    label_epochs: bool,
) -> Result<(), ReportError> {
    let ys = curves
        .iter()
        .flat_map(|c| c.series.points.iter().filter(|p| finite(p)).map(|p| p.1))
        .chain(best.iter().filter(|b| finite(&(b.x, b.y))).map(|b| b.y));
    let has_data = curves.iter().any(|c| c.series.points.iter().any(finite));
    let y_range = match min_max(ys) {
        Some((lo, hi)) => padded(lo, hi, 0.06),
        None => (0.0, 1.0),
    };
    let xfmt = tick_formatter(x_range.0, x_range.1);
    let yfmt = tick_formatter(y_range.0, y_range.1);
    let blank = |_: &f64| String::new();

    let mut chart = ChartBuilder::on(area)
        .margin_top(6)
        .margin_right(12)
        .x_label_area_size(if show_x { 48 } else { 4 })
        .y_label_area_size(84)
        .build_cartesian_2d(x_range.0..x_range.1, y_range.0..y_range.1)?;
    let mut mesh = chart.configure_mesh();
    mesh.light_line_style(RGBColor(242, 243, 246))
        .bold_line_style(RGBColor(222, 225, 230))
        .axis_style(RGBColor(120, 125, 135))
        .x_labels(10)
        .y_labels(6)
        .label_style(font(16.0, INK))
        .axis_desc_style(font(16.0, MUTED))
        .y_desc(ylabel)
        .y_label_formatter(&yfmt);
    if show_x {
        mesh.x_desc("batches fit").x_label_formatter(&xfmt);
    } else {
        mesh.x_label_formatter(&blank);
    }
    mesh.draw()?;

    // Epoch boundaries first so curves draw over them.
    let (px0, _) = chart.backend_coord(&(x_range.0, y_range.1));
    let mut last_label_px: Option<i32> = None;
    for (e, &x) in epoch_ends.iter().enumerate() {
        if !plottable(x) || x < x_range.0 || x > x_range.1 {
            continue;
        }
        chart.draw_series(std::iter::once(DashedPathElement::new(
            vec![(x, y_range.0), (x, y_range.1)],
            6,
            5,
            RGBColor(150, 150, 150).stroke_width(1),
        )))?;
        let (px, py) = chart.backend_coord(&(x, y_range.1));
        if label_epochs {
            // Right-aligned against its line; skipped where it would collide with the
            // previous label or spill over the y axis.
            let label = format!("epoch {}", e + 1);
            let style = font(14.0, MUTED);
            let tw = text_width(&style, &label)?;
            let free = last_label_px.is_none_or(|l| px - l > tw + 16) && px - px0 > tw + 8;
            if free {
                let (ax, ay) = area.get_base_pixel();
                let (lx, base) = (px - ax - 4, py - ay + 16);
                area.draw(&Rectangle::new(
                    [(lx - tw - 2, base - 12), (lx + 1, base + 4)],
                    WHITE.filled(),
                ))?;
                text_at(area, &label, &style, lx, base, HPos::Right)?;
                last_label_px = Some(px);
            }
        }
    }

    let buckets = area.dim_in_pixel().0 as usize;
    for val_pass in [false, true] {
        for c in curves.iter().filter(|c| c.val == val_pass) {
            let width = if c.val { 3 } else { 1 };
            let segs = finite_segments(&c.series.points);
            for seg in segs {
                if seg.len() > 1 {
                    polyline(&mut chart, decimate(seg, buckets), c.color, width)?;
                }
                // Markers: the only thing visible for single points, and what tells
                // sparse validation points apart from per-batch noise (skipped when
                // too dense to mean anything).
                if seg.len() == 1 || (c.val && seg.len() <= 300) {
                    let r = if c.val { 4 } else { 3 };
                    chart.draw_series(seg.iter().map(|&p| Circle::new(p, r, c.color.filled())))?;
                }
            }
        }
    }

    if !has_data {
        let (cx, cy) =
            chart.backend_coord(&((x_range.0 + x_range.1) / 2.0, (y_range.0 + y_range.1) / 2.0));
        let root = area.clone();
        let (ax, ay) = root.get_base_pixel();
        text_at(
            &root,
            "no data yet",
            &font(22.0, MUTED),
            cx - ax,
            cy - ay + 8,
            HPos::Center,
        )?;
    }

    if let Some(b) = best.filter(|b| finite(&(b.x, b.y))) {
        let (bx, by) = chart.backend_coord(&(b.x, b.y));
        let root = area.clone();
        let (ax, ay) = root.get_base_pixel();
        let (bx, by) = (bx - ax, by - ay);
        root.draw(&Polygon::new(
            star(bx, by, 11.0, 4.5),
            RGBColor(255, 196, 0).filled(),
        ))?;
        let mut outline = star(bx, by, 11.0, 4.5);
        outline.push(outline[0]);
        root.draw(&PathElement::new(
            outline,
            RGBColor(120, 80, 0).stroke_width(1),
        ))?;

        let label = format!(
            "best {} {} @ {}",
            one_line(&b.metric),
            fmt_value(b.y),
            fmt_count(b.x)
        );
        let style = font(16.0, INK);
        let (area_w, area_h) = root.dim_in_pixel();
        let label = fit_text(&style, &label, area_w as i32 - 120)?;
        let tw = text_width(&style, &label)?;
        // Prefer right of the star; flip left near the right edge, and below near the top.
        let mut lx = bx + 14;
        if lx + tw + 6 > area_w as i32 - 12 {
            lx = bx - 14 - tw;
        }
        lx = lx.max(90);
        let mut base = by - 12;
        if base - 16 < 8 {
            base = by + 26;
        }
        base = base.min(area_h as i32 - 10);
        root.draw(&Rectangle::new(
            [(lx - 4, base - 17), (lx + tw + 4, base + 6)],
            RGBAColor(255, 255, 255, 0.85).filled(),
        ))?;
        text_at(&root, &label, &style, lx, base, HPos::Left)?;
    }
    Ok(())
}

/// Five-pointed star polygon around (cx, cy): distinct from any series marker.
fn star(cx: i32, cy: i32, outer: f64, inner: f64) -> Vec<(i32, i32)> {
    (0..10)
        .map(|i| {
            let r = if i % 2 == 0 { outer } else { inner };
            let a = -std::f64::consts::FRAC_PI_2 + i as f64 * std::f64::consts::PI / 5.0;
            (
                cx + (r * a.cos()).round() as i32,
                cy + (r * a.sin()).round() as i32,
            )
        })
        .collect()
}

fn draw_legend(
    area: &Area,
    curves: &[&Curve],
    epoch_entry: bool,
    best_entry: bool,
) -> Result<(), ReportError> {
    let style = font(16.0, INK);
    let (w, h) = area.dim_in_pixel();
    let (w, h) = (w as i32, h as i32);
    let row_h = 21;
    let mut entries: Vec<(String, Option<&Curve>)> = curves
        .iter()
        .map(|c| (one_line(&c.series.name), Some(*c)))
        .collect();
    if epoch_entry {
        entries.push(("epoch end".into(), None));
    }
    if best_entry {
        entries.push(("best".into(), None));
    }
    let capacity = ((h - 16) / row_h).max(1) as usize;
    let shown = if entries.len() > capacity {
        capacity - 1
    } else {
        entries.len()
    };
    for (i, (name, curve)) in entries.iter().take(shown).enumerate() {
        let base = 16 + i as i32 * row_h;
        let mid = base - 5;
        match curve {
            Some(c) => {
                let sw = if c.val { 3 } else { 1 };
                area.draw(&PathElement::new(
                    vec![(0, mid), (30, mid)],
                    c.color.stroke_width(sw),
                ))?;
                if c.val {
                    area.draw(&Circle::new((15, mid), 4, c.color.filled()))?;
                }
            }
            None if name == "best" => {
                area.draw(&Polygon::new(
                    star(15, mid, 8.0, 3.3),
                    RGBColor(255, 196, 0).filled(),
                ))?;
            }
            None => {
                area.draw(&DashedPathElement::new(
                    vec![(0, mid), (30, mid)],
                    6,
                    5,
                    RGBColor(150, 150, 150).stroke_width(1),
                ))?;
            }
        }
        let label = fit_text(&style, name, w - 40)?;
        text_at(area, &label, &style, 38, base, HPos::Left)?;
    }
    if shown < entries.len() {
        let base = 16 + shown as i32 * row_h;
        let more = format!("… {} more", entries.len() - shown);
        text_at(area, &more, &font(16.0, MUTED), 38, base, HPos::Left)?;
    }
    Ok(())
}
