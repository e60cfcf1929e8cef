//! Models the trainer can drive, and the built-in MLP.
//!
//! Weights are initialised from our own seeded stream and dropout masks come from
//! another, so the same seed gives the same weights and masks in every process.

pub mod batch_norm;
pub mod cnn;
pub mod conv;
mod cpu_op;
pub mod dense;
mod init;
mod matmul;
pub mod pool;
pub mod recurrent;
pub mod resnet;
mod summary;
pub use batch_norm::BatchNorm;
pub use cnn::{Cnn, CnnArgs, Pool};
pub use init::{build_seeded, seeded_var_builder};
pub use recurrent::{Recurrent, RecurrentConfig};
pub use resnet::{ResNet, ResNetArgs};
pub use summary::{
    group_layers, layer_of, layers_of_varmap, render_layer_table, summary_table, LayerSummary,
};

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::rng::RngStream;

/// What a forward pass may need besides the input.
pub struct ForwardCtx<'a> {
    /// Training (dropout active) or evaluation.
    pub train: bool,
    /// The run's dropout stream; draw every random number of the forward pass from it.
    pub dropout_rng: &'a mut RngStream,
}

/// A model the trainer can fit. Its variables live in a `VarMap`, keyed by name.
pub trait Model: Send {
    /// E.g. `"mlp 64-128-10"`.
    fn name(&self) -> String;
    /// Every variable of the model; the trainer trains and checkpoints its float ones, keyed
    /// by these names.
    fn varmap(&self) -> &VarMap;
    /// Maps a batch of inputs to outputs (logits for classification).
    fn forward(&mut self, x: &Tensor, ctx: &mut ForwardCtx) -> Result<Tensor>;
    /// Carried state of a stateful (recurrent) model, saved in checkpoints.
    fn carried_state(&self) -> Result<Vec<(String, Tensor)>> {
        Ok(Vec::new())
    }
    /// Restores what `carried_state` exported, on resume; an empty map means no carried
    /// state. Stateless models ignore it.
    fn load_carried_state(&mut self, _state: &HashMap<String, Tensor>) -> Result<()> {
        Ok(())
    }
    /// Forgets carried state (at the end of a sequence).
    fn reset_states(&mut self) {}
    /// Names of the variables of [`varmap`](Model::varmap) that are buffers, not
    /// parameters: state the model updates itself in `forward` (batch norm's
    /// `running_mean` and `running_var`, as in PyTorch's `state_dict`). Being in the
    /// `VarMap`, they are saved in checkpoints and exports and loaded by `init_from` and
    /// resume like every variable; they get no gradient, and the optimizers a job builds
    /// leave them out (an optimizer given them anyway skips them: no gradient, no update,
    /// no weight decay). The default: none.
    fn buffers(&self) -> Vec<String> {
        Vec::new()
    }
    /// The model's layers for summaries. The default groups the variables by name
    /// prefix ([`layers_of_varmap`]) with unknown output shapes; models that know their
    /// output shapes say so.
    fn layers(&self) -> Vec<LayerSummary> {
        layers_of_varmap(self.varmap())
    }
}

/// Number of scalar parameters in a var map.
pub fn parameter_count(varmap: &VarMap) -> usize {
    let data = varmap.data().lock().unwrap_or_else(|e| e.into_inner());
    data.values().map(|v| v.elem_count()).sum()
}

/// Creates a variable initialised uniformly in `[-bound, bound)` from `rng`, registered
/// under `name`.
pub fn uniform_var(
    varmap: &VarMap,
    name: &str,
    shape: &[usize],
    bound: f32,
    rng: &mut RngStream,
    device: &Device,
) -> Result<Var> {
    let n: usize = shape.iter().product();
    let values: Vec<f32> = (0..n)
        .map(|_| (rng.uniform_f32() * 2.0 - 1.0) * bound)
        .collect();
    let var = Var::from_tensor(&Tensor::from_vec(values, shape, device)?)?;
    varmap
        .data()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(name.to_string(), var.clone());
    Ok(var)
}

/// Inverted dropout with a mask drawn from `ctx.dropout_rng`; identity in evaluation.
pub fn dropout(x: &Tensor, p: f32, ctx: &mut ForwardCtx) -> Result<Tensor> {
    if !ctx.train || p <= 0.0 {
        return Ok(x.clone());
    }
    let scale = 1.0 / (1.0 - p);
    let mask: Vec<f32> = (0..x.elem_count())
        .map(|_| {
            if ctx.dropout_rng.uniform_f32() >= p {
                scale
            } else {
                0.0
            }
        })
        .collect();
    let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
    Ok(x.mul(&mask)?)
}

/// Settings of the built-in multi-layer perceptron.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlpConfig {
    /// Input features per sample, after flattening every dimension but the batch one; at
    /// least 1.
    pub inputs: usize,
    /// Width of each hidden layer, in order (empty: a single linear layer); each at least 1.
    pub hidden: Vec<usize>,
    /// Outputs per sample (the number of classes for classification); at least 1.
    pub outputs: usize,
    /// Dropout probability after each hidden activation.
    pub dropout: f32,
}

/// Linear layers with ReLU and dropout between them. Variables are named
/// `layers.{i}.weight` (`[out, in]`) and `layers.{i}.bias`, as in candle-nn.
pub struct Mlp {
    config: MlpConfig,
    varmap: VarMap,
    layers: Vec<(Var, Var)>,
}

impl Mlp {
    /// PyTorch's default `Linear` init: weights and biases uniform in ±1/sqrt(fan_in).
    pub fn new(config: MlpConfig, init_rng: &mut RngStream, device: &Device) -> Result<Self> {
        if config.inputs == 0 || config.outputs == 0 || config.hidden.contains(&0) {
            return Err(Error::config(
                "model",
                format!("layer sizes must be positive: {config:?}"),
            ));
        }
        if !(0.0..1.0).contains(&config.dropout) {
            return Err(Error::config(
                "model.dropout",
                format!("{} is not in [0, 1)", config.dropout),
            ));
        }
        let varmap = VarMap::new();
        let mut sizes = vec![config.inputs];
        sizes.extend(&config.hidden);
        sizes.push(config.outputs);
        let mut layers = Vec::new();
        for (i, w) in sizes.windows(2).enumerate() {
            let bound = 1.0 / (w[0] as f32).sqrt();
            let weight = uniform_var(
                &varmap,
                &format!("layers.{i}.weight"),
                &[w[1], w[0]],
                bound,
                init_rng,
                device,
            )?;
            let bias = uniform_var(
                &varmap,
                &format!("layers.{i}.bias"),
                &[w[1]],
                bound,
                init_rng,
                device,
            )?;
            layers.push((weight, bias));
        }
        Ok(Self {
            config,
            varmap,
            layers,
        })
    }

    /// The settings the model was built with.
    pub fn config(&self) -> &MlpConfig {
        &self.config
    }
}

impl Model for Mlp {
    fn name(&self) -> String {
        let mut sizes = vec![self.config.inputs.to_string()];
        sizes.extend(self.config.hidden.iter().map(|h| h.to_string()));
        sizes.push(self.config.outputs.to_string());
        format!("mlp {}", sizes.join("-"))
    }

    fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    fn layers(&self) -> Vec<LayerSummary> {
        let mut layers = layers_of_varmap(&self.varmap);
        let widths = self.config.hidden.iter().chain([&self.config.outputs]);
        for (layer, width) in layers.iter_mut().zip(widths) {
            layer.output_shape = Some(vec![*width]);
        }
        layers
    }

    fn forward(&mut self, x: &Tensor, ctx: &mut ForwardCtx) -> Result<Tensor> {
        let mut h = x.flatten_from(1)?.to_dtype(DType::F32)?;
        let last = self.layers.len() - 1;
        for (i, (w, b)) in self.layers.iter().enumerate() {
            if i < last {
                h = dense::dense(&h, w.as_tensor(), b.as_tensor(), dense::Activation::Relu)?;
                h = dropout(&h, self.config.dropout, ctx)?;
            } else {
                h = dense::dense(
                    &h,
                    w.as_tensor(),
                    b.as_tensor(),
                    dense::Activation::Identity,
                )?;
            }
        }
        Ok(h)
    }
}

/// What the model's outputs mean, which picks the metrics (and the default loss).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Task {
    /// Logits over `num_classes`; `u32` targets; cross-entropy by default.
    Classification {
        /// Number of classes (output columns); targets are below it.
        num_classes: usize,
    },
    /// One value per sample; `f32` targets; mean squared error by default.
    Regression,
}

impl Task {
    /// Per-sample argmax helper for callers that want predictions.
    pub fn predictions(output: &Tensor) -> Result<Vec<u32>> {
        Ok(output.argmax(D::Minus1)?.to_vec1::<u32>()?)
    }
}
