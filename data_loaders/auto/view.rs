//! Batch views and tensors: a planned batch as slices of the memory map (zero-copy), and
//! the single copy from those bytes into the batch's tensors. Sample shuffling within a
//! file shows up here as gathered rows instead of one contiguous run.

use std::sync::Arc;

use candle_core::{Device, Tensor};

use super::labels::Targets;
use super::plan::Segment;
use super::{AutoData, InputDType};
use crate::data_loaders::array::{extend_f32, ArrayData, DType};
use crate::data_loaders::LoaderState;
use crate::error::{Error, Result};
use crate::rng::RngStream;

/// Which samples of one file a batch takes.
#[derive(Debug, Clone)]
enum Rows {
    Range(usize, usize),
    Indices(Arc<Vec<u32>>, usize, usize),
}

/// One file's share of a batch.
#[derive(Debug, Clone)]
pub struct ViewPart<'a> {
    /// Set name of the file the samples come from (its set number in files mode, its
    /// file name in dataset mode).
    pub set: &'a str,
    /// That file's whole array; the part takes some of its samples.
    pub data: &'a ArrayData,
    file: usize,
    rows: Rows,
}

/// The samples of a batch as slices of the memory map (zero-copy), before any tensor
/// is made.
#[derive(Debug, Clone)]
pub struct BatchView<'a> {
    /// The batch's set name.
    pub name: String,
    /// One part per segment of the batch, in batch order.
    pub parts: Vec<ViewPart<'a>>,
}

impl<'a> BatchView<'a> {
    /// Samples in the batch, over all parts.
    pub fn len(&self) -> usize {
        self.parts
            .iter()
            .map(|p| match p.rows {
                Rows::Range(a, b) | Rows::Indices(_, a, b) => b - a,
            })
            .sum()
    }

    /// Whether the batch holds no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether every part is one contiguous run of a file (no sample shuffling).
    pub fn is_contiguous(&self) -> bool {
        self.parts.iter().all(|p| matches!(p.rows, Rows::Range(..)))
    }

    /// The batch's bytes, in order: one slice per contiguous part, or one per sample.
    /// Borrowed from the memory map (or the preloaded buffer): nothing is copied.
    pub fn chunks(&self) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        for p in &self.parts {
            push_chunks(p.data, &p.rows, &mut out);
        }
        out
    }
}

fn push_chunks<'a>(a: &'a ArrayData, rows: &Rows, out: &mut Vec<&'a [u8]>) {
    match rows {
        Rows::Range(s, e) => out.push(a.samples_raw(*s, *e)),
        Rows::Indices(perm, s, e) => out.extend(
            perm[*s..*e]
                .iter()
                .map(|&i| a.samples_raw(i as usize, i as usize + 1)),
        ),
    }
}

/// Copies byte chunks into one tensor of `T`: the only copy a batch costs.
fn copy_typed<T: candle_core::WithDType>(
    chunks: &[&[u8]],
    shape: Vec<usize>,
    device: &Device,
) -> Result<Tensor> {
    let bytes: usize = chunks.iter().map(|c| c.len()).sum();
    let size = std::mem::size_of::<T>();
    let n = bytes / size;
    if n * size != bytes {
        return Err(Error::Data(format!(
            "{bytes} bytes are not a whole number of {size}-byte elements"
        )));
    }
    let mut v: Vec<T> = Vec::with_capacity(n);
    let dst = v.as_mut_ptr().cast::<u8>();
    let mut at = 0;
    for c in chunks {
        // SAFETY: `v` has room for `bytes` bytes, the chunks add up to exactly `bytes`,
        // and a fresh allocation cannot overlap the source.
        unsafe { std::ptr::copy_nonoverlapping(c.as_ptr(), dst.add(at), c.len()) };
        at += c.len();
    }
    // SAFETY: all `n` elements were written above, and `T` is a plain number type
    // (u8, i32, i64, f16, f32, f64) for which every bit pattern is a valid value. Array
    // bytes are little-endian, as on every host candle supports.
    unsafe { v.set_len(n) };
    Ok(Tensor::from_vec(v, shape, device)?)
}

fn raw_tensor(
    dtype: DType,
    chunks: &[&[u8]],
    shape: Vec<usize>,
    device: &Device,
) -> Result<Tensor> {
    match dtype {
        DType::F32 => copy_typed::<f32>(chunks, shape, device),
        DType::F64 => copy_typed::<f64>(chunks, shape, device),
        DType::F16 => copy_typed::<half::f16>(chunks, shape, device),
        DType::U8 => copy_typed::<u8>(chunks, shape, device),
        DType::I32 => copy_typed::<i32>(chunks, shape, device),
        DType::I64 => copy_typed::<i64>(chunks, shape, device),
    }
}

fn f32_tensor(
    dtype: DType,
    chunks: &[&[u8]],
    shape: Vec<usize>,
    device: &Device,
) -> Result<Tensor> {
    if dtype == DType::F32 {
        return copy_typed::<f32>(chunks, shape, device);
    }
    let mut out = Vec::with_capacity(shape.iter().product());
    for c in chunks {
        extend_f32(dtype, c, &mut out);
    }
    Ok(Tensor::from_vec(out, shape, device)?)
}

impl AutoData {
    /// Permutation of file `file`'s samples under `seed` (cached).
    fn permutation(&self, seed: u64, file: usize) -> Arc<Vec<u32>> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = cache.perms.get(&(seed, file)) {
            return Arc::clone(p);
        }
        cache.perms.retain(|(s, _), _| *s == seed);
        let n = self.files[file].data.num_samples();
        let mut perm: Vec<u32> = (0..n as u32).collect();
        RngStream::with_stream(seed, file as u64).shuffle(&mut perm);
        let perm = Arc::new(perm);
        cache.perms.insert((seed, file), Arc::clone(&perm));
        perm
    }

    fn rows(&self, state: &LoaderState, seg: &Segment) -> Rows {
        if state.shuffle_samples {
            Rows::Indices(
                self.permutation(state.sample_seed, seg.file),
                seg.start,
                seg.end,
            )
        } else {
            Rows::Range(seg.start, seg.end)
        }
    }

    /// The samples of set `name` as slices of the memory map, without copying anything.
    pub fn view(&self, state: &LoaderState, name: &str) -> Result<BatchView<'_>> {
        let spec = self.resolve(state, name)?;
        let parts = spec
            .segments
            .iter()
            .map(|seg| ViewPart {
                set: self.files[seg.file].name.as_str(),
                data: &self.files[seg.file].data,
                file: seg.file,
                rows: self.rows(state, seg),
            })
            .collect();
        Ok(BatchView {
            name: spec.name,
            parts,
        })
    }

    /// The per-sample weights of a view (`[len]`, f32), where a weights file was given.
    pub fn weights_tensor(&self, view: &BatchView, device: &Device) -> Result<Option<Tensor>> {
        let Some(per_file) = &self.weights else {
            return Ok(None);
        };
        let mut w = Vec::with_capacity(view.len());
        for p in &view.parts {
            let file = &per_file[p.file];
            match &p.rows {
                Rows::Range(s, e) => w.extend_from_slice(&file[*s..*e]),
                Rows::Indices(perm, s, e) => {
                    w.extend(perm[*s..*e].iter().map(|&i| file[i as usize]))
                }
            }
        }
        let n = w.len();
        Ok(Some(Tensor::from_vec(w, n, device)?))
    }

    /// Inputs and labels of a view as tensors.
    pub fn tensors(&self, view: &BatchView, device: &Device) -> Result<(Tensor, Tensor)> {
        let n = view.len();
        let mut shape = vec![n];
        shape.extend_from_slice(&self.inferred.sample_shape);
        // A mapped file truncated under the run would SIGBUS on the read below: check
        // each part's file first (one stat per file of the batch).
        for p in &view.parts {
            p.data.check_mapped()?;
            if let Targets::Values(arrays) = &self.targets {
                arrays[p.file].check_mapped()?;
            }
        }
        let chunks = view.chunks();
        let x = match self.input_dtype {
            InputDType::Native => raw_tensor(self.inferred.dtype, &chunks, shape, device)?,
            InputDType::F32 => f32_tensor(self.inferred.dtype, &chunks, shape, device)?,
        };
        let y = match &self.targets {
            Targets::None => x.clone(),
            Targets::Classes(ids) => {
                let mut y = Vec::with_capacity(n);
                for p in &view.parts {
                    let ids = &ids[p.file];
                    match &p.rows {
                        Rows::Range(s, e) => y.extend_from_slice(&ids[*s..*e]),
                        Rows::Indices(perm, s, e) => {
                            y.extend(perm[*s..*e].iter().map(|&i| ids[i as usize]))
                        }
                    }
                }
                Tensor::from_vec(y, n, device)?
            }
            Targets::Values(arrays) => {
                let mut chunks = Vec::new();
                for p in &view.parts {
                    push_chunks(&arrays[p.file], &p.rows, &mut chunks);
                }
                let mut shape = vec![n];
                shape.extend_from_slice(arrays[0].sample_shape());
                f32_tensor(arrays[0].dtype, &chunks, shape, device)?
            }
        };
        Ok((x, y))
    }
}
