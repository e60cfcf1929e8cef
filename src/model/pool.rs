//! ReLU + 2x2 max pooling as one CPU custom op (candle's ten passes over memory in
//! backward become one), and the per-plane kernels that the convolution op
//! ([`super::conv::conv2d_relu_max_pool2x2`]) fuses after each image's convolution.
//!
//! The pooling keeps one byte per window from its forward pass (which elements get the
//! window's gradient, and how much), so its backward reads neither input nor output. It gives
//! candle's results bit for bit, forward and backward (see [`relu_max_pool2x2`]).

use std::sync::{Mutex, MutexGuard};

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};

use super::cpu_op::{each_chunk, images_in_parallel, row_major, with_data};
use crate::error::Result;
use crate::simd;

/// `max_pool2d(relu(x), 2)` for `x: [N, C, H, W]`, an odd last row or column dropped first
/// (PyTorch's floor mode): one pass forward and one backward instead of candle's ten.
///
/// Gives candle's values bit for bit, forward and backward, including candle 0.11's
/// max-pooling gradient, which is not PyTorch's: each window's gradient goes to every
/// element equal to the window's maximum, scaled by the number of such elements over four
/// (so a single maximum gets a quarter of it). Off the CPU and for other dtypes, candle's
/// `relu` and `max_pool2d` themselves.
pub fn relu_max_pool2x2(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if h < 2 || w < 2 {
        let msg = format!("relu_max_pool2x2: input {:?} is smaller than 2x2", x.dims());
        return Err(candle_core::Error::msg(msg).into());
    }
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        return Ok(x.apply_op1(ReluMaxPool(Codes::new(x.track_op())))?);
    }
    let mut x = x.clone();
    if h % 2 == 1 {
        x = x.narrow(2, 0, h - 1)?;
    }
    if w % 2 == 1 {
        x = x.narrow(3, 0, w - 1)?;
    }
    Ok(x.relu()?.max_pool2d(2)?)
}

/// The op of [`relu_max_pool2x2`].
struct ReluMaxPool(Codes);

/// What a pooling forward pass leaves for its backward pass: one [`code`] per window, kept
/// only when some input tracks a gradient.
pub(super) struct Codes {
    /// Whether the codes are kept.
    pub keep: bool,
    codes: Mutex<Vec<u8>>,
}

impl Codes {
    /// Codes to be kept when `keep` (some input tracks a gradient).
    pub(super) fn new(keep: bool) -> Self {
        Self {
            keep,
            codes: Mutex::new(Vec::new()),
        }
    }

    /// Buffer for `n` codes: `n` bytes when kept, else none.
    pub(super) fn buffer(&self, n: usize) -> Vec<u8> {
        vec![0u8; if self.keep { n } else { 0 }]
    }

    /// Keeps the forward pass's codes for the backward pass.
    pub(super) fn store(&self, codes: Vec<u8>) {
        *self.codes.lock().unwrap_or_else(|e| e.into_inner()) = codes;
    }

    /// The codes of the forward pass (kept: a graph's backward may run more than once), or
    /// an error naming `what` when it kept none.
    pub(super) fn get(&self, what: &str, n: usize) -> candle_core::Result<MutexGuard<'_, Vec<u8>>> {
        let codes = self.codes.lock().unwrap_or_else(|e| e.into_inner());
        if codes.len() != n {
            candle_core::bail!("{what}: backward without its forward pass's pooling codes")
        }
        Ok(codes)
    }
}

/// ReLU as candle computes it on this CPU: `-0.0` and NaN give `+0.0`.
fn relu(v: f32) -> f32 {
    if v > 0.0 {
        v
    } else {
        0.0
    }
}

/// A 2x2 window's maximum after ReLU, and its code for the backward pass: bits 0..4 say
/// which of the window's elements (top left, top right, bottom left, bottom right) get the
/// gradient, bits 4..7 by how much (the count of elements equal to the maximum).
///
/// This is candle's gradient for `max_pool2d(relu(x))`: the pooling's mask is
/// `relu(x) == max`, scaled by the mask's mean over the window (`count / 4`), then ReLU's
/// mask is `x >= 0`. The maximum is candle's too: the ReLU values are never NaN or `-0.0`,
/// so any order of comparisons finds the same bits as candle's scan. Branch-free, so that
/// the row loops of [`pool_planes`] vectorise.
#[inline(always)]
fn code(a: f32, b: f32, c: f32, d: f32) -> (f32, u8) {
    let (ra, rb, rc, rd) = (relu(a), relu(b), relu(c), relu(d));
    let max = |x: f32, y: f32| if x > y { x } else { y };
    let m = max(max(ra, rb), max(rc, rd));
    let hit = |r: f32| u8::from(r == m);
    let grad = |r: f32, x: f32| u8::from(r == m) & u8::from(x >= 0.0);
    let count = hit(ra) + hit(rb) + hit(rc) + hit(rd);
    let mask = grad(ra, a) | grad(rb, b) << 1 | grad(rc, c) << 2 | grad(rd, d) << 3;
    (m, mask | count << 4)
}

/// Windows handled together, so that the compiler can keep them in one vector register.
const BLOCK: usize = 4;

/// The starts of the `BLOCK`-window blocks covering `0..wo` (for `wo >= BLOCK`): the last
/// block ends at `wo`, overlapping the one before (recomputing a window writes the same
/// values), so rows of 7 or 14 windows need no scalar tail.
#[inline(always)]
fn blocks(wo: usize) -> impl Iterator<Item = usize> {
    (0..wo - BLOCK)
        .step_by(BLOCK)
        .chain(std::iter::once(wo - BLOCK))
}

/// ReLU + 2x2 max pooling of `planes` planes of `h x w` (`x`) into `out` (`planes` planes of
/// `h/2 x w/2`), with the windows' codes into `codes` unless it is empty.
///
/// Compiled for the baseline only, unlike [`unpool_planes`]: for MNIST's planes (rows of 14
/// and 7 windows) it measured slower for AVX2 and AVX-512 (6.0 µs baseline, 8.2 µs AVX2,
/// 8.7 µs AVX-512 for 16 planes of 28x28 on a Xeon with AVX-512): the vectoriser keeps four
/// windows a step and adds work to pack the codes.
pub(super) fn pool_planes(
    x: &[f32],
    planes: usize,
    h: usize,
    w: usize,
    out: &mut [f32],
    codes: &mut [u8],
) {
    let wo = w / 2;
    let keep = !codes.is_empty();
    let mut at = 0;
    for plane in x.chunks_exact(h * w).take(planes) {
        // Row pairs; an odd last row and column are left out.
        for rows in plane.chunks_exact(2 * w) {
            let (top, bottom) = (&rows[..2 * wo], &rows[w..w + 2 * wo]);
            let out = &mut out[at..at + wo];
            if keep {
                let codes = &mut codes[at..at + wo];
                for i in 0..wo {
                    let (a, b) = (top[2 * i], top[2 * i + 1]);
                    let (c, d) = (bottom[2 * i], bottom[2 * i + 1]);
                    (out[i], codes[i]) = code(a, b, c, d);
                }
            } else {
                for i in 0..wo {
                    let (a, b) = (top[2 * i], top[2 * i + 1]);
                    let (c, d) = (bottom[2 * i], bottom[2 * i + 1]);
                    out[i] = code(a, b, c, d).0;
                }
            }
            at += wo;
        }
    }
}

/// The gradient of [`pool_planes`]' input from the gradient `g` of its output and its
/// codes, into `gx` (`planes` planes of `h x w`; every element written). Compiled for the
/// CPU's widest vectors (`simd::dispatch`: the same operations, so the same bits; 2.3 µs
/// instead of 3.4 µs for 16 planes of 28x28).
pub(super) fn unpool_planes(
    codes: &[u8],
    g: &[f32],
    planes: usize,
    h: usize,
    w: usize,
    gx: &mut [f32],
) {
    simd::dispatch(
        #[inline(always)]
        || unpool(codes, g, planes, h, w, gx),
    )
}

/// [`unpool_planes`], to be inlined where it is compiled.
#[inline(always)]
fn unpool(codes: &[u8], g: &[f32], planes: usize, h: usize, w: usize, gx: &mut [f32]) {
    let wo = w / 2;
    // One window's four gradients from its code and its output's gradient.
    let window = |k: u8, g: f32| {
        let scaled = g * (f32::from(k >> 4) * 0.25);
        let v = |bit: u8| if k & bit != 0 { scaled } else { 0.0 };
        [v(1), v(2), v(4), v(8)]
    };
    let mut at = 0;
    for plane in gx.chunks_exact_mut(h * w).take(planes) {
        let (pairs, odd_row) = plane.split_at_mut((h / 2) * 2 * w);
        for rows in pairs.chunks_exact_mut(2 * w) {
            let (top, bottom) = rows.split_at_mut(w);
            let (codes, g) = (&codes[at..at + wo], &g[at..at + wo]);
            at += wo;
            if wo < BLOCK {
                for i in 0..wo {
                    let [a, b, c, d] = window(codes[i], g[i]);
                    (top[2 * i], top[2 * i + 1]) = (a, b);
                    (bottom[2 * i], bottom[2 * i + 1]) = (c, d);
                }
            } else {
                for s in blocks(wo) {
                    let k: &[u8; BLOCK] = codes[s..s + BLOCK].try_into().unwrap();
                    let gs: &[f32; BLOCK] = g[s..s + BLOCK].try_into().unwrap();
                    let mut t = [0f32; 2 * BLOCK];
                    let mut b = [0f32; 2 * BLOCK];
                    for i in 0..BLOCK {
                        let [v0, v1, v2, v3] = window(k[i], gs[i]);
                        (t[2 * i], t[2 * i + 1], b[2 * i], b[2 * i + 1]) = (v0, v1, v2, v3);
                    }
                    top[2 * s..2 * (s + BLOCK)].copy_from_slice(&t);
                    bottom[2 * s..2 * (s + BLOCK)].copy_from_slice(&b);
                }
            }
            // An odd last column gets no gradient ...
            if w % 2 == 1 {
                top[w - 1] = 0.0;
                bottom[w - 1] = 0.0;
            }
        }
        // ... nor does an odd last row.
        odd_row.fill(0.0);
    }
}

impl CustomOp1 for ReluMaxPool {
    fn name(&self) -> &'static str {
        "deeptrain-relu-max-pool2x2"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = l.shape().dims4()?;
        let x = row_major(s, l, "relu_max_pool2x2: input")?;
        let out = c * (h / 2) * (w / 2);
        let mut y = vec![0f32; n * out];
        let mut codes = self.0.buffer(y.len());
        let code_size = if self.0.keep { out } else { 0 };
        // Image by image, shared among the threads like the convolution's.
        each_chunk(
            (&mut y, out),
            (&mut codes, code_size),
            images_in_parallel(n),
            || (),
            |_, i, y, codes| {
                let x = &x[i * c * h * w..(i + 1) * c * h * w];
                pool_planes(x, c, h, w, y, codes);
            },
        );
        self.0.store(codes);
        Ok((CpuStorage::F32(y), Shape::from((n, c, h / 2, w / 2))))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        if !x.track_op() {
            return Ok(None);
        }
        let (n, c, h, w) = x.dims4()?;
        let codes = self.0.get("relu_max_pool2x2", n * c * (h / 2) * (w / 2))?;
        let grad = grad.to_dtype(DType::F32)?;
        let out = c * (h / 2) * (w / 2);
        let mut gx = vec![0f32; n * c * h * w];
        with_data(&grad, "relu_max_pool2x2: gradient", |gd| {
            each_chunk(
                (&mut gx, c * h * w),
                (&mut [] as &mut [u8], 0),
                images_in_parallel(n),
                || (),
                |_, i, gx, _| {
                    let (codes, g) = (&codes[i * out..(i + 1) * out], &gd[i * out..(i + 1) * out]);
                    unpool_planes(codes, g, c, h, w, gx);
                },
            );
            Ok(())
        })?;
        Ok(Some(Tensor::from_vec(gx, x.shape(), x.device())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::conv::{conv2d, conv2d_relu_max_pool2x2};
    use crate::model::matmul::testing::{bits, randn};
    use crate::simd::testing::assert_levels_agree;
    use candle_core::Var;

    /// The pooling's backward kernel gives the same bits at every SIMD level the CPU has as
    /// compiled for the baseline: with ties, zeros of both signs, NaN, odd sides and rows of
    /// fewer windows than a block.
    #[test]
    fn unpooling_is_bitwise_the_same_at_every_simd_level() {
        for (c, h, w) in [
            (3, 6, 8),
            (2, 7, 5),
            (1, 4, 4),
            (2, 9, 30),
            (4, 28, 28),
            (1, 3, 2),
        ] {
            let n = c * h * w;
            let special = [0.0, -0.0, f32::NAN, 1e-40, -1e-40];
            let x: Vec<f32> = randn(&[n], n as u64)
                .to_vec1::<f32>()
                .unwrap()
                .iter()
                .enumerate()
                // Quantised so that windows hold ties.
                .map(|(i, v)| {
                    if i % 6 == 2 {
                        special[i / 6 % 5]
                    } else {
                        (v * 2.0).round()
                    }
                })
                .collect();
            let out = c * (h / 2) * (w / 2);
            let (mut y, mut codes) = (vec![0f32; out], vec![0u8; out]);
            pool_planes(&x, c, h, w, &mut y, &mut codes);
            let g: Vec<f32> = randn(&[out], 5).to_vec1().unwrap();
            let run = || {
                let mut gx = vec![f32::NAN; n];
                unpool_planes(&codes, &g, c, h, w, &mut gx);
                gx.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            };
            assert_levels_agree(&format!("{:?}", [c, h, w]), run, |a, b| a == b);
        }
    }

    /// The fused ReLU + max pooling gives candle's values and gradient bit for bit, with
    /// ties (zeros after ReLU, repeated maxima) and odd sides.
    #[test]
    fn relu_max_pool_matches_candle_bitwise() {
        for (n, c, h, w) in [(2, 3, 6, 8), (1, 2, 7, 5), (3, 1, 4, 4)] {
            let x0 = randn(&[n, c, h, w], (h * w) as u64);
            // Quantised to a few values so that windows hold ties.
            let x0 = (x0 * 2.0).unwrap().round().unwrap();
            let x = Var::from_tensor(&x0).unwrap();
            let ours = relu_max_pool2x2(&x).unwrap();
            let mut t = x.as_tensor().clone();
            if h % 2 == 1 {
                t = t.narrow(2, 0, h - 1).unwrap();
            }
            if w % 2 == 1 {
                t = t.narrow(3, 0, w - 1).unwrap();
            }
            let plain = t.relu().unwrap().max_pool2d(2).unwrap();
            assert_eq!(bits(&ours), bits(&plain), "{:?} forward", [n, c, h, w]);
            let probe = randn(plain.dims(), 7);
            let g1 = ours.mul(&probe).unwrap().sum_all().unwrap().backward();
            let g2 = plain.mul(&probe).unwrap().sum_all().unwrap().backward();
            let (g1, g2) = (g1.unwrap(), g2.unwrap());
            let (a, b) = (g1.get(&x).unwrap(), g2.get(&x).unwrap());
            assert_eq!(bits(a), bits(b), "{:?} gradient", [n, c, h, w]);
            // The ties are there: windows whose positive maximum appears more than once.
            let v = x0.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let mut tied = 0;
            for plane in v.chunks_exact(h * w) {
                for rows in plane.chunks_exact(2 * w) {
                    let (top, bottom) = rows.split_at(w);
                    for (t, b) in top.chunks_exact(2).zip(bottom.chunks_exact(2)) {
                        let win = [t[0], t[1], b[0], b[1]];
                        let m = win.iter().cloned().fold(0f32, f32::max);
                        tied += usize::from(m > 0.0 && win.iter().filter(|&&e| e == m).count() > 1);
                    }
                }
            }
            assert!(tied > 0, "{:?}: no tied window", [n, c, h, w]);
        }
    }

    /// The pooling ops keep their codes: a graph's backward runs twice with the same bits.
    #[test]
    fn backward_twice() {
        let w = Var::from_tensor(&randn(&[3, 2, 3, 3], 70)).unwrap();
        let x = randn(&[2, 2, 6, 6], 71);
        let fused = conv2d_relu_max_pool2x2(&x, &w, None, 1, 1, 1).unwrap();
        let pooled = relu_max_pool2x2(&conv2d(&x, &w, None, 1, 1, 1).unwrap()).unwrap();
        for y in [fused, pooled] {
            let loss = y.sqr().unwrap().sum_all().unwrap();
            let a = bits(loss.backward().unwrap().get(&w).unwrap());
            let b = bits(loss.backward().unwrap().get(&w).unwrap());
            assert_eq!(a, b);
            assert!(a.iter().any(|&v| v != 0));
        }
    }

    /// An untracked input gets no gradient from the pooling op.
    #[test]
    fn untracked_pool_input_gets_nothing() {
        let w = Var::from_tensor(&randn(&[2, 1, 3, 3], 60)).unwrap();
        let x = randn(&[2, 1, 6, 6], 61);
        let y = relu_max_pool2x2(&x).unwrap().sum_all().unwrap();
        let z = relu_max_pool2x2(&conv2d(&x, &w, None, 1, 1, 1).unwrap())
            .unwrap()
            .sum_all()
            .unwrap();
        assert!(y.backward().unwrap().get(&x).is_none());
        let g = z.backward().unwrap();
        assert!(g.get(&x).is_none() && g.get(&w).is_some());
    }
}
