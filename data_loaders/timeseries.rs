//! Stateful time series: cut each set `(batch, time, features...)` into consecutive
//! windows along the time axis, one training iteration each.
//!
//! Window `i` of a set is `x[:, start + i*slide .. start + i*slide + window]`; a set of
//! `T` time steps yields `(T - start - window) / slide + 1` windows. `start` cycles through
//! `start_increments` from epoch to epoch (so window boundaries differ between epochs).
//! The model carries its recurrent state from one window to the next; after the last
//! window of a set the trainer calls `Model::reset_states`. A run stopped between two
//! windows resumes bitwise: the window index is in the trainer's cursor (`DataCursor::window`) and the carried
//! state in the checkpoint's `carried.safetensors`.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::preprocess::{BatchCtx, Preprocessor};
use crate::error::{Error, Result};
use crate::rng::RngStream;

/// How labels follow the windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowLabels {
    /// `Steps` when `y` has the same two leading axes as `x` (batch, time), else `Sequence`.
    #[default]
    Auto,
    /// `y` has a time axis and is cut exactly like `x` (per-step targets, forecasting).
    Steps,
    /// `y` labels the whole sequence; every window gets it unchanged.
    Sequence,
}

/// Cuts sets into time windows; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeseriesWindows {
    /// Time steps per window (at least 1, checked when a set is processed).
    pub window: usize,
    /// Time steps from the start of one window to the start of the next (at least 1):
    /// `slide == window` tiles the set, a smaller slide overlaps windows, a larger one
    /// skips steps.
    pub slide: usize,
    /// Offset of the first window, cycled per epoch: epoch `e` (1-based) starts at
    /// `start_increments[(e - 1) % len]`. Default `[0]`; empty means 0 every epoch.
    pub start_increments: Vec<usize>,
    /// How labels follow the windows (default [`WindowLabels::Auto`]).
    pub labels: WindowLabels,
}

impl TimeseriesWindows {
    /// Windows of `window` steps, each `slide` steps after the previous one.
    pub fn new(window: usize, slide: usize) -> Self {
        Self {
            window,
            slide,
            start_increments: vec![0],
            labels: WindowLabels::Auto,
        }
    }

    /// Per-epoch offsets of the first window, cycled through (see the field); an empty
    /// list means 0 every epoch.
    pub fn start_increments(mut self, starts: Vec<usize>) -> Self {
        self.start_increments = starts;
        self
    }

    /// How labels follow the windows (default [`WindowLabels::Auto`]).
    pub fn labels(mut self, labels: WindowLabels) -> Self {
        self.labels = labels;
        self
    }

    /// Offset of the first window in epoch `epoch` (1-based).
    pub fn start_for_epoch(&self, epoch: u64) -> usize {
        if self.start_increments.is_empty() {
            return 0;
        }
        let i = (epoch.max(1) - 1) % self.start_increments.len() as u64;
        self.start_increments[i as usize]
    }

    /// Windows in a set of `len` time steps when the first starts at `start`.
    pub fn windows_for_len(&self, len: usize, start: usize) -> usize {
        if self.slide == 0 || len < start + self.window {
            0
        } else {
            (len - start - self.window) / self.slide + 1
        }
    }

    fn check(&self) -> Result<()> {
        if self.window == 0 || self.slide == 0 {
            return Err(Error::config(
                "timeseries windows",
                format!(
                    "window ({}) and slide ({}) must be at least 1",
                    self.window, self.slide
                ),
            ));
        }
        Ok(())
    }

    fn start(&self, ctx: &BatchCtx) -> usize {
        ctx.epoch_state
            .parse()
            .unwrap_or_else(|_| self.start_for_epoch(ctx.epoch))
    }

    fn time_len(&self, x: &Tensor, ctx: &BatchCtx) -> Result<usize> {
        let dims = x.dims();
        if dims.len() < 2 {
            return Err(Error::Data(format!(
                "set {}: time-series windows need inputs shaped (batch, time, ...) but got {:?}",
                ctx.set_name, dims
            )));
        }
        Ok(dims[1])
    }

    fn steps_labels(&self, x: &Tensor, y: &Tensor) -> bool {
        match self.labels {
            WindowLabels::Steps => true,
            WindowLabels::Sequence => false,
            WindowLabels::Auto => y.rank() >= 2 && y.dims()[..2] == x.dims()[..2],
        }
    }
}

impl Preprocessor for TimeseriesWindows {
    fn name(&self) -> String {
        format!(
            "timeseries windows (window {}, slide {}, starts {:?})",
            self.window, self.slide, self.start_increments
        )
    }

    /// The epoch's start offset, kept in the loader state.
    fn on_epoch(&self, epoch: u64, _rng: &mut RngStream) -> Result<String> {
        Ok(self.start_for_epoch(epoch).to_string())
    }

    fn process(&self, x: Tensor, y: Tensor, ctx: &BatchCtx) -> Result<(Tensor, Tensor)> {
        self.check()?;
        let len = self.time_len(&x, ctx)?;
        if matches!(self.labels, WindowLabels::Steps) && !self.steps_labels(&x, &y) {
            return Err(Error::Data(format!(
                "set {}: per-step labels need y shaped like x's (batch, time) = {:?}, got {:?}",
                ctx.set_name,
                &x.dims()[..2],
                y.dims()
            )));
        }
        let start = self.start(ctx);
        if self.windows_for_len(len, start) == 0 {
            return Err(Error::Data(format!(
                "set {}: {len} time steps are fewer than start {start} + window {}",
                ctx.set_name, self.window
            )));
        }
        Ok((x, y))
    }

    fn num_windows(&self, x: &Tensor, ctx: &BatchCtx) -> Result<usize> {
        self.check()?;
        Ok(self.windows_for_len(self.time_len(x, ctx)?, self.start(ctx)))
    }

    fn window(&self, x: &Tensor, y: &Tensor, ctx: &BatchCtx) -> Result<(Tensor, Tensor)> {
        let from = self.start(ctx) + ctx.window * self.slide;
        let wx = x.narrow(1, from, self.window)?;
        let wy = if self.steps_labels(x, y) {
            y.narrow(1, from, self.window)?
        } else {
            y.clone()
        };
        Ok((wx, wy))
    }
}
