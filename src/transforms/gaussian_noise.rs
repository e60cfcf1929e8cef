//! `gaussian_noise`: zero-mean normal noise added to every input value of a train batch;
//! other batches pass through.

use candle_core::{DType, Tensor};
use rand_distr::{Distribution, StandardNormal};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::base::{in_arg, ApplyCtx, Transform};
use crate::error::Result;
use crate::range::positive;
use crate::rng::RngStream;

/// Adds noise drawn from N(0, `std`²) to every input value of a train batch (inputs
/// become f32); other batches pass through.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct GaussianNoiseArgs {
    /// Standard deviation of the noise, > 0 (default 0.1).
    pub std: f64,
}

impl Default for GaussianNoiseArgs {
    fn default() -> Self {
        Self { std: 0.1 }
    }
}

impl GaussianNoiseArgs {
    /// Checks `std`.
    pub fn validate(&self) -> Result<()> {
        in_arg("gaussian_noise", positive("std", self.std))
    }
}

/// The `gaussian_noise` transform; see [`GaussianNoiseArgs`].
#[derive(Debug, Clone)]
pub struct GaussianNoise {
    std: f64,
}

impl GaussianNoise {
    /// Noise of standard deviation `args.std`.
    pub fn new(args: GaussianNoiseArgs) -> Result<Self> {
        args.validate()?;
        Ok(Self { std: args.std })
    }
}

/// `n` values drawn from N(0, `std`²) from `rng`, in order (`rand_distr`'s ziggurat
/// sampler on our stream: candle's own random numbers cannot be seeded).
pub fn normal_noise(rng: &mut RngStream, n: usize, std: f64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let z: f64 = StandardNormal.sample(rng);
            (z * std) as f32
        })
        .collect()
}

impl Transform for GaussianNoise {
    fn name(&self) -> &str {
        "gaussian_noise"
    }

    fn is_random(&self) -> bool {
        true
    }

    fn apply(
        &self,
        x: Tensor,
        y: Option<Tensor>,
        ctx: &mut ApplyCtx,
    ) -> Result<(Tensor, Option<Tensor>)> {
        if !ctx.train {
            return Ok((x, y));
        }
        let noise = normal_noise(ctx.rng, x.elem_count(), self.std);
        let noise = Tensor::from_vec(noise, x.shape(), x.device())?;
        Ok(((x.to_dtype(DType::F32)? + noise)?, y))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::StreamId;
    use candle_core::Device;

    #[test]
    fn adds_the_streams_normal_draws_to_every_value() {
        let t = GaussianNoise::new(GaussianNoiseArgs { std: 0.5 }).unwrap();
        let x = Tensor::new(&[[1f32, 2.0, 3.0], [4.0, 5.0, 6.0]], &Device::Cpu).unwrap();
        let mut rng = RngStream::new(9, StreamId::Augment);
        let want = normal_noise(&mut rng.clone(), 6, 0.5);
        let mut ctx = ApplyCtx {
            train: true,
            rng: &mut rng,
        };
        let (out, _) = t.apply(x, None, &mut ctx).unwrap();
        let out = out.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (i, (o, n)) in out.iter().zip(&want).enumerate() {
            assert_eq!(*o, (i + 1) as f32 + n, "value {i}");
        }
        // The same values as rand_distr's standard normal draws from the stream, scaled.
        let mut by_hand = RngStream::new(9, StreamId::Augment);
        for n in &want {
            let z: f64 = StandardNormal.sample(&mut by_hand);
            assert_eq!(*n, (z * 0.5) as f32);
        }
        assert_eq!(rng.state(), by_hand.state());
        assert_ne!(rng.state(), RngStream::new(9, StreamId::Augment).state());
    }

    #[test]
    fn the_noise_has_the_asked_spread() {
        let mut rng = RngStream::new(1, StreamId::Augment);
        let v = normal_noise(&mut rng, 20_001, 2.0);
        assert_eq!(v.len(), 20_001);
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let var = v
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!((var.sqrt() - 2.0).abs() < 0.05, "std {}", var.sqrt());
    }

    #[test]
    fn outside_training_nothing_changes_and_a_bad_std_is_refused() {
        let t = GaussianNoise::new(GaussianNoiseArgs::default()).unwrap();
        let x = Tensor::new(&[1f32, 2.0], &Device::Cpu).unwrap();
        let mut rng = RngStream::new(9, StreamId::Augment);
        let mut ctx = ApplyCtx {
            train: false,
            rng: &mut rng,
        };
        let (out, _) = t.apply(x, None, &mut ctx).unwrap();
        assert_eq!(out.to_vec1::<f32>().unwrap(), [1.0, 2.0]);
        assert_eq!(rng.state(), RngStream::new(9, StreamId::Augment).state());
        let e = GaussianNoiseArgs { std: -1.0 }
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "config transform: `gaussian_noise`: argument `std`: -1 is not in (0, inf)"
            ),
            "{e}"
        );
    }
}
