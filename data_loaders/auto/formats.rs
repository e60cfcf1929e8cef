//! Formats: telling a file's format from its name, and reading a file of each format
//! (built in or registered) into arrays. The one place that knows file-name conventions
//! such as MNIST's `-idx3-ubyte` and its `labels` partner.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::builder::AutoDataBuilder;
use super::file_loader::LoadedFile;
use super::infer::file_name;
use super::labels::integer_column;
use crate::data_loaders::array::ArrayData;
use crate::data_loaders::csv_file::{read_csv, CsvOptions, LabelColumn};
use crate::data_loaders::idx::read_idx;
use crate::data_loaders::npy::read_npy;
use crate::data_loaders::safetensors_file::read_safetensors;
use crate::error::{Error, Result};

/// Formats AutoData reads itself, in the order that breaks ties between equal counts.
pub(super) const BUILTIN_FORMATS: [&str; 4] = ["npy", "safetensors", "idx", "csv"];

impl AutoDataBuilder {
    /// Format of a file name: a registered loader's extension, a built-in format, or None.
    pub(super) fn detect(&self, name: &str) -> Option<(String, String)> {
        let lower = name.to_ascii_lowercase();
        // Registered extensions first, longest match wins (`tar.gz` before `gz`).
        let mut custom: Vec<&String> = self.loaders.keys().collect();
        custom.sort_by_key(|e| std::cmp::Reverse(e.len()));
        for ext in custom {
            let suffix = format!(".{ext}");
            if lower.ends_with(&suffix) && lower.len() > suffix.len() {
                return Some((ext.clone(), name[..name.len() - suffix.len()].to_string()));
            }
        }
        let strip_gz = lower.strip_suffix(".gz").unwrap_or(&lower);
        if idx_marker(strip_gz).is_some() && strip_gz.ends_with("-ubyte") {
            return Some(("idx".into(), name[..strip_gz.len()].to_string()));
        }
        for (ext, fmt) in [
            (".npy", "npy"),
            (".safetensors", "safetensors"),
            (".csv", "csv"),
            (".csv.gz", "csv"),
        ] {
            if lower.ends_with(ext) && lower.len() > ext.len() {
                return Some((fmt.into(), name[..name.len() - ext.len()].to_string()));
            }
        }
        None
    }

    pub(super) fn is_known_format(&self, format: &str) -> bool {
        BUILTIN_FORMATS.contains(&format) || self.loaders.contains_key(format)
    }

    pub(super) fn load_file(
        &self,
        format: &str,
        path: &Path,
        in_file_labels: bool,
        listing: &[String],
        cache_dir: &Path,
    ) -> Result<LoadedFile> {
        if let Some(loader) = self.loaders.get(format) {
            let mut f = loader.load(path)?;
            if !in_file_labels {
                f.labels = None;
            }
            return Ok(f);
        }
        match format {
            "npy" => Ok(LoadedFile {
                data: read_npy(path)?,
                labels: None,
            }),
            "safetensors" => {
                let mut tensors = read_safetensors(path)?;
                let data = match tensors.remove(&self.data_key) {
                    Some(d) => d,
                    None if tensors.len() == 1 => tensors
                        .pop_first()
                        .map(|(_, t)| t)
                        .ok_or_else(|| Error::Data(format!("{}: no tensors", path.display())))?,
                    None => {
                        let keys: Vec<&String> = tensors.keys().collect();
                        return Err(Error::Data(format!(
                            "{}: no data tensor {:?} (tensors: {keys:?}); set data_key",
                            path.display(),
                            self.data_key
                        )));
                    }
                };
                let labels = if in_file_labels {
                    tensors.remove(&self.label_key)
                } else {
                    None
                };
                Ok(LoadedFile { data, labels })
            }
            "csv" => {
                let mut opts = self.csv.clone();
                if !in_file_labels {
                    opts.label_column = LabelColumn::None;
                }
                let (data, labels) = read_csv(path, opts)?;
                Ok(LoadedFile { data, labels })
            }
            "idx" => {
                let data = read_idx(path, cache_dir)?;
                let labels = if in_file_labels {
                    match idx_label_partner(&file_name(path), listing) {
                        Some(partner) => {
                            let p = path.with_file_name(partner);
                            Some(read_idx(&p, cache_dir)?)
                        }
                        None => None,
                    }
                } else {
                    None
                };
                Ok(LoadedFile { data, labels })
            }
            other => Err(unknown_extension(path, other)),
        }
    }

    pub(super) fn read_labels_file(&self, path: &Path, cache_dir: &Path) -> Result<ArrayData> {
        let name = file_name(path);
        let format = self
            .detect(&name)
            .map(|(f, _)| f)
            .ok_or_else(|| unknown_extension(path, &name))?;
        if let Some(loader) = self.loaders.get(&format) {
            let f = loader.load(path)?;
            return Ok(f.labels.unwrap_or(f.data));
        }
        Ok(match format.as_str() {
            "npy" => read_npy(path)?,
            "idx" => read_idx(path, cache_dir)?,
            "csv" => {
                let opts = CsvOptions {
                    label_column: LabelColumn::None,
                    ..self.csv.clone()
                };
                integer_column(read_csv(path, opts)?.0)
            }
            "safetensors" => {
                let mut t = read_safetensors(path)?;
                match t.remove(&self.label_key) {
                    Some(a) => a,
                    None if t.len() == 1 => t
                        .pop_first()
                        .map(|(_, a)| a)
                        .ok_or_else(|| Error::Data(format!("{}: no tensors", path.display())))?,
                    None => {
                        return Err(Error::Data(format!(
                            "{}: no labels tensor {:?}",
                            path.display(),
                            self.label_key
                        )))
                    }
                }
            }
            other => return Err(unknown_extension(path, other)),
        })
    }
}

pub(super) fn extension_of(name: &str) -> String {
    match name.rsplit_once('.') {
        Some((_, ext)) if !ext.is_empty() => format!(".{ext}"),
        _ => "(no extension)".into(),
    }
}

pub(super) fn unknown_extension(path: &Path, name: &str) -> Error {
    Error::Data(format!(
        "{}: no loader for {} files (built in: .npy, .safetensors, .csv, idx); register one with AutoDataBuilder::loader",
        path.display(),
        extension_of(name)
    ))
}

/// Where `-idxN` (or `.idxN`, as some mirrors name it) is in a lowercase idx file name:
/// (index of the separator, index after the digits).
fn idx_marker(lower: &str) -> Option<(usize, usize)> {
    lower.match_indices("idx").find_map(|(at, _)| {
        let sep = at.checked_sub(1)?;
        if !matches!(lower.as_bytes()[sep], b'-' | b'.') {
            return None;
        }
        let digits = lower[at + 3..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        (digits > 0).then_some((sep, at + 3 + digits))
    })
}

/// `train-images-idx3-ubyte.gz` -> `train-labels-idx1-ubyte.gz` if present.
fn idx_label_partner(name: &str, listing: &[String]) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    let (sep, digit_end) = idx_marker(&lower)?;
    let prefix = lower[..sep].replace("images", "labels");
    let want = format!(
        "{prefix}{}idx1{}",
        &lower[sep..sep + 1],
        &lower[digit_end..]
    );
    let want_plain = want.strip_suffix(".gz").unwrap_or(&want).to_string();
    listing
        .iter()
        .find(|n| {
            let l = n.to_ascii_lowercase();
            l != lower && (l == want || l == want_plain || l == format!("{want_plain}.gz"))
        })
        .cloned()
}

/// `TMP/deeptrain-cache/<hash of the directory>`, so equal file names from different
/// directories (MNIST and Fashion-MNIST) never share a cache entry.
pub(super) fn default_cache_dir(dir: &Path) -> PathBuf {
    let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let digest = Sha256::digest(canonical.to_string_lossy().as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    std::env::temp_dir().join("deeptrain-cache").join(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idx_images_pair_with_their_labels() {
        let listing: Vec<String> = [
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte.gz",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            idx_label_partner("t10k-images-idx3-ubyte.gz", &listing).as_deref(),
            Some("t10k-labels-idx1-ubyte.gz")
        );
        // A plain images file may pair with a gzipped labels file.
        assert_eq!(
            idx_label_partner("train-images-idx3-ubyte", &listing).as_deref(),
            Some("train-labels-idx1-ubyte.gz")
        );
        assert_eq!(idx_label_partner("other-idx3-ubyte", &listing), None);
        let dotted = vec!["train-labels.idx1-ubyte".to_string()];
        assert_eq!(
            idx_label_partner("train-images.idx3-ubyte", &dotted).as_deref(),
            Some("train-labels.idx1-ubyte")
        );
        assert_eq!(idx_marker("a-idx-ubyte"), None);
        assert_eq!(idx_marker("train-images.idx3-ubyte"), Some((12, 17)));
    }
}
