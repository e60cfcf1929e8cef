//! `scale`: inputs multiplied by a constant (pixel bytes 0-255 to 0-1, say), on every
//! batch.

use candle_core::{DType, Tensor};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::base::{in_arg, ApplyCtx, Transform};
use crate::error::Result;
use crate::range::check;

/// Multiplies every input value by `factor` (inputs become f32); on every batch,
/// validation and prediction included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ScaleArgs {
    /// The factor, finite and not 0 (default 1/255: bytes to [0, 1]).
    pub factor: f64,
}

impl Default for ScaleArgs {
    fn default() -> Self {
        Self {
            factor: 1.0 / 255.0,
        }
    }
}

impl ScaleArgs {
    /// Checks `factor`.
    pub fn validate(&self) -> Result<()> {
        let f = self.factor;
        in_arg(
            "scale",
            check(
                f.is_finite() && f != 0.0,
                "factor",
                f,
                "finite numbers other than 0",
            ),
        )
    }
}

/// The `scale` transform; see [`ScaleArgs`].
#[derive(Debug, Clone)]
pub struct Scale {
    factor: f64,
}

impl Scale {
    /// Multiplies by `args.factor`.
    pub fn new(args: ScaleArgs) -> Result<Self> {
        args.validate()?;
        Ok(Self {
            factor: args.factor,
        })
    }
}

impl Transform for Scale {
    fn name(&self) -> &str {
        "scale"
    }

    fn is_random(&self) -> bool {
        false
    }

    fn apply(
        &self,
        x: Tensor,
        y: Option<Tensor>,
        _ctx: &mut ApplyCtx,
    ) -> Result<(Tensor, Option<Tensor>)> {
        Ok(((x.to_dtype(DType::F32)? * self.factor)?, y))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{RngStream, StreamId};
    use candle_core::Device;

    #[test]
    fn multiplies_every_value_and_leaves_labels_alone() {
        let t = Scale::new(ScaleArgs { factor: 0.5 }).unwrap();
        let x = Tensor::new(&[[2u8, 4], [6, 255]], &Device::Cpu).unwrap();
        let y = Tensor::new(&[1u32, 0], &Device::Cpu).unwrap();
        let mut rng = RngStream::new(1, StreamId::Augment);
        let before = rng.state();
        let mut ctx = ApplyCtx {
            train: true,
            rng: &mut rng,
        };
        let (x, y) = t.apply(x, Some(y), &mut ctx).unwrap();
        assert_eq!(x.to_vec2::<f32>().unwrap(), [[1.0, 2.0], [3.0, 127.5]]);
        assert_eq!(y.unwrap().to_vec1::<u32>().unwrap(), [1, 0]);
        assert_eq!(rng.state(), before, "scale draws nothing");
        assert!(!t.is_random());
    }

    #[test]
    fn zero_or_non_finite_factors_are_refused() {
        for f in [0.0, f64::NAN, f64::INFINITY] {
            let err = ScaleArgs { factor: f }.validate().unwrap_err().to_string();
            assert!(
                err.starts_with("config transform: `scale`: argument `factor`: "),
                "{err}"
            );
        }
    }
}
