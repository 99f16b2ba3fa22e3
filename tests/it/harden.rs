//! The hardening suite. It enumerates the runbook catalog, so a runbook is swept the moment
//! it is added: every runbook declares in [`hooks`] what its state means, and a runbook
//! without a hook fails the suite.
//!
//! - [`kill`]: every mutating runbook on the sandbox, stopped (SIGKILL, SIGTERM, SIGHUP) at
//!   journal record boundaries and at points inside long steps, then `runs resume`d: the
//!   final state equals an uninterrupted run's, no mutating call is repeated, the lock is
//!   released.
//! - [`canary`]: the sandbox's secrets never reach stdout, stderr, trace logs, journals,
//!   dry-run plans, the TUI's screen or any process's argv.
//!
//! CI runs a slice; `scripts/soak.sh` runs the whole sweep (`CACHEDECK_SOAK=1`). Each test
//! adds its counts to a summary file (see [`summary`]) printed at the end.

pub mod canary;
pub mod connection;
pub mod hooks;
pub mod hostile;
pub mod kill;
pub mod nodes;
pub mod operators;
pub mod parsers;
pub mod screen;
pub mod summary;
pub mod terminal;

/// Whether the full sweep was asked for (`CACHEDECK_SOAK=1`, `scripts/soak.sh`).
pub fn soak() -> bool {
    std::env::var("CACHEDECK_SOAK").is_ok_and(|v| v == "1")
}
