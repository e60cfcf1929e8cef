//! Histogram bucketing for TensorBoard's histogram dashboard: TensorFlow's default
//! exponential bucket edges, with runs of empty buckets collapsed as TF does.

use std::sync::OnceLock;

/// A `HistogramProto`. `bucket[i]` counts values in `[bucket_limit[i-1], bucket_limit[i])`;
/// TensorBoard uses `min` / `max` as the outer edges of the first / last bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Smallest finite value (0.0 when there is none).
    pub min: f64,
    /// Largest finite value (0.0 when there is none).
    pub max: f64,
    /// Number of finite values.
    pub num: f64,
    /// Sum of the finite values.
    pub sum: f64,
    /// Sum of their squares.
    pub sum_squares: f64,
    /// Right edge of each bucket, ascending.
    pub bucket_limit: Vec<f64>,
    /// Count of values in each bucket, as `f64` as in the proto.
    pub bucket: Vec<f64>,
}

/// TensorFlow's default bucket limits: `±1e-12 * 1.1^k` up to 1e20, 0, and
/// `±f64::MAX`. Same edges TF's own histogram summaries use, so runs written by
/// either look alike; each bucket is 10% wide, i.e. fine resolution at any scale.
fn default_bucket_limits() -> &'static [f64] {
    static LIMITS: OnceLock<Vec<f64>> = OnceLock::new();
    LIMITS.get_or_init(|| {
        let mut pos = Vec::new();
        let mut v = 1.0e-12;
        while v < 1.0e20 {
            pos.push(v);
            v *= 1.1;
        }
        pos.push(f64::MAX);
        let mut all: Vec<f64> = pos.iter().rev().map(|v| -v).collect();
        all.push(0.0);
        all.extend_from_slice(&pos);
        all
    })
}

impl Histogram {
    /// Builds a histogram on TensorFlow's default exponential buckets (see
    /// `default_bucket_limits`): interior runs of empty buckets are collapsed
    /// into one as TF does, and empty buckets at either end are dropped.
    ///
    /// Non-finite values (NaN, ±Inf) are skipped: they have no bucket and would
    /// poison min/max/sum. With no finite values the result is an empty
    /// histogram (`num = 0`, `min = max = 0`, one empty bucket up to `f64::MAX`),
    /// which TensorBoard displays as having no data.
    pub fn from_values(values: &[f32]) -> Histogram {
        let limits = default_bucket_limits();
        let mut counts = vec![0.0f64; limits.len()];
        let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
        let (mut num, mut sum, mut sum_squares) = (0.0f64, 0.0f64, 0.0f64);
        for &v in values {
            if !v.is_finite() {
                continue;
            }
            let x = f64::from(v);
            // upper_bound, as in TF: bucket i holds [limit[i-1], limit[i]).
            let idx = limits.partition_point(|&l| l <= x).min(limits.len() - 1);
            counts[idx] += 1.0;
            min = min.min(x);
            max = max.max(x);
            num += 1.0;
            sum += x;
            sum_squares += x * x;
        }
        if num == 0.0 {
            return Histogram {
                min: 0.0,
                max: 0.0,
                num: 0.0,
                sum: 0.0,
                sum_squares: 0.0,
                bucket_limit: vec![f64::MAX],
                bucket: vec![0.0],
            };
        }
        // Collapse each run of empty buckets into one (TF's EncodeToProto),
        // and, unlike TF, drop the empty runs at both ends: TensorBoard's fast
        // (Rust) loader uses `min`/`max` as outer edges without trimming, so
        // TF's leading/trailing empty buckets show up as "backwards" bins.
        let first = counts.iter().position(|&c| c > 0.0).unwrap_or(0);
        let last = counts.iter().rposition(|&c| c > 0.0).unwrap_or(0);
        let (mut bucket_limit, mut bucket) = (Vec::new(), Vec::new());
        let mut i = first;
        while i <= last {
            let mut end = limits[i];
            let count = counts[i];
            i += 1;
            if count <= 0.0 {
                while i <= last && counts[i] <= 0.0 {
                    end = limits[i];
                    i += 1;
                }
            }
            bucket_limit.push(end);
            bucket.push(count);
        }
        Histogram {
            min,
            max,
            num,
            sum,
            sum_squares,
            bucket_limit,
            bucket,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_edge_cases() {
        let empty = Histogram::from_values(&[]);
        assert_eq!(empty.num, 0.0);
        assert_eq!(empty.bucket_limit, vec![f64::MAX]);
        assert_eq!(empty, Histogram::from_values(&[f32::NAN, f32::INFINITY]));

        let h = Histogram::from_values(&[f32::MAX, f32::MIN, f32::NEG_INFINITY]);
        assert_eq!(h.num, 2.0);
        assert_eq!(h.bucket.iter().sum::<f64>(), 2.0);

        // Each value lands in the bucket whose right edge is just above it.
        let h = Histogram::from_values(&[-5.0, 1.0]);
        assert_eq!(h.bucket.len(), 3); // value, collapsed empty run, value
        assert!(h.bucket_limit[0] > -5.0 && h.bucket_limit[0] / -5.0 > 1.0 / 1.11);
        assert!(h.bucket_limit[2] > 1.0 && h.bucket_limit[1] <= 1.0);
        assert!(h.bucket_limit[2] / h.bucket_limit[1] < 1.11);
        // No empty buckets at either end (see `from_values`).
        let h = Histogram::from_values(&[0.5; 3]);
        assert_eq!(h.bucket, vec![3.0]);
    }
}
