//! Sweeps: one file, many runs. A sweep file names the trials (a grid, random samples,
//! whole job files); every trial is an ordinary run directory under the sweep directory,
//! trained and resumed by the ordinary machinery, so a sweep stops and resumes exactly
//! like one run.
//!
//! This module is the library part: the sweep file's types (`mod.rs`), the expansion into
//! trials and `sweep/plan.json` (`plan.rs`), the results read back from the trials' run
//! directories, `sweep/summary.csv` and the failed trials' records (`summary.rs`), and
//! `sweep/summary.png` (`figure.rs`, drawn by `report::comparison`); TensorBoard's
//! HParams records (`hparams.rs`); successive-halving pruning and `sweep/prune.json`
//! (`prune.rs`). Running trials, processes and signals belong to the command line
//! (`cli/sweep.rs`).

pub mod figure;
pub mod hparams;
pub mod plan;
pub mod prune;
pub mod summary;

use std::path::{Path, PathBuf};

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::error::{Error, IoContext, Result};

pub use plan::{Plan, Trial};
pub use summary::{Summary, TrialResult};

/// The folder inside a sweep directory that holds the sweep's own files.
pub const SWEEP_META_DIR: &str = "sweep";

/// A JSON object read in the order the file writes its keys (the grid's order is the
/// file's: the cartesian product varies the last key fastest).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ordered<T>(pub Vec<(String, T)>);

impl<T: Serialize> Serialize for Ordered<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Ordered<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Ordered<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let mut out: Vec<(String, T)> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if out.iter().any(|(k, _)| *k == key) {
                        return Err(serde::de::Error::custom(format!("`{key}` given twice")));
                    }
                    let value = map.next_value()?;
                    out.push((key, value));
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// Whether a larger or a smaller value of the sweep's metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Goal {
    /// Larger is better (accuracy, F1, ...).
    Max,
    /// Smaller is better (losses, errors).
    Min,
}

/// A distribution one random trial value is drawn from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Distribution {
    /// `{"uniform": [lo, hi]}`: a float in `[lo, hi)`.
    Uniform([f64; 2]),
    /// `{"log_uniform": [lo, hi]}`: a float whose logarithm is uniform (`0 < lo < hi`).
    LogUniform([f64; 2]),
    /// `{"int_uniform": [lo, hi]}`: an integer in `lo..=hi`.
    IntUniform([i64; 2]),
    /// `{"choice": [a, b, ...]}`: one of the values, each as likely.
    Choice(Vec<Value>),
}

/// `"random"`: samples drawn from the sweep's own seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomSpec {
    /// How many random trials (per job file).
    pub samples: usize,
    /// The seed of the draws [default 0]; the same seed draws the same values, and more
    /// samples draw the same first ones (so `--extend` can add samples).
    #[serde(default)]
    pub seed: u64,
    /// Dotted config key to its distribution, drawn in the file's order.
    pub space: Ordered<Distribution>,
}

/// A sweep file, as written (see the README's "Sweeps" section).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepFile {
    /// The sweep's name [default: the file's name without `.json`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The job the grid and random trials start from (relative to the sweep file)
    /// [default: the default job, unless `jobs` is given]; with `jobs` too, its trials
    /// come first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<PathBuf>,
    /// Whole job files (relative to the sweep file), each one a set of trials (the grid
    /// and random samples applied to it), after `base`'s.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<PathBuf>,
    /// Dotted config key to its values: every combination is a trial.
    #[serde(default, skip_serializing_if = "is_empty_ordered")]
    pub grid: Ordered<Vec<Value>>,
    /// Random trials, after the grid's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random: Option<RandomSpec>,
    /// Values set in every trial (dotted keys, like `--set`).
    #[serde(default, skip_serializing_if = "is_empty_ordered")]
    pub set: Ordered<Value>,
    /// The metric trials are compared by [default: each run's key metric].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// `"max"` or `"min"` [default: the run's own direction for its key metric, else
    /// `min` for names with loss/mse/mae/error, else `max`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal: Option<Goal>,
    /// The sweep directory [default: `runs/sweep-NAME`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// Successive-halving pruning over epoch rungs [default: none, every trial trains
    /// to its end].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<prune::PruneSpec>,
    /// A command or e-mail once the whole sweep ends, stops or fails (as a job's
    /// `notify`; sent by `crate::notify`). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<crate::job::NotifyConfig>,
}

fn is_empty_ordered<T>(o: &Ordered<T>) -> bool {
    o.0.is_empty()
}

/// A temporary file in `dir` with the usual permissions (0666 less the umask, like any
/// file a run writes; tempfile's own are owner-only), renamed into place by the caller.
pub(crate) fn shared_tempfile(
    dir: &Path,
    prefix: &str,
) -> std::io::Result<tempfile::NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder.tempfile_in(dir)
}

/// A config error of a sweep file: `config FILE FIELD: reason`.
pub(crate) fn sweep_error(file: &Path, field: &str, reason: impl Into<String>) -> Error {
    Error::Config {
        field: format!("{} {field}", file.display()),
        reason: reason.into(),
    }
}

/// A sweep file as read, with where it is.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// The file.
    pub path: PathBuf,
    /// Its content.
    pub file: SweepFile,
}

impl Sweep {
    /// Reads and checks a sweep file; errors name the file and the field.
    pub fn load(path: &Path) -> Result<Sweep> {
        let text = std::fs::read_to_string(path).at(path)?;
        Self::from_str(&text, path)
    }

    /// Reads a sweep file's `text` (`path` names it in errors and anchors relative paths).
    pub fn from_str(text: &str, path: &Path) -> Result<Sweep> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let file: SweepFile = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            sweep_error(path, &field, e.into_inner().to_string())
        })?;
        let sweep = Sweep {
            path: path.to_path_buf(),
            file,
        };
        sweep.check()?;
        Ok(sweep)
    }

    fn check(&self) -> Result<()> {
        let f = &self.file;
        let p = &self.path;
        if let Some(n) = &f.notify {
            n.validate(&format!("{} notify", p.display()))?;
        }
        for (key, values) in &f.grid.0 {
            if values.is_empty() {
                return Err(sweep_error(
                    p,
                    &format!("grid.{key}"),
                    "needs at least one value",
                ));
            }
        }
        if let Some(r) = &f.random {
            if r.space.0.is_empty() {
                return Err(sweep_error(p, "random.space", "names no key"));
            }
            for (key, d) in &r.space.0 {
                let field = format!("random.space.{key}");
                match d {
                    Distribution::Uniform([lo, hi])
                        if !(lo.is_finite() && hi.is_finite() && lo < hi) =>
                    {
                        return Err(sweep_error(
                            p,
                            &field,
                            format!("uniform needs lo < hi, got [{lo}, {hi}]"),
                        ))
                    }
                    Distribution::LogUniform([lo, hi])
                        if !(lo.is_finite() && hi.is_finite() && *lo > 0.0 && lo < hi) =>
                    {
                        return Err(sweep_error(
                            p,
                            &field,
                            format!("log_uniform needs 0 < lo < hi, got [{lo}, {hi}]"),
                        ))
                    }
                    Distribution::IntUniform([lo, hi]) if lo > hi => {
                        return Err(sweep_error(
                            p,
                            &field,
                            format!("int_uniform needs lo <= hi, got [{lo}, {hi}]"),
                        ))
                    }
                    Distribution::Choice(v) if v.is_empty() => {
                        return Err(sweep_error(p, &field, "choice needs at least one value"))
                    }
                    _ => {}
                }
            }
        }
        for key in f
            .grid
            .0
            .iter()
            .map(|(k, _)| k)
            .chain(f.set.0.iter().map(|(k, _)| k))
        {
            if key.trim().is_empty() || key.contains('=') {
                return Err(sweep_error(p, key, "is not a dotted config key"));
            }
        }
        if let Some(p) = &f.prune {
            p.check(&self.path)?;
        }
        if let Some(name) = &f.name {
            if name.is_empty() || name.contains(['/', '\\']) {
                return Err(sweep_error(
                    p,
                    "name",
                    format!("`{name}` cannot name a directory"),
                ));
            }
        }
        Ok(())
    }

    /// The sweep's name: `name`, else the file's name without its extension.
    pub fn name(&self) -> String {
        self.file.name.clone().unwrap_or_else(|| {
            self.path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "sweep".into())
        })
    }

    /// The sweep directory: `dir`, else `runs/sweep-NAME`.
    pub fn dir(&self) -> PathBuf {
        self.file.dir.clone().unwrap_or_else(|| {
            Path::new(crate::job::RUNS_DIR).join(format!("sweep-{}", self.name()))
        })
    }

    /// A path of the sweep file, taken relative to the file's folder.
    pub fn relative(&self, p: &Path) -> PathBuf {
        match self.path.parent() {
            Some(dir) if p.is_relative() => dir.join(p),
            _ => p.to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_file_and_the_field() {
        let p = Path::new("s.json");
        let e = Sweep::from_str(r#"{"grid": {"optimizer.lr": 1}}"#, p).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("config s.json grid.optimizer.lr: invalid type"),
            "{e}"
        );
        let e = Sweep::from_str(r#"{"gird": {}}"#, p)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("s.json") && e.contains("unknown field `gird`"),
            "{e}"
        );
        let e = Sweep::from_str(r#"{"grid": {"a": []}}"#, p)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "config s.json grid.a: needs at least one value");
        let e = Sweep::from_str(
            r#"{"random": {"samples": 2, "space": {"x": {"log_uniform": [0, 1]}}}}"#,
            p,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("random.space.x: log_uniform needs 0 < lo < hi"),
            "{e}"
        );
        let e = Sweep::from_str(r#"{"grid": {"a": [1], "a": [2]}}"#, p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`a` given twice"), "{e}");
    }

    #[test]
    fn the_grid_keeps_the_files_order_and_names_default_to_the_file() {
        let s = Sweep::from_str(
            r#"{"grid": {"z": [1], "a": [2, 3]}}"#,
            Path::new("d/my.json"),
        )
        .unwrap();
        let keys: Vec<&str> = s.file.grid.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["z", "a"]);
        assert_eq!(s.name(), "my");
        assert_eq!(s.dir(), Path::new("runs/sweep-my"));
        assert_eq!(s.relative(Path::new("b.json")), Path::new("d/b.json"));
        let back: SweepFile =
            serde_json::from_str(&serde_json::to_string(&s.file).unwrap()).unwrap();
        assert_eq!(back, s.file);
    }
}
