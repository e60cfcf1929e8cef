//! The confusion matrix as a figure: a heatmap with counts, rows actual and columns
//! predicted, each row shaded by its share of that class's samples (so a rare class's
//! mistakes are as visible as a common one's). `deeptrain evaluate` writes it.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::HPos;

use super::png::write_png;
use super::style::{ACCENT, INK, MUTED};
use super::text::{fit_text, font, text_at};
use super::{draw_rgb, Area, ReportError};

/// Pixels per cell side, within bounds, so 2 to 100 classes all fit on a readable image.
fn cell_size(classes: usize) -> i32 {
    (720 / classes.max(1) as i32).clamp(8, 64)
}

const MARGIN_LEFT: i32 = 120;
const MARGIN_TOP: i32 = 110;
const MARGIN: i32 = 30;

/// Draws `matrix` (`matrix[actual][predicted]` counts) with class `labels` under
/// `title` into the PNG `path`, written atomically.
pub fn render_confusion_matrix(
    title: &str,
    matrix: &[Vec<u64>],
    labels: &[String],
    path: &Path,
) -> Result<(), ReportError> {
    let n = matrix.len();
    let cell = cell_size(n);
    let side = cell * n as i32;
    let size = (
        (MARGIN_LEFT + side + MARGIN).max(420) as u32,
        (MARGIN_TOP + side + MARGIN) as u32,
    );
    let pixels = draw_rgb(size, |root| draw(root, title, matrix, labels, cell))?;
    write_png(path, size, &pixels)
}

/// The share of row `counts` in cell `c`, 0 for an empty row.
fn share(counts: &[u64], c: usize) -> f64 {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        0.0
    } else {
        counts[c] as f64 / total as f64
    }
}

fn draw(
    root: &Area,
    title: &str,
    matrix: &[Vec<u64>],
    labels: &[String],
    cell: i32,
) -> Result<(), ReportError> {
    let title_style = font(22.0, INK);
    text_at(
        root,
        &fit_text(&title_style, title, 600)?,
        &title_style,
        20,
        34,
        HPos::Left,
    )?;
    let axis = font(14.0, MUTED);
    text_at(root, "predicted →", &axis, MARGIN_LEFT, 64, HPos::Left)?;
    text_at(root, "actual ↓", &axis, 20, 64, HPos::Left)?;
    let label_style = font(if cell >= 24 { 14.0 } else { 10.0 }, INK);
    let show_labels = cell >= 14;
    for (r, row) in matrix.iter().enumerate() {
        let y0 = MARGIN_TOP + r as i32 * cell;
        if show_labels {
            let label = labels.get(r).map(String::as_str).unwrap_or("?");
            let fitted = fit_text(&label_style, label, MARGIN_LEFT - 30)?;
            text_at(
                root,
                &fitted,
                &label_style,
                MARGIN_LEFT - 10,
                y0 + cell / 2 + 5,
                HPos::Right,
            )?;
        }
        for (c, &count) in row.iter().enumerate() {
            let x0 = MARGIN_LEFT + c as i32 * cell;
            let s = share(row, c);
            // White to the accent colour, by the share of the row.
            let mix = |from: u8, to: u8| (from as f64 + (to as f64 - from as f64) * s) as u8;
            let fill = RGBColor(mix(255, ACCENT.0), mix(255, ACCENT.1), mix(255, ACCENT.2));
            root.draw(&Rectangle::new(
                [(x0, y0), (x0 + cell, y0 + cell)],
                fill.filled(),
            ))?;
            root.draw(&Rectangle::new(
                [(x0, y0), (x0 + cell, y0 + cell)],
                RGBColor(225, 228, 234),
            ))?;
            if cell >= 24 && count > 0 {
                let ink = if s > 0.5 { WHITE } else { INK };
                let style = font(if cell >= 40 { 14.0 } else { 10.0 }, ink);
                text_at(
                    root,
                    &count.to_string(),
                    &style,
                    x0 + cell / 2,
                    y0 + cell / 2 + 5,
                    HPos::Center,
                )?;
            }
        }
    }
    if show_labels {
        for c in 0..matrix.len() {
            let label = labels.get(c).map(String::as_str).unwrap_or("?");
            let fitted = fit_text(&label_style, label, cell - 2)?;
            let x = MARGIN_LEFT + c as i32 * cell + cell / 2;
            text_at(
                root,
                &fitted,
                &label_style,
                x,
                MARGIN_TOP - 10,
                HPos::Center,
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(path: &Path) -> (u32, u32, Vec<u8>) {
        let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    #[test]
    fn a_matrix_draws_its_diagonal_darker_and_the_same_bytes_twice() {
        let dir = tempfile::tempdir().unwrap();
        let m = vec![vec![9, 1, 0], vec![0, 5, 5], vec![0, 0, 0]];
        let labels: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let (p, q) = (dir.path().join("a.png"), dir.path().join("b.png"));
        render_confusion_matrix("t", &m, &labels, &p).unwrap();
        render_confusion_matrix("t", &m, &labels, &q).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), std::fs::read(&q).unwrap());
        let (w, _, px) = decode(&p);
        let cell = cell_size(3);
        // A pixel near the corner of a cell (clear of its count's digits).
        let at = |r: i32, c: i32| {
            let (x, y) = (MARGIN_LEFT + c * cell + 3, MARGIN_TOP + r * cell + 3);
            let i = (y as usize * w as usize + x as usize) * 3;
            px[i] as u32 + px[i + 1] as u32 + px[i + 2] as u32
        };
        assert!(at(0, 0) < at(0, 1), "90% of row 0 is darker than its 10%");
        assert!(at(0, 1) < at(0, 2), "10% is darker than nothing");
        assert_eq!(at(1, 1), at(1, 2), "two halves shade alike");
        assert_eq!(at(2, 0), 255 * 3, "an empty row stays white");
    }

    #[test]
    fn many_classes_still_fit() {
        let dir = tempfile::tempdir().unwrap();
        let n = 100;
        let m: Vec<Vec<u64>> = (0..n)
            .map(|r| (0..n).map(|c| (r == c) as u64).collect())
            .collect();
        let labels: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        let p = dir.path().join("m.png");
        render_confusion_matrix("100 classes", &m, &labels, &p).unwrap();
        let (w, h, _) = decode(&p);
        assert!(w <= 1000 && h <= 1000, "{w}x{h}");
    }
}
