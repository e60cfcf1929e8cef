//! Starting a job from trained weights and freezing variables: the job config's
//! `init_from` (a run, a checkpoint, an exported model or a `.safetensors` file),
//! `init_map` (renames of the source's tensors) and `freeze` (variable-name patterns the
//! optimizer leaves alone).
//!
//! Patterns are `glob::Pattern`s (`*` any run of characters, `?` one, `[..]` a class),
//! from the rust-lang `glob` crate: small, dependency-free and already in the lock file.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_nn::VarMap;

use super::JobConfig;
use crate::checkpoint::{self, LoadedCheckpoint, MODEL_FILE, STATE_FILE};
use crate::error::{Error, Result};
use crate::model::{Mlp, MlpConfig, Model};
use crate::optim::{named_vars, NamedVar};
use crate::registry::{parse_args, MlpArgs, Registry};
use crate::rng::{RngStream, StreamId};

/// What [`load_weights`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct InitReport {
    /// Where the weights came from: the checkpoint directory or safetensors file read.
    pub source: PathBuf,
    /// Model variables overwritten from the source, sorted.
    pub loaded: Vec<String>,
    /// Model variables the source has no tensor for (they keep their seeded init), sorted.
    pub kept: Vec<String>,
    /// Source tensors (after renaming) no model variable is named after, sorted.
    pub unused: Vec<String>,
}

/// The tensors of a weights source, by name, with the file or checkpoint read: a file
/// (safetensors), a checkpoint directory, a directory holding `model.safetensors` (an
/// exported model), or a run directory (its newest good checkpoint).
pub fn read_weights(path: &Path) -> Result<(PathBuf, HashMap<String, Tensor>)> {
    let from_file = |file: &Path| -> Result<(PathBuf, HashMap<String, Tensor>)> {
        let tensors = candle_core::safetensors::load(file, &Device::Cpu).map_err(|e| {
            Error::config(
                "init_from",
                format!("{}: not a readable safetensors file: {e}", file.display()),
            )
        })?;
        Ok((file.to_path_buf(), tensors))
    };
    if path.is_file() {
        return from_file(path);
    }
    if path.is_dir() && !path.join(STATE_FILE).is_file() && path.join(MODEL_FILE).is_file() {
        return from_file(&path.join(MODEL_FILE));
    }
    let ckpt = checkpoint::load_latest(path).map_err(|e| {
        Error::config(
            "init_from",
            format!(
                "{}: no weights there (a run, a checkpoint, a directory with {MODEL_FILE} \
                 or a .safetensors file): {e}",
                path.display()
            ),
        )
    })?;
    Ok((ckpt.dir, ckpt.model))
}

/// Overwrites every variable of `varmap` whose name is that of a source tensor after
/// renaming by `map` (source name → model name), when the shapes agree. A shape
/// mismatch, a rename of a tensor the source lacks, or no match at all is an error.
pub fn load_weights(
    varmap: &VarMap,
    source: &Path,
    map: &BTreeMap<String, String>,
) -> Result<InitReport> {
    let (read, tensors) = read_weights(source)?;
    load_tensors(varmap, tensors, map, &read)
}

/// [`load_weights`] with the source tensors already read; `source` names them in errors.
pub fn load_tensors(
    varmap: &VarMap,
    mut tensors: HashMap<String, Tensor>,
    map: &BTreeMap<String, String>,
    source: &Path,
) -> Result<InitReport> {
    // Take every renamed tensor out first, so that swaps (a→b, b→a) work.
    let mut renamed = Vec::new();
    for (old, new) in map {
        let t = tensors.remove(old).ok_or_else(|| {
            Error::config(
                format!("init_map.{old}"),
                format!("{} has no tensor `{old}`", source.display()),
            )
        })?;
        renamed.push((new.clone(), t));
    }
    tensors.extend(renamed);
    let vars = named_vars(varmap);
    let (mut loaded, mut kept) = (Vec::new(), Vec::new());
    for NamedVar { name, var } in &vars {
        let Some(t) = tensors.remove(name) else {
            kept.push(name.clone());
            continue;
        };
        if t.dims() != var.dims() {
            return Err(Error::config(
                "init_from",
                format!(
                    "`{name}` has shape {:?} in {} but {:?} in the model",
                    t.dims(),
                    source.display(),
                    var.dims()
                ),
            ));
        }
        var.set(&t.to_dtype(var.dtype())?.to_device(var.device())?)?;
        loaded.push(name.clone());
    }
    if loaded.is_empty() {
        return Err(Error::config(
            "init_from",
            format!(
                "no variable of the model is in {} (model: {}; source: {}); rename with init_map",
                source.display(),
                preview(vars.iter().map(|v| v.name.clone())),
                preview(tensors.into_keys())
            ),
        ));
    }
    let mut unused: Vec<String> = tensors.into_keys().collect();
    unused.sort();
    Ok(InitReport {
        source: source.to_path_buf(),
        loaded,
        kept,
        unused,
    })
}

/// Up to five names, sorted, then how many more.
fn preview(names: impl Iterator<Item = String>) -> String {
    let mut names: Vec<String> = names.collect();
    names.sort();
    let more = names.len().saturating_sub(5);
    names.truncate(5);
    let mut s = names.join(", ");
    if more > 0 {
        s.push_str(&format!(" and {more} more"));
    }
    if s.is_empty() {
        s.push_str("none");
    }
    s
}

/// The names of `varmap`'s float variables matched by any of `patterns`, sorted; a
/// pattern that is malformed or matches nothing is an error naming it.
pub fn frozen_variables(varmap: &VarMap, patterns: &[String]) -> Result<Vec<String>> {
    let names: Vec<String> = named_vars(varmap).into_iter().map(|v| v.name).collect();
    frozen_names(&names, patterns)
}

/// [`frozen_variables`] over names.
fn frozen_names(names: &[String], patterns: &[String]) -> Result<Vec<String>> {
    let mut frozen = Vec::new();
    for p in patterns {
        let pattern = glob::Pattern::new(p)
            .map_err(|e| Error::config("freeze", format!("`{p}` is not a pattern: {e}")))?;
        let hits: Vec<&String> = names.iter().filter(|n| pattern.matches(n)).collect();
        if hits.is_empty() {
            return Err(Error::config(
                "freeze",
                format!(
                    "`{p}` matches no variable of the model ({})",
                    preview(names.iter().cloned())
                ),
            ));
        }
        frozen.extend(hits.into_iter().cloned());
    }
    frozen.sort();
    frozen.dedup();
    Ok(frozen)
}

/// The variables the optimizer trains: every float variable of `model` that is neither
/// one of its [buffers](Model::buffers) (batch norm's running statistics) nor matched by
/// `patterns`.
pub(super) fn trainable_vars(model: &dyn Model, patterns: &[String]) -> Result<Vec<NamedVar>> {
    let frozen = frozen_variables(model.varmap(), patterns)?;
    let buffers = model.buffers();
    Ok(named_vars(model.varmap())
        .into_iter()
        .filter(|v| frozen.binary_search(&v.name).is_err() && !buffers.contains(&v.name))
        .collect())
}

impl JobConfig {
    /// The model this config describes, holding the checkpoint's weights. An MLP is sized
    /// by the checkpoint (no data is read); other models are sized by the train data, as
    /// when they were built, from `registry`.
    pub fn model_for_checkpoint(
        &self,
        registry: &Registry,
        ckpt: &LoadedCheckpoint,
    ) -> Result<Box<dyn Model>> {
        let rows = |name: &str, dim: usize| -> Result<usize> {
            ckpt.model
                .get(name)
                .and_then(|t| t.dims().get(dim).copied())
                .ok_or_else(|| Error::CorruptCheckpoint {
                    path: ckpt.dir.join(MODEL_FILE),
                    reason: format!("no 2-d tensor `{name}` for the job's model"),
                })
        };
        let model: Box<dyn Model> = match self.model.name.as_str() {
            "mlp" => {
                let m: MlpArgs = parse_args("model", "mlp", &self.model.args)?;
                let last = format!("layers.{}.weight", m.hidden.len());
                let config = MlpConfig {
                    inputs: rows("layers.0.weight", 1)?,
                    hidden: m.hidden.clone(),
                    outputs: rows(&last, 0)?,
                    dropout: m.dropout as f32,
                };
                let mut rng = RngStream::new(self.train.seed, StreamId::Init);
                Box::new(Mlp::new(config, &mut rng, &Device::Cpu)?)
            }
            _ => {
                let info = self.loaders_with(registry)?.info;
                let mut rng = RngStream::new(self.train.seed, StreamId::Init);
                self.new_model(registry, &info, &mut rng, &Device::Cpu)?
            }
        };
        load_tensors(
            model.varmap(),
            ckpt.model.clone(),
            &BTreeMap::new(),
            &ckpt.dir,
        )?;
        Ok(model)
    }

    /// The variables of `model` this config's `freeze` patterns match, sorted.
    pub fn frozen_variables(&self, model: &dyn Model) -> Result<Vec<String>> {
        frozen_variables(model.varmap(), &self.freeze)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_names_and_unmatched_ones_are_errors() {
        let names: Vec<String> = ["layers.0.bias", "layers.0.weight", "layers.1.weight"]
            .map(String::from)
            .to_vec();
        let f = frozen_names(&names, &["layers.0.*".into(), "*.weight".into()]).unwrap();
        assert_eq!(f, ["layers.0.bias", "layers.0.weight", "layers.1.weight"]);
        let err = frozen_names(&names, &["encoder.*".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("freeze") && err.contains("encoder.*"), "{err}");
    }

    #[test]
    fn buffers_are_never_trainable() {
        let args = crate::model::CnnArgs {
            channels: vec![2],
            batch_norm: true,
            hidden: vec![],
            ..Default::default()
        };
        let mut rng = RngStream::new(1, StreamId::Init);
        let cnn = crate::model::Cnn::new(args, &[4, 4], 3, &mut rng, &Device::Cpu).unwrap();
        let names = |patterns: &[String]| -> Vec<String> {
            trainable_vars(&cnn, patterns)
                .unwrap()
                .into_iter()
                .map(|v| v.name)
                .collect()
        };
        assert_eq!(
            names(&[]),
            [
                "conv.0.bn.bias",
                "conv.0.bn.weight",
                "conv.0.weight",
                "fc.0.bias",
                "fc.0.weight"
            ]
        );
        assert_eq!(
            names(&["fc.*".into()]),
            ["conv.0.bn.bias", "conv.0.bn.weight", "conv.0.weight"]
        );
        // The buffers are still variables of the model: checkpoints and init_from see them.
        let all = frozen_variables(cnn.varmap(), &["*".into()]).unwrap();
        assert!(
            all.contains(&"conv.0.bn.running_mean".to_string()),
            "{all:?}"
        );
    }
}
