//! Composing a job config from several sources: `"extends": "base.json"` chains of files
//! and `--set KEY=VALUE` overrides, merged as JSON before the typed config is read; and
//! the run's name and directory when the job leaves them to be derived.
//!
//! Merging happens on `serde_json::Value`s (objects merge key by key, recursively; any
//! other value of the child replaces the base's), then the result is read by
//! [`JobConfig::from_json_str`], so every check and error of a single file applies to the
//! composed config too.

use std::path::{Path, PathBuf};

use serde::de::Error as _;
use serde_json::{Map, Value};

use super::JobConfig;
use crate::error::{Error, IoContext, Result};
use crate::registry::{self, MlpArgs};

/// The key naming a base config, relative to the file that says it.
pub const EXTENDS_KEY: &str = "extends";

/// Where descriptive run directories go: `runs/NAME`.
pub const RUNS_DIR: &str = "runs";

impl JobConfig {
    /// Reads a job config file with its `extends` chain resolved, then applies
    /// `overrides` (`("optimizer.lr", "0.001")`, `("model.hidden", "[512]")`) in order.
    ///
    /// - `"extends": "base.json"` (relative to the file that says it) merges the file over
    ///   its base: objects key by key, recursively; any other value of the child wins. A
    ///   base may extend another; a cycle is an error naming the files.
    /// - An override's key is a dotted path into the JSON; its value is read as JSON
    ///   (`0.001`, `[512]`, `true`, `"x"`), else taken as a string (`name=wide`). A key the
    ///   config does not have is the same error a file with that key gives, naming the
    ///   `--set`.
    pub fn from_file_with_overrides(path: &Path, overrides: &[(String, String)]) -> Result<Self> {
        let mut chain = Vec::new();
        let (value, composed) = load_chain(path, &mut chain)?;
        Self::from_value_with_overrides(value, composed, path, overrides)
    }

    /// This config with `overrides` applied (as [`Self::from_file_with_overrides`]).
    pub fn with_overrides(&self, overrides: &[(String, String)]) -> Result<Self> {
        if overrides.is_empty() {
            return Ok(self.clone());
        }
        let value = serde_json::to_value(self).map_err(|e| Error::config("job", e.to_string()))?;
        Self::from_value_with_overrides(value, true, Path::new("the run's config"), overrides)
    }

    /// The default job with `overrides` applied (as [`Self::from_file_with_overrides`]).
    pub fn default_with_overrides(overrides: &[(String, String)]) -> Result<Self> {
        let origin = Path::new("the default job");
        Self::from_value_with_overrides(Value::Object(Map::new()), true, origin, overrides)
    }

    fn from_value_with_overrides(
        mut value: Value,
        composed: bool,
        origin: &Path,
        overrides: &[(String, String)],
    ) -> Result<Self> {
        let mut job = if composed {
            Self::from_json_str(&value.to_string(), origin)?
        } else {
            // A lone file: read its own text, so error positions are the file's.
            let text = std::fs::read_to_string(origin).at(origin)?;
            Self::from_json_str(&text, origin)?
        };
        for (key, raw) in overrides {
            set_path(&mut value, key, parse_value(raw))?;
            // Checked one at a time, so an error names the `--set` that caused it.
            let origin = PathBuf::from(format!("--set {key}={raw}"));
            job = Self::from_json_str(&value.to_string(), &origin)?;
        }
        Ok(job)
    }

    /// This job with its name and run directory filled in where left empty: an empty
    /// `name` becomes [`Self::descriptive_name`], an empty `train.run_dir` `runs/NAME`.
    /// (No numbered suffix: picking a free directory is the caller's choice.)
    pub fn resolved(&self) -> JobConfig {
        let mut job = self.clone();
        if job.name.is_empty() {
            job.name = job.descriptive_name();
        }
        if job.train.run_dir.as_os_str().is_empty() {
            job.train.run_dir = Path::new(RUNS_DIR).join(&job.name);
        }
        job
    }

    /// The run directory this job writes to: `train.run_dir`, or `runs/NAME`.
    pub fn run_dir(&self) -> PathBuf {
        self.resolved().train.run_dir
    }

    /// A name from the settings that tell runs apart: model and size, optimizer and
    /// rate, batch size and seed, e.g. `mlp-256_adamw-1e-3_b128_s7`.
    pub fn descriptive_name(&self) -> String {
        let model = match registry::parse_args::<MlpArgs>("model", "mlp", &self.model.args) {
            Ok(m) if self.model.name == "mlp" && !m.hidden.is_empty() => {
                let sizes: Vec<String> = m.hidden.iter().map(|h| h.to_string()).collect();
                format!("mlp-{}", sizes.join("-"))
            }
            _ => self.model.name.clone(),
        };
        // The rate as the optimizer reads it, its default included where it is a built-in.
        let optimizer = registry::builtins()
            .optimizers
            .resolve(&self.optimizer)
            .unwrap_or_else(|_| self.optimizer.clone());
        let rate = match optimizer.number("lr") {
            Some(lr) => format!("{}-{lr:e}", optimizer.name),
            None => optimizer.name.clone(),
        };
        format!(
            "{model}_{rate}_b{}_s{}",
            self.data.batch_size, self.train.seed
        )
    }
}

/// Reads `path` and its bases; `chain` holds the files being read (for cycles). Returns
/// the merged value and whether it is more than the file's own text.
fn load_chain(path: &Path, chain: &mut Vec<PathBuf>) -> Result<(Value, bool)> {
    let key = std::fs::canonicalize(path).at(path)?;
    if let Some(i) = chain.iter().position(|p| *p == key) {
        let cycle: Vec<String> = chain[i..]
            .iter()
            .chain(std::iter::once(&key))
            .map(|p| p.display().to_string())
            .collect();
        return Err(json_error(
            path,
            format!("{EXTENDS_KEY}: a cycle: {}", cycle.join(" -> ")),
        ));
    }
    let text = std::fs::read_to_string(path).at(path)?;
    let mut value: Value = serde_json::from_str(&text).map_err(|source| Error::ConfigJson {
        path: path.to_path_buf(),
        source,
    })?;
    let base = match value.as_object_mut().map(|m| m.remove(EXTENDS_KEY)) {
        None | Some(None) => return Ok((value, false)),
        Some(Some(Value::String(base))) => base,
        Some(Some(other)) => {
            return Err(json_error(
                path,
                format!("{EXTENDS_KEY}: {other} is not a file name (a string)"),
            ))
        }
    };
    let base_path = path.parent().unwrap_or(Path::new("")).join(&base);
    chain.push(key);
    let (mut merged, _) = load_chain(&base_path, chain)?;
    chain.pop();
    merge(&mut merged, value);
    Ok((merged, true))
}

/// Merges `child` over `base`: objects key by key (recursively), anything else replaced.
pub fn merge(base: &mut Value, child: Value) {
    match (base, child) {
        (Value::Object(b), Value::Object(c)) => {
            for (k, v) in c {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, c) => *b = c,
    }
}

/// An override's value: JSON when it parses as JSON, else the text as a string.
fn parse_value(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()))
}

/// Sets `value` at the dotted `key`, creating objects on the way.
fn set_path(value: &mut Value, key: &str, new: Value) -> Result<()> {
    let origin = || PathBuf::from(format!("--set {key}"));
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(json_error(
            &origin(),
            format!("`{key}` is not a dotted key like optimizer.lr"),
        ));
    }
    let mut at = value;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if at.is_null() {
            *at = Value::Object(Map::new());
        }
        let Value::Object(map) = at else {
            return Err(json_error(
                &origin(),
                format!("{} is not a section", parts[..i].join(".")),
            ));
        };
        if i + 1 == parts.len() {
            map.insert((*part).to_string(), new);
            return Ok(());
        }
        at = map
            .entry((*part).to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    Ok(())
}

fn json_error(path: &Path, msg: String) -> Error {
    Error::ConfigJson {
        path: path.to_path_buf(),
        source: serde_json::Error::custom(msg),
    }
}

/// Parses `KEY=VALUE` as given to `--set`.
pub fn parse_override(s: &str) -> std::result::Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not KEY=VALUE (e.g. optimizer.lr=0.001)")),
    }
}

/// The dotted paths at which two configs differ (`optimizer.lr`, `train.epochs`), in
/// order; empty when they are equal.
pub fn config_differences(a: &JobConfig, b: &JobConfig) -> Vec<String> {
    let (Ok(a), Ok(b)) = (serde_json::to_value(a), serde_json::to_value(b)) else {
        return vec!["(unserializable)".into()];
    };
    value_differences(&a, &b)
}

/// The dotted paths at which two JSON values differ (a key on one side only counts), in
/// order; `""` when they differ at the top without both being objects; empty when equal.
/// Config diffs on resume and sweep-file changes both read this.
pub fn value_differences(a: &Value, b: &Value) -> Vec<String> {
    fn walk(a: &Value, b: &Value, at: &str, out: &mut Vec<String>) {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
                keys.sort();
                keys.dedup();
                for k in keys {
                    let path = if at.is_empty() {
                        k.clone()
                    } else {
                        format!("{at}.{k}")
                    };
                    match (x.get(k), y.get(k)) {
                        (Some(v), Some(w)) => walk(v, w, &path, out),
                        _ => out.push(path),
                    }
                }
            }
            (x, y) if x != y => out.push(at.to_string()),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(a, b, "", &mut out);
    out
}
