//! The dense layer `y = act(x·Wᵀ + b)` as one operation with its own backward pass, on the CPU.
//!
//! Written as a candle custom op (the seam candle offers for this) because candle's generic
//! path, measured on the MNIST MLP, spends a third of its gemm time and a quarter of a step
//! on work the layer does not need: matmul's backward always computes the input's gradient
//! (for the first layer that is the data: a 128x256x784 gemm thrown away), the weight's
//! gradient arrives as a transposed view so accumulating it is a strided element-wise add,
//! and the bias add, the bias gradient's reduction and ReLU's mask (compare, convert,
//! multiply) are each a pass over memory with a fresh allocation. Here the forward is one
//! gemm into rows pre-filled with the bias, ReLU applied in place; the backward masks the
//! gradient once and computes only the gradients that are tracked, each contiguous, in the
//! variable's own `[out, in]` layout.
//!
//! Other devices and dtypes, and inputs that are not 2-D, take candle's ops unchanged. The
//! result differs from candle's in the last bits (the bias joins the sum before the last
//! block of `k` rather than after it), and is bitwise reproducible for a given binary,
//! machine and thread count like every other op.

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Tensor};

use super::cpu_op::with_storage;
use super::matmul::{gemm_split_rows, Operand};
use crate::error::Result;
use crate::simd;

/// What follows the affine map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `y = x·Wᵀ + b`.
    Identity,
    /// `y = max(x·Wᵀ + b, 0)`.
    Relu,
}

/// `act(x·Wᵀ + b)` for `x: [batch, in]`, `w: [out, in]`, `b: [out]`, with gradients for
/// whichever of the three track them. Falls back to candle's `matmul`, `broadcast_add` and
/// `relu` off the CPU, for other dtypes and for inputs of another rank.
pub fn dense(x: &Tensor, w: &Tensor, b: &Tensor, act: Activation) -> Result<Tensor> {
    let fused = x.device().is_cpu()
        && [x, w, b].iter().all(|t| t.dtype() == DType::F32)
        && x.rank() == 2
        && w.rank() == 2
        && b.rank() == 1;
    if fused {
        return Ok(x.apply_op3(w, b, Dense { act })?);
    }
    let y = x.broadcast_matmul(&w.t()?)?.broadcast_add(b)?;
    Ok(match act {
        Activation::Identity => y,
        Activation::Relu => y.relu()?,
    })
}

/// [`dense`] through a candle-nn `Linear` (its `[out, in]` weight and its bias); without a
/// bias, the layer's own `forward`.
pub fn linear(layer: &candle_nn::Linear, x: &Tensor, act: Activation) -> Result<Tensor> {
    if let Some(b) = layer.bias() {
        return dense(x, layer.weight(), b, act);
    }
    let y = candle_core::Module::forward(layer, x)?;
    Ok(match act {
        Activation::Identity => y,
        Activation::Relu => y.relu()?,
    })
}

struct Dense {
    act: Activation,
}

/// A 2-D (or 1-D, as one row) f32 operand of a custom op: its data from the layout's start
/// and its strides.
fn operand<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    what: &str,
) -> candle_core::Result<Operand<'a>> {
    let CpuStorage::F32(all) = storage else {
        candle_core::bail!("{what} is not f32")
    };
    let dims = layout.dims();
    let stride = layout.stride();
    let (rows, cols, rs, cs) = match dims.len() {
        2 => (dims[0], dims[1], stride[0], stride[1]),
        1 => (1, dims[0], 0, stride[0]),
        n => candle_core::bail!("{what} has rank {n}"),
    };
    Ok(Operand {
        data: &all[layout.start_offset()..],
        rows,
        cols,
        rs,
        cs,
    })
}

/// [`operand`] for a tensor (in the backward pass), handed to `f`.
fn with_operand<R>(
    t: &Tensor,
    what: &str,
    f: impl FnOnce(Operand) -> candle_core::Result<R>,
) -> candle_core::Result<R> {
    with_storage(t, what, |s, l| f(operand(s, l, what)?))
}

impl CustomOp3 for Dense {
    fn name(&self) -> &'static str {
        "deeptrain-dense"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = operand(xs, xl, "dense: input")?;
        let w = operand(ws, wl, "dense: weight")?;
        let b = operand(bs, bl, "dense: bias")?;
        if w.cols != x.cols || b.cols != w.rows {
            candle_core::bail!(
                "dense: input [{}, {}], weight [{}, {}] and bias [{}] do not fit",
                x.rows,
                x.cols,
                w.rows,
                w.cols,
                b.cols
            )
        }
        let (m, n) = (x.rows, w.rows);
        let mut y = Vec::with_capacity(m * n);
        let bias = b.to_rows();
        for _ in 0..m {
            y.extend_from_slice(&bias);
        }
        gemm_split_rows(&mut y, x, w.t(), true);
        if self.act == Activation::Relu {
            relu_in_place(&mut y);
        }
        Ok((CpuStorage::F32(y), Shape::from((m, n))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (m, n) = grad.dims2()?;
        let k = x.dim(1)?;
        // dL/d(pre-activation), contiguous [m, n].
        let grad = grad.to_dtype(DType::F32)?;
        let mut gz = with_operand(&grad, "dense: gradient", |g| Ok(g.to_rows()))?;
        if self.act == Activation::Relu {
            with_operand(y, "dense: output", |yv| {
                if let Some(yc) = yv.contiguous() {
                    relu_mask(&mut gz, yc);
                } else {
                    for (i, g) in gz.iter_mut().enumerate() {
                        if yv.at(i / n, i % n) <= 0.0 {
                            *g = 0.0;
                        }
                    }
                }
                Ok(())
            })?;
        }
        let gzm = Operand::rows(&gz, m, n);
        let device = x.device();
        let grad_w = if w.track_op() {
            let mut gw = vec![0f32; n * k];
            with_operand(x, "dense: input", |xm| {
                gemm_split_rows(&mut gw, gzm.t(), xm, false);
                Ok(())
            })?;
            Some(Tensor::from_vec(gw, (n, k), device)?)
        } else {
            None
        };
        let grad_b = if b.track_op() {
            Some(Tensor::from_vec(column_sums(&gz, n), n, device)?)
        } else {
            None
        };
        let grad_x = if x.track_op() {
            let mut gx = vec![0f32; m * k];
            with_operand(w, "dense: weight", |wm| {
                gemm_split_rows(&mut gx, gzm, wm, false);
                Ok(())
            })?;
            Some(Tensor::from_vec(gx, (m, k), device)?)
        } else {
            None
        };
        Ok((grad_x, grad_w, grad_b))
    }
}

// The element-wise loops, each compiled for the CPU's widest vectors (`simd::dispatch`: the
// same order of operations, so the same bits).

/// `v = max(v, 0)` in place (the forward pass's ReLU).
fn relu_in_place(y: &mut [f32]) {
    simd::dispatch(
        #[inline(always)]
        || y.iter_mut().for_each(|v| *v = v.max(0.0)),
    )
}

/// Zeroes the gradient `g` where the ReLU's output `y` is not positive.
fn relu_mask(g: &mut [f32], y: &[f32]) {
    simd::dispatch(
        #[inline(always)]
        || {
            g.iter_mut()
                .zip(y)
                .for_each(|(g, y)| *g = if *y > 0.0 { *g } else { 0.0 })
        },
    )
}

/// The sums of the columns of the row-major `rows x n` matrix `m`, row after row (the bias
/// gradient).
fn column_sums(m: &[f32], n: usize) -> Vec<f32> {
    let mut sums = vec![0f32; n];
    if n > 0 {
        simd::dispatch(
            #[inline(always)]
            || {
                for row in m.chunks_exact(n) {
                    sums.iter_mut().zip(row).for_each(|(s, v)| *s += v);
                }
            },
        );
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::matmul::testing::randn;
    use crate::simd::testing::assert_levels_agree;
    use candle_core::Var;

    fn close(a: &Tensor, b: &Tensor) -> f32 {
        a.sub(b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    /// Forward and every gradient against candle's own ops, for both activations, with a
    /// tracked input (a hidden layer) and an untracked one (data).
    #[test]
    fn matches_candles_ops_forward_and_backward() {
        for act in [Activation::Identity, Activation::Relu] {
            for input_tracked in [false, true] {
                let w = Var::from_tensor(&randn(&[7, 13], 1)).unwrap();
                let b = Var::from_tensor(&randn(&[7], 2)).unwrap();
                let x0 = randn(&[5, 13], 3);
                let xv = Var::from_tensor(&x0).unwrap();
                let x = if input_tracked {
                    xv.as_tensor().clone()
                } else {
                    x0.clone()
                };
                let probe = randn(&[5, 7], 4);
                let ours = dense(&x, &w, &b, act).unwrap();
                let plain = {
                    let y = x
                        .matmul(&w.t().unwrap())
                        .unwrap()
                        .broadcast_add(&b)
                        .unwrap();
                    match act {
                        Activation::Identity => y,
                        Activation::Relu => y.relu().unwrap(),
                    }
                };
                assert!(close(&ours, &plain) < 1e-5, "{act:?} forward");
                let g1 = ours
                    .mul(&probe)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                let g2 = plain
                    .mul(&probe)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                for (name, t) in [("w", w.as_tensor()), ("b", b.as_tensor())] {
                    let (a, c) = (g1.get(t).unwrap(), g2.get(t).unwrap());
                    assert_eq!(a.dims(), c.dims());
                    assert!(close(a, c) < 1e-5, "{act:?} grad {name}");
                }
                if input_tracked {
                    let t = xv.as_tensor();
                    assert!(close(g1.get(t).unwrap(), g2.get(t).unwrap()) < 1e-5);
                } else {
                    // Nothing is computed for the data.
                    assert!(g1.get(&x).is_none());
                }
            }
        }
    }

    /// A transposed (strided) input and weight read through their strides.
    #[test]
    fn strided_operands() {
        let w = randn(&[13, 7], 5).t().unwrap();
        let b = randn(&[7], 6);
        let x = randn(&[13, 5], 7).t().unwrap();
        assert!(!x.is_contiguous() && !w.is_contiguous());
        let ours = dense(&x, &w, &b, Activation::Relu).unwrap();
        let plain = x
            .matmul(&w.t().unwrap())
            .unwrap()
            .broadcast_add(&b)
            .unwrap()
            .relu()
            .unwrap();
        assert!(close(&ours, &plain) < 1e-5);
    }

    /// `n` values uniform in [-1, 1), every 4th one replaced by a value that takes another
    /// path: zeros of both signs, a subnormal, NaN (when `nan`).
    fn data(n: usize, seed: u64, nan: bool) -> Vec<f32> {
        let special = [0.0, -0.0, 1e-40, if nan { f32::NAN } else { -2.5 }];
        let v = randn(&[n], seed).to_vec1::<f32>().unwrap();
        let special = |i: usize| special[(i / 4) % special.len()];
        (0..n)
            .map(|i| if i % 4 == 1 { special(i) } else { v[i] })
            .collect()
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// The ReLU, its mask and the bias gradient's column sums give the same bits at every
    /// SIMD level the CPU has as compiled for the baseline, at lengths around the vector
    /// widths.
    #[test]
    fn elementwise_loops_are_bitwise_the_same_at_every_simd_level() {
        for n in [1, 7, 15, 16, 17, 100, 1000] {
            let (x, y) = (data(n, n as u64, true), data(n, n as u64 + 1, true));
            let relu = || {
                let mut v = x.clone();
                relu_in_place(&mut v);
                bits(&v)
            };
            assert_levels_agree(&format!("relu, {n}"), relu, |a, b| a == b);
            let mask = || {
                let mut g = x.clone();
                relu_mask(&mut g, &y);
                bits(&g)
            };
            assert_levels_agree(&format!("relu mask, {n}"), mask, |a, b| a == b);
            let m = data(n * 3, n as u64 + 2, false);
            for cols in [1, n, 3 * n] {
                let sums = || bits(&column_sums(&m, cols));
                assert_levels_agree(&format!("column sums, {cols}"), sums, |a, b| a == b);
            }
        }
    }

    /// The whole op, forward and every gradient, at every SIMD level: the same bits.
    #[test]
    fn op_is_bitwise_the_same_at_every_simd_level() {
        for act in [Activation::Identity, Activation::Relu] {
            let run = || {
                let w = Var::from_tensor(&randn(&[37, 29], 11)).unwrap();
                let b = Var::from_tensor(&randn(&[37], 12)).unwrap();
                let x = Var::from_tensor(&randn(&[21, 29], 13)).unwrap();
                let y = dense(&x, &w, &b, act).unwrap();
                let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
                let tensors = [
                    &y,
                    g.get(&w).unwrap(),
                    g.get(&b).unwrap(),
                    g.get(&x).unwrap(),
                ];
                tensors.map(|t| bits(&t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
            };
            assert_levels_agree(&format!("{act:?}"), run, |a, b| a == b);
        }
    }

    /// Same inputs, same bits.
    #[test]
    fn deterministic() {
        let (x, w, b) = (
            randn(&[64, 300], 8),
            randn(&[200, 300], 9),
            randn(&[200], 10),
        );
        let a = dense(&x, &w, &b, Activation::Relu)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let c = dense(&x, &w, &b, Activation::Relu)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(a, c);
    }
}
