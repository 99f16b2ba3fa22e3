//! Headless commands: each prints a table for people or JSON for scripts, progress and
//! per-environment problems on stderr, and returns an exit code.

pub mod caches;
pub mod envs;
pub mod exec;
pub mod sandbox;
pub mod stats;
mod table;

pub use table::Table;

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
