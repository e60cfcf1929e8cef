//! The 1cycle policy (Smith & Topin 2017) as PyTorch's `OneCycleLR` computes it: warm up
//! from `max_lr / div_factor` to `max_lr`, then anneal to `initial / final_div_factor`.

use serde::{Deserialize, Serialize};

use super::schedule::LrSchedule;

/// How a phase of [`OneCycle`] moves from its start rate to its end rate.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Anneal {
    /// Half a cosine wave: `end + (start - end) / 2 * (1 + cos(pi * pct))`.
    #[default]
    Cos,
    /// A straight line: `start + (end - start) * pct`.
    Linear,
}

impl Anneal {
    fn at(self, start: f64, end: f64, pct: f64) -> f64 {
        match self {
            Anneal::Cos => end + (start - end) / 2.0 * ((std::f64::consts::PI * pct).cos() + 1.0),
            Anneal::Linear => (end - start) * pct + start,
        }
    }
}

/// The one-cycle schedule over `total_steps` optimizer steps. It ignores the optimizer's
/// own rate: it runs from `max_lr / div_factor` up to `max_lr` over the first
/// `pct_start` of the steps, then down to `max_lr / div_factor / final_div_factor` at the
/// last step (with `three_phase`: back to the initial rate first, then down). Steps past
/// `total_steps` keep the final rate (PyTorch refuses them). PyTorch's momentum cycling
/// is not done: the optimizers here have no momentum to cycle through a schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct OneCycle {
    /// The peak rate.
    pub max_lr: f64,
    /// Steps of the whole cycle (at least 1).
    pub total_steps: u64,
    /// Share of the cycle spent warming up, in (0, 1).
    pub pct_start: f64,
    /// The initial rate is `max_lr / div_factor`.
    pub div_factor: f64,
    /// The final rate is the initial rate over `final_div_factor`.
    pub final_div_factor: f64,
    /// Cosine or linear phases.
    pub anneal: Anneal,
    /// Three phases (up, back down to the initial rate, then to the final rate) instead
    /// of two (up, then down to the final rate).
    pub three_phase: bool,
}

impl LrSchedule for OneCycle {
    fn lr_at(&self, _base_lr: f64, step: u64) -> f64 {
        let initial = self.max_lr / self.div_factor;
        let min = initial / self.final_div_factor;
        let total = self.total_steps.max(1) as f64;
        let up_end = self.pct_start * total - 1.0;
        let phases: &[(f64, f64, f64)] = if self.three_phase {
            &[
                (up_end, initial, self.max_lr),
                (2.0 * self.pct_start * total - 2.0, self.max_lr, initial),
                (total - 1.0, initial, min),
            ]
        } else {
            &[
                (up_end, initial, self.max_lr),
                (total - 1.0, self.max_lr, min),
            ]
        };
        let step = (step as f64).min(total - 1.0);
        let mut start_step = 0.0;
        for (i, &(end_step, from, to)) in phases.iter().enumerate() {
            if step <= end_step || i + 1 == phases.len() {
                let span = end_step - start_step;
                // PyTorch divides by zero here (a phase of no steps); its end rate it is.
                let pct = if span > 0.0 {
                    (step - start_step) / span
                } else {
                    1.0
                };
                return self.anneal.at(from, to, pct);
            }
            start_step = end_step;
        }
        min
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cycle(anneal: Anneal, three_phase: bool) -> OneCycle {
        OneCycle {
            max_lr: 0.1,
            total_steps: 10,
            pct_start: 0.3,
            div_factor: 25.0,
            final_div_factor: 1e4,
            anneal,
            three_phase,
        }
    }

    fn rates(s: &OneCycle, n: u64) -> Vec<f64> {
        (0..n).map(|k| s.lr_at(123.0, k)).collect()
    }

    fn assert_close(ours: &[f64], theirs: &[f64]) {
        assert_eq!(ours.len(), theirs.len());
        for (a, b) in ours.iter().zip(theirs) {
            assert!(
                (a - b).abs() <= 1e-12 * b.abs().max(1e-6),
                "{ours:?} vs {theirs:?}"
            );
        }
    }

    /// `torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=10)`'s rates,
    /// from its formulas: phase ends 2 and 9, cosine annealing.
    #[test]
    fn two_cosine_phases_match_pytorch() {
        let want = [
            0.004,
            0.052,
            0.1,
            0.0950484632,
            0.0811745654,
            0.0611262022,
            0.0388741978,
            0.0188258346,
            0.0049519368,
            0.0000004,
        ];
        let got = rates(&cycle(Anneal::Cos, false), 10);
        for (a, b) in got.iter().zip(want) {
            assert!((a - b).abs() < 1e-10, "{got:?}");
        }
        // Past the end: the final rate.
        assert_eq!(cycle(Anneal::Cos, false).lr_at(0.0, 25), got[9]);
    }

    #[test]
    fn linear_and_three_phases_match_pytorch() {
        // Linear: up 0.004 -> 0.1 over steps 0..=2, down to 4e-7 over 2..=9.
        let lin = rates(&cycle(Anneal::Linear, false), 10);
        let down = |k: f64| 0.1 + (4e-7 - 0.1) * (k - 2.0) / 7.0;
        let want: Vec<f64> = [0.004, 0.052, 0.1]
            .into_iter()
            .chain((3..10).map(|k| down(k as f64)))
            .collect();
        assert_close(&lin, &want);
        // Three phases: ends 2, 4, 9.
        let three = rates(&cycle(Anneal::Linear, true), 10);
        let last = |k: f64| 0.004 + (4e-7 - 0.004) * (k - 4.0) / 5.0;
        let want: Vec<f64> = [0.004, 0.052, 0.1, 0.052, 0.004]
            .into_iter()
            .chain((5..10).map(|k| last(k as f64)))
            .collect();
        assert_close(&three, &want);
    }
}
