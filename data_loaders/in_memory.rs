//! A data set held in memory as one array ("dataset mode"): the embedded digits set,
//! CSV files, and splits of either.

use candle_core::{Device, Tensor};

use super::{Batch, DataInfo, DataLoader, LoaderState, SetRef};
use crate::error::{Error, Result};
use crate::rng::RngStream;

/// Targets of an in-memory data set.
#[derive(Debug, Clone)]
pub enum Targets {
    /// Class ids; batches get them as a `u32` tensor of shape `(batch,)`.
    Classes {
        /// One class id per sample, each below `num_classes`.
        labels: Vec<u32>,
        /// Number of classes.
        num_classes: usize,
    },
    /// One f32 regression target per sample; batches get them as shape `(batch,)`.
    Values(Vec<f32>),
}

/// Features `[n, sample_shape...]` in f32 plus targets; batches are named by their
/// index in the epoch (`"0"`, `"1"`, ...).
#[derive(Debug, Clone)]
pub struct InMemoryData {
    /// Name used in errors and as [`DataInfo::files`]; [`split`](Self::split) appends
    /// `"/train"` and `"/val"`.
    pub name: String,
    /// All samples' values, row-major: `num_samples() * prod(sample_shape)` of them.
    pub features: Vec<f32>,
    /// Shape of one sample (empty: one value per sample).
    pub sample_shape: Vec<usize>,
    /// One target per sample; their count is the number of samples.
    pub targets: Targets,
    /// One weight per sample (see [`Batch::weights`]); `None`: all weigh the same.
    pub weights: Option<Vec<f32>>,
}

impl InMemoryData {
    /// A classification set named `name`. Errors if `features` does not hold
    /// `labels.len() * prod(sample_shape)` values or a label is not below `num_classes`.
    pub fn classification(
        name: impl Into<String>,
        features: Vec<f32>,
        sample_shape: Vec<usize>,
        labels: Vec<u32>,
        num_classes: usize,
    ) -> Result<Self> {
        let d = Self {
            name: name.into(),
            features,
            sample_shape,
            targets: Targets::Classes {
                labels,
                num_classes,
            },
            weights: None,
        };
        d.check()?;
        Ok(d)
    }

    /// The same data with one weight per sample, read from `source` (named in errors):
    /// as many as there are samples, each a finite number `>= 0`.
    pub fn with_weights(mut self, weights: Vec<f32>, source: &str) -> Result<Self> {
        super::weights::check_count(source, weights.len(), self.num_samples())?;
        super::weights::check_weights(source, &weights)?;
        self.weights = Some(weights);
        Ok(self)
    }

    fn sample_len(&self) -> usize {
        self.sample_shape.iter().product()
    }

    /// Number of samples (the number of targets).
    pub fn num_samples(&self) -> usize {
        match &self.targets {
            Targets::Classes { labels, .. } => labels.len(),
            Targets::Values(v) => v.len(),
        }
    }

    fn check(&self) -> Result<()> {
        let n = self.num_samples();
        if let Some(w) = &self.weights {
            super::weights::check_count(&self.name, w.len(), n)?;
        }
        if self.features.len() != n * self.sample_len() {
            return Err(Error::Data(format!(
                "{}: {} feature values do not make {} samples of shape {:?}",
                self.name,
                self.features.len(),
                n,
                self.sample_shape
            )));
        }
        if let Targets::Classes {
            labels,
            num_classes,
        } = &self.targets
        {
            if let Some((i, l)) = labels
                .iter()
                .enumerate()
                .find(|(_, l)| **l as usize >= *num_classes)
            {
                return Err(Error::Data(format!(
                    "{}: label {l} of sample {i} is not below the class count {num_classes}",
                    self.name
                )));
            }
        }
        Ok(())
    }

    /// Splits off the last `fraction` of samples (after a shuffle seeded by `seed`) as a
    /// second set: returns `(train, val)`, named `"<name>/train"` and `"<name>/val"`.
    /// `fraction` must be in `[0, 1)`; the validation size is `round(n * fraction)`.
    pub fn split(self, fraction: f64, seed: u64) -> Result<(Self, Self)> {
        if !(0.0..1.0).contains(&fraction) {
            return Err(Error::config(
                "data.val_fraction",
                format!("{fraction} is not in [0, 1)"),
            ));
        }
        let n = self.num_samples();
        let mut idx: Vec<usize> = (0..n).collect();
        RngStream::with_stream(seed, 100).shuffle(&mut idx);
        let n_val = ((n as f64) * fraction).round() as usize;
        let (train_idx, val_idx) = idx.split_at(n - n_val);
        Ok((self.subset(train_idx, "train"), self.subset(val_idx, "val")))
    }

    fn subset(&self, idx: &[usize], suffix: &str) -> Self {
        let len = self.sample_len();
        let mut features = Vec::with_capacity(idx.len() * len);
        for &i in idx {
            features.extend_from_slice(&self.features[i * len..(i + 1) * len]);
        }
        let targets = match &self.targets {
            Targets::Classes {
                labels,
                num_classes,
            } => Targets::Classes {
                labels: idx.iter().map(|&i| labels[i]).collect(),
                num_classes: *num_classes,
            },
            Targets::Values(v) => Targets::Values(idx.iter().map(|&i| v[i]).collect()),
        };
        Self {
            name: format!("{}/{suffix}", self.name),
            features,
            sample_shape: self.sample_shape.clone(),
            targets,
            weights: self
                .weights
                .as_ref()
                .map(|w| idx.iter().map(|&i| w[i]).collect()),
        }
    }

    fn num_batches(&self, state: &LoaderState) -> usize {
        let n = self.num_samples();
        if state.drop_last {
            n / state.batch_size
        } else {
            n.div_ceil(state.batch_size)
        }
    }
}

impl DataLoader for InMemoryData {
    fn info(&self) -> DataInfo {
        DataInfo {
            format: "in-memory".into(),
            files: vec![self.name.clone()],
            num_samples: self.num_samples(),
            sample_shape: self.sample_shape.clone(),
            dtype: "f32".into(),
            num_classes: match &self.targets {
                Targets::Classes { num_classes, .. } => Some(*num_classes),
                Targets::Values(_) => None,
            },
            class_counts: match &self.targets {
                Targets::Classes {
                    labels,
                    num_classes,
                } => {
                    let mut counts = vec![0; *num_classes];
                    for &l in labels {
                        if let Some(c) = counts.get_mut(l as usize) {
                            *c += 1;
                        }
                    }
                    Some(counts)
                }
                Targets::Values(_) => None,
            },
        }
    }

    fn plan_epoch(&self, _epoch: u64, state: &mut LoaderState) -> Result<Vec<String>> {
        if state.batch_size == 0 {
            return Err(Error::config("batch_size", "must be at least 1"));
        }
        state.order.clear();
        if state.shuffle {
            let mut rng = RngStream::from_state(&state.rng);
            let mut order: Vec<u32> = (0..self.num_samples() as u32).collect();
            rng.shuffle(&mut order);
            state.rng = rng.state();
            state.order = order;
        }
        Ok((0..self.num_batches(state))
            .map(|i| i.to_string())
            .collect())
    }

    fn load(&self, state: &LoaderState, set: SetRef<'_>, device: &Device) -> Result<Batch> {
        let set_name = set.name;
        let i: usize = set_name
            .parse()
            .map_err(|_| Error::Data(format!("{}: no set named {set_name:?}", self.name)))?;
        let n = self.num_samples();
        let start = i * state.batch_size;
        if start >= n {
            return Err(Error::Data(format!(
                "{}: set {i} starts at sample {start} but there are {n}",
                self.name
            )));
        }
        let end = (start + state.batch_size).min(n);
        let index = |k: usize| -> usize {
            if state.order.is_empty() {
                k
            } else {
                state.order[k] as usize
            }
        };
        let len = self.sample_len();
        let mut x = Vec::with_capacity((end - start) * len);
        for k in start..end {
            let s = index(k);
            x.extend_from_slice(&self.features[s * len..(s + 1) * len]);
        }
        let mut shape = vec![end - start];
        shape.extend_from_slice(&self.sample_shape);
        let x = Tensor::from_vec(x, shape, device)?;
        let y = match &self.targets {
            Targets::Classes { labels, .. } => {
                let y: Vec<u32> = (start..end).map(|k| labels[index(k)]).collect();
                Tensor::from_vec(y, end - start, device)?
            }
            Targets::Values(v) => {
                let y: Vec<f32> = (start..end).map(|k| v[index(k)]).collect();
                Tensor::from_vec(y, end - start, device)?
            }
        };
        let weights = match &self.weights {
            Some(w) => {
                let w: Vec<f32> = (start..end).map(|k| w[index(k)]).collect();
                Some(Tensor::from_vec(w, end - start, device)?)
            }
            None => None,
        };
        Ok(Batch::new(set_name, x, y).with_weights(weights))
    }
}
