//! Epoch planning: how an epoch's set order and the batch size cut the sample stream
//! into named batches (`"12+13"`, `"12-a"`, `"12-c+13-a"`), and how a name maps back to
//! its samples. A pure function of the loader state, which is what makes resume exact.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use super::{AutoData, Mode};
use crate::data_loaders::LoaderState;
use crate::error::{Error, Result};

/// A run of consecutive samples of one file, in the epoch's order of that file's
/// samples (permuted when `shuffle_samples` is on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Segment {
    /// Index into `Inferred::sets`.
    pub file: usize,
    /// First position (inclusive) in the file's sample order: a sample index, or with
    /// `shuffle_samples` an index into the file's permutation for this epoch.
    pub start: usize,
    /// End position (exclusive), in the same order as `start`.
    pub end: usize,
}

/// One batch of an epoch plan: its set name and where its samples come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchSpec {
    /// The set name the trainer is handed and `load` takes: `"12"`, `"12+13"`, `"12-a"`,
    /// `"12-c+13-a"` in files mode, the chunk number in dataset mode.
    pub name: String,
    /// Where its samples come from, in batch order.
    pub segments: Vec<Segment>,
}

impl BatchSpec {
    /// Samples in the batch (the segments' lengths summed).
    pub fn size(&self) -> usize {
        self.segments.iter().map(|s| s.end - s.start).sum()
    }
}

#[derive(Clone, PartialEq, Eq)]
pub(super) struct PlanKey {
    batch_size: usize,
    drop_last: bool,
    order: Vec<u32>,
}

pub(super) struct Plan {
    pub(super) batches: Vec<BatchSpec>,
    index: HashMap<String, usize>,
}

/// `0 -> a`, `25 -> z`, `26 -> aa`, ... (bijective base 26).
fn piece_letters(mut k: usize) -> String {
    let mut s = Vec::new();
    loop {
        s.push(b'a' + (k % 26) as u8);
        if k < 26 {
            break;
        }
        k = k / 26 - 1;
    }
    s.reverse();
    String::from_utf8(s).unwrap_or_default()
}

impl AutoData {
    /// The units shuffled as a whole: files (files mode) or batch-size chunks of the
    /// (possibly permuted) file (dataset mode).
    pub(super) fn units(&self, batch_size: usize) -> Vec<(String, Segment)> {
        match self.inferred.mode {
            Mode::Files => self
                .files
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    (
                        f.name.clone(),
                        Segment {
                            file: i,
                            start: 0,
                            end: f.data.num_samples(),
                        },
                    )
                })
                .collect(),
            Mode::Dataset => {
                let n = self.files[0].data.num_samples();
                (0..n.div_ceil(batch_size))
                    .map(|k| {
                        (
                            k.to_string(),
                            Segment {
                                file: 0,
                                start: k * batch_size,
                                end: ((k + 1) * batch_size).min(n),
                            },
                        )
                    })
                    .collect()
            }
        }
    }

    fn compute_plan(&self, key: &PlanKey) -> Result<Plan> {
        let units = self.units(key.batch_size);
        let order: Vec<usize> = if key.order.is_empty() {
            (0..units.len()).collect()
        } else {
            let mut seen = vec![false; units.len()];
            for &u in &key.order {
                match seen.get_mut(u as usize) {
                    Some(s) if !*s => *s = true,
                    _ => {
                        return Err(Error::Data(format!(
                            "{}: the loader state's set order {:?} is not a permutation of the {} sets (state of another data set or batch size?)",
                            self.inferred.source.display(),
                            abbreviate(&key.order),
                            units.len()
                        )))
                    }
                }
            }
            if key.order.len() != units.len() {
                return Err(Error::Data(format!(
                    "{}: the loader state orders {} sets but there are {}",
                    self.inferred.source.display(),
                    key.order.len(),
                    units.len()
                )));
            }
            key.order.iter().map(|&u| u as usize).collect()
        };
        let bs = key.batch_size;
        let mut batches: Vec<Vec<Segment>> = Vec::new();
        match self.inferred.mode {
            Mode::Dataset => {
                batches.extend(order.iter().map(|&u| vec![units[u].1]));
            }
            Mode::Files => {
                // Stream the sets in order and cut every `bs` samples.
                let mut current: Vec<Segment> = Vec::new();
                let mut fill = 0;
                for &u in &order {
                    let seg = units[u].1;
                    let mut pos = seg.start;
                    while pos < seg.end {
                        let take = (bs - fill).min(seg.end - pos);
                        current.push(Segment {
                            file: seg.file,
                            start: pos,
                            end: pos + take,
                        });
                        pos += take;
                        fill += take;
                        if fill == bs {
                            batches.push(std::mem::take(&mut current));
                            fill = 0;
                        }
                    }
                }
                if !current.is_empty() {
                    batches.push(current);
                }
            }
        }
        if key.drop_last {
            batches.retain(|b| b.iter().map(|s| s.end - s.start).sum::<usize>() == bs);
        }
        // Names: a whole file is its set name; pieces of a file get letters in order.
        let mut pieces = vec![0usize; self.files.len()];
        let mut out = Vec::with_capacity(batches.len());
        for segments in batches {
            let names: Vec<String> = segments
                .iter()
                .map(|s| match self.inferred.mode {
                    Mode::Dataset => (s.start / bs).to_string(),
                    Mode::Files => {
                        let f = &self.files[s.file];
                        if s.start == 0 && s.end == f.data.num_samples() {
                            f.name.clone()
                        } else {
                            let k = pieces[s.file];
                            pieces[s.file] += 1;
                            format!("{}-{}", f.name, piece_letters(k))
                        }
                    }
                })
                .collect();
            out.push(BatchSpec {
                name: names.join("+"),
                segments,
            });
        }
        let index = out
            .iter()
            .enumerate()
            .map(|(i, b)| (b.name.clone(), i))
            .collect();
        Ok(Plan {
            batches: out,
            index,
        })
    }

    pub(super) fn plan(&self, state: &LoaderState) -> Result<Arc<Plan>> {
        let key = PlanKey {
            batch_size: state.batch_size,
            drop_last: state.drop_last,
            order: state.order.clone(),
        };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((k, plan)) = &cache.plan {
            if *k == key {
                return Ok(Arc::clone(plan));
            }
        }
        if key.batch_size == 0 {
            return Err(Error::config("batch_size", "must be at least 1"));
        }
        let plan = Arc::new(self.compute_plan(&key)?);
        cache.plan = Some((key, Arc::clone(&plan)));
        Ok(plan)
    }

    /// The batches of the epoch planned in `state`, in order (what the trainer will fit
    /// when nobody edits the trainer's `sets_to_process`).
    pub fn batches(&self, state: &LoaderState) -> Result<Vec<BatchSpec>> {
        Ok(self.plan(state)?.batches.clone())
    }

    /// The batch named `name`: from the epoch plan, or else whole sets written as set
    /// names joined by `+` (files mode: `"3"`, `"3+7"`; dataset mode: chunk numbers).
    pub fn resolve(&self, state: &LoaderState, name: &str) -> Result<BatchSpec> {
        let plan = self.plan(state)?;
        if let Some(&i) = plan.index.get(name) {
            return Ok(plan.batches[i].clone());
        }
        let units = self.units(state.batch_size);
        let mut segments = Vec::new();
        for part in name.split('+') {
            match units.iter().find(|(n, _)| n == part) {
                Some((_, seg)) => segments.push(*seg),
                None => {
                    let some: Vec<&str> = plan
                        .batches
                        .iter()
                        .take(6)
                        .map(|b| b.name.as_str())
                        .collect();
                    return Err(Error::Data(format!(
                        "{}: no set named {name:?} (sets look like {}{})",
                        self.inferred.source.display(),
                        some.join(", "),
                        if plan.batches.len() > 6 { ", ..." } else { "" }
                    )));
                }
            }
        }
        Ok(BatchSpec {
            name: name.to_string(),
            segments,
        })
    }
}

fn abbreviate(v: &[u32]) -> String {
    if v.len() <= 8 {
        format!("{v:?}")
    } else {
        format!("{:?}... ({} entries)", &v[..8], v.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn piece_letters_are_bijective_base_26() {
        let got: Vec<String> = [0, 1, 25, 26, 27, 51, 52, 701, 702]
            .iter()
            .map(|&k| piece_letters(k))
            .collect();
        assert_eq!(got, ["a", "b", "z", "aa", "ab", "az", "ba", "zz", "aaa"]);
    }
}
