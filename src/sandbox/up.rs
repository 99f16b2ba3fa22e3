//! `cachedeck sandbox up` and `down`: start every process of the layout (recording each in
//! the state file as soon as it runs, so `down` can clean up after a failed `up`), form the
//! cluster, start the endpoint daemon, publish parameters, seed data; and stop it all again.

use super::client::NodeAuth;
use super::layout::{self, CachePlan, Shape};
use super::params::{ParamStore, put_value};
use super::seed::{self, Target};
use super::state::{CacheState, EnvState, NodeState, ShardState, State};
use super::{cluster, tls};
use crate::domain::{AuthMode, Endpoints, NodeRole};
use crate::valkey::server::{self as srv, HOST, ServerSpec};
use secrecy::{ExposeSecret, SecretString};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What `up` needs.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub dir: PathBuf,
    /// Keys to seed across all caches.
    pub keys: u64,
    /// The cachedeck binary that runs the endpoint daemon (`sandbox serve`).
    pub exe: PathBuf,
}

/// What `up` did.
#[derive(Debug, Clone)]
pub struct UpReport {
    pub already_up: bool,
    /// Processes that were dead and were started again.
    pub repaired: Vec<String>,
    pub processes: usize,
    pub seeded_keys: u64,
    pub elapsed: Duration,
    pub dir: PathBuf,
}

/// Why the sandbox could not be started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(transparent)]
    Binary(#[from] crate::valkey::binary::BinaryError),
    #[error(transparent)]
    Server(#[from] srv::ServerError),
    #[error(transparent)]
    State(#[from] super::state::StateError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("{0}")]
    Params(#[from] crate::controlplane::ControlPlaneError),
    #[error("prepare {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "set up {cache}: {detail}; see the node logs under {dir}, then `cachedeck sandbox down`"
    )]
    Setup {
        cache: String,
        detail: String,
        dir: PathBuf,
    },
    #[error(
        "the sandbox in {dir} is partly down ({detail}); run `cachedeck sandbox down`, then `up`"
    )]
    Broken { dir: PathBuf, detail: String },
}

/// Starts the sandbox (idempotent: an intact running sandbox is left as it is).
pub async fn up(opts: &UpOptions) -> Result<UpReport, SandboxError> {
    let started = Instant::now();
    let dir = opts.dir.clone();
    let _lock = lock(&dir).await?;
    if let Some(state) = State::load(&dir)? {
        let down: Vec<String> = super::status::processes(&state)
            .into_iter()
            .filter(|p| !p.alive)
            .map(|p| format!("{} {}", p.cache, p.node))
            .collect();
        let mut state = state;
        let repaired = if down.is_empty() {
            Vec::new()
        } else {
            super::repair::repair(opts, &mut state).await?
        };
        return Ok(UpReport {
            already_up: true,
            repaired,
            processes: super::status::processes(&state).len(),
            seeded_keys: state.seeded_keys,
            elapsed: started.elapsed(),
            dir,
        });
    }
    let result = build(opts, started).await;
    if result.is_err() {
        // Leave nothing half-started behind.
        let _ = super::down::down_locked(&dir).await;
    }
    result
}

async fn build(opts: &UpOptions, started: Instant) -> Result<UpReport, SandboxError> {
    let dir = &opts.dir;
    make_private_dir(dir)?;
    let binary = crate::valkey::binary::find()?;
    let ca_file = tls::generate(&dir.join("tls"))?;
    let params = ParamStore::new(dir);
    let mut state = State {
        created: time::OffsetDateTime::now_utc(),
        ca_file: ca_file.clone(),
        engine: binary.engine.clone(),
        engine_version: binary.version.clone(),
        environments: layout::environments()
            .iter()
            .map(|(name, protection)| EnvState {
                name: name.to_string(),
                protection: *protection,
            })
            .collect(),
        caches: Vec::new(),
        daemon: None,
        proxies: Vec::new(),
        seeded_keys: 0,
    };
    state.save(dir)?;

    for plan in layout::caches() {
        let cache = start_cache(dir, &plan, &params, &mut state).await?;
        state.caches.push(cache);
        state.save(dir)?;
    }
    super::daemon::assign_endpoints(&mut state)?;
    super::daemon::spawn_daemon(opts, &mut state).await?;
    publish_parameters(&params, &mut state)?;
    state.save(dir)?;

    // Caches are seeded concurrently: each is its own server(s), so they do not contend.
    let mut jobs = Vec::new();
    for (i, plan) in layout::caches().into_iter().enumerate() {
        let Some(cache) = state.cache(plan.env, plan.name) else {
            continue;
        };
        let keys = opts.keys * plan.weight / 100;
        let targets: Vec<Target> = cache
            .shards
            .iter()
            .filter_map(|s| {
                let primary = s
                    .nodes
                    .iter()
                    .find(|n| n.initial_role == NodeRole::Primary)?;
                Some(Target {
                    port: primary.port,
                    slots: s.slots.as_deref().and_then(parse_range),
                })
            })
            .collect();
        let auth = NodeAuth::of(cache, &params);
        jobs.push(async move {
            seed::seed(&targets, &auth, plan.profile, keys, 2026 + i as u64)
                .await
                .map_err(|detail| SandboxError::Setup {
                    cache: format!("{}/{}", plan.env, plan.name),
                    detail: format!("seeding failed: {detail}"),
                    dir: dir.clone(),
                })
        });
    }
    let seeded: u64 = futures::future::try_join_all(jobs).await?.into_iter().sum();
    state.seeded_keys = seeded;
    state.save(dir)?;
    Ok(UpReport {
        already_up: false,
        repaired: Vec::new(),
        processes: super::status::processes(&state).len(),
        seeded_keys: seeded,
        elapsed: started.elapsed(),
        dir: dir.clone(),
    })
}

fn parse_range(text: &str) -> Option<(u16, u16)> {
    let (a, b) = text.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Takes the sandbox's exclusive lock (held until the file drops), so two `up`/`down` runs
/// never build or tear down the same sandbox at once; waits up to two minutes for it.
pub(super) async fn lock(dir: &Path) -> Result<std::fs::File, SandboxError> {
    make_private_dir(dir)?;
    let path = dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| SandboxError::Io {
            path: path.clone(),
            source,
        })?;
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(SandboxError::Broken {
                    dir: dir.to_path_buf(),
                    detail: "another `cachedeck sandbox up` or `down` held its lock for 2 minutes"
                        .into(),
                });
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(SandboxError::Io { path, source });
            }
        }
    }
}

pub(super) fn make_private_dir(dir: &Path) -> Result<(), SandboxError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| SandboxError::Io {
            path: dir.to_path_buf(),
            source,
        })
}

/// A random secret that satisfies the AUTH token rules (16–128 chars, `!&#$^<>-` symbols);
/// letters and digits only, so it is also safe inside a URL.
fn secret() -> SecretString {
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

async fn start_cache(
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
                    let server = spawn(base(cache_dir.join(&id)).cluster()).await?;
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

fn node_state(id: &str, server: &srv::DetachedServer, role: NodeRole, az: usize) -> NodeState {
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
    cluster::wait(until, "replicas to sync with the primary", || async {
        for &port in ports {
            let mut conn = super::client::connect(port, auth, Duration::from_secs(2)).await?;
            let info = super::client::command(
                &mut conn,
                redis::cmd("INFO").arg("replication"),
                Duration::from_secs(2),
            )
            .await?;
            if !super::client::text_of(&info).contains("master_link_status:up") {
                return Ok(false);
            }
        }
        Ok(true)
    })
    .await
}

/// Seed-style parameters: endpoints (plain) and URLs (SecureString).
fn publish_parameters(params: &ParamStore, state: &mut State) -> Result<(), SandboxError> {
    for cache in &mut state.caches {
        let Some(endpoint) = &cache.endpoint else {
            continue;
        };
        if cache.kind == crate::domain::CacheKind::Serverless {
            put_value(
                params,
                &layout::parameter(&cache.env, &cache.name, "endpoint"),
                &endpoint.host,
                false,
            )?;
            put_value(
                params,
                &layout::parameter(&cache.env, &cache.name, "port"),
                &endpoint.port.to_string(),
                false,
            )?;
        }
        if cache.auth == AuthMode::Token && cache.cluster_mode {
            let token = cache
                .password_parameter
                .as_deref()
                .and_then(|n| params.get(n).ok().flatten());
            if let Some(token) = token {
                let scheme = if cache.tls { "rediss" } else { "redis" };
                let url = format!(
                    "{scheme}://:{}@{}:{}/0",
                    token.value.expose(),
                    endpoint.host,
                    endpoint.port
                );
                let name = layout::parameter(&cache.env, &cache.name, "url");
                put_value(params, &name, &url, true)?;
                cache.url_parameter = Some(name);
            }
        }
    }
    Ok(())
}
