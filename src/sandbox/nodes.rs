//! Starting the processes of one cache: its nodes with their auth config (secrets in 0600
//! config files, never argv), replicas pointed at their primary, a cluster formed.

use super::client::NodeAuth;
use super::cluster;
use super::layout::{self, CachePlan, Shape};
use super::params::{ParamStore, put_value};
use super::setup::SandboxError;
use super::state::{CacheState, NodeState, ShardState, State};
use crate::domain::{AuthMode, Endpoints, NodeRole};
use crate::valkey::server::{self as srv, HOST, ServerSpec};
use secrecy::{ExposeSecret, SecretString};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A random secret that satisfies the AUTH token rules (16–128 chars, `!&#$^<>-` symbols);
/// letters and digits only, so it is also safe inside a URL.
pub(super) fn secret() -> SecretString {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    let text: String = (0..40)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    SecretString::from(text)
}

/// Config-file lines for a cache's auth (passwords never go on argv).
fn auth_lines(
    plan: &CachePlan,
    password: Option<&SecretString>,
    username: Option<&str>,
) -> Vec<String> {
    match (plan.auth, password) {
        (AuthMode::Token, Some(token)) => vec![
            format!("requirepass {}", token.expose_secret()),
            format!("masterauth {}", token.expose_secret()),
        ],
        (AuthMode::Rbac | AuthMode::Acl, Some(password)) => vec![
            "user default off".into(),
            format!(
                "user {} on >{} ~* &* +@all",
                username.unwrap_or("app"),
                password.expose_secret()
            ),
        ],
        _ => Vec::new(),
    }
}

pub(super) async fn spawn(spec: ServerSpec) -> Result<srv::DetachedServer, SandboxError> {
    tokio::task::spawn_blocking(move || srv::spawn_detached(&spec))
        .await
        .map_err(|e| SandboxError::Broken {
            dir: PathBuf::new(),
            detail: e.to_string(),
        })?
        .map_err(SandboxError::from)
}

const AZS: [&str; 3] = ["local-1a", "local-1b", "local-1c"];

/// Starts every process of one cache (recording each in the state as it runs) and, for
/// replicated shapes, waits until replication or the cluster is healthy.
pub(super) async fn start_cache(
    dir: &Path,
    plan: &CachePlan,
    params: &ParamStore,
    state: &mut State,
) -> Result<CacheState, SandboxError> {
    let cache_dir = dir.join("nodes").join(plan.env).join(plan.name);
    let username =
        matches!(plan.auth, AuthMode::Rbac | AuthMode::Acl).then(|| format!("{}-app", plan.name));
    let password = (plan.auth != AuthMode::None).then(secret);
    let password_parameter = password.as_ref().map(|p| {
        let leaf = if plan.auth == AuthMode::Token {
            "auth-token"
        } else {
            "password"
        };
        let name = layout::parameter(plan.env, plan.name, leaf);
        put_value(params, &name, p.expose_secret(), true).map(|_| name)
    });
    let password_parameter = password_parameter.transpose()?;
    if let Some(p) = &password {
        super::auth::init(dir, plan.env, plan.name, p)?;
    }
    let lines = auth_lines(plan, password.as_ref(), username.as_deref());
    let base = |node_dir: PathBuf| {
        let mut spec = ServerSpec::new()
            .dir(node_dir)
            .args(plan.args.iter().copied());
        for line in &lines {
            spec = spec.config_line(line.clone());
        }
        spec
    };
    let mut cache = CacheState {
        env: plan.env.into(),
        name: plan.name.into(),
        kind: plan.kind,
        cluster_mode: matches!(plan.shape, Shape::Cluster { .. }),
        auth: plan.auth,
        tls: plan.tls,
        automatic_failover: !matches!(plan.shape, Shape::Single),
        description: plan.description.into(),
        username,
        password_parameter,
        url_parameter: None,
        endpoint: None,
        endpoints: Endpoints::default(),
        shards: Vec::new(),
        notes: Vec::new(),
        ecs: None,
        status: None,
    };
    let fail = |detail: String| SandboxError::Setup {
        cache: format!("{}/{}", plan.env, plan.name),
        detail,
        dir: cache_dir.clone(),
    };
    // Records each process in the state at once, so a failure later still stops it.
    let record = |state: &mut State, cache: &CacheState| -> Result<(), SandboxError> {
        let mut snapshot = state.clone();
        snapshot.caches.push(cache.clone());
        snapshot.save(dir)?;
        Ok(())
    };
    match plan.shape {
        Shape::Single => {
            let id = format!("{}-001", plan.name);
            let server = spawn(base(cache_dir.join(&id))).await?;
            cache.shards.push(ShardState {
                id: "0001".into(),
                slots: None,
                nodes: vec![node_state(&id, &server, NodeRole::Primary, 0)],
            });
            record(state, &cache)?;
        }
        Shape::Replicated { replicas } => {
            let primary_id = format!("{}-001", plan.name);
            let primary = spawn(base(cache_dir.join(&primary_id))).await?;
            let mut nodes = vec![node_state(&primary_id, &primary, NodeRole::Primary, 0)];
            cache.shards.push(ShardState {
                id: "0001".into(),
                slots: None,
                nodes: nodes.clone(),
            });
            record(state, &cache)?;
            for r in 0..replicas {
                let id = format!("{}-{:03}", plan.name, r + 2);
                let spec = base(cache_dir.join(&id)).args([
                    "--replicaof".to_string(),
                    format!("{HOST} {}", primary.port),
                ]);
                let server = spawn(spec).await?;
                nodes.push(node_state(&id, &server, NodeRole::Replica, r + 1));
                cache.shards[0].nodes = nodes.clone();
                record(state, &cache)?;
            }
            let auth = NodeAuth::of(&cache, params);
            let replica_ports: Vec<u16> = nodes[1..].iter().map(|n| n.port).collect();
            wait_replicas_synced(&replica_ports, &auth)
                .await
                .map_err(fail)?;
        }
        Shape::Cluster { shards, replicas } => {
            let mut plans = Vec::new();
            let ranges = cluster::slot_ranges(shards);
            for (s, (start, end)) in ranges.iter().enumerate() {
                let group = format!("{:04}", s + 1);
                let mut nodes = Vec::new();
                for n in 0..=replicas {
                    let id = format!("{}-{group}-{:03}", plan.name, n + 1);
                    let mut spec = base(cache_dir.join(&id)).cluster();
                    if plan.tls {
                        spec = spec.args(super::tls::cluster_front_args());
                    }
                    let server = spawn(spec).await?;
                    let role = if n == 0 {
                        NodeRole::Primary
                    } else {
                        NodeRole::Replica
                    };
                    nodes.push(node_state(&id, &server, role, s + n));
                    if cache.shards.len() <= s {
                        cache.shards.push(ShardState {
                            id: group.clone(),
                            slots: Some(format!("{start}-{end}")),
                            nodes: Vec::new(),
                        });
                    }
                    cache.shards[s].nodes = nodes.clone();
                    record(state, &cache)?;
                }
                plans.push(cluster::ShardPlan {
                    primary: nodes[0].port,
                    replicas: nodes[1..].iter().map(|n| n.port).collect(),
                });
            }
            let auth = NodeAuth::of(&cache, params);
            cluster::form(&plans, &auth, Duration::from_secs(30))
                .await
                .map_err(fail)?;
        }
    }
    Ok(cache)
}

pub(super) fn node_state(
    id: &str,
    server: &srv::DetachedServer,
    role: NodeRole,
    az: usize,
) -> NodeState {
    NodeState {
        id: id.into(),
        port: server.port,
        pid: server.pid,
        dir: server.dir.clone(),
        initial_role: role,
        availability_zone: AZS[az % AZS.len()].into(),
        args: server.args.clone(),
    }
}

/// Waits until every replica reports `master_link_status:up` (FAILOVER needs synced replicas).
pub(super) async fn wait_replicas_synced(ports: &[u16], auth: &NodeAuth) -> Result<(), String> {
    let until = Instant::now() + Duration::from_secs(20);
    wait_info_line(
        ports,
        auth,
        ("replication", "master_link_status:up"),
        until,
        "replicas to sync with the primary",
    )
    .await
}

/// Waits until `until` for every node on `ports` to have the line `line` (whole) in its
/// `INFO section`.
pub(super) async fn wait_info_line(
    ports: &[u16],
    auth: &NodeAuth,
    (section, line): (&str, &str),
    until: Instant,
    what: &str,
) -> Result<(), String> {
    cluster::wait(until, what, || async {
        for &port in ports {
            let mut conn = super::client::connect(port, auth, Duration::from_secs(2)).await?;
            let info = super::client::command(
                &mut conn,
                redis::cmd("INFO").arg(section),
                Duration::from_secs(2),
            )
            .await?;
            let text = super::client::text_of(&info);
            if !text.lines().any(|l| l.trim_end() == line) {
                return Ok(false);
            }
        }
        Ok(true)
    })
    .await
}
