//! Exporting a trained model for use outside deeptrain: `model.safetensors` (the model's
//! variables under the names checkpoints use, readable by Python's `safetensors`) and
//! `model_card.json` (what the model is, what it takes and how well it did).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::predict::{CheckpointChoice, Predictor};
use crate::error::{Error, IoContext, Result};
use crate::model::Task;
use crate::registry::Component;

/// The file name of the exported weights.
pub const EXPORT_MODEL_FILE: &str = "model.safetensors";
/// The file name of the exported model card.
pub const MODEL_CARD_FILE: &str = "model_card.json";

/// `model_card.json`: what an exported model is and how to feed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// The run's name.
    pub name: String,
    /// `classification` or `regression`.
    pub task: String,
    /// The model section of the job config: its registered name and arguments.
    pub model: Component,
    /// The model as its `Model::name` says (e.g. `mlp 64-128-10`).
    pub model_name: String,
    /// Scalar parameters.
    pub parameters: u64,
    /// Shape of one input sample, without the batch axis.
    pub input_shape: Vec<usize>,
    /// Inputs are multiplied by this before the model sees them (the job's `data.scale`).
    pub input_scale: f32,
    /// Then these transforms are applied, in order (the job's `data.transforms`, each
    /// with every argument): deterministic ones (`scale`, `normalize`, `label_map`) as in
    /// training; random ones as outside training, `random_crop` cutting the centre crop
    /// and `random_flip` and `gaussian_noise` doing nothing. With a `label_map`, classes
    /// are the mapped ids. Empty: none.
    #[serde(default)]
    pub transforms: Vec<Component>,
    /// Number of classes (classifiers).
    pub num_classes: Option<usize>,
    /// Class names, where the data gave any (else `null`: classes are their indices).
    pub class_names: Option<Vec<String>>,
    /// Tensor names, shapes and dtypes in `model.safetensors`, sorted by name.
    pub tensors: Vec<TensorInfo>,
    /// The checkpoint's latest metrics (train and `val_*`); `null` where undefined.
    pub metrics: BTreeMap<String, Option<f64>>,
    /// The best key metric of the run at the checkpoint.
    pub best: Option<serde_json::Value>,
    /// The checkpoint directory the weights came from.
    pub source_checkpoint: String,
    /// The deeptrain version that exported it.
    pub deeptrain_version: String,
}

/// One tensor of an exported model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorInfo {
    /// Its name (as in checkpoints).
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its element type, e.g. `f32`.
    pub dtype: String,
}

/// Exports the newest good checkpoint of `run` (a run or checkpoint directory) into
/// `out_dir` (created if missing); see [`Predictor::export`].
pub fn export(run: &Path, out_dir: &Path) -> Result<ModelCard> {
    Predictor::load_checkpoint(run, CheckpointChoice::Latest)?.export(out_dir)
}

impl Predictor {
    /// The model card of this checkpoint.
    pub fn model_card(&self) -> Result<ModelCard> {
        let meta = self.meta();
        let tensors = self
            .variables()?
            .into_iter()
            .map(|(name, t)| TensorInfo {
                name,
                shape: t.dims().to_vec(),
                dtype: t.dtype().as_str().to_string(),
            })
            .collect();
        let (task, num_classes) = match self.task() {
            Task::Classification { num_classes } => ("classification", Some(num_classes)),
            Task::Regression => ("regression", None),
        };
        Ok(ModelCard {
            name: meta.run.name.clone(),
            task: task.into(),
            model: self.job().model.clone(),
            model_name: meta.model_name.clone(),
            parameters: meta.run.parameters,
            input_shape: self.data_info().sample_shape.clone(),
            input_scale: self.job().data.input_scale(),
            transforms: self.job().data.transforms.clone(),
            num_classes,
            class_names: self.job().data.class_names.clone(),
            tensors,
            metrics: meta
                .state
                .latest_metrics()
                .into_iter()
                .map(|(k, v)| (k, v.is_finite().then_some(v)))
                .collect(),
            best: meta
                .state
                .best
                .as_ref()
                .and_then(|b| serde_json::to_value(b).ok()),
            source_checkpoint: self.checkpoint_dir().display().to_string(),
            deeptrain_version: env!("CARGO_PKG_VERSION").into(),
        })
    }

    /// Writes `out_dir/model.safetensors` (the model's variables, same names as in
    /// checkpoints) and `out_dir/model_card.json`; returns the card.
    pub fn export(&self, out_dir: &Path) -> Result<ModelCard> {
        std::fs::create_dir_all(out_dir).at(out_dir)?;
        let card = self.model_card()?;
        let vars: std::collections::HashMap<String, candle_core::Tensor> = self
            .variables()?
            .into_iter()
            .map(|(n, t)| t.to_device(&candle_core::Device::Cpu).map(|t| (n, t)))
            .collect::<std::result::Result<_, _>>()?;
        let model_path: PathBuf = out_dir.join(EXPORT_MODEL_FILE);
        candle_core::safetensors::save(&vars, &model_path)?;
        let card_path = out_dir.join(MODEL_CARD_FILE);
        let json = serde_json::to_string_pretty(&card)
            .map_err(|e| Error::config("model card", e.to_string()))?;
        std::fs::write(&card_path, json + "\n").at(&card_path)?;
        Ok(card)
    }
}
