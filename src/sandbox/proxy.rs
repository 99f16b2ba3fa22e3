//! The endpoint daemon (`cachedeck sandbox serve`): TLS endpoints in front of the sandbox's
//! plain nodes, as ElastiCache's endpoints stand in front of its nodes.
//!
//! A cluster-mode group with in-transit encryption gets a TLS front per node instead (see
//! [`super::tls::CLUSTER_FRONT_HOST`]), each always to its one node.
//!
//! A primary endpoint asks every member ROLE each ~50 ms, sends new connections to the
//! current primary and closes connections to a node once it is demoted — what a client sees
//! when ElastiCache's DNS name moves. A reader endpoint spreads connections over replicas.

use super::client::{self, NodeAuth};
use super::params::ParamStore;
use super::state::{ProxyMode, ProxyState, State};
use crate::domain::NodeRole;
use redis::aio::MultiplexedConnection;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Written (with the daemon's pid) once every endpoint listens.
pub const READY_FILE: &str = "daemon.ready";
/// How often members are asked ROLE.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(50);
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The roles of a proxy's members as last seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roles {
    pub primary: Option<u16>,
    pub replicas: Vec<u16>,
}

/// Why the daemon could not serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("the sandbox in {0} is down (no state file); run `cachedeck sandbox up`")]
    NoState(PathBuf),
    #[error(transparent)]
    State(#[from] super::state::StateError),
    #[error(transparent)]
    Tls(#[from] super::tls::TlsError),
    #[error("write {path}: {source}")]
    Ready {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("listen on {host}:{port} for {name}: {source}")]
    Bind {
        host: String,
        name: String,
        port: u16,
        source: std::io::Error,
    },
}

/// Serves every proxy of the sandbox in `dir` until the state file disappears (or a signal).
pub async fn serve(dir: &Path) -> Result<(), ServeError> {
    let state = State::load(dir)?.ok_or_else(|| ServeError::NoState(dir.to_path_buf()))?;
    let acceptor = super::tls::acceptor(&dir.join("tls"))?;
    let params = ParamStore::new(dir);
    for proxy in &state.proxies {
        let listener = TcpListener::bind((proxy.listen_host(), proxy.port))
            .await
            .map_err(|source| ServeError::Bind {
                host: proxy.listen_host().to_string(),
                name: proxy.name.clone(),
                port: proxy.port,
                source,
            })?;
        let roles = watch_roles(proxy.clone(), params.clone());
        tokio::spawn(accept_loop(
            listener,
            acceptor.clone(),
            proxy.clone(),
            roles,
        ));
    }
    let ready = dir.join(READY_FILE);
    std::fs::write(&ready, std::process::id().to_string()).map_err(|source| ServeError::Ready {
        path: ready.clone(),
        source,
    })?;
    tracing::info!(proxies = state.proxies.len(), "sandbox endpoints serving");
    // TestFailovers the control plane accepted are carried out here, as ElastiCache does,
    // so they finish even when the caller is killed right after its call.
    tokio::spawn(super::failover::serve_queue(dir.to_path_buf()));
    // Restores (CreateReplicationGroup from a snapshot) are built here too, for the same
    // reason; a restore that is built says so, and its endpoints are served at once.
    let built = std::sync::Arc::new(tokio::sync::Notify::new());
    tokio::spawn(super::restore::serve_queue(
        dir.to_path_buf(),
        built.clone(),
    ));
    // Leave when the sandbox is taken down, even if nobody signalled us.
    let state_file = dir.join(super::state::STATE_FILE);
    let mut serving: Vec<String> = state.proxies.iter().map(|p| p.name.clone()).collect();
    let mut latest = state;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = built.notified() => {}
        }
        // Keep the newest pids (`up` may have restarted nodes since we started).
        if let Ok(Some(current)) = State::load(dir) {
            latest = current;
        }
        // Endpoints of caches added since (restores from snapshots) are served as they appear.
        for proxy in &latest.proxies {
            if serving.contains(&proxy.name) {
                continue;
            }
            serving.push(proxy.name.clone());
            match TcpListener::bind((proxy.listen_host(), proxy.port)).await {
                Ok(listener) => {
                    let roles = watch_roles(proxy.clone(), params.clone());
                    tokio::spawn(accept_loop(
                        listener,
                        acceptor.clone(),
                        proxy.clone(),
                        roles,
                    ));
                    tracing::info!(proxy = %proxy.name, port = proxy.port, "endpoint added");
                }
                Err(e) => {
                    tracing::warn!(proxy = %proxy.name, port = proxy.port, error = %e, "cannot bind a new endpoint");
                }
            }
        }
        if !state_file.exists() {
            if !dir.exists() {
                // The whole sandbox dir was deleted without `down` (a test's temp dir, a
                // user's rm -rf): nobody else can find these nodes any more, so stop them.
                for (_, node) in latest.nodes() {
                    if runs_in(node.pid, &node.dir) {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(node.pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                }
                tracing::warn!("sandbox dir deleted without `down`; stopped its nodes");
            }
            tracing::info!("sandbox state gone; endpoints stop");
            return Ok(());
        }
    }
}

/// How a proxy logs in to its members (`name` is `<env>/<cache>/<endpoint>`).
fn proxy_auth(proxy: &ProxyState, params: &ParamStore) -> NodeAuth {
    let mut parts = proxy.name.splitn(3, '/');
    let (env, cache) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    NodeAuth::for_cache(
        env,
        cache,
        proxy.username.as_deref(),
        proxy.password_parameter.as_deref(),
        params,
    )
}

/// Starts the ROLE watcher of a proxy (a fixed backend for `single`).
fn watch_roles(proxy: ProxyState, params: ParamStore) -> watch::Receiver<Roles> {
    if proxy.mode == ProxyMode::Single {
        let (_tx, rx) = watch::channel(Roles {
            primary: proxy.backends.first().copied(),
            replicas: Vec::new(),
        });
        return rx;
    }
    let (tx, rx) = watch::channel(Roles::default());
    tokio::spawn(async move {
        // One kept connection per member: a fresh connection (and AUTH) every 50 ms would
        // show up as background traffic in every node's stats.
        let mut conns: Vec<Option<MultiplexedConnection>> = vec![None; proxy.backends.len()];
        loop {
            let probes = proxy
                .backends
                .iter()
                .zip(conns.iter_mut())
                .map(|(&port, slot)| {
                    let params = params.clone();
                    let proxy = &proxy;
                    async move {
                        if slot.is_none() {
                            // Credentials are read again on every reconnect: the cache's
                            // token may have been rotated since the daemon started.
                            let auth = proxy_auth(proxy, &params);
                            *slot = client::connect(port, &auth, PROBE_TIMEOUT).await.ok();
                            if let Some(conn) = slot.as_mut() {
                                // Named, so checks of application connections (the
                                // auth-rotate drain check) can tell it is not one.
                                let _ = client::command(
                                    conn,
                                    redis::cmd("CLIENT")
                                        .arg("SETNAME")
                                        .arg("cachedeck-sandbox-endpoint"),
                                    PROBE_TIMEOUT,
                                )
                                .await;
                            }
                        }
                        let role = match slot.as_mut() {
                            Some(conn) => client::role_on(conn, PROBE_TIMEOUT).await,
                            None => Err("unreachable".to_string()),
                        };
                        if role.is_err() {
                            *slot = None;
                        }
                        (port, role)
                    }
                })
                .collect::<Vec<_>>();
            let mut roles = Roles::default();
            for (port, role) in futures::future::join_all(probes).await {
                match role {
                    Ok(NodeRole::Primary) if roles.primary.is_none() => roles.primary = Some(port),
                    Ok(NodeRole::Replica) => roles.replicas.push(port),
                    _ => {}
                }
            }
            tx.send_if_modified(|current| {
                if *current != roles {
                    tracing::info!(proxy = %proxy.name, ?roles, "members changed");
                    *current = roles;
                    true
                } else {
                    false
                }
            });
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(WATCH_INTERVAL).await;
        }
    });
    rx
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    proxy: ProxyState,
    roles: watch::Receiver<Roles>,
) {
    let next = Arc::new(AtomicUsize::new(0));
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let acceptor = acceptor.clone();
        let roles = roles.clone();
        let mode = proxy.mode;
        let next = next.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(socket, acceptor, mode, roles, next).await {
                tracing::debug!(error = %e, "endpoint connection ended");
            }
        });
    }
}

/// Picks the backend for a new connection; waits briefly for a primary during a failover.
async fn pick(
    mode: ProxyMode,
    roles: &mut watch::Receiver<Roles>,
    next: &AtomicUsize,
) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let current = roles.borrow_and_update().clone();
        let choice = match mode {
            ProxyMode::Primary | ProxyMode::Single => current.primary,
            ProxyMode::Reader if current.replicas.is_empty() => current.primary,
            ProxyMode::Reader => {
                let i = next.fetch_add(1, Ordering::Relaxed) % current.replicas.len();
                current.replicas.get(i).copied()
            }
        };
        if choice.is_some() {
            return choice;
        }
        if tokio::time::timeout_at(deadline, roles.changed())
            .await
            .is_err()
        {
            return None;
        }
    }
}

async fn handle(
    socket: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    mode: ProxyMode,
    mut roles: watch::Receiver<Roles>,
    next: Arc<AtomicUsize>,
) -> Result<(), String> {
    let _ = socket.set_nodelay(true);
    let mut tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket))
        .await
        .map_err(|_| "tls handshake timed out".to_string())?
        .map_err(|e| format!("tls handshake: {e}"))?;
    let backend = pick(mode, &mut roles, &next)
        .await
        .ok_or_else(|| "no member answers as primary".to_string())?;
    let mut upstream = tokio::time::timeout(
        CONNECT_TIMEOUT,
        TcpStream::connect((crate::valkey::server::HOST, backend)),
    )
    .await
    .map_err(|_| format!("node {backend} did not accept within {CONNECT_TIMEOUT:?}"))?
    .map_err(|e| format!("node {backend}: {e}"))?;
    let _ = upstream.set_nodelay(true);
    if mode != ProxyMode::Primary {
        return tokio::io::copy_bidirectional(&mut tls, &mut upstream)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
    }
    tokio::select! {
        r = tokio::io::copy_bidirectional(&mut tls, &mut upstream) => r.map(|_| ()).map_err(|e| e.to_string()),
        () = demoted(&mut roles, backend) => Err(format!("node {backend} was demoted; connection closed")),
    }
}

/// Resolves once `backend` is no longer the primary (another one is, or it reports replica).
async fn demoted(roles: &mut watch::Receiver<Roles>, backend: u16) {
    loop {
        {
            let r = roles.borrow_and_update();
            if r.replicas.contains(&backend) || r.primary.is_some_and(|p| p != backend) {
                return;
            }
        }
        if roles.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Whether `pid` is a server running in `dir` (valkey chdirs to its data dir), so a reused
/// pid of some other process is never signalled.
fn runs_in(pid: i32, dir: &Path) -> bool {
    crate::valkey::server::is_server_pid(pid)
        && std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| {
            let cwd = cwd.to_string_lossy();
            let dir = dir.to_string_lossy();
            cwd == dir || cwd == format!("{dir} (deleted)")
        })
}
