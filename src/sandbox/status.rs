//! `cachedeck sandbox status`: each process the sandbox started — cache, node, role, pid,
//! port, up/down — with roles asked of the nodes themselves (they change on failover).

use super::client::{self, NodeAuth};
use super::params::ParamStore;
use super::state::State;
use crate::domain::NodeRole;
use crate::valkey::server as srv;
use serde::Serialize;
use std::time::Duration;

/// One process of the sandbox.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProcessRow {
    pub env: String,
    pub cache: String,
    pub node: String,
    pub role: String,
    pub pid: i32,
    pub port: u16,
    /// Extra ports the process listens on (the daemon's endpoints).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<u16>,
    pub alive: bool,
}

/// Every process from the state, alive or not, with the roles they were started in.
pub fn processes(state: &State) -> Vec<ProcessRow> {
    let mut rows: Vec<ProcessRow> = state
        .nodes()
        .map(|(cache, node)| ProcessRow {
            env: cache.env.clone(),
            cache: cache.name.clone(),
            node: node.id.clone(),
            role: node.initial_role.as_str().into(),
            pid: node.pid,
            port: node.port,
            endpoints: Vec::new(),
            alive: srv::pid_alive(node.pid) && srv::is_server_pid(node.pid),
        })
        .collect();
    if let Some(daemon) = &state.daemon {
        rows.push(ProcessRow {
            env: "-".into(),
            cache: "-".into(),
            node: "endpoint-daemon".into(),
            role: "tls-endpoints".into(),
            pid: daemon.pid,
            port: state.proxies.first().map(|p| p.port).unwrap_or(0),
            endpoints: state.proxies.iter().map(|p| p.port).collect(),
            alive: srv::pid_alive(daemon.pid),
        });
    }
    rows
}

/// [`processes`] with each live node's current role (ROLE, 300 ms each, concurrently).
pub async fn live(state: &State, params: &ParamStore) -> Vec<ProcessRow> {
    let mut rows = processes(state);
    let auths: Vec<Option<NodeAuth>> = state
        .nodes()
        .map(|(cache, _)| Some(NodeAuth::of(cache, params)))
        .collect();
    let probes = rows.iter().zip(auths).map(|(row, auth)| async move {
        match auth {
            Some(auth) if row.alive => client::role(row.port, &auth, Duration::from_millis(300))
                .await
                .ok(),
            _ => None,
        }
    });
    let roles = futures::future::join_all(probes).await;
    for (row, role) in rows.iter_mut().zip(roles) {
        match role {
            Some(NodeRole::Unknown) | None => {}
            Some(role) => row.role = role.as_str().into(),
        }
    }
    rows
}
