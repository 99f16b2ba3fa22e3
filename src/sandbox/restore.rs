//! CreateReplicationGroup with `SnapshotName` and CreateServerlessCache with
//! `SnapshotArnsToRestore`, for real: the call answers at once with the cache `creating`, as
//! AWS does, and the endpoint daemon starts new valkey-server processes loaded from the
//! snapshot's RDB files (a primary per shard with its RDB, replicas alongside, a cluster with
//! the same slot layout), recorded in the state as each starts (so `sandbox down` removes
//! them), and TLS endpoints served by the daemon like every other cache's.

use super::client::NodeAuth;
use super::cluster::{self, ShardPlan};
use super::nodes::{node_state, spawn, wait_info_line, wait_replicas_synced};
use super::params::{ParamStore, put_value};
use super::plane::SandboxControlPlane;
use super::snapshots::{self, SnapshotMeta};
use super::state::{CacheState, ShardState, State};
use crate::controlplane::names::check_cache_id as check_id;
use crate::controlplane::{ControlPlaneError, RestoreRequest};
use crate::domain::{AuthMode, CacheKind, Endpoints, NodeRole};
use crate::valkey::server::{self as srv, HOST, ServerSpec};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn service(op: &str, code: &str, message: String) -> ControlPlaneError {
    ControlPlaneError::Service {
        operation: op.into(),
        detail: format!("{code}: {message}"),
    }
}

fn broken(op: &str, e: impl std::fmt::Display) -> ControlPlaneError {
    ControlPlaneError::Service {
        operation: op.into(),
        detail: e.to_string(),
    }
}

/// Server arguments of the source's nodes, without what ties them to their old place.
fn source_args(source: Option<&CacheState>) -> Vec<String> {
    let Some(node) = source
        .and_then(|c| c.shards.first())
        .and_then(|s| s.nodes.first())
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut skip = false;
    for arg in &node.args {
        if skip {
            skip = false;
            continue;
        }
        if matches!(
            arg.as_str(),
            "--replicaof"
                | "--cluster-enabled"
                | "--cluster-node-timeout"
                | "--cluster-announce-client-ipv4"
                | "--dbfilename"
        ) {
            skip = true;
            continue;
        }
        out.push(arg.clone());
    }
    out
}

/// A CreateReplicationGroup / CreateServerlessCache the sandbox accepted: what the endpoint
/// daemon needs to build it (no secrets: the cache names its parameters).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Accepted {
    snapshot: String,
    replicas: usize,
    /// The cache as recorded while `creating` (no shards yet).
    cache: CacheState,
}

/// Where accepted restores wait for the endpoint daemon.
const QUEUE: &str = "restores";

/// Status of a cache whose processes could not all be started (AWS's word).
pub const CREATE_FAILED: &str = "create-failed";

/// Accepts `request` in the sandbox of `plane` the way AWS does: the checks AWS makes before
/// it answers, then the new cache recorded as `creating` and the answer at once; the endpoint
/// daemon starts its processes (so a caller killed right after the call still gets its
/// cache) and the cache turns `available` once they run. Without a live daemon the work is
/// done within the call.
pub async fn restore(
    plane: &SandboxControlPlane,
    request: RestoreRequest,
) -> Result<(), ControlPlaneError> {
    let op = op_of(request.serverless);
    let id = request.new_id.to_ascii_lowercase();
    check_id(&id).map_err(|why| service(op, "InvalidParameterValue", format!("id {id} {why}")))?;
    let dir = plane.dir().to_path_buf();
    let env = plane.env.name.clone();
    let lock = super::setup::lock(&dir).await.map_err(|e| broken(op, e))?;
    let state: State = plane.state()?;
    if state.cache(&env, &id).is_some() {
        let code = if request.serverless {
            "ServerlessCacheAlreadyExistsFault"
        } else {
            "ReplicationGroupAlreadyExistsFault"
        };
        return Err(ControlPlaneError::AlreadyExists {
            what: format!("{} {id} ({code})", cache_word(request.serverless)),
        });
    }
    let name = match (&request.snapshot_arn, request.serverless) {
        (Some(arn), true) => arn.rsplit(':').next().unwrap_or(arn).to_string(),
        _ => request.snapshot.clone(),
    };
    let meta: SnapshotMeta = snapshots::load(&dir, &env, &name.to_ascii_lowercase())
        .filter(|m| m.serverless() == request.serverless)
        .ok_or_else(|| ControlPlaneError::NotFound {
            what: format!("snapshot {name} (SnapshotNotFoundFault)"),
        })?;
    if meta.status != "available" {
        return Err(ControlPlaneError::InvalidState {
            operation: op.into(),
            detail: format!(
                "InvalidSnapshotState: snapshot {name} is {}, not available",
                meta.status
            ),
        });
    }
    if let Some(n) = request.shards
        && n as usize != meta.parts.len()
    {
        return Err(service(
            op,
            "InvalidParameterValue",
            format!(
                "NumNodeGroups {n} does not match the snapshot's {} node groups",
                meta.parts.len()
            ),
        ));
    }
    if let Some(part) = meta.parts.iter().find(|p| p.file.is_none()) {
        return Err(broken(
            op,
            format!("snapshot {} has no RDB for {}", meta.name, part.shard),
        ));
    }
    let params = plane.params.clone();

    // Credentials: a token given with the request (kept in the parameter store, as the
    // nodes' config needs it); the source's user group for RBAC.
    let (auth, username, password_parameter) = match (&request.auth_token, meta.auth) {
        (Some(token), _) => {
            let param = super::layout::parameter(&env, &id, "auth-token");
            put_value(&params, &param, token.expose_secret(), true)?;
            (AuthMode::Token, None, Some(param))
        }
        (None, AuthMode::Rbac | AuthMode::Acl) => (
            meta.auth,
            Some(meta.username.clone().unwrap_or_else(|| "app".into())),
            meta.password_parameter.clone(),
        ),
        (None, AuthMode::Token) => {
            return Err(service(
                op,
                "InvalidParameterValue",
                "the source uses an AUTH token: give the new group one (AuthToken)".into(),
            ));
        }
        (None, _) => (AuthMode::None, None, None),
    };
    let replicas = if request.serverless {
        0
    } else {
        request
            .replicas_per_shard
            .map(|r| r as usize)
            .unwrap_or(meta.replicas)
    };
    let cache = CacheState {
        env: env.clone(),
        name: id.clone(),
        kind: if request.serverless {
            CacheKind::Serverless
        } else {
            CacheKind::ReplicationGroup
        },
        cluster_mode: meta.cluster_mode,
        auth,
        tls: request.tls,
        automatic_failover: !request.serverless && replicas > 0,
        description: request.description.clone(),
        username,
        password_parameter,
        url_parameter: None,
        endpoint: None,
        endpoints: Endpoints::default(),
        shards: Vec::new(),
        notes: vec![format!("restored from snapshot {}", meta.name)],
        ecs: None,
        status: Some("creating".into()),
    };
    let accepted = Accepted {
        snapshot: meta.name.clone(),
        replicas,
        cache,
    };
    let daemon_alive = state
        .daemon
        .as_ref()
        .is_some_and(|d| crate::valkey::server::pid_alive(d.pid));
    // Queued before it is recorded: a caller killed in between still gets its cache (the
    // daemon records it from the request), and the daemon cannot start before the record
    // is written (it takes the same lock).
    if daemon_alive && enqueue(&dir, &accepted).is_ok() {
        save_cache(&dir, op, &accepted.cache)?;
        return Ok(());
    }
    save_cache(&dir, op, &accepted.cache)?;
    drop(lock);
    carry_out(&dir, &params, &accepted, None).await
}

fn op_of(serverless: bool) -> &'static str {
    if serverless {
        "CreateServerlessCache"
    } else {
        "CreateReplicationGroup"
    }
}

/// Puts `cache` into the state as it is on disk now (replacing its earlier record).
fn save_cache(
    dir: &std::path::Path,
    op: &str,
    cache: &CacheState,
) -> Result<State, ControlPlaneError> {
    let mut state = super::plane::load_state(dir)?;
    state
        .caches
        .retain(|c| !(c.env == cache.env && c.name == cache.name));
    state.caches.push(cache.clone());
    state.save(dir).map_err(|e| broken(op, e))?;
    Ok(state)
}

fn enqueue(dir: &std::path::Path, accepted: &Accepted) -> std::io::Result<()> {
    super::queue::put(dir, QUEUE, accepted)
}

/// The endpoint daemon's part: builds every accepted restore, each once (a request is
/// claimed by renaming it before the work starts); `built` is told when a cache's endpoints
/// are in the state, so the daemon serves them at once.
pub(super) async fn serve_queue(dir: PathBuf, built: std::sync::Arc<tokio::sync::Notify>) {
    let params = ParamStore::new(&dir);
    // A restore an earlier daemon was building when it stopped is built again (as ElastiCache
    // finishes a create it accepted).
    super::queue::requeue_claimed(&dir, QUEUE);
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        for (request, claim) in super::queue::claim_all::<Accepted>(&dir, QUEUE) {
            let dir = dir.clone();
            let params = params.clone();
            let built = built.clone();
            tokio::spawn(async move {
                if let Err(e) = carry_out(&dir, &params, &request, Some(&built)).await {
                    tracing::warn!(cache = %request.cache.name, error = %e, "restore did not finish");
                }
                // Built, or `create-failed` on record: either way it is done with.
                claim.done();
            });
        }
    }
}

/// Builds an accepted restore: its processes, its cluster or replication, its endpoints;
/// `create-failed` (with AWS's event) when that fails.
async fn carry_out(
    dir: &std::path::Path,
    params: &ParamStore,
    accepted: &Accepted,
    built: Option<&tokio::sync::Notify>,
) -> Result<(), ControlPlaneError> {
    let op = op_of(accepted.cache.kind == CacheKind::Serverless);
    let _lock = super::setup::lock(dir).await.map_err(|e| broken(op, e))?;
    let state = super::plane::load_state(dir)?;
    let mut cache = match state.cache(&accepted.cache.env, &accepted.cache.name) {
        // Built already, or given up on: nothing to do.
        Some(c) if c.status.as_deref() != Some("creating") => return Ok(()),
        Some(c) => {
            let mut c = c.clone();
            clear_partial_build(dir, op, &mut c).await?;
            c
        }
        None => accepted.cache.clone(),
    };
    let result = build(dir, params, accepted, &mut cache, built).await;
    if let Err(e) = &result {
        cache.status = Some(CREATE_FAILED.into());
        let _ = save_cache(dir, op, &cache);
        let _ = super::events::append(
            dir,
            &cache.env,
            &cache.name,
            if cache.kind == CacheKind::Serverless {
                "serverless-cache"
            } else {
                "replication-group"
            },
            &format!(
                "Failed to create {} {}: {}",
                cache_word(cache.kind == CacheKind::Serverless),
                cache.name,
                crate::escape::escape_capped(e.to_string(), 300)
            ),
        );
    }
    result
}

/// A build that began and did not finish (its daemon was stopped): its processes are
/// stopped and its endpoints dropped, so that the build starts over from the snapshot.
async fn clear_partial_build(
    dir: &std::path::Path,
    op: &str,
    cache: &mut CacheState,
) -> Result<(), ControlPlaneError> {
    // Every process of it: those on record, and any started just before the daemon stopped
    // and not yet recorded (its pid file is in the cache's node directory).
    let mut running: Vec<(i32, u16)> = cache
        .shards
        .iter()
        .flat_map(|s| &s.nodes)
        .map(|n| (n.pid, n.port))
        .collect();
    let nodes_dir = dir.join("nodes").join(&cache.env).join(&cache.name);
    for entry in std::fs::read_dir(&nodes_dir)
        .into_iter()
        .flatten()
        .flatten()
    {
        let pid = std::fs::read_to_string(entry.path().join("valkey.pid"))
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok());
        if let Some(pid) = pid.filter(|p| running.iter().all(|(known, _)| known != p)) {
            // Port 0: no port to wait for.
            running.push((pid, 0));
        }
    }
    if running.is_empty() && cache.shards.is_empty() {
        return Ok(());
    }
    tracing::info!(cache = %cache.name, "restore left half built: starting it over");
    for (pid, port) in running {
        let stopped = tokio::task::spawn_blocking(move || {
            srv::stop_detached(pid, port, Duration::from_secs(5))
        })
        .await
        .map_err(|e| broken(op, e))?;
        stopped.map_err(|e| broken(op, e))?;
    }
    cache.shards.clear();
    let prefix = format!("{}/{}/", cache.env, cache.name);
    let mut state = super::plane::load_state(dir)?;
    state.proxies.retain(|p| !p.name.starts_with(&prefix));
    state.save(dir).map_err(|e| broken(op, e))?;
    save_cache(dir, op, cache).map(|_| ())
}

async fn build(
    dir: &std::path::Path,
    params: &ParamStore,
    accepted: &Accepted,
    cache: &mut CacheState,
    built: Option<&tokio::sync::Notify>,
) -> Result<(), ControlPlaneError> {
    let op = op_of(cache.kind == CacheKind::Serverless);
    let env = cache.env.clone();
    let id = cache.name.clone();
    let began = Instant::now();
    save_cache(dir, op, cache)?;
    let meta: SnapshotMeta = snapshots::load(dir, &env, &accepted.snapshot).ok_or_else(|| {
        ControlPlaneError::NotFound {
            what: format!("snapshot {} (SnapshotNotFoundFault)", accepted.snapshot),
        }
    })?;
    let source = snapshots::source_of(&super::plane::load_state(dir)?, &meta);
    let args = source_args(source.as_ref());
    // The nodes' auth config, from the parameters the cache names.
    let secret = cache
        .password_parameter
        .as_deref()
        .and_then(|p| params.get(p).ok().flatten());
    let lines = match (cache.auth, &secret) {
        (AuthMode::Token, Some(token)) => vec![
            format!("requirepass {}", token.value.expose()),
            format!("masterauth {}", token.value.expose()),
        ],
        (AuthMode::Token, None) => {
            return Err(broken(op, "the AUTH token parameter is gone"));
        }
        (AuthMode::Rbac | AuthMode::Acl, Some(p)) => vec![
            "user default off".to_string(),
            format!(
                "user {} on >{} ~* &* +@all",
                cache.username.as_deref().unwrap_or("app"),
                p.value.expose()
            ),
        ],
        _ => Vec::new(),
    };
    let cache_dir = dir.join("nodes").join(&env).join(&id);
    let spec = |node_dir: PathBuf| {
        let mut spec = ServerSpec::new().dir(node_dir).args(args.iter().cloned());
        spec.ready_timeout = Duration::from_secs(120);
        for line in &lines {
            spec = spec.config_line(line.clone());
        }
        spec
    };
    let mut plans = Vec::new();
    let ranges: Vec<(u16, u16)> = meta
        .parts
        .iter()
        .filter_map(|p| p.slots.as_deref().and_then(parse_range))
        .collect();
    for (s, part) in meta.parts.iter().enumerate() {
        let group = format!("{:04}", s + 1);
        let node_id = |n: usize| {
            if meta.cluster_mode {
                format!("{id}-{group}-{:03}", n + 1)
            } else {
                format!("{id}-{:03}", n + 1)
            }
        };
        let rdb = part.file.as_ref().ok_or_else(|| {
            broken(
                op,
                format!("snapshot {} has no RDB for {}", meta.name, part.shard),
            )
        })?;
        // Every node of the shard starts at once. Outside cluster mode a replica loads the
        // same RDB as its primary, as a replica: with the replication id and offset the RDB
        // carries (it was saved on a replica) it continues with a partial resync instead of a
        // second BGSAVE and a full transfer. A replica left to itself first connects at its
        // next replication tick, up to a second after loading; so it starts replicating the
        // primary under another spelling of the loopback address (`127.1`), and a REPLICAOF
        // with the usual one, once every node has loaded, connects at once (it changes the
        // primary's address, so it is not a no-op, and keeps the RDB's replication id; a node
        // loaded as a primary would have a new one, and need a full sync). In cluster mode
        // replicas start empty and are attached when the cluster is formed.
        let primary_port = srv::free_port(meta.cluster_mode).map_err(|e| broken(op, e))?;
        let mut specs = Vec::new();
        for n in 0..=accepted.replicas {
            let nid = node_id(n);
            let ndir = cache_dir.join(&nid);
            std::fs::create_dir_all(&ndir).map_err(|e| broken(op, e))?;
            let mut nspec = spec(ndir.clone());
            if meta.cluster_mode {
                nspec = nspec.cluster();
                if accepted.cache.tls {
                    // A TLS cluster's nodes announce their TLS fronts to clients.
                    nspec = nspec.args(super::tls::cluster_front_args());
                }
            }
            if n == 0 || !meta.cluster_mode {
                link_or_copy(rdb, &ndir.join("dump.rdb")).map_err(|e| broken(op, e))?;
            }
            if n == 0 {
                nspec.port = Some(primary_port);
            } else if !meta.cluster_mode {
                nspec = nspec.args(["--replicaof".to_string(), format!("127.1 {primary_port}")]);
            }
            specs.push((n, nid, nspec));
        }
        let started = futures::future::join_all(
            specs
                .into_iter()
                .map(|(n, nid, nspec)| async move { (n, nid, spawn(nspec).await) }),
        )
        .await;
        let mut nodes = Vec::new();
        let mut failed = None;
        for (n, nid, server) in started {
            match server {
                Ok(server) => {
                    let role = if n == 0 {
                        NodeRole::Primary
                    } else {
                        NodeRole::Replica
                    };
                    nodes.push(node_state(&nid, &server, role, s + n));
                }
                Err(e) => failed = Some(e),
            }
        }
        let replica_ports: Vec<u16> = nodes
            .iter()
            .filter(|n| n.initial_role == NodeRole::Replica)
            .map(|n| n.port)
            .collect();
        let primary = nodes
            .iter()
            .find(|n| n.initial_role == NodeRole::Primary)
            .map(|n| n.port);
        cache.shards.push(ShardState {
            id: group.clone(),
            slots: part.slots.clone(),
            nodes,
        });
        // Each process goes into the state as soon as it runs, so `down` stops it whatever
        // happens next.
        save_cache(dir, op, cache)?;
        if let Some(e) = failed {
            return Err(broken(op, e));
        }
        plans.push(ShardPlan {
            primary: primary.unwrap_or(primary_port),
            replicas: replica_ports,
        });
    }
    let started = began.elapsed();
    let node_auth = NodeAuth::of(cache, params);
    let formed = if meta.cluster_mode {
        let ranges = if ranges.len() == plans.len() {
            ranges
        } else {
            cluster::slot_ranges(plans.len())
        };
        cluster::complete(&plans, &ranges, &node_auth, Duration::from_secs(60)).await
    } else {
        attach_loaded_replicas(&plans, &node_auth).await
    };
    formed.map_err(|e| broken(op, format!("{e}; node logs under {}", cache_dir.display())))?;
    let synced = began.elapsed();
    let mut state = super::plane::load_state(dir)?;
    let mut taken: Vec<u16> = state.proxies.iter().map(|p| p.port).collect();
    let mut port = || -> Result<u16, super::setup::SandboxError> {
        loop {
            let p = srv::free_port(false)?;
            if !taken.contains(&p) {
                taken.push(p);
                return Ok(p);
            }
        }
    };
    let proxies = super::daemon::assign_cache(cache, &mut port).map_err(|e| broken(op, e))?;
    state.proxies.extend(proxies);
    state
        .caches
        .retain(|c| !(c.env == cache.env && c.name == cache.name));
    state.caches.push(cache.clone());
    state.save(dir).map_err(|e| broken(op, e))?;
    // The daemon binds the new endpoints now rather than at its next look at the state.
    if let Some(built) = built {
        built.notify_one();
    }
    cache.status = None;
    save_cache(dir, op, cache)?;
    // Where a restore's time goes (scripts/bench-snapshot.sh reads this line).
    tracing::info!(
        cache = %id,
        nodes_started_ms = started.as_millis() as u64,
        loaded_and_attached_ms = (synced - started).as_millis() as u64,
        endpoints_ms = (began.elapsed() - synced).as_millis() as u64,
        "restore built"
    );
    Ok(())
}

/// A node's own copy of a snapshot's RDB: a hard link where the store and the node share a
/// file system (a server never writes its RDB in place: a save writes a temporary file and
/// renames it over), else a copy.
pub(super) fn link_or_copy(from: &Path, to: &Path) -> std::io::Result<()> {
    let _ = std::fs::remove_file(to);
    std::fs::hard_link(from, to).or_else(|_| std::fs::copy(from, to).map(|_| ()))
}

/// Outside cluster mode: once every node of a shard has loaded its RDB, REPLICAOF its primary
/// (under its usual address) on each replica, then waits until every replica's link is up.
async fn attach_loaded_replicas(plans: &[ShardPlan], auth: &NodeAuth) -> Result<(), String> {
    let until = Instant::now() + Duration::from_secs(120);
    for plan in plans {
        let all: Vec<u16> = std::iter::once(plan.primary)
            .chain(plan.replicas.iter().copied())
            .collect();
        // A whole line: `async_loading:0` is a different field.
        wait_info_line(
            &all,
            auth,
            ("persistence", "loading:0"),
            until,
            "the nodes to load the snapshot",
        )
        .await?;
        for &port in &plan.replicas {
            let mut conn = super::client::connect(port, auth, Duration::from_secs(2)).await?;
            super::client::command(
                &mut conn,
                redis::cmd("REPLICAOF").arg(HOST).arg(plan.primary),
                Duration::from_secs(2),
            )
            .await?;
        }
    }
    let ports: Vec<u16> = plans.iter().flat_map(|p| p.replicas.clone()).collect();
    wait_replicas_synced(&ports, auth).await
}

fn cache_word(serverless: bool) -> &'static str {
    if serverless {
        "serverless cache"
    } else {
        "replication group"
    }
}

fn parse_range(text: &str) -> Option<(u16, u16)> {
    let (a, b) = text.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_aws_rules() {
        assert!(check_id("orders-restored").is_ok());
        assert!(check_id("9orders").is_err());
        assert!(check_id("orders--x").is_err());
        assert!(check_id("orders-").is_err());
        assert!(check_id(&"a".repeat(41)).is_err());
    }
}
