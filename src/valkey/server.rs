//! Running real `valkey-server` processes on free loopback ports.
//!
//! Two modes: [`ValkeyServer`] is a child of the caller, killed on Drop (tests); and
//! [`spawn_detached`] starts a daemonized server that outlives the command that started it
//! (the sandbox), stopped later by pid with [`stop_detached`].
//!
//! Secrets (passwords, ACL users) go into a 0600 config file in the data dir, never argv.

use super::binary;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The loopback address every server binds to.
pub const HOST: &str = "127.0.0.1";
/// How long a server gets to answer PING after it is started.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Ports are drawn from here: below Linux's ephemeral range (32768+), so outgoing
/// connections never take them, and with room for the cluster bus port (+10000).
const PORT_RANGE: std::ops::Range<u16> = 10_000..22_000;
const START_ATTEMPTS: usize = 5;

/// Why a server could not be started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{0}")]
    Binary(String),
    #[error("prepare {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("start valkey-server on port {port}: {detail} (log: {log})")]
    Start {
        port: u16,
        detail: String,
        log: PathBuf,
    },
    #[error("no free loopback port in {PORT_RANGE:?} after {0} tries; stop stray valkey-servers")]
    NoFreePort(usize),
    #[error("valkey-server pid {pid} (port {port}) did not stop within {after:?}")]
    Stop {
        pid: i32,
        port: u16,
        after: Duration,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ServerError + '_ {
    move |source| ServerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What to start: data dir, port, config directives and extra arguments.
#[derive(Clone, Default)]
pub struct ServerSpec {
    /// Data dir (RDB, nodes.conf, log, config file); created if missing. `None` makes a
    /// fresh temporary directory that is removed when the [`ValkeyServer`] drops.
    pub dir: Option<PathBuf>,
    /// `None` picks a free port.
    pub port: Option<u16>,
    /// Config-file lines (`requirepass …`, `user app on >… ~* +@all`); written 0600.
    pub config: Vec<String>,
    /// Extra command-line arguments, e.g. `["--cluster-enabled", "yes"]`. Never secrets.
    pub args: Vec<String>,
    /// Deadline for the first PING answer; [`DEFAULT_READY_TIMEOUT`] when zero.
    pub ready_timeout: Duration,
}

impl std::fmt::Debug for ServerSpec {
    // The config lines may hold passwords: show only how many there are.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSpec")
            .field("dir", &self.dir)
            .field("port", &self.port)
            .field("config_lines", &self.config.len())
            .field("args", &self.args)
            .finish()
    }
}

impl ServerSpec {
    pub fn new() -> Self {
        ServerSpec::default()
    }
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }
    pub fn config_line(mut self, line: impl Into<String>) -> Self {
        self.config.push(line.into());
        self
    }
    /// `cluster-enabled yes` with its nodes file in the data dir.
    pub fn cluster(self) -> Self {
        self.args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
    }
    fn is_cluster(&self) -> bool {
        self.args
            .windows(2)
            .any(|w| w[0] == "--cluster-enabled" && w[1] == "yes")
    }
    fn timeout(&self) -> Duration {
        if self.ready_timeout.is_zero() {
            DEFAULT_READY_TIMEOUT
        } else {
            self.ready_timeout
        }
    }

    /// Writes the config file and builds the command line (without daemon options).
    fn command(&self, dir: &Path, port: u16) -> Result<Command, ServerError> {
        let bin = binary::cached().map_err(ServerError::Binary)?;
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let conf = dir.join("cachedeck.conf");
        write_private(&conf, &(self.config.join("\n") + "\n"))?;
        let mut cmd = Command::new(&bin.path);
        cmd.arg(&conf)
            .args(["--port", &port.to_string(), "--bind", HOST])
            .arg("--dir")
            .arg(dir)
            .arg("--logfile")
            .arg(dir.join("valkey.log"))
            // Defaults a test wants; the caller's args come later and win.
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            // Replicas sync at once instead of after the default 5 s diskless delay.
            .args(["--repl-diskless-sync-delay", "0"])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Ok(cmd)
    }
}

/// Writes `text` to a new file only its owner can read.
pub fn write_private(path: &Path, text: &str) -> Result<(), ServerError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    file.write_all(text.as_bytes()).map_err(io_err(path))
}

/// A valkey-server child process, killed (and its temporary dir removed) on Drop.
#[derive(Debug)]
pub struct ValkeyServer {
    child: Option<Child>,
    spec: ServerSpec,
    port: u16,
    dir: PathBuf,
    owns_dir: bool,
}

impl ValkeyServer {
    /// Starts a plain server on a free port in a temporary dir.
    pub fn start_default() -> Result<Self, ServerError> {
        ValkeyServer::start(ServerSpec::new())
    }

    /// Starts a server and waits until it answers PING.
    pub fn start(spec: ServerSpec) -> Result<Self, ServerError> {
        let (dir, owns_dir) = match &spec.dir {
            Some(dir) => (dir.clone(), false),
            None => (unique_temp_dir("valkey"), true),
        };
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            let port = match spec.port {
                Some(p) => p,
                None => free_port(spec.is_cluster())?,
            };
            let mut server = ValkeyServer {
                child: None,
                spec: spec.clone(),
                port,
                dir: dir.clone(),
                owns_dir,
            };
            match server.launch() {
                Ok(()) => return Ok(server),
                // Another process took the port between the check and the bind: try another.
                Err(e) if spec.port.is_none() && port_taken(&dir) => {
                    server.owns_dir = false;
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(ServerError::NoFreePort(START_ATTEMPTS)))
    }

    fn launch(&mut self) -> Result<(), ServerError> {
        let log = self.dir.join("valkey.log");
        let mut child = self
            .spec
            .command(&self.dir, self.port)?
            .spawn()
            .map_err(|e| ServerError::Start {
                port: self.port,
                detail: e.to_string(),
                log: log.clone(),
            })?;
        let deadline = Instant::now() + self.spec.timeout();
        loop {
            if ping(self.port, Duration::from_millis(200)) {
                self.child = Some(child);
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(ServerError::Start {
                    port: self.port,
                    detail: format!("exited with {status}: {}", log_tail(&log)),
                    log,
                });
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ServerError::Start {
                    port: self.port,
                    detail: format!("no PING answer within {:?}", self.spec.timeout()),
                    log,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn host(&self) -> &str {
        HOST
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
    /// `redis://127.0.0.1:<port>/` (no credentials).
    pub fn url(&self) -> String {
        format!("redis://{HOST}:{}/", self.port)
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills the process at once (SIGKILL): a crash, nothing saved.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the process gracefully (SIGTERM: saves RDB when save points are configured).
    pub fn stop(&mut self) -> Result<(), ServerError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = child.id() as i32;
        signal(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(ServerError::Stop {
            pid,
            port: self.port,
            after: Duration::from_secs(10),
        })
    }

    /// Starts the server again on the same port and data dir (after [`stop`](Self::stop) or
    /// [`kill`](Self::kill)).
    pub fn restart(&mut self) -> Result<(), ServerError> {
        self.stop()?;
        self.launch()
    }
}

impl Drop for ValkeyServer {
    fn drop(&mut self) {
        self.kill();
        if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A daemonized server that outlives its starter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetachedServer {
    pub pid: i32,
    pub port: u16,
    pub dir: PathBuf,
    /// The caller's extra arguments, kept so the server can be started again alike.
    pub args: Vec<String>,
}

/// Starts a daemonized server (`--daemonize yes`, pid file and log in `spec.dir`), waits for
/// PING and returns its pid. `spec.dir` is required: the daemon's files must stay.
pub fn spawn_detached(spec: &ServerSpec) -> Result<DetachedServer, ServerError> {
    let dir = spec
        .dir
        .clone()
        .unwrap_or_else(|| unique_temp_dir("valkey-detached"));
    let pidfile = dir.join("valkey.pid");
    let mut last = None;
    for _ in 0..START_ATTEMPTS {
        let port = match spec.port {
            Some(p) => p,
            None => free_port(spec.is_cluster())?,
        };
        let _ = std::fs::remove_file(&pidfile);
        let _ = std::fs::remove_file(dir.join("valkey.log"));
        let mut cmd = spec.command(&dir, port)?;
        cmd.args(["--daemonize", "yes", "--pidfile"]).arg(&pidfile);
        let log = dir.join("valkey.log");
        let fail = |detail: String| ServerError::Start {
            port,
            detail,
            log: log.clone(),
        };
        // The launcher forks the daemon and exits at once.
        let status = cmd.status().map_err(|e| fail(e.to_string()))?;
        if !status.success() {
            return Err(fail(format!("launcher exited with {status}")));
        }
        let deadline = Instant::now() + spec.timeout();
        let outcome = loop {
            if ping(port, Duration::from_millis(200))
                && let Some(pid) = read_pid(&pidfile)
            {
                break Ok(DetachedServer {
                    pid,
                    port,
                    dir: dir.clone(),
                    args: spec.args.clone(),
                });
            }
            if port_taken(&dir) {
                break Err(fail(log_tail(&log)));
            }
            if Instant::now() > deadline {
                if let Some(pid) = read_pid(&pidfile) {
                    signal(pid, nix::sys::signal::Signal::SIGKILL);
                }
                return Err(fail(format!(
                    "no PING answer within {:?}: {}",
                    spec.timeout(),
                    log_tail(&log)
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        match outcome {
            Ok(server) => return Ok(server),
            Err(e) if spec.port.is_none() => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or(ServerError::NoFreePort(START_ATTEMPTS)))
}

/// Stops a detached server: SIGTERM, then SIGKILL after `grace`; returns once the process is
/// gone and its port is free. A pid that is not a valkey/redis server is left alone.
pub fn stop_detached(pid: i32, port: u16, grace: Duration) -> Result<(), ServerError> {
    if is_server_pid(pid) {
        signal(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while pid_alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if pid_alive(pid) {
            signal(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
    let deadline = Instant::now() + grace + Duration::from_secs(5);
    while (pid_alive(pid) && is_server_pid(pid)) || !port_free(port) {
        if Instant::now() > deadline {
            return Err(ServerError::Stop {
                pid,
                port,
                after: grace + Duration::from_secs(5),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Whether `pid` is a live (not zombie) process.
pub fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
                && !Path::new("/proc/self").exists()
        }
    }
}

/// Whether `pid` runs a valkey-server or redis-server (guards against pid reuse).
pub fn is_server_pid(pid: i32) -> bool {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => {
            let text = String::from_utf8_lossy(&cmdline);
            text.contains("valkey-server") || text.contains("redis-server")
        }
        // No /proc (not Linux): trust the state file.
        Err(_) => !Path::new("/proc/self").exists() && pid_alive(pid),
    }
}

fn signal(pid: i32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
}

fn read_pid(pidfile: &Path) -> Option<i32> {
    std::fs::read_to_string(pidfile).ok()?.trim().parse().ok()
}

/// Sends PING over a raw connection; any reply but LOADING counts (NOAUTH means it is up).
pub fn ping(port: u16, timeout: Duration) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(n) if n > 0 => {
            let reply = &buf[..n];
            reply.starts_with(b"+") || (reply.starts_with(b"-") && !reply.starts_with(b"-LOADING"))
        }
        _ => false,
    }
}

/// Whether nothing listens on the loopback port.
pub fn port_free(port: u16) -> bool {
    TcpListener::bind((HOST, port)).is_ok()
}

/// A port (and, for cluster nodes, its bus port +10000) that is free right now.
pub fn free_port(cluster: bool) -> Result<u16, ServerError> {
    use rand::Rng;
    let mut rng = rand::rng();
    for _ in 0..200 {
        let port = rng.random_range(PORT_RANGE);
        if port_free(port) && (!cluster || port_free(port + 10_000)) {
            return Ok(port);
        }
    }
    Err(ServerError::NoFreePort(200))
}

fn port_taken(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("valkey.log"))
        .is_ok_and(|log| log.contains("Address already in use"))
}

/// The last few lines of a server log, for error messages.
pub fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(3).collect();
    if lines.is_empty() {
        "log is empty".into()
    } else {
        lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }
}

/// A fresh directory under the system temp dir.
pub fn unique_temp_dir(prefix: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!(
        "cachedeck-{prefix}-{}-{n}-{}",
        std::process::id(),
        rand::random::<u32>()
    ))
}
