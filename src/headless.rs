//! Headless commands: each prints a table or text for people, JSON (or CSV/Markdown, where a
//! report has a table) for scripts, progress and per-environment problems on stderr, and
//! returns an exit code from [`exit`].
//!
//! The clap types live in `cli`; the commands take the one output [`Format`].

pub mod caches;
pub mod complete;
pub mod envs;
pub mod exec;
pub mod exit;
pub mod run;
pub mod runbooks;
pub mod runs;
pub mod sandbox;
pub mod snapshots;
pub mod stats;
mod table;

pub use table::Table;

use crate::escape::{escape_lines_capped, json_for_terminal};
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
                    eprintln!(
                        "warning: {}: {}",
                        escape_lines_capped(&d.env.name, 200),
                        escape_lines_capped(warning, 2000)
                    );
                }
            }
            Err(e) => {
                failed = true;
                eprintln!(
                    "error: {}: {}",
                    escape_lines_capped(&d.env.name, 200),
                    escape_lines_capped(&e.to_string(), 2000)
                );
            }
        }
    }
    failed
}

/// Prints a JSON document on stdout, safe for a terminal (see [`json_for_terminal`]).
pub(crate) fn print_json(json: &str) {
    println!("{}", json_for_terminal(json));
}

/// Prints `error: <message>` on stderr, the message escaped line by line.
pub(crate) fn print_error(message: impl std::fmt::Display) {
    eprintln!("error: {}", escape_lines_capped(&message.to_string(), 2000));
}

pub(crate) fn code(partial: bool) -> ExitCode {
    ExitCode::from(if partial { exit::PARTIAL } else { exit::OK })
}
