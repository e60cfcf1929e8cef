//! Batch normalisation whose running statistics are variables of the model's `VarMap`.
//!
//! candle-nn's `BatchNorm` already does what PyTorch's `BatchNorm2d` does: in training it
//! normalises with the batch statistics (biased variance) and moves `running_mean` and
//! `running_var` (unbiased variance) by `momentum` 0.1; in evaluation it normalises with
//! the running statistics. Built through a `VarBuilder` backed by the model's `VarMap`
//! (our [`build_seeded`](super::build_seeded)), those statistics are the very variables
//! of the map, updated in place with `Var::set`, so checkpoints, export and `init_from`
//! carry them like any weight. This wrapper adds what a model needs around it: the names
//! of the statistics (they are buffers, not parameters: see [`Model::buffers`]) and a
//! clear error for a training batch with one value per channel, where the unbiased
//! variance is undefined (PyTorch refuses it too).
//!
//! [`Model::buffers`]: super::Model::buffers

use candle_core::Tensor;
use candle_nn::{BatchNormConfig, ModuleT, VarBuilder};

use crate::error::{Error, Result};

/// The running-statistics variables of a batch norm layer, by their last name part.
pub const BUFFER_NAMES: [&str; 2] = ["running_mean", "running_var"];

/// Batch normalisation over dimension 1 (channels) of an input of rank 2 or more, with a
/// learnable scale (`weight`, init 1) and shift (`bias`, init 0) and running statistics
/// (`running_mean` init 0, `running_var` init 1), PyTorch's `eps` 1e-5 and momentum 0.1.
#[derive(Debug, Clone)]
pub struct BatchNorm {
    inner: candle_nn::BatchNorm,
    prefix: String,
}

impl BatchNorm {
    /// Creates (or, when the map has them, reuses) the layer's four variables under
    /// `vb`'s prefix: `{prefix}.weight`, `.bias`, `.running_mean`, `.running_var`.
    pub fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        let prefix = vb.prefix();
        let inner = candle_nn::batch_norm(channels, BatchNormConfig::default(), vb)?;
        Ok(Self { inner, prefix })
    }

    /// Full names of the running statistics (`{prefix}.running_mean`, `.running_var`).
    pub fn buffer_names(&self) -> Vec<String> {
        BUFFER_NAMES
            .iter()
            .map(|b| format!("{}.{b}", self.prefix))
            .collect()
    }

    /// Normalises `x`: with the batch's statistics, updating the running ones, when
    /// `train`; with the running statistics otherwise.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if train {
            let per_channel = x.elem_count() / x.dim(1)?.max(1);
            if per_channel < 2 {
                return Err(Error::config(
                    "model",
                    format!(
                        "batch norm `{}` got input {:?} in training: it needs more than one \
                         value per channel (a batch of at least 2 samples)",
                        self.prefix,
                        x.dims()
                    ),
                ));
            }
        }
        Ok(self.inner.forward_t(x, train)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::build_seeded;
    use crate::rng::{RngStream, StreamId};
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    /// `[N=3, C=2, H=1, W=2]`, channel 1 scaled so the two channels differ.
    fn input() -> (Vec<f32>, Tensor) {
        let v: Vec<f32> = vec![
            0.5, -1.0, 3.0, 4.0, //
            2.0, 0.25, -2.0, 6.0, //
            -1.5, 1.0, 5.0, 0.0,
        ];
        let t = Tensor::from_vec(v.clone(), (3, 2, 1, 2), &Device::Cpu).unwrap();
        (v, t)
    }

    /// The values of channel `c` of [`input`].
    fn channel(v: &[f32], c: usize) -> Vec<f64> {
        (0..3)
            .flat_map(|n| (0..2).map(move |i| v[n * 4 + c * 2 + i] as f64))
            .collect()
    }

    fn layer(varmap: &VarMap) -> BatchNorm {
        let mut rng = RngStream::new(1, StreamId::Init);
        build_seeded(varmap, &mut rng, DType::F32, &Device::Cpu, |vb| {
            BatchNorm::new(2, vb.pp("bn"))
        })
        .unwrap()
    }

    fn var(varmap: &VarMap, name: &str) -> Vec<f32> {
        varmap.data().lock().unwrap()[name]
            .as_tensor()
            .to_vec1::<f32>()
            .unwrap()
    }

    #[test]
    fn training_follows_pytorchs_formulas_and_evaluation_uses_the_running_statistics() {
        let varmap = VarMap::new();
        let bn = layer(&varmap);
        let mut names: Vec<String> = varmap.data().lock().unwrap().keys().cloned().collect();
        names.sort();
        assert_eq!(
            names,
            ["bn.bias", "bn.running_mean", "bn.running_var", "bn.weight"]
        );
        assert_eq!(bn.buffer_names(), ["bn.running_mean", "bn.running_var"]);
        // A scale and shift that are not the identity.
        varmap.data().lock().unwrap()["bn.weight"]
            .set(&Tensor::new(&[2f32, 0.5], &Device::Cpu).unwrap())
            .unwrap();
        varmap.data().lock().unwrap()["bn.bias"]
            .set(&Tensor::new(&[0.1f32, -0.3], &Device::Cpu).unwrap())
            .unwrap();
        let (weight, bias) = ([2.0, 0.5], [0.1, -0.3]);

        let (v, x) = input();
        let y = bn.forward(&x, true).unwrap();
        let y = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        // PyTorch: y = (x - mean) / sqrt(var_biased + eps) * weight + bias;
        // running = 0.9 * running + 0.1 * (mean, var_unbiased).
        let mut expect_mean = Vec::new();
        let mut expect_var = Vec::new();
        for c in 0..2 {
            let xs = channel(&v, c);
            let n = xs.len() as f64;
            let mean = xs.iter().sum::<f64>() / n;
            let biased = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
            let ys = channel(&y, c);
            for (x, y) in xs.iter().zip(&ys) {
                let want = (x - mean) / (biased + 1e-5).sqrt() * weight[c] + bias[c];
                assert!((y - want).abs() < 1e-5, "channel {c}: {y} vs {want}");
            }
            expect_mean.push(0.9 * 0.0 + 0.1 * mean);
            expect_var.push(0.9 * 1.0 + 0.1 * biased * n / (n - 1.0));
        }
        let close = |got: &[f32], want: &[f64]| {
            got.iter()
                .zip(want)
                .all(|(g, w)| (*g as f64 - w).abs() < 1e-6)
        };
        let (rm, rv) = (
            var(&varmap, "bn.running_mean"),
            var(&varmap, "bn.running_var"),
        );
        assert!(close(&rm, &expect_mean), "{rm:?} vs {expect_mean:?}");
        assert!(close(&rv, &expect_var), "{rv:?} vs {expect_var:?}");

        // Evaluation: the running statistics, and nothing moves.
        let e = bn.forward(&x, false).unwrap();
        let e = e.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for c in 0..2 {
            for (x, y) in channel(&v, c).iter().zip(channel(&e, c)) {
                let want = (x - rm[c] as f64) / (rv[c] as f64 + 1e-5).sqrt() * weight[c] + bias[c];
                assert!((y - want).abs() < 1e-5, "channel {c}: {y} vs {want}");
            }
        }
        assert_eq!(var(&varmap, "bn.running_mean"), rm);
        assert_eq!(var(&varmap, "bn.running_var"), rv);

        // A second training batch moves them again, from where they are.
        bn.forward(&(x * 2.0).unwrap(), true).unwrap();
        let rm2 = var(&varmap, "bn.running_mean");
        for c in 0..2 {
            let mean2 = 2.0 * channel(&v, c).iter().sum::<f64>() / 6.0;
            let want = 0.9 * rm[c] as f64 + 0.1 * mean2;
            assert!((rm2[c] as f64 - want).abs() < 1e-6, "{} vs {want}", rm2[c]);
        }
    }

    #[test]
    fn one_value_per_channel_is_an_error_in_training_only() {
        let varmap = VarMap::new();
        let bn = layer(&varmap);
        let x = Tensor::ones((1, 2, 1, 1), DType::F32, &Device::Cpu).unwrap();
        let e = bn.forward(&x, true).unwrap_err().to_string();
        assert!(e.contains("`bn`") && e.contains("[1, 2, 1, 1]"), "{e}");
        assert!(bn.forward(&x, false).is_ok());
        assert_eq!(var(&varmap, "bn.running_mean"), [0.0, 0.0]);
    }
}
