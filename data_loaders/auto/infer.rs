//! Inference: which files of a directory hold the data, in which mode (numbered set
//! files or one file cut into sets), and what was ignored and why. Everything here is
//! decided from file names and headers before any batch is read, so `deeptrain data`
//! can show the decisions and a mistake surfaces at build time, not mid-epoch.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::builder::AutoDataBuilder;
use super::file_loader::LoadedFile;
use super::formats::{extension_of, unknown_extension, BUILTIN_FORMATS};
use super::labels::{LabelInfo, LabelSource};
use crate::data_loaders::array::{fmt_shape, DType};
use crate::error::{Error, Result};

/// Files mode (one set per numbered file) or dataset mode (one file cut into sets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// One set per file of a numbered family (`batch_0.npy`, `batch_1.npy`, ...); the set
    /// numbers are the set names.
    Files,
    /// One file whose first axis is cut into sets of `batch_size` samples, named `"0"`,
    /// `"1"`, ....
    Dataset,
}

/// One data file as inferred.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetInfo {
    /// Set name: the file's set number (files mode) or its file name (dataset mode).
    pub name: String,
    /// Path of the data file.
    pub file: PathBuf,
    /// Samples in the file (length of its first axis).
    pub samples: usize,
}

/// A file of the directory that is not used, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ignored {
    /// Path of the file.
    pub file: PathBuf,
    /// Why it is not used, e.g. `"set number not selected"`, `"no loader for .txt"`.
    pub reason: String,
}

/// Everything AutoData inferred; printed by `deeptrain data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inferred {
    /// The directory or file the builder was made from (`from_dir` / `from_file`).
    pub source: PathBuf,
    /// `"npy"`, `"safetensors"`, `"csv"`, `"idx"` or a registered extension (lowercase,
    /// no dot).
    pub format: String,
    /// Files mode or dataset mode.
    pub mode: Mode,
    /// Base name the set files share (files mode), e.g. `"batch_"`; empty in dataset mode.
    pub base_name: String,
    /// The data files used, in set order (files mode: ascending set number).
    pub sets: Vec<SetInfo>,
    /// Files of the directory that are not used, sorted by path; files read as labels
    /// are not listed.
    pub ignored: Vec<Ignored>,
    /// Samples over all sets.
    pub num_samples: usize,
    /// Shape of one sample (the data's shape without the first axis).
    pub sample_shape: Vec<usize>,
    /// Element type stored in the files (batches get f32 unless [`InputDType::Native`](super::InputDType::Native)).
    pub dtype: DType,
    /// What was inferred about the labels.
    pub labels: LabelInfo,
    /// Sets held in RAM.
    pub preloaded: Vec<String>,
    /// The preprocessor's [`name`](crate::data_loaders::Preprocessor::name), if there is one.
    pub preprocessor: Option<String>,
}

impl AutoDataBuilder {
    /// Picks the format, the mode and the data files (with their set names).
    pub(super) fn choose_files(&self, dir: &Path, listing: &[String]) -> Result<Choice> {
        if let Some(f) = &self.format {
            if !self.is_known_format(f) {
                return Err(Error::config(
                    "format",
                    format!(
                        "{f:?} is not a supported format ({}) and no loader is registered for it",
                        BUILTIN_FORMATS.join(", ")
                    ),
                ));
            }
        }
        let explicit = if self.single_file {
            Some(self.source.clone())
        } else {
            self.file.as_ref().map(|f| {
                let p = Path::new(f);
                if p.is_absolute() || p.exists() && !dir.join(p).exists() {
                    p.to_path_buf()
                } else {
                    dir.join(p)
                }
            })
        };
        if let Some(path) = explicit {
            let name = file_name(&path);
            let format = match (&self.format, self.detect(&name)) {
                (Some(f), _) => f.clone(),
                (None, Some((f, _))) => f,
                (None, None) => return Err(unknown_extension(&path, &name)),
            };
            if !path.is_file() {
                return Err(Error::Data(format!("{}: no such file", path.display())));
            }
            let ignored = listing
                .iter()
                .filter(|n| **n != name)
                .map(|n| Ignored {
                    file: dir.join(n),
                    reason: "not the chosen data file".into(),
                })
                .collect();
            return Ok(Choice {
                format,
                mode: Mode::Dataset,
                base_name: String::new(),
                files: vec![(name, path)],
                family: Vec::new(),
                ignored,
            });
        }

        if listing.is_empty() {
            return Err(Error::Data(format!(
                "{}: the directory is empty; expected data files (.npy, .safetensors, .csv, idx)",
                dir.display()
            )));
        }
        // Candidates: files of a known format that are not label files.
        let mut by_format: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        let mut unknown: Vec<&String> = Vec::new();
        let mut ignored = Vec::new();
        let labels_path = match &self.labels {
            LabelSource::Path(p) => std::fs::canonicalize(p).ok(),
            _ => None,
        };
        let weights_path = self
            .weights
            .as_ref()
            .and_then(|p| std::fs::canonicalize(p).ok());
        for name in listing {
            let canonical = || std::fs::canonicalize(dir.join(name)).ok();
            if labels_path.is_some() && canonical() == labels_path {
                continue;
            }
            if weights_path.is_some() && canonical() == weights_path {
                continue;
            }
            match self.detect(name) {
                Some((format, stem)) => {
                    let lower = stem.to_ascii_lowercase();
                    if lower.starts_with("labels") || (format == "idx" && lower.contains("labels"))
                    {
                        continue;
                    }
                    by_format
                        .entry(format)
                        .or_default()
                        .push((name.clone(), stem));
                }
                None => unknown.push(name),
            }
        }
        let format = match &self.format {
            Some(f) => f.clone(),
            None => {
                // Most files wins; ties go to registered loaders, then the built-in order.
                let rank = |f: &str| -> usize {
                    if self.loaders.contains_key(f) {
                        0
                    } else {
                        1 + BUILTIN_FORMATS.iter().position(|b| *b == f).unwrap_or(9)
                    }
                };
                match by_format
                    .iter()
                    .max_by(|a, b| a.1.len().cmp(&b.1.len()).then(rank(b.0).cmp(&rank(a.0))))
                {
                    Some((f, _)) => f.clone(),
                    None => {
                        let mut exts: BTreeMap<String, usize> = BTreeMap::new();
                        for n in &unknown {
                            *exts.entry(extension_of(n)).or_default() += 1;
                        }
                        let exts: Vec<String> =
                            exts.iter().map(|(e, c)| format!("{c} x {e}")).collect();
                        return Err(Error::Data(format!(
                            "{}: no data files of a supported format (.npy, .safetensors, .csv, idx) and no loader registered for the extensions found ({}); register one with AutoDataBuilder::loader",
                            dir.display(),
                            exts.join(", ")
                        )));
                    }
                }
            }
        };
        let candidates = by_format.remove(&format).unwrap_or_default();
        for (other, files) in &by_format {
            for (name, _) in files {
                ignored.push(Ignored {
                    file: dir.join(name),
                    reason: format!("{other} file; {format} is the most common format"),
                });
            }
        }
        for name in unknown {
            ignored.push(Ignored {
                file: dir.join(name),
                reason: format!("no loader for {}", extension_of(name)),
            });
        }
        if candidates.is_empty() {
            return Err(Error::Data(format!(
                "{}: no {format} data files",
                dir.display()
            )));
        }

        // Families: files sharing a base name, with a set number.
        let mut families: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
        for (name, stem) in &candidates {
            if let (base, Some(num)) = split_number(stem) {
                families
                    .entry(base.to_string())
                    .or_default()
                    .push((num, name.clone()));
            }
        }
        let family = match &self.base_name {
            Some(base) => Some(base.clone()),
            None => families
                .iter()
                .max_by(|a, b| a.1.len().cmp(&b.1.len()).then(b.0.cmp(a.0)))
                .filter(|(_, f)| f.len() >= 2 || candidates.len() == 1 && self.set_nums.is_some())
                .map(|(b, _)| b.clone()),
        };
        if let Some(base) = family {
            let mut members = families.remove(&base).ok_or_else(|| {
                Error::Data(format!(
                    "{}: no {format} files named {base:?} followed by a set number",
                    dir.display()
                ))
            })?;
            members.sort();
            for pair in members.windows(2) {
                if pair[0].0 == pair[1].0 {
                    return Err(Error::Data(format!(
                        "{}: {} and {} both have set number {}",
                        dir.display(),
                        pair[0].1,
                        pair[1].1,
                        pair[0].0
                    )));
                }
            }
            if let Some(wanted) = &self.set_nums {
                for n in wanted {
                    if !members.iter().any(|(m, _)| m == n) {
                        let have: Vec<String> =
                            members.iter().map(|(m, _)| m.to_string()).collect();
                        return Err(Error::Data(format!(
                            "{}: no set number {n} among {base}* files (have {})",
                            dir.display(),
                            have.join(", ")
                        )));
                    }
                }
            }
            let mut files = Vec::new();
            let family = if self.set_nums.is_some() {
                members
                    .iter()
                    .map(|(num, name)| (num.to_string(), dir.join(name)))
                    .collect()
            } else {
                Vec::new()
            };
            for (num, name) in &members {
                let keep = self.set_nums.as_ref().is_none_or(|w| w.contains(num));
                if keep {
                    files.push((num.to_string(), dir.join(name)));
                } else {
                    ignored.push(Ignored {
                        file: dir.join(name),
                        reason: "set number not selected".into(),
                    });
                }
            }
            for (name, _) in &candidates {
                if !members.iter().any(|(_, m)| m == name) {
                    ignored.push(Ignored {
                        file: dir.join(name),
                        reason: format!("does not share the base name {base:?}"),
                    });
                }
            }
            ignored.sort_by(|a, b| a.file.cmp(&b.file));
            return Ok(Choice {
                format,
                mode: Mode::Files,
                base_name: base,
                files,
                family,
                ignored,
            });
        }
        // Dataset mode: one data file (or the one named like a training split).
        let pick = if candidates.len() == 1 {
            Some(candidates[0].0.clone())
        } else {
            let train: Vec<&(String, String)> = candidates
                .iter()
                .filter(|(n, _)| n.to_ascii_lowercase().contains("train"))
                .collect();
            (train.len() == 1).then(|| train[0].0.clone())
        };
        let Some(pick) = pick else {
            let names: Vec<&str> = candidates.iter().map(|(n, _)| n.as_str()).collect();
            return Err(Error::Data(format!(
                "{}: cannot tell which {format} file holds the data: {} share no base name with set numbers; choose one with .file(NAME) (deeptrain data --file NAME)",
                dir.display(),
                names.join(", ")
            )));
        };
        for (name, _) in &candidates {
            if *name != pick {
                ignored.push(Ignored {
                    file: dir.join(name),
                    reason: "another data file; choose it with .file / --file".into(),
                });
            }
        }
        ignored.sort_by(|a, b| a.file.cmp(&b.file));
        Ok(Choice {
            format,
            mode: Mode::Dataset,
            base_name: String::new(),
            files: vec![(pick.clone(), dir.join(&pick))],
            family: Vec::new(),
            ignored,
        })
    }
}

pub(super) struct Choice {
    pub(super) format: String,
    pub(super) mode: Mode,
    pub(super) base_name: String,
    /// (set name, path) in set order.
    pub(super) files: Vec<(String, PathBuf)>,
    /// Every file of the family when only some set numbers are used: a labels file
    /// covers all of them, so label offsets count the unused ones too.
    pub(super) family: Vec<(String, PathBuf)>,
    pub(super) ignored: Vec<Ignored>,
}

/// File names (not directories, not hidden) of a directory, sorted.
pub(super) fn list_dir(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') {
            continue;
        }
        if entry.path().is_file() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

pub(super) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| path.display().to_string())
}

/// `"batch_12"` -> (`"batch_"`, Some(12)); no trailing digits -> (stem, None).
fn split_number(stem: &str) -> (&str, Option<u64>) {
    let digits = stem.len() - stem.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 {
        return (stem, None);
    }
    let (base, num) = stem.split_at(stem.len() - digits);
    match num.parse() {
        Ok(n) => (base, Some(n)),
        Err(_) => (stem, None),
    }
}

/// Every file must hold samples of one shape and dtype.
pub(super) fn check_consistent(files: &[(String, PathBuf, LoadedFile)]) -> Result<()> {
    let Some((_, first_path, first)) = files.first() else {
        return Err(Error::Data("no data files".into()));
    };
    for (_, path, f) in &files[1..] {
        if f.data.sample_shape() != first.data.sample_shape() {
            return Err(Error::Data(format!(
                "{}: samples have shape {} but {} has samples of shape {} (file shapes {} and {}); all sets must share one sample shape",
                path.display(),
                fmt_shape(f.data.sample_shape()),
                first_path.display(),
                fmt_shape(first.data.sample_shape()),
                fmt_shape(&f.data.shape),
                fmt_shape(&first.data.shape),
            )));
        }
        if f.data.dtype != first.data.dtype {
            return Err(Error::Data(format!(
                "{}: dtype {} but {} has dtype {}; all sets must share one dtype",
                path.display(),
                f.data.dtype,
                first_path.display(),
                first.data.dtype
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_numbers_come_from_trailing_digits() {
        assert_eq!(split_number("batch_12"), ("batch_", Some(12)));
        assert_eq!(split_number("x007"), ("x", Some(7)));
        assert_eq!(split_number("train"), ("train", None));
        assert_eq!(split_number("99"), ("", Some(99)));
        assert_eq!(
            split_number("n99999999999999999999999"),
            ("n99999999999999999999999", None)
        );
    }
}
