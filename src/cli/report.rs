//! `deeptrain report`: renders a checkpoint's `report.png`.

use std::path::PathBuf;

use clap::Args;

use super::CliResult;
use crate::checkpoint;
use crate::console::outln;
use crate::error::Error;
use crate::report::render_state_report;

/// Render the state report (report.png) of a run's newest good checkpoint (or of one
/// checkpoint).
#[derive(Debug, Args)]
pub(super) struct ReportArgs {
    /// A run directory (its newest good checkpoint is drawn) or one checkpoint directory
    #[arg(value_name = "PATH")]
    path: PathBuf,
    /// The PNG file to write [default: report.png in the checkpoint directory]
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

pub(super) fn report(args: &ReportArgs) -> CliResult {
    let ckpt = checkpoint::load_latest(&args.path)?;
    let out = args
        .output
        .clone()
        .unwrap_or_else(|| ckpt.dir.join("report.png"));
    let meta = &ckpt.meta;
    render_state_report(&meta.state, &meta.run, Some(meta.saved_because), &out)
        .map_err(Error::from)?;
    outln!("{}", out.display());
    Ok(0)
}
