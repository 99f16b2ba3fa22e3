//! Headless commands: each prints a table for people or JSON for scripts, progress and
//! per-environment problems on stderr, and returns an exit code.

pub mod caches;
pub mod envs;
pub mod sandbox;
pub mod stats;
mod table;

pub use table::Table;

use crate::escape::{escape_lines, json_for_terminal};
use crate::estate::EnvDiscovery;
use std::process::ExitCode;

/// Exit codes of the listing commands (runbooks document their own set).
pub mod exit {
    /// Everything asked for was listed.
    pub const OK: u8 = 0;
    /// At least one environment could not be read; the others were listed.
    pub const PARTIAL: u8 = 1;
    /// Bad input: unknown environment, invalid config.
    pub const BAD_INPUT: u8 = 2;
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
                        escape_lines(&d.env.name, 200),
                        escape_lines(warning, 2000)
                    );
                }
            }
            Err(e) => {
                failed = true;
                eprintln!(
                    "error: {}: {}",
                    escape_lines(&d.env.name, 200),
                    escape_lines(&e.to_string(), 2000)
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
    eprintln!("error: {}", escape_lines(&message.to_string(), 2000));
}

pub(crate) fn code(partial: bool) -> ExitCode {
    ExitCode::from(if partial { exit::PARTIAL } else { exit::OK })
}
