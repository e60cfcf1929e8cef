//! Preprocessors: transform a loaded set before the model sees it, and optionally cut it
//! into several windows (iterations), as [`TimeseriesWindows`](super::TimeseriesWindows)
//! does for stateful time series.
//!
//! Like loaders, preprocessors hold no position: everything that changes during a run
//! lives in the loader's state (whatever the per-epoch hook returned) or in the batch's
//! [`SetRef`](super::SetRef) (the epoch and window index),
//! so a resumed run preprocesses every batch exactly as the original run would have.

use candle_core::Tensor;

use super::LoaderState;
use crate::error::Result;
use crate::rng::RngStream;

/// What a preprocessor knows about the batch it is handed.
#[derive(Debug, Clone, Copy)]
pub struct BatchCtx<'a> {
    /// Epoch the set belongs to (1 for the first planned epoch).
    pub epoch: u64,
    /// Name of the set, e.g. `"12"`, `"12+13"` or `"12-b"`.
    pub set_name: &'a str,
    /// Window of the set being asked for (0 in `process`).
    pub window: usize,
    /// What [`Preprocessor::on_epoch`] returned for this epoch.
    pub epoch_state: &'a str,
    /// The loader's whole state, for anything else.
    pub state: &'a LoaderState,
}

/// Transforms batches. Every method has a default, so implement only what you need.
pub trait Preprocessor: Send + Sync {
    /// Names the preprocessor in `deeptrain data` and in errors.
    fn name(&self) -> String {
        "preprocessor".into()
    }

    /// Transforms a loaded set: inputs `x` (samples first) and labels `y`. Called once
    /// per set, before it is cut into windows.
    fn process(&self, x: Tensor, y: Tensor, _ctx: &BatchCtx) -> Result<(Tensor, Tensor)> {
        Ok((x, y))
    }

    /// Number of windows (training iterations) a processed set yields; 1 by default.
    fn num_windows(&self, _x: &Tensor, _ctx: &BatchCtx) -> Result<usize> {
        Ok(1)
    }

    /// Window `ctx.window` of a processed set. The default is the whole set.
    fn window(&self, x: &Tensor, y: &Tensor, _ctx: &BatchCtx) -> Result<(Tensor, Tensor)> {
        Ok((x.clone(), y.clone()))
    }

    /// Per-epoch state hook, called when the loader plans epoch `epoch` (1-based). It may
    /// draw from the loader's shuffle stream; the returned text is stored in
    /// `LoaderState::preprocessor_state` (so it is checkpointed) and handed to every
    /// call of this epoch as `BatchCtx::epoch_state`.
    fn on_epoch(&self, _epoch: u64, _rng: &mut RngStream) -> Result<String> {
        Ok(String::new())
    }
}

/// Any closure over `(x, y)` is a preprocessor that transforms each set as a whole.
impl<F> Preprocessor for F
where
    F: Fn(Tensor, Tensor) -> Result<(Tensor, Tensor)> + Send + Sync,
{
    fn name(&self) -> String {
        "closure".into()
    }
    fn process(&self, x: Tensor, y: Tensor, _ctx: &BatchCtx) -> Result<(Tensor, Tensor)> {
        self(x, y)
    }
}
