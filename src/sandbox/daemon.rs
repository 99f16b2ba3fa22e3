//! The endpoint daemon from the starter's side: choosing the endpoint ports of each cache
//! and starting `cachedeck sandbox serve` (see [`super::proxy`]) so that it outlives `up`.

use super::cluster;
use super::setup::{SandboxError, UpOptions};
use super::state::{DaemonState, ProxyMode, ProxyState, State};
use super::tls::CLUSTER_FRONT_HOST;
use crate::domain::{EcsRef, Endpoint};
use crate::valkey::server::{self as srv, HOST};
use std::time::{Duration, Instant};

/// Picks the endpoint ports and fills in each cache's endpoints and the proxies.
pub fn assign_endpoints(state: &mut State) -> Result<(), SandboxError> {
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
        proxies.extend(assign_cache(cache, &mut port)?);
    }
    state.proxies = proxies;
    Ok(())
}

/// Fills in one cache's endpoints (ports from `port`) and returns its proxies.
pub fn assign_cache(
    cache: &mut super::state::CacheState,
    port: &mut dyn FnMut() -> Result<u16, SandboxError>,
) -> Result<Vec<ProxyState>, SandboxError> {
    let mut proxies = Vec::new();
    {
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
            host: None,
            port,
            mode,
            backends,
            username: cache.username.clone(),
            password_parameter: cache.password_parameter.clone(),
        };
        match (cache.cluster_mode, cache.kind, cache.tls) {
            (true, _, true) => {
                // In-transit encryption in cluster mode: a TLS front per node, on the address
                // the node announces to clients, with the node's own port. The first node's
                // front stands in for the configuration endpoint.
                for node in cache.shards.iter().flat_map(|s| &s.nodes) {
                    let mut front = proxy(&node.id, node.port, ProxyMode::Single, vec![node.port]);
                    front.host = Some(CLUSTER_FRONT_HOST.into());
                    proxies.push(front);
                }
                let ep = first.map(|p| Endpoint::new(CLUSTER_FRONT_HOST, p, true));
                cache.endpoints.configuration = ep.clone();
                cache.endpoint = ep;
            }
            (true, _, false) => {
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
                    cache.notes = vec![format!(
                        "stands in for valkey.{}.local (service discovery); RDB in {}",
                        cache.env,
                        cache
                            .shards
                            .first()
                            .and_then(|s| s.nodes.first())
                            .map(|n| n.dir.display().to_string())
                            .unwrap_or_default()
                    )];
                }
            }
        }
    }
    Ok(proxies)
}

/// Starts `cachedeck sandbox serve` for the proxies in the state and waits until it listens.
pub async fn spawn_daemon(opts: &UpOptions, state: &mut State) -> Result<(), SandboxError> {
    let dir = &opts.dir;
    state.save(dir)?;

    let log = dir.join("daemon.log");
    let _ = std::fs::remove_file(dir.join(super::proxy::READY_FILE));
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
    // Ready means: this daemon (not some other process on a port we picked) has bound every
    // endpoint and said so in its ready file.
    let ready = dir.join(super::proxy::READY_FILE);
    let until = Instant::now() + Duration::from_secs(10);
    cluster::wait(until, "the endpoint daemon to listen", || {
        let ready = ready.clone();
        async move {
            if std::fs::read_to_string(&ready).is_ok_and(|t| t.trim() == pid.to_string()) {
                return Ok(true);
            }
            if !srv::pid_alive(pid) {
                return Err("the endpoint daemon exited".to_string());
            }
            Ok(false)
        }
    })
    .await
    .map_err(|detail| SandboxError::Setup {
        cache: "endpoint daemon".into(),
        detail: format!("{detail}; daemon log: {}", srv::log_tail(&log)),
        dir: dir.clone(),
    })?;
    Ok(())
}

/// Stops a daemon that failed to start (its ports may have been taken meanwhile).
pub fn stop_failed(state: &mut State) {
    if let Some(daemon) = state.daemon.take()
        && srv::pid_alive(daemon.pid)
    {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(daemon.pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}
