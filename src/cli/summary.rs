//! `deeptrain summary`: a model's layers with output shapes and parameter counts, from a
//! job config or a run; the same table is in `deeptrain inspect`.

use std::path::PathBuf;

use clap::Args;

use super::CliResult;
use crate::checkpoint::{self, LoadedCheckpoint};
use crate::console::outln;
use crate::error::Result;
use crate::job::JobConfig;
use crate::model::{group_layers, render_layer_table, summary_table, LayerSummary};
use crate::registry::Registry;

/// Print each layer of a model: output shape, parameters, trainable or frozen, and the total.
#[derive(Debug, Args)]
pub(super) struct SummaryArgs {
    /// A job config file (the model is built without training; the data is read to size
    /// it), or a run directory (its newest good checkpoint) or one checkpoint directory
    #[arg(value_name = "CONFIG_OR_RUN")]
    path: PathBuf,
}

pub(super) fn summary(args: &SummaryArgs, registry: &Registry) -> CliResult {
    if args.path.is_file() {
        let job = JobConfig::from_file(&args.path)?;
        let model = job.build_model_with(registry)?;
        let frozen = job.frozen_variables(model.as_ref())?;
        outln!("model {}", model.name());
        outln!("{}", summary_table(model.as_ref(), &frozen).trim_end());
        return Ok(0);
    }
    let ckpt = checkpoint::load_latest(&args.path)?;
    let (layers, frozen) = checkpoint_layers(&ckpt, registry)?;
    outln!("checkpoint {}", ckpt.dir.display());
    outln!("model {}", ckpt.meta.model_name);
    outln!("{}", render_layer_table(&layers, &frozen).trim_end());
    Ok(0)
}

/// The layers of a checkpoint's model and its frozen variables: the job's model rebuilt
/// from `registry` when it was built from a job config, else (or when it cannot be
/// rebuilt here: a component this program lacks, data gone) its tensors grouped by name
/// (output shapes unknown, nothing frozen).
pub(super) fn checkpoint_layers(
    ckpt: &LoadedCheckpoint,
    registry: &Registry,
) -> Result<(Vec<LayerSummary>, Vec<String>)> {
    if ckpt.meta.job_config.is_some() {
        let job = JobConfig::from_checkpoint(ckpt)?;
        match job.model_for_checkpoint(registry, ckpt) {
            Ok(model) => {
                let frozen = job.frozen_variables(model.as_ref())?;
                return Ok((model.layers(), frozen));
            }
            Err(e) => log::debug!("layers from the checkpoint's tensors: {e}"),
        }
    }
    let layers = group_layers(
        ckpt.model
            .iter()
            .filter(|(_, t)| t.dtype().is_float())
            .map(|(n, t)| (n.clone(), t.dims().to_vec())),
    );
    Ok((layers, Vec::new()))
}

/// The layers as the `"layers"` array of `inspect --json`.
pub(super) fn layers_json(layers: &[LayerSummary], frozen: &[String]) -> serde_json::Value {
    layers
        .iter()
        .map(|l| {
            let vars: Vec<serde_json::Value> = l
                .variables
                .iter()
                .map(|(n, s)| serde_json::json!({"name": n, "shape": s, "frozen": frozen.contains(n)}))
                .collect();
            let frozen_params: usize = l
                .variables
                .iter()
                .filter(|(n, _)| frozen.contains(n))
                .map(|(_, s)| s.iter().product::<usize>())
                .sum();
            serde_json::json!({
                "name": l.name,
                "output_shape": l.output_shape,
                "params": l.params(),
                "frozen_params": frozen_params,
                "variables": vars,
            })
        })
        .collect()
}
