//! Where everything goes on the report canvas: the header band, the left column of
//! tables, the history figure and the two small step charts.

use plotters::prelude::*;
use plotters::style::text_anchor::HPos;

use super::history::draw_history;
use super::step_chart::draw_step_chart;
use super::style::{INK, MUTED, PALETTE, RULE};
use super::tables::draw_left_column;
use super::text::{fit_text, font, one_line, text_at, text_width};
use super::{Area, ReportData, ReportError};

const MARGIN: i32 = 16;
const HEADER_H: i32 = 112;
const LEFT_W: i32 = 560;
/// Body text of the tables and legends.
pub(super) const BODY_FONT: f64 = 16.0;
/// Row pitch of the key/value tables.
pub(super) const LINE_H: i32 = 21;
/// Titles of the table panels and charts.
pub(super) const PANEL_TITLE_FONT: f64 = 22.0;
pub(super) const PANEL_TITLE_H: i32 = 36;
pub(super) const PANEL_PAD: i32 = 10;
pub(super) const PANEL_GAP: i32 = 10;

/// Draws the whole report onto `root` (the full canvas).
pub(super) fn draw_report(root: &Area, data: &ReportData) -> Result<(), ReportError> {
    root.fill(&WHITE)?;
    let (w, h) = root.dim_in_pixel();
    let (w, h) = (w as i32, h as i32);

    draw_header(root, data, w)?;

    let top = HEADER_H + 12;
    let bottom = h - MARGIN;
    draw_left_column(root, data, MARGIN, top, MARGIN + LEFT_W, bottom)?;

    let rx0 = MARGIN + LEFT_W + 20;
    let rx1 = w - MARGIN;
    let hist_bottom = top + ((bottom - top) as f64 * 0.61) as i32;
    let history = root
        .clone()
        .shrink((rx0, top), ((rx1 - rx0) as u32, (hist_bottom - top) as u32));
    draw_history(&history, data)?;

    let small_top = hist_bottom + 14;
    let small_w = (rx1 - rx0 - 20) / 2;
    let lr_area = root.clone().shrink(
        (rx0, small_top),
        (small_w as u32, (bottom - small_top) as u32),
    );
    let gn_area = root.clone().shrink(
        (rx0 + small_w + 20, small_top),
        (small_w as u32, (bottom - small_top) as u32),
    );
    draw_step_chart(
        &lr_area,
        "Learning rate",
        "lr",
        &data.learning_rate,
        PALETTE[4],
    )?;
    draw_step_chart(
        &gn_area,
        "Gradient norm (global L2)",
        "grad norm",
        &data.grad_norm,
        PALETTE[3],
    )?;
    Ok(())
}

/// Title on the first line, header pairs flowed over at most two lines; items
/// that do not fit are truncated rather than overlapping.
fn draw_header(root: &Area, data: &ReportData, w: i32) -> Result<(), ReportError> {
    let title_style = font(32.0, INK);
    let title = if data.title.trim().is_empty() {
        "train-state report".to_string()
    } else {
        one_line(&data.title)
    };
    let title = fit_text(&title_style, &title, w - 2 * MARGIN)?;
    text_at(root, &title, &title_style, MARGIN, 44, HPos::Left)?;

    let key_style = font(18.0, MUTED);
    let val_style = font(18.0, INK);
    let max_x = w - MARGIN;
    let gap = 30;
    let baselines = [78, 102];
    let mut line = 0;
    let mut x = MARGIN;
    for (k, v) in &data.header {
        let key = format!("{}:", one_line(k));
        let val = one_line(v);
        let kw = text_width(&key_style, &key)? + 7;
        let vw = text_width(&val_style, &val)?;
        if x > MARGIN && x + kw + vw > max_x && line + 1 < baselines.len() {
            line += 1;
            x = MARGIN;
        }
        let room = max_x - x;
        if room < kw + 40 {
            break;
        }
        let val = fit_text(&val_style, &val, room - kw)?;
        text_at(root, &key, &key_style, x, baselines[line], HPos::Left)?;
        text_at(root, &val, &val_style, x + kw, baselines[line], HPos::Left)?;
        x += kw + text_width(&val_style, &val)? + gap;
    }
    root.draw(&PathElement::new(
        vec![(MARGIN, HEADER_H), (w - MARGIN, HEADER_H)],
        RULE.stroke_width(2),
    ))?;
    Ok(())
}
