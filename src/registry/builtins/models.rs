//! The built-in models (`mlp`, `cnn`, `resnet`, `lstm`, `gru`) and the argument types
//! of those whose arguments live here (the `cnn` and `resnet` ones live beside the models).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::recurrent::Cell;
use crate::model::{
    Cnn, CnnArgs, Mlp, MlpConfig, Model, Recurrent, RecurrentConfig, ResNet, ResNetArgs,
};
use crate::range::{at_least_one, unit_open};
use crate::registry::{ModelCtx, Registry};

/// Registers the built-in models.
pub(super) fn register(r: &mut Registry) {
    r.model_checked(
        "mlp",
        MlpArgs::validate,
        |a: MlpArgs, ctx: &mut ModelCtx| Ok(Box::new(a.build(ctx)?) as Box<dyn Model>),
    );
    r.model_checked(
        "cnn",
        CnnArgs::validate,
        |a: CnnArgs, ctx: &mut ModelCtx| {
            let m = Cnn::new(a, ctx.sample_shape, ctx.outputs, ctx.init, ctx.device)?;
            Ok(Box::new(m) as Box<dyn Model>)
        },
    );
    r.model_checked(
        "resnet",
        ResNetArgs::validate,
        |a: ResNetArgs, ctx: &mut ModelCtx| {
            let m = ResNet::new(a, ctx.sample_shape, ctx.outputs, ctx.init, ctx.device)?;
            Ok(Box::new(m) as Box<dyn Model>)
        },
    );
    r.model_checked(
        "lstm",
        RecurrentArgs::validate,
        |a: RecurrentArgs, ctx: &mut ModelCtx| {
            Ok(Box::new(a.build(Cell::Lstm, ctx)?) as Box<dyn Model>)
        },
    );
    r.model_checked(
        "gru",
        RecurrentArgs::validate,
        |a: RecurrentArgs, ctx: &mut ModelCtx| {
            Ok(Box::new(a.build(Cell::Gru, ctx)?) as Box<dyn Model>)
        },
    );
}

/// A multi-layer perceptron: linear layers with ReLU and dropout between them; inputs
/// and outputs are sized from the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MlpArgs {
    /// Widths of the hidden layers, in order (default `[128]`; `[]`: one linear layer).
    pub hidden: Vec<usize>,
    /// Dropout probability after each hidden activation, in [0, 1) (default 0.2).
    pub dropout: f64,
}

impl Default for MlpArgs {
    fn default() -> Self {
        Self {
            hidden: vec![128],
            dropout: 0.2,
        }
    }
}

impl MlpArgs {
    /// Checks `dropout` and the hidden widths.
    pub fn validate(&self) -> Result<()> {
        for (i, &h) in self.hidden.iter().enumerate() {
            at_least_one(&format!("model.hidden[{i}]"), h as u64)?;
        }
        unit_open("model.dropout", self.dropout)
    }

    /// Weights and biases of the MLP between `inputs` and `outputs`, as a float so that
    /// absurd widths cannot overflow.
    pub fn parameter_count(&self, inputs: usize, outputs: usize) -> f64 {
        let mut sizes = vec![inputs as f64];
        sizes.extend(self.hidden.iter().map(|&h| h as f64));
        sizes.push(outputs as f64);
        sizes.windows(2).map(|w| w[0] * w[1] + w[1]).sum()
    }

    /// The MLP for the data `ctx` describes.
    pub fn build(&self, ctx: &mut ModelCtx) -> Result<Mlp> {
        Mlp::new(
            MlpConfig {
                inputs: ctx.sample_shape.iter().product(),
                hidden: self.hidden.clone(),
                outputs: ctx.outputs,
                dropout: self.dropout as f32,
            },
            ctx.init,
            ctx.device,
        )
    }
}

/// A recurrent network (`lstm` or `gru`) with a linear head, stateful across the time
/// windows of a sequence (`data.windows`); samples are `[time, features]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RecurrentArgs {
    /// Size of the hidden state, at least 1 (default 32).
    pub hidden: usize,
    /// An output at every time step (forecasting, per-step targets) instead of one after
    /// the last step (sequence classification) (default false).
    pub per_step: bool,
}

impl Default for RecurrentArgs {
    fn default() -> Self {
        Self {
            hidden: 32,
            per_step: false,
        }
    }
}

impl RecurrentArgs {
    /// Checks `hidden`.
    pub fn validate(&self) -> Result<()> {
        at_least_one("model.hidden", self.hidden as u64)
    }

    /// The network for the data `ctx` describes: features per step from the sample's last
    /// axis.
    pub fn build(&self, cell: Cell, ctx: &mut ModelCtx) -> Result<Recurrent> {
        let inputs = match ctx.sample_shape {
            [_, features] => *features,
            [_] => 1,
            other => {
                return Err(crate::error::Error::config(
                    "model",
                    format!("a recurrent model takes samples [time, features], not {other:?}"),
                ))
            }
        };
        Recurrent::new(
            RecurrentConfig {
                cell,
                inputs,
                hidden: self.hidden,
                outputs: ctx.outputs,
                per_step: self.per_step,
            },
            ctx.init,
            ctx.device,
        )
    }
}
