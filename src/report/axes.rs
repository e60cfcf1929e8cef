//! Data ranges and drawing helpers shared by every chart: padding, non-finite
//! handling, decimation of long histories and polylines.

use plotters::coord::ranged1d::Ranged;
use plotters::prelude::*;

use super::ReportError;

/// Pads a data range so single points and flat lines still get a usable axis.
pub(super) fn padded(lo: f64, hi: f64, frac: f64) -> (f64, f64) {
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

pub(super) fn plottable(v: f64) -> bool {
    v.is_finite() && v.abs() <= MAX_PLOT
}

pub(super) fn finite(p: &(f64, f64)) -> bool {
    plottable(p.0) && plottable(p.1)
}

pub(super) fn min_max(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .filter(|&v| plottable(v))
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// Splits at non-finite points so a NaN makes a visible gap instead of a spike.
pub(super) fn finite_segments(points: &[(f64, f64)]) -> Vec<&[(f64, f64)]> {
    points
        .split(|p| !finite(p))
        .filter(|s| !s.is_empty())
        .collect()
}

/// Min/max decimation by index bucket: keeps the visual envelope of very long
/// per-batch histories while bounding draw time.
pub(super) fn decimate(seg: &[(f64, f64)], buckets: usize) -> Vec<(f64, f64)> {
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

/// Draws a polyline. plotters renders joins of wide paths as unbounded miters, so a
/// sharp zig-zag (noisy data) shoots spikes far outside the plot; wide lines are
/// therefore drawn as independent segments, which have no joins.
pub(super) fn polyline<X, Y>(
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
