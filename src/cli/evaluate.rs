//! `deeptrain evaluate`: every configured metric, a per-class table and the confusion
//! matrix of a trained model, over the run's validation data or another source.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::{set_threads, threads_from_env_or, CliResult};
use crate::checkpoint;
use crate::console::outln;
use crate::error::{Error, IoContext};
use crate::job::{parse_override, CheckpointChoice, EvalData, Evaluation, Predictor};
use crate::report::confusion::render_confusion_matrix;

/// Which checkpoint of a run to use (`--checkpoint`).
#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub(super) enum CheckpointArg {
    /// The newest good checkpoint (or the checkpoint directory given)
    #[default]
    Latest,
    /// RUN/best: the checkpoint with the best key metric
    Best,
}

impl From<CheckpointArg> for CheckpointChoice {
    fn from(c: CheckpointArg) -> Self {
        match c {
            CheckpointArg::Latest => CheckpointChoice::Latest,
            CheckpointArg::Best => CheckpointChoice::Best,
        }
    }
}

/// Evaluate a trained model: every configured metric, a per-class table, the confusion matrix
///
/// The model runs in eval mode over the run's validation data (or --data), batched as the
/// run's validation; evaluation.json is written to -o DIR.
#[derive(Debug, Args)]
pub(super) struct EvaluateArgs {
    /// A run directory (its newest good checkpoint is used) or one checkpoint directory
    #[arg(value_name = "RUN_OR_CHECKPOINT")]
    path: PathBuf,
    /// A labelled file or directory AutoData reads (npy, safetensors, csv, MNIST idx),
    /// scaled and batched like the run's validation data [default: the run's validation
    /// data]
    #[arg(long, value_name = "SOURCE")]
    data: Option<PathBuf>,
    /// Which checkpoint of the run [default: latest]
    #[arg(long, value_enum, value_name = "WHICH", default_value_t = CheckpointArg::Latest, hide_default_value = true)]
    checkpoint: CheckpointArg,
    /// Print the evaluation as one JSON object instead of tables
    #[arg(long)]
    json: bool,
    /// Change a setting of the run's config for this evaluation only, e.g.
    /// `--set data.val_batch_size=500` (repeatable; KEY a dotted path, VALUE JSON or text)
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_override)]
    set: Vec<(String, String)>,
    /// Directory to write evaluation.json and confusion_matrix.png into [default:
    /// RUN_DIR/evaluation]
    #[arg(short, long, value_name = "DIR")]
    output: Option<PathBuf>,
    /// CPU threads for candle [default: $CANDLE_NUM_THREADS, else 1]
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
}

pub(super) fn evaluate(args: &EvaluateArgs, registry: &crate::registry::Registry) -> CliResult {
    set_threads(threads_from_env_or(args.threads, 0));
    let predictor =
        Predictor::load_checkpoint_with(&args.path, args.checkpoint.into(), &args.set, registry)?;
    let data = match &args.data {
        Some(p) => EvalData::Source(p.clone()),
        None => EvalData::Validation,
    };
    let eval = predictor.evaluate(&data)?;
    let json = serde_json::to_string_pretty(&eval)
        .map_err(|e| Error::config("evaluation", e.to_string()))?;
    let dir = args
        .output
        .clone()
        .unwrap_or_else(|| checkpoint::run_dir_of(predictor.checkpoint_dir()).join("evaluation"));
    std::fs::create_dir_all(&dir).at(&dir)?;
    let file = dir.join("evaluation.json");
    std::fs::write(&file, format!("{json}\n")).at(&file)?;
    let figure = dir.join("confusion_matrix.png");
    if !eval.confusion_matrix.is_empty() {
        let labels: Vec<String> = eval
            .per_class
            .iter()
            .map(|r| r.name.clone().unwrap_or_else(|| r.class.to_string()))
            .collect();
        let title = format!(
            "{} — {} ({} samples)",
            predictor.meta().run.name,
            eval.data,
            eval.samples
        );
        render_confusion_matrix(&title, &eval.confusion_matrix, &labels, &figure)
            .map_err(Error::from)?;
    }
    if args.json {
        outln!("{json}");
    } else {
        print_tables(&eval);
        outln!("wrote {}", file.display());
        if !eval.confusion_matrix.is_empty() {
            outln!("wrote {}", figure.display());
        }
    }
    Ok(0)
}

fn fmt(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.4}"))
}

fn print_tables(e: &Evaluation) {
    outln!("checkpoint {}", e.checkpoint);
    outln!("data       {} ({} samples)", e.data, e.samples);
    for (name, v) in &e.metrics {
        outln!("{name:<18} {}", fmt(*v));
    }
    if e.per_class.is_empty() {
        return;
    }
    outln!("");
    outln!("class  precision  recall  f1      support");
    for r in &e.per_class {
        outln!(
            "{:<6} {:<10.4} {:<7.4} {:<7.4} {}",
            r.name.clone().unwrap_or_else(|| r.class.to_string()),
            r.precision,
            r.recall,
            r.f1,
            r.support
        );
    }
    outln!("");
    outln!("confusion matrix (rows: actual, columns: predicted)");
    let width = e
        .confusion_matrix
        .iter()
        .flatten()
        .map(|c| c.to_string().len())
        .max()
        .unwrap_or(1)
        .max(e.confusion_matrix.len().to_string().len());
    let head: Vec<String> = (0..e.confusion_matrix.len())
        .map(|i| format!("{i:>width$}"))
        .collect();
    outln!("{:>width$}  {}", "", head.join(" "));
    for (i, row) in e.confusion_matrix.iter().enumerate() {
        let cells: Vec<String> = row.iter().map(|c| format!("{c:>width$}")).collect();
        outln!("{i:>width$}  {}", cells.join(" "));
    }
}
