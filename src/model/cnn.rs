//! A configurable convolutional network for small images (the model zoo's `cnn`).
//!
//! Conv blocks (convolution, optional batch norm, ReLU, 2x2 pooling), then dense layers
//! with ReLU and dropout, then a linear output layer: the classic small image classifier.
//! Built from candle-nn layers whose weights come from the run's seeded stream
//! ([`build_seeded`]); batch norm keeps its running statistics as variables of the
//! model's `VarMap` ([`BatchNorm`]), so checkpoints hold and restore them exactly.

use candle_core::{DType, Device, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Linear, VarMap};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::conv::{conv2d_layer, conv2d_relu_max_pool2x2_layer, relu_max_pool2x2};
use crate::model::dense::{linear, Activation};
use crate::model::{
    build_seeded, dropout, layers_of_varmap, BatchNorm, ForwardCtx, LayerSummary, Model,
};
use crate::rng::RngStream;

/// How each conv block's output is pooled (2x2, stride 2; an odd last row or column is
/// dropped, as PyTorch's floor mode does).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Pool {
    /// Maximum of each 2x2 window, `"max"` (the default).
    #[default]
    Max,
    /// Mean of each 2x2 window, `"avg"`.
    Avg,
}

/// A convolutional network for images: conv blocks (convolution, optional batch norm,
/// ReLU, 2x2 pooling), then dense layers with dropout.
///
/// The settings of [`Cnn`]; every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CnnArgs {
    /// Output channels of each conv block, in order: one block per entry, each halving
    /// height and width by its pooling. At least one block, each at least 1 channel.
    /// Default `[32, 64]`.
    pub channels: Vec<usize>,
    /// Side of the square convolution kernel; at least 1. Default 3.
    pub kernel: usize,
    /// Zero padding on each side of every convolution, in pixels; `null` for "same"
    /// padding (kernel / 2, which keeps height and width; needs an odd kernel). Default
    /// `null`.
    pub padding: Option<usize>,
    /// Batch normalisation between each convolution and its ReLU (the convolutions then
    /// have no bias). Its running statistics are saved with the weights. Default false.
    pub batch_norm: bool,
    /// Pooling after each conv block: `"max"` or `"avg"`, 2x2 with stride 2. Default
    /// `"max"`.
    pub pool: Pool,
    /// Dropout probability after the conv stack and after each hidden dense layer; in
    /// [0, 1). Default 0.25.
    pub dropout: f64,
    /// Width of each hidden dense layer between the conv stack and the output layer
    /// (empty: the output layer follows the conv stack); each at least 1. Default `[128]`.
    pub hidden: Vec<usize>,
}

impl Default for CnnArgs {
    fn default() -> Self {
        Self {
            channels: vec![32, 64],
            kernel: 3,
            padding: None,
            batch_norm: false,
            pool: Pool::Max,
            dropout: 0.25,
            hidden: vec![128],
        }
    }
}

impl CnnArgs {
    /// The padding used: `padding`, else kernel / 2 ("same").
    pub fn padding_px(&self) -> usize {
        self.padding.unwrap_or(self.kernel / 2)
    }

    /// Checks the settings on their own (not against an input), naming the bad field.
    pub fn validate(&self) -> Result<()> {
        if self.channels.is_empty() {
            return Err(Error::config(
                "model.channels",
                "needs at least one conv block",
            ));
        }
        if self.channels.contains(&0) {
            return Err(Error::config(
                "model.channels",
                format!("{:?}: every block needs at least 1 channel", self.channels),
            ));
        }
        if self.kernel == 0 {
            return Err(Error::config("model.kernel", "must be at least 1, got 0"));
        }
        if self.padding.is_none() && self.kernel.is_multiple_of(2) {
            return Err(Error::config(
                "model.padding",
                format!(
                    "\"same\" padding (null) needs an odd kernel, and kernel is {}: set \
                     padding to a number of pixels",
                    self.kernel
                ),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::config(
                "model.dropout",
                format!("{} is not in [0, 1)", self.dropout),
            ));
        }
        if self.hidden.contains(&0) {
            return Err(Error::config(
                "model.hidden",
                format!("{:?}: every dense layer needs at least 1 unit", self.hidden),
            ));
        }
        Ok(())
    }
}

/// A sample shape as an image `[channels, height, width]`: `[C, H, W]` as it is, `[H, W]`
/// and `[H*W]` (a square) as one channel. Anything else, or a zero dimension, is an
/// error naming the shape and `model`.
pub fn image_shape(model: &str, sample_shape: &[usize]) -> Result<[usize; 3]> {
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
            "model",
            format!(
                "{model} needs images, samples of shape [C, H, W], [H, W] or [H*W] with \
                 H*W a square; the data's samples have shape {sample_shape:?}"
            ),
        )),
    }
}

/// One conv block: convolution, optional batch norm; ReLU and pooling follow.
struct ConvBlock {
    conv: Conv2d,
    bn: Option<BatchNorm>,
}

/// The model zoo's `cnn`: `[conv -> (batch norm) -> ReLU -> 2x2 pool] x blocks ->
/// flatten -> dropout -> [dense -> ReLU -> dropout] x hidden -> dense`. Variables:
/// `conv.{i}.weight` (`[out, in, k, k]`) and `conv.{i}.bias` (without batch norm),
/// `conv.{i}.bn.{weight,bias,running_mean,running_var}`, `fc.{j}.weight` and `.bias`
/// (the last `fc` is the output layer).
pub struct Cnn {
    args: CnnArgs,
    input: [usize; 3],
    outputs: usize,
    varmap: VarMap,
    blocks: Vec<ConvBlock>,
    /// Each conv's output shape `[C, H, W]` (before pooling).
    conv_shapes: Vec<[usize; 3]>,
    dense: Vec<Linear>,
}

impl Cnn {
    /// Builds the network for samples of `sample_shape` (see [`image_shape`]) and
    /// `outputs` outputs, with weights drawn from `init` (candle-nn's: Kaiming normal
    /// weights, biases uniform in ±1/sqrt(fan_in)). Settings that are invalid, or an input
    /// too small for the conv blocks, are errors naming the field.
    pub fn new(
        args: CnnArgs,
        sample_shape: &[usize],
        outputs: usize,
        init: &mut RngStream,
        device: &Device,
    ) -> Result<Self> {
        args.validate()?;
        if outputs == 0 {
            return Err(Error::config("model", "outputs must be at least 1, got 0"));
        }
        let input = image_shape("cnn", sample_shape)?;
        let (k, pad) = (args.kernel, args.padding_px());
        let mut conv_shapes = Vec::new();
        let [mut c, mut h, mut w] = input;
        for (i, &out) in args.channels.iter().enumerate() {
            if h + 2 * pad < k || w + 2 * pad < k {
                return Err(Error::config(
                    "model.kernel",
                    format!(
                        "input {input:?}: conv block {i} gets {h}x{w} pixels, fewer than its \
                         {k}x{k} kernel with padding {pad}"
                    ),
                ));
            }
            let (ch, cw) = (h + 2 * pad - k + 1, w + 2 * pad - k + 1);
            if ch < 2 || cw < 2 {
                return Err(Error::config(
                    "model.channels",
                    format!(
                        "input {input:?} is too small for {} conv blocks: block {i}'s output \
                         is {ch}x{cw}, too small for 2x2 pooling",
                        args.channels.len()
                    ),
                ));
            }
            conv_shapes.push([out, ch, cw]);
            (c, h, w) = (out, ch / 2, cw / 2);
        }
        let flat = c * h * w;
        let varmap = VarMap::new();
        let (blocks, dense) = build_seeded(&varmap, init, DType::F32, device, |vb| {
            let cfg = Conv2dConfig {
                padding: pad,
                ..Default::default()
            };
            let mut blocks = Vec::new();
            let mut in_c = input[0];
            for (i, &out) in args.channels.iter().enumerate() {
                let vb = vb.pp(format!("conv.{i}"));
                let block = if args.batch_norm {
                    ConvBlock {
                        conv: candle_nn::conv2d_no_bias(in_c, out, k, cfg, vb.clone())?,
                        bn: Some(BatchNorm::new(out, vb.pp("bn"))?),
                    }
                } else {
                    ConvBlock {
                        conv: candle_nn::conv2d(in_c, out, k, cfg, vb)?,
                        bn: None,
                    }
                };
                blocks.push(block);
                in_c = out;
            }
            let mut dense = Vec::new();
            let mut widths = vec![flat];
            widths.extend(&args.hidden);
            widths.push(outputs);
            for (j, io) in widths.windows(2).enumerate() {
                dense.push(candle_nn::linear(io[0], io[1], vb.pp(format!("fc.{j}")))?);
            }
            Ok((blocks, dense))
        })?;
        Ok(Self {
            args,
            input,
            outputs,
            varmap,
            blocks,
            conv_shapes,
            dense,
        })
    }

    /// The settings the model was built with.
    pub fn args(&self) -> &CnnArgs {
        &self.args
    }

    /// The input shape `[C, H, W]` each sample is viewed as.
    pub fn input_shape(&self) -> [usize; 3] {
        self.input
    }
}

/// `x` `[B, C, H, W]` as an `[B, C, H, W]` image batch, checking the per-sample size.
pub(super) fn as_images(model: &str, x: &Tensor, input: [usize; 3]) -> Result<Tensor> {
    let b = x.dim(0)?;
    let per_sample: usize = x.dims()[1..].iter().product();
    if per_sample != input.iter().product::<usize>() {
        return Err(Error::config(
            "model",
            format!(
                "{model} was built for samples of shape {input:?}; got a batch of shape {:?}",
                x.dims()
            ),
        ));
    }
    Ok(x.to_dtype(DType::F32)?
        .reshape((b, input[0], input[1], input[2]))?)
}

/// 2x2 pooling with stride 2 of `[B, C, H, W]`, dropping an odd last row or column
/// first: candle's pooling gradients assume the windows tile the input exactly.
fn pool2x2(x: &Tensor, pool: Pool) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let mut x = x.clone();
    if h % 2 == 1 {
        x = x.narrow(2, 0, h - 1)?;
    }
    if w % 2 == 1 {
        x = x.narrow(3, 0, w - 1)?;
    }
    Ok(match pool {
        Pool::Max => x.max_pool2d(2)?,
        Pool::Avg => x.avg_pool2d(2)?,
    })
}

impl Model for Cnn {
    fn name(&self) -> String {
        let join = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join("-");
        let mut name = format!("cnn {}", join(&self.args.channels));
        if self.args.batch_norm {
            name.push_str(" bn");
        }
        if self.args.pool == Pool::Avg {
            name.push_str(" avg");
        }
        if !self.args.hidden.is_empty() {
            name.push_str(&format!(" / {}", join(&self.args.hidden)));
        }
        name
    }

    fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    fn buffers(&self) -> Vec<String> {
        self.blocks
            .iter()
            .filter_map(|b| b.bn.as_ref())
            .flat_map(BatchNorm::buffer_names)
            .collect()
    }

    fn layers(&self) -> Vec<LayerSummary> {
        let mut layers = layers_of_varmap(&self.varmap);
        let last = self.args.hidden.len();
        for l in &mut layers {
            let mut parts = l.name.split('.');
            let (kind, index) = (parts.next(), parts.next().and_then(|i| i.parse().ok()));
            l.output_shape = match (kind, index) {
                (Some("conv"), Some(i)) => self.conv_shapes.get::<usize>(i).map(|s| s.to_vec()),
                (Some("fc"), Some(j)) if j == last => Some(vec![self.outputs]),
                (Some("fc"), Some(j)) => self.args.hidden.get::<usize>(j).map(|w| vec![*w]),
                _ => None,
            };
        }
        layers
    }

    fn forward(&mut self, x: &Tensor, ctx: &mut ForwardCtx) -> Result<Tensor> {
        let mut h = as_images("cnn", x, self.input)?;
        for block in &self.blocks {
            h = match (&block.bn, self.args.pool) {
                (None, Pool::Max) => conv2d_relu_max_pool2x2_layer(&block.conv, &h)?,
                (bn, pool) => {
                    h = conv2d_layer(&block.conv, &h)?;
                    if let Some(bn) = bn {
                        h = bn.forward(&h, ctx.train)?;
                    }
                    match pool {
                        Pool::Max => relu_max_pool2x2(&h)?,
                        Pool::Avg => pool2x2(&h.relu()?, Pool::Avg)?,
                    }
                }
            };
        }
        let p = self.args.dropout as f32;
        let mut h = dropout(&h.flatten_from(1)?, p, ctx)?;
        let last = self.dense.len() - 1;
        for (j, layer) in self.dense.iter().enumerate() {
            if j < last {
                h = dropout(&linear(layer, &h, Activation::Relu)?, p, ctx)?;
            } else {
                h = linear(layer, &h, Activation::Identity)?;
            }
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::StreamId;

    fn build(args: CnnArgs, shape: &[usize]) -> Result<Cnn> {
        let mut rng = RngStream::new(1, StreamId::Init);
        Cnn::new(args, shape, 10, &mut rng, &Device::Cpu)
    }

    fn err(args: CnnArgs, shape: &[usize]) -> String {
        match build(args, shape) {
            Ok(m) => panic!("expected an error, built {}", m.name()),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn shapes_names_and_layers() {
        let m = build(CnnArgs::default(), &[64]).unwrap();
        assert_eq!(m.name(), "cnn 32-64 / 128");
        assert_eq!(m.input_shape(), [1, 8, 8]);
        assert!(m.buffers().is_empty());
        let layers: Vec<(String, Option<Vec<usize>>)> = m
            .layers()
            .into_iter()
            .map(|l| (l.name, l.output_shape))
            .collect();
        assert_eq!(
            layers,
            [
                ("conv.0".to_string(), Some(vec![32, 8, 8])),
                ("conv.1".to_string(), Some(vec![64, 4, 4])),
                ("fc.0".to_string(), Some(vec![128])),
                ("fc.1".to_string(), Some(vec![10])),
            ]
        );
        let fc0 = m.varmap.data().lock().unwrap()["fc.0.weight"]
            .dims()
            .to_vec();
        assert_eq!(fc0, [128, 64 * 2 * 2]);

        let args = CnnArgs {
            channels: vec![4, 4, 4],
            batch_norm: true,
            pool: Pool::Avg,
            hidden: vec![],
            ..Default::default()
        };
        // 9x7 pooled to 4x3, then to 2x1: block 2's 2x1 output cannot be pooled 2x2.
        let e = err(args.clone(), &[3, 9, 7]);
        assert!(e.contains("model.channels") && e.contains("2x1"), "{e}");
        let m = build(args, &[3, 9, 9]).unwrap();
        assert_eq!(m.name(), "cnn 4-4-4 bn avg");
        assert_eq!(
            m.buffers(),
            [
                "conv.0.bn.running_mean",
                "conv.0.bn.running_var",
                "conv.1.bn.running_mean",
                "conv.1.bn.running_var",
                "conv.2.bn.running_mean",
                "conv.2.bn.running_var",
            ]
        );
        let shapes: Vec<Option<Vec<usize>>> =
            m.layers().into_iter().map(|l| l.output_shape).collect();
        assert_eq!(
            shapes,
            [
                Some(vec![4, 9, 9]),
                Some(vec![4, 9, 9]),
                Some(vec![4, 4, 4]),
                Some(vec![4, 4, 4]),
                Some(vec![4, 2, 2]),
                Some(vec![4, 2, 2]),
                Some(vec![10]),
            ]
        );
        let vars = m.varmap.data().lock().unwrap();
        assert!(
            !vars.contains_key("conv.0.bias"),
            "batch norm: no conv bias"
        );
        assert_eq!(vars["fc.0.weight"].dims(), [10, 4]);
    }

    #[test]
    fn forward_gives_one_row_per_sample_for_every_input_form() {
        for shape in [vec![1, 8, 8], vec![8, 8], vec![64]] {
            let mut m = build(
                CnnArgs {
                    channels: vec![2],
                    hidden: vec![3],
                    ..Default::default()
                },
                &shape,
            )
            .unwrap();
            let mut dims = vec![5];
            dims.extend(&shape);
            let x = Tensor::ones(dims, DType::F32, &Device::Cpu).unwrap();
            let mut rng = RngStream::new(1, StreamId::Dropout);
            let mut ctx = ForwardCtx {
                train: true,
                dropout_rng: &mut rng,
            };
            let y = m.forward(&x, &mut ctx).unwrap();
            assert_eq!(y.dims(), [5, 10], "{shape:?}");
        }
        let mut m = build(CnnArgs::default(), &[64]).unwrap();
        let x = Tensor::ones((5, 63), DType::F32, &Device::Cpu).unwrap();
        let mut rng = RngStream::new(1, StreamId::Dropout);
        let mut ctx = ForwardCtx {
            train: false,
            dropout_rng: &mut rng,
        };
        let e = m.forward(&x, &mut ctx).unwrap_err().to_string();
        assert!(e.contains("[1, 8, 8]") && e.contains("[5, 63]"), "{e}");
    }

    #[test]
    fn bad_settings_and_shapes_are_errors_naming_the_field() {
        let d = CnnArgs::default;
        let cases: Vec<(CnnArgs, &[usize], &[&str])> = vec![
            (
                CnnArgs {
                    channels: vec![],
                    ..d()
                },
                &[64],
                &["model.channels", "at least one"],
            ),
            (
                CnnArgs {
                    channels: vec![8, 0],
                    ..d()
                },
                &[64],
                &["model.channels", "[8, 0]"],
            ),
            (
                CnnArgs { kernel: 0, ..d() },
                &[64],
                &["model.kernel", "at least 1"],
            ),
            (
                CnnArgs { kernel: 4, ..d() },
                &[64],
                &["model.padding", "odd kernel", "4"],
            ),
            (
                CnnArgs {
                    dropout: 1.0,
                    ..d()
                },
                &[64],
                &["model.dropout", "1 is not in [0, 1)"],
            ),
            (
                CnnArgs {
                    dropout: -0.1,
                    ..d()
                },
                &[64],
                &["model.dropout", "-0.1"],
            ),
            (
                CnnArgs {
                    hidden: vec![0],
                    ..d()
                },
                &[64],
                &["model.hidden", "[0]"],
            ),
            (
                CnnArgs {
                    channels: vec![4, 4, 4, 4],
                    ..d()
                },
                &[64],
                &["model.channels", "[1, 8, 8]", "4 conv blocks", "1x1"],
            ),
            (
                CnnArgs {
                    kernel: 5,
                    padding: Some(0),
                    ..d()
                },
                &[1, 4, 4],
                &["model.kernel", "4x4", "5x5"],
            ),
            (d(), &[65], &["model", "[65]"]),
            (d(), &[2, 3, 4, 5], &["model", "[2, 3, 4, 5]"]),
            (d(), &[0, 8, 8], &["model", "[0, 8, 8]"]),
        ];
        for (args, shape, wants) in cases {
            let e = err(args.clone(), shape);
            for w in wants {
                assert!(e.contains(w), "{args:?} {shape:?}: `{w}` not in: {e}");
            }
        }
        let mut rng = RngStream::new(1, StreamId::Init);
        let e = Cnn::new(CnnArgs::default(), &[64], 0, &mut rng, &Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("outputs"), "{e}");
    }

    #[test]
    fn args_read_from_json_with_defaults_and_unknown_fields_refused() {
        let a: CnnArgs =
            serde_json::from_str(r#"{"channels": [8], "pool": "avg", "padding": 0}"#).unwrap();
        assert_eq!(
            a,
            CnnArgs {
                channels: vec![8],
                pool: Pool::Avg,
                padding: Some(0),
                ..Default::default()
            }
        );
        let e = serde_json::from_str::<CnnArgs>(r#"{"chanels": [8]}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("chanels"), "{e}");
        let e = serde_json::from_str::<CnnArgs>(r#"{"pool": "min"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("min") && e.contains("max"), "{e}");
        let back: CnnArgs =
            serde_json::from_str(&serde_json::to_string(&CnnArgs::default()).unwrap()).unwrap();
        assert_eq!(back, CnnArgs::default());
    }
}
