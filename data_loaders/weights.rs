//! Per-sample weights: what a weights file may hold (one number a sample, of any numeric
//! type, read as f32) and the checks every source of weights shares, with one-line errors
//! naming the file. The loss and the metrics weigh each sample by its weight; batches
//! carry them in [`Batch::weights`](super::Batch::weights).

use std::path::Path;

use super::array::{fmt_shape, ArrayData};
use super::csv_file::{read_csv, CsvOptions, LabelColumn};
use super::npy::read_npy;
use super::safetensors_file::read_safetensors;
use crate::error::{Error, Result};

/// Refuses a weight that is negative, NaN or infinite, naming `source` (a file) and the
/// sample's index.
pub fn check_weights(source: &str, weights: &[f32]) -> Result<()> {
    match weights.iter().position(|w| !w.is_finite() || *w < 0.0) {
        Some(i) => {
            let w = weights[i];
            let what = if w.is_nan() {
                "is NaN"
            } else if w.is_infinite() {
                "is infinite"
            } else {
                "is negative"
            };
            Err(Error::Data(format!(
                "{source}: the weight of sample {i} ({w}) {what}: weights must be finite \
                 numbers >= 0"
            )))
        }
        None => Ok(()),
    }
}

/// Refuses `weights` weights for `samples` samples, naming `source` and both counts.
pub fn check_count(source: &str, weights: usize, samples: usize) -> Result<()> {
    if weights == samples {
        return Ok(());
    }
    Err(Error::Data(format!(
        "{source}: {weights} weights but the data holds {samples} samples: give one weight \
         per sample"
    )))
}

/// The weights a file holds: one value per sample (shape `(n,)` or `(n, 1)`), of any
/// numeric type, as f32; checked with [`check_weights`].
pub fn weights_of(array: &ArrayData) -> Result<Vec<f32>> {
    let source = array.path.display().to_string();
    if array.sample_len() != 1 {
        return Err(Error::Data(format!(
            "{source}: weights of shape {}: give one weight per sample, shape (n,) or (n, 1)",
            fmt_shape(&array.shape)
        )));
    }
    let mut out = Vec::new();
    array.range_f32(0, array.num_samples(), &mut out);
    check_weights(&source, &out)?;
    Ok(out)
}

/// The weights of a file read on its own (a source read into memory): `.npy`, `.csv` /
/// `.csv.gz` (one column, or one value a row) or `.safetensors` (its one tensor); see
/// [`weights_of`].
pub fn read_weights_file(path: &Path) -> Result<Vec<f32>> {
    let name = path.display().to_string();
    let lower = name.to_ascii_lowercase();
    let array = if lower.ends_with(".npy") {
        read_npy(path)?
    } else if lower.ends_with(".csv") || lower.ends_with(".csv.gz") {
        let opts = CsvOptions {
            label_column: LabelColumn::None,
            ..CsvOptions::default()
        };
        read_csv(path, opts)?.0
    } else if lower.ends_with(".safetensors") {
        let mut tensors = read_safetensors(path)?;
        if tensors.len() != 1 {
            return Err(Error::Data(format!(
                "{name}: {} tensors; a weights file holds one",
                tensors.len()
            )));
        }
        match tensors.pop_first() {
            Some((_, a)) => a,
            None => return Err(Error::Data(format!("{name}: no tensors"))),
        }
    } else {
        return Err(Error::Data(format!(
            "{name}: not a weights file of a known format (.npy, .csv, .csv.gz, .safetensors)"
        )));
    };
    weights_of(&array)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_weights_are_named_by_file_and_index() {
        check_weights("w.npy", &[0.0, 1.5, 3.0]).unwrap();
        let e = check_weights("w.npy", &[1.0, -0.5])
            .unwrap_err()
            .to_string();
        assert!(e.contains("w.npy") && e.contains("sample 1") && e.contains("negative"));
        let e = check_weights("w.npy", &[f32::NAN]).unwrap_err().to_string();
        assert!(e.contains("sample 0") && e.contains("NaN"), "{e}");
        let e = check_count("w.npy", 3, 4).unwrap_err().to_string();
        assert!(
            e.contains("w.npy: 3 weights") && e.contains("4 samples"),
            "{e}"
        );
        assert!(!e.contains('\n'));
    }
}
