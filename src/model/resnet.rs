//! A small residual network for colour images such as CIFAR's 32x32 (the model zoo's
//! `resnet`), after He et al.'s CIFAR ResNets.
//!
//! A 3x3 stem convolution, stages of basic residual blocks (two 3x3 convolutions with
//! batch norm; the first block of every stage after the first halves height and width and
//! takes a 1x1 projection shortcut), global average pooling and a linear layer. Works on
//! any `[C, H, W]` input: each stride-2 stage maps a side `s` to `ceil(s / 2)`. Weights
//! come from the run's seeded stream ([`build_seeded`]); the batch norms' running
//! statistics are variables of the model's `VarMap` ([`BatchNorm`]).

use candle_core::{DType, Device, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Linear, VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::cnn::{as_images, image_shape};
use crate::model::conv::conv2d_layer;
use crate::model::dense::{linear, Activation};
use crate::model::{build_seeded, layers_of_varmap, BatchNorm, ForwardCtx, LayerSummary, Model};
use crate::rng::RngStream;

/// A small residual network for colour images (e.g. 32x32): a stem convolution, stages
/// of basic residual blocks with batch norm, global average pooling, a linear layer.
///
/// The settings of [`ResNet`], the model zoo's `resnet`; every field has a default. Batch
/// norm is always on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ResNetArgs {
    /// Channels of each stage, in order (the stem has the first stage's); every stage
    /// after the first halves height and width. At least one stage, each at least 1
    /// channel. Default `[16, 32, 64]`.
    pub channels: Vec<usize>,
    /// Basic residual blocks (two 3x3 convolutions each) per stage; at least 1. Default 2.
    pub blocks_per_stage: usize,
}

impl Default for ResNetArgs {
    fn default() -> Self {
        Self {
            channels: vec![16, 32, 64],
            blocks_per_stage: 2,
        }
    }
}

impl ResNetArgs {
    /// Checks the settings, naming the bad field.
    pub fn validate(&self) -> Result<()> {
        if self.channels.is_empty() {
            return Err(Error::config("model.channels", "needs at least one stage"));
        }
        if self.channels.contains(&0) {
            return Err(Error::config(
                "model.channels",
                format!("{:?}: every stage needs at least 1 channel", self.channels),
            ));
        }
        if self.blocks_per_stage == 0 {
            return Err(Error::config(
                "model.blocks_per_stage",
                "must be at least 1, got 0",
            ));
        }
        Ok(())
    }
}

/// A 3x3 or 1x1 convolution without bias (batch norm follows) and its batch norm.
struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm,
    stride: usize,
}

impl ConvBn {
    /// `{prefix}.conv` and `{prefix}.bn` (or `{prefix}.conv{n}`/`.bn{n}` with a suffix).
    fn new(
        vb: &VarBuilder,
        suffix: &str,
        (in_c, out_c, kernel, stride): (usize, usize, usize, usize),
    ) -> Result<Self> {
        let cfg = Conv2dConfig {
            padding: kernel / 2,
            stride,
            ..Default::default()
        };
        Ok(Self {
            conv: candle_nn::conv2d_no_bias(
                in_c,
                out_c,
                kernel,
                cfg,
                vb.pp(format!("conv{suffix}")),
            )?,
            bn: BatchNorm::new(out_c, vb.pp(format!("bn{suffix}")))?,
            stride,
        })
    }

    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let x = if self.stride > 1 {
            even_sides(x)?
        } else {
            x.clone()
        };
        self.bn.forward(&conv2d_layer(&self.conv, &x)?, train)
    }
}

/// `x` `[B, C, H, W]` with one zero row (column) appended when exactly one of `H`, `W`
/// is odd, for a stride-2 convolution: candle 0.11's conv2d backward takes the output
/// padding of both sides from the height alone, so such an input fails in backward (a
/// shape mismatch). The appended zero does not change the output: a 3x3 window with
/// padding 1 reads it where it read padding before, a 1x1 window never reads it.
fn even_sides(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if h % 2 == w % 2 {
        return Ok(x.clone());
    }
    let odd = if h % 2 == 1 { 2 } else { 3 };
    Ok(x.pad_with_zeros(odd, 0, 1)?)
}

/// `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`.
struct Block {
    first: ConvBn,
    second: ConvBn,
    /// A 1x1 projection where the block changes the shape; identity otherwise.
    shortcut: Option<ConvBn>,
}

impl Block {
    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = self.first.forward(x, train)?.relu()?;
        let y = self.second.forward(&y, train)?;
        let skip = match &self.shortcut {
            Some(s) => s.forward(x, train)?,
            None => x.clone(),
        };
        Ok((y + skip)?.relu()?)
    }

    fn bns(&self) -> impl Iterator<Item = &BatchNorm> {
        [&self.first, &self.second]
            .into_iter()
            .chain(&self.shortcut)
            .map(|c| &c.bn)
    }
}

/// The model zoo's `resnet`. Variables: `stem.conv.weight`, `stem.bn.*`,
/// `stages.{s}.{b}.conv1.weight`, `.bn1.*`, `.conv2.weight`, `.bn2.*`,
/// `stages.{s}.0.shortcut.conv.weight` and `.shortcut.bn.*` (projection blocks),
/// `fc.weight`, `fc.bias`; each `bn` has `weight`, `bias`, `running_mean` and
/// `running_var`.
pub struct ResNet {
    args: ResNetArgs,
    input: [usize; 3],
    outputs: usize,
    varmap: VarMap,
    stem: ConvBn,
    blocks: Vec<Block>,
    /// Output shape `[C, H, W]` of each stage.
    stage_shapes: Vec<[usize; 3]>,
    fc: Linear,
}

impl ResNet {
    /// Builds the network for samples of `sample_shape` (`[C, H, W]`; `[H, W]` and a
    /// square `[H*W]` as one channel) and `outputs` outputs, weights drawn from `init`
    /// (candle-nn's: Kaiming normal convolutions and linear weight, batch norm scale 1 and
    /// shift 0). Invalid settings are errors naming the field.
    pub fn new(
        args: ResNetArgs,
        sample_shape: &[usize],
        outputs: usize,
        init: &mut RngStream,
        device: &Device,
    ) -> Result<Self> {
        args.validate()?;
        if outputs == 0 {
            return Err(Error::config("model", "outputs must be at least 1, got 0"));
        }
        let input = image_shape("resnet", sample_shape)?;
        let mut stage_shapes = Vec::new();
        let (mut h, mut w) = (input[1], input[2]);
        for (s, &c) in args.channels.iter().enumerate() {
            if s > 0 {
                (h, w) = (h.div_ceil(2), w.div_ceil(2));
            }
            stage_shapes.push([c, h, w]);
        }
        let varmap = VarMap::new();
        let (stem, blocks, fc) = build_seeded(&varmap, init, DType::F32, device, |vb| {
            let c0 = args.channels[0];
            let stem = ConvBn::new(&vb.pp("stem"), "", (input[0], c0, 3, 1))?;
            let mut blocks = Vec::new();
            let mut in_c = c0;
            for (s, &c) in args.channels.iter().enumerate() {
                for b in 0..args.blocks_per_stage {
                    let vb = vb.pp(format!("stages.{s}.{b}"));
                    let stride = if s > 0 && b == 0 { 2 } else { 1 };
                    let first = ConvBn::new(&vb, "1", (in_c, c, 3, stride))?;
                    let second = ConvBn::new(&vb, "2", (c, c, 3, 1))?;
                    let shortcut = if stride != 1 || in_c != c {
                        Some(ConvBn::new(&vb.pp("shortcut"), "", (in_c, c, 1, stride))?)
                    } else {
                        None
                    };
                    blocks.push(Block {
                        first,
                        second,
                        shortcut,
                    });
                    in_c = c;
                }
            }
            let fc = candle_nn::linear(in_c, outputs, vb.pp("fc"))?;
            Ok((stem, blocks, fc))
        })?;
        Ok(Self {
            args,
            input,
            outputs,
            varmap,
            stem,
            blocks,
            stage_shapes,
            fc,
        })
    }

    /// The settings the model was built with.
    pub fn args(&self) -> &ResNetArgs {
        &self.args
    }

    /// The input shape `[C, H, W]` each sample is viewed as.
    pub fn input_shape(&self) -> [usize; 3] {
        self.input
    }
}

impl Model for ResNet {
    fn name(&self) -> String {
        let channels: Vec<String> = self.args.channels.iter().map(usize::to_string).collect();
        format!(
            "resnet {} x{}",
            channels.join("-"),
            self.args.blocks_per_stage
        )
    }

    fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    fn buffers(&self) -> Vec<String> {
        std::iter::once(&self.stem.bn)
            .chain(self.blocks.iter().flat_map(Block::bns))
            .flat_map(BatchNorm::buffer_names)
            .collect()
    }

    fn layers(&self) -> Vec<LayerSummary> {
        let mut layers = layers_of_varmap(&self.varmap);
        for l in &mut layers {
            let parts: Vec<&str> = l.name.split('.').collect();
            l.output_shape = match parts.as_slice() {
                ["stem", ..] => Some(self.stage_shapes[0].to_vec()),
                ["stages", s, ..] => s
                    .parse::<usize>()
                    .ok()
                    .and_then(|s| self.stage_shapes.get(s))
                    .map(|s| s.to_vec()),
                ["fc"] => Some(vec![self.outputs]),
                _ => None,
            };
        }
        layers
    }

    fn forward(&mut self, x: &Tensor, ctx: &mut ForwardCtx) -> Result<Tensor> {
        let x = as_images("resnet", x, self.input)?;
        let mut h = self.stem.forward(&x, ctx.train)?.relu()?;
        for block in &self.blocks {
            h = block.forward(&h, ctx.train)?;
        }
        let pooled = h.flatten_from(2)?.mean(2)?;
        linear(&self.fc, &pooled, Activation::Identity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::StreamId;

    fn build(args: ResNetArgs, shape: &[usize]) -> Result<ResNet> {
        let mut rng = RngStream::new(1, StreamId::Init);
        ResNet::new(args, shape, 10, &mut rng, &Device::Cpu)
    }

    #[test]
    fn cifar_shapes_names_and_buffers() {
        let m = build(ResNetArgs::default(), &[3, 32, 32]).unwrap();
        assert_eq!(m.name(), "resnet 16-32-64 x2");
        // Stem, 6 blocks of 2 convs, 2 projections: 15 batch norms.
        assert_eq!(m.buffers().len(), 2 * 15);
        assert!(m
            .buffers()
            .contains(&"stages.1.0.shortcut.bn.running_var".to_string()));
        let layers = m.layers();
        let shape = |name: &str| {
            layers
                .iter()
                .find(|l| l.name == name)
                .unwrap_or_else(|| panic!("no layer {name}"))
                .output_shape
                .clone()
        };
        assert_eq!(shape("stem.conv"), Some(vec![16, 32, 32]));
        assert_eq!(shape("stages.0.1.bn2"), Some(vec![16, 32, 32]));
        assert_eq!(shape("stages.1.0.shortcut.conv"), Some(vec![32, 16, 16]));
        assert_eq!(shape("stages.2.1.conv2"), Some(vec![64, 8, 8]));
        assert_eq!(shape("fc"), Some(vec![10]));
        let vars = m.varmap.data().lock().unwrap();
        assert!(!vars.contains_key("stages.0.0.shortcut.conv.weight"));
        assert!(!vars.contains_key("stages.1.1.shortcut.conv.weight"));
        assert_eq!(
            vars["stages.1.0.shortcut.conv.weight"].dims(),
            [32, 16, 1, 1]
        );
        assert_eq!(vars["stages.1.0.conv1.weight"].dims(), [32, 16, 3, 3]);
        assert_eq!(vars["fc.weight"].dims(), [10, 64]);
        assert!(!vars.contains_key("stem.conv.bias"));
    }

    #[test]
    fn odd_and_tiny_inputs_work() {
        for shape in [vec![3, 7, 5], vec![1, 1, 1], vec![25]] {
            let mut m = build(
                ResNetArgs {
                    channels: vec![2, 3, 4],
                    blocks_per_stage: 1,
                },
                &shape,
            )
            .unwrap();
            let mut dims = vec![4];
            dims.extend(&shape);
            let n: usize = dims.iter().product();
            let x = Tensor::arange(0f32, n as f32, &Device::Cpu)
                .unwrap()
                .reshape(dims)
                .unwrap();
            let mut rng = RngStream::new(1, StreamId::Dropout);
            let mut ctx = ForwardCtx {
                train: true,
                dropout_rng: &mut rng,
            };
            let y = m.forward(&x, &mut ctx).unwrap();
            assert_eq!(y.dims(), [4, 10], "{shape:?}");
            // Gradients reach the stem through every stride-2 stage.
            let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
            let stem = m.varmap.data().lock().unwrap()["stem.conv.weight"].clone();
            let gs = g.get(stem.as_tensor()).expect("stem gradient");
            assert_eq!(gs.dims(), stem.dims());
        }
    }

    /// A stride-2 convolution (through [`even_sides`]) against the same convolution at
    /// stride 1 keeping every other row and column, whose backward involves no stride:
    /// same outputs and same gradients, for every parity of height and width.
    #[test]
    fn stride_two_convolutions_have_the_gradients_of_stride_one_and_subsampling() {
        let dev = Device::Cpu;
        let mut rng = RngStream::new(5, StreamId::Init);
        let mut random = |dims: &[usize]| {
            let n = dims.iter().product();
            let v: Vec<f32> = (0..n).map(|_| rng.uniform_f32() - 0.5).collect();
            candle_core::Var::from_vec(v, dims, &dev).unwrap()
        };
        for (h, w) in [(8, 8), (7, 7), (8, 5), (7, 4), (1, 2), (3, 1)] {
            for (k, pad) in [(3, 1), (1, 0)] {
                let x = random(&[2, 3, h, w]);
                let kernel = random(&[4, 3, k, k]);
                let strided = even_sides(x.as_tensor())
                    .unwrap()
                    .conv2d(kernel.as_tensor(), pad, 2, 1, 1)
                    .unwrap();
                let every_other = |n: usize| {
                    let idx: Vec<u32> = (0..n as u32).step_by(2).collect();
                    Tensor::new(idx, &dev).unwrap()
                };
                let reference = x
                    .as_tensor()
                    .conv2d(kernel.as_tensor(), pad, 1, 1, 1)
                    .unwrap();
                let (rh, rw) = (reference.dim(2).unwrap(), reference.dim(3).unwrap());
                let reference = reference
                    .index_select(&every_other(rh), 2)
                    .unwrap()
                    .index_select(&every_other(rw), 3)
                    .unwrap();
                let case = format!("{h}x{w}, kernel {k}");
                assert_eq!(strided.dims(), reference.dims(), "{case}");
                let weights = random(strided.dims());
                let grads = |y: &Tensor| {
                    let g = (y * weights.as_tensor())
                        .unwrap()
                        .sum_all()
                        .unwrap()
                        .backward()
                        .unwrap();
                    let flat = |v: &candle_core::Var| {
                        g.get(v.as_tensor())
                            .unwrap()
                            .flatten_all()
                            .unwrap()
                            .to_vec1::<f32>()
                            .unwrap()
                    };
                    (flat(&x), flat(&kernel))
                };
                let values = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let close = |a: &[f32], b: &[f32]| {
                    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| (a - b).abs() < 1e-5)
                };
                assert!(close(&values(&strided), &values(&reference)), "{case}");
                let (gx, gk) = grads(&strided);
                let (rx, rk) = grads(&reference);
                assert!(close(&gx, &rx), "{case}: input gradient");
                assert!(close(&gk, &rk), "{case}: kernel gradient");
            }
        }
    }

    #[test]
    fn bad_settings_are_errors_naming_the_field() {
        let cases = [
            (
                ResNetArgs {
                    channels: vec![],
                    ..Default::default()
                },
                "model.channels",
            ),
            (
                ResNetArgs {
                    channels: vec![4, 0],
                    ..Default::default()
                },
                "model.channels",
            ),
            (
                ResNetArgs {
                    blocks_per_stage: 0,
                    ..Default::default()
                },
                "model.blocks_per_stage",
            ),
        ];
        for (args, field) in cases {
            let e = build(args.clone(), &[3, 8, 8]).err().unwrap().to_string();
            assert!(e.contains(field), "{args:?}: {e}");
        }
        let e = build(ResNetArgs::default(), &[63])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("resnet") && e.contains("[63]"), "{e}");
        let e = serde_json::from_str::<ResNetArgs>(r#"{"batch_norm": false}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("batch_norm"), "{e}");
    }
}
