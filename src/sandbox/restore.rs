//! CreateReplicationGroup with `SnapshotName` and CreateServerlessCache with
//! `SnapshotArnsToRestore`, for real: new valkey-server processes loaded from the snapshot's
//! RDB files (a primary per shard with its RDB, replicas that sync from it, a cluster with
//! the same slot layout), recorded in the state as each starts (so `sandbox down` removes
//! them), and TLS endpoints served by the endpoint daemon like every other cache's.

use super::client::NodeAuth;
use super::cluster::{self, ShardPlan};
use super::nodes::{node_state, spawn, wait_replicas_synced};
use super::params::put_value;
use super::plane::SandboxControlPlane;
use super::snapshots::{self, SnapshotMeta};
use super::state::{CacheState, ShardState, State};
use crate::controlplane::names::check_cache_id as check_id;
use crate::controlplane::{ControlPlaneError, RestoreRequest};
use crate::domain::{AuthMode, CacheKind, Endpoints, NodeRole};
use crate::valkey::server::{self as srv, HOST, ServerSpec};
use secrecy::ExposeSecret;
use std::time::Duration;

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

/// Restores `request` in the sandbox of `plane`.
pub async fn restore(
    plane: &SandboxControlPlane,
    request: RestoreRequest,
) -> Result<(), ControlPlaneError> {
    let op = if request.serverless {
        "CreateServerlessCache"
    } else {
        "CreateReplicationGroup"
    };
    let id = request.new_id.to_ascii_lowercase();
    check_id(&id).map_err(|why| service(op, "InvalidParameterValue", format!("id {id} {why}")))?;
    let dir = plane.dir().to_path_buf();
    let env = plane.env.name.clone();
    let _lock = super::setup::lock(&dir).await.map_err(|e| broken(op, e))?;
    let mut state: State = plane.state()?;
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
    let source = snapshots::source_of(&state, &meta);
    let args = source_args(source.as_ref());
    let params = plane.params.clone();

    // Credentials: a token given with the request; the source's user group for RBAC.
    let (auth, username, password_parameter, lines) = match (&request.auth_token, meta.auth) {
        (Some(token), _) => {
            let param = super::layout::parameter(&env, &id, "auth-token");
            put_value(&params, &param, token.expose_secret(), true)?;
            (
                AuthMode::Token,
                None,
                Some(param),
                vec![
                    format!("requirepass {}", token.expose_secret()),
                    format!("masterauth {}", token.expose_secret()),
                ],
            )
        }
        (None, AuthMode::Rbac | AuthMode::Acl) => {
            let password = meta
                .password_parameter
                .as_deref()
                .and_then(|p| params.get(p).ok().flatten());
            let user = meta.username.clone().unwrap_or_else(|| "app".into());
            let lines = match &password {
                Some(p) => vec![
                    "user default off".to_string(),
                    format!("user {user} on >{} ~* &* +@all", p.value.expose()),
                ],
                None => Vec::new(),
            };
            (
                meta.auth,
                Some(user),
                meta.password_parameter.clone(),
                lines,
            )
        }
        (None, AuthMode::Token) => {
            return Err(service(
                op,
                "InvalidParameterValue",
                "the source uses an AUTH token: give the new group one (AuthToken)".into(),
            ));
        }
        (None, _) => (AuthMode::None, None, None, Vec::new()),
    };
    let replicas = request
        .replicas_per_shard
        .map(|r| r as usize)
        .unwrap_or(meta.replicas);
    let mut cache = CacheState {
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
    };
    let cache_dir = dir.join("nodes").join(&env).join(&id);
    let spec = |node_dir: std::path::PathBuf| {
        let mut spec = ServerSpec::new().dir(node_dir).args(args.iter().cloned());
        spec.ready_timeout = Duration::from_secs(120);
        for line in &lines {
            spec = spec.config_line(line.clone());
        }
        spec
    };
    // Each process goes into the state as soon as it runs, so `down` stops it whatever
    // happens next.
    let record = |state: &mut State, cache: &CacheState| -> Result<(), ControlPlaneError> {
        let mut copy = state.clone();
        copy.caches
            .retain(|c| !(c.env == cache.env && c.name == cache.name));
        copy.caches.push(cache.clone());
        copy.save(&dir).map_err(|e| broken(op, e))?;
        *state = copy;
        Ok(())
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
        let primary_id = node_id(0);
        let primary_dir = cache_dir.join(&primary_id);
        std::fs::create_dir_all(&primary_dir).map_err(|e| broken(op, e))?;
        let rdb = part.file.as_ref().ok_or_else(|| {
            broken(
                op,
                format!("snapshot {} has no RDB for {}", meta.name, part.shard),
            )
        })?;
        std::fs::copy(rdb, primary_dir.join("dump.rdb")).map_err(|e| broken(op, e))?;
        let mut primary_spec = spec(primary_dir);
        if meta.cluster_mode {
            primary_spec = primary_spec.cluster();
            if request.tls {
                primary_spec = primary_spec.args(super::tls::cluster_front_args());
            }
        }
        let primary = spawn(primary_spec).await.map_err(|e| broken(op, e))?;
        cache.shards.push(ShardState {
            id: group.clone(),
            slots: part.slots.clone(),
            nodes: vec![node_state(&primary_id, &primary, NodeRole::Primary, s)],
        });
        record(&mut state, &cache)?;
        let mut replica_ports = Vec::new();
        let replica_count = if request.serverless { 0 } else { replicas };
        let mut rspecs = Vec::new();
        for r in 0..replica_count {
            let rid = node_id(r + 1);
            let rdir = cache_dir.join(&rid);
            let mut rspec = spec(rdir.clone());
            if meta.cluster_mode {
                rspec = rspec.cluster();
                if request.tls {
                    rspec = rspec.args(super::tls::cluster_front_args());
                }
            } else {
                // A replica starts from the same RDB as its primary: with the replication id
                // and offset the RDB carries (it was saved on a replica), it continues with a
                // partial resync instead of a second BGSAVE and a full transfer. Without them
                // it falls back to a full sync.
                std::fs::create_dir_all(&rdir).map_err(|e| broken(op, e))?;
                std::fs::copy(rdb, rdir.join("dump.rdb")).map_err(|e| broken(op, e))?;
                rspec = rspec.args([
                    "--replicaof".to_string(),
                    format!("{HOST} {}", primary.port),
                ]);
            }
            rspecs.push((r, rid, rspec));
        }
        // The replicas load at the same time.
        let started = futures::future::join_all(
            rspecs
                .into_iter()
                .map(|(r, rid, rspec)| async move { (r, rid, spawn(rspec).await) }),
        )
        .await;
        let mut failed = None;
        for (r, rid, server) in started {
            match server {
                Ok(server) => {
                    replica_ports.push(server.port);
                    cache.shards[s].nodes.push(node_state(
                        &rid,
                        &server,
                        NodeRole::Replica,
                        s + r + 1,
                    ));
                }
                Err(e) => failed = Some(e),
            }
        }
        record(&mut state, &cache)?;
        if let Some(e) = failed {
            return Err(broken(op, e));
        }
        plans.push(ShardPlan {
            primary: primary.port,
            replicas: replica_ports,
        });
    }
    let node_auth = NodeAuth::of(&cache, &params);
    let formed = if meta.cluster_mode {
        let ranges = if ranges.len() == plans.len() {
            ranges
        } else {
            cluster::slot_ranges(plans.len())
        };
        cluster::complete(&plans, &ranges, &node_auth, Duration::from_secs(60)).await
    } else {
        let ports: Vec<u16> = plans.iter().flat_map(|p| p.replicas.clone()).collect();
        wait_replicas_synced(&ports, &node_auth).await
    };
    formed.map_err(|e| broken(op, format!("{e}; node logs under {}", cache_dir.display())))?;
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
    let proxies = super::daemon::assign_cache(&mut cache, &mut port).map_err(|e| broken(op, e))?;
    state.proxies.extend(proxies);
    record(&mut state, &cache)?;
    Ok(())
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
