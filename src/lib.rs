//! cachedeck: the on-call engineer's terminal for Valkey/Redis caches on AWS.
//!
//! See ARCHITECTURE.md for the modules and how data flows between them.

pub mod audit;
pub mod aws;
pub mod cli;
pub mod config;
pub mod connectivity;
pub mod consumers;
pub mod controlplane;
pub mod domain;
pub mod ecsexec;
pub mod escape;
pub mod estate;
pub mod headless;
pub mod logging;
pub mod probe;
pub mod runbook;
pub mod sandbox;
pub mod snapshot;
pub mod tui;
pub mod valkey;
pub mod watch;
