//! The embedded font and text placement: registering it with plotters, measuring,
//! drawing by baseline, and fitting text into a width.
//!
//! Glyph metrics come from `ab_glyph`, the same font parser plotters draws with, so
//! the side-bearing correction in [`text_at`] uses exactly the numbers plotters uses.

use std::sync::OnceLock;

use ab_glyph::{Font, FontRef};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, FontStyle};

use super::{Area, ReportError};

const FAMILY: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/DejaVuSans.ttf"
));

/// Registers the embedded font once per process; plotters keeps a global font table,
/// so doing it lazily here keeps callers free of setup steps.
pub(super) fn ensure_font() -> Result<(), ReportError> {
    static OK: OnceLock<bool> = OnceLock::new();
    let ok = *OK.get_or_init(|| register_font(FAMILY, FontStyle::Normal, FONT_BYTES).is_ok());
    if ok {
        Ok(())
    } else {
        Err(ReportError::Font)
    }
}

/// The embedded font parsed by ab_glyph, for the glyph metrics [`text_at`] needs.
fn face() -> Result<&'static FontRef<'static>, ReportError> {
    static FACE: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FACE.get_or_init(|| FontRef::try_from_slice(FONT_BYTES).ok())
        .as_ref()
        .ok_or(ReportError::Font)
}

/// The report font at `size` pixels in `color`.
pub(super) fn font(size: f64, color: RGBColor) -> TextStyle<'static> {
    (FAMILY, size).into_font().color(&color)
}

/// Width in pixels of `text` as plotters lays it out (kerning included).
pub(super) fn text_width(style: &TextStyle, text: &str) -> Result<i32, ReportError> {
    match style.font.box_size(text) {
        Ok((w, _)) => Ok(w as i32),
        Err(e) => Err(ReportError::Draw(format!("font: {e}"))),
    }
}

/// Draws `text` anchored horizontally at `x` (per `h`) with its baseline at `baseline`.
///
/// The ab_glyph backend places the baseline half a font size below the anchor,
/// so positioning by baseline keeps rows of mixed font sizes aligned (use even
/// sizes: odd ones make plotters round tall and short glyphs differently).
/// Text is drawn glyph by glyph to re-add the left side bearing that plotters
/// 0.3.7's ab_glyph renderer drops, which otherwise makes letter spacing uneven.
pub(super) fn text_at(
    area: &Area,
    text: &str,
    style: &TextStyle,
    x: i32,
    baseline: i32,
    h: HPos,
) -> Result<(), ReportError> {
    if text.is_empty() {
        return Ok(());
    }
    let size = style.font.get_size();
    let y = baseline - (size / 2.0).round() as i32;
    let total = text_width(style, text)?;
    let x0 = match h {
        HPos::Left => x,
        HPos::Right => x - total,
        HPos::Center => x - total / 2,
    };
    let left = style.pos(Pos::new(HPos::Left, VPos::Top));
    let face = face()?;
    // ab_glyph scales so that ascent - descent spans the pixel size.
    let scale = size / face.height_unscaled() as f64;
    let mut prefix = String::with_capacity(text.len());
    let mut glyph = String::with_capacity(4);
    for c in text.chars() {
        prefix.push(c);
        if c.is_whitespace() {
            continue;
        }
        let id = face.glyph_id(c);
        let advance = face.h_advance_unscaled(id) as f64;
        let lsb = face.h_side_bearing_unscaled(id) as f64;
        // Pen position from plotters' own measurement (includes kerning), so drawn
        // text matches what `text_width` reported to the layout code.
        let pen = text_width(style, &prefix)? as f64 - advance * scale;
        let px = x0 + pen.round() as i32 + (lsb * scale).floor() as i32;
        glyph.clear();
        glyph.push(c);
        area.draw_text(&glyph, &left, (px, y))?;
    }
    Ok(())
}

/// Replaces control characters so a multi-line config value stays on one line.
pub(super) fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Longest prefix of `text` (plus "…") that fits `max_w` pixels; measured with the
/// real font advances so text never overflows its panel.
pub(super) fn fit_text(style: &TextStyle, text: &str, max_w: i32) -> Result<String, ReportError> {
    if text_width(style, text)? <= max_w {
        return Ok(text.to_string());
    }
    let chars: Vec<char> = text.chars().collect();
    let (mut lo, mut hi) = (0usize, chars.len());
    // Invariant: prefix of `lo` chars + ellipsis fits (lo = 0 is checked below).
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        let candidate: String = chars[..mid].iter().collect::<String>() + "…";
        if text_width(style, &candidate)? <= max_w {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let out: String = chars[..lo]
        .iter()
        .collect::<String>()
        .trim_end()
        .to_string()
        + "…";
    if text_width(style, &out)? <= max_w {
        Ok(out)
    } else {
        Ok(String::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::layout::BODY_FONT;
    use crate::report::style::INK;

    #[test]
    fn glyph_advances_agree_with_plotters() {
        ensure_font().expect("font");
        let face = face().expect("embedded font parses");
        let size = 200.0;
        let scale = size / face.height_unscaled() as f64;
        let style = font(size, INK);
        for text in ["batches_fit", "optimizer.lr", "0123456789", "…", "W"] {
            let ours: f64 = text
                .chars()
                .map(|c| face.h_advance_unscaled(face.glyph_id(c)) as f64 * scale)
                .sum();
            let theirs = text_width(&style, text).expect("w") as f64;
            // Kerning is the only expected difference.
            assert!(
                (ours - theirs).abs() <= 0.03 * theirs + 2.0,
                "{text}: {ours} vs {theirs}"
            );
        }
        assert_ne!(face.glyph_id('a').0, 0);
        assert_eq!(face.glyph_id('\u{10FFFF}').0, 0);
    }

    #[test]
    fn text_fitting_never_overflows() {
        ensure_font().expect("font");
        let style = font(BODY_FONT, INK);
        let long = "x".repeat(500);
        let fitted = fit_text(&style, &long, 200).expect("fit");
        assert!(fitted.ends_with('…'));
        assert!(text_width(&style, &fitted).expect("w") <= 200);
        assert_eq!(fit_text(&style, "short", 200).expect("fit"), "short");
    }
}
