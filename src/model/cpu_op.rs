//! What the CPU custom ops (the dense layer, the convolution, the pooling) share: borrowing a
//! tensor's CPU storage in a backward pass (or failing with the tensor's name), its f32 data
//! in row-major order, and sharing the images of a batch among rayon's threads.

use std::borrow::Cow;

use candle_core::{CpuStorage, Layout, Tensor};
use rayon::prelude::*;

/// `f` on the CPU storage and layout of `t` (in a custom op's backward: candle hands tensors,
/// not storages), or an error naming `what` (e.g. `"dense: gradient"`) when `t` is elsewhere.
pub(super) fn with_storage<R>(
    t: &Tensor,
    what: &str,
    f: impl FnOnce(&CpuStorage, &Layout) -> candle_core::Result<R>,
) -> candle_core::Result<R> {
    let (storage, layout) = t.storage_and_layout();
    let candle_core::Storage::Cpu(storage) = &*storage else {
        candle_core::bail!("{what} is not on the CPU")
    };
    f(storage, layout)
}

/// Threads to share the work among: candle's own rule (`RAYON_NUM_THREADS`, else the cores),
/// so the convolution uses what `matmul` uses.
pub(super) fn threads() -> usize {
    candle_core::utils::get_num_threads()
}

/// The f32 data of a CPU tensor's storage in row-major order: borrowed when the layout is
/// contiguous, copied otherwise; an error naming `what` (e.g. `"conv2d: input"`) for another
/// dtype.
pub(super) fn row_major<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    what: &str,
) -> candle_core::Result<Cow<'a, [f32]>> {
    let CpuStorage::F32(all) = storage else {
        candle_core::bail!("{what} is not f32")
    };
    Ok(match layout.contiguous_offsets() {
        Some((start, end)) => Cow::Borrowed(&all[start..end]),
        None => Cow::Owned(gather(all, layout)),
    })
}

/// The elements of a strided layout in row-major order (candle keeps its own iterator
/// private).
fn gather(all: &[f32], layout: &Layout) -> Vec<f32> {
    let (dims, stride) = (layout.dims(), layout.stride());
    let n: usize = dims.iter().product();
    let mut out = Vec::with_capacity(n);
    let mut index = vec![0usize; dims.len()];
    let mut at = layout.start_offset();
    for _ in 0..n {
        out.push(all[at]);
        // Odometer: bump the last index, carrying into the earlier ones.
        for d in (0..dims.len()).rev() {
            index[d] += 1;
            at += stride[d];
            if index[d] < dims[d] {
                break;
            }
            at -= stride[d] * dims[d];
            index[d] = 0;
        }
    }
    out
}

/// [`row_major`] for a tensor (in a custom op's backward), handed to `f`.
pub(super) fn with_data<R>(
    t: &Tensor,
    what: &str,
    f: impl FnOnce(&[f32]) -> candle_core::Result<R>,
) -> candle_core::Result<R> {
    with_storage(t, what, |storage, layout| {
        f(&row_major(storage, layout, what)?)
    })
}

/// Whether a batch of `n` images is shared among rayon's threads (else the gemm's own threads
/// take a single image).
pub(super) fn images_in_parallel(n: usize) -> bool {
    threads() > 1 && n > 1
}

/// Runs `work(scratch, i, a_i, b_i)` for every chunk `i` of `a` (`a_size` long) and of `b`
/// (`b_size` long; empty chunks when `b_size` is 0): on rayon's threads with one `init()`
/// scratch per worker when `parallel`, else in order on this thread. Each chunk's result
/// depends on its own inputs alone, so the two give the same bits.
pub(super) fn each_chunk<A: Send, B: Send, S>(
    (a, a_size): (&mut [A], usize),
    (b, b_size): (&mut [B], usize),
    parallel: bool,
    init: impl Fn() -> S + Sync + Send,
    work: impl Fn(&mut S, usize, &mut [A], &mut [B]) + Sync + Send,
) {
    if a_size == 0 {
        return;
    }
    match (parallel, b_size) {
        (true, 0) => a
            .par_chunks_mut(a_size)
            .enumerate()
            .for_each_init(&init, |s, (i, a)| work(s, i, a, &mut [])),
        (true, _) => a
            .par_chunks_mut(a_size)
            .zip(b.par_chunks_mut(b_size))
            .enumerate()
            .for_each_init(&init, |s, (i, (a, b))| work(s, i, a, b)),
        (false, _) => {
            let mut s = init();
            let mut b = (b_size > 0).then(|| b.chunks_mut(b_size));
            for (i, a) in a.chunks_mut(a_size).enumerate() {
                let b = b.as_mut().and_then(Iterator::next).unwrap_or(&mut []);
                work(&mut s, i, a, b);
            }
        }
    }
}
