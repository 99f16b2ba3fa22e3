//! Opening connections to a cache's nodes and endpoints: DNS, TCP, TLS (rustls, SNI = the
//! host dialled), AUTH with an ACL user or token, each step under the connect deadline and
//! each failure classified by layer with its likely cause ([`ConnectError`]). Commands then
//! run under a per-command deadline.
//!
//! The transport is built here rather than by the redis crate so that every layer can be
//! told apart: "connection refused" (tcp), "unknown issuer" (tls) and "WRONGPASS" (auth) call
//! for different fixes, and the connectivity-check runbook reports exactly which one it is.

mod error;
mod secrets;
mod tls;

pub use error::{ConnectError, Layer};
pub use secrets::{Auth, resolve as resolve_auth};

use crate::controlplane::ControlPlane;
use crate::domain::{Cache, Endpoint, Node};
use crate::valkey::info::Info;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ErrorKind, FromRedisValue, RedisConnectionInfo, RedisError};
use secrecy::ExposeSecret;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Deadlines for reaching a node and for each command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectOptions {
    /// DNS + TCP + TLS + AUTH together.
    pub connect_timeout: Duration,
    /// Each command once connected.
    pub command_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(3),
        }
    }
}

/// Everything needed to connect to any node of one cache: resolved credentials, the TLS
/// configuration and the deadlines. Cheap to share between pollers (`Arc`).
#[derive(Clone)]
pub struct Connector {
    auth: Auth,
    tls: Option<Arc<rustls::ClientConfig>>,
    cache_tls: bool,
    options: ConnectOptions,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("auth", &self.auth)
            .field("tls", &self.tls.is_some())
            .field("options", &self.options)
            .finish()
    }
}

impl Connector {
    /// Resolves `cache`'s credentials (through `plane` for SSM) and prepares TLS.
    pub async fn for_cache(
        cache: &Cache,
        plane: Option<&dyn ControlPlane>,
        options: ConnectOptions,
    ) -> Result<Connector, ConnectError> {
        let auth = secrets::resolve(&cache.credentials, plane).await?;
        Connector::new(
            auth,
            cache.tls,
            cache.credentials.ca_file.as_deref(),
            options,
        )
    }

    /// A connector from parts (tests, ad-hoc endpoints).
    pub fn new(
        auth: Auth,
        tls: bool,
        ca_file: Option<&str>,
        options: ConnectOptions,
    ) -> Result<Connector, ConnectError> {
        // Build the TLS config even when the cache is plain: a node endpoint may still ask
        // for TLS, and a bad ca_file should be reported up front.
        let tls_config = if tls || ca_file.is_some() {
            Some(tls::client_config(ca_file)?)
        } else {
            None
        };
        Ok(Connector {
            auth,
            tls: tls_config,
            cache_tls: tls,
            options,
        })
    }

    pub fn options(&self) -> ConnectOptions {
        self.options
    }

    /// The same credentials and TLS with other deadlines (probes want short ones).
    pub fn with_options(&self, options: ConnectOptions) -> Connector {
        Connector {
            options,
            ..self.clone()
        }
    }

    /// The endpoint of one node, speaking TLS when the cache does.
    pub fn node_endpoint(&self, node: &Node) -> Endpoint {
        node.endpoint(self.cache_tls)
    }

    /// Connects and logs in to `endpoint`, then checks the link with PING.
    pub async fn connect(&self, endpoint: &Endpoint) -> Result<NodeConnection, ConnectError> {
        let target = endpoint.address();
        let deadline = self.options.connect_timeout;
        let timed_out = |stage: &str| {
            ConnectError::new(
                Layer::Timeout,
                target.clone(),
                format!("no answer within {deadline:?} during {stage}"),
                None,
            )
        };
        let started = Instant::now();
        let left = || deadline.saturating_sub(started.elapsed());

        let addrs = tokio::time::timeout(left(), resolve(endpoint))
            .await
            .map_err(|_| {
                timed_out("dns lookup").with_cause("the DNS resolver does not answer")
            })??;
        let tcp = tokio::time::timeout(left(), connect_tcp(&addrs, &target))
            .await
            .map_err(|_| {
                timed_out("tcp connect").with_cause(
                    "a security group or firewall drops the traffic, or the host is down; ElastiCache answers only inside its VPC",
                )
            })??;
        let _ = tcp.set_nodelay(true);

        let mut conn = if endpoint.tls {
            let tls_config = match &self.tls {
                Some(c) => c.clone(),
                None => tls::client_config(None)?,
            };
            let name = tls::server_name(&endpoint.host)?;
            let handshake = tokio_rustls::TlsConnector::from(tls_config).connect(name, tcp);
            let stream = tokio::time::timeout(left(), handshake)
                .await
                .map_err(|_| {
                    // A plain server reads the ClientHello as the start of an inline command
                    // and waits for a newline that never comes.
                    timed_out("the tls handshake").with_cause(
                        "the endpoint does not speak TLS (a plain server stays silent); use redis:// (tls off) for it",
                    )
                })?
                .map_err(|e| {
                    let cause = tls::handshake_cause(&e);
                    let err = ConnectError::new(Layer::Tls, target.clone(), e.to_string(), None);
                    match cause {
                        Some(c) => err.with_cause(c),
                        None => err,
                    }
                })?;
            self.login(stream, endpoint, left()).await?
        } else {
            self.login(tcp, endpoint, left()).await?
        };
        // A plain server with no password says nothing until asked: PING proves the link.
        let pong: String = tokio::time::timeout(left(), conn.query(&redis::cmd("PING")))
            .await
            .map_err(|_| {
                let err = timed_out("the first command");
                if endpoint.tls {
                    err
                } else {
                    err.with_cause("the endpoint may require TLS: use rediss:// (tls on)")
                }
            })??;
        if pong != "PONG" {
            return Err(ConnectError::new(
                Layer::Protocol,
                target,
                "PING was not answered with PONG",
                None,
            ));
        }
        Ok(conn)
    }

    fn redis_info(&self) -> RedisConnectionInfo {
        let mut info =
            RedisConnectionInfo::default().set_lib_name("cachedeck", env!("CARGO_PKG_VERSION"));
        if let Some(user) = &self.auth.username {
            info = info.set_username(user);
        }
        if let Some(password) = &self.auth.password {
            info = info.set_password(password.expose_secret());
        }
        info
    }

    /// AUTH (and CLIENT SETINFO) over an established stream, under what is left of the
    /// connect deadline.
    async fn login<S>(
        &self,
        stream: S,
        endpoint: &Endpoint,
        left: Duration,
    ) -> Result<NodeConnection, ConnectError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let config = AsyncConnectionConfig::new()
            .set_response_timeout(Some(self.options.command_timeout))
            .set_connection_timeout(Some(left));
        let made = tokio::time::timeout(
            left,
            MultiplexedConnection::new_with_config(&self.redis_info(), stream, config),
        )
        .await
        .map_err(|_| {
            let err = ConnectError::new(
                Layer::Timeout,
                endpoint.address(),
                format!("no answer within {left:?} during login"),
                None,
            );
            if endpoint.tls {
                err
            } else {
                err.with_cause("the endpoint may require TLS: use rediss:// (tls on)")
            }
        })?;
        let (conn, driver) = made.map_err(|e| classify(&e, endpoint, self.auth.secret(), true))?;
        tokio::spawn(driver);
        Ok(NodeConnection {
            conn,
            endpoint: endpoint.clone(),
            secret: self.auth.password.clone(),
            command_timeout: self.options.command_timeout,
        })
    }
}

/// A logged-in connection to one node.
pub struct NodeConnection {
    conn: MultiplexedConnection,
    endpoint: Endpoint,
    secret: Option<secrecy::SecretString>,
    command_timeout: Duration,
}

impl NodeConnection {
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Runs one command under the per-command deadline.
    pub async fn query<T: FromRedisValue>(&mut self, cmd: &redis::Cmd) -> Result<T, ConnectError> {
        let secret = self.secret.as_ref().map(|s| s.expose_secret().to_string());
        match tokio::time::timeout(self.command_timeout, cmd.query_async(&mut self.conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(classify(&e, &self.endpoint, secret.as_deref(), false)),
            Err(_) => Err(ConnectError::new(
                Layer::Timeout,
                self.endpoint.address(),
                format!("no reply within {:?}", self.command_timeout),
                None,
            )
            .with_cause("the server is overloaded or blocked by a slow command (see SLOWLOG)")),
        }
    }

    /// `INFO everything`, parsed, with how long it took.
    pub async fn info(&mut self) -> Result<(Info, Duration), ConnectError> {
        let started = Instant::now();
        let bytes: Vec<u8> = self.query(redis::cmd("INFO").arg("everything")).await?;
        let took = started.elapsed();
        Ok((Info::parse(&String::from_utf8_lossy(&bytes)), took))
    }

    /// The underlying multiplexed connection, for modules that issue many commands (SCAN).
    pub fn raw(&mut self) -> &mut MultiplexedConnection {
        &mut self.conn
    }
}

async fn resolve(endpoint: &Endpoint) -> Result<Vec<SocketAddr>, ConnectError> {
    let host = endpoint.host.trim_matches(|c| c == '[' || c == ']');
    let found = tokio::net::lookup_host((host, endpoint.port)).await.map_err(|e| {
        ConnectError::new(Layer::Dns, endpoint.address(), e.to_string(), None).with_cause(
            "the host name is wrong, or it resolves only inside the VPC (run from a bastion or use ECS Exec)",
        )
    })?;
    let addrs: Vec<SocketAddr> = found.collect();
    if addrs.is_empty() {
        return Err(ConnectError::new(
            Layer::Dns,
            endpoint.address(),
            "no address found",
            None,
        ));
    }
    Ok(addrs)
}

async fn connect_tcp(addrs: &[SocketAddr], target: &str) -> Result<TcpStream, ConnectError> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    let e = last.unwrap_or_else(|| std::io::Error::other("no address to try"));
    let err = ConnectError::new(Layer::Tcp, target, e.to_string(), None);
    Err(match e.kind() {
        std::io::ErrorKind::ConnectionRefused => err.with_cause(
            "nothing listens on that port: the node is down, restarting, or the port is wrong",
        ),
        std::io::ErrorKind::HostUnreachable | std::io::ErrorKind::NetworkUnreachable => {
            err.with_cause("no route to the host: wrong VPC/subnet, or a missing route or peering")
        }
        _ => err,
    })
}

/// Sorts a redis-crate error into a layer. `during_setup` is true while logging in, when a
/// dropped link or garbage reply most often means a TLS/plain mismatch.
fn classify(
    e: &RedisError,
    endpoint: &Endpoint,
    secret: Option<&str>,
    during_setup: bool,
) -> ConnectError {
    let target = endpoint.address();
    let text = e.to_string();
    let code = e.code().unwrap_or_default();
    let new = |layer| ConnectError::new(layer, target.clone(), &text, secret);
    if e.kind() == ErrorKind::AuthenticationFailed || code == "WRONGPASS" {
        return new(Layer::Auth).with_cause(
            "wrong user or password for this cache (check the env var / SSM parameter it comes from), or the server has no password set",
        );
    }
    match code {
        "NOAUTH" => return new(Layer::Auth)
            .with_cause("the server requires AUTH: set the cache's credentials (password env var or SSM parameter)"),
        "NOPERM" => return new(Layer::Server)
            .with_cause("the ACL user lacks permission for this command; grant it (e.g. +info +slowlog +ping) or use another user"),
        "LOADING" => return new(Layer::Server)
            .with_cause("the node is loading its dataset after a restart; wait and retry"),
        _ => {}
    }
    if e.is_timeout() {
        return new(Layer::Timeout);
    }
    let dropped = e.is_connection_dropped() || e.is_io_error() || e.kind() == ErrorKind::Parse;
    if dropped {
        let err = new(Layer::Protocol);
        return if !endpoint.tls && (during_setup || e.kind() == ErrorKind::Parse) {
            err.with_cause("plain redis:// against a TLS-only endpoint? use rediss:// (tls on)")
        } else if e.is_connection_refusal() {
            err.with_cause("the node went away")
        } else {
            err
        };
    }
    new(Layer::Server)
}
