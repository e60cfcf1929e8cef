//! Provisional metrics (replaced by the full streaming metrics module).
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricSet {
    pub loss_sum: f64,
    pub count: u64,
    pub correct: u64,
    pub classification: bool,
}

impl MetricSet {
    pub fn update_classification(&mut self, loss_sum: f64, scores: &[f32], num_classes: usize, targets: &[u32]) {
        self.classification = true;
        self.loss_sum += loss_sum;
        self.count += targets.len() as u64;
        for (row, &t) in scores.chunks(num_classes).zip(targets) {
            let mut best = 0;
            for c in 1..num_classes {
                if row[c] > row[best] {
                    best = c;
                }
            }
            if best as u32 == t {
                self.correct += 1;
            }
        }
    }
    pub fn compute(&self) -> Vec<(String, f64)> {
        let n = self.count as f64;
        let mut out = vec![("loss".to_string(), self.loss_sum / n)];
        if self.classification {
            out.push(("accuracy".to_string(), self.correct as f64 / n));
        }
        out
    }
}

impl MetricSet {
    pub fn update_regression(&mut self, loss_sum: f64, _pred: &[f32], target: &[f32]) {
        self.loss_sum += loss_sum;
        self.count += target.len() as u64;
    }
}
