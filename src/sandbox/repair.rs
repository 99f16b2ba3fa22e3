//! Bringing a sandbox back to full strength: `up` on a sandbox with dead processes starts
//! them again on their ports and data dirs, as ElastiCache replaces a failed node — a dead
//! node of a cluster-mode-off group comes back as a replica of the current primary.
//! Also [`restart_node`], the sandbox's "force a new deployment" of one process.

use super::client::{self, NodeAuth};
use super::nodes::spawn;
use super::params::ParamStore;
use super::setup::{SandboxError, UpOptions};
use super::state::{CacheState, NodeState, State};
use crate::domain::{CacheKind, NodeRole};
use crate::valkey::server::{self as srv, HOST, ServerSpec};
use std::time::Duration;

const PROBE: Duration = Duration::from_millis(300);

/// Starts every dead process of the sandbox again; returns what was restarted.
pub async fn repair(opts: &UpOptions, state: &mut State) -> Result<Vec<String>, SandboxError> {
    let params = ParamStore::new(&opts.dir);
    let mut repaired = Vec::new();
    for c in 0..state.caches.len() {
        for s in 0..state.caches[c].shards.len() {
            for n in 0..state.caches[c].shards[s].nodes.len() {
                let node = state.caches[c].shards[s].nodes[n].clone();
                if srv::pid_alive(node.pid) && srv::is_server_pid(node.pid) {
                    continue;
                }
                let cache = &state.caches[c];
                let pid = start_again(cache, s, &node, &params).await?;
                repaired.push(format!("{}/{} {}", cache.env, cache.name, node.id));
                state.caches[c].shards[s].nodes[n].pid = pid;
                state.save(&opts.dir)?;
            }
        }
    }
    let daemon_alive = state.daemon.as_ref().is_some_and(|d| srv::pid_alive(d.pid));
    if !daemon_alive && !state.proxies.is_empty() {
        super::daemon::spawn_daemon(opts, state).await?;
        repaired.push("endpoint daemon".into());
    }
    Ok(repaired)
}

/// Starts a stopped node on its port and data dir with its config file and arguments.
async fn start_again(
    cache: &CacheState,
    shard: usize,
    node: &NodeState,
    params: &ParamStore,
) -> Result<i32, SandboxError> {
    let conf = std::fs::read_to_string(node.dir.join("cachedeck.conf")).map_err(|source| {
        SandboxError::Io {
            path: node.dir.join("cachedeck.conf"),
            source,
        }
    })?;
    let mut args = without_replicaof(&node.args);
    if cache.kind == CacheKind::ReplicationGroup && !cache.cluster_mode {
        // Rejoin as a replica of whoever is primary now, never as a second primary.
        let auth = NodeAuth::of(cache, params);
        for other in cache.shards[shard].nodes.iter().filter(|o| o.id != node.id) {
            if let Ok(NodeRole::Primary) = client::role(other.port, &auth, PROBE).await {
                args.push("--replicaof".into());
                args.push(format!("{HOST} {}", other.port));
                break;
            }
        }
    }
    let spec = ServerSpec {
        dir: Some(node.dir.clone()),
        port: Some(node.port),
        config: conf.lines().map(str::to_string).collect(),
        args,
        ready_timeout: Duration::ZERO,
    };
    Ok(spawn(spec).await?.pid)
}

fn without_replicaof(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut skip = false;
    for a in args {
        if skip {
            skip = false;
        } else if a == "--replicaof" || a == "--slaveof" {
            skip = true;
        } else {
            out.push(a.clone());
        }
    }
    out
}

/// Stops one node gracefully (SIGTERM: it writes its RDB when it has save points) and starts
/// it again on the same port and data dir — what a new ECS deployment does to a task.
/// Returns the new pid.
pub async fn restart_node(
    dir: &std::path::Path,
    env: &str,
    cache: &str,
    node_id: &str,
) -> Result<i32, SandboxError> {
    let mut state = State::load(dir)?.ok_or_else(|| SandboxError::Broken {
        dir: dir.to_path_buf(),
        detail: "it is not running".into(),
    })?;
    let not_found = || SandboxError::Broken {
        dir: dir.to_path_buf(),
        detail: format!("no node {node_id} in {env}/{cache}"),
    };
    let c = state
        .caches
        .iter()
        .position(|c| c.env == env && c.name == cache)
        .ok_or_else(not_found)?;
    let (s, n) = state.caches[c]
        .shards
        .iter()
        .enumerate()
        .find_map(|(s, shard)| {
            shard
                .nodes
                .iter()
                .position(|n| n.id == node_id)
                .map(|n| (s, n))
        })
        .ok_or_else(not_found)?;
    let node = state.caches[c].shards[s].nodes[n].clone();
    let (pid, port) = (node.pid, node.port);
    tokio::task::spawn_blocking(move || srv::stop_detached(pid, port, Duration::from_secs(30)))
        .await
        .map_err(|e| SandboxError::Broken {
            dir: dir.to_path_buf(),
            detail: e.to_string(),
        })??;
    let params = ParamStore::new(dir);
    let new_pid = start_again(&state.caches[c], s, &node, &params).await?;
    state.caches[c].shards[s].nodes[n].pid = new_pid;
    state.save(dir)?;
    Ok(new_pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicaof_is_dropped_with_its_value() {
        let args: Vec<String> = [
            "--maxmemory-policy",
            "noeviction",
            "--replicaof",
            "127.0.0.1 1234",
            "--save",
            "",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            without_replicaof(&args),
            ["--maxmemory-policy", "noeviction", "--save", ""]
        );
    }
}
