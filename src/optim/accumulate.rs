//! Gradient accumulation: the mean gradient of several batches applied in one update.
//!
//! [`Accumulator`] sits in front of the run's optimizer. With `every` 1 (the default) it
//! hands each batch's gradients straight through, exactly as before it existed. With
//! `every` N it sums the gradients of N batches on the host and applies their mean in
//! one update, clipped by the norm of that mean. The open sums are state: they are
//! exported with the optimizer's buffers (`grad_accum.batches`, `grad_accum.sum.NAME`), so
//! a run stopped in the middle of a group resumes bit for bit.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor};

use super::{clip_scale, sum_of_squares, with_cpu_f32, NamedVar, TrainOptimizer};
use crate::error::{Error, Result};

/// Name of the tensor holding the number of batches summed in the open group.
const BATCHES_KEY: &str = "grad_accum.batches";
/// Prefix of the tensors holding the open sums, followed by the variable's name.
const SUM_PREFIX: &str = "grad_accum.sum.";

/// The run's optimizer with gradient accumulation in front of it (see the module doc).
pub struct Accumulator {
    inner: Box<dyn TrainOptimizer>,
    every: u64,
    /// Batches summed in the open group (0: none open).
    batches: u64,
    /// Sum of the gradients of the open group, per variable in `inner.vars()` order;
    /// `None` for a variable that got no gradient in it (the update leaves it alone).
    sums: Vec<Option<Vec<f32>>>,
}

impl Accumulator {
    /// Applies the mean gradient of every `every` batches (0 acts as 1) with `inner`.
    pub fn new(inner: Box<dyn TrainOptimizer>, every: u64) -> Self {
        let sums = vec![None; inner.vars().len()];
        Self {
            inner,
            every: every.max(1),
            batches: 0,
            sums,
        }
    }

    /// Batches per update.
    pub fn every(&self) -> u64 {
        self.every
    }

    /// Batches summed in the open group, not applied yet.
    pub fn pending(&self) -> u64 {
        self.batches
    }

    /// The optimizer behind the accumulation.
    pub fn inner(&self) -> &dyn TrainOptimizer {
        self.inner.as_ref()
    }

    /// Takes one batch's gradients (whose global norm is `batch_norm`): with `every` 1
    /// they are applied at once, clipped to `max_norm` by that norm; otherwise they are
    /// added to the open group, whose mean is applied when it holds `every` batches.
    /// Returns whether an update was made.
    pub fn fit(
        &mut self,
        grads: &GradStore,
        batch_norm: f64,
        max_norm: Option<f64>,
    ) -> Result<bool> {
        if self.every == 1 && self.batches == 0 {
            self.inner
                .step_scaled(grads, clip_scale(batch_norm, max_norm))?;
            return Ok(true);
        }
        self.add(grads)?;
        if self.batches < self.every {
            return Ok(false);
        }
        self.apply(max_norm)?;
        Ok(true)
    }

    /// Applies the open group now, however few batches it holds (the epoch ended).
    /// Returns whether an update was made (false when no group is open).
    pub fn flush(&mut self, max_norm: Option<f64>) -> Result<bool> {
        if self.batches == 0 {
            return Ok(false);
        }
        self.apply(max_norm)?;
        Ok(true)
    }

    fn add(&mut self, grads: &GradStore) -> Result<()> {
        for (v, sum) in self.inner.vars().iter().zip(self.sums.iter_mut()) {
            let Some(g) = grads.get(v.var.as_tensor()) else {
                continue;
            };
            let n = v.var.elem_count();
            let sum = sum.get_or_insert_with(|| vec![0f32; n]);
            with_cpu_f32(g, |g| {
                if g.len() != sum.len() {
                    return Err(Error::Optimizer(format!(
                        "the gradient of `{}` has {} elements, the variable {}",
                        v.name,
                        g.len(),
                        sum.len()
                    )));
                }
                for (s, &g) in sum.iter_mut().zip(g) {
                    *s += g;
                }
                Ok(())
            })??;
        }
        self.batches += 1;
        Ok(())
    }

    /// One update with the mean of the open group, clipped by the mean's global norm.
    fn apply(&mut self, max_norm: Option<f64>) -> Result<()> {
        let k = self.batches as f32;
        let mut store = empty_grad_store()?;
        let mut squares = Vec::new();
        for (v, sum) in self.inner.vars().iter().zip(self.sums.iter_mut()) {
            let Some(sum) = sum.take() else {
                continue;
            };
            let mean: Vec<f32> = sum.into_iter().map(|s| s / k).collect();
            squares.push(sum_of_squares(&mean));
            let t =
                Tensor::from_vec(mean, v.var.shape(), &Device::Cpu)?.to_device(v.var.device())?;
            store.insert(v.var.as_tensor(), t);
        }
        let norm = squares.iter().sum::<f64>().sqrt();
        self.batches = 0;
        self.inner.step_scaled(&store, clip_scale(norm, max_norm))
    }

    /// The optimizer's name (the accumulation does not change it).
    pub fn name(&self) -> &'static str {
        self.inner.name()
    }

    /// The variables updated, in the order of the optimizer's buffers.
    pub fn vars(&self) -> &[NamedVar] {
        self.inner.vars()
    }

    /// The optimizer's current rate.
    pub fn learning_rate(&self) -> f64 {
        self.inner.learning_rate()
    }

    /// Sets the rate of the next updates.
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.inner.set_learning_rate(lr)
    }

    /// The optimizer's buffers, plus the open group's sums when one is open.
    pub fn state_tensors(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = self.inner.state_tensors()?;
        if self.batches == 0 {
            return Ok(out);
        }
        let cpu = Device::Cpu;
        out.push((
            BATCHES_KEY.to_string(),
            Tensor::new(&[self.batches as i64], &cpu)?,
        ));
        for (v, sum) in self.inner.vars().iter().zip(&self.sums) {
            if let Some(sum) = sum {
                let t = Tensor::from_slice(sum, v.var.shape(), &cpu)?;
                out.push((format!("{SUM_PREFIX}{}", v.name), t));
            }
        }
        Ok(out)
    }

    /// Restores what `state_tensors` exported (no open group when it holds none). All or
    /// nothing: on an error the optimizer and the sums are as they were.
    pub fn load_state_tensors(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        let mut batches = 0;
        let mut sums = vec![None; self.inner.vars().len()];
        if let Some(t) = tensors.get(BATCHES_KEY) {
            let n = t.flatten_all()?.to_vec1::<i64>()?;
            batches = n.first().copied().unwrap_or(0).max(0) as u64;
            for (v, sum) in self.inner.vars().iter().zip(sums.iter_mut()) {
                let key = format!("{SUM_PREFIX}{}", v.name);
                let Some(t) = tensors.get(&key) else {
                    continue;
                };
                if t.dims() != v.var.dims() {
                    return Err(Error::Optimizer(format!(
                        "`{key}` has shape {:?} but the variable has {:?}",
                        t.dims(),
                        v.var.dims()
                    )));
                }
                *sum = Some(t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?);
            }
        }
        self.inner.load_state_tensors(tensors)?;
        self.batches = batches;
        self.sums = sums;
        Ok(())
    }
}

/// A `GradStore` with no gradient of any variable in it. candle 0.11 keeps
/// `GradStore::new` private; the store of a lone scalar's backward pass holds only that
/// scalar's own gradient, which is removed.
fn empty_grad_store() -> Result<GradStore> {
    let root = Tensor::zeros((), DType::F32, &Device::Cpu)?;
    let mut store = root.backward()?;
    store.remove(&root);
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{grads_of, one_var, values};
    use super::super::{Sgd, SgdConfig};
    use super::*;

    fn sgd(named: NamedVar) -> Box<dyn TrainOptimizer> {
        let config = SgdConfig {
            lr: 0.5,
            ..SgdConfig::default()
        };
        Box::new(Sgd::from_named(vec![named], config))
    }

    #[test]
    fn the_mean_of_a_group_is_one_update_and_a_partial_group_is_flushed() {
        let (v, named) = one_var(&[1.0, 2.0]);
        let mut acc = Accumulator::new(sgd(named), 3);
        let g = |k: f32| grads_of(&v, move |p| (p.ones_like().unwrap() * k as f64).unwrap());
        assert!(!acc.fit(&g(1.0), 0.0, None).unwrap());
        assert!(!acc.fit(&g(2.0), 0.0, None).unwrap());
        assert_eq!((acc.pending(), values(&v)), (2, vec![1.0, 2.0]));
        assert!(acc.fit(&g(6.0), 0.0, None).unwrap());
        // Mean gradient 3, rate 0.5.
        assert_eq!((acc.pending(), values(&v)), (0, vec![-0.5, 0.5]));
        assert_eq!(acc.inner().steps(), 1);
        assert!(!acc.fit(&g(4.0), 0.0, None).unwrap());
        assert!(acc.flush(None).unwrap());
        assert!(!acc.flush(None).unwrap());
        assert_eq!(values(&v), [-2.5, -1.5]);
        // The clip applies to the mean: norm of [3, 3] clipped to 1.
        let (w, named) = one_var(&[0.0, 0.0]);
        let mut acc = Accumulator::new(sgd(named), 2);
        let h = |k: f64| grads_of(&w, move |p| (p.ones_like().unwrap() * k).unwrap());
        acc.fit(&h(2.0), 100.0, Some(1.0)).unwrap();
        acc.fit(&h(4.0), 100.0, Some(1.0)).unwrap();
        let scale = clip_scale(18f64.sqrt(), Some(1.0));
        assert_eq!(values(&w), [-0.5 * 3.0 * scale; 2]);
    }

    #[test]
    fn an_open_group_is_state_and_one_batch_groups_pass_through() {
        let (v, named) = one_var(&[1.0, 2.0]);
        let mut acc = Accumulator::new(sgd(named.clone()), 2);
        let g = grads_of(&v, |p| (p * 3.0).unwrap());
        let plain: Vec<String> = acc
            .state_tensors()
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(plain, ["step", "momentum_buffer.w"]);
        acc.fit(&g, 0.0, None).unwrap();
        let saved: HashMap<String, Tensor> = acc.state_tensors().unwrap().into_iter().collect();
        assert_eq!(
            saved["grad_accum.sum.w"].to_vec1::<f32>().unwrap(),
            [3.0, 6.0]
        );
        let mut other = Accumulator::new(sgd(named.clone()), 2);
        other.load_state_tensors(&saved).unwrap();
        assert_eq!((other.pending(), &other.sums), (1, &acc.sums));
        // A shape mismatch leaves it as it was.
        let mut bad = saved.clone();
        bad.insert(
            "grad_accum.sum.w".into(),
            Tensor::new(&[1f32], &Device::Cpu).unwrap(),
        );
        let mut fresh = Accumulator::new(sgd(named.clone()), 2);
        assert!(fresh.load_state_tensors(&bad).is_err());
        assert_eq!(fresh.pending(), 0);
        // `every` 1: straight through, clipped by the batch norm given.
        let mut one = Accumulator::new(sgd(named), 1);
        assert!(one.fit(&g, 100.0, Some(1.0)).unwrap());
        let s = 0.5 * clip_scale(100.0, Some(1.0));
        assert_eq!(values(&v), [1.0 - s * 3.0, 2.0 - s * 6.0]);
    }
}
