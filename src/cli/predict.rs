//! `deeptrain predict`: a trained model's outputs for new inputs, streamed batch by batch
//! from any input AutoData reads into a `.npy`, `.csv` or `.safetensors` file.

use std::path::PathBuf;

use clap::Args;

use super::evaluate::CheckpointArg;
use super::{set_threads, threads_from_env_or, CliError, CliResult};
use crate::console::outln;
use crate::job::{check_output_path, Predictor};

/// Predict with a trained model: class probabilities and classes, or regression values
#[derive(Debug, Args)]
pub(super) struct PredictArgs {
    /// A run directory (its newest good checkpoint is used) or one checkpoint directory
    #[arg(value_name = "RUN")]
    path: PathBuf,
    /// A file or directory AutoData reads (npy, safetensors, csv, MNIST idx), raw as the
    /// training data was: the run's own input scaling is applied
    #[arg(long, value_name = "FILE|DIR")]
    input: PathBuf,
    /// Output file, by extension: .npy (f32 [n, outputs]; a classifier's predicted
    /// classes go to OUT.classes.npy, i64), .csv (p0..pK-1,class or y0 per row), or
    /// .safetensors (tensors `outputs` and `classes`). .npy and .csv are written batch by
    /// batch; .safetensors is collected in memory first
    #[arg(short, long, value_name = "OUT")]
    output: PathBuf,
    /// Which checkpoint of the run [default: latest]
    #[arg(long, value_enum, value_name = "WHICH", default_value_t = CheckpointArg::Latest, hide_default_value = true)]
    checkpoint: CheckpointArg,
    /// CPU threads for candle [default: $CANDLE_NUM_THREADS, else 1]
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
}

pub(super) fn predict(args: &PredictArgs, registry: &crate::registry::Registry) -> CliResult {
    check_output_path(&args.output).map_err(|e| CliError::Usage(e.to_string()))?;
    set_threads(threads_from_env_or(args.threads, 0));
    let predictor =
        Predictor::load_checkpoint_with(&args.path, args.checkpoint.into(), &[], registry)?;
    let summary = predictor.predict_file(&args.input, &args.output)?;
    for f in &summary.files {
        outln!("{}", f.display());
    }
    outln!(
        "{} samples, {} values each, from {}",
        summary.samples,
        summary.columns,
        predictor.checkpoint_dir().display()
    );
    Ok(0)
}
