//! Optimizers whose whole state can be saved and restored.
//!
//! candle-nn's `AdamW` keeps its moments and step count private, so a resumed run could
//! never continue it exactly. Ours keep every buffer in plain `Vec<f32>`s keyed by the
//! variable *name* (`VarMap::all_vars()` order changes from process to process), and
//! update each parameter in one fused pass over its f32 slice.
//!
//! One file per optimizer (`adam.rs`, `sgd.rs`, `rmsprop.rs`, `adagrad.rs`, `lion.rs`);
//! `accumulate.rs` puts gradient accumulation in front of any of them; `schedule.rs`,
//! `one_cycle.rs` and `plateau.rs` are the learning-rate schedules. The updates and the
//! gradient norms are compiled for the CPU's widest vectors, with the same bits
//! (`crate::simd`).

/// The [`TrainOptimizer`] impl of an optimizer whose state is [`Slots`]: a struct with
/// `vars: Vec<NamedVar>`, `config` (with an `lr: f64`), `slots: Slots`, `step: u64` and an
/// `apply(&mut self, grads, grad_scale)` update. Written once here for SGD, RMSprop,
/// Adagrad and Lion.
macro_rules! slot_optimizer {
    ($ty:ty, $label:literal) => {
        impl $crate::optim::TrainOptimizer for $ty {
            fn name(&self) -> &'static str {
                $label
            }
            fn step_scaled(
                &mut self,
                grads: &candle_core::backprop::GradStore,
                grad_scale: f32,
            ) -> $crate::error::Result<()> {
                self.apply(grads, grad_scale)
            }
            fn learning_rate(&self) -> f64 {
                self.config.lr
            }
            fn set_learning_rate(&mut self, lr: f64) {
                self.config.lr = lr
            }
            fn steps(&self) -> u64 {
                self.step
            }
            fn vars(&self) -> &[$crate::optim::NamedVar] {
                &self.vars
            }
            fn state_tensors(&self) -> $crate::error::Result<Vec<(String, candle_core::Tensor)>> {
                self.slots.export(&self.vars, self.step)
            }
            fn load_state_tensors(
                &mut self,
                tensors: &std::collections::HashMap<String, candle_core::Tensor>,
            ) -> $crate::error::Result<()> {
                self.step = self.slots.import(&self.vars, tensors)?;
                Ok(())
            }
        }
    };
}

mod accumulate;
mod adagrad;
mod adam;
mod lion;
mod one_cycle;
mod plateau;
mod rmsprop;
mod schedule;
mod sgd;
#[cfg(test)]
mod testing;

pub use accumulate::Accumulator;
pub use adagrad::{Adagrad, AdagradConfig};
pub use adam::{Adam, AdamConfig, AdamW};
pub use lion::{Lion, LionConfig};
pub use one_cycle::{Anneal, OneCycle};
pub use plateau::{PlateauSchedState, ReduceOnPlateau, ThresholdMode};
pub use rmsprop::{Rmsprop, RmspropConfig};
pub use schedule::{Exponential, LrSchedule, MultiStep, Schedule};
pub use sgd::{Sgd, SgdConfig};

use std::cell::RefCell;
use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, Layout, Storage, Tensor, Var};
use candle_nn::VarMap;

use crate::error::{Error, Result};
use crate::simd;

/// A variable together with the name it is saved under.
#[derive(Debug, Clone)]
pub struct NamedVar {
    /// Key of the variable in the `VarMap` (e.g. `layers.0.weight`), or `param.NNNN` by
    /// position; names the optimizer's buffers in checkpoints.
    pub name: String,
    /// The variable itself (shares storage with the model's).
    pub var: Var,
}

/// The float variables of a `VarMap`, sorted by name so that every process agrees on the order.
pub fn named_vars(varmap: &VarMap) -> Vec<NamedVar> {
    let data = varmap.data().lock().unwrap_or_else(|e| e.into_inner());
    let mut vars: Vec<NamedVar> = data
        .iter()
        .filter(|(_, v)| v.dtype().is_float())
        .map(|(name, var)| NamedVar {
            name: name.clone(),
            var: var.clone(),
        })
        .collect();
    vars.sort_by(|a, b| a.name.cmp(&b.name));
    vars
}

/// Names variables that arrive without names (through candle-nn's `Optimizer::new`).
/// The order is then the caller's; prefer constructors that take a `VarMap`.
pub(crate) fn name_by_position(vars: Vec<Var>) -> Vec<NamedVar> {
    vars.into_iter()
        .filter(|v| v.dtype().is_float())
        .enumerate()
        .map(|(i, var)| NamedVar {
            name: format!("param.{i:04}"),
            var,
        })
        .collect()
}

/// What the trainer needs from an optimizer; object safe, unlike candle-nn's trait.
pub trait TrainOptimizer: Send {
    /// Short name, e.g. "adamw".
    fn name(&self) -> &'static str;
    /// Applies one update; every gradient is multiplied by `grad_scale` first (clipping).
    fn step_scaled(&mut self, grads: &GradStore, grad_scale: f32) -> Result<()>;
    /// Rate the next update uses.
    fn learning_rate(&self) -> f64;
    /// Sets the rate for the next updates; the trainer calls it before every train batch
    /// with the scheduled (or overridden) rate.
    fn set_learning_rate(&mut self, lr: f64);
    /// Number of updates applied so far.
    fn steps(&self) -> u64;
    /// The variables it updates, in the order of its buffers.
    fn vars(&self) -> &[NamedVar];
    /// Every state buffer as a named tensor, plus the step count, for `optimizer.safetensors`.
    /// The tensors must be copies that later updates leave alone (not handles to buffers
    /// updated in place): a checkpoint may be written from them on another thread while
    /// training goes on.
    fn state_tensors(&self) -> Result<Vec<(String, Tensor)>>;
    /// Restores what `state_tensors` exported; names and shapes must match.
    fn load_state_tensors(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()>;
}

/// Per-variable state buffers, named like `exp_avg`, stored on the host.
#[derive(Debug, Clone)]
pub(crate) struct Slots {
    pub names: &'static [&'static str],
    /// `buffers[var][slot]`, each the variable's element count long.
    pub buffers: Vec<Vec<Vec<f32>>>,
}

impl Slots {
    pub fn new(names: &'static [&'static str], vars: &[NamedVar]) -> Self {
        let buffers = vars
            .iter()
            .map(|v| {
                names
                    .iter()
                    .map(|_| vec![0f32; v.var.elem_count()])
                    .collect()
            })
            .collect();
        Self { names, buffers }
    }

    pub fn export(&self, vars: &[NamedVar], step: u64) -> Result<Vec<(String, Tensor)>> {
        let cpu = candle_core::Device::Cpu;
        let mut out = vec![("step".to_string(), Tensor::new(&[step as i64], &cpu)?)];
        for (v, bufs) in vars.iter().zip(&self.buffers) {
            for (slot, buf) in self.names.iter().zip(bufs) {
                let t = Tensor::from_slice(buf, v.var.shape(), &cpu)?;
                out.push((format!("{slot}.{}", v.name), t));
            }
        }
        Ok(out)
    }

    /// Returns the saved step count. All or nothing: on an error the buffers are as
    /// they were, so a bad checkpoint never leaves an optimizer half loaded.
    pub fn import(&mut self, vars: &[NamedVar], tensors: &HashMap<String, Tensor>) -> Result<u64> {
        let step = tensors
            .get("step")
            .ok_or_else(|| Error::Optimizer("missing tensor `step`".into()))?
            .flatten_all()?
            .to_vec1::<i64>()?;
        let step = *step
            .first()
            .ok_or_else(|| Error::Optimizer("tensor `step` is empty".into()))?;
        let mut loaded = self.buffers.clone();
        for (v, bufs) in vars.iter().zip(loaded.iter_mut()) {
            for (slot, buf) in self.names.iter().zip(bufs.iter_mut()) {
                let key = format!("{slot}.{}", v.name);
                let t = tensors
                    .get(&key)
                    .ok_or_else(|| Error::Optimizer(format!("missing tensor `{key}`")))?;
                if t.dims() != v.var.dims() {
                    return Err(Error::Optimizer(format!(
                        "`{key}` has shape {:?} but the variable has {:?}",
                        t.dims(),
                        v.var.dims()
                    )));
                }
                *buf = t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
            }
        }
        self.buffers = loaded;
        Ok(step as u64)
    }
}

/// Runs `update(param, grad, slots)` over the f32 data of `var` in place.
///
/// `update` is one optimizer's update of a parameter slice, its gradient and its state slots
/// (each as long as the parameter, or empty), element by element: so any cut of the three
/// into matching pieces gives the same bits as one pass. Give it as an `#[inline(always)]`
/// closure: it is compiled for the CPU's widest vectors ([`simd::dispatch`]) where it is
/// inlined.
///
/// On CPU this is one pass over borrowed slices: no temporary tensors. On other devices
/// the data takes a round trip through the host, which is correct but slow.
pub(crate) fn update_in_place<U>(
    var: &Var,
    grad: &Tensor,
    slots: &mut [Vec<f32>],
    update: U,
) -> Result<()>
where
    U: Fn(&mut [f32], &[f32], &mut [&mut [f32]]) + Sync,
{
    if var.dtype() != DType::F32 {
        return Err(Error::Optimizer(format!(
            "only f32 variables are supported, found {:?}",
            var.dtype()
        )));
    }
    let grad = grad.contiguous()?.to_dtype(DType::F32)?;
    if !var.device().is_cpu() {
        let mut p = var.flatten_all()?.to_vec1::<f32>()?;
        let g = grad.flatten_all()?.to_vec1::<f32>()?;
        let mut slots: Vec<&mut [f32]> = slots.iter_mut().map(|s| s.as_mut_slice()).collect();
        update(&mut p, &g, &mut slots);
        let t =
            Tensor::from_vec(p, var.shape(), &candle_core::Device::Cpu)?.to_device(var.device())?;
        var.set(&t)?;
        return Ok(());
    }
    let (g_storage, g_layout) = grad.storage_and_layout();
    let g = cpu_f32(&g_storage, g_layout)?;
    let op = FusedUpdate {
        grad: g,
        slots: RefCell::new(slots),
        update: &update,
    };
    var.as_tensor().inplace_op1(&op)?;
    Ok(())
}

fn cpu_f32<'a>(storage: &'a Storage, layout: &Layout) -> Result<&'a [f32]> {
    match storage {
        Storage::Cpu(CpuStorage::F32(v)) => {
            let (start, end) = layout
                .contiguous_offsets()
                .ok_or_else(|| Error::Optimizer("gradient is not contiguous".into()))?;
            Ok(&v[start..end])
        }
        _ => Err(Error::Optimizer("expected an f32 CPU tensor".into())),
    }
}

/// Borrowed view of a CPU tensor's f32 data (for norms and statistics without copies).
pub fn with_cpu_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    if t.device().is_cpu() && t.dtype() == DType::F32 && t.is_contiguous() {
        let (storage, layout) = t.storage_and_layout();
        let s = cpu_f32(&storage, layout)?;
        Ok(f(s))
    } else {
        let v = t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        Ok(f(&v))
    }
}

/// Below this many elements an update runs on the calling thread alone.
const SPLIT_MIN_ELEMS: usize = 64 * 1024;
/// Elements per piece handed to a thread.
const SPLIT_CHUNK: usize = 16 * 1024;

struct FusedUpdate<'a, U> {
    grad: &'a [f32],
    slots: RefCell<&'a mut [Vec<f32>]>,
    update: &'a U,
}

impl<U> candle_core::InplaceOp1 for FusedUpdate<'_, U>
where
    U: Fn(&mut [f32], &[f32], &mut [&mut [f32]]) + Sync,
{
    fn name(&self) -> &'static str {
        "deeptrain-fused-update"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("fused update expects f32 storage")
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("fused update expects a contiguous variable")
        };
        let param = &mut data[start..end];
        if param.len() != self.grad.len() {
            candle_core::bail!(
                "gradient has {} elements, variable {}",
                self.grad.len(),
                param.len()
            )
        }
        let mut slots = self.slots.borrow_mut();
        let n = param.len();
        let pool = candle_core::utils::barrier_pool();
        let sliceable = slots.iter().all(|s| s.is_empty() || s.len() == n);
        if pool.n_workers() == 0 || n < SPLIT_MIN_ELEMS || !sliceable {
            let mut views: Vec<&mut [f32]> = slots.iter_mut().map(|s| s.as_mut_slice()).collect();
            let update = self.update;
            simd::dispatch(
                #[inline(always)]
                || update(param, self.grad, &mut views),
            );
            return Ok(());
        }
        // Several threads (candle's barrier pool, as its element-wise ops use): pieces of
        // SPLIT_CHUNK elements, each updated by one thread; the update is element-wise, so
        // the bits are those of one pass.
        let param_at = param.as_mut_ptr() as usize;
        let slot_at: Vec<(usize, usize)> = slots
            .iter_mut()
            .map(|s| (s.as_mut_ptr() as usize, s.len()))
            .collect();
        let grad = self.grad;
        let update = self.update;
        pool.execute_chunked(n.div_ceil(SPLIT_CHUNK), |units| {
            let lo = units.start * SPLIT_CHUNK;
            let hi = n.min(units.end * SPLIT_CHUNK);
            // SAFETY: the ranges of different calls are disjoint, and param and the slots
            // (borrowed mutably for this whole call) outlive it.
            let p =
                unsafe { std::slice::from_raw_parts_mut((param_at as *mut f32).add(lo), hi - lo) };
            let mut views: Vec<&mut [f32]> = slot_at
                .iter()
                .map(|&(at, len)| {
                    if len == 0 {
                        &mut [][..]
                    } else {
                        // SAFETY: as above.
                        unsafe { std::slice::from_raw_parts_mut((at as *mut f32).add(lo), hi - lo) }
                    }
                })
                .collect();
            simd::dispatch(
                #[inline(always)]
                || update(p, &grad[lo..hi], &mut views),
            );
        });
        Ok(())
    }
}

/// Sum of squares of each variable's gradient (0 where a variable got none), in name order.
pub fn grad_sq_norms(vars: &[NamedVar], grads: &GradStore) -> Result<Vec<f64>> {
    vars.iter()
        .map(|v| match grads.get(v.var.as_tensor()) {
            Some(g) => with_cpu_f32(g, sum_of_squares),
            None => Ok(0.0),
        })
        .collect()
}

/// Sum of squares in f64, over 8 interleaved partial sums: a fixed order (so the result
/// is the same on every run) that the compiler can vectorize, unlike one serial sum; compiled
/// for the CPU's widest vectors ([`simd::dispatch`]: the same order, so the same bits).
pub fn sum_of_squares(x: &[f32]) -> f64 {
    simd::dispatch(
        #[inline(always)]
        || {
            let mut lanes = [0f64; 8];
            let chunks = x.chunks_exact(8);
            let tail = chunks.remainder();
            for c in chunks {
                for (l, &v) in lanes.iter_mut().zip(c) {
                    *l += (v as f64) * (v as f64);
                }
            }
            let mut total = lanes.iter().sum::<f64>();
            for &v in tail {
                total += (v as f64) * (v as f64);
            }
            total
        },
    )
}

/// The factor that brings the global gradient norm down to `max_norm` (1 when already below).
pub fn clip_scale(global_norm: f64, max_norm: Option<f64>) -> f32 {
    match max_norm {
        Some(max) if global_norm.is_finite() && global_norm > max => {
            (max / (global_norm + 1e-6)) as f32
        }
        _ => 1.0,
    }
}

/// Flushes subnormal values to zero: they slow float math by orders of magnitude on x86
/// and carry no information a model can use.
#[inline(always)]
pub(crate) fn flush_subnormal(x: f32) -> f32 {
    if x.abs() < f32::MIN_POSITIVE {
        0.0
    } else {
        x
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::testing::{grads_of, one_var};
    use super::*;
    use crate::simd::testing::assert_levels_agree;

    /// `n` values uniform in [-2, 2) from stream `seed`, every 5th one replaced by a value
    /// that takes another path: zeros of both signs, subnormals, the smallest normals.
    fn data(n: usize, seed: u64) -> Vec<f32> {
        const SPECIAL: [f32; 7] = [0.0, -0.0, 1e-40, -3e-39, f32::MIN_POSITIVE, 1e-20, -7.5];
        let mut rng = crate::rng::RngStream::with_stream(seed, 0);
        (0..n)
            .map(|i| {
                let v = rng.uniform_f32() * 4.0 - 2.0;
                if i % 5 == 3 {
                    SPECIAL[(i / 5) % SPECIAL.len()]
                } else {
                    v
                }
            })
            .collect()
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Three scaled steps of the optimizer `make` builds on one variable of `n` values: the
    /// bits of the variable and of every state tensor.
    fn three_steps(
        make: &dyn Fn(Vec<NamedVar>) -> Box<dyn TrainOptimizer>,
        n: usize,
    ) -> Vec<Vec<u32>> {
        let (var, named) = one_var(&data(n, 1));
        let mut opt = make(vec![named]);
        for step in 0..3 {
            let g = data(n, 10 + step);
            let grads = grads_of(&var, |_| Tensor::new(g.as_slice(), &Device::Cpu).unwrap());
            opt.step_scaled(&grads, 0.75).unwrap();
        }
        let mut out = vec![bits(&var.as_tensor().to_vec1::<f32>().unwrap())];
        for (name, t) in opt.state_tensors().unwrap() {
            if name != "step" {
                out.push(bits(&t.flatten_all().unwrap().to_vec1::<f32>().unwrap()));
            }
        }
        out
    }

    /// Every optimizer's update gives the same bits at every SIMD level the CPU has as
    /// compiled for the baseline; with lengths around the vector widths and one long enough
    /// to be cut among candle's threads.
    #[test]
    fn updates_are_bitwise_the_same_at_every_simd_level() {
        type Make = Box<dyn Fn(Vec<NamedVar>) -> Box<dyn TrainOptimizer>>;
        let sgd =
            |c: SgdConfig| -> Make { Box::new(move |v| Box::new(Sgd::from_named(v, c.clone()))) };
        let adam = AdamConfig {
            weight_decay: 0.1,
            ..Default::default()
        };
        let rms = |momentum: f64, centered: bool| -> Make {
            let c = RmspropConfig {
                momentum,
                centered,
                weight_decay: 0.05,
                ..Default::default()
            };
            Box::new(move |v| Box::new(Rmsprop::from_named(v, c.clone())))
        };
        let cases: Vec<(&str, Make)> = vec![
            (
                "sgd",
                sgd(SgdConfig {
                    weight_decay: 0.01,
                    ..Default::default()
                }),
            ),
            (
                "sgd momentum",
                sgd(SgdConfig {
                    momentum: 0.9,
                    dampening: 0.1,
                    ..Default::default()
                }),
            ),
            (
                "sgd nesterov",
                sgd(SgdConfig {
                    momentum: 0.9,
                    nesterov: true,
                    ..Default::default()
                }),
            ),
            ("adam", {
                let c = adam.clone();
                Box::new(move |v| Box::new(Adam::from_named(v, c.clone())))
            }),
            (
                "adamw",
                Box::new(move |v| Box::new(AdamW::from_named(v, adam.clone()))),
            ),
            ("rmsprop", rms(0.0, false)),
            ("rmsprop momentum centered", rms(0.9, true)),
            (
                "adagrad",
                Box::new(|v| {
                    let c = AdagradConfig {
                        lr_decay: 0.01,
                        weight_decay: 0.01,
                        ..Default::default()
                    };
                    Box::new(Adagrad::from_named(v, c))
                }),
            ),
            (
                "lion",
                Box::new(|v| {
                    let c = LionConfig {
                        weight_decay: 0.1,
                        ..Default::default()
                    };
                    Box::new(Lion::from_named(v, c))
                }),
            ),
        ];
        for (name, make) in &cases {
            for n in [1, 15, 16, 17, 33, 1000, SPLIT_MIN_ELEMS + 17] {
                let what = format!("{name}, {n} values");
                assert_levels_agree(&what, || three_steps(make.as_ref(), n), |a, b| a == b);
            }
        }
    }

    /// The gradient norms' sum of squares: the same bits at every SIMD level.
    #[test]
    fn sum_of_squares_is_bitwise_the_same_at_every_simd_level() {
        for n in (0..40).chain([1000, 10_001]) {
            let x: Vec<f32> = data(n, n as u64).iter().map(|v| v * 1e3).collect();
            let what = format!("{n} values");
            let f = || sum_of_squares(&x);
            assert_levels_agree(&what, f, |a, b| a.to_bits() == b.to_bits());
        }
    }
}
