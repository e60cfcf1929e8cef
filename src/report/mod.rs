//! Single-image PNG "train-state report".
//!
//! One picture answers "where is this run and how did it get there": run header,
//! resolved hyperparameters, train / data-loader state, the metric history with
//! epoch boundaries and the best key metric, learning rate and gradient norm.
//!
//! Rendering is pure CPU (plotters bitmap backend) with an embedded DejaVuSans font
//! registered through plotters' `ab_glyph` feature, so it needs no system fonts or
//! fontconfig and the output is byte-for-byte deterministic for the same input.
//!
//! Layout decisions:
//! * Loss-like series (name contains `loss`, `mse` or `mae`) and bounded metrics
//!   (accuracy, f1, ...) live on very different scales, so the history is split
//!   into two stacked panels sharing the x axis (batches fit) rather than using a
//!   secondary axis, which is harder to read. A group with no series gets no panel.
//! * Train and validation series of the same quantity (`loss` / `val_loss`) share a
//!   color; train is a thin line, validation a thicker line with point markers.
//! * Legends are drawn in a reserved column right of the plots so they never hide data.
//! * Non-finite values (and |v| > 1e100, which stalls plotters' tick generation)
//!   break a line instead of dragging the axis range to infinity.
//! * Text is placed by baseline and drawn glyph by glyph to work around plotters
//!   0.3.7's ab_glyph renderer dropping side bearings (see `text_at`).

pub mod data;
pub mod histograms;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, FontStyle};

/// Everything the report shows; plain data so the framework can fill it from its
/// `TrainState` without this module knowing about training internals.
#[derive(Debug, Clone, Default)]
pub struct ReportData {
    /// Run name.
    pub title: String,
    /// Short run facts shown in the header band (model, device, seed, status, ...).
    pub header: Vec<(String, String)>,
    /// Flattened resolved config, e.g. `("optimizer.lr", "0.001")`.
    pub hyperparameters: Vec<(String, String)>,
    /// Epoch / step counters, best key metric and where it happened.
    pub train_state: Vec<(String, String)>,
    /// Data-loader position: sets done / remaining, batch size, shuffle, seed.
    pub data_state: Vec<(String, String)>,
    /// Per-batch train loss and metrics, x = batches fit.
    pub train_series: Vec<Series>,
    /// Per-validation metrics, x = batches fit at that validation.
    pub val_series: Vec<Series>,
    /// x positions (batches fit) of epoch ends, drawn as dashed vertical lines.
    pub epoch_ends: Vec<f64>,
    /// The best key metric, marked with a star on the history figure.
    pub best: Option<BestMarker>,
    /// (global step, learning rate).
    pub learning_rate: Vec<(f64, f64)>,
    /// (global step, global gradient norm).
    pub grad_norm: Vec<(f64, f64)>,
}

/// One named curve.
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// Position and value of the best key metric.
#[derive(Debug, Clone)]
pub struct BestMarker {
    pub metric: String,
    pub x: f64,
    pub y: f64,
}

/// Why a report (or histogram figure) could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The embedded font was rejected; only possible if the asset is corrupt.
    #[error("embedded report font could not be loaded")]
    Font,
    /// plotters failed while drawing into the in-memory bitmap.
    #[error("drawing the report failed: {0}")]
    Draw(String),
    /// Creating the directory, or renaming the finished temp file, failed.
    #[error("cannot write report {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Encoding or writing the PNG itself failed.
    #[error("cannot encode PNG {}: {message}", path.display())]
    Encode { path: PathBuf, message: String },
}

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for ReportError {
    fn from(e: DrawingAreaErrorKind<E>) -> Self {
        ReportError::Draw(e.to_string())
    }
}

/// Report canvas size in pixels: large enough that 17 px body text stays readable
/// at 100% zoom next to a meaningful history plot.
pub const REPORT_WIDTH: u32 = 1800;
pub const REPORT_HEIGHT: u32 = 1100;

pub(crate) type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

const FAMILY: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/DejaVuSans.ttf"
));

/// Registers the embedded font once per process; plotters keeps a global font table,
/// so doing it lazily here keeps callers free of setup steps.
pub(crate) fn ensure_font() -> Result<(), ReportError> {
    static OK: OnceLock<bool> = OnceLock::new();
    let ok = *OK.get_or_init(|| register_font(FAMILY, FontStyle::Normal, FONT_BYTES).is_ok());
    if ok {
        Ok(())
    } else {
        Err(ReportError::Font)
    }
}

// ---------------------------------------------------------------------------
// Colors and text helpers (shared with histograms.rs)
// ---------------------------------------------------------------------------

pub(crate) const INK: RGBColor = RGBColor(25, 25, 30);
pub(crate) const MUTED: RGBColor = RGBColor(105, 110, 120);
pub(crate) const KEY_INK: RGBColor = RGBColor(40, 80, 140);
pub(crate) const ACCENT: RGBColor = RGBColor(20, 50, 100);
pub(crate) const RULE: RGBColor = RGBColor(210, 214, 222);
pub(crate) const PANEL_BG: RGBColor = RGBColor(247, 248, 251);
pub(crate) const ALERT: RGBColor = RGBColor(190, 40, 30);

/// tab10: distinguishable and familiar from matplotlib.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

pub(crate) fn font(size: f64, color: RGBColor) -> TextStyle<'static> {
    (FAMILY, size).into_font().color(&color)
}

pub(crate) fn text_width(style: &TextStyle, text: &str) -> Result<i32, ReportError> {
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
pub(crate) fn text_at(
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
    let Some(m) = font_metrics() else {
        area.draw_text(text, &left, (x0, y))?;
        return Ok(());
    };
    let scale = size / m.units_height;
    let mut prefix = String::with_capacity(text.len());
    let mut glyph = String::with_capacity(4);
    for c in text.chars() {
        prefix.push(c);
        if c.is_whitespace() {
            continue;
        }
        let (advance, lsb) = m.h_metrics(m.glyph_id(c));
        // Pen position from plotters' own measurement (includes kerning), so drawn
        // text matches what `text_width` reported to the layout code.
        let pen = text_width(style, &prefix)? as f64 - advance as f64 * scale;
        let px = x0 + pen.round() as i32 + (lsb as f64 * scale).floor() as i32;
        glyph.clear();
        glyph.push(c);
        area.draw_text(&glyph, &left, (px, y))?;
    }
    Ok(())
}

/// Minimal TrueType reader for what [`text_at`] needs: glyph ids (cmap format 4)
/// and horizontal metrics (hmtx). Parsing failures just disable the correction.
struct FontMetrics {
    data: &'static [u8],
    cmap4: usize,
    hmtx: usize,
    n_hmetrics: usize,
    /// ascent - descent in font units: ab_glyph scales this to the pixel size.
    units_height: f64,
}

fn font_metrics() -> Option<&'static FontMetrics> {
    static M: OnceLock<Option<FontMetrics>> = OnceLock::new();
    M.get_or_init(|| FontMetrics::parse(FONT_BYTES)).as_ref()
}

impl FontMetrics {
    fn u16_at(data: &[u8], o: usize) -> Option<u16> {
        data.get(o..o + 2).map(|s| u16::from_be_bytes([s[0], s[1]]))
    }

    fn u32_at(data: &[u8], o: usize) -> Option<u32> {
        data.get(o..o + 4)
            .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    fn parse(data: &'static [u8]) -> Option<Self> {
        let n_tables = Self::u16_at(data, 4)? as usize;
        let table = |tag: &[u8; 4]| {
            (0..n_tables).find_map(|i| {
                let rec = 12 + 16 * i;
                if data.get(rec..rec + 4)? == tag {
                    Self::u32_at(data, rec + 8).map(|o| o as usize)
                } else {
                    None
                }
            })
        };
        let hhea = table(b"hhea")?;
        let ascent = Self::u16_at(data, hhea + 4)? as i16 as f64;
        let descent = Self::u16_at(data, hhea + 6)? as i16 as f64;
        let n_hmetrics = Self::u16_at(data, hhea + 34)? as usize;
        let os2 = table(b"OS/2");
        // ab_glyph (ttf-parser) uses typo metrics only when USE_TYPO_METRICS is set.
        let (ascent, descent) = match os2 {
            Some(o) if Self::u16_at(data, o + 62)? & 0x80 != 0 => (
                Self::u16_at(data, o + 68)? as i16 as f64,
                Self::u16_at(data, o + 70)? as i16 as f64,
            ),
            _ => (ascent, descent),
        };
        let hmtx = table(b"hmtx")?;
        let cmap = table(b"cmap")?;
        let n_sub = Self::u16_at(data, cmap + 2)? as usize;
        let cmap4 = (0..n_sub).find_map(|i| {
            let rec = cmap + 4 + 8 * i;
            let (platform, encoding) = (Self::u16_at(data, rec)?, Self::u16_at(data, rec + 2)?);
            let sub = cmap + Self::u32_at(data, rec + 4)? as usize;
            let unicode_bmp = (platform == 3 && encoding == 1) || platform == 0;
            (unicode_bmp && Self::u16_at(data, sub)? == 4).then_some(sub)
        })?;
        let units_height = ascent - descent;
        (units_height > 0.0 && n_hmetrics > 0).then_some(Self {
            data,
            cmap4,
            hmtx,
            n_hmetrics,
            units_height,
        })
    }

    /// Glyph id for `c`, 0 (.notdef) when unmapped, like ab_glyph.
    fn glyph_id(&self, c: char) -> u16 {
        self.lookup(c as u32).unwrap_or(0)
    }

    fn lookup(&self, c: u32) -> Option<u16> {
        if c > 0xFFFF {
            return None;
        }
        let (d, t) = (self.data, self.cmap4);
        let seg_x2 = Self::u16_at(d, t + 6)? as usize;
        let ends = t + 14;
        let starts = ends + seg_x2 + 2;
        let deltas = starts + seg_x2;
        let offsets = deltas + seg_x2;
        for i in (0..seg_x2).step_by(2) {
            let end = Self::u16_at(d, ends + i)? as u32;
            if end < c {
                continue;
            }
            let start = Self::u16_at(d, starts + i)? as u32;
            if start > c {
                return None;
            }
            let delta = Self::u16_at(d, deltas + i)?;
            let range_offset = Self::u16_at(d, offsets + i)? as usize;
            if range_offset == 0 {
                return Some((c as u16).wrapping_add(delta));
            }
            let at = offsets + i + range_offset + 2 * (c - start) as usize;
            let g = Self::u16_at(d, at)?;
            return Some(if g == 0 { 0 } else { g.wrapping_add(delta) });
        }
        None
    }

    /// (advance width, left side bearing) in font units.
    fn h_metrics(&self, gid: u16) -> (u16, i16) {
        let gid = gid as usize;
        let i = gid.min(self.n_hmetrics - 1);
        let advance = Self::u16_at(self.data, self.hmtx + 4 * i).unwrap_or(0);
        let lsb = if gid < self.n_hmetrics {
            Self::u16_at(self.data, self.hmtx + 4 * gid + 2)
        } else {
            Self::u16_at(
                self.data,
                self.hmtx + 4 * self.n_hmetrics + 2 * (gid - self.n_hmetrics),
            )
        };
        (advance, lsb.unwrap_or(0) as i16)
    }
}

/// Replaces control characters so a multi-line config value stays on one line.
pub(crate) fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Longest prefix of `text` (plus "…") that fits `max_w` pixels; measured with the
/// real font advances so text never overflows its panel.
pub(crate) fn fit_text(style: &TextStyle, text: &str, max_w: i32) -> Result<String, ReportError> {
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

/// Formats a value with ~4 significant digits; scientific only for extreme magnitudes.
pub(crate) fn fmt_value(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a == 0.0 {
        return "0".into();
    }
    if !(1e-3..1e6).contains(&a) {
        return trim_exp(format!("{v:.2e}"));
    }
    let decimals = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
    trim_zeros(format!("{v:.decimals$}"))
}

/// Batches / steps are integers; print them without a fraction when they are whole.
pub(crate) fn fmt_count(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        fmt_value(v)
    }
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn trim_exp(s: String) -> String {
    match s.split_once('e') {
        Some((m, e)) => format!("{}e{}", trim_zeros(m.to_string()), e),
        None => s,
    }
}

/// Tick formatter with a precision matched to the axis span, so ticks read
/// "0.25 0.5 0.75" rather than "0.2500000001".
pub(crate) fn tick_formatter(lo: f64, hi: f64) -> impl Fn(&f64) -> String {
    let mag = lo.abs().max(hi.abs());
    let step = (hi - lo).abs() / 8.0;
    let sci = mag >= 1e6 || (mag > 0.0 && mag < 1e-3);
    let decimals = if step > 0.0 && step.is_finite() {
        (-step.log10().floor()).clamp(0.0, 8.0) as usize
    } else {
        2
    };
    move |v: &f64| {
        let v = if step > 0.0 && v.abs() < step * 1e-6 {
            0.0
        } else {
            *v
        };
        if sci {
            trim_exp(format!("{v:.2e}"))
        } else {
            trim_zeros(format!("{v:.decimals$}"))
        }
    }
}

/// Pads a data range so single points and flat lines still get a usable axis.
pub(crate) fn padded(lo: f64, hi: f64, frac: f64) -> (f64, f64) {
    let span = hi - lo;
    let mid_mag = lo.abs().max(hi.abs());
    let (lo, hi) = if !span.is_finite() || span <= mid_mag * 1e-9 {
        let d = if mid_mag > 0.0 { mid_mag * 0.1 } else { 1.0 };
        (lo - d, hi + d)
    } else {
        (lo - span * frac, hi + span * frac)
    };
    if lo.is_finite() && hi.is_finite() && hi > lo {
        (lo, hi)
    } else {
        (-1.0, 1.0)
    }
}

/// Values beyond this are treated like NaN: plotters' tick generation cannot cope
/// with ranges near f64::MAX, and such values (diverged runs) carry no shape anyway.
const MAX_PLOT: f64 = 1e100;

fn plottable(v: f64) -> bool {
    v.is_finite() && v.abs() <= MAX_PLOT
}

fn finite(p: &(f64, f64)) -> bool {
    plottable(p.0) && plottable(p.1)
}

fn min_max(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .filter(|&v| plottable(v))
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// Splits at non-finite points so a NaN makes a visible gap instead of a spike.
fn finite_segments(points: &[(f64, f64)]) -> Vec<&[(f64, f64)]> {
    points
        .split(|p| !finite(p))
        .filter(|s| !s.is_empty())
        .collect()
}

/// Min/max decimation by index bucket: keeps the visual envelope of very long
/// per-batch histories while bounding draw time.
fn decimate(seg: &[(f64, f64)], buckets: usize) -> Vec<(f64, f64)> {
    if buckets == 0 || seg.len() <= 2 * buckets {
        return seg.to_vec();
    }
    let mut out = Vec::with_capacity(2 * buckets + 2);
    for b in 0..buckets {
        let start = b * seg.len() / buckets;
        let end = ((b + 1) * seg.len() / buckets).max(start + 1);
        let chunk = &seg[start..end];
        let (mut imin, mut imax) = (0, 0);
        for (i, p) in chunk.iter().enumerate() {
            if p.1 < chunk[imin].1 {
                imin = i;
            }
            if p.1 > chunk[imax].1 {
                imax = i;
            }
        }
        let (a, b) = (imin.min(imax), imin.max(imax));
        out.push(chunk[a]);
        if b != a {
            out.push(chunk[b]);
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Public entry points
// ---------------------------------------------------------------------------

/// Renders the report and writes it as a PNG at `path`.
///
/// The PNG is written to a temp file next to `path` and renamed into place, so a
/// crash mid-write never leaves a truncated report behind.
pub fn render_report(data: &ReportData, path: &Path) -> Result<(), ReportError> {
    write_png_atomic(path, (REPORT_WIDTH, REPORT_HEIGHT), |root| {
        draw_report(root, data)
    })
}

/// Renders the report into an RGB8 buffer: `(width, height, pixels)`.
pub fn render_report_rgb(data: &ReportData) -> Result<(u32, u32, Vec<u8>), ReportError> {
    ensure_font()?;
    let (w, h) = (REPORT_WIDTH, REPORT_HEIGHT);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        draw_report(&root, data)?;
        root.present()?;
    }
    Ok((w, h, buf))
}

/// Draws with `draw` into a file-backed bitmap at a temp path, then renames it.
pub(crate) fn write_png_atomic(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&Area) -> Result<(), ReportError>,
) -> Result<(), ReportError> {
    ensure_font()?;
    let io_err = |p: &Path| {
        let p = p.to_path_buf();
        move |source| ReportError::Io { path: p, source }
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    // Unique per process and call, so concurrent renders of the same path never share
    // a temp file; the image encoder picks the format from the extension, hence ".png".
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}-{seq}.tmp.png", std::process::id()));

    let result = (|| {
        let root = BitMapBackend::new(&tmp, size).into_drawing_area();
        draw(&root)?;
        root.present().map_err(|e| ReportError::Encode {
            path: tmp.clone(),
            message: e.to_string(),
        })
        // `root` drops here; on the error path its Drop may write a partial file,
        // which is removed below.
    })();
    // fsync before rename: otherwise a power loss can leave an empty file under `path`.
    let result = result
        .and_then(|()| {
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(io_err(&tmp))
        })
        .and_then(|()| std::fs::rename(&tmp, path).map_err(io_err(path)));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

// ---------------------------------------------------------------------------
// Layout
// ---------------------------------------------------------------------------

const MARGIN: i32 = 16;
const HEADER_H: i32 = 112;
const LEFT_W: i32 = 560;
const BODY_FONT: f64 = 16.0;
const LINE_H: i32 = 21;
const PANEL_TITLE_FONT: f64 = 22.0;
const PANEL_TITLE_H: i32 = 36;
const PANEL_PAD: i32 = 10;
const PANEL_GAP: i32 = 10;

fn draw_report(root: &Area, data: &ReportData) -> Result<(), ReportError> {
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

fn draw_left_column(
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

// ---------------------------------------------------------------------------
// History figure
// ---------------------------------------------------------------------------

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

fn draw_history(area: &Area, data: &ReportData) -> Result<(), ReportError> {
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

/// Draws a polyline. plotters renders joins of wide paths as unbounded miters, so a
/// sharp zig-zag (noisy data) shoots spikes far outside the plot; wide lines are
/// therefore drawn as independent segments, which have no joins.
fn polyline<X, Y>(
    chart: &mut ChartContext<BitMapBackend, Cartesian2d<X, Y>>,
    pts: Vec<(f64, f64)>,
    color: RGBColor,
    width: u32,
) -> Result<(), ReportError>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    if width <= 1 {
        chart.draw_series(LineSeries::new(pts, color.stroke_width(1)))?;
    } else {
        chart.draw_series(
            pts.windows(2)
                .map(|w| PathElement::new(vec![w[0], w[1]], color.stroke_width(width))),
        )?;
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

// ---------------------------------------------------------------------------
// Learning rate / gradient norm
// ---------------------------------------------------------------------------

/// Small "value vs global step" chart; log y when the values span more than 100x
/// (typical for warmup + decay schedules and exploding gradients).
fn draw_step_chart(
    area: &Area,
    title: &str,
    ylabel: &str,
    points: &[(f64, f64)],
    color: RGBColor,
) -> Result<(), ReportError> {
    text_at(
        area,
        title,
        &font(PANEL_TITLE_FONT, ACCENT),
        4,
        20,
        HPos::Left,
    )?;
    let (w, h) = area.dim_in_pixel();
    let plot = area.clone().shrink((0, 28), (w, h - 28));

    let x_range = match min_max(points.iter().filter(|p| finite(p)).map(|p| p.0)) {
        Some((lo, hi)) => {
            let lo = lo.min(0.0);
            let (_, phi) = padded(lo, hi, 0.02);
            (lo, phi)
        }
        None => (0.0, 1.0),
    };
    let y_mm = min_max(points.iter().filter(|p| finite(p)).map(|p| p.1));
    let log = match y_mm {
        Some((lo, hi)) => lo > 0.0 && hi / lo > 100.0,
        None => false,
    };
    if log {
        let (lo, hi) = y_mm.unwrap_or((1.0, 10.0));
        let ys = (lo / 1.3)..(hi * 1.3);
        let yfmt = |v: &f64| fmt_value(*v);
        line_chart(
            &plot,
            points,
            x_range,
            ys.log_scale(),
            &yfmt,
            ylabel,
            color,
            true,
        )
    } else {
        let (lo, hi) = match y_mm {
            Some((lo, hi)) => padded(lo, hi, 0.08),
            None => (0.0, 1.0),
        };
        let yfmt = tick_formatter(lo, hi);
        line_chart(&plot, points, x_range, lo..hi, &yfmt, ylabel, color, false)
    }
}

#[allow(clippy::too_many_arguments)]
fn line_chart<Y>(
    area: &Area,
    points: &[(f64, f64)],
    x_range: (f64, f64),
    y_spec: Y,
    yfmt: &dyn Fn(&f64) -> String,
    ylabel: &str,
    color: RGBColor,
    log: bool,
) -> Result<(), ReportError>
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let xfmt = tick_formatter(x_range.0, x_range.1);
    let mut chart = ChartBuilder::on(area)
        .margin_right(14)
        .margin_top(4)
        .x_label_area_size(46)
        .y_label_area_size(84)
        .build_cartesian_2d(x_range.0..x_range.1, y_spec)?;
    let ylabel = if log {
        format!("{ylabel} (log)")
    } else {
        ylabel.to_string()
    };
    chart
        .configure_mesh()
        .light_line_style(RGBColor(242, 243, 246))
        .bold_line_style(RGBColor(222, 225, 230))
        .axis_style(RGBColor(120, 125, 135))
        .x_labels(6)
        .y_labels(5)
        .label_style(font(16.0, INK))
        .axis_desc_style(font(16.0, MUTED))
        .x_desc("global step")
        .y_desc(ylabel)
        .x_label_formatter(&xfmt)
        .y_label_formatter(yfmt)
        .draw()?;

    let usable: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|p| !log || p.1 > 0.0)
        .collect();
    let buckets = area.dim_in_pixel().0 as usize;
    let mut any = false;
    for seg in finite_segments(&usable) {
        any = true;
        if seg.len() == 1 {
            chart.draw_series(std::iter::once(Circle::new(seg[0], 3, color.filled())))?;
        } else {
            // Dense curves read better thin; sparse ones (e.g. an lr schedule) thicker.
            let width = if seg.len() * 3 > buckets { 1 } else { 2 };
            polyline(&mut chart, decimate(seg, buckets), color, width)?;
        }
    }
    if !any {
        let (px, py) = chart.plotting_area().get_pixel_range();
        let (ax, ay) = area.get_base_pixel();
        let cx = (px.start + px.end) / 2 - ax;
        let cy = (py.start + py.end) / 2 - ay;
        text_at(
            area,
            "no data yet",
            &font(20.0, MUTED),
            cx,
            cy + 7,
            HPos::Center,
        )?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::time::Instant;

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
    pub(crate) fn realistic() -> ReportData {
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
        let decoder = png::Decoder::new(std::io::BufReader::new(file));
        let mut reader = decoder.read_info().expect("png header");
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).expect("png frame");
        assert_eq!(info.color_type, png::ColorType::Rgb);
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

    #[test]
    fn font_metrics_agree_with_plotters() {
        ensure_font().expect("font");
        let m = font_metrics().expect("embedded font parses");
        let size = 200.0;
        let style = font(size, INK);
        for text in ["batches_fit", "optimizer.lr", "0123456789", "…", "W"] {
            let ours: f64 = text
                .chars()
                .map(|c| m.h_metrics(m.glyph_id(c)).0 as f64 * size / m.units_height)
                .sum();
            let theirs = text_width(&style, text).expect("w") as f64;
            // Kerning is the only expected difference.
            assert!(
                (ours - theirs).abs() <= 0.03 * theirs + 2.0,
                "{text}: {ours} vs {theirs}"
            );
        }
        assert_ne!(m.glyph_id('a'), 0);
        assert_eq!(m.glyph_id('\u{10FFFF}'), 0);
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
        assert_eq!(allocate_lines(&[40, 9, 5], 38), vec![24, 9, 5]);
        assert_eq!(allocate_lines(&[3, 2, 1], 38), vec![3, 2, 1]);
    }
}

/// Renders the report of `state` as it stands (status from `reason`) into `path`.
pub fn render_state_report(
    state: &crate::state::TrainState,
    run: &crate::checkpoint::RunInfo,
    reason: Option<crate::checkpoint::SaveReason>,
    path: &Path,
) -> Result<(), ReportError> {
    let status = data::status_line(state, reason);
    render_report(&data::report_data(state, run, &status), path)
}
