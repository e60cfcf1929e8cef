//! `deeptrain export`: a trained model as `model.safetensors` plus `model_card.json`, for
//! use outside deeptrain (e.g. Python's `safetensors`).

use std::path::PathBuf;

use clap::Args;

use super::evaluate::CheckpointArg;
use super::CliResult;
use crate::console::outln;
use crate::job::{Predictor, EXPORT_MODEL_FILE, MODEL_CARD_FILE};

/// Export a trained model for Python and other tools: model.safetensors and model_card.json
///
/// DIR/model.safetensors holds the model's variables under the names checkpoints use;
/// DIR/model_card.json the model config, input shape and scale, classes, the checkpoint's
/// metrics and best, and the source checkpoint.
#[derive(Debug, Args)]
pub(super) struct ExportArgs {
    /// A run directory (its newest good checkpoint is used) or one checkpoint directory
    #[arg(value_name = "RUN")]
    path: PathBuf,
    /// Directory to write into (created if missing; files there are replaced)
    #[arg(short, long, value_name = "DIR")]
    output: PathBuf,
    /// Which checkpoint of the run [default: latest]
    #[arg(long, value_enum, value_name = "WHICH", default_value_t = CheckpointArg::Latest, hide_default_value = true)]
    checkpoint: CheckpointArg,
}

pub(super) fn export(args: &ExportArgs, registry: &crate::registry::Registry) -> CliResult {
    let predictor =
        Predictor::load_checkpoint_with(&args.path, args.checkpoint.into(), &[], registry)?;
    let card = predictor.export(&args.output)?;
    outln!("{}", args.output.join(EXPORT_MODEL_FILE).display());
    outln!("{}", args.output.join(MODEL_CARD_FILE).display());
    outln!(
        "{} ({} parameters, input {:?}) from {}",
        card.model_name,
        card.parameters,
        card.input_shape,
        card.source_checkpoint
    );
    Ok(0)
}
