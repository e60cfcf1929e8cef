//! What every loss shares: the [`Loss`] trait the trainer calls, the kind of targets a
//! loss takes, and the reductions from per-element or per-sample losses to the batch mean
//! (plain, or weighted by per-sample weights).

use candle_core::{DType, Tensor};

use crate::error::{Error, Result};

/// What a loss expects as targets, so that data and loss can be checked against each other
/// before training starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Targets {
    /// One class id per sample: `u32`, shape `[batch]` (classification data).
    ClassIds,
    /// Float values (`f32`), as many as the model has outputs (regression, multi-label).
    Values,
}

/// A loss function: maps a batch of model outputs and targets to the one scalar the trainer
/// differentiates.
///
/// `forward` must be deterministic (the same inputs give the same bits), must use only
/// differentiable candle ops on `output` (the trainer calls `backward` on the result), and
/// must not keep state between calls: a resumed run recomputes nothing of the loss, so a
/// loss with memory would break bit-for-bit resume. Losses are `Send + Sync` so that a
/// trainer holding one can move between threads.
pub trait Loss: Send + Sync {
    /// The loss's name as jobs spell it, e.g. `cross_entropy`.
    fn name(&self) -> String;

    /// The name with the settings that differ from the defaults, for reports, e.g.
    /// `cross_entropy (label_smoothing 0.1)`. The default is [`name`](Self::name).
    fn description(&self) -> String {
        self.name()
    }

    /// The mean loss over the batch, a scalar tensor of `output`'s dtype.
    ///
    /// `output` is the model's output for the batch (batch first), `target` the batch's
    /// targets (see [`targets`](Self::targets)). With per-sample `weights` (`[batch]`,
    /// `f32`), the mean is weighted: `sum(w_i * l_i) / sum(w_i)`, where `l_i` is sample
    /// `i`'s loss (for a loss with several values per sample, their mean), as PyTorch
    /// normalises a weighted cross-entropy's `'mean'`. Weights summing to 0 give NaN.
    fn forward(&self, output: &Tensor, target: &Tensor, weights: Option<&Tensor>)
        -> Result<Tensor>;

    /// Which targets the loss takes.
    fn targets(&self) -> Targets;
}

/// Checks per-sample `weights` against the batch and brings them to `dtype`.
pub(super) fn sample_weights(
    loss: &str,
    weights: Option<&Tensor>,
    batch: usize,
    dtype: DType,
) -> Result<Option<Tensor>> {
    let Some(w) = weights else {
        return Ok(None);
    };
    if w.dims() != [batch] {
        return Err(Error::Data(format!(
            "loss {loss}: sample weights have shape {:?} but the batch has {batch} samples \
             (expected [{batch}])",
            w.dims()
        )));
    }
    Ok(Some(w.to_dtype(dtype)?))
}

/// `sum(w_i * l_i) / sum(w_i)` over per-sample losses `l` and weights `w` (both `[batch]`).
pub(super) fn weighted_mean(per_sample: &Tensor, weights: &Tensor) -> Result<Tensor> {
    let num = per_sample.mul(weights)?.sum_all()?;
    Ok(num.div(&weights.sum_all()?)?)
}

/// The batch mean of per-element losses (`elements`, `batch` samples' worth in batch
/// order): the mean of every element without weights (PyTorch's `'mean'`), else the
/// weighted mean of each sample's mean.
pub(super) fn reduce_elements(
    loss: &str,
    elements: &Tensor,
    batch: usize,
    weights: Option<&Tensor>,
) -> Result<Tensor> {
    let Some(w) = sample_weights(loss, weights, batch, elements.dtype())? else {
        return Ok(elements.mean_all()?);
    };
    let n = elements.elem_count();
    if batch == 0 || !n.is_multiple_of(batch) {
        return Err(Error::Data(format!(
            "loss {loss}: {n} loss values do not split into {batch} samples"
        )));
    }
    let per_sample = elements.reshape((batch, n / batch))?.mean(1)?;
    weighted_mean(&per_sample, &w)
}

/// The leading (batch) dimension of a model output.
pub(super) fn batch_of(loss: &str, output: &Tensor) -> Result<usize> {
    output.dims().first().copied().ok_or_else(|| {
        Error::Data(format!(
            "loss {loss}: the model output is a scalar; expected a batch dimension first"
        ))
    })
}

/// Checks that a setting is a finite number `>= 0`.
pub(super) fn check_non_negative(field: &str, value: f64) -> Result<()> {
    if !value.is_finite() || value < 0.0 {
        return Err(Error::config(
            field,
            format!("{value} is not a finite number >= 0"),
        ));
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod testing {
    //! Helpers for the loss tests.
    use candle_core::{Device, Tensor};

    /// A `[rows, cols]` f32 tensor.
    pub fn matrix(rows: &[&[f32]]) -> Tensor {
        let cols = rows[0].len();
        let flat: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        Tensor::from_vec(flat, (rows.len(), cols), &Device::Cpu).unwrap()
    }

    /// A 1-D f32 tensor.
    pub fn vector(v: &[f32]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap()
    }

    /// A 1-D u32 tensor.
    pub fn ids(v: &[u32]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap()
    }

    /// The scalar value of a loss.
    pub fn scalar(t: &Tensor) -> f64 {
        assert_eq!(t.dims(), &[] as &[usize], "a loss is a scalar");
        t.to_dtype(candle_core::DType::F64)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    }

    /// Asserts `got` is `want` up to f32 rounding.
    #[track_caller]
    pub fn assert_close(got: f64, want: f64) {
        let tol = 1e-5 * want.abs().max(1.0);
        assert!(
            (got - want).abs() <= tol,
            "got {got}, want {want} (diff {})",
            (got - want).abs()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn weighted_mean_divides_by_the_weight_sum() {
        let l = vector(&[1.0, 2.0, 4.0]);
        let w = vector(&[1.0, 0.0, 3.0]);
        // (1*1 + 0*2 + 3*4) / 4
        assert_close(scalar(&weighted_mean(&l, &w).unwrap()), 13.0 / 4.0);
    }

    #[test]
    fn element_reduction_averages_each_sample_before_weighting() {
        let el = matrix(&[&[1.0, 3.0], &[5.0, 7.0]]);
        assert_close(scalar(&reduce_elements("t", &el, 2, None).unwrap()), 4.0);
        let w = vector(&[3.0, 1.0]);
        // sample means 2 and 6: (3*2 + 1*6) / 4
        let got = reduce_elements("t", &el, 2, Some(&w)).unwrap();
        assert_close(scalar(&got), 3.0);
    }

    #[test]
    fn sample_weights_of_the_wrong_shape_are_refused() {
        let el = matrix(&[&[1.0], &[2.0]]);
        let w = vector(&[1.0, 1.0, 1.0]);
        let err = reduce_elements("mse", &el, 2, Some(&w))
            .unwrap_err()
            .to_string();
        assert!(err.contains("loss mse") && err.contains("[3]"), "{err}");
        let w = matrix(&[&[1.0], &[1.0]]);
        assert!(reduce_elements("mse", &el, 2, Some(&w)).is_err());
    }

    #[test]
    fn non_negative_settings() {
        check_non_negative("loss.x", 0.0).unwrap();
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            let err = check_non_negative("loss.x", bad).unwrap_err().to_string();
            assert!(err.contains("loss.x"), "{err}");
        }
    }
}
