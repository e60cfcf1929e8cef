//! `deeptrain inspect`: where a run or checkpoint stands, as text or JSON.

use std::path::{Path, PathBuf};

use clap::Args;

use super::CliResult;
use crate::checkpoint;
use crate::console::outln;
use crate::report::data::status_line;
use crate::state::{Phase, TrainState};

/// Show the state of a run's newest good checkpoint (or of one checkpoint).
#[derive(Debug, Args)]
pub(super) struct InspectArgs {
    /// A run directory (its newest good checkpoint is shown) or one checkpoint directory
    #[arg(value_name = "PATH")]
    path: PathBuf,
    /// Print one JSON object (checkpoint, epoch, global_step, batches_fit, phase,
    /// finished, metrics, best, layers, ...) [default: lines of text]
    #[arg(long)]
    json: bool,
}

fn phase_name(phase: &Phase) -> &'static str {
    match phase {
        Phase::EpochStart => "epoch_start",
        Phase::Train => "train",
        Phase::Validate { .. } => "validate",
        Phase::Done { .. } => "done",
    }
}

/// The JSON that `deeptrain inspect --json` prints.
pub fn inspect_json(checkpoint: &Path, state: &TrainState) -> serde_json::Value {
    let metrics: serde_json::Map<String, serde_json::Value> = state
        .latest_metrics()
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                serde_json::json!(if v.is_finite() { Some(v) } else { None }),
            )
        })
        .collect();
    serde_json::json!({
        "checkpoint": checkpoint.display().to_string(),
        "epoch": state.epoch,
        "global_step": state.global_step,
        "batches_fit": state.batches_fit,
        "batches_validated": state.batches_validated,
        "times_validated": state.times_validated,
        "batch_in_epoch": state.batch_in_epoch,
        "set_name": state.set_name,
        "phase": phase_name(&state.phase),
        "status": state.interrupt_status().to_string(),
        "finished": state.is_done(),
        "learning_rate": state.learning_rate,
        "metrics": metrics,
        "best": state.best.as_ref().map(|b| serde_json::json!({
            "metric": b.metric, "value": b.value, "epoch": b.epoch, "batches_fit": b.batches_fit,
        })),
        "remaining_sets": state.train_data.sets_to_process,
        "wall_time_secs": state.time.total_secs,
        "train_secs": state.time.train_secs,
        "validation_secs": state.time.validation_secs,
        "checkpoint_secs": state.time.checkpoint_secs,
    })
}

pub(super) fn inspect(args: &InspectArgs, registry: &crate::registry::Registry) -> CliResult {
    // The loading path of `resume`: `load_latest` verifies the files and validates the
    // state; the saved job config must parse as `resume` parses it.
    let ckpt = checkpoint::load_latest(&args.path)?;
    if ckpt.meta.job_config.is_some() {
        crate::job::JobConfig::from_checkpoint(&ckpt)?;
    }
    let state = &ckpt.meta.state;
    // A model that cannot be rebuilt leaves the rest of the report standing.
    let layers = super::summary::checkpoint_layers(&ckpt, registry)
        .map_err(|e| log::warn!("no layer table for {}: {e}", ckpt.dir.display()))
        .ok();
    if args.json {
        let mut json = inspect_json(&ckpt.dir, state);
        if let Some((layers, frozen)) = &layers {
            json["layers"] = super::summary::layers_json(layers, frozen);
        }
        outln!("{json}");
        return Ok(0);
    }
    outln!("checkpoint {}", ckpt.dir.display());
    outln!(
        "model {}  optimizer {}",
        ckpt.meta.model_name,
        ckpt.meta.optimizer_name
    );
    outln!(
        "status {}",
        status_line(state, Some(ckpt.meta.saved_because))
    );
    outln!("saved because {:?}", ckpt.meta.saved_because);
    outln!("{}", state.summary(ckpt.meta.run.epochs).trim_end());
    if let Some((layers, frozen)) = &layers {
        outln!(
            "{}",
            crate::model::render_layer_table(layers, frozen).trim_end()
        );
    }
    Ok(0)
}
