//! Matrix products on f32 slices for the CPU custom ops (the dense layer, the convolution):
//! a strided operand view and one checked call into `gemm`, shared so that the bounds
//! checks that keep the unsafe call in range are written once.

use gemm::Parallelism;

/// A row-major matrix operand of `rows x cols` at `data` with strides `(rs, cs)`.
#[derive(Clone, Copy)]
pub(super) struct Operand<'a> {
    /// The data, from the first element.
    pub data: &'a [f32],
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Row stride.
    pub rs: usize,
    /// Column stride.
    pub cs: usize,
}

impl<'a> Operand<'a> {
    /// A contiguous row-major `rows x cols` matrix.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transposed view (no copy).
    pub fn t(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    /// Element (r, c).
    pub fn at(&self, r: usize, c: usize) -> f32 {
        self.data[r * self.rs + c * self.cs]
    }

    /// The data as one row-major slice, when it is laid out that way.
    pub fn contiguous(&self) -> Option<&'a [f32]> {
        let n = self.rows * self.cols;
        let row_major = self.cs == 1 && (self.rs == self.cols || self.rows <= 1);
        (row_major && n <= self.data.len()).then(|| &self.data[..n])
    }

    /// A row-major copy.
    pub fn to_rows(self) -> Vec<f32> {
        match self.contiguous() {
            Some(s) => s.to_vec(),
            None => (0..self.rows)
                .flat_map(|r| (0..self.cols).map(move |c| (r, c)))
                .map(|(r, c)| self.at(r, c))
                .collect(),
        }
    }

    /// One past the last element read.
    pub fn span(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            0
        } else {
            (self.rows - 1) * self.rs + (self.cols - 1) * self.cs + 1
        }
    }
}

/// How a gemm's destination is laid out.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Dst {
    /// Row-major.
    Rows,
    /// Column-major: the transpose, row-major.
    Cols,
}

/// `dst (+)= a·b` into the contiguous `dst` of `a.rows x b.cols`, laid out as `layout`;
/// `accumulate` adds to what `dst` holds.
pub(super) fn gemm_into(
    dst: &mut [f32],
    layout: Dst,
    a: Operand,
    b: Operand,
    accumulate: bool,
    par: Parallelism,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(k, b.rows, "gemm: inner dimensions differ");
    assert_eq!(dst.len(), m * n, "gemm: destination size");
    assert!(a.span() <= a.data.len() && b.span() <= b.data.len());
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst.fill(0.0);
        }
        return;
    }
    let (dst_rs, dst_cs) = match layout {
        Dst::Rows => (n as isize, 1),
        Dst::Cols => (1, m as isize),
    };
    // SAFETY: dst is m x n contiguous (row-major or column-major); a and b are read
    // within the spans checked above; dst is a mutable borrow, so it aliases neither.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_cs,
            dst_rs,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

/// Below this many multiply-adds a product runs on the calling thread alone: waking the
/// other threads costs more than they save.
const SPLIT_MIN_MACS: usize = 1 << 20;

/// [`gemm_into`] a row-major `dst`, with more than one thread (candle's
/// `CANDLE_NUM_THREADS`) cut by the rows of `dst` into one single-threaded gemm per thread
/// on candle's barrier pool (the threads candle's element-wise ops already use): one
/// wake-up per product, where gemm's own rayon split synchronises at every cache block and
/// measured slower than one thread on the MNIST MLP. Each element is computed by one thread
/// in a fixed order, so results are bitwise reproducible for a given thread count.
pub(super) fn gemm_split_rows(dst: &mut [f32], a: Operand, b: Operand, accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let pool = candle_core::utils::barrier_pool();
    let parts = (pool.n_workers() + 1).min(m);
    if parts <= 1 || m * n * k < SPLIT_MIN_MACS {
        gemm_into(dst, Dst::Rows, a, b, accumulate, Parallelism::None);
        return;
    }
    assert_eq!(dst.len(), m * n, "gemm: destination size");
    let rows = m.div_ceil(parts);
    let dst_at = dst.as_mut_ptr() as usize;
    pool.execute(|part| {
        let r0 = part * rows;
        if r0 >= m {
            return;
        }
        let r1 = m.min(r0 + rows);
        let block = Operand {
            data: &a.data[r0 * a.rs..],
            rows: r1 - r0,
            ..a
        };
        // SAFETY: the parts write disjoint row ranges of dst, which outlives the call.
        let dst = unsafe {
            std::slice::from_raw_parts_mut((dst_at as *mut f32).add(r0 * n), (r1 - r0) * n)
        };
        gemm_into(dst, Dst::Rows, block, b, accumulate, Parallelism::None);
    });
}

/// Inputs for the ops' tests.
#[cfg(test)]
pub(super) mod testing {
    use candle_core::{Device, Tensor};

    /// A CPU tensor of `shape` with values uniform in [-1, 1) from the seeded stream `seed`.
    pub fn randn(shape: &[usize], seed: u64) -> Tensor {
        let mut rng = crate::rng::RngStream::with_stream(seed, 0);
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.uniform_f32() * 2.0 - 1.0).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    /// The bits of a tensor's values, in row-major order: for bitwise comparisons.
    pub fn bits(t: &Tensor) -> Vec<u32> {
        t.flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect()
    }
}
