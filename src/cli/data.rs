//! `deeptrain data`: what AutoData infers from a directory (or file) and the exact batch
//! sequence of one epoch, as a trainer seeded with `--seed` would see it; or, given a job
//! config, the job's train and validation data and its transform chain.

use std::path::PathBuf;

use clap::Args;

use super::CliResult;
use crate::console::outln;
use crate::data_loaders::{AutoData, DataLoader};
use crate::error::Error;
use crate::job::JobConfig;
use crate::registry::Registry;

/// Show what the AutoData loader infers from a directory (or one file) and the batches of
/// one epoch, or a job config's data and transform chain
#[derive(Debug, Args)]
pub(super) struct DataArgs {
    /// A directory of data files (npy, safetensors, csv, MNIST idx), one data file, or a
    /// job config (`.json`)
    #[arg(value_name = "DIR|FILE|JOB")]
    path: PathBuf,
    /// Samples per batch [default: the first file's sample count (files mode), 32
    /// (dataset mode)]
    #[arg(long, value_name = "N")]
    batch_size: Option<usize>,
    /// Shuffle the order of the sets [default: off]
    #[arg(long)]
    shuffle: bool,
    /// Also shuffle the samples within each file [default: off]
    #[arg(long)]
    shuffle_samples: bool,
    /// Seed of the shuffle stream
    #[arg(long, value_name = "S", default_value_t = 0)]
    seed: u64,
    /// Drop the last batch when it is smaller than the batch size [default: off]
    #[arg(long)]
    drop_last: bool,
    /// Labels from this file, one per sample of all sets in set order [default: a labels
    /// file beside the data, else labels inside the data files, else none]
    #[arg(long, value_name = "PATH")]
    labels: Option<PathBuf>,
    /// Read only this file of the directory (dataset mode) [default: every file, as
    /// numbered sets]
    #[arg(long, value_name = "NAME")]
    file: Option<String>,
    /// File format: npy, safetensors, csv, idx or a registered extension [default:
    /// inferred from the file names]
    #[arg(long, value_name = "EXT")]
    format: Option<String>,
    /// Print the report as JSON [default: text]
    #[arg(long)]
    json: bool,
}

pub(super) fn data(args: &DataArgs, registry: &Registry) -> CliResult {
    let path = args.path.as_path();
    if path.is_file() && path.extension().is_some_and(|e| e == "json") {
        return job_data(args, registry);
    }
    let mut builder = if path.is_file() {
        AutoData::from_file(path)?
    } else {
        AutoData::from_dir(path)?
    };
    if let Some(n) = args.batch_size {
        builder = builder.batch_size(n);
    }
    if let Some(l) = &args.labels {
        builder = builder.labels(l);
    }
    if let Some(f) = &args.file {
        builder = builder.file(f);
    }
    if let Some(f) = &args.format {
        builder = builder.format(f);
    }
    let loader = builder
        .seed(args.seed)
        .shuffle(args.shuffle)
        .shuffle_samples(args.shuffle_samples)
        .drop_last(args.drop_last)
        .build()?;
    let mut state = loader.new_state();
    loader.plan_epoch(1, &mut state)?;
    let report = loader.report(1, &state)?;
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| Error::Data(e.to_string()))?
        );
    } else {
        // Listings are long and often piped into `head`: a closed pipe is not an error.
        use std::io::Write;
        match write!(std::io::stdout().lock(), "{report}") {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                return Err(Error::io("stdout", e).into())
            }
            _ => {}
        }
    }
    Ok(0)
}

/// `deeptrain data JOB`: the job's data, read as training reads it, and its transforms.
fn job_data(args: &DataArgs, registry: &Registry) -> CliResult {
    let job = JobConfig::from_file(&args.path)?.resolve_with(registry, &args.path)?;
    let overview = job.data_overview(registry)?;
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&overview).map_err(|e| Error::Data(e.to_string()))?
        );
    } else {
        outln!("{}", overview.to_string().trim_end());
    }
    Ok(0)
}
