//! The comparison figure of several runs (a sweep's `summary.png`): one metric's
//! validation curves of every run on one chart, the best run highlighted, and a ranked
//! table, in the state report's style (font, colors, atomic PNG write).
//!
//! Plain data in, like [`super::ReportData`]: the sweep module fills it from its trials.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::HPos;

use super::axes::{finite, finite_segments, min_max, padded, polyline};
use super::numbers::tick_formatter;
use super::style::{ACCENT, INK, KEY_INK, MUTED, PALETTE, PANEL_BG, RULE};
use super::text::{fit_text, font, one_line, text_at, text_width};
use super::{Area, ReportError};

/// Comparison figure canvas size in pixels.
pub const COMPARISON_SIZE: (u32, u32) = (1800, 1000);

/// One run's curve and its row of the ranked table.
#[derive(Debug, Clone, Default)]
pub struct RunLine {
    /// The run's name (legend and table).
    pub name: String,
    /// `(x, value)` points of the metric; NaN leaves a gap.
    pub points: Vec<(f64, f64)>,
    /// The table cells after the rank and the name (as many as `Comparison::columns`).
    pub cells: Vec<String>,
}

/// Everything the comparison figure shows.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    /// The figure's title.
    pub title: String,
    /// A line of facts under the title.
    pub subtitle: String,
    /// The metric's name (y axis).
    pub metric: String,
    /// The x axis's name.
    pub x_label: String,
    /// The runs, ranked best first (the first one is highlighted when `highlight_first`).
    pub runs: Vec<RunLine>,
    /// Whether the first run is the best one (false when no run has a value yet).
    pub highlight_first: bool,
    /// Names of the table columns after rank and name.
    pub columns: Vec<String>,
}

const MARGIN: i32 = 24;
const HEADER_H: i32 = 96;
const TABLE_W: i32 = 760;
const ROW_H: i32 = 24;
/// The highlighted (best) run's color: the palette's red, kept for it alone.
const BEST: RGBColor = RGBColor(214, 39, 40);

/// The color of the run at `rank` (the best one red, the others from the palette
/// without red, so the best stands out).
fn color(rank: usize, highlight_first: bool) -> RGBColor {
    if rank == 0 && highlight_first {
        return BEST;
    }
    let others: Vec<RGBColor> = PALETTE
        .iter()
        .copied()
        .filter(|c| *c != PALETTE[3])
        .collect();
    others[rank % others.len()]
}

/// Renders `data` and writes it as a PNG at `path` (atomically, like the state report).
pub fn render_comparison(data: &Comparison, path: &Path) -> Result<(), ReportError> {
    let pixels = super::draw_rgb(COMPARISON_SIZE, |root| draw(root, data))?;
    super::png::write_png(path, COMPARISON_SIZE, &pixels)
}

fn draw(root: &Area, data: &Comparison) -> Result<(), ReportError> {
    root.fill(&WHITE)?;
    let (w, h) = root.dim_in_pixel();
    let (w, h) = (w as i32, h as i32);
    let title_style = font(32.0, INK);
    let title = fit_text(&title_style, &one_line(&data.title), w - 2 * MARGIN)?;
    text_at(root, &title, &title_style, MARGIN, 44, HPos::Left)?;
    let sub_style = font(18.0, MUTED);
    let sub = fit_text(&sub_style, &one_line(&data.subtitle), w - 2 * MARGIN)?;
    text_at(root, &sub, &sub_style, MARGIN, 78, HPos::Left)?;
    root.draw(&PathElement::new(
        vec![(MARGIN, HEADER_H), (w - MARGIN, HEADER_H)],
        RULE.stroke_width(2),
    ))?;
    let top = HEADER_H + 12;
    let bottom = h - MARGIN;
    let chart_x1 = w - MARGIN - TABLE_W - 20;
    let chart = root.clone().shrink(
        (MARGIN, top),
        ((chart_x1 - MARGIN) as u32, (bottom - top) as u32),
    );
    draw_chart(&chart, data)?;
    draw_table(root, data, w - MARGIN - TABLE_W, top, w - MARGIN, bottom)
}

fn draw_chart(area: &Area, data: &Comparison) -> Result<(), ReportError> {
    text_at(
        area,
        &format!("Validation {}", one_line(&data.metric)),
        &font(22.0, ACCENT),
        4,
        20,
        HPos::Left,
    )?;
    let (w, h) = area.dim_in_pixel();
    let plot = area.clone().shrink((0, 30), (w, h.saturating_sub(30)));
    let pts = || {
        data.runs
            .iter()
            .flat_map(|r| r.points.iter().filter(|p| finite(p)))
    };
    let x_range = match min_max(pts().map(|p| p.0)) {
        Some((lo, hi)) => {
            let lo = lo.min(0.0);
            (lo, padded(lo, hi, 0.02).1)
        }
        None => (0.0, 1.0),
    };
    let y_range = match min_max(pts().map(|p| p.1)) {
        Some((lo, hi)) => padded(lo, hi, 0.06),
        None => (0.0, 1.0),
    };
    let xfmt = tick_formatter(x_range.0, x_range.1);
    let yfmt = tick_formatter(y_range.0, y_range.1);
    let mut chart = ChartBuilder::on(&plot)
        .margin_top(6)
        .margin_right(12)
        .x_label_area_size(48)
        .y_label_area_size(84)
        .build_cartesian_2d(x_range.0..x_range.1, y_range.0..y_range.1)?;
    chart
        .configure_mesh()
        .light_line_style(RGBColor(242, 243, 246))
        .bold_line_style(RGBColor(222, 225, 230))
        .axis_style(RGBColor(120, 125, 135))
        .x_labels(10)
        .y_labels(8)
        .label_style(font(16.0, INK))
        .axis_desc_style(font(16.0, MUTED))
        .y_desc(one_line(&data.metric))
        .x_desc(one_line(&data.x_label))
        .x_label_formatter(&xfmt)
        .y_label_formatter(&yfmt)
        .draw()?;
    // The best run last, so that it is drawn over the others.
    for (rank, run) in data.runs.iter().enumerate().rev() {
        let best = rank == 0 && data.highlight_first;
        let c = color(rank, data.highlight_first);
        for seg in finite_segments(&run.points) {
            if seg.len() > 1 {
                polyline(&mut chart, seg.to_vec(), c, if best { 4 } else { 2 })?;
            }
            let r = if best { 5 } else { 3 };
            chart.draw_series(seg.iter().map(|&p| Circle::new(p, r, c.filled())))?;
        }
    }
    if !pts().any(|_| true) {
        text_at(
            &plot,
            "no validation values yet",
            &font(22.0, MUTED),
            w as i32 / 2,
            h as i32 / 2,
            HPos::Center,
        )?;
    }
    Ok(())
}

fn draw_table(
    root: &Area,
    data: &Comparison,
    x0: i32,
    y0: i32,
    x1: i32,
    y1: i32,
) -> Result<(), ReportError> {
    root.draw(&Rectangle::new([(x0, y0), (x1, y1)], PANEL_BG.filled()))?;
    root.draw(&Rectangle::new([(x0, y0), (x1, y1)], RULE.stroke_width(1)))?;
    text_at(
        root,
        "Ranked",
        &font(22.0, ACCENT),
        x0 + 12,
        y0 + 25,
        HPos::Left,
    )?;
    let body = font(15.0, INK);
    let head = font(15.0, KEY_INK);
    // Columns from the right: each value column as wide as its widest cell.
    let mut widths = Vec::new();
    for (i, c) in data.columns.iter().enumerate() {
        let mut wmax = text_width(&head, c)?;
        for r in &data.runs {
            if let Some(cell) = r.cells.get(i) {
                wmax = wmax.max(text_width(&body, cell)?);
            }
        }
        widths.push(wmax.min(140));
    }
    let gap = 14;
    let mut rights = Vec::new();
    let mut x = x1 - 12;
    for w in widths.iter().rev() {
        rights.push(x);
        x -= w + gap;
    }
    rights.reverse();
    let name_x = x0 + 12 + 28 + 22;
    let name_w = (x - name_x).max(40);
    let mut y = y0 + 56;
    text_at(root, "#", &head, x0 + 12, y, HPos::Left)?;
    text_at(root, "trial", &head, name_x, y, HPos::Left)?;
    for (c, &r) in data.columns.iter().zip(&rights) {
        text_at(root, c, &head, r, y, HPos::Right)?;
    }
    root.draw(&PathElement::new(
        vec![(x0 + 8, y + 7), (x1 - 8, y + 7)],
        RULE.stroke_width(1),
    ))?;
    let room = ((y1 - y - 12) / ROW_H).max(0) as usize;
    let shown = data.runs.len().min(room);
    for (rank, run) in data.runs.iter().take(shown).enumerate() {
        y += ROW_H;
        let best = rank == 0 && data.highlight_first;
        if best {
            root.draw(&Rectangle::new(
                [(x0 + 4, y - 17), (x1 - 4, y + 6)],
                RGBColor(253, 236, 236).filled(),
            ))?;
        }
        let c = color(rank, data.highlight_first);
        root.draw(&Rectangle::new(
            [(x0 + 40, y - 11), (x0 + 54, y + 1)],
            c.filled(),
        ))?;
        let style = if best { font(15.0, BEST) } else { body.clone() };
        text_at(
            root,
            &format!("{}", rank + 1),
            &style,
            x0 + 12,
            y,
            HPos::Left,
        )?;
        let name = fit_text(&style, &one_line(&run.name), name_w)?;
        text_at(root, &name, &style, name_x, y, HPos::Left)?;
        for (cell, (&r, &cw)) in run.cells.iter().zip(rights.iter().zip(&widths)) {
            let cell = fit_text(&style, &one_line(cell), cw)?;
            text_at(root, &cell, &style, r, y, HPos::Right)?;
        }
    }
    if shown < data.runs.len() {
        let more = format!(
            "... and {} more (summary.csv has all)",
            data.runs.len() - shown
        );
        text_at(
            root,
            &more,
            &font(15.0, MUTED),
            name_x,
            y + ROW_H,
            HPos::Left,
        )?;
    }
    Ok(())
}
