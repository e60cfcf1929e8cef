//! The key/value panels of the left column (hyperparameters, train state, data loader).

use plotters::prelude::*;
use plotters::style::text_anchor::HPos;

use super::layout::{BODY_FONT, LINE_H, PANEL_GAP, PANEL_PAD, PANEL_TITLE_FONT, PANEL_TITLE_H};
use super::style::{ACCENT, INK, KEY_INK, MUTED, PANEL_BG, RULE};
use super::text::{fit_text, font, one_line, text_at, text_width};
use super::{Area, ReportData, ReportError};

/// Splits the available text lines between panels: panels that need less than an
/// equal share get all they need, the rest is shared (water filling), so the short
/// train / data panels are never truncated because of a 40-entry config.
fn allocate_lines(needs: &[usize], total: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..needs.len()).collect();
    order.sort_by_key(|&i| (needs[i], i));
    let mut out = vec![0; needs.len()];
    let mut left = total;
    for (k, &i) in order.iter().enumerate() {
        let share = left / (needs.len() - k);
        out[i] = needs[i].min(share);
        left -= out[i];
    }
    out
}

/// Hyperparameters, train state and data loader, stacked in the box `(x0, y0)..(x1, y1)`.
pub(super) fn draw_left_column(
    root: &Area,
    data: &ReportData,
    x0: i32,
    y0: i32,
    x1: i32,
    y1: i32,
) -> Result<(), ReportError> {
    let panels: [(&str, &[(String, String)]); 3] = [
        ("Hyperparameters", &data.hyperparameters),
        ("Train state", &data.train_state),
        ("Data loader", &data.data_state),
    ];
    let overhead = PANEL_TITLE_H + PANEL_PAD;
    let avail = (y1 - y0) - 2 * PANEL_GAP - 3 * overhead;
    let total_lines = (avail.max(0) / LINE_H) as usize;
    let needs: Vec<usize> = panels.iter().map(|(_, l)| l.len().max(1)).collect();
    let alloc = allocate_lines(&needs, total_lines);

    let mut y = y0;
    for (i, ((title, lines), &n)) in panels.iter().zip(&alloc).enumerate() {
        // The last panel takes the leftover height so the column ends flush.
        let h = if i + 1 == panels.len() {
            y1 - y
        } else {
            overhead + n as i32 * LINE_H
        };
        draw_text_panel(root, title, lines, n, x0, y, x1, y + h)?;
        y += h + PANEL_GAP;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn draw_text_panel(
    root: &Area,
    title: &str,
    lines: &[(String, String)],
    capacity: usize,
    x0: i32,
    y0: i32,
    x1: i32,
    y1: i32,
) -> Result<(), ReportError> {
    root.draw(&Rectangle::new([(x0, y0), (x1, y1)], PANEL_BG.filled()))?;
    root.draw(&Rectangle::new([(x0, y0), (x1, y1)], RULE.stroke_width(1)))?;
    let title_style = font(PANEL_TITLE_FONT, ACCENT);
    text_at(root, title, &title_style, x0 + 12, y0 + 25, HPos::Left)?;
    if !lines.is_empty() {
        let count = format!("{}", lines.len());
        text_at(
            root,
            &count,
            &font(16.0, MUTED),
            x1 - 12,
            y0 + 25,
            HPos::Right,
        )?;
    }

    let key_style = font(BODY_FONT, KEY_INK);
    let val_style = font(BODY_FONT, INK);
    let inner_x = x0 + 12;
    let inner_w = (x1 - x0) - 24;
    let first_baseline = y0 + PANEL_TITLE_H + 15;

    if lines.is_empty() {
        return text_at(
            root,
            "(none)",
            &font(BODY_FONT, MUTED),
            inner_x,
            first_baseline,
            HPos::Left,
        );
    }
    if capacity == 0 {
        return Ok(());
    }
    let shown = if lines.len() > capacity {
        capacity - 1
    } else {
        lines.len()
    };

    // Values start at a common tab stop (tabular look) unless a key is longer.
    let mut keys = Vec::with_capacity(shown);
    let mut max_key = 0;
    for (k, _) in &lines[..shown] {
        let key = fit_text(&key_style, &format!("{}:", one_line(k)), inner_w * 3 / 5)?;
        let kw = text_width(&key_style, &key)?;
        max_key = max_key.max(kw);
        keys.push((key, kw));
    }
    let tab = (max_key + 10).min(inner_w * 9 / 20);

    for (row, ((key, kw), (_, v))) in keys.iter().zip(&lines[..shown]).enumerate() {
        let baseline = first_baseline + row as i32 * LINE_H;
        text_at(root, key, &key_style, inner_x, baseline, HPos::Left)?;
        let vx = tab.max(kw + 8);
        let val = fit_text(&val_style, &one_line(v), inner_w - vx)?;
        text_at(root, &val, &val_style, inner_x + vx, baseline, HPos::Left)?;
    }
    if shown < lines.len() {
        let more = format!("… {} more", lines.len() - shown);
        let baseline = first_baseline + shown as i32 * LINE_H;
        text_at(
            root,
            &more,
            &font(BODY_FONT, MUTED),
            inner_x,
            baseline,
            HPos::Left,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::allocate_lines;

    #[test]
    fn short_panels_get_all_the_lines_they_need() {
        assert_eq!(allocate_lines(&[40, 9, 5], 38), vec![24, 9, 5]);
        assert_eq!(allocate_lines(&[3, 2, 1], 38), vec![3, 2, 1]);
    }
}
