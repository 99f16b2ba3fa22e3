//! Headless commands: each prints a table or text for people, JSON (or CSV/Markdown, where a
//! report has a table) for scripts, progress and per-environment problems on stderr, and
//! returns an exit code from [`exit`].
//!
//! The clap types live in `cli`; the commands take the one output [`Format`].

pub mod caches;
pub mod envs;
pub mod exit;
pub mod run;
pub mod runbooks;
pub mod runs;
pub mod sandbox;
pub mod stats;
mod table;

pub use table::Table;

use crate::estate::EnvDiscovery;
use std::process::ExitCode;

/// What a headless command prints on stdout. Each command's `--output` (in `cli`) offers the
/// formats it supports; a command given one it has no table for prints text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// A table or lines for people.
    #[default]
    Text,
    /// JSON for scripts.
    Json,
    /// CSV (the report of a `ttl-audit` run).
    Csv,
    /// Markdown (the report of a `ttl-audit` run).
    Markdown,
}

/// Prints each environment's failure as one line on stderr; says whether any failed.
pub(crate) fn report_env_errors(found: &[EnvDiscovery]) -> bool {
    let mut failed = false;
    for d in found {
        match &d.result {
            Ok(discovery) => {
                for warning in &discovery.warnings {
                    eprintln!("warning: {}: {warning}", d.env.name);
                }
            }
            Err(e) => {
                failed = true;
                eprintln!("error: {}: {e}", d.env.name);
            }
        }
    }
    failed
}

pub(crate) fn code(partial: bool) -> ExitCode {
    ExitCode::from(if partial { exit::PARTIAL } else { exit::OK })
}
