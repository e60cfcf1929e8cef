//! Labels: where they come from, whether they are class ids or values, and how one
//! labels array is cut to match the data files. Kept apart from format reading because
//! the same rules apply whatever format the labels were read from.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use super::file_loader::LoadedFile;
use super::infer::file_name;
use crate::data_loaders::array::{fmt_shape, ArrayData, Bytes, DType, FormatError};
use crate::error::{Error, Result};

/// Where labels come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelSource {
    /// A labels file beside the data, else labels inside the data files, else none.
    Auto,
    /// No labels: `y` is `x` (autoencoding).
    None,
    /// One labels file covering every sample, in set order.
    Path(PathBuf),
}

/// How labels are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelMode {
    /// Integer labels with one value per sample are class ids, anything else values.
    Auto,
    /// Class ids (floats holding exact integers accepted); `None`: max + 1 classes.
    Classes(Option<usize>),
    /// Regression targets, as f32 with the labels' per-sample shape.
    Values,
}

/// What was inferred about the labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabelInfo {
    /// `"labels.npy"`, `"in file (safetensors key y)"`, `"none"`, ...
    pub source: String,
    /// `"classes"`, `"values"` or `"none"`.
    pub kind: String,
    /// Element type of the labels as stored; `None` without labels.
    pub dtype: Option<DType>,
    /// Shape of one sample's label (`[]` for a class id).
    pub shape: Vec<usize>,
    /// Number of classes (given, else the largest label + 1) for class ids; `None` otherwise.
    pub num_classes: Option<usize>,
    /// Samples per class.
    pub class_counts: Option<Vec<usize>>,
}

/// Cuts one labels array (all samples in set order) into one array per file.
pub(super) fn split_labels(
    all: &ArrayData,
    files: &[(String, PathBuf, LoadedFile)],
) -> Result<Vec<ArrayData>> {
    let counts: Vec<usize> = files.iter().map(|(_, _, f)| f.data.num_samples()).collect();
    let total: usize = counts.iter().sum();
    let mut all = all.clone();
    if all.num_samples() != total {
        // `(n_sets, samples_per_set, ...)`, as DeepTrain saves labels of equal-size sets.
        let per = counts[0];
        let reshaped = all.shape.len() >= 2
            && all.shape[0] == files.len()
            && all.shape[1] == per
            && counts.iter().all(|c| *c == per);
        if !reshaped {
            let per_file: Vec<String> = files
                .iter()
                .map(|(_, p, f)| format!("{} {}", file_name(p), f.data.num_samples()))
                .collect();
            return Err(Error::Data(format!(
                "{}: {} labels (shape {}) but the {} data files hold {} samples ({})",
                all.path.display(),
                all.num_samples(),
                fmt_shape(&all.shape),
                files.len(),
                total,
                per_file.join(", ")
            )));
        }
        let mut shape = vec![total];
        shape.extend_from_slice(&all.shape[2..]);
        all = ArrayData::new(all.path.clone(), all.dtype, shape, all.bytes.clone())?;
    }
    let mut out = Vec::with_capacity(files.len());
    let mut at = 0;
    for c in counts {
        out.push(slice_samples(&all, at, at + c)?);
        at += c;
    }
    Ok(out)
}

/// Samples `start..end` of an array, sharing the map when there is one.
fn slice_samples(a: &ArrayData, start: usize, end: usize) -> Result<ArrayData, FormatError> {
    let sb = a.sample_bytes();
    let mut shape = a.shape.clone();
    shape[0] = end - start;
    let bytes = match &a.bytes {
        Bytes::Mapped { map, offset, .. } => Bytes::Mapped {
            map: Arc::clone(map),
            offset: offset + start * sb,
            len: (end - start) * sb,
        },
        Bytes::Owned(_) => Bytes::Owned(Arc::new(a.samples_raw(start, end).to_vec())),
    };
    ArrayData::new(a.path.clone(), a.dtype, shape, bytes)
}

/// A one-column f32 array whose values are all integers becomes i64 `(n,)`, so class ids
/// in a labels CSV are read as class ids (as CSV label columns are).
pub(super) fn integer_column(a: ArrayData) -> ArrayData {
    if a.dtype != DType::F32 || a.sample_len() != 1 {
        return a;
    }
    let mut v = Vec::with_capacity(a.num_samples());
    a.range_f32(0, a.num_samples(), &mut v);
    if !v.iter().all(|x| x.fract() == 0.0 && x.abs() < 16_777_216.0) {
        return a;
    }
    let bytes: Vec<u8> = v.iter().flat_map(|x| (*x as i64).to_le_bytes()).collect();
    ArrayData::new(
        a.path.clone(),
        DType::I64,
        vec![v.len()],
        Bytes::Owned(Arc::new(bytes)),
    )
    .unwrap_or(a)
}

/// Labels in the form batches need.
pub(super) enum Targets {
    None,
    /// Class ids per file.
    Classes(Vec<Arc<Vec<u32>>>),
    /// f32 targets per file (converted while batching).
    Values(Vec<ArrayData>),
}

/// More inferred classes than this is taken as a sign the labels are not class ids.
const MAX_INFERRED_CLASSES: usize = 1 << 20;

pub(super) fn make_targets(
    arrays: &[ArrayData],
    mode: LabelMode,
    source: String,
) -> Result<(Targets, LabelInfo)> {
    if arrays.is_empty() {
        if let LabelMode::Classes(_) = mode {
            return Err(Error::Data(
                "class labels were asked for but no labels were found".into(),
            ));
        }
        return Ok((
            Targets::None,
            LabelInfo {
                source,
                kind: "none".into(),
                dtype: None,
                shape: Vec::new(),
                num_classes: None,
                class_counts: None,
            },
        ));
    }
    let first = &arrays[0];
    for a in &arrays[1..] {
        if a.sample_shape() != first.sample_shape() {
            return Err(Error::Data(format!(
                "{}: labels of shape {} per sample, but {} has {}",
                a.path.display(),
                fmt_shape(a.sample_shape()),
                first.path.display(),
                fmt_shape(first.sample_shape())
            )));
        }
    }
    let classes = match mode {
        LabelMode::Classes(n) => Some(n),
        LabelMode::Values => None,
        LabelMode::Auto => {
            (arrays.iter().all(|a| a.dtype.is_integer()) && first.sample_len() == 1).then_some(None)
        }
    };
    let Some(num_classes) = classes else {
        return Ok((
            Targets::Values(arrays.to_vec()),
            LabelInfo {
                source,
                kind: "values".into(),
                dtype: Some(first.dtype),
                shape: first.sample_shape().to_vec(),
                num_classes: None,
                class_counts: None,
            },
        ));
    };
    let ids: Vec<Vec<u32>> = arrays
        .iter()
        .map(|a| a.to_u32_labels())
        .collect::<Result<_, _>>()?;
    let max = ids.iter().flatten().copied().max().unwrap_or(0) as usize;
    if num_classes.is_none() && max >= MAX_INFERRED_CLASSES {
        return Err(Error::Data(format!(
            "{}: integer labels up to {max} would mean {} classes; if they are regression targets use .regression(), else give num_classes",
            first.path.display(),
            max + 1
        )));
    }
    let n = num_classes.unwrap_or(max + 1);
    for (a, v) in arrays.iter().zip(&ids) {
        if let Some((i, l)) = v.iter().enumerate().find(|(_, l)| **l as usize >= n) {
            return Err(Error::Data(format!(
                "{}: label {l} of sample {i} is not below the class count {n}",
                a.path.display()
            )));
        }
    }
    let mut counts = vec![0usize; n];
    for l in ids.iter().flatten() {
        counts[*l as usize] += 1;
    }
    Ok((
        Targets::Classes(ids.into_iter().map(Arc::new).collect()),
        LabelInfo {
            source,
            kind: "classes".into(),
            dtype: Some(first.dtype),
            shape: Vec::new(),
            num_classes: Some(n),
            class_counts: Some(counts),
        },
    ))
}
