//! What `deeptrain data` prints: the inference and one epoch's batch sequence. Built from
//! the same plan the trainer follows, so what it shows is what training will see.

use std::fmt;

use serde::Serialize;

use super::{AutoData, Inferred, Mode};
use crate::data_loaders::array::fmt_shape;
use crate::data_loaders::LoaderState;
use crate::error::Result;

/// One batch of an epoch in a [`DataReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchLine {
    /// The batch's set name (see [`BatchSpec::name`](super::BatchSpec::name)).
    pub set: String,
    /// Samples in the batch.
    pub samples: usize,
    /// Shape of the batch's inputs: `[samples, sample_shape...]`.
    pub shape: Vec<usize>,
}

/// What `deeptrain data` prints: the inference and one epoch's batch sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataReport {
    /// Everything inferred (its fields sit at the top level of the JSON form).
    #[serde(flatten)]
    pub inferred: Inferred,
    /// The state's [`LoaderState::batch_size`].
    pub batch_size: usize,
    /// The state's [`LoaderState::shuffle`].
    pub shuffle: bool,
    /// The state's [`LoaderState::shuffle_samples`].
    pub shuffle_samples: bool,
    /// The state's [`LoaderState::drop_last`].
    pub drop_last: bool,
    /// Seed of the loader's shuffle stream (`LoaderState::rng.seed`).
    pub seed: u64,
    /// The epoch reported on (1-based), as passed to [`AutoData::report`].
    pub epoch: u64,
    /// The epoch's batches, in the order they will be fit.
    pub batches: Vec<BatchLine>,
}

impl fmt::Display for DataReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inferred;
        writeln!(f, "source      {}", i.source.display())?;
        let mode = match i.mode {
            Mode::Files => format!("files mode, base name {:?}", i.base_name),
            Mode::Dataset => "dataset mode: one file cut into sets".into(),
        };
        writeln!(f, "format      {}, {mode}", i.format)?;
        writeln!(f, "files       {}", i.sets.len())?;
        for s in &i.sets {
            writeln!(
                f,
                "  set {:<8} {:>9} samples  {}",
                s.name,
                s.samples,
                s.file.display()
            )?;
        }
        for ig in &i.ignored {
            writeln!(f, "  ignored   {} ({})", ig.file.display(), ig.reason)?;
        }
        writeln!(
            f,
            "samples     {} of shape {}, dtype {}",
            i.num_samples,
            fmt_shape(&i.sample_shape),
            i.dtype
        )?;
        let l = &i.labels;
        match l.kind.as_str() {
            "classes" => {
                writeln!(
                    f,
                    "labels      {}: {} classes ({})",
                    l.source,
                    l.num_classes.unwrap_or(0),
                    l.dtype.map(|d| d.name()).unwrap_or("?")
                )?;
                if let Some(c) = &l.class_counts {
                    let counts: Vec<String> = c
                        .iter()
                        .enumerate()
                        .map(|(k, n)| format!("{k}:{n}"))
                        .collect();
                    writeln!(f, "  per class {}", counts.join(" "))?;
                }
            }
            "values" => writeln!(
                f,
                "labels      {}: values of shape {} ({})",
                l.source,
                fmt_shape(&l.shape),
                l.dtype.map(|d| d.name()).unwrap_or("?")
            )?,
            _ => writeln!(
                f,
                "labels      none found (y = x; to train a job on this data, put \
                 labels.npy, labels.csv or labels.csv.gz beside it)"
            )?,
        }
        if !i.preloaded.is_empty() {
            writeln!(f, "preloaded   {}", i.preloaded.join(", "))?;
        }
        if let Some(p) = &i.preprocessor {
            writeln!(f, "preprocess  {p}")?;
        }
        let shuffle = match (self.shuffle, self.shuffle_samples) {
            (false, false) => "off".to_string(),
            (true, false) => format!("set order (seed {})", self.seed),
            (false, true) => format!("samples within groups (seed {})", self.seed),
            (true, true) => format!("set order and samples within groups (seed {})", self.seed),
        };
        writeln!(
            f,
            "epoch {}     {} batches; batch_size {}, shuffle {}, drop_last {}",
            self.epoch,
            self.batches.len(),
            self.batch_size,
            shuffle,
            self.drop_last
        )?;
        writeln!(f, "  {:<16} {:>8}  shape", "set", "samples")?;
        for b in &self.batches {
            writeln!(
                f,
                "  {:<16} {:>8}  {}",
                b.set,
                b.samples,
                fmt_shape(&b.shape)
            )?;
        }
        Ok(())
    }
}

impl AutoData {
    /// A report of the inference and of epoch `epoch`, as planned in `state`.
    pub fn report(&self, epoch: u64, state: &LoaderState) -> Result<DataReport> {
        let batches = self
            .batches(state)?
            .into_iter()
            .map(|b| {
                let mut shape = vec![b.size()];
                shape.extend_from_slice(&self.inferred.sample_shape);
                BatchLine {
                    set: b.name,
                    samples: shape[0],
                    shape,
                }
            })
            .collect();
        Ok(DataReport {
            inferred: self.inferred.clone(),
            batch_size: state.batch_size,
            shuffle: state.shuffle,
            shuffle_samples: state.shuffle_samples,
            drop_last: state.drop_last,
            seed: state.rng.seed,
            epoch,
            batches,
        })
    }
}
