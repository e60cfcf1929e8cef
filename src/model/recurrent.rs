//! A built-in stateful recurrent model (LSTM or GRU, from candle-nn) for time series.
//!
//! The model carries its recurrent state from one call of `forward` to the next, which is
//! what stateful training over the windows of a set needs (see
//! [`TimeseriesWindows`](crate::data_loaders::TimeseriesWindows)). The state is detached
//! between windows (truncated backpropagation through time), exported through
//! `carried_state` so checkpoints hold it, and dropped by `reset_states`, which the
//! trainer calls after the last window of every set.
//!
//! Weights are drawn from our seeded [`RngStream`] (candle's CPU RNG cannot be seeded)
//! with PyTorch's initialisation, uniform in ±1/sqrt(hidden), and registered under
//! candle-nn's names (`rnn.weight_ih_l0`, ...) before candle-nn builds the cell, which
//! then uses them.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::rnn::{GRUConfig, GRUState, LSTMConfig, LSTMState, GRU, LSTM, RNN};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{uniform_var, ForwardCtx, Model};
use crate::rng::RngStream;

/// Recurrent cell type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cell {
    /// Long short-term memory (carries `h` and `c`), `"lstm"` in configs.
    Lstm,
    /// Gated recurrent unit (carries `h`), `"gru"` in configs.
    Gru,
}

/// Settings of [`Recurrent`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecurrentConfig {
    /// Which recurrent cell: LSTM (state `h`, `c`) or GRU (state `h`).
    pub cell: Cell,
    /// Features per time step.
    pub inputs: usize,
    /// Size of the hidden state `h` (and `c`).
    pub hidden: usize,
    /// Outputs per step (or per sequence).
    pub outputs: usize,
    /// Output at every time step, `(batch, time, outputs)` (forecasting), or only after
    /// the last step, `(batch, outputs)` (sequence classification).
    pub per_step: bool,
}

enum Cells {
    Lstm(LSTM),
    Gru(GRU),
}

/// An LSTM or GRU layer followed by a linear head; stateful across `forward` calls.
pub struct Recurrent {
    config: RecurrentConfig,
    varmap: VarMap,
    cell: Cells,
    head_w: Var,
    head_b: Var,
    /// Carried state: `[h]` (GRU) or `[h, c]` (LSTM), each `(batch, hidden)`.
    carried: Option<Vec<Tensor>>,
}

const STATE_NAMES: [&str; 2] = ["rnn.h", "rnn.c"];

impl Recurrent {
    /// Builds the cell and head with weights drawn from `init_rng`; every size must be at
    /// least 1. Starts with no carried state.
    pub fn new(config: RecurrentConfig, init_rng: &mut RngStream, device: &Device) -> Result<Self> {
        if config.inputs == 0 || config.hidden == 0 || config.outputs == 0 {
            return Err(Error::config(
                "model",
                format!("layer sizes must be positive: {config:?}"),
            ));
        }
        let varmap = VarMap::new();
        let (i, h) = (config.inputs, config.hidden);
        let gates = match config.cell {
            Cell::Lstm => 4,
            Cell::Gru => 3,
        };
        let bound = 1.0 / (h as f32).sqrt();
        for (name, shape) in [
            ("rnn.weight_ih_l0", vec![gates * h, i]),
            ("rnn.weight_hh_l0", vec![gates * h, h]),
            ("rnn.bias_ih_l0", vec![gates * h]),
            ("rnn.bias_hh_l0", vec![gates * h]),
        ] {
            uniform_var(&varmap, name, &shape, bound, init_rng, device)?;
        }
        let head_w = uniform_var(
            &varmap,
            "head.weight",
            &[config.outputs, h],
            bound,
            init_rng,
            device,
        )?;
        let head_b = uniform_var(
            &varmap,
            "head.bias",
            &[config.outputs],
            bound,
            init_rng,
            device,
        )?;
        // candle-nn finds the variables registered above and uses them as they are.
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device).pp("rnn");
        let cell = match config.cell {
            Cell::Lstm => Cells::Lstm(candle_nn::rnn::lstm(i, h, LSTMConfig::default(), vb)?),
            Cell::Gru => Cells::Gru(candle_nn::rnn::gru(i, h, GRUConfig::default(), vb)?),
        };
        Ok(Self {
            config,
            varmap,
            cell,
            head_w,
            head_b,
            carried: None,
        })
    }

    /// The settings the model was built with.
    pub fn config(&self) -> &RecurrentConfig {
        &self.config
    }

    /// The carried state, if any (`[h]` or `[h, c]`).
    pub fn state(&self) -> Option<&[Tensor]> {
        self.carried.as_deref()
    }

    fn zero_state(&self, batch: usize, device: &Device) -> Result<Vec<Tensor>> {
        let z = Tensor::zeros((batch, self.config.hidden), DType::F32, device)?;
        Ok(match self.cell {
            Cells::Lstm(_) => vec![z.clone(), z],
            Cells::Gru(_) => vec![z],
        })
    }
}

impl Model for Recurrent {
    fn name(&self) -> String {
        let cell = match self.config.cell {
            Cell::Lstm => "lstm",
            Cell::Gru => "gru",
        };
        format!(
            "{cell} {}-{}-{}{}",
            self.config.inputs,
            self.config.hidden,
            self.config.outputs,
            if self.config.per_step {
                " per step"
            } else {
                ""
            }
        )
    }

    fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// `x`: `(batch, time, inputs)`, or `(batch, time)` for one feature.
    fn forward(&mut self, x: &Tensor, _ctx: &mut ForwardCtx) -> Result<Tensor> {
        let x = x.to_dtype(DType::F32)?;
        let x = if x.rank() == 2 { x.unsqueeze(2)? } else { x };
        let (batch, steps, features) = x.dims3()?;
        if features != self.config.inputs {
            return Err(Error::Data(format!(
                "{}: inputs have {features} features per step, the model expects {}",
                self.name(),
                self.config.inputs
            )));
        }
        // A carried state of another batch size cannot continue: start afresh.
        let state = match self.carried.take() {
            Some(s) if s[0].dims()[0] == batch => s,
            _ => self.zero_state(batch, x.device())?,
        };
        let mut hs = Vec::with_capacity(steps);
        let last = match &self.cell {
            Cells::Lstm(cell) => {
                let mut st = LSTMState::new(state[0].clone(), state[1].clone());
                for t in 0..steps {
                    let xt = x.narrow(1, t, 1)?.squeeze(1)?.contiguous()?;
                    st = cell.step(&xt, &st)?;
                    hs.push(st.h.clone());
                }
                vec![st.h, st.c]
            }
            Cells::Gru(cell) => {
                let mut st = GRUState {
                    h: state[0].clone(),
                };
                for t in 0..steps {
                    let xt = x.narrow(1, t, 1)?.squeeze(1)?.contiguous()?;
                    st = cell.step(&xt, &st)?;
                    hs.push(st.h.clone());
                }
                vec![st.h]
            }
        };
        // Truncated backpropagation: the next window starts from values, not a graph.
        self.carried = Some(last.iter().map(Tensor::detach).collect());
        let w = self.head_w.as_tensor();
        let b = self.head_b.as_tensor();
        if self.config.per_step {
            let h = Tensor::stack(&hs, 1)?; // (batch, time, hidden)
            let flat = h.reshape((batch * steps, self.config.hidden))?;
            let out = flat.matmul(&w.t()?)?.broadcast_add(b)?;
            Ok(out.reshape((batch, steps, self.config.outputs))?)
        } else {
            Ok(last[0].matmul(&w.t()?)?.broadcast_add(b)?)
        }
    }

    fn carried_state(&self) -> Result<Vec<(String, Tensor)>> {
        Ok(match &self.carried {
            None => Vec::new(),
            Some(s) => s
                .iter()
                .zip(STATE_NAMES)
                .map(|(t, n)| (n.to_string(), t.clone()))
                .collect(),
        })
    }

    fn load_carried_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let wanted = match self.cell {
            Cells::Lstm(_) => &STATE_NAMES[..],
            Cells::Gru(_) => &STATE_NAMES[..1],
        };
        if state.is_empty() {
            self.carried = None;
            return Ok(());
        }
        let mut out = Vec::new();
        for n in wanted {
            let t = state.get(*n).ok_or_else(|| {
                Error::Data(format!("carried state of {} lacks {n}", self.name()))
            })?;
            if t.rank() != 2 || t.dims()[1] != self.config.hidden {
                return Err(Error::Data(format!(
                    "carried state {n} has shape {:?}, expected (batch, {})",
                    t.dims(),
                    self.config.hidden
                )));
            }
            out.push(t.to_device(self.head_w.device())?.to_dtype(DType::F32)?);
        }
        self.carried = Some(out);
        Ok(())
    }

    fn reset_states(&mut self) {
        self.carried = None;
    }
}
