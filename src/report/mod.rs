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
//!
//! Files: `layout.rs` places the parts, `tables.rs` draws the key/value panels,
//! `history.rs` and `step_chart.rs` the charts (on helpers in `axes.rs` and
//! `numbers.rs`), `text.rs` owns the font and text placement, `style.rs` the colors
//! and `png.rs` the encoding and atomic write. `data.rs` turns a train state into
//! [`ReportData`]; `histograms.rs` draws the per-layer histogram figures.

pub mod comparison;
pub mod confusion;
pub mod data;
pub mod histograms;

mod axes;
mod history;
mod layout;
mod numbers;
mod png;
mod step_chart;
mod style;
mod tables;
#[cfg(test)]
mod tests;
mod text;

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::checkpoint::{RunInfo, SaveReason};
use crate::state::TrainState;

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
    /// The metric's name, shown in the legend.
    pub name: String,
    /// `(batches_fit, value)` points; NaN values leave gaps.
    pub points: Vec<(f64, f64)>,
}

/// Position and value of the best key metric.
#[derive(Debug, Clone)]
pub struct BestMarker {
    /// The key metric's name.
    pub metric: String,
    /// `batches_fit` of the best validation.
    pub x: f64,
    /// Its value.
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
    /// Creating the directory or the temp file, syncing it, or renaming it into place
    /// failed.
    #[error("cannot write report {}: {source}", path.display())]
    Io {
        /// The file being written.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// Encoding or writing the PNG itself failed.
    #[error("cannot encode PNG {}: {message}", path.display())]
    Encode {
        /// The PNG file.
        path: PathBuf,
        /// The encoder's message.
        message: String,
    },
}

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for ReportError {
    fn from(e: DrawingAreaErrorKind<E>) -> Self {
        ReportError::Draw(e.to_string())
    }
}

/// Report canvas size in pixels: large enough that 17 px body text stays readable
/// at 100% zoom next to a meaningful history plot.
pub const REPORT_WIDTH: u32 = 1800;
/// Report canvas height in pixels.
pub const REPORT_HEIGHT: u32 = 1100;

/// A plotters drawing area on the in-memory RGB bitmap every figure is drawn into.
pub(crate) type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Renders the report of `state` (status line, then [`data::report_data`]) and writes
/// it as a PNG at `path`, atomically like [`render_report`].
///
/// `reason` is why the state is being saved, if it is (it words the status line);
/// `None` for a report of a run as it stands.
pub fn render_state_report(
    state: &TrainState,
    run: &RunInfo,
    reason: Option<SaveReason>,
    path: &Path,
) -> Result<(), ReportError> {
    let status = data::status_line(state, reason);
    render_report(&data::report_data(state, run, &status), path)
}

/// Renders the report and writes it as a PNG at `path`.
///
/// The PNG is written to a temp file next to `path`, synced, and renamed into place,
/// so a crash mid-write never leaves a truncated report behind.
pub fn render_report(data: &ReportData, path: &Path) -> Result<(), ReportError> {
    let (w, h, pixels) = render_report_rgb(data)?;
    png::write_png(path, (w, h), &pixels)
}

/// Renders the report into an RGB8 buffer: `(width, height, pixels)`.
pub fn render_report_rgb(data: &ReportData) -> Result<(u32, u32, Vec<u8>), ReportError> {
    let (w, h) = (REPORT_WIDTH, REPORT_HEIGHT);
    let pixels = draw_rgb((w, h), |root| layout::draw_report(root, data))?;
    Ok((w, h, pixels))
}

/// Draws with `draw` on a white RGB8 canvas of `size` and returns its pixels.
pub(crate) fn draw_rgb(
    (w, h): (u32, u32),
    draw: impl FnOnce(&Area) -> Result<(), ReportError>,
) -> Result<Vec<u8>, ReportError> {
    text::ensure_font()?;
    let mut pixels = vec![255u8; (w as usize) * (h as usize) * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (w, h)).into_drawing_area();
        draw(&root)?;
        root.present()?;
    }
    Ok(pixels)
}
