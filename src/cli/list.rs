//! `deeptrain list`: every component a job config can name (the program's registry, so a
//! program hosting the CLI with its own components lists those too), with each
//! argument's type, default and meaning.

use clap::Args;

use super::{CliError, CliResult};
use crate::console::outln;
use crate::registry::{KindListing, Registry};

/// List the components a job config can name, with their arguments and defaults.
#[derive(Debug, Args)]
pub(super) struct ListArgs {
    /// Only this kind: models, losses, optimizers, schedules, callbacks, transforms,
    /// sources [default: every kind]
    #[arg(value_name = "KIND")]
    kind: Option<String>,
    /// Print the listing as JSON [default: text]
    #[arg(long)]
    json: bool,
}

pub(super) fn list(args: &ListArgs, registry: &Registry) -> CliResult {
    let mut kinds = registry.listing();
    if let Some(wanted) = &args.kind {
        let names: Vec<&str> = kinds.iter().map(|k| k.plural).collect();
        // `model` and `models` both name the kind.
        let wanted = wanted.trim_end_matches('s');
        kinds.retain(|k| k.plural.trim_end_matches('s') == wanted);
        if kinds.is_empty() {
            return Err(CliError::Usage(format!(
                "no component kind `{}`; kinds: {}",
                args.kind.as_deref().unwrap_or_default(),
                names.join(", ")
            )));
        }
    }
    if args.json {
        let json = serde_json::to_string_pretty(&kinds).unwrap_or_default();
        outln!("{json}");
    } else {
        outln!("{}", render(&kinds).trim_end());
    }
    Ok(0)
}

/// The listing as text: a heading per kind, a line per component, an indented line per
/// argument.
fn render(kinds: &[KindListing]) -> String {
    let mut out = String::new();
    for kind in kinds {
        out.push_str(&format!("{} ({}):\n", kind.plural, kind.slot));
        for c in &kind.entries {
            out.push_str(&format!("  {:<16} {}\n", c.name, c.about));
            for a in &c.args {
                out.push_str(&format!(
                    "      {:<14} {:<22} default {:<10} {}\n",
                    a.name,
                    a.kind,
                    a.default.to_string(),
                    a.doc
                ));
            }
        }
        out.push('\n');
    }
    out
}
