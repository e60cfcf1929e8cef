//! Small "value vs global step" charts (learning rate, gradient norm), with a log
//! y axis when the values span orders of magnitude.

use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::prelude::*;
use plotters::style::text_anchor::HPos;

use super::axes::{decimate, finite, finite_segments, min_max, padded, polyline};
use super::layout::PANEL_TITLE_FONT;
use super::numbers::{fmt_value, tick_formatter};
use super::style::{ACCENT, INK, MUTED};
use super::text::{font, text_at};
use super::{Area, ReportError};

/// Small "value vs global step" chart; log y when the values span more than 100x
/// (typical for warmup + decay schedules and exploding gradients).
pub(super) fn draw_step_chart(
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
