//! `normalize`: inputs standardised per channel, `(x - mean) / std`, on every batch.

use candle_core::{DType, Tensor};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::base::{arg_error, in_arg, ApplyCtx, BatchSpec, Transform};
use crate::error::{Error, Result};
use crate::range::{check, positive};

/// `(x - mean) / std` per channel, as torchvision's `Normalize`; on every batch,
/// validation and prediction included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct NormalizeArgs {
    /// Mean per channel of `[C, H, W]` samples, or one value for every input value of
    /// any sample shape (default `[0]`).
    pub mean: Vec<f64>,
    /// Standard deviation per channel (as many as `mean`), each > 0 (default `[1]`).
    pub std: Vec<f64>,
}

impl Default for NormalizeArgs {
    fn default() -> Self {
        Self {
            mean: vec![0.0],
            std: vec![1.0],
        }
    }
}

impl NormalizeArgs {
    /// Checks that `mean` and `std` are as long, not empty, finite, and `std` positive.
    pub fn validate(&self) -> Result<()> {
        let name = "normalize";
        if self.mean.is_empty() {
            return Err(arg_error(name, "mean", "needs at least one value"));
        }
        if self.std.len() != self.mean.len() {
            return Err(arg_error(
                name,
                "std",
                format!(
                    "{} values for {} in `mean`: give one per channel",
                    self.std.len(),
                    self.mean.len()
                ),
            ));
        }
        for (i, &m) in self.mean.iter().enumerate() {
            in_arg(
                name,
                check(m.is_finite(), &format!("mean[{i}]"), m, "finite numbers"),
            )?;
        }
        for (i, &s) in self.std.iter().enumerate() {
            in_arg(name, positive(&format!("std[{i}]"), s))?;
        }
        Ok(())
    }
}

/// The `normalize` transform; see [`NormalizeArgs`].
#[derive(Debug, Clone)]
pub struct Normalize {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl Normalize {
    /// Standardises with `args.mean` and `args.std`.
    pub fn new(args: NormalizeArgs) -> Result<Self> {
        args.validate()?;
        Ok(Self {
            mean: args.mean.iter().map(|&m| m as f32).collect(),
            std: args.std.iter().map(|&s| s as f32).collect(),
        })
    }

    /// Channels the values are given for (1: every value alike).
    fn channels(&self) -> usize {
        self.mean.len()
    }
}

impl Transform for Normalize {
    fn name(&self) -> &str {
        "normalize"
    }

    fn is_random(&self) -> bool {
        false
    }

    fn output(&self, input: &BatchSpec) -> Result<BatchSpec> {
        let c = self.channels();
        let shape = &input.sample_shape;
        if c > 1 && (shape.len() != 3 || shape[0] != c) {
            return Err(arg_error(
                self.name(),
                "mean",
                format!(
                    "{c} values are per channel of [C, H, W] samples with C = {c}; the samples \
                     have shape {shape:?} (one value applies to any shape)"
                ),
            ));
        }
        Ok(input.clone())
    }

    fn apply(
        &self,
        x: Tensor,
        y: Option<Tensor>,
        _ctx: &mut ApplyCtx,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let dims = x.dims().to_vec();
        let c = self.channels();
        let n = dims.first().copied().unwrap_or(0);
        let per_channel = x.elem_count() / (n * c).max(1);
        if n * c * per_channel != x.elem_count() || (c > 1 && dims.get(1) != Some(&c)) {
            return Err(Error::Data(format!(
                "transform `normalize`: a batch of shape {dims:?} does not have {c} channels"
            )));
        }
        let device = x.device();
        let mean = Tensor::from_vec(self.mean.clone(), (1, c, 1), device)?;
        let std = Tensor::from_vec(self.std.clone(), (1, c, 1), device)?;
        let x = x
            .to_dtype(DType::F32)?
            .reshape((n, c, per_channel))?
            .broadcast_sub(&mean)?
            .broadcast_div(&std)?
            .reshape(dims)?;
        Ok((x, y))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{RngStream, StreamId};
    use candle_core::Device;

    fn run(t: &Normalize, x: Tensor) -> Tensor {
        let mut rng = RngStream::new(1, StreamId::Augment);
        let mut ctx = ApplyCtx {
            train: false,
            rng: &mut rng,
        };
        t.apply(x, None, &mut ctx).unwrap().0
    }

    #[test]
    fn standardises_each_channel_with_its_own_mean_and_std() {
        let t = Normalize::new(NormalizeArgs {
            mean: vec![1.0, 10.0],
            std: vec![2.0, 5.0],
        })
        .unwrap();
        // Two samples of 2 channels of 1x2 pixels.
        let x = Tensor::new(
            &[
                [[[1f32, 3.0]], [[10.0, 20.0]]],
                [[[5.0, -1.0]], [[0.0, 15.0]]],
            ],
            &Device::Cpu,
        )
        .unwrap();
        let out = run(&t, x);
        assert_eq!(out.dims(), [2, 2, 1, 2]);
        assert_eq!(
            out.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            [0.0, 1.0, 0.0, 2.0, 2.0, -1.0, -2.0, 1.0]
        );
        let spec = BatchSpec {
            sample_shape: vec![2, 1, 2],
            ..Default::default()
        };
        assert_eq!(t.output(&spec).unwrap(), spec);
    }

    #[test]
    fn one_value_applies_to_samples_of_any_shape() {
        let t = Normalize::new(NormalizeArgs {
            mean: vec![0.5],
            std: vec![0.25],
        })
        .unwrap();
        let x = Tensor::new(&[[0.5f32, 1.0, 0.0]], &Device::Cpu).unwrap();
        assert_eq!(run(&t, x).to_vec2::<f32>().unwrap(), [[0.0, 2.0, -2.0]]);
    }

    #[test]
    fn wrong_arguments_name_the_transform_and_the_argument() {
        let cases = [
            (vec![], vec![], "argument `mean`: needs at least one value"),
            (
                vec![0.0, 0.0],
                vec![1.0],
                "argument `std`: 1 values for 2 in `mean`",
            ),
            (
                vec![0.0],
                vec![0.0],
                "argument `std[0]`: 0 is not in (0, inf)",
            ),
            (
                vec![f64::NAN],
                vec![1.0],
                "argument `mean[0]`: NaN is not in finite",
            ),
        ];
        for (mean, std, want) in cases {
            let err = NormalizeArgs { mean, std }
                .validate()
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("config transform: `normalize`: ") && err.contains(want),
                "{err}"
            );
        }
        let t = Normalize::new(NormalizeArgs {
            mean: vec![0.0; 3],
            std: vec![1.0; 3],
        })
        .unwrap();
        let spec = BatchSpec {
            sample_shape: vec![1, 8, 8],
            ..Default::default()
        };
        let err = t.output(&spec).unwrap_err().to_string();
        assert!(
            err.contains("`normalize`: argument `mean`: 3 values are per channel")
                && err.contains("[1, 8, 8]"),
            "{err}"
        );
    }
}
