//! `cachedeck sandbox up` and `down`: start every process of the layout (recording each in
//! the state file as soon as it runs, so `down` can clean up after a failed `up`), form the
//! cluster, start the endpoint daemon, publish parameters, seed data; and stop it all again.

use super::client::NodeAuth;
use super::layout::{self, CachePlan, Shape};
use super::params::{ParamStore, put_value};
use super::seed::{self, Target};
use super::state::{
    CacheState, DaemonState, EnvState, NodeState, ProxyMode, ProxyState, ShardState, State,
};
use super::{cluster, tls};
use crate::domain::{AuthMode, EcsRef, Endpoint, Endpoints, NodeRole};
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
    if let Some(state) = State::load(&dir)? {
        let down: Vec<String> = super::status::processes(&state)
            .into_iter()
            .filter(|p| !p.alive)
            .map(|p| format!("{} {}", p.cache, p.node))
            .collect();
        if down.is_empty() {
            return Ok(UpReport {
                already_up: true,
                processes: super::status::processes(&state).len(),
                seeded_keys: state.seeded_keys,
                elapsed: started.elapsed(),
                dir,
            });
        }
        return Err(SandboxError::Broken {
            dir,
            detail: format!("not running: {}", down.join(", ")),
        });
    }
    let result = build(opts, started).await;
    if result.is_err() {
        // Leave nothing half-started behind.
        let _ = down(&dir).await;
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
    start_daemon(opts, &mut state).await?;
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

fn make_private_dir(dir: &Path) -> Result<(), SandboxError> {
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

async fn spawn(spec: ServerSpec) -> Result<srv::DetachedServer, SandboxError> {
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
    }
}

/// Waits until every replica reports `master_link_status:up` (FAILOVER needs synced replicas).
async fn wait_replicas_synced(ports: &[u16], auth: &NodeAuth) -> Result<(), String> {
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

/// Picks the endpoint ports, starts `cachedeck sandbox serve`, waits until it listens, and
/// fills in each cache's endpoints.
async fn start_daemon(opts: &UpOptions, state: &mut State) -> Result<(), SandboxError> {
    let dir = &opts.dir;
    let mut taken = Vec::new();
    let mut port = || -> Result<u16, SandboxError> {
        loop {
            let p = srv::free_port(false)?;
            if !taken.contains(&p) {
                taken.push(p);
                return Ok(p);
            }
        }
    };
    let mut proxies = Vec::new();
    for cache in &mut state.caches {
        let members: Vec<u16> = cache
            .shards
            .iter()
            .flat_map(|s| s.nodes.iter().map(|n| n.port))
            .collect();
        let first = cache
            .shards
            .first()
            .and_then(|s| s.nodes.first())
            .map(|n| n.port);
        let proxy = |name: &str, port: u16, mode: ProxyMode, backends: Vec<u16>| ProxyState {
            name: format!("{}/{}/{name}", cache.env, cache.name),
            port,
            mode,
            backends,
            username: cache.username.clone(),
            password_parameter: cache.password_parameter.clone(),
        };
        match (cache.cluster_mode, cache.kind, cache.tls) {
            (true, _, _) => {
                // A node address stands in for the configuration endpoint.
                let ep = first.map(|p| Endpoint::new(HOST, p, false));
                cache.endpoints.configuration = ep.clone();
                cache.endpoint = ep;
            }
            (false, crate::domain::CacheKind::ReplicationGroup, true) => {
                let (primary, reader) = (port()?, port()?);
                proxies.push(proxy(
                    "primary",
                    primary,
                    ProxyMode::Primary,
                    members.clone(),
                ));
                proxies.push(proxy("reader", reader, ProxyMode::Reader, members));
                cache.endpoints.primary = Some(Endpoint::new(HOST, primary, true));
                cache.endpoints.reader = Some(Endpoint::new(HOST, reader, true));
                cache.endpoint = cache.endpoints.primary.clone();
            }
            (false, _, true) => {
                let p = port()?;
                proxies.push(proxy("endpoint", p, ProxyMode::Single, members));
                cache.endpoint = Some(Endpoint::new(HOST, p, true));
            }
            (false, kind, false) => {
                cache.endpoint = first.map(|p| Endpoint::new(HOST, p, false));
                if kind == crate::domain::CacheKind::EcsService {
                    cache.ecs = Some(EcsRef {
                        cluster: cache.env.clone(),
                        service: cache.name.clone(),
                        container: Some("valkey".into()),
                    });
                    cache.notes.push(format!(
                        "stands in for valkey.{}.local (service discovery); RDB in {}",
                        cache.env,
                        cache
                            .shards
                            .first()
                            .and_then(|s| s.nodes.first())
                            .map(|n| n.dir.display().to_string())
                            .unwrap_or_default()
                    ));
                }
            }
        }
    }
    state.proxies = proxies;
    state.save(dir)?;

    let log = dir.join("daemon.log");
    let log_file = std::fs::File::create(&log).map_err(|source| SandboxError::Io {
        path: log.clone(),
        source,
    })?;
    let err_file = log_file.try_clone().map_err(|source| SandboxError::Io {
        path: log.clone(),
        source,
    })?;
    use std::os::unix::process::CommandExt;
    let child = std::process::Command::new(&opts.exe)
        .args(["sandbox", "serve"])
        .env(super::DIR_ENV, dir)
        .stdin(std::process::Stdio::null())
        .stdout(log_file)
        .stderr(err_file)
        // Its own session: the daemon outlives the terminal that ran `up`.
        .process_group(0)
        .spawn()
        .map_err(|source| SandboxError::Io {
            path: opts.exe.clone(),
            source,
        })?;
    let pid = child.id() as i32;
    // Nobody waits for the daemon; a thread reaps it when it exits so it never lingers
    // as a zombie while this process lives.
    std::thread::spawn(move || {
        let mut child = child;
        let _ = child.wait();
    });
    state.daemon = Some(DaemonState {
        pid,
        log: log.clone(),
    });
    state.save(dir)?;
    let until = Instant::now() + Duration::from_secs(10);
    for proxy in &state.proxies {
        let port = proxy.port;
        cluster::wait(
            until,
            &format!("endpoint {} on port {port}", proxy.name),
            || async move { Ok(tokio::net::TcpStream::connect((HOST, port)).await.is_ok()) },
        )
        .await
        .map_err(|detail| SandboxError::Setup {
            cache: proxy.name.clone(),
            detail: format!("{detail}; daemon log: {}", srv::log_tail(&log)),
            dir: dir.clone(),
        })?;
    }
    Ok(())
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

/// Stops every process the sandbox started, waits for their ports, removes its state.
/// Returns how many processes were stopped.
pub async fn down(dir: &Path) -> Result<usize, SandboxError> {
    let Some(state) = State::load(dir)? else {
        return Ok(0);
    };
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || stop_all(&dir, &state))
        .await
        .map_err(|e| SandboxError::Broken {
            dir: PathBuf::new(),
            detail: e.to_string(),
        })?
}

fn stop_all(dir: &Path, state: &State) -> Result<usize, SandboxError> {
    let mut stopped = 0;
    // Removing the state first also tells the daemon to leave.
    let state_file = dir.join(super::state::STATE_FILE);
    let _ = std::fs::remove_file(&state_file);
    if let Some(daemon) = &state.daemon
        && srv::pid_alive(daemon.pid)
        && is_our_daemon(daemon.pid)
    {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(daemon.pid),
            nix::sys::signal::Signal::SIGTERM,
        );
        stopped += 1;
    }
    let nodes: Vec<(i32, u16)> = state.nodes().map(|(_, n)| (n.pid, n.port)).collect();
    for &(pid, _) in &nodes {
        if srv::pid_alive(pid) && srv::is_server_pid(pid) {
            // SIGKILL: a sandbox has nothing to save, and it frees ports at once.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            stopped += 1;
        }
    }
    let mut errors = Vec::new();
    for (pid, port) in nodes {
        if let Err(e) = srv::stop_detached(pid, port, Duration::from_secs(5)) {
            errors.push(e.to_string());
        }
    }
    for proxy in &state.proxies {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !srv::port_free(proxy.port) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if !srv::port_free(proxy.port) {
            errors.push(format!("endpoint port {} is still taken", proxy.port));
        }
    }
    if !errors.is_empty() {
        return Err(SandboxError::Broken {
            dir: dir.to_path_buf(),
            detail: errors.join("; "),
        });
    }
    for sub in ["nodes", "tls", "params", "events"] {
        let _ = std::fs::remove_dir_all(dir.join(sub));
    }
    Ok(stopped)
}

fn is_our_daemon(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains("serve"))
        .unwrap_or(true)
}
