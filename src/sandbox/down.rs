//! `cachedeck sandbox down`: stop every process the sandbox started (the daemon and each
//! valkey-server), wait until every port is free, and remove the state.

use super::setup::SandboxError;
use super::state::State;
use crate::valkey::server as srv;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Stops every process the sandbox started, waits for their ports, removes its state.
/// Returns how many processes were stopped.
pub async fn down(dir: &Path) -> Result<usize, SandboxError> {
    if State::load(dir)?.is_none() {
        return Ok(0);
    }
    let _lock = super::setup::lock(dir).await?;
    down_locked(dir).await
}

/// [`down`] for a caller that already holds the sandbox lock (a failed `up`).
pub(super) async fn down_locked(dir: &Path) -> Result<usize, SandboxError> {
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
    for c in &state.consumers {
        if super::consumer::is_consumer_pid(c.pid) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            stopped += 1;
        }
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
    let _ = std::fs::remove_file(dir.join(super::proxy::READY_FILE));
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
