//! `data.source` and `data.val_source`: a path (or `digits`), read as it always was, or a
//! data source chosen by name from the registry's `sources` kind
//! (`{"name": "series", "path": "sunspots.csv", "length": 48}`). Kept apart from `data.rs`
//! (the path sources' loaders) so the named form is one file: its JSON form, its
//! resolution against the registry, its loaders, and the overview `deeptrain data JOB`
//! prints (the data and the transform chain).

use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::data::Loaders;
use super::validate::at_transform;
use super::{DataConfig, JobConfig};
use crate::data_loaders::{DataInfo, TimeseriesWindows};
use crate::error::{Error, Result};
use crate::registry::{Component, Registry, SourceCtx, SourceData, TransformCtx};
use crate::transforms::BatchSpec;

/// Where a job's data comes from: `"digits"`, a path, or `{"name": ..., args}`.
#[derive(Debug, Clone, PartialEq)]
pub enum DataSource {
    /// `digits` (embedded), a CSV file, or a directory or file read by AutoData.
    Path(String),
    /// A registered source with its arguments (see `deeptrain list sources`).
    Named(Component),
}

impl DataSource {
    /// The path (or `digits`), when the source is one.
    pub fn path(&self) -> Option<&str> {
        match self {
            DataSource::Path(p) => Some(p),
            DataSource::Named(_) => None,
        }
    }

    /// The named source, when it is one.
    pub fn component(&self) -> Option<&Component> {
        match self {
            DataSource::Named(c) => Some(c),
            DataSource::Path(_) => None,
        }
    }
}

impl Default for DataSource {
    fn default() -> Self {
        DataSource::Path("digits".into())
    }
}

impl fmt::Display for DataSource {
    /// The path, or `source \`NAME\``.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSource::Path(p) => f.write_str(p),
            DataSource::Named(c) => write!(f, "source `{}`", c.name),
        }
    }
}

impl PartialEq<&str> for DataSource {
    fn eq(&self, other: &&str) -> bool {
        self.path() == Some(*other)
    }
}

impl From<String> for DataSource {
    fn from(p: String) -> Self {
        DataSource::Path(p)
    }
}

impl From<&str> for DataSource {
    fn from(p: &str) -> Self {
        DataSource::Path(p.to_string())
    }
}

impl From<Component> for DataSource {
    fn from(c: Component) -> Self {
        DataSource::Named(c)
    }
}

impl Serialize for DataSource {
    /// A path as a string (as configs always recorded it), a named source as its component.
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            DataSource::Path(p) => s.serialize_str(p),
            DataSource::Named(c) => c.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for DataSource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(p) => Ok(DataSource::Path(p)),
            v @ Value::Object(_) => {
                let c = Component::deserialize(v).map_err(D::Error::custom)?;
                if c.name.is_empty() {
                    return Err(D::Error::custom(
                        "a source by name needs `name` (see `deeptrain list sources`)",
                    ));
                }
                Ok(DataSource::Named(c))
            }
            other => Err(D::Error::custom(format!(
                "expected a path (or \"digits\") or {{\"name\": ..., arguments...}}, found \
                 {other}"
            ))),
        }
    }
}

/// An error of the source in `field` (the registry's and the sources' own say `source`)
/// as the job file spells the place: `data.source`, `data.val_source`.
fn at_source(field: &str, e: Error) -> Error {
    match e {
        Error::Config { field: f, reason } if f.starts_with("source") => Error::Config {
            field: f.replacen("source", field, 1),
            reason,
        },
        other => other,
    }
}

impl DataConfig {
    /// `source`'s path (empty for a named source, which `data.rs` never reads as a path).
    pub(super) fn source_path(&self) -> &str {
        self.source.path().unwrap_or_default()
    }

    /// `val_source`'s path, when it is one.
    pub(super) fn val_source_path(&self) -> Option<&str> {
        self.val_source.as_ref().and_then(DataSource::path)
    }

    /// `windows` as the preprocessor that cuts sequences.
    fn windows_preprocessor(&self) -> Option<TimeseriesWindows> {
        self.windows.as_ref().map(|w| {
            TimeseriesWindows::new(w.length, w.slide.unwrap_or(w.length))
                .start_increments(w.start_increments.clone())
        })
    }
}

/// Reads the named sources of `job` by `registry`, their arguments written back with
/// every default filled in (`strict` false: names `registry` lacks are left as they are).
pub(super) fn resolve_sources(
    job: &mut JobConfig,
    registry: &Registry,
    strict: bool,
) -> Result<()> {
    let d = &mut job.data;
    for (field, source) in [
        ("data.source", Some(&mut d.source)),
        ("data.val_source", d.val_source.as_mut()),
    ] {
        if let Some(DataSource::Named(c)) = source {
            if strict || registry.sources.contains(&c.name) {
                *c = registry
                    .sources
                    .resolve(c)
                    .map_err(|e| at_source(field, e))?;
            }
        }
    }
    Ok(())
}

impl JobConfig {
    /// What a source factory is told: the job's batching settings.
    fn source_ctx(&self) -> SourceCtx {
        let d = &self.data;
        SourceCtx {
            batch_size: d.batch_size,
            val_batch_size: d.val_batch_size.unwrap_or(d.batch_size),
            shuffle: d.shuffle,
            drop_last: d.drop_last,
            seed: self.train.seed,
            preload: d.preload,
            scale: d.input_scale(),
            windows: d.windows_preprocessor(),
        }
    }

    /// The loaders of the named source `c` given in `field`.
    fn named_source(&self, registry: &Registry, field: &str, c: &Component) -> Result<SourceData> {
        let entry = registry
            .sources
            .get(&c.name)
            .map_err(|e| at_source(field, e))?;
        (entry.factory())(&c.args, &self.source_ctx()).map_err(|e| at_source(field, e))
    }

    /// The loaders when `data.source` or `data.val_source` is a named source; `None` when
    /// both are paths (`data.rs` reads them). A named source validates on its own
    /// validation part unless `data.val_source` is given; a named `val_source` gives its
    /// validation part (its train part when it has none).
    pub(super) fn named_loaders(&self, registry: &Registry) -> Result<Option<Loaders>> {
        let d = &self.data;
        let named_val = match &d.val_source {
            Some(DataSource::Named(c)) => {
                let s = self.named_source(registry, "data.val_source", c)?;
                Some(s.val.unwrap_or(s.train))
            }
            _ => None,
        };
        let (train, val) = match &d.source {
            DataSource::Named(c) => {
                if d.weights.is_some() || d.weight_column.is_some() {
                    return Err(Error::config(
                        "data.weights",
                        format!(
                            "source `{}` is named: its samples carry no weights file or \
                             column (give weights with a path source)",
                            c.name
                        ),
                    ));
                }
                let s = self.named_source(registry, "data.source", c)?;
                let val = match (named_val, d.val_source_path()) {
                    (Some(v), _) => Some(v),
                    (None, Some(path)) => {
                        let batch = d.val_batch_size.unwrap_or(d.batch_size);
                        let labels = d.val_labels.as_deref();
                        let weights = d.val_weights.as_deref();
                        let v = self.auto_data(
                            path,
                            d.val_file.as_deref(),
                            labels,
                            weights,
                            batch,
                            false,
                        )?;
                        Some(Box::new(v) as Box<dyn crate::data_loaders::DataLoader>)
                    }
                    (None, None) => s.val,
                };
                (s.train, val)
            }
            DataSource::Path(_) => {
                let Some(v) = named_val else {
                    return Ok(None);
                };
                // The path source alone (no split of its own), validated on the named one.
                let mut plain = self.clone();
                plain.data.val_source = None;
                plain.data.val_file = None;
                plain.data.val_fraction = 0.0;
                let l = plain.loaders_with(registry)?;
                (l.train, Some(v))
            }
        };
        Ok(Some(Loaders {
            info: train.info(),
            train,
            val,
        }))
    }

    /// The job's data and transform chain as `deeptrain data JOB` shows them; the data is
    /// read (every name must be in `registry`).
    pub fn data_overview(&self, registry: &Registry) -> Result<DataOverview> {
        let Loaders { train, val, info } = self.loaders_with(registry)?;
        // What the model is sized for (the whole data, before a split).
        let mut spec = BatchSpec {
            sample_shape: info.sample_shape.clone(),
            num_classes: info.num_classes,
            class_counts: info.class_counts.clone(),
        };
        let mut transforms = Vec::new();
        for (i, c) in self.data.transforms.iter().enumerate() {
            let out = registry
                .transforms
                .get(&c.name)
                .and_then(|entry| {
                    let t = (entry.factory())(&c.args, &TransformCtx { input: &spec })?;
                    let out = t.output(&spec)?;
                    Ok(TransformStep {
                        component: c.clone(),
                        random: t.is_random(),
                        sample_shape: out.sample_shape.clone(),
                        num_classes: out.num_classes,
                    })
                    .map(|step| (step, out))
                })
                .map_err(|e| at_transform(i, e))?;
            transforms.push(out.0);
            spec = out.1;
        }
        Ok(DataOverview {
            source: self.data.source.clone(),
            val_source: self.data.val_source.clone(),
            train: train.info(),
            val: val.map(|v| v.info()),
            windows: self.data.windows_preprocessor().map(|w| {
                use crate::data_loaders::Preprocessor;
                w.name()
            }),
            transforms,
        })
    }
}

/// The job's data as `deeptrain data JOB` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DataOverview {
    /// `data.source`.
    pub source: DataSource,
    /// `data.val_source`, if given.
    pub val_source: Option<DataSource>,
    /// The train data.
    pub train: DataInfo,
    /// The validation data, if any.
    pub val: Option<DataInfo>,
    /// `data.windows`, described, if given.
    pub windows: Option<String>,
    /// `data.transforms` in order, each with what batches look like after it.
    pub transforms: Vec<TransformStep>,
}

/// One transform of the chain and what it hands on.
#[derive(Debug, Clone, Serialize)]
pub struct TransformStep {
    /// Its name and arguments.
    pub component: Component,
    /// Whether it draws on train batches (an augmentation).
    pub random: bool,
    /// Sample shape after it.
    pub sample_shape: Vec<usize>,
    /// Classes after it (`None`: values).
    pub num_classes: Option<usize>,
}

impl fmt::Display for DataOverview {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let json = |s: &DataSource| serde_json::to_string(s).unwrap_or_default();
        writeln!(f, "source: {}", json(&self.source))?;
        if let Some(v) = &self.val_source {
            writeln!(f, "val_source: {}", json(v))?;
        }
        let data = |f: &mut fmt::Formatter<'_>, label: &str, i: &DataInfo| {
            let targets = match i.num_classes {
                Some(n) => format!("{n} classes"),
                None => "values".to_string(),
            };
            writeln!(
                f,
                "{label}: {} samples of shape {:?} ({}, {}), targets: {targets}; {}",
                i.num_samples,
                i.sample_shape,
                i.format,
                i.dtype,
                i.files.join(", ")
            )
        };
        data(f, "train", &self.train)?;
        match &self.val {
            Some(v) => data(f, "val", v)?,
            None => writeln!(f, "val: none")?,
        }
        if let Some(w) = &self.windows {
            writeln!(f, "windows: {w}")?;
        }
        if self.transforms.is_empty() {
            return writeln!(f, "transforms: none");
        }
        writeln!(f, "transforms (data.transforms, in order):")?;
        for (i, t) in self.transforms.iter().enumerate() {
            let args = serde_json::to_string(&t.component.args).unwrap_or_default();
            let targets = match t.num_classes {
                Some(n) => format!("{n} classes"),
                None => "values".to_string(),
            };
            writeln!(
                f,
                "  [{i}] {} {args}{} -> samples {:?}, {targets}",
                t.component.name,
                if t.random {
                    " (random, train only)"
                } else {
                    ""
                },
                t.sample_shape
            )?;
        }
        Ok(())
    }
}
