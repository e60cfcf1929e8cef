//! `random_crop`: images padded with zeros, then cropped at a random offset per sample
//! (train batches); elsewhere the centre crop of the same size.

use candle_core::Tensor;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::base::{
    arg_error, as_images, as_samples, image_of, in_arg, sample_at, ApplyCtx, BatchSpec, Transform,
};
use crate::error::Result;
use crate::range::at_least_one;

/// Pads images with `padding` zeros on every side, then crops `size` at an offset drawn
/// per sample (train batches; outside training the centre crop, so shapes match).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RandomCropArgs {
    /// `[height, width]` of the crop, each at least 1 (default `null`: the samples' own
    /// size, the usual "pad 4, crop 32" of CIFAR).
    pub size: Option<[usize; 2]>,
    /// Zeros added on each side before cropping (default 0).
    pub padding: usize,
}

impl RandomCropArgs {
    /// Checks `size`.
    pub fn validate(&self) -> Result<()> {
        if let Some([h, w]) = self.size {
            in_arg("random_crop", at_least_one("size[0]", h as u64))?;
            in_arg("random_crop", at_least_one("size[1]", w as u64))?;
        }
        Ok(())
    }
}

/// The `random_crop` transform; see [`RandomCropArgs`].
#[derive(Debug, Clone)]
pub struct RandomCrop {
    /// The samples as they come (`[C, H, W]`, `[H, W]` or `[H*W]`).
    sample: Vec<usize>,
    /// `[C, H, W]` of the samples.
    image: [usize; 3],
    /// Height and width of the crop.
    size: [usize; 2],
    padding: usize,
}

impl RandomCrop {
    /// A crop for images of `sample_shape`; a crop larger than the padded image, or one
    /// that changes nothing, is an error naming the argument.
    pub fn new(args: RandomCropArgs, sample_shape: &[usize]) -> Result<Self> {
        args.validate()?;
        let name = "random_crop";
        let image = image_of(name, sample_shape)?;
        let [_, h, w] = image;
        let size = args.size.unwrap_or([h, w]);
        let (hp, wp) = (h + 2 * args.padding, w + 2 * args.padding);
        if size[0] > hp || size[1] > wp {
            return Err(arg_error(
                name,
                "size",
                format!(
                    "{size:?} does not fit in images of {h}x{w} padded by {} ({hp}x{wp})",
                    args.padding
                ),
            ));
        }
        if size == [h, w] && args.padding == 0 {
            return Err(arg_error(
                name,
                "padding",
                format!(
                    "0 with a crop of the images' own size ({h}x{w}) changes nothing: give a \
                     padding or a smaller size"
                ),
            ));
        }
        Ok(Self {
            sample: sample_shape.to_vec(),
            image,
            size,
            padding: args.padding,
        })
    }
}

impl Transform for RandomCrop {
    fn name(&self) -> &str {
        "random_crop"
    }

    fn is_random(&self) -> bool {
        true
    }

    fn output(&self, input: &BatchSpec) -> Result<BatchSpec> {
        if input.sample_shape != self.sample {
            return Err(arg_error(
                self.name(),
                "size",
                format!(
                    "built for samples of shape {:?}, given {:?}",
                    self.sample, input.sample_shape
                ),
            ));
        }
        let [h, w] = self.size;
        Ok(BatchSpec {
            sample_shape: sample_at(&self.sample, self.image[0], h, w),
            ..input.clone()
        })
    }

    fn apply(
        &self,
        x: Tensor,
        y: Option<Tensor>,
        ctx: &mut ApplyCtx,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let images = as_images(self.name(), &x)?;
        let p = self.padding;
        let padded = images.pad_with_zeros(2, p, p)?.pad_with_zeros(3, p, p)?;
        let (n, _, hp, wp) = padded.dims4()?;
        let [h, w] = self.size;
        let crops = if ctx.train && n > 0 {
            let (rows, cols) = ((hp - h) as u64 + 1, (wp - w) as u64 + 1);
            // One offset per sample, row then column, drawn in sample order.
            let parts = (0..n)
                .map(|i| {
                    let top = ctx.rng.below(rows) as usize;
                    let left = ctx.rng.below(cols) as usize;
                    padded
                        .narrow(0, i, 1)?
                        .narrow(2, top, h)?
                        .narrow(3, left, w)
                })
                .collect::<candle_core::Result<Vec<_>>>()?;
            Tensor::cat(&parts, 0)?
        } else {
            let (top, left) = ((hp - h) / 2, (wp - w) / 2);
            padded.narrow(2, top, h)?.narrow(3, left, w)?.contiguous()?
        };
        Ok((as_samples(&crops, &self.sample)?, y))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{RngStream, StreamId};
    use candle_core::Device;

    /// `n` samples of 1x3x3 with values `100 * sample + 0..9`.
    fn batch(n: usize, shape: &[usize]) -> Tensor {
        let v: Vec<f32> = (0..n)
            .flat_map(|s| (0..9).map(move |i| (100 * s + i) as f32))
            .collect();
        let mut dims = vec![n];
        dims.extend_from_slice(shape);
        Tensor::from_vec(v, dims, &Device::Cpu).unwrap()
    }

    fn crop(size: Option<[usize; 2]>, padding: usize, shape: &[usize]) -> RandomCrop {
        RandomCrop::new(RandomCropArgs { size, padding }, shape).unwrap()
    }

    #[test]
    fn each_sample_is_cut_at_its_own_drawn_offset_of_the_zero_padded_image() {
        let t = crop(Some([2, 2]), 1, &[9]);
        let x = batch(3, &[9]);
        let mut rng = RngStream::new(5, StreamId::Augment);
        // The offsets the crop must use: row then column per sample, each in [0, 4)
        // (a 2x2 crop of the 5x5 padded image).
        let mut expect_rng = rng.clone();
        let offsets: Vec<(usize, usize)> = (0..3)
            .map(|_| (expect_rng.below(4) as usize, expect_rng.below(4) as usize))
            .collect();
        let mut ctx = ApplyCtx {
            train: true,
            rng: &mut rng,
        };
        let (out, _) = t.apply(x, None, &mut ctx).unwrap();
        assert_eq!(out.dims(), [3, 4], "[H*W] samples stay flat: 2x2 = 4");
        assert_eq!(
            rng.state(),
            expect_rng.state(),
            "exactly 2 draws per sample"
        );
        let out = out.to_vec2::<f32>().unwrap();
        for (s, &(top, left)) in offsets.iter().enumerate() {
            // Pixel (r, c) of the padded 5x5 image: 0 on the border, else the sample's.
            let padded = |r: usize, c: usize| -> f32 {
                if r == 0 || c == 0 || r == 4 || c == 4 {
                    0.0
                } else {
                    (100 * s + (r - 1) * 3 + (c - 1)) as f32
                }
            };
            let want: Vec<f32> = (0..2)
                .flat_map(|r| (0..2).map(move |c| (r, c)))
                .map(|(r, c)| padded(top + r, left + c))
                .collect();
            assert_eq!(out[s], want, "sample {s} at offset {top},{left}");
        }
        assert!(
            offsets.iter().any(|o| *o != offsets[0]),
            "offsets differ per sample: {offsets:?}"
        );
    }

    #[test]
    fn outside_training_the_centre_is_cut_and_nothing_drawn() {
        let t = crop(Some([2, 2]), 0, &[3, 3]);
        let mut rng = RngStream::new(5, StreamId::Augment);
        let before = rng.state();
        let mut ctx = ApplyCtx {
            train: false,
            rng: &mut rng,
        };
        let (out, _) = t.apply(batch(2, &[3, 3]), None, &mut ctx).unwrap();
        assert_eq!(rng.state(), before);
        assert_eq!(out.dims(), [2, 2, 2]);
        // (3 - 2) / 2 = 0: the top-left 2x2.
        assert_eq!(
            out.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            [0.0, 1.0, 3.0, 4.0, 100.0, 101.0, 103.0, 104.0]
        );
        // Padding and a crop of the own size: the centre is the image itself.
        let same = crop(None, 2, &[1, 3, 3]);
        let x = batch(2, &[1, 3, 3]);
        let mut ctx = ApplyCtx {
            train: false,
            rng: &mut rng,
        };
        let (out, _) = same.apply(x.clone(), None, &mut ctx).unwrap();
        assert_eq!(
            out.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            x.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
    }

    #[test]
    fn the_output_shape_keeps_the_samples_form() {
        let spec = |s: &[usize]| BatchSpec {
            sample_shape: s.to_vec(),
            num_classes: Some(10),
            class_counts: None,
        };
        let t = crop(Some([2, 3]), 1, &[3, 4, 4]);
        assert_eq!(t.output(&spec(&[3, 4, 4])).unwrap(), spec(&[3, 2, 3]));
        let t = crop(Some([2, 3]), 1, &[4, 4]);
        assert_eq!(t.output(&spec(&[4, 4])).unwrap(), spec(&[2, 3]));
        let t = crop(None, 1, &[16]);
        assert_eq!(t.output(&spec(&[16])).unwrap(), spec(&[16]));
    }

    #[test]
    fn wrong_arguments_name_the_transform_and_the_argument() {
        let err = |size, padding, shape: &[usize]| {
            RandomCrop::new(RandomCropArgs { size, padding }, shape)
                .err()
                .unwrap()
                .to_string()
        };
        let e = err(Some([0, 2]), 0, &[4, 4]);
        assert!(
            e.contains("`random_crop`: argument `size[0]`: 0 is not in [1, inf)"),
            "{e}"
        );
        let e = err(Some([7, 2]), 1, &[4, 4]);
        assert!(
            e.contains("`random_crop`: argument `size`: [7, 2] does not fit in images of 4x4 padded by 1 (6x6)"),
            "{e}"
        );
        let e = err(None, 0, &[4, 4]);
        assert!(
            e.contains("`random_crop`: argument `padding`: 0 with a crop"),
            "{e}"
        );
        let e = err(None, 1, &[5]);
        assert!(e.contains("`random_crop` needs images"), "{e}");
    }
}
