//! `roc_auc` for more than two classes: one-vs-rest, macro-averaged, over the softmax
//! probabilities, exact (tied scores count 1/2) — scikit-learn's
//! `roc_auc_score(y, softmax(logits), multi_class="ovr", average="macro")`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::base::{check_score_matrix, check_targets};
use super::streaming::{BatchView, StreamingMetric};
use super::{MetricError, RocAucAccumulator};
use crate::error::Result;

/// Every sample's softmax probabilities and class, so each class's AUC is exact.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OvrRocAuc {
    num_classes: usize,
    /// Row-major `samples x num_classes` probabilities.
    probs: Vec<f64>,
    targets: Vec<u32>,
}

/// The saved state: probabilities as their IEEE bits, so they read back exactly.
#[derive(Serialize, Deserialize)]
struct Saved {
    num_classes: usize,
    probs: Vec<u64>,
    targets: Vec<u32>,
}

impl OvrRocAuc {
    /// For `num_classes` classes (at least 1).
    pub fn new(num_classes: usize) -> std::result::Result<Self, MetricError> {
        if num_classes == 0 {
            return Err(super::base::at_least_one("num_classes"));
        }
        Ok(Self {
            num_classes,
            ..Self::default()
        })
    }

    /// Adds row-major logits `scores` (`targets.len() x num_classes`) and their classes;
    /// checked first, so an error changes nothing.
    pub fn push(
        &mut self,
        scores: &[f32],
        targets: &[u32],
    ) -> std::result::Result<(), MetricError> {
        let k = self.num_classes;
        check_score_matrix("scores", "score", scores, k, targets)?;
        check_targets(targets, k)?;
        for row in scores.chunks_exact(k) {
            self.probs.extend(softmax(row));
        }
        self.targets.extend_from_slice(targets);
        Ok(())
    }

    /// The mean over classes of each class's one-vs-rest AUC. A class that has no
    /// sample, or only samples, of its own (its AUC is undefined) is left out of the mean
    /// (scikit-learn refuses such data); NaN when no class has an AUC.
    pub fn value(&self) -> f64 {
        let k = self.num_classes;
        let mut sum = 0.0;
        let mut defined = 0u32;
        for class in 0..k {
            let mut acc = RocAucAccumulator::default();
            for (row, &t) in self.probs.chunks_exact(k).zip(&self.targets) {
                acc.push(row[class], t as usize == class);
            }
            let auc = acc.value();
            if !auc.is_nan() {
                sum += auc;
                defined += 1;
            }
        }
        if defined == 0 {
            f64::NAN
        } else {
            sum / f64::from(defined)
        }
    }
}

/// Softmax of one row of logits, in f64 (max subtracted first).
fn softmax(row: &[f32]) -> Vec<f64> {
    let max = row
        .iter()
        .fold(f64::NEG_INFINITY, |m, &s| m.max(f64::from(s)));
    let exps: Vec<f64> = row.iter().map(|&s| (f64::from(s) - max).exp()).collect();
    let total: f64 = exps.iter().sum();
    exps.into_iter().map(|e| e / total).collect()
}

impl StreamingMetric for OvrRocAuc {
    fn name(&self) -> String {
        "roc_auc".into()
    }

    fn update(&mut self, batch: &BatchView) -> Result<()> {
        let Some(targets) = batch.classes() else {
            return Err(MetricError::Unsupported {
                metric: "roc_auc".into(),
                reason: "needs class ids as targets".into(),
            }
            .into());
        };
        if batch.columns != self.num_classes {
            return Err(MetricError::InvalidParameter {
                name: "num_classes",
                value: batch.columns.to_string(),
                expected: format!("{} score columns", self.num_classes),
            }
            .into());
        }
        Ok(self.push(batch.scores, targets)?)
    }

    fn values(&self) -> Vec<(String, f64)> {
        vec![(self.name(), self.value())]
    }

    fn reset(&mut self) {
        self.probs.clear();
        self.targets.clear();
    }

    fn save_state(&self) -> Value {
        let saved = Saved {
            num_classes: self.num_classes,
            probs: self.probs.iter().map(|p| p.to_bits()).collect(),
            targets: self.targets.clone(),
        };
        serde_json::to_value(saved).unwrap_or(Value::Null)
    }

    fn load_state(&mut self, state: Value) -> Result<()> {
        let bad = |reason: String| MetricError::Unsupported {
            metric: "roc_auc".into(),
            reason: format!("saved state does not load: {reason}"),
        };
        let s: Saved = serde_json::from_value(state).map_err(|e| bad(e.to_string()))?;
        if s.num_classes != self.num_classes
            || s.probs.len() != s.targets.len().saturating_mul(s.num_classes)
        {
            return Err(bad(format!(
                "{} classes and {} values for {} samples, expected {} classes",
                s.num_classes,
                s.probs.len(),
                s.targets.len(),
                self.num_classes
            ))
            .into());
        }
        self.probs = s.probs.into_iter().map(f64::from_bits).collect();
        self.targets = s.targets;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Logits whose softmax is proportional to `p` (ln p).
    fn logits(p: &[f64]) -> Vec<f32> {
        p.iter().map(|&x| x.ln() as f32).collect()
    }

    #[test]
    fn one_vs_rest_macro_by_hand() {
        // Hand-computed (scikit-learn is not at hand; the rule is its own: per-class
        // Mann-Whitney AUC of the probabilities, ties 1/2, unweighted mean).
        // Three classes, four samples; probabilities (rows) and classes:
        //   s0 [0.5, 0.3, 0.2] class 0     s1 [0.2, 0.5, 0.3] class 1
        //   s2 [0.1, 0.2, 0.7] class 2     s3 [0.4, 0.4, 0.2] class 1
        // class 0: positive s0 (0.5) beats every negative (0.2, 0.1, 0.4) -> 1.
        // class 1: positives s1 0.5, s3 0.4 vs negatives s0 0.3, s2 0.2 -> 4/4 = 1.
        // class 2: positive s2 0.7 beats 0.2, 0.3, 0.2 -> 1. Macro 1.
        let mut m = OvrRocAuc::new(3).unwrap();
        let rows = [
            [0.5, 0.3, 0.2],
            [0.2, 0.5, 0.3],
            [0.1, 0.2, 0.7],
            [0.4, 0.4, 0.2],
        ];
        let scores: Vec<f32> = rows.iter().flat_map(|r| logits(r)).collect();
        m.push(&scores, &[0, 1, 2, 1]).unwrap();
        assert_eq!(m.value(), 1.0);

        // Rows s0 [0.5, 0.3, 0.2], s1 [0.2, 0.5, 0.3], s2 [0.1, 0.2, 0.7] and s3 equal to
        // s0 (so its ties with s0 are exact), classes [2, 1, 0, 1]:
        // class 0: positive s2 (0.1) is below every negative (0.5, 0.2, 0.5) -> 0.
        // class 1: positives s1 0.5, s3 0.3 vs negatives s0 0.3, s2 0.2: s1 beats both
        //   (2), s3 ties s0 and beats s2 (1.5) -> 3.5/4.
        // class 2: positive s0 0.2 vs negatives 0.3, 0.7, 0.2 (s3, a tie) -> 0.5/3.
        // Macro (0 + 7/8 + 1/6) / 3 = 25/72; in f64, summed in class order and divided
        // as numpy's `average` does: 0.34722222222222227 (25/72 rounds one ulp lower).
        let rows = [rows[0], rows[1], rows[2], rows[0]];
        let scores: Vec<f32> = rows.iter().flat_map(|r| logits(r)).collect();
        let mut m = OvrRocAuc::new(3).unwrap();
        m.push(&scores, &[2, 1, 0, 1]).unwrap();
        assert_eq!(m.value(), 0.34722222222222227);
    }

    #[test]
    fn softmax_of_logits_not_the_logits_decides() {
        // Class 1's logit is higher in s1 (2 > 1) but its probability is lower, because
        // s1's other logits are higher still: p1(s0) = e/(e+2) = 0.576..,
        // p1(s1) = e^2/(e^2+2e^3) = 1/(1+2e) = 0.155... Class 1 positive s0 beats
        // negative s1 -> 1, where the raw logits would give 0.
        let scores = [0.0, 1.0, 0.0, 3.0, 2.0, 3.0];
        let mut m = OvrRocAuc::new(3).unwrap();
        m.push(&scores, &[1, 0]).unwrap();
        // class 0: positive s1 p0 = e^3/(2e^3+e^2) vs negative s0 p0 = 1/(2+e): s1 higher
        // -> 1. class 2: no positive -> left out. Mean of (1, 1) = 1.
        assert_eq!(m.value(), 1.0);
    }

    #[test]
    fn undefined_classes_are_left_out_and_state_round_trips() {
        let mut m = OvrRocAuc::new(3).unwrap();
        assert!(m.value().is_nan());
        m.push(&[1.0, 0.0, 0.0], &[0]).unwrap();
        // One sample: every class lacks positives or negatives.
        assert!(m.value().is_nan());
        m.push(&[0.0, 1.0, 0.5, 0.25, 0.0, 1.0], &[1, 2]).unwrap();
        let mut copy = OvrRocAuc::new(3).unwrap();
        copy.load_state(m.save_state()).unwrap();
        assert_eq!(copy, m);
        assert_eq!(copy.value().to_bits(), m.value().to_bits());
        assert!(OvrRocAuc::new(4)
            .unwrap()
            .load_state(m.save_state())
            .is_err());
        let err = m.push(&[0.0, 1.0, f32::NAN], &[1]).unwrap_err();
        assert_eq!(err.to_string(), "score at index 2 is NaN");
        let err = m.push(&[0.0, 1.0, 0.0], &[3]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "target 3 at index 0 is out of range for 3 classes"
        );
        m.reset();
        assert!(m.value().is_nan());
    }
}
