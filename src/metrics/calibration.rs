//! Choices made after validation from its outputs: the decision threshold
//! for binary scores, and which candidates (models, checkpoints) to keep or
//! ensemble. Everything is exact and tie-broken deterministically, so the
//! same validation outputs always give the same choice.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use super::base::{
    at_least_one, check_binary_scores, check_not_nan, check_score_matrix, check_targets,
};
use super::{argmax, ConfusionMatrix, Direction, Metric, MetricError};

/// Which threshold wins when several score the same: metrics are flat
/// between distinct scores, so ties are the rule rather than the exception.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TiePreference {
    /// The smallest of the tied thresholds.
    Lowest,
    /// The largest of the tied thresholds.
    Highest,
    /// Median of the tied thresholds in sorted order (lower one on an even
    /// count): the centre of a plateau is the least sensitive to drift.
    Middle,
}

/// `steps + 1` evenly spaced thresholds `0, 1/steps, ..., 1` (steps >= 1),
/// each the nearest f32 to `i / steps`.
pub fn default_grid(steps: usize) -> Vec<f32> {
    let steps = steps.max(1);
    (0..=steps)
        .map(|i| (i as f64 / steps as f64) as f32)
        .collect()
}

/// Number of values in an ascending `sorted` slice that are `>= t`.
fn count_at_least(sorted: &[f32], t: f32) -> u64 {
    (sorted.len() - sorted.partition_point(|&s| s < t)) as u64
}

/// Best decision threshold for positive-class `scores` (predict 1 where
/// `score >= threshold`) over `grid`, which is sorted and deduplicated first
/// so its order does not matter. `metric` is accuracy, or precision / recall
/// / F1 with any averaging. Returns the threshold and its metric value.
pub fn best_threshold(
    scores: &[f32],
    targets: &[u32],
    metric: Metric,
    grid: &[f32],
    prefer: TiePreference,
) -> Result<(f32, f64), MetricError> {
    if !matches!(
        metric,
        Metric::Accuracy | Metric::Precision(_) | Metric::Recall(_) | Metric::F1(_)
    ) {
        return Err(MetricError::Unsupported {
            metric: metric.name(),
            reason: "threshold search needs accuracy, precision, recall or f1".to_string(),
        });
    }
    check_binary_scores(scores, targets)?;
    if scores.is_empty() {
        return Err(empty("scores", "at least one sample"));
    }
    check_not_nan("threshold", grid)?;
    let mut thresholds = grid.to_vec();
    thresholds.sort_by(f32::total_cmp);
    thresholds.dedup_by(|a, b| a == b);
    if thresholds.is_empty() {
        return Err(empty("grid", "at least one threshold"));
    }

    // Sorted per-class scores turn each confusion count into a binary search.
    let (mut pos, mut neg): (Vec<f32>, Vec<f32>) = (Vec::new(), Vec::new());
    for (&s, &t) in scores.iter().zip(targets) {
        if t == 1 { &mut pos } else { &mut neg }.push(s);
    }
    pos.sort_by(f32::total_cmp);
    neg.sort_by(f32::total_cmp);
    let mut values = Vec::with_capacity(thresholds.len());
    for &t in &thresholds {
        let tp = count_at_least(&pos, t);
        let fp = count_at_least(&neg, t);
        let cm = ConfusionMatrix::binary(neg.len() as u64 - fp, fp, pos.len() as u64 - tp, tp);
        values.push(cm.value(metric)?);
    }

    let best = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let tied: Vec<usize> = (0..values.len()).filter(|&i| values[i] == best).collect();
    let pick = match prefer {
        TiePreference::Lowest => tied.first(),
        TiePreference::Highest => tied.last(),
        TiePreference::Middle => tied.get(tied.len().saturating_sub(1) / 2),
    };
    match pick {
        Some(&i) => Ok((thresholds[i], values[i])),
        // Unreachable: the data is non-empty, so every value is finite.
        None => Err(empty("metric values", "a finite value")),
    }
}

fn empty(name: &'static str, expected: &str) -> MetricError {
    MetricError::InvalidParameter {
        name,
        value: "empty".to_string(),
        expected: expected.to_string(),
    }
}

/// Orders `a` before `b` when it is better; NaN sorts last.
fn better_first(direction: Direction, a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => match direction {
            Direction::Max => b.partial_cmp(&a).unwrap_or(Ordering::Equal),
            Direction::Min => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
        },
    }
}

/// Indices of the `k` best `values` (all of them if `k` exceeds the
/// length), best first; ties go to the lower index and NaN ranks last.
pub fn top_k_exact(values: &[f64], k: usize, direction: Direction) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    // Stable sort: equal values keep ascending index order.
    order.sort_by(|&a, &b| better_first(direction, values[a], values[b]));
    order.truncate(k);
    order
}

/// Rows of `sum + candidate` whose first maximum is the target.
fn hits_with(sum: &[f64], candidate: &[f32], num_classes: usize, targets: &[u32]) -> u64 {
    let rows = sum
        .chunks_exact(num_classes)
        .zip(candidate.chunks_exact(num_classes));
    let mut row = Vec::with_capacity(num_classes);
    let mut hits = 0;
    for ((s, c), &t) in rows.zip(targets) {
        row.clear();
        row.extend(s.iter().zip(c).map(|(a, b)| a + f64::from(*b)));
        hits += u64::from(argmax(&row) == t as usize);
    }
    hits
}

/// Caruana et al. (2004) forward ensemble selection. Each candidate is a
/// row-major `targets.len() x num_classes` score matrix over the same
/// samples (probabilities in the original method). Starting from the best
/// single candidate, repeatedly add the one whose inclusion in the averaged
/// prediction gives the highest accuracy, while that strictly improves and
/// fewer than `max_size` are chosen. With `allow_repeats` a candidate may be
/// added again, which weights it. Ties go to the lower index; the argmax is
/// taken over the f64 sum, equivalent to the mean without a division that
/// could round distinct values together. Returns the chosen indices in the
/// order added and the ensemble's accuracy.
pub fn greedy_subset(
    candidates: &[Vec<f32>],
    num_classes: usize,
    targets: &[u32],
    max_size: usize,
    allow_repeats: bool,
) -> Result<(Vec<usize>, f64), MetricError> {
    if candidates.is_empty() {
        return Err(empty("candidates", "at least one candidate"));
    }
    if targets.is_empty() {
        return Err(empty("targets", "at least one sample"));
    }
    if num_classes == 0 {
        return Err(at_least_one("num_classes"));
    }
    if max_size == 0 {
        return Err(at_least_one("max_size"));
    }
    check_targets(targets, num_classes)?;
    for (i, c) in candidates.iter().enumerate() {
        let (name, value_name) = (format!("candidate {i}"), format!("candidate {i} score"));
        check_score_matrix(&name, &value_name, c, num_classes, targets)?;
    }

    // Every candidate has this length now, so the product cannot overflow.
    let mut sum = vec![0.0f64; targets.len() * num_classes];
    let mut chosen: Vec<usize> = Vec::new();
    let mut best_hits = 0;
    while chosen.len() < max_size {
        let mut pick: Option<(usize, u64)> = None;
        for (i, c) in candidates.iter().enumerate() {
            if !allow_repeats && chosen.contains(&i) {
                continue;
            }
            let hits = hits_with(&sum, c, num_classes, targets);
            if pick.is_none_or(|(_, h)| hits > h) {
                pick = Some((i, hits));
            }
        }
        let Some((i, hits)) = pick else { break };
        if !chosen.is_empty() && hits <= best_hits {
            break;
        }
        for (s, &v) in sum.iter_mut().zip(&candidates[i]) {
            *s += f64::from(v);
        }
        chosen.push(i);
        best_hits = hits;
    }
    Ok((chosen, best_hits as f64 / targets.len() as f64))
}

#[cfg(test)]
mod tests {
    use super::super::Average;
    use super::*;

    // Scores [0.125, 0.625, 0.375, 0.875], targets [0, 0, 1, 1]; predictions
    // and accuracy per threshold:
    //   0      -> [1,1,1,1] 2/4      0.5    -> [0,1,0,1] 2/4
    //   0.25   -> [0,1,1,1] 3/4      0.75   -> [0,0,0,1] 3/4
    //   0.8125 -> [0,0,0,1] 3/4      1      -> [0,0,0,0] 2/4
    const SCORES: [f32; 4] = [0.125, 0.625, 0.375, 0.875];
    const TARGETS: [u32; 4] = [0, 0, 1, 1];

    fn search(metric: Metric, grid: &[f32], prefer: TiePreference) -> (f32, f64) {
        best_threshold(&SCORES, &TARGETS, metric, grid, prefer).unwrap()
    }

    #[test]
    fn default_grid_is_even() {
        assert_eq!(default_grid(4), [0.0, 0.25, 0.5, 0.75, 1.0]);
        assert_eq!(default_grid(0), [0.0, 1.0]);
        let g = default_grid(100);
        assert_eq!((g.len(), g[1], g[100]), (101, 0.01, 1.0));
    }

    #[test]
    fn threshold_ties_follow_preference() {
        use TiePreference::*;
        let grid = [0.0, 0.25, 0.5, 0.75, 0.8125, 1.0];
        // Accuracy 3/4 at 0.25, 0.75, 0.8125: median of three is 0.75.
        assert_eq!(search(Metric::Accuracy, &grid, Lowest), (0.25, 0.75));
        assert_eq!(search(Metric::Accuracy, &grid, Middle), (0.75, 0.75));
        assert_eq!(search(Metric::Accuracy, &grid, Highest), (0.8125, 0.75));
        // Two tied (0.25, 0.75): Middle takes the lower. Order and duplicates
        // in the grid do not matter.
        let grid = [1.0, 0.75, 0.5, 0.25, 0.0, 0.25];
        assert_eq!(search(Metric::Accuracy, &grid, Middle), (0.25, 0.75));
        assert_eq!(search(Metric::Accuracy, &grid, Highest), (0.75, 0.75));
    }

    #[test]
    fn threshold_for_binary_f1_and_precision() {
        let grid = default_grid(4);
        // F1 = 2tp / (2tp + fp + fn): t=0: 4/6, 0.25: 4/5 (tp 2, fp 1),
        // 0.5: 2/4, 0.75: 2/3 (tp 1, fn 1), 1: 0.
        let f1 = Metric::F1(Average::Binary);
        assert_eq!(search(f1, &grid, TiePreference::Middle), (0.25, 0.8));
        // Precision is 1 at 0.75 only (1/1); at 1.0 nothing is predicted
        // positive, so 0/0 counts as 0 and does not tie.
        let p = Metric::Precision(Average::Binary);
        assert_eq!(search(p, &grid, TiePreference::Highest), (0.75, 1.0));
        // Recall is 1 at 0 and 0.25.
        let r = Metric::Recall(Average::Binary);
        assert_eq!(search(r, &grid, TiePreference::Highest), (0.25, 1.0));
    }

    #[test]
    fn threshold_errors_name_the_problem() {
        let grid = default_grid(4);
        let prefer = TiePreference::Lowest;
        let err = best_threshold(&SCORES, &TARGETS, Metric::RocAuc, &grid, prefer);
        assert!(err.unwrap_err().to_string().contains("roc_auc"));
        let err = best_threshold(&SCORES, &[0, 1, 2, 0], Metric::Accuracy, &grid, prefer);
        assert_eq!(
            err.unwrap_err().to_string(),
            "target 2 at index 2 is out of range for 2 classes"
        );
        let err = best_threshold(
            &SCORES,
            &TARGETS,
            Metric::Accuracy,
            &[0.5, f32::NAN],
            prefer,
        );
        assert_eq!(err.unwrap_err().to_string(), "threshold at index 1 is NaN");
        assert!(best_threshold(&SCORES, &TARGETS, Metric::Accuracy, &[], prefer).is_err());
        assert!(best_threshold(&SCORES, &[0], Metric::Accuracy, &grid, prefer).is_err());
        assert!(best_threshold(&[], &[], Metric::Accuracy, &grid, prefer).is_err());
    }

    #[test]
    fn top_k_exact_breaks_ties_by_index_and_ranks_nan_last() {
        let v = [0.5, 0.9, f64::NAN, 0.9, 0.1];
        assert_eq!(top_k_exact(&v, 3, Direction::Max), [1, 3, 0]);
        assert_eq!(top_k_exact(&v, 3, Direction::Min), [4, 0, 1]);
        assert_eq!(top_k_exact(&v, 10, Direction::Max), [1, 3, 0, 4, 2]);
        assert_eq!(top_k_exact(&[0.0, -0.0], 1, Direction::Max), [0]);
        assert!(top_k_exact(&v, 0, Direction::Max).is_empty());
    }

    /// Two-class rows from per-sample margins p(target) - p(other).
    fn from_margins(margins: &[f32], targets: &[u32]) -> Vec<f32> {
        let mut out = Vec::new();
        for (&m, &t) in margins.iter().zip(targets) {
            let (hit, miss) = (0.5 + m / 2.0, 0.5 - m / 2.0);
            out.extend(if t == 0 { [hit, miss] } else { [miss, hit] });
        }
        out
    }

    #[test]
    fn greedy_pair_beats_each_single() {
        // Margins (> 0 means correct); the sum's margin is the sum of margins.
        //          s0      s1      s2      hits
        // A     +0.75   +0.25   -0.25     2
        // B     -0.25   +0.5    +0.75     2
        // C     +0.5    -0.5    -0.5      1
        // Step 1 picks A (ties B, lower index). Step 2: A+B = (+0.5, +0.75,
        // +0.5) 3 hits; A+C = (+1.25, -0.25, -0.75) 1. Step 3: A+B+C =
        // (+1, +0.25, 0): a tie in s2 goes to class 0 = target, 3 hits, no
        // strict gain, so stop at [A, B] with accuracy 1.
        let targets = [0, 1, 0];
        let cands = [
            from_margins(&[0.75, 0.25, -0.25], &targets),
            from_margins(&[-0.25, 0.5, 0.75], &targets),
            from_margins(&[0.5, -0.5, -0.5], &targets),
        ];
        let got = greedy_subset(&cands, 2, &targets, 10, false).unwrap();
        assert_eq!(got, (vec![0, 1], 1.0));
        // max_size 1 keeps the best single.
        let got = greedy_subset(&cands, 2, &targets, 1, false).unwrap();
        assert_eq!(got, (vec![0], 2.0 / 3.0));
    }

    #[test]
    fn greedy_repeats_weight_a_candidate() {
        // targets [0, 1, 0, 1]; margins:
        //          s0       s1       s2      s3      hits
        // A       +1     -0.125    +0.5   -0.125    2
        // B     -0.75    +0.5     -0.75   +0.5      2
        // A+B   +0.25    +0.375   -0.25   +0.375    3
        // 2A+B  +1.25    +0.25    +0.25   +0.25     4
        // A+2B  -0.5     ...      -1      ...       2
        // Without repeats: [A, B] at 3/4; with repeats A is added again.
        let targets = [0, 1, 0, 1];
        let cands = [
            from_margins(&[1.0, -0.125, 0.5, -0.125], &targets),
            from_margins(&[-0.75, 0.5, -0.75, 0.5], &targets),
        ];
        let once = greedy_subset(&cands, 2, &targets, 10, false).unwrap();
        assert_eq!(once, (vec![0, 1], 0.75));
        let repeated = greedy_subset(&cands, 2, &targets, 10, true).unwrap();
        assert_eq!(repeated, (vec![0, 1, 0], 1.0));
    }

    #[test]
    fn greedy_errors_name_the_candidate() {
        let cands = [vec![0.5, 0.5], vec![0.5]];
        let err = greedy_subset(&cands, 2, &[0], 3, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "candidate 1 has length 1 but targets (1) x num_classes (2) has length 2"
        );
        let err = greedy_subset(&[vec![0.5, f32::NAN]], 2, &[0], 3, false).unwrap_err();
        assert_eq!(err.to_string(), "candidate 0 score at index 1 is NaN");
        assert!(greedy_subset(&[], 2, &[0], 3, false).is_err());
        assert!(greedy_subset(&[vec![0.5, 0.5]], 2, &[0], 0, false).is_err());
        assert!(greedy_subset(&[vec![0.5, 0.5]], 2, &[2], 1, false).is_err());
    }
}
