//! The sandbox state file: every process it started (pid, port, role, data dir), every cache
//! with its endpoints, and the proxies of the endpoint daemon. The single source of truth for
//! `down`, `status` and discovery.

use crate::domain::{AuthMode, CacheKind, EcsRef, Endpoint, Endpoints, NodeRole, Protection};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// File name of the state inside the sandbox dir.
pub const STATE_FILE: &str = "state.json";

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("read sandbox state {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parse sandbox state {path}: {source}; run `cachedeck sandbox down` and `up` again")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("write sandbox state {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Everything the sandbox started.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct State {
    #[serde(with = "time::serde::rfc3339")]
    pub created: time::OffsetDateTime,
    /// The local CA that signed the endpoints' certificate (PEM).
    pub ca_file: PathBuf,
    pub engine: String,
    pub engine_version: String,
    pub environments: Vec<EnvState>,
    pub caches: Vec<CacheState>,
    /// The endpoint daemon (`cachedeck sandbox serve`), once started.
    pub daemon: Option<DaemonState>,
    pub proxies: Vec<ProxyState>,
    /// Keys seeded on `up`.
    pub seeded_keys: u64,
    /// The consumer services (ECS-like application tasks using the caches).
    #[serde(default)]
    pub consumers: Vec<ConsumerState>,
}

/// One consumer service and its running task (`sandbox::consumer`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConsumerState {
    pub env: String,
    pub service: String,
    /// The cache its task definition names.
    pub cache: String,
    /// The task definition's variables (secrets by parameter name, never values).
    pub vars: Vec<super::consumer::TaskVar>,
    pub task: String,
    pub pid: i32,
    pub log: PathBuf,
    /// Tasks started so far (task ids count up).
    pub generation: u32,
    /// A fault its tasks start with (`cachedeck sandbox fault`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<super::faults::ConsumerFault>,
}

/// An environment of the sandbox.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EnvState {
    pub name: String,
    pub protection: Protection,
}

/// The endpoint daemon process.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DaemonState {
    pub pid: i32,
    pub log: PathBuf,
}

/// One cache as the sandbox built it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CacheState {
    pub env: String,
    pub name: String,
    pub kind: CacheKind,
    pub cluster_mode: bool,
    pub auth: AuthMode,
    pub tls: bool,
    pub automatic_failover: bool,
    pub description: String,
    /// ACL/RBAC user the application logs in as.
    pub username: Option<String>,
    /// Parameter holding the AUTH token or the user's password (SecureString).
    pub password_parameter: Option<String>,
    /// Parameter holding the whole URL (seed 002).
    pub url_parameter: Option<String>,
    pub endpoint: Option<Endpoint>,
    pub endpoints: Endpoints,
    pub shards: Vec<ShardState>,
    pub notes: Vec<String>,
    pub ecs: Option<EcsRef>,
    /// `creating` while a restore's processes start (CreateReplicationGroup answers at once
    /// and the endpoint daemon builds the cache), `create-failed` when they could not; absent
    /// once the cache is built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// A node group.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ShardState {
    pub id: String,
    pub slots: Option<String>,
    pub nodes: Vec<NodeState>,
}

/// One valkey-server process.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeState {
    pub id: String,
    pub port: u16,
    pub pid: i32,
    pub dir: PathBuf,
    /// The role it was started in; discovery asks the node for the current one.
    pub initial_role: NodeRole,
    pub availability_zone: String,
    /// Server arguments (never secrets: those are in the node's 0600 config file), kept so
    /// `up` can start a dead node again.
    #[serde(default)]
    pub args: Vec<String>,
}

/// What an endpoint proxy does with a new connection.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ProxyMode {
    /// To whichever backend answers ROLE as primary; connections to a demoted one are closed.
    Primary,
    /// Round-robin over backends that answer ROLE as replica.
    Reader,
    /// Always the one backend.
    Single,
}

/// One TLS endpoint served by the daemon.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProxyState {
    /// `<env>/<cache>/<primary|reader|endpoint>`, or `<env>/<cache>/<node id>` for a
    /// cluster node's TLS front.
    pub name: String,
    /// The address it listens on; `None` is 127.0.0.1 (a cluster node's front listens on
    /// [`super::tls::CLUSTER_FRONT_HOST`] with the node's own port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub port: u16,
    pub mode: ProxyMode,
    pub backends: Vec<u16>,
    /// How the daemon logs in to ask ROLE (a parameter name, never the secret).
    pub username: Option<String>,
    pub password_parameter: Option<String>,
}

impl ProxyState {
    /// The address the proxy listens on.
    pub fn listen_host(&self) -> &str {
        self.host.as_deref().unwrap_or(crate::valkey::server::HOST)
    }
}

impl State {
    /// Loads the state of the sandbox in `dir`; `Ok(None)` when it is down.
    pub fn load(dir: &Path) -> Result<Option<State>, StateError> {
        let path = dir.join(STATE_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StateError::Read { path, source }),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| StateError::Parse { path, source })
    }

    /// Writes the state atomically (temp file + rename), so readers never see half a file.
    pub fn save(&self, dir: &Path) -> Result<(), StateError> {
        let path = dir.join(STATE_FILE);
        let tmp = dir.join(format!(".{STATE_FILE}.{}", std::process::id()));
        let write = |p: &Path| -> std::io::Result<()> {
            let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
            std::fs::write(p, text)?;
            std::fs::rename(p, &path)
        };
        write(&tmp).map_err(|source| StateError::Write {
            path: path.clone(),
            source,
        })
    }

    pub fn cache(&self, env: &str, name: &str) -> Option<&CacheState> {
        self.caches.iter().find(|c| c.env == env && c.name == name)
    }

    pub fn cache_mut(&mut self, env: &str, name: &str) -> Option<&mut CacheState> {
        self.caches
            .iter_mut()
            .find(|c| c.env == env && c.name == name)
    }

    /// Every valkey-server process: (cache, node).
    pub fn nodes(&self) -> impl Iterator<Item = (&CacheState, &NodeState)> {
        self.caches.iter().flat_map(|c| {
            c.shards
                .iter()
                .flat_map(move |s| s.nodes.iter().map(move |n| (c, n)))
        })
    }
}
