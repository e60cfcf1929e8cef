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

/// Where [`bucket_index`] starts and ends its search, by an f32's biased exponent `e`:
/// `(pos, neg)`, with `pos[e]` the bucket of `2^(e-127)` and `neg[e]` that of `-2^(e-127)`
/// (`e = 0`: of 0). Every f32 of exponent `e` lies between two neighbouring entries, and
/// the bucket of a value grows with it, so its bucket lies between theirs: about 8 limits
/// apart (an octave of 10% buckets) instead of all ~1,500.
fn exponent_table() -> &'static (Vec<usize>, Vec<usize>) {
    static TABLE: OnceLock<(Vec<usize>, Vec<usize>)> = OnceLock::new();
    TABLE.get_or_init(|| {
        let limits = default_bucket_limits();
        let at = |x: f64| limits.partition_point(|&l| l <= x);
        let power = |e: i32| if e == 0 { 0.0 } else { 2f64.powi(e - 127) };
        let pos = (0..=255).map(|e| at(power(e))).collect();
        let neg = (0..=255).map(|e| at(-power(e))).collect();
        (pos, neg)
    })
}

/// The bucket of a finite `v`: `limits.partition_point(|l| l <= v)` (upper bound, as in
/// TF), searched only between the entries of [`exponent_table`] around `v` (the bucket
/// search was most of a histogram's cost).
fn bucket_index(limits: &[f64], v: f32) -> usize {
    let (pos, neg) = exponent_table();
    let bits = v.to_bits();
    // At most 254 for a finite value, so `e + 1` is in the table.
    let e = ((bits >> 23) & 0xff) as usize;
    // |v| is in [2^(e-127), 2^(e-126)) (from 0 when e = 0).
    let (lo, hi) = match bits >> 31 {
        0 => (pos[e], pos[e + 1]),
        _ => (neg[e + 1], neg[e]),
    };
    let x = f64::from(v);
    lo + limits[lo..hi.min(limits.len())].partition_point(|&l| l <= x)
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
            let idx = bucket_index(limits, v).min(limits.len() - 1);
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

    /// The narrowed search finds the bucket the full one does, for every kind of f32:
    /// both signs, zeros, subnormals, the limits themselves and their neighbours, powers
    /// of two and a sweep of exponents.
    #[test]
    fn bucket_index_is_the_full_searchs_bucket() {
        let limits = default_bucket_limits();
        let full = |v: f32| limits.partition_point(|&l| l <= f64::from(v));
        let mut values = vec![0.0f32, -0.0, f32::MIN_POSITIVE, f32::MAX, f32::MIN];
        values.push(f32::from_bits(1));
        values.push(-f32::from_bits(1));
        for &l in limits {
            let l = l as f32;
            if l.is_finite() {
                values.extend([l, l.next_up(), l.next_down()]);
            }
        }
        for e in -149..128 {
            let p = 2f32.powi(e);
            values.extend([p, -p, p.next_up(), -p.next_down(), p * 1.37, -p * 1.91]);
        }
        let mut state = 0x9e37_79b9u32;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            values.push(f32::from_bits(state));
        }
        let mut checked = 0;
        for v in values.into_iter().filter(|v| v.is_finite()) {
            assert_eq!(bucket_index(limits, v), full(v), "{v:e}");
            checked += 1;
        }
        assert!(checked > 150_000, "{checked}");
    }
}
