//! 2-D convolution with its own backward pass on the CPU, alone and fused with ReLU + 2x2 max
//! pooling (the CNN's conv blocks without batch norm). The pooling on its own is
//! [`super::pool`]'s op, re-exported here as [`relu_max_pool2x2`].
//!
//! Written as candle custom ops (the seam candle offers for this, as [`super::dense`] does for
//! the dense layer) because candle's own path, profiled on the MNIST CNN, spends most of a
//! training step in the convolutions' backward: the kernel's gradient is a convolution with
//! the batch as channels, the input's gradient a naive transposed convolution that is computed
//! even for the data, and ReLU followed by max pooling costs ten passes over memory in
//! backward (upsample, compare, convert, average, multiply, upsample, multiply; then ReLU's
//! compare, convert, multiply), each into a fresh allocation.
//!
//! Here the forward pass lowers each image to columns (im2col) in a reused buffer and calls
//! one gemm into rows pre-filled with the bias; the backward pass computes only the gradients
//! that are tracked: the kernel's as `grad_out · colsᵀ` summed over the images (columns
//! recomputed, not kept: for a 128-image MNIST batch they would be 57 MB), the bias's as a sum,
//! and the input's as `Wᵀ · grad_out` scattered back (col2im). With more than one thread the
//! images are shared among rayon's threads; the kernel gradient is summed in fixed groups of
//! images and the groups added in order, so the result does not depend on the thread count.
//!
//! The pooling keeps one byte per window from its forward pass (which elements get the
//! window's gradient, and how much), so its backward reads neither input nor output. Fused
//! after the convolution, each image is pooled while its convolution is in cache, and the
//! convolution's output and its gradient never become tensors (for MNIST's first block they
//! are 6.4 MB each, and candle's gradient store adds a zero-filled copy).
//!
//! Other devices and dtypes, grouped convolutions and inputs that are not 4-D take candle's
//! ops unchanged. The convolution differs from candle's in the last bits (the bias joins the
//! sum first, the sums are blocked differently) and is bitwise reproducible for a given binary
//! and machine like every other op. The pooling gives candle's results bit for bit, forward
//! and backward (see [`relu_max_pool2x2`]), and the fused op gives the bits of the two
//! unfused ones.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor};
use gemm::Parallelism;

use super::cpu_op::{each_chunk, images_in_parallel, row_major, threads, with_data};
use super::matmul::{gemm_into, Dst, Operand};
pub use super::pool::relu_max_pool2x2;
use super::pool::{pool_planes, unpool_planes, Codes};
use crate::error::Result;
use crate::simd;

/// Images whose kernel gradients are summed together before the groups are added in order:
/// a constant, so that the sum's order (and its bits) do not depend on the thread count.
const GRAD_GROUP: usize = 4;

/// The geometry of one convolution: `[N, C, H, W]` input, `[O, C, KH, KW]` kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Geometry {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    kh: usize,
    kw: usize,
    padding: usize,
    stride: usize,
    dilation: usize,
    ho: usize,
    wo: usize,
}

impl Geometry {
    /// The geometry of `x` convolved with `w`, or why it is not one.
    fn new(
        x: &[usize],
        w: &[usize],
        padding: usize,
        stride: usize,
        dilation: usize,
    ) -> std::result::Result<Self, String> {
        let (&[n, c, h, wd], &[o, wc, kh, kw]) = (x, w) else {
            return Err(format!(
                "conv2d: input {x:?} and kernel {w:?} are not both 4-D"
            ));
        };
        if wc != c {
            return Err(format!(
                "conv2d: input {x:?} has {c} channels, kernel {w:?} expects {wc}"
            ));
        }
        if stride == 0 || dilation == 0 {
            return Err(format!(
                "conv2d: stride {stride} and dilation {dilation} must be at least 1"
            ));
        }
        let span = |k: usize| dilation * (k.max(1) - 1) + 1;
        if h + 2 * padding < span(kh) || wd + 2 * padding < span(kw) || kh == 0 || kw == 0 {
            return Err(format!(
                "conv2d: kernel {w:?} (dilation {dilation}) is larger than input {x:?} with \
                 padding {padding}"
            ));
        }
        Ok(Self {
            n,
            c,
            h,
            w: wd,
            o,
            kh,
            kw,
            padding,
            stride,
            dilation,
            ho: (h + 2 * padding - span(kh)) / stride + 1,
            wo: (wd + 2 * padding - span(kw)) / stride + 1,
        })
    }

    /// Rows of the column matrix: `C * KH * KW`.
    fn rows(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// Output pixels per channel: `HO * WO`.
    fn pixels(&self) -> usize {
        self.ho * self.wo
    }

    /// Input values per image: `C * H * W`.
    fn image(&self) -> usize {
        self.c * self.h * self.w
    }

    /// The output columns `[lo, hi)` whose input column `ox * stride + off` is inside the
    /// image, for the kernel column offset `off` (`kj * dilation - padding`).
    fn valid_cols(&self, off: isize) -> (usize, usize) {
        let s = self.stride as isize;
        let lo = if off >= 0 { 0 } else { (-off + s - 1) / s } as usize;
        let hi = ((self.w as isize - off + s - 1) / s).max(0) as usize;
        let hi = hi.min(self.wo);
        (lo.min(hi), hi)
    }

    /// For stride 1 with as many output columns as input columns (the usual "same"
    /// padding), the column row of kernel tap `(ki, kj)` is the image plane shifted by
    /// `dy * W + dx`: one flat copy, then the few columns that wrapped around a row's edge
    /// are cleared. `None` for other geometries.
    fn flat(&self, ki: usize, kj: usize) -> Option<Flat> {
        if self.stride != 1 || self.wo != self.w {
            return None;
        }
        let (w, p) = (self.w as isize, self.padding as isize);
        let dy = (ki * self.dilation) as isize - p;
        let dx = (kj * self.dilation) as isize - p;
        let (lo, hi) = self.valid_cols(dx);
        let clamp = |v: isize, max: usize| (v.max(0) as usize).min(max);
        let (oy_lo, oy_hi) = (clamp(-dy, self.ho), clamp(self.h as isize - dy, self.ho));
        let shift = dy * w + dx;
        let hw = self.h * self.w;
        let q_lo = (oy_lo * self.w).max(clamp(-shift, hw));
        let q_hi = (oy_hi * self.w).min(clamp(hw as isize - shift, hw));
        if q_lo >= q_hi {
            // The tap reads only padding (a kernel larger than the image).
            return Some(Flat {
                shift: 0,
                q_lo: 0,
                q_hi: 0,
                rows: 0..0,
                lo: 0,
                hi: self.w,
            });
        }
        Some(Flat {
            shift,
            q_lo,
            q_hi,
            rows: oy_lo..oy_hi,
            lo,
            hi,
        })
    }

    /// Whether the columns are the image itself (a 1x1 kernel, stride 1, no padding).
    fn identity_cols(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == 1 && self.padding == 0
    }

    /// Lowers one image `[C, H, W]` to its columns `[C*KH*KW, HO*WO]`: row `(c, ki, kj)`,
    /// column `(oy, ox)` holds `x[c, oy*s + ki*d - p, ox*s + kj*d - p]`, zero outside.
    fn im2col(&self, x: &[f32], cols: &mut [f32]) {
        let (hw, px) = (self.h * self.w, self.pixels());
        let mut rows = cols.chunks_exact_mut(px);
        for c in 0..self.c {
            let plane = &x[c * hw..(c + 1) * hw];
            for ki in 0..self.kh {
                for kj in 0..self.kw {
                    let row = rows.next().expect("conv2d: column rows");
                    if let Some(f) = self.flat(ki, kj) {
                        row[..f.q_lo].fill(0.0);
                        row[f.q_hi..].fill(0.0);
                        let src = (f.q_lo as isize + f.shift) as usize;
                        row[f.q_lo..f.q_hi].copy_from_slice(&plane[src..src + f.q_hi - f.q_lo]);
                        f.clear_wrapped(self.w, row);
                        continue;
                    }
                    let off = (kj * self.dilation) as isize - self.padding as isize;
                    let (lo, hi) = self.valid_cols(off);
                    for (oy, seg) in row.chunks_exact_mut(self.wo).enumerate() {
                        let iy = (oy * self.stride + ki * self.dilation) as isize
                            - self.padding as isize;
                        if iy < 0 || iy >= self.h as isize {
                            seg.fill(0.0);
                            continue;
                        }
                        let src = &plane[iy as usize * self.w..(iy as usize + 1) * self.w];
                        seg[..lo].fill(0.0);
                        seg[hi..].fill(0.0);
                        if self.stride == 1 {
                            let start = (lo as isize + off) as usize;
                            seg[lo..hi].copy_from_slice(&src[start..start + hi - lo]);
                        } else {
                            for (ox, v) in seg[lo..hi].iter_mut().enumerate() {
                                *v = src[(((lo + ox) * self.stride) as isize + off) as usize];
                            }
                        }
                    }
                }
            }
        }
    }

    /// The adjoint of [`im2col`](Self::im2col): adds each column value back to the input
    /// pixel it was read from, into `gx` `[C, H, W]`, in a fixed order.
    /// `cols` is scratch: the values that were read from padding are overwritten. Compiled
    /// for the CPU's widest vectors (`simd::dispatch`: the same additions, so the same bits).
    fn col2im(&self, cols: &mut [f32], gx: &mut [f32]) {
        simd::dispatch(
            #[inline(always)]
            || self.scatter(cols, gx),
        )
    }

    /// [`col2im`](Self::col2im), to be inlined where it is compiled.
    #[inline(always)]
    fn scatter(&self, cols: &mut [f32], gx: &mut [f32]) {
        let (hw, px) = (self.h * self.w, self.pixels());
        let mut rows = cols.chunks_exact_mut(px);
        for c in 0..self.c {
            let plane = &mut gx[c * hw..(c + 1) * hw];
            for ki in 0..self.kh {
                for kj in 0..self.kw {
                    let row = rows.next().expect("conv2d: column rows");
                    if let Some(f) = self.flat(ki, kj) {
                        // The wrapped columns add zero to the pixels they alias.
                        f.clear_wrapped(self.w, row);
                        let dst = (f.q_lo as isize + f.shift) as usize;
                        let dst = &mut plane[dst..dst + f.q_hi - f.q_lo];
                        dst.iter_mut()
                            .zip(&row[f.q_lo..f.q_hi])
                            .for_each(|(d, v)| *d += v);
                        continue;
                    }
                    let off = (kj * self.dilation) as isize - self.padding as isize;
                    let (lo, hi) = self.valid_cols(off);
                    for (oy, seg) in row.chunks_exact(self.wo).enumerate() {
                        let iy = (oy * self.stride + ki * self.dilation) as isize
                            - self.padding as isize;
                        if iy < 0 || iy >= self.h as isize {
                            continue;
                        }
                        let dst = &mut plane[iy as usize * self.w..(iy as usize + 1) * self.w];
                        if self.stride == 1 {
                            let start = (lo as isize + off) as usize;
                            let dst = &mut dst[start..start + hi - lo];
                            dst.iter_mut().zip(&seg[lo..hi]).for_each(|(d, v)| *d += v);
                        } else {
                            for (ox, v) in seg[lo..hi].iter().enumerate() {
                                dst[(((lo + ox) * self.stride) as isize + off) as usize] += v;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One kernel tap's column row as a flat shifted copy of the plane (see [`Geometry::flat`]):
/// row position `q` in `[q_lo, q_hi)` reads plane position `q + shift`, right where the
/// output column is in `[lo, hi)`; output rows outside `rows` read only padding.
struct Flat {
    shift: isize,
    q_lo: usize,
    q_hi: usize,
    rows: std::ops::Range<usize>,
    lo: usize,
    hi: usize,
}

impl Flat {
    /// Zeroes the positions of `row` (`W` columns per output row) whose column is outside
    /// `[lo, hi)`: the flat copy read them from the neighbouring image row.
    fn clear_wrapped(&self, w: usize, row: &mut [f32]) {
        if self.lo == 0 && self.hi == w {
            return;
        }
        // Element loops, not `fill`: a 3x3 kernel clears one column per tap, and a `fill` of
        // one element is a `memset` call.
        let rows = &mut row[self.rows.start * w..self.rows.end * w];
        for line in rows.chunks_exact_mut(w) {
            for v in &mut line[..self.lo] {
                *v = 0.0;
            }
            for v in &mut line[self.hi..] {
                *v = 0.0;
            }
        }
    }
}

/// `conv2d(x, w) + b` for `x: [N, C, H, W]`, `w: [O, C, KH, KW]`, `b: [O]` (or none), with
/// symmetric zero `padding`, `stride` and `dilation`, with gradients for whichever of the
/// three track them. Falls back to candle's `conv2d` (and a broadcast bias add) off the CPU
/// and for other dtypes.
pub fn conv2d(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    padding: usize,
    stride: usize,
    dilation: usize,
) -> Result<Tensor> {
    let cfg = (padding, stride, dilation);
    if let Some(op) = Conv::fused(x, w, b, cfg, false) {
        return apply(x, w, b, op);
    }
    let y = x.conv2d(w, padding, stride, dilation, 1)?;
    Ok(match b {
        Some(b) => y.broadcast_add(&b.reshape((1, b.elem_count(), 1, 1))?)?,
        None => y,
    })
}

/// `relu_max_pool2x2(conv2d(x, w) + b)` as one operation: each image's convolution is pooled
/// while it is in cache, and neither the convolution's output nor its gradient is ever a
/// tensor (see [`conv2d`] and [`relu_max_pool2x2`], whose results it gives: the convolution's
/// to the last bits, the pooling's exactly). Off the CPU and for other dtypes, the two
/// functions' fallbacks.
pub fn conv2d_relu_max_pool2x2(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    padding: usize,
    stride: usize,
    dilation: usize,
) -> Result<Tensor> {
    let cfg = (padding, stride, dilation);
    if let Some(op) = Conv::fused(x, w, b, cfg, true) {
        return apply(x, w, b, op);
    }
    relu_max_pool2x2(&conv2d(x, w, b, padding, stride, dilation)?)
}

/// [`conv2d`] through a candle-nn `Conv2d` (its weight, bias, padding, stride and dilation);
/// a grouped convolution takes the layer's own `forward`.
pub fn conv2d_layer(layer: &candle_nn::Conv2d, x: &Tensor) -> Result<Tensor> {
    let cfg = layer.config();
    if cfg.groups != 1 {
        return Ok(candle_core::Module::forward(layer, x)?);
    }
    let (w, b) = (layer.weight(), layer.bias());
    conv2d(x, w, b, cfg.padding, cfg.stride, cfg.dilation)
}

/// [`conv2d_relu_max_pool2x2`] through a candle-nn `Conv2d`; a grouped convolution takes
/// the layer's own `forward`, then [`relu_max_pool2x2`].
pub fn conv2d_relu_max_pool2x2_layer(layer: &candle_nn::Conv2d, x: &Tensor) -> Result<Tensor> {
    let cfg = layer.config();
    if cfg.groups != 1 {
        return relu_max_pool2x2(&candle_core::Module::forward(layer, x)?);
    }
    let (w, b) = (layer.weight(), layer.bias());
    conv2d_relu_max_pool2x2(x, w, b, cfg.padding, cfg.stride, cfg.dilation)
}

/// `op` on `(x, w)` or `(x, w, b)`.
fn apply(x: &Tensor, w: &Tensor, b: Option<&Tensor>, op: Conv) -> Result<Tensor> {
    Ok(match b {
        Some(b) => x.apply_op3(w, b, op)?,
        None => x.apply_op2(w, op)?,
    })
}

/// The convolution op: `(x, w)` or `(x, w, b)`, optionally followed by ReLU and 2x2 max
/// pooling.
struct Conv {
    padding: usize,
    stride: usize,
    dilation: usize,
    /// ReLU and 2x2 max pooling fused after the convolution.
    pool: Option<Codes>,
}

/// The sum of `v` in a fixed order that the compiler can vectorise: 16 running sums over
/// the 16 lanes, added pairwise at the end, then the tail. Not compiled for wider vectors:
/// its 16 chains of additions take as long at every width (each waits for its last sum).
fn sum(v: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut acc = [0f32; LANES];
    let chunks = v.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            acc[i] += acc[i + width];
        }
    }
    tail.iter().fold(acc[0], |s, x| s + x)
}

/// Scratch buffers of one worker.
struct Scratch {
    /// Columns of an image (`[rows, pixels]`), or their gradient.
    cols: Vec<f32>,
    /// The convolution's output of one image before pooling, or its gradient.
    conv: Vec<f32>,
}

impl Conv {
    /// The op for these operands, or `None` where candle's ops must do (off the CPU, other
    /// dtypes, shapes that do not fit, an output too small to pool).
    fn fused(
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        (padding, stride, dilation): (usize, usize, usize),
        pool: bool,
    ) -> Option<Self> {
        let operands = [Some(x), Some(w), b];
        let ok = x.device().is_cpu()
            && operands.iter().flatten().all(|t| t.dtype() == DType::F32)
            && b.is_none_or(|b| b.dims() == [w.dims().first().copied().unwrap_or(0)]);
        let g = Geometry::new(x.dims(), w.dims(), padding, stride, dilation).ok()?;
        if !ok || (pool && (g.ho < 2 || g.wo < 2)) {
            return None;
        }
        let tracked = operands.iter().flatten().any(|t| t.track_op());
        Some(Self {
            padding,
            stride,
            dilation,
            pool: pool.then(|| Codes::new(tracked)),
        })
    }

    fn geometry(&self, x: &[usize], w: &[usize]) -> candle_core::Result<Geometry> {
        Geometry::new(x, w, self.padding, self.stride, self.dilation)
            .map_err(candle_core::Error::msg)
    }

    /// How the work is shared: images among rayon's threads when there are several of
    /// both, else the gemm's own threads (for a single image).
    fn sharing(n: usize) -> (bool, Parallelism) {
        let threads = threads();
        let parallel = images_in_parallel(n);
        let par = if threads > 1 && !parallel {
            Parallelism::Rayon(threads)
        } else {
            Parallelism::None
        };
        (parallel, par)
    }

    /// The forward pass: per image, columns then `W · cols` into rows pre-filled with the
    /// bias; pooled when the op pools.
    fn forward(
        &self,
        x: (&CpuStorage, &Layout),
        w: (&CpuStorage, &Layout),
        b: Option<(&CpuStorage, &Layout)>,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = self.geometry(x.1.dims(), w.1.dims())?;
        let xd = row_major(x.0, x.1, "conv2d: input")?;
        let wd = row_major(w.0, w.1, "conv2d: kernel")?;
        let bias = match b {
            Some((bs, bl)) => Some(row_major(bs, bl, "conv2d: bias")?),
            None => None,
        };
        let (rows, px) = (g.rows(), g.pixels());
        let wm = Operand::rows(&wd, g.o, rows);
        let (parallel, par) = Self::sharing(g.n);
        let identity = g.identity_cols();
        let fill_bias = |y: &mut [f32]| {
            if let Some(bias) = &bias {
                for (row, b) in y.chunks_exact_mut(px).zip(bias.iter()) {
                    row.fill(*b);
                }
            }
        };
        // Columns of image `i` (the image itself for a 1x1 kernel), then `y (+)= W·cols`.
        let conv = |cols: &mut Vec<f32>, i: usize, y: &mut [f32]| {
            let image = &xd[i * g.image()..(i + 1) * g.image()];
            let cols: &[f32] = if identity {
                image
            } else {
                g.im2col(image, cols);
                cols
            };
            let cols = Operand::rows(cols, rows, px);
            gemm_into(y, Dst::Rows, wm, cols, bias.is_some(), par);
        };
        let scratch = || Scratch {
            cols: vec![0f32; if identity { 0 } else { rows * px }],
            conv: vec![0f32; if self.pool.is_some() { g.o * px } else { 0 }],
        };
        let Some(pool) = &self.pool else {
            // Rows pre-filled with the bias (written once, no zero fill first), else zeros.
            let mut out = match &bias {
                Some(bias) => {
                    let mut out = Vec::with_capacity(g.n * g.o * px);
                    for _ in 0..g.n {
                        for &b in bias.iter() {
                            out.extend(std::iter::repeat_n(b, px));
                        }
                    }
                    out
                }
                None => vec![0f32; g.n * g.o * px],
            };
            each_chunk(
                (&mut out, g.o * px),
                (&mut [] as &mut [u8], 0),
                parallel,
                scratch,
                |s, i, y, _| conv(&mut s.cols, i, y),
            );
            let shape = Shape::from((g.n, g.o, g.ho, g.wo));
            return Ok((CpuStorage::F32(out), shape));
        };
        let windows = g.o * (g.ho / 2) * (g.wo / 2);
        let mut out = vec![0f32; g.n * windows];
        let mut codes = pool.buffer(g.n * windows);
        let code_size = if pool.keep { windows } else { 0 };
        each_chunk(
            (&mut out, windows),
            (&mut codes, code_size),
            parallel,
            scratch,
            |s, i, out, codes| {
                fill_bias(&mut s.conv);
                conv(&mut s.cols, i, &mut s.conv);
                pool_planes(&s.conv, g.o, g.ho, g.wo, out, codes);
            },
        );
        pool.store(codes);
        let shape = Shape::from((g.n, g.o, g.ho / 2, g.wo / 2));
        Ok((CpuStorage::F32(out), shape))
    }

    /// The backward pass: the gradients of the tracked ones of `x`, `w` and `b`.
    fn backward(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = self.geometry(x.dims(), w.dims())?;
        let out_dims = match self.pool {
            Some(_) => [g.n, g.o, g.ho / 2, g.wo / 2],
            None => [g.n, g.o, g.ho, g.wo],
        };
        if grad.dims() != out_dims {
            candle_core::bail!(
                "conv2d: gradient of shape {:?} for an output of shape {out_dims:?}",
                grad.dims()
            )
        }
        let out_size = out_dims[1..].iter().product::<usize>();
        let codes = match &self.pool {
            Some(pool) => Some(pool.get("conv2d", g.n * out_size)?),
            None => None,
        };
        let (rows, px) = (g.rows(), g.pixels());
        let (parallel, par) = Self::sharing(g.n);
        let identity = g.identity_cols();
        let device = x.device();
        let grad = grad.to_dtype(DType::F32)?;
        let (want_x, want_w) = (x.track_op(), w.track_op());
        let want_b = b.is_some_and(Tensor::track_op);
        // Per group of GRAD_GROUP images: a partial kernel gradient ([rows, O], transposed:
        // measured a quarter faster as the gemm's destination), a partial bias gradient
        // ([O]), and the images' input gradients. The partials are added in group order.
        let groups = g.n.div_ceil(GRAD_GROUP);
        let part = g.o * rows + g.o;
        let mut partials = vec![0f32; if want_w || want_b { groups * part } else { 0 }];
        let mut gx = vec![0f32; if want_x { g.n * g.image() } else { 0 }];
        let x_size = if want_x { GRAD_GROUP * g.image() } else { 0 };
        with_data(&grad, "conv2d: gradient", |gd| {
            with_data(x, "conv2d: input", |xd| {
                with_data(w, "conv2d: kernel", |wd| {
                    let wt = Operand::rows(wd, g.o, rows).t();
                    let scratch = || Scratch {
                        cols: vec![0f32; if identity { 0 } else { rows * px }],
                        conv: vec![0f32; if codes.is_some() { g.o * px } else { 0 }],
                    };
                    let work = |s: &mut Scratch, gi: usize, p: &mut [f32], gx: &mut [f32]| {
                        let (pw, pb) = p.split_at_mut(p.len().saturating_sub(g.o));
                        let first = gi * GRAD_GROUP;
                        for i in first..((gi + 1) * GRAD_GROUP).min(g.n) {
                            let go = &gd[i * out_size..(i + 1) * out_size];
                            // The gradient of the convolution's output, [O, pixels].
                            let gc: &[f32] = match &codes {
                                Some(codes) => {
                                    let codes = &codes[i * out_size..(i + 1) * out_size];
                                    unpool_planes(codes, go, g.o, g.ho, g.wo, &mut s.conv);
                                    &s.conv
                                }
                                None => go,
                            };
                            let gm = Operand::rows(gc, g.o, px);
                            if want_w {
                                let image = &xd[i * g.image()..(i + 1) * g.image()];
                                let cols: &[f32] = if identity {
                                    image
                                } else {
                                    g.im2col(image, &mut s.cols);
                                    &s.cols
                                };
                                let ct = Operand::rows(cols, rows, px).t();
                                gemm_into(pw, Dst::Cols, gm, ct, i > first, par);
                            }
                            if want_b {
                                for (s, row) in pb.iter_mut().zip(gc.chunks_exact(px)) {
                                    *s += sum(row);
                                }
                            }
                            if want_x {
                                let j = i - first;
                                let gxi = &mut gx[j * g.image()..(j + 1) * g.image()];
                                if identity {
                                    gemm_into(gxi, Dst::Rows, wt, gm, false, par);
                                } else {
                                    gemm_into(&mut s.cols, Dst::Rows, wt, gm, false, par);
                                    g.col2im(&mut s.cols, gxi);
                                }
                            }
                        }
                    };
                    if want_w || want_b {
                        each_chunk(
                            (&mut partials, part),
                            (&mut gx, x_size),
                            parallel,
                            scratch,
                            work,
                        );
                    } else {
                        // Only the input's gradient: the groups by their input gradients.
                        each_chunk(
                            (&mut gx, x_size),
                            (&mut [] as &mut [f32], 0),
                            parallel,
                            scratch,
                            |s, gi, gx, _| work(s, gi, &mut [], gx),
                        );
                    }
                    Ok(())
                })
            })
        })?;
        let mut total = vec![0f32; if want_w || want_b { part } else { 0 }];
        for p in partials.chunks_exact(part) {
            total.iter_mut().zip(p).for_each(|(s, v)| *s += v);
        }
        let grad_w = if want_w {
            // [rows, O] to the kernel's [O, rows].
            let gw: Vec<f32> = (0..g.o)
                .flat_map(|o| total.iter().skip(o).step_by(g.o).take(rows).copied())
                .collect();
            Some(Tensor::from_vec(gw, w.shape(), device)?)
        } else {
            None
        };
        let grad_b = match b {
            Some(b) if want_b => {
                let gb = total.split_off(g.o * rows);
                Some(Tensor::from_vec(gb, b.shape(), device)?)
            }
            _ => None,
        };
        let grad_x = if want_x {
            Some(Tensor::from_vec(gx, x.shape(), device)?)
        } else {
            None
        };
        Ok((grad_x, grad_w, grad_b))
    }
}

impl CustomOp2 for Conv {
    fn name(&self) -> &'static str {
        "deeptrain-conv2d"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.forward((xs, xl), (ws, wl), None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (gx, gw, _) = self.backward(x, w, None, grad)?;
        Ok((gx, gw))
    }
}

impl CustomOp3 for Conv {
    fn name(&self) -> &'static str {
        "deeptrain-conv2d-bias"
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
        self.forward((xs, xl), (ws, wl), Some((bs, bl)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        self.backward(x, w, Some(b), grad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::matmul::testing::{bits, randn};
    use crate::simd::testing::assert_levels_agree;
    use candle_core::Var;

    /// max |a - b| / max(max |b|, 1e-3): the error relative to the reference's scale.
    fn rel_err(a: &Tensor, b: &Tensor) -> f32 {
        assert_eq!(a.dims(), b.dims());
        let max_abs = |t: &Tensor| {
            t.abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        max_abs(&a.sub(b).unwrap()) / max_abs(b).max(1e-3)
    }

    /// One case: `(n, c, h, w, o, k, padding, stride, dilation, bias)`.
    type Case = (
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        bool,
    );

    /// Forward and every gradient against candle's conv2d and its backward.
    fn check(case: Case, input_tracked: bool) {
        let (n, c, h, w, o, k, pad, stride, dil, with_bias) = case;
        let seed = (n * 1000 + c * 100 + h * 10 + k) as u64;
        let wv = Var::from_tensor(&randn(&[o, c, k, k], seed)).unwrap();
        let bv = Var::from_tensor(&randn(&[o], seed + 1)).unwrap();
        let x0 = randn(&[n, c, h, w], seed + 2);
        let xv = Var::from_tensor(&x0).unwrap();
        let x = if input_tracked {
            xv.as_tensor().clone()
        } else {
            x0.clone()
        };
        let b = with_bias.then(|| bv.as_tensor());
        let ours = conv2d(&x, &wv, b, pad, stride, dil).unwrap();
        let mut plain = x.conv2d(&wv, pad, stride, dil, 1).unwrap();
        if with_bias {
            plain = plain
                .broadcast_add(&bv.reshape((1, o, 1, 1)).unwrap())
                .unwrap();
        }
        assert!(rel_err(&ours, &plain) < 1e-4, "{case:?} forward");
        let probe = randn(plain.dims(), seed + 3);
        let loss = |y: &Tensor| y.mul(&probe).unwrap().sum_all().unwrap();
        let g1 = loss(&ours).backward().unwrap();
        let g2 = loss(&plain).backward().unwrap();
        let e = rel_err(g1.get(&wv).unwrap(), g2.get(&wv).unwrap());
        assert!(e < 1e-4, "{case:?} grad w: {e}");
        if with_bias {
            let e = rel_err(g1.get(&bv).unwrap(), g2.get(&bv).unwrap());
            assert!(e < 1e-4, "{case:?} grad b: {e}");
        } else {
            assert!(g1.get(&bv).is_none());
        }
        if input_tracked {
            let e = rel_err(g1.get(&xv).unwrap(), g2.get(&xv).unwrap());
            assert!(e < 1e-4, "{case:?} grad x: {e}");
        } else {
            // Nothing is computed for the data.
            assert!(g1.get(&x).is_none());
        }
    }

    #[test]
    fn matches_candles_conv2d_forward_and_backward() {
        let cases: [Case; 15] = [
            (1, 1, 5, 5, 1, 1, 0, 1, 1, true),
            (1, 1, 7, 6, 4, 3, 1, 1, 1, true),
            (3, 1, 9, 9, 5, 3, 0, 1, 1, true),
            (2, 3, 7, 9, 4, 3, 1, 1, 1, false),
            (4, 5, 11, 10, 6, 5, 2, 1, 1, true),
            (2, 4, 8, 7, 3, 5, 0, 1, 1, true),
            (3, 6, 5, 5, 7, 1, 0, 1, 1, false),
            (2, 3, 13, 11, 8, 3, 1, 2, 1, false),
            (2, 3, 12, 12, 4, 1, 0, 2, 1, true),
            (2, 2, 9, 10, 3, 3, 2, 1, 2, true),
            // More images than one group of the kernel gradient's sum.
            (19, 2, 6, 6, 3, 3, 1, 1, 1, true),
            // Kernels larger than the image: taps that read only padding.
            (2, 2, 1, 1, 3, 3, 1, 1, 1, true),
            (2, 1, 2, 3, 2, 5, 2, 1, 1, true),
            (3, 2, 1, 1, 3, 3, 1, 2, 1, false),
            (1, 16, 14, 14, 32, 3, 1, 1, 1, true),
        ];
        for case in cases {
            for input_tracked in [false, true] {
                check(case, input_tracked);
            }
        }
    }

    /// A strided (transposed) input is read through its layout.
    #[test]
    fn strided_input() {
        let x = randn(&[2, 3, 6, 5], 30).transpose(2, 3).unwrap();
        assert!(!x.is_contiguous());
        let w = randn(&[4, 3, 3, 3], 31);
        let b = randn(&[4], 32);
        let ours = conv2d(&x, &w, Some(&b), 1, 1, 1).unwrap();
        let plain = x
            .conv2d(&w, 1, 1, 1, 1)
            .unwrap()
            .broadcast_add(&b.reshape((1, 4, 1, 1)).unwrap())
            .unwrap();
        assert!(rel_err(&ours, &plain) < 1e-4);
    }

    /// The layer helper uses the layer's padding and bias.
    #[test]
    fn through_a_candle_nn_layer() {
        let cfg = candle_nn::Conv2dConfig {
            padding: 1,
            stride: 2,
            ..Default::default()
        };
        let layer = candle_nn::Conv2d::new(randn(&[4, 3, 3, 3], 40), Some(randn(&[4], 41)), cfg);
        let x = randn(&[2, 3, 9, 8], 42);
        let ours = conv2d_layer(&layer, &x).unwrap();
        let plain = candle_core::Module::forward(&layer, &x).unwrap();
        assert!(rel_err(&ours, &plain) < 1e-4);
    }

    /// Same inputs, same bits: forward and every gradient.
    #[test]
    fn deterministic() {
        let run = || {
            let w = Var::from_tensor(&randn(&[8, 4, 3, 3], 50)).unwrap();
            let b = Var::from_tensor(&randn(&[8], 51)).unwrap();
            let x = Var::from_tensor(&randn(&[20, 4, 12, 12], 52)).unwrap();
            let y = conv2d(&x, &w, Some(&b), 1, 1, 1).unwrap();
            let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
            [
                bits(&y),
                bits(g.get(&w).unwrap()),
                bits(g.get(&b).unwrap()),
                bits(g.get(&x).unwrap()),
            ]
        };
        assert_eq!(run(), run());
    }

    /// The convolution, alone and fused with the pooling, forward and every gradient, gives
    /// the same bits at every SIMD level the CPU has as compiled for the baseline (its
    /// col2im, its bias gradient's sum, the pooling), on one thread and shared by images.
    #[test]
    fn ops_are_bitwise_the_same_at_every_simd_level() {
        let cases: [Case; 4] = [
            (1, 3, 9, 9, 4, 3, 1, 1, 1, true),
            (3, 2, 11, 10, 5, 3, 1, 2, 1, true),
            (5, 3, 14, 14, 6, 3, 1, 1, 1, true),
            (2, 2, 8, 8, 3, 5, 2, 1, 2, true),
        ];
        for case in cases {
            let (n, c, h, w, o, k, pad, stride, dil, _) = case;
            for pooled in [false, true] {
                let run = || {
                    let wv = Var::from_tensor(&randn(&[o, c, k, k], 80)).unwrap();
                    let bv = Var::from_tensor(&randn(&[o], 81)).unwrap();
                    let xv = Var::from_tensor(&randn(&[n, c, h, w], 82)).unwrap();
                    let y = if pooled {
                        conv2d_relu_max_pool2x2(&xv, &wv, Some(&bv), pad, stride, dil)
                    } else {
                        conv2d(&xv, &wv, Some(&bv), pad, stride, dil)
                    };
                    let y = y.unwrap();
                    let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
                    let grads = [&wv, &bv, &xv].map(|v| bits(g.get(v).unwrap()));
                    (bits(&y), grads)
                };
                let what = format!("{case:?}, pooled: {pooled}");
                assert_levels_agree(&what, run, |a, b| a == b);
            }
        }
    }

    /// The fused convolution + ReLU + pooling gives the unfused ops' bits, forward and every
    /// gradient, and candle's values; with a bias and without, odd output sides, stride 2,
    /// the data as input (no gradient) and a tracked input.
    #[test]
    fn fused_conv_pool_matches_unfused_bitwise_and_candle() {
        let cases: [Case; 6] = [
            (3, 1, 8, 8, 4, 3, 1, 1, 1, true),
            (2, 3, 7, 9, 5, 3, 1, 1, 1, false),
            (5, 2, 9, 8, 3, 3, 0, 1, 1, true),
            (2, 3, 11, 11, 4, 3, 1, 2, 1, true),
            (1, 4, 6, 6, 2, 1, 0, 1, 1, true),
            (6, 2, 5, 5, 3, 5, 2, 1, 1, false),
        ];
        for case in cases {
            for input_tracked in [false, true] {
                let (n, c, h, w, o, k, pad, stride, dil, with_bias) = case;
                let seed = (n * 1000 + c * 100 + h * 10 + k) as u64 + 7;
                let wv = Var::from_tensor(&randn(&[o, c, k, k], seed)).unwrap();
                let bv = Var::from_tensor(&randn(&[o], seed + 1)).unwrap();
                let x0 = randn(&[n, c, h, w], seed + 2);
                let xv = Var::from_tensor(&x0).unwrap();
                let x = if input_tracked {
                    xv.as_tensor().clone()
                } else {
                    x0.clone()
                };
                let b = with_bias.then(|| bv.as_tensor());
                let fused = conv2d_relu_max_pool2x2(&x, &wv, b, pad, stride, dil).unwrap();
                let conv = conv2d(&x, &wv, b, pad, stride, dil).unwrap();
                let unfused = relu_max_pool2x2(&conv).unwrap();
                let mut plain = x.conv2d(&wv, pad, stride, dil, 1).unwrap();
                if with_bias {
                    plain = plain
                        .broadcast_add(&bv.reshape((1, o, 1, 1)).unwrap())
                        .unwrap();
                }
                let (_, _, ph, pw) = plain.dims4().unwrap();
                let plain = plain
                    .narrow(2, 0, ph / 2 * 2)
                    .unwrap()
                    .narrow(3, 0, pw / 2 * 2)
                    .unwrap()
                    .relu()
                    .unwrap()
                    .max_pool2d(2)
                    .unwrap();
                assert_eq!(bits(&fused), bits(&unfused), "{case:?} forward");
                assert!(rel_err(&fused, &plain) < 1e-4, "{case:?} forward");
                let probe = randn(plain.dims(), seed + 3);
                let loss = |y: &Tensor| y.mul(&probe).unwrap().sum_all().unwrap();
                let gf = loss(&fused).backward().unwrap();
                let gu = loss(&unfused).backward().unwrap();
                let gp = loss(&plain).backward().unwrap();
                let mut vars = vec![("w", wv.as_tensor())];
                if with_bias {
                    vars.push(("b", bv.as_tensor()));
                } else {
                    assert!(gf.get(&bv).is_none());
                }
                if input_tracked {
                    vars.push(("x", xv.as_tensor()));
                } else {
                    assert!(gf.get(&x).is_none());
                }
                for (name, t) in vars {
                    let (f, u, p) = (gf.get(t).unwrap(), gu.get(t).unwrap(), gp.get(t).unwrap());
                    assert_eq!(bits(f), bits(u), "{case:?} grad {name}");
                    let e = rel_err(f, p);
                    assert!(e < 1e-4, "{case:?} grad {name}: {e}");
                }
            }
        }
    }
}
