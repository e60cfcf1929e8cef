//! `random_flip`: each sample of a train batch mirrored with probability `p`; other
//! batches pass through.

use candle_core::Tensor;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::base::{as_images, as_samples, image_of, in_arg, ApplyCtx, BatchSpec, Transform};
use crate::error::Result;
use crate::range::check;

/// Which way an image is mirrored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FlipAxis {
    /// Left to right (the width axis).
    #[default]
    Horizontal,
    /// Top to bottom (the height axis).
    Vertical,
}

/// Mirrors each image of a train batch with probability `p` (one draw per sample); other
/// batches pass through.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RandomFlipArgs {
    /// `horizontal` (left to right) or `vertical` (top to bottom) (default `horizontal`).
    pub axis: FlipAxis,
    /// Probability that a sample is flipped, in [0, 1] (default 0.5).
    pub p: f64,
}

impl Default for RandomFlipArgs {
    fn default() -> Self {
        Self {
            axis: FlipAxis::Horizontal,
            p: 0.5,
        }
    }
}

impl RandomFlipArgs {
    /// Checks `p`.
    pub fn validate(&self) -> Result<()> {
        in_arg(
            "random_flip",
            check((0.0..=1.0).contains(&self.p), "p", self.p, "[0, 1]"),
        )
    }
}

/// The `random_flip` transform; see [`RandomFlipArgs`].
#[derive(Debug, Clone)]
pub struct RandomFlip {
    sample: Vec<usize>,
    axis: FlipAxis,
    p: f32,
}

impl RandomFlip {
    /// A flip of images of `sample_shape` (`[C, H, W]`, `[H, W]` or square `[H*W]`).
    pub fn new(args: RandomFlipArgs, sample_shape: &[usize]) -> Result<Self> {
        args.validate()?;
        image_of("random_flip", sample_shape)?;
        Ok(Self {
            sample: sample_shape.to_vec(),
            axis: args.axis,
            p: args.p as f32,
        })
    }
}

impl Transform for RandomFlip {
    fn name(&self) -> &str {
        "random_flip"
    }

    fn is_random(&self) -> bool {
        true
    }

    fn output(&self, input: &BatchSpec) -> Result<BatchSpec> {
        image_of(self.name(), &input.sample_shape)?;
        Ok(input.clone())
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
        let images = as_images(self.name(), &x)?;
        let n = images.dim(0)?;
        // One draw per sample, in sample order, whatever `p` is.
        let flip: Vec<u8> = (0..n)
            .map(|_| u8::from(ctx.rng.uniform_f32() < self.p))
            .collect();
        let dim = match self.axis {
            FlipAxis::Horizontal => 3,
            FlipAxis::Vertical => 2,
        };
        let len = images.dim(dim)?;
        let device = images.device();
        let reversed = Tensor::from_vec((0..len as u32).rev().collect::<Vec<_>>(), len, device)?;
        let flipped = images.index_select(&reversed, dim)?;
        let mask = Tensor::from_vec(flip, (n, 1, 1, 1), device)?.broadcast_as(images.shape())?;
        let out = mask.where_cond(&flipped, &images)?;
        Ok((as_samples(&out, &self.sample)?, y))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{RngStream, StreamId};
    use candle_core::Device;

    /// Two 1x2x3 images: `[[0,1,2],[3,4,5]]` and the same plus 10.
    fn batch() -> Tensor {
        let v: Vec<f32> = (0..12).map(|i| (i / 6 * 10 + i % 6) as f32).collect();
        Tensor::from_vec(v, (2, 1, 2, 3), &Device::Cpu).unwrap()
    }

    fn flip(axis: FlipAxis, p: f64, x: Tensor, train: bool) -> (Vec<f32>, RngStream) {
        let t = RandomFlip::new(RandomFlipArgs { axis, p }, &x.dims()[1..]).unwrap();
        let mut rng = RngStream::new(3, StreamId::Augment);
        let mut ctx = ApplyCtx {
            train,
            rng: &mut rng,
        };
        let (out, _) = t.apply(x, None, &mut ctx).unwrap();
        (out.flatten_all().unwrap().to_vec1::<f32>().unwrap(), rng)
    }

    #[test]
    fn p_one_mirrors_every_sample_along_the_axis() {
        let (h, rng) = flip(FlipAxis::Horizontal, 1.0, batch(), true);
        assert_eq!(
            h,
            [2.0, 1.0, 0.0, 5.0, 4.0, 3.0, 12.0, 11.0, 10.0, 15.0, 14.0, 13.0]
        );
        let mut start = RngStream::new(3, StreamId::Augment);
        start.uniform_f32();
        start.uniform_f32();
        assert_eq!(rng.state(), start.state(), "one draw per sample");
        let (v, _) = flip(FlipAxis::Vertical, 1.0, batch(), true);
        assert_eq!(
            v,
            [3.0, 4.0, 5.0, 0.0, 1.0, 2.0, 13.0, 14.0, 15.0, 10.0, 11.0, 12.0]
        );
        let (none, _) = flip(FlipAxis::Horizontal, 0.0, batch(), true);
        assert_eq!(
            none,
            batch().flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
    }

    #[test]
    fn each_sample_is_flipped_by_its_own_draw() {
        // 64 flat 2x2 samples [a, b, c, d]; flipped horizontally: [b, a, d, c].
        let v: Vec<f32> = (0..256).map(|i| i as f32).collect();
        let x = Tensor::from_vec(v.clone(), (64, 4), &Device::Cpu).unwrap();
        let (out, _) = flip(FlipAxis::Horizontal, 0.5, x, true);
        let mut rng = RngStream::new(3, StreamId::Augment);
        let mut flipped = 0;
        for s in 0..64 {
            let got = &out[s * 4..s * 4 + 4];
            let orig = &v[s * 4..s * 4 + 4];
            if rng.uniform_f32() < 0.5 {
                flipped += 1;
                assert_eq!(got, [orig[1], orig[0], orig[3], orig[2]], "sample {s}");
            } else {
                assert_eq!(got, orig, "sample {s}");
            }
        }
        assert!((16..48).contains(&flipped), "{flipped} of 64 flipped");
    }

    #[test]
    fn outside_training_nothing_changes_and_nothing_is_drawn() {
        let (out, rng) = flip(FlipAxis::Horizontal, 1.0, batch(), false);
        assert_eq!(
            out,
            batch().flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
        assert_eq!(rng.state(), RngStream::new(3, StreamId::Augment).state());
    }

    #[test]
    fn wrong_arguments_name_the_transform_and_the_argument() {
        let e = RandomFlipArgs {
            p: 1.5,
            ..Default::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "config transform: `random_flip`: argument `p`: 1.5 is not in [0, 1]"
        );
        let e = RandomFlip::new(RandomFlipArgs::default(), &[2, 3, 4, 5])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("`random_flip` needs images"), "{e}");
    }
}
