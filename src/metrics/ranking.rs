//! Ranking quality of binary scores: the exact ROC-AUC.

use serde::{Deserialize, Serialize};

use super::base::check_binary_scores;
use super::MetricError;

/// Every (score, label) pair, so the AUC is exact rather than binned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RocAucAccumulator {
    pub(super) scores: Vec<f64>,
    pub(super) positive: Vec<bool>,
}

impl RocAucAccumulator {
    /// `scores` are positive-class scores (probabilities or logits: only
    /// their order matters); `targets` must be 0 or 1.
    pub fn update(&mut self, scores: &[f32], targets: &[u32]) -> Result<(), MetricError> {
        check_binary_scores(scores, targets)?;
        for (&s, &t) in scores.iter().zip(targets) {
            self.push(f64::from(s), t == 1);
        }
        Ok(())
    }

    pub(super) fn push(&mut self, score: f64, positive: bool) {
        // `+ 0.0` turns -0.0 into 0.0 so that equal scores sort together.
        self.scores.push(score + 0.0);
        self.positive.push(positive);
    }

    /// P(score of a random positive > score of a random negative), ties
    /// counting 1/2 -- equal to scikit-learn's `roc_auc_score`. Computed with
    /// integer counts, so the only rounding is the final division. NaN when
    /// either class is missing.
    pub fn value(&self) -> f64 {
        let mut pairs: Vec<(f64, bool)> = self
            .scores
            .iter()
            .copied()
            .zip(self.positive.iter().copied())
            .collect();
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let n_pos = pairs.iter().filter(|p| p.1).count() as u128;
        let n_neg = pairs.len() as u128 - n_pos;
        if n_pos == 0 || n_neg == 0 {
            return f64::NAN;
        }
        // Twice the Mann-Whitney U: each positive earns 2 per negative below
        // it and 1 per negative tied with it.
        let mut twice_u: u128 = 0;
        let mut neg_below: u128 = 0;
        for group in pairs.chunk_by(|a, b| a.0 == b.0) {
            let pos = group.iter().filter(|p| p.1).count() as u128;
            let neg = group.len() as u128 - pos;
            twice_u += pos * (2 * neg_below + neg);
            neg_below += neg;
        }
        twice_u as f64 / (2 * n_pos * n_neg) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roc_auc_exact_with_ties() {
        let auc = |scores: &[f32], targets: &[u32]| {
            let mut acc = RocAucAccumulator::default();
            acc.update(scores, targets).unwrap();
            acc.value()
        };
        // Positives 0.35 (beats 0.1 only) and 0.8 (beats both): 3/4.
        assert_eq!(auc(&[0.1, 0.4, 0.35, 0.8], &[0, 0, 1, 1]), 0.75);
        // Positive 0.5 ties two negatives (2 x 0.5) and beats 0.25: 2;
        // positive 0.75 beats all 3: 3. (2 + 3) / (2 * 3) = 5/6.
        // Checked against scikit-learn 1.9.1 (0.8333333333333334).
        assert_eq!(
            auc(&[0.5, 0.5, 0.5, 0.25, 0.75], &[1, 0, 0, 0, 1]),
            0.8333333333333334
        );
        // Positives 0.6: 3 below + 2 ties -> 4; 0.9: 5; 0.3: 2 + 0.5; 0.8: 5;
        // 0.5: 3. Sum 19.5 / 25 = 0.78. Checked against scikit-learn 1.9.1.
        let scores = [0.2, 0.6, 0.6, 0.9, 0.1, 0.6, 0.3, 0.3, 0.8, 0.5];
        assert_eq!(auc(&scores, &[0, 1, 0, 1, 0, 0, 1, 0, 1, 1]), 0.78);
        // -0.0 and 0.0 are the same score: one tie, 0.5.
        assert_eq!(auc(&[-0.0, 0.0], &[1, 0]), 0.5);
        // One class only: undefined.
        assert!(auc(&[0.1, 0.9], &[1, 1]).is_nan());
        assert!(RocAucAccumulator::default().value().is_nan());
    }
}
