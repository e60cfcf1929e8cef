//! Helpers shared by the metric tests: feeding a [`MetricSet`] and reading
//! one value back by name.

use super::{Average, Metric, MetricSet};

/// The value `set` computes for the metric called `name` (NaN if absent).
pub(super) fn value(set: &MetricSet, name: &str) -> f64 {
    set.compute()
        .into_iter()
        .find(|(n, _)| n == name)
        .map_or(f64::NAN, |(_, v)| v)
}

/// Row-major scores whose argmax is `preds[i]`.
pub(super) fn one_hot(preds: &[u32], num_classes: usize) -> Vec<f32> {
    let mut scores = vec![0.0; preds.len() * num_classes];
    for (i, &p) in preds.iter().enumerate() {
        scores[i * num_classes + p as usize] = 1.0;
    }
    scores
}

/// Loss, accuracy, and precision/recall/F1 for each averaging in `avgs`.
pub(super) fn all_classification(avgs: &[Average]) -> Vec<Metric> {
    let mut ms = vec![Metric::Loss, Metric::Accuracy];
    for &a in avgs {
        ms.extend([Metric::Precision(a), Metric::Recall(a), Metric::F1(a)]);
    }
    ms
}
