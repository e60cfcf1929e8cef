//! RMSprop (PyTorch semantics): optional momentum and centring, one fused pass per
//! parameter; its buffers are saved by variable name like every optimizer's here.

use candle_core::backprop::GradStore;
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use super::{flush_subnormal, named_vars, update_in_place, NamedVar, Slots};
use crate::error::Result;

/// Hyper-parameters of [`Rmsprop`] (PyTorch's names and defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RmspropConfig {
    /// Learning rate (default 0.01); a trainer sets the scheduled rate here before every
    /// batch.
    pub lr: f64,
    /// Decay of the running mean of squared gradients, `square_avg = alpha * square_avg +
    /// (1 - alpha) * g^2` (default 0.99).
    pub alpha: f64,
    /// Added to the root of the (centred) mean square (default 1e-8).
    pub eps: f64,
    /// L2 penalty: `weight_decay * p` is added to the gradient (default 0.0).
    pub weight_decay: f64,
    /// Momentum factor (default 0.0: no `momentum_buffer`).
    pub momentum: f64,
    /// Divide by the centred mean square `square_avg - grad_avg^2` (an estimate of the
    /// gradient's variance) instead of `square_avg` (default false: no `grad_avg`).
    pub centered: bool,
}

impl Default for RmspropConfig {
    fn default() -> Self {
        Self {
            lr: 0.01,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
        }
    }
}

/// The buffers each setting needs, named as PyTorch's state: only those in use are kept
/// (and saved).
fn slot_names(config: &RmspropConfig) -> &'static [&'static str] {
    match (config.momentum != 0.0, config.centered) {
        (false, false) => &["square_avg"],
        (true, false) => &["square_avg", "momentum_buffer"],
        (false, true) => &["square_avg", "grad_avg"],
        (true, true) => &["square_avg", "momentum_buffer", "grad_avg"],
    }
}

/// RMSprop: each step divides the gradient by the root of a running mean of its squares
/// (centred on request), optionally through a momentum buffer. Its buffers
/// (`square_avg`, and `momentum_buffer` / `grad_avg` when in use) are saved in checkpoints.
#[derive(Debug, Clone)]
pub struct Rmsprop {
    vars: Vec<NamedVar>,
    config: RmspropConfig,
    slots: Slots,
    step: u64,
}

impl Rmsprop {
    /// Takes every float variable of `varmap`, keyed by name.
    pub fn from_varmap(varmap: &VarMap, config: RmspropConfig) -> Self {
        Self::from_named(named_vars(varmap), config)
    }

    /// Takes `vars` as given; their names key the buffers in checkpoints.
    pub fn from_named(vars: Vec<NamedVar>, config: RmspropConfig) -> Self {
        let slots = Slots::new(slot_names(&config), &vars);
        Self {
            vars,
            config,
            slots,
            step: 0,
        }
    }

    /// The hyper-parameters, with the learning rate last set.
    pub fn config(&self) -> &RmspropConfig {
        &self.config
    }

    fn apply(&mut self, grads: &GradStore, scale: f32) -> Result<()> {
        let c = &self.config;
        let (lr, alpha, eps, wd, mom) = (
            c.lr as f32,
            c.alpha as f32,
            c.eps as f32,
            c.weight_decay as f32,
            c.momentum as f32,
        );
        // 1 - alpha in f64: in f32, 1 - 0.99f32 is off in its last bits.
        let one_minus_alpha = (1.0 - c.alpha) as f32;
        let (with_momentum, centered) = (c.momentum != 0.0, c.centered);
        for (v, bufs) in self.vars.iter().zip(self.slots.buffers.iter_mut()) {
            let Some(g) = grads.get(v.var.as_tensor()) else {
                continue;
            };
            update_in_place(
                &v.var,
                g,
                bufs,
                #[inline(always)]
                move |p, g, bufs| {
                    let (square_avg, rest) = match bufs.split_first_mut() {
                        Some(split) => split,
                        None => return,
                    };
                    let (mut momentum_buffer, rest) = match (with_momentum, rest) {
                        (true, [m, rest @ ..]) => (Some(m), rest),
                        (_, rest) => (None, rest),
                    };
                    let mut grad_avg = match (centered, rest) {
                        (true, [a, ..]) => Some(a),
                        _ => None,
                    };
                    // Every buffer cut to the parameter's length up front: no bounds check in
                    // the loop, which then vectorises.
                    let n = p.len();
                    let square_avg = &mut square_avg[..n];
                    let mut momentum_buffer = momentum_buffer.as_mut().map(|b| &mut b[..n]);
                    let mut grad_avg = grad_avg.as_mut().map(|a| &mut a[..n]);
                    for (i, (p, &g)) in p.iter_mut().zip(g).enumerate() {
                        let gi = g * scale + wd * *p;
                        let sa = flush_subnormal(alpha * square_avg[i] + one_minus_alpha * gi * gi);
                        square_avg[i] = sa;
                        let mean_square = match grad_avg.as_mut() {
                            Some(avg) => {
                                let a = flush_subnormal(avg[i] + one_minus_alpha * (gi - avg[i]));
                                avg[i] = a;
                                sa - a * a
                            }
                            None => sa,
                        };
                        let denom = mean_square.sqrt() + eps;
                        match momentum_buffer.as_mut() {
                            Some(buf) => {
                                let b = flush_subnormal(mom * buf[i] + gi / denom);
                                buf[i] = b;
                                *p -= lr * b;
                            }
                            None => *p -= lr * gi / denom,
                        }
                    }
                },
            )?;
        }
        self.step += 1;
        Ok(())
    }
}

slot_optimizer!(Rmsprop, "rmsprop");

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_close, grads_of, one_var, values};
    use super::*;
    use crate::optim::TrainOptimizer;

    /// Steps of PyTorch's formulas, computed by hand in f64 for p0 = [1, -2, 0.5] and the
    /// gradient `2 * p` (the loss `sum(p^2)`), lr 0.01.
    fn run(config: RmspropConfig, steps: usize) -> Vec<f32> {
        let (v, named) = one_var(&[1.0, -2.0, 0.5]);
        let mut opt = Rmsprop::from_named(vec![named], config);
        for _ in 0..steps {
            opt.step_scaled(&grads_of(&v, |p| (p * 2.0).unwrap()), 1.0)
                .unwrap();
        }
        assert_eq!(opt.steps(), steps as u64);
        values(&v)
    }

    #[test]
    fn plain_rmsprop_matches_pytorch() {
        // python: sa = 0.99*sa + 0.01*g*g; p -= 0.01 * g / (sqrt(sa) + 1e-8)
        let p = run(RmspropConfig::default(), 3);
        assert_close(&p, &[0.7799822732, -1.7753494456, 0.2904332263]);
    }

    #[test]
    fn momentum_centred_and_weight_decay_match_pytorch() {
        let config = RmspropConfig {
            momentum: 0.9,
            centered: true,
            weight_decay: 0.1,
            ..RmspropConfig::default()
        };
        // python: g = 2p + 0.1p; sa = 0.99sa + 0.01g^2; ga = ga + 0.01(g - ga);
        // buf = 0.9buf + g / (sqrt(sa - ga^2) + 1e-8); p -= 0.01 buf
        let p = run(config, 3);
        assert_close(&p, &[0.5496501644, -1.5406780200, 0.0708675306]);
    }
}
