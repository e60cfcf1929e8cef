//! What every transform shares: the [`Transform`] trait, what it is told when it runs
//! ([`ApplyCtx`]), what batches look like before and after it ([`BatchSpec`]), the chain
//! of a run ([`Transforms`]), and the image view of a sample shape.

use candle_core::Tensor;

use crate::error::{Error, Result};
use crate::rng::RngStream;

/// What the samples and labels of a batch look like, without the batch axis: what a
/// transform is built for, and (through [`Transform::output`]) what it hands on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchSpec {
    /// Shape of one input sample (`[1, 28, 28]`, `[64]`).
    pub sample_shape: Vec<usize>,
    /// Number of classes when the labels are class ids; `None` for values.
    pub num_classes: Option<usize>,
    /// Train samples per class, where the data counts them.
    pub class_counts: Option<Vec<usize>>,
}

/// What a transform is told besides the batch.
pub struct ApplyCtx<'a> {
    /// A train batch: random transforms draw. Outside training (validation, evaluation,
    /// prediction) a random transform does its deterministic counterpart instead
    /// (`random_crop` crops the centre, `random_flip` and `gaussian_noise` pass the batch
    /// through) and draws nothing, so a model sees inputs shaped as in training.
    pub train: bool,
    /// The run's augmentation stream ([`StreamId::Augment`](crate::rng::StreamId)); draw
    /// every random number from it. Its position is saved in every checkpoint, so a
    /// resumed run draws the same crops, flips and noise.
    pub rng: &'a mut RngStream,
}

/// A transform of batches: samples `x` (batch first, on the model's device) and labels
/// `y` (`None` where there are none, as in prediction), applied after a batch is loaded
/// and before the model sees it, in the order a job lists them.
///
/// `apply` must be deterministic given its inputs and the stream's position, and keep no
/// state of its own between calls (the stream is the state): that is what keeps a run
/// with augmentation resumable bit for bit.
pub trait Transform: Send + Sync {
    /// Its name as jobs spell it, e.g. `random_crop`.
    fn name(&self) -> &str;

    /// Whether it draws random numbers on train batches (an augmentation). Deterministic
    /// transforms (`scale`, `normalize`, `label_map`) do the same on every batch.
    fn is_random(&self) -> bool;

    /// What batches look like after it, given what they look like before (the default:
    /// unchanged). An error names the transform and what does not fit.
    fn output(&self, input: &BatchSpec) -> Result<BatchSpec> {
        Ok(input.clone())
    }

    /// Transforms one batch.
    fn apply(
        &self,
        x: Tensor,
        y: Option<Tensor>,
        ctx: &mut ApplyCtx,
    ) -> Result<(Tensor, Option<Tensor>)>;
}

/// The transforms of a run, applied in order.
#[derive(Default)]
pub struct Transforms {
    items: Vec<Box<dyn Transform>>,
}

impl Transforms {
    /// The chain of `items`, applied in this order.
    pub fn new(items: Vec<Box<dyn Transform>>) -> Self {
        Self { items }
    }

    /// Appends one transform.
    pub fn push(&mut self, t: Box<dyn Transform>) -> &mut Self {
        self.items.push(t);
        self
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The transforms, in order.
    pub fn items(&self) -> &[Box<dyn Transform>] {
        &self.items
    }

    /// Their names, in order.
    pub fn names(&self) -> Vec<String> {
        self.items.iter().map(|t| t.name().to_string()).collect()
    }

    /// What batches look like after the whole chain.
    pub fn output(&self, input: &BatchSpec) -> Result<BatchSpec> {
        self.items
            .iter()
            .try_fold(input.clone(), |spec, t| t.output(&spec))
    }

    /// Applies every transform in order.
    pub fn apply(
        &self,
        x: Tensor,
        y: Option<Tensor>,
        ctx: &mut ApplyCtx,
    ) -> Result<(Tensor, Option<Tensor>)> {
        self.items
            .iter()
            .try_fold((x, y), |(x, y), t| t.apply(x, y, ctx))
    }
}

impl std::fmt::Debug for Transforms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

/// An error in argument `arg` of transform `name`, worded as the registry words a
/// mistyped argument: ``config transform: `random_flip`: argument `p`: ...``.
pub fn arg_error(name: &str, arg: &str, reason: impl std::fmt::Display) -> Error {
    Error::config("transform", format!("`{name}`: argument `{arg}`: {reason}"))
}

/// A range check of [`crate::range`] on argument `field` of transform `name`, worded by
/// [`arg_error`].
pub(super) fn in_arg(name: &str, checked: Result<()>) -> Result<()> {
    checked.map_err(|e| match e {
        Error::Config { field, reason } => arg_error(name, &field, reason),
        other => other,
    })
}

/// A sample shape as an image `[channels, height, width]`: `[C, H, W]` as it is, `[H, W]`
/// and `[H*W]` (a square) as one channel; anything else (or a zero dimension) is an
/// error naming the transform and the shape. The model zoo's `image_shape` says the
/// same for models; this layer cannot use it (modules of one layer stay apart).
pub fn image_of(name: &str, sample_shape: &[usize]) -> Result<[usize; 3]> {
    let shape = match *sample_shape {
        [c, h, w] => Some([c, h, w]),
        [h, w] => Some([1, h, w]),
        [n] => {
            let side = (n as f64).sqrt().round() as usize;
            (side * side == n).then_some([1, side, side])
        }
        _ => None,
    };
    match shape {
        Some(s) if !s.contains(&0) => Ok(s),
        _ => Err(Error::config(
            "transform",
            format!(
                "`{name}` needs images, samples of shape [C, H, W], [H, W] or [H*W] with H*W \
                 a square; the samples have shape {sample_shape:?}"
            ),
        )),
    }
}

/// A batch of images `x` (`[N, ...sample]`) as `[N, C, H, W]`.
pub(super) fn as_images(name: &str, x: &Tensor) -> Result<Tensor> {
    let dims = x.dims();
    let Some((&n, sample)) = dims.split_first() else {
        return Err(Error::Data(format!(
            "transform `{name}`: a batch of shape {dims:?} has no sample axis"
        )));
    };
    let [c, h, w] = image_of(name, sample)?;
    Ok(x.reshape((n, c, h, w))?)
}

/// `images` (`[N, C, H, W]`) back in the form of `sample` (`[C, H, W]`, `[H, W]` or
/// `[H*W]`), at the images' own height and width.
pub(super) fn as_samples(images: &Tensor, sample: &[usize]) -> Result<Tensor> {
    let (n, c, h, w) = images.dims4()?;
    let shape: Vec<usize> = match sample.len() {
        3 => vec![n, c, h, w],
        2 => vec![n, h, w],
        _ => vec![n, h * w],
    };
    Ok(images.reshape(shape)?)
}

/// The form of `sample` (`[C, H, W]`, `[H, W]` or `[H*W]`) at height `h` and width `w`.
pub(super) fn sample_at(sample: &[usize], c: usize, h: usize, w: usize) -> Vec<usize> {
    match sample.len() {
        3 => vec![c, h, w],
        2 => vec![h, w],
        _ => vec![h * w],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_shapes_of_every_form() {
        assert_eq!(image_of("t", &[3, 4, 5]).unwrap(), [3, 4, 5]);
        assert_eq!(image_of("t", &[4, 5]).unwrap(), [1, 4, 5]);
        assert_eq!(image_of("t", &[64]).unwrap(), [1, 8, 8]);
        for bad in [&[63][..], &[2, 3, 4, 5], &[0, 3], &[]] {
            let err = image_of("random_flip", bad).unwrap_err().to_string();
            assert!(
                err.contains("`random_flip` needs images") && err.contains(&format!("{bad:?}")),
                "{err}"
            );
        }
        assert_eq!(sample_at(&[64], 1, 6, 6), [36]);
        assert_eq!(sample_at(&[8, 8], 1, 6, 7), [6, 7]);
        assert_eq!(sample_at(&[3, 8, 8], 3, 6, 7), [3, 6, 7]);
    }

    /// Multiplies inputs and labels by 10 and adds its value; samples get an axis more.
    struct Add(f32);

    impl Transform for Add {
        fn name(&self) -> &str {
            "add"
        }
        fn is_random(&self) -> bool {
            false
        }
        fn output(&self, input: &BatchSpec) -> Result<BatchSpec> {
            let mut out = input.clone();
            out.sample_shape.push(1);
            Ok(out)
        }
        fn apply(
            &self,
            x: Tensor,
            y: Option<Tensor>,
            _ctx: &mut ApplyCtx,
        ) -> Result<(Tensor, Option<Tensor>)> {
            let y = y.map(|y| (y * 10.0).and_then(|y| y + f64::from(self.0)));
            Ok((((x * 10.0)? + f64::from(self.0))?, y.transpose()?))
        }
    }

    #[test]
    fn a_chain_applies_its_transforms_in_order() {
        use crate::rng::StreamId;
        let chain = Transforms::new(vec![Box::new(Add(1.0)), Box::new(Add(2.0))]);
        assert_eq!(chain.names(), ["add", "add"]);
        let dev = candle_core::Device::Cpu;
        let x = Tensor::new(&[0f32, 1.0], &dev).unwrap();
        let y = Tensor::new(&[3f32], &dev).unwrap();
        let mut rng = RngStream::new(1, StreamId::Augment);
        let mut ctx = ApplyCtx {
            train: true,
            rng: &mut rng,
        };
        let (x, y) = chain.apply(x, Some(y), &mut ctx).unwrap();
        // (v * 10 + 1) * 10 + 2, not (v * 10 + 2) * 10 + 1.
        assert_eq!(x.to_vec1::<f32>().unwrap(), [12.0, 112.0]);
        assert_eq!(y.unwrap().to_vec1::<f32>().unwrap(), [312.0]);
        let (_, none) = chain.apply(x, None, &mut ctx).unwrap();
        assert!(none.is_none());
        let spec = BatchSpec {
            sample_shape: vec![4],
            ..Default::default()
        };
        assert_eq!(chain.output(&spec).unwrap().sample_shape, [4, 1, 1]);
        assert!(Transforms::default().is_empty());
    }

    #[test]
    fn an_argument_error_names_the_transform_and_the_argument() {
        let e = in_arg(
            "random_flip",
            crate::range::check(false, "p", 1.5, "[0, 1]"),
        );
        assert_eq!(
            e.unwrap_err().to_string(),
            "config transform: `random_flip`: argument `p`: 1.5 is not in [0, 1]"
        );
    }
}
