//! The sandbox: a local estate of real valkey-server processes that behaves like the seed
//! estates on AWS — replication groups (cluster mode off with a primary endpoint that follows
//! failover, and a real cluster), a "serverless" cache, a self-managed "ECS" Valkey with RDB,
//! an SSM-like parameter store and ElastiCache-style events — behind the same
//! [`ControlPlane`](crate::controlplane::ControlPlane) trait as AWS.

pub mod auth;
pub mod client;
pub mod cluster;
pub mod consumer;
pub mod daemon;
pub mod down;
pub mod ecs;
pub mod events;
pub mod exec;
pub mod exec_agent;
pub mod failover;
pub mod faults;
pub mod layout;
pub mod nodes;
/// The sandbox keeps its parameters in the file-backed store of the control-plane layer.
pub use crate::controlplane::param_store as params;
pub mod plane;
pub mod proxy;
pub mod queue;
pub mod repair;
pub mod restore;
pub mod seed;
pub mod setup;
pub mod snapshots;
pub mod state;
pub mod status;
pub mod steady;
pub mod tls;
pub mod up;

pub use down::down;
pub use plane::SandboxControlPlane;
pub use setup::{SandboxError, UpOptions};
pub use up::{UpReport, up};

use crate::config::EnvConfig;
use crate::domain::ProviderKind;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Overrides where the sandbox lives (tests run isolated sandboxes side by side).
pub const DIR_ENV: &str = "CACHEDECK_SANDBOX_DIR";

/// `$CACHEDECK_SANDBOX_DIR`, else `<state dir>/sandbox`.
pub fn sandbox_dir() -> PathBuf {
    std::env::var_os(DIR_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::config::state_dir().join("sandbox"))
}

/// The sandbox's environments while it is up (empty when it is down).
pub fn environments() -> BTreeMap<String, EnvConfig> {
    environments_in(&sandbox_dir())
}

/// [`environments`] of the sandbox in `dir`.
pub fn environments_in(dir: &std::path::Path) -> BTreeMap<String, EnvConfig> {
    match state::State::load(dir) {
        Ok(Some(state)) => state
            .environments
            .iter()
            .map(|e| {
                (
                    e.name.clone(),
                    EnvConfig::implied(ProviderKind::Sandbox, e.protection),
                )
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}
