//! The expansion of a sweep file into trials, in a stated and stable order, and
//! `sweep/plan.json`, the expansion written once so that every later command (a rerun, a
//! `--trial K` of a scheduler's array, `sweep-report`) sees the same numbered trials.
//!
//! Order: for each job (`base` if given, then each of `jobs`; with neither, the default
//! job), first the grid's cartesian product (the file's key order, the last key varying
//! fastest), then the random samples. Random values come from one ChaCha stream of the sweep's `seed`, drawn
//! sample by sample and key by key, one 64-bit word per value: the same file draws the
//! same values on every machine, and more samples draw the same first ones.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{sweep_error, Distribution, Ordered, Sweep, SweepFile, SWEEP_META_DIR};
use crate::error::{Error, IoContext, Result};
use crate::job::value_differences;
use crate::rng::RngStream;

/// The plan's file name inside `SWEEP_DIR/sweep/`.
pub const PLAN_FILE: &str = "plan.json";

/// The ChaCha stream id of a sweep's random draws (apart from the training streams).
const SWEEP_STREAM: u64 = 0x0053_5745_4550; // "SWEEP"

/// Longest trial directory name; longer ones are cut (the `tNNN` prefix keeps them unique).
const MAX_NAME: usize = 120;

/// One trial: a run of one job with some values set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// Its number, from 0, in plan order (`--trial K`, `SLURM_ARRAY_TASK_ID`).
    pub index: usize,
    /// Its run directory's name inside the sweep directory, e.g.
    /// `t003-optimizer.lr=0.001-data.batch_size=64`.
    pub name: String,
    /// The job file it runs, as the sweep file writes it (`None`: `base`, or the
    /// default job).
    #[serde(default)]
    pub job: Option<PathBuf>,
    /// The values it varies, dotted key to JSON value, in the sweep file's order.
    pub values: Ordered<Value>,
}

impl Trial {
    /// Whether two trials run the same job with the same values (index and name aside).
    fn same_as(&self, other: &Trial) -> bool {
        self.job == other.job && self.values == other.values
    }
}

/// The numbered trials of a sweep, and the sweep file they were expanded from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The sweep file as read when the plan was written (or last extended).
    pub sweep: SweepFile,
    /// The trials, by index.
    pub trials: Vec<Trial>,
}

/// A value as it reads in a directory name: numbers short, strings bare.
fn value_label(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => {
            let s = n.to_string();
            match n.as_f64() {
                Some(f) if s.len() > 10 && n.is_f64() => format!("{f:.4e}"),
                _ => s,
            }
        }
        other => other.to_string(),
    }
}

/// Characters a directory name keeps; everything else becomes `_`.
fn sanitise(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '_' | '=' | '+' | '-' => c,
            _ => '_',
        })
        .collect()
}

/// `tNNN[-JOB]-key=value-...`, sanitised and at most [`MAX_NAME`] characters.
fn trial_name(index: usize, job: Option<&Path>, values: &Ordered<Value>) -> String {
    let mut name = format!("t{index:03}");
    if let Some(stem) = job.and_then(Path::file_stem) {
        name.push('-');
        name.push_str(&stem.to_string_lossy());
    }
    for (k, v) in &values.0 {
        name.push_str(&format!("-{k}={}", value_label(v)));
    }
    let mut name = sanitise(&name);
    if name.len() > MAX_NAME {
        name.truncate(MAX_NAME);
    }
    name
}

/// A uniform float in `[0, 1)` from 53 bits of one word.
fn unit(rng: &mut RngStream) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

fn draw(rng: &mut RngStream, d: &Distribution) -> Value {
    let u = unit(rng);
    match d {
        Distribution::Uniform([lo, hi]) => Value::from(lo + (hi - lo) * u),
        Distribution::LogUniform([lo, hi]) => {
            Value::from((lo.ln() + (hi.ln() - lo.ln()) * u).exp())
        }
        Distribution::IntUniform([lo, hi]) => {
            let span = (hi - lo) as f64 + 1.0;
            Value::from(lo + ((u * span).floor() as i64).min(hi - lo))
        }
        Distribution::Choice(values) => {
            values[((u * values.len() as f64) as usize).min(values.len() - 1)].clone()
        }
    }
}

/// The varied values of every point: the grid's product, then the random samples (one
/// empty point when the file varies nothing).
fn points(file: &SweepFile) -> Vec<Ordered<Value>> {
    let mut out: Vec<Ordered<Value>> = Vec::new();
    if !file.grid.0.is_empty() {
        let mut combos: Vec<Vec<(String, Value)>> = vec![Vec::new()];
        for (key, values) in &file.grid.0 {
            // Appending each key in turn over every earlier combination makes the last
            // key vary fastest.
            combos = combos
                .into_iter()
                .flat_map(|c| {
                    values.iter().map(move |v| {
                        let mut c = c.clone();
                        c.push((key.clone(), v.clone()));
                        c
                    })
                })
                .collect();
        }
        out.extend(combos.into_iter().map(Ordered));
    }
    if let Some(r) = &file.random {
        let mut rng = RngStream::with_stream(r.seed, SWEEP_STREAM);
        for _ in 0..r.samples {
            let values = r
                .space
                .0
                .iter()
                .map(|(k, d)| (k.clone(), draw(&mut rng, d)))
                .collect();
            out.push(Ordered(values));
        }
    }
    if out.is_empty() {
        out.push(Ordered::default());
    }
    out
}

/// The trials of `sweep`, numbered from 0 in the stated order (see the module comment).
pub fn expand(sweep: &Sweep) -> Vec<Trial> {
    // The base job (given, or the default one when no job file is listed), then each file.
    let mut jobs: Vec<Option<PathBuf>> = Vec::new();
    if sweep.file.base.is_some() || sweep.file.jobs.is_empty() {
        jobs.push(None);
    }
    jobs.extend(sweep.file.jobs.iter().cloned().map(Some));
    let points = points(&sweep.file);
    let mut trials = Vec::new();
    for job in &jobs {
        for values in &points {
            let index = trials.len();
            trials.push(Trial {
                index,
                name: trial_name(index, job.as_deref(), values),
                job: job.clone(),
                values: values.clone(),
            });
        }
    }
    trials
}

/// Writes `plan` to `path` atomically (temp file, then rename); with `replace` false, an
/// existing file is kept and `false` returned.
fn write_plan(path: &Path, plan: &Plan, replace: bool) -> Result<bool> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).at(dir)?;
    let json = serde_json::to_string_pretty(plan).map_err(|e| Error::Encode {
        what: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let mut tmp = crate::sweep::shared_tempfile(dir, ".plan.").at(dir)?;
    std::io::Write::write_all(tmp.as_file_mut(), format!("{json}\n").as_bytes()).at(tmp.path())?;
    tmp.as_file().sync_all().at(tmp.path())?;
    if replace {
        tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
        return Ok(true);
    }
    match tmp.persist_noclobber(path) {
        Ok(_) => Ok(true),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(Error::io(path, e.error)),
    }
}

impl Plan {
    /// The plan file of a sweep directory.
    pub fn path(sweep_dir: &Path) -> PathBuf {
        sweep_dir.join(SWEEP_META_DIR).join(PLAN_FILE)
    }

    /// Reads the plan of a sweep directory.
    pub fn read(sweep_dir: &Path) -> Result<Plan> {
        let path = Self::path(sweep_dir);
        let text = std::fs::read_to_string(&path).at(&path)?;
        serde_json::from_str(&text).map_err(|e| Error::ConfigJson { path, source: e })
    }

    /// The plan of `sweep`: written on first use; afterwards the written one, which the
    /// sweep file must still describe. A changed file is refused naming what changed,
    /// unless `extend`: then the trials it adds are appended (numbered after the old
    /// ones), and it may change only `grid`, `random` and `jobs`, keeping every old trial.
    pub fn prepare(sweep: &Sweep, extend: bool) -> Result<Plan> {
        let path = Self::path(&sweep.dir());
        let fresh = Plan {
            sweep: sweep.file.clone(),
            trials: expand(sweep),
        };
        if !path.exists() && write_plan(&path, &fresh, false)? {
            return Ok(fresh);
        }
        let old = Self::read(&sweep.dir())?;
        if old.sweep == sweep.file {
            return Ok(old);
        }
        let to_json = |f: &SweepFile| serde_json::to_value(f).unwrap_or(Value::Null);
        let changed: Vec<String> = value_differences(&to_json(&old.sweep), &to_json(&sweep.file))
            .into_iter()
            .map(|p| if p.is_empty() { "(all)".into() } else { p })
            .collect();
        let field = path.display().to_string();
        if !extend {
            return Err(Error::Config {
                field,
                reason: format!(
                    "{} changed since this sweep was planned (in {}): rerun with --extend to add its new trials, or give the sweep another \"dir\"",
                    sweep.path.display(),
                    changed.join(", ")
                ),
            });
        }
        let fixed: Vec<&String> = changed
            .iter()
            .filter(|c| {
                let top = c.split('.').next().unwrap_or("");
                !matches!(top, "grid" | "random" | "jobs")
            })
            .collect();
        if let Some(c) = fixed.first() {
            return Err(sweep_error(
                &sweep.path,
                c,
                "changed, but --extend only adds trials (it may change grid, random and jobs)",
            ));
        }
        let mut plan = Plan {
            sweep: sweep.file.clone(),
            trials: old.trials.clone(),
        };
        for t in &old.trials {
            if !fresh.trials.iter().any(|n| n.same_as(t)) {
                return Err(sweep_error(
                    &sweep.path,
                    "grid/random/jobs",
                    format!(
                        "--extend only adds trials, and trial {} is not in the file any more",
                        t.name
                    ),
                ));
            }
        }
        for t in fresh.trials {
            if !plan.trials.iter().any(|o| o.same_as(&t)) {
                let index = plan.trials.len();
                plan.trials.push(Trial {
                    index,
                    name: trial_name(index, t.job.as_deref(), &t.values),
                    ..t
                });
            }
        }
        write_plan(&path, &plan, true)?;
        Ok(plan)
    }

    /// The keys the trials vary, in first-seen order.
    pub fn varied_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        for t in &self.trials {
            for (k, _) in &t.values.0 {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
        keys
    }
}

/// What `deeptrain train` needs to start a trial: the job file (`None`: the default job),
/// the `--set` overrides (the sweep's `set`, then the trial's values, as JSON) and the
/// run directory.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialRun {
    /// The job file, relative to the working directory.
    pub config: Option<PathBuf>,
    /// `(dotted key, JSON value)` pairs, applied in order.
    pub overrides: Vec<(String, String)>,
    /// The trial's run directory.
    pub run_dir: PathBuf,
}

impl Sweep {
    /// The run directory of `trial`.
    pub fn trial_dir(&self, trial: &Trial) -> PathBuf {
        self.dir().join(&trial.name)
    }

    /// The job config `trial` trains (its file or the default job, with its overrides),
    /// checked as `deeptrain train` checks it: a sweep refuses to start on a trial that
    /// could not.
    pub fn trial_job(&self, trial: &Trial) -> Result<crate::job::JobConfig> {
        let run = self.trial_run(trial);
        let job = match &run.config {
            Some(path) => crate::job::JobConfig::from_file_with_overrides(path, &run.overrides)?,
            None => crate::job::JobConfig::default_with_overrides(&run.overrides)?,
        };
        job.validate()?;
        Ok(job)
    }

    /// How `trial` is trained (see [`TrialRun`]).
    pub fn trial_run(&self, trial: &Trial) -> TrialRun {
        let config = match &trial.job {
            Some(j) => Some(self.relative(j)),
            None => self.file.base.as_ref().map(|b| self.relative(b)),
        };
        let overrides = self
            .file
            .set
            .0
            .iter()
            .chain(&trial.values.0)
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect();
        TrialRun {
            config,
            overrides,
            run_dir: self.trial_dir(trial),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sweep(text: &str) -> Sweep {
        Sweep::from_str(text, Path::new("s.json")).unwrap()
    }

    #[test]
    fn the_grid_varies_the_last_key_fastest_then_random_samples_follow() {
        let s = sweep(
            r#"{"grid": {"optimizer.lr": [0.003, 0.001], "data.batch_size": [64, 128, 256]},
                "random": {"samples": 2, "seed": 1, "space": {"model.dropout": {"uniform": [0.0, 0.5]}}}}"#,
        );
        let t = expand(&s);
        assert_eq!(t.len(), 8);
        let names: Vec<&str> = t.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names[..6],
            [
                "t000-optimizer.lr=0.003-data.batch_size=64",
                "t001-optimizer.lr=0.003-data.batch_size=128",
                "t002-optimizer.lr=0.003-data.batch_size=256",
                "t003-optimizer.lr=0.001-data.batch_size=64",
                "t004-optimizer.lr=0.001-data.batch_size=128",
                "t005-optimizer.lr=0.001-data.batch_size=256",
            ]
        );
        let d: Vec<f64> = t[6..]
            .iter()
            .map(|t| t.values.0[0].1.as_f64().unwrap())
            .collect();
        assert!(
            d.iter().all(|x| (0.0..0.5).contains(x)) && d[0] != d[1],
            "{d:?}"
        );
        // The same seed draws the same values; more samples draw the same first ones.
        let more = sweep(
            r#"{"grid": {"optimizer.lr": [0.003, 0.001], "data.batch_size": [64, 128, 256]},
                "random": {"samples": 3, "seed": 1, "space": {"model.dropout": {"uniform": [0.0, 0.5]}}}}"#,
        );
        assert_eq!(expand(&more)[..8], t[..]);
        let other = sweep(
            r#"{"random": {"samples": 2, "seed": 2, "space": {"model.dropout": {"uniform": [0.0, 0.5]}}}}"#,
        );
        assert_ne!(expand(&other)[0].values, t[6].values);
    }

    #[test]
    fn a_trial_runs_its_job_with_the_sweeps_set_then_its_values() {
        let s = sweep(
            r#"{"jobs": ["a.json", "b/c.json"], "grid": {"optimizer.name": ["sgd"]}, "set": {"train.epochs": 2}, "dir": "out"}"#,
        );
        let t = expand(&s);
        assert_eq!(t[1].name, "t001-c-optimizer.name=sgd");
        let run = s.trial_run(&t[1]);
        assert_eq!(run.config.as_deref(), Some(Path::new("b/c.json")));
        assert_eq!(
            run.overrides,
            [
                ("train.epochs".to_string(), "2".to_string()),
                ("optimizer.name".to_string(), "\"sgd\"".to_string())
            ]
        );
        assert_eq!(run.run_dir, Path::new("out/t001-c-optimizer.name=sgd"));
    }

    /// The issue's sweep file gives `base` and `jobs` together: the base job's trials
    /// come first, then each job file's, every one with the same grid.
    #[test]
    fn base_and_jobs_together_run_the_base_first_then_each_file() {
        let s = sweep(
            r#"{"base": "m.json", "jobs": ["cnn.json", "resnet.json"], "grid": {"optimizer.lr": [0.1, 0.01]}}"#,
        );
        let t = expand(&s);
        assert_eq!(t.len(), 6);
        let files: Vec<Option<&Path>> = t.iter().map(|t| t.job.as_deref()).collect();
        let (cnn, resnet) = (Some(Path::new("cnn.json")), Some(Path::new("resnet.json")));
        assert_eq!(files, [None, None, cnn, cnn, resnet, resnet]);
        assert_eq!(
            s.trial_run(&t[0]).config.as_deref(),
            Some(Path::new("m.json"))
        );
        assert_eq!(t[3].name, "t003-cnn-optimizer.lr=0.01");
    }

    #[test]
    fn names_are_sanitised_and_long_floats_shortened() {
        let v = Ordered(vec![
            ("model.hidden".to_string(), serde_json::json!([32, 16])),
            (
                "optimizer.lr".to_string(),
                serde_json::json!(0.000123456789),
            ),
        ]);
        assert_eq!(
            trial_name(7, None, &v),
            "t007-model.hidden=_32_16_-optimizer.lr=1.2346e-4"
        );
    }
}
