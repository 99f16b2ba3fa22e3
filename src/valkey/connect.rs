//! Opening connections to a cache's nodes and endpoints: DNS, TCP, TLS (rustls, SNI = the
//! host dialled), AUTH with an ACL user or token, each step under the connect deadline and
//! each failure classified by layer with its likely cause ([`ConnectError`]). Commands then
//! run under a per-command deadline.
//!
//! The transport is built here rather than by the redis crate so that every layer can be
//! told apart: "connection refused" (tcp), "unknown issuer" (tls) and "WRONGPASS" (auth) call
//! for different fixes, and the connectivity-check runbook reports exactly which one it is.

mod error;
mod raw;
mod secrets;
mod tls;
mod transport;
mod wire;

pub use error::{ConnectError, Layer};
pub use raw::RawConnection;
pub use secrets::{Auth, resolve as resolve_auth};

use transport::{classify, connect_tcp, resolve};

/// The password of a `redis[s]://user:pass@host` URL kept in parameter `parameter`,
/// percent-decoded; errors never quote the URL.
pub(crate) fn password_from_url(
    parameter: &str,
    text: &str,
) -> Result<Option<secrecy::SecretString>, ConnectError> {
    secrets::credentials_from_url(parameter, text).map(|(_, password)| password)
}

use crate::controlplane::ControlPlane;
use crate::domain::{Cache, Endpoint};
use crate::escape::escape_capped;
use crate::valkey::info::Info;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, FromRedisValue, RedisConnectionInfo};
use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// The shortest Valkey deadline cachedeck uses, whatever the settings say: below it a
/// healthy node across a slow link would look down.
pub const MIN_VALKEY_TIMEOUT: Duration = Duration::from_secs(1);

impl ConnectOptions {
    /// The one place the deadlines of cachedeck's Valkey connections (live stats, the detail
    /// watch, runbook runs) come from: the settings' `valkey_timeout` for connecting and for
    /// each command, never below [`MIN_VALKEY_TIMEOUT`].
    pub fn from_settings(settings: &crate::config::Settings) -> ConnectOptions {
        let t = settings.valkey_timeout.max(MIN_VALKEY_TIMEOUT);
        ConnectOptions {
            connect_timeout: t,
            command_timeout: t,
        }
    }
}

/// Everything needed to connect to any node of one cache: resolved credentials, the TLS
/// configuration and the deadlines. Cheap to share between pollers (`Arc`).
#[derive(Clone)]
pub struct Connector {
    auth: Auth,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Whether node endpoints speak TLS.
    options: ConnectOptions,
    /// Set: connections speak RESP3 and hand push messages (client-tracking invalidations)
    /// here.
    pushes: Option<tokio::sync::mpsc::UnboundedSender<redis::PushInfo>>,
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
            options,
            pushes: None,
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

    /// The same connector for RESP3 connections whose push messages (client-tracking
    /// invalidations) go to `pushes`, in the order the server sent them among the replies.
    pub fn with_pushes(
        &self,
        pushes: tokio::sync::mpsc::UnboundedSender<redis::PushInfo>,
    ) -> Connector {
        Connector {
            pushes: Some(pushes),
            ..self.clone()
        }
    }

    /// Connects and logs in to `endpoint`, then checks the link with PING.
    pub async fn connect(&self, endpoint: &Endpoint) -> Result<NodeConnection, ConnectError> {
        self.connect_traced(endpoint, &mut |_| {}).await
    }

    /// [`Connector::connect`], reporting each layer that succeeded (with its duration) to
    /// `step` as it goes: the connectivity check prints these.
    pub async fn connect_traced(
        &self,
        endpoint: &Endpoint,
        step: &mut (dyn FnMut(Step) + Send),
    ) -> Result<NodeConnection, ConnectError> {
        let target = endpoint.address();
        let deadline = self.options.connect_timeout;
        let started = Instant::now();
        let left = || deadline.saturating_sub(started.elapsed());
        let mut mark = Instant::now();
        let mut done = |layer: Layer, detail: String| {
            step(Step {
                layer,
                took: mark.elapsed(),
                detail,
            });
            mark = Instant::now();
        };
        // What comes back until the first PONG, to explain a failure and cap a huge reply.
        let seen = Arc::new(wire::Seen::default());
        let stream = self.transport(endpoint, &left, &mut done).await?;
        let mut conn = self
            .login(stream, endpoint, left(), &seen)
            .await
            .map_err(|e| seen.explain(e, endpoint.tls))?;
        // A plain server with no password says nothing until asked: PING proves the link.
        let pong: String = tokio::time::timeout(left(), conn.query(&redis::cmd("PING")))
            .await
            .map_err(|_| {
                let err = timed_out(&target, deadline, "the first command");
                if endpoint.tls {
                    err
                } else {
                    err.with_cause("the endpoint may require TLS: use rediss:// (tls on)")
                }
            })
            .and_then(|r| r)
            .map_err(|e| seen.explain(e, endpoint.tls))?;
        seen.setup_done();
        if pong != "PONG" {
            return Err(ConnectError::new(
                Layer::Protocol,
                target,
                "PING was not answered with PONG",
                None,
            ));
        }
        let who = match (&self.auth.username, &self.auth.password) {
            (Some(user), Some(_)) => {
                format!("logged in as {}, PING answered", escape_capped(user, 64))
            }
            (None, Some(_)) => "AUTH accepted, PING answered".to_string(),
            _ => "no AUTH needed, PING answered".to_string(),
        };
        done(Layer::Auth, who);
        Ok(conn)
    }

    /// DNS, TCP and (for a TLS endpoint) the TLS handshake, within what `left` says remains
    /// of the connect deadline; each layer that succeeds is reported to `done`.
    async fn transport(
        &self,
        endpoint: &Endpoint,
        left: &(dyn Fn() -> Duration + Send + Sync),
        done: &mut (dyn FnMut(Layer, String) + Send),
    ) -> Result<Box<dyn wire::Stream>, ConnectError> {
        let target = endpoint.address();
        let deadline = self.options.connect_timeout;
        let addrs = tokio::time::timeout(left(), resolve(endpoint))
            .await
            .map_err(|_| {
                timed_out(&target, deadline, "dns lookup")
                    .with_cause("the DNS resolver does not answer")
            })??;
        let shown: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
        done(
            Layer::Dns,
            format!(
                "{} → {}",
                escape_capped(&endpoint.host, 200),
                shown.join(", ")
            ),
        );
        let tcp = tokio::time::timeout(left(), connect_tcp(&addrs, &target))
            .await
            .map_err(|_| {
                timed_out(&target, deadline, "tcp connect").with_cause(
                    "a security group or firewall drops the traffic, or the host is down; ElastiCache answers only inside its VPC",
                )
            })??;
        let _ = tcp.set_nodelay(true);
        let peer = tcp
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| target.clone());
        done(Layer::Tcp, format!("connected to {peer}"));
        if !endpoint.tls {
            return Ok(Box::new(tcp));
        }
        let tls_config = match &self.tls {
            Some(c) => c.clone(),
            None => tls::client_config(None)?,
        };
        let name = tls::server_name(&endpoint.host)?;
        let handshake = tokio_rustls::TlsConnector::from(tls_config).connect(name, tcp);
        let stream = tokio::time::timeout(left(), handshake)
            .await
            .map_err(|_| {
                // A plain server reads the ClientHello as the start of an inline command and
                // waits for a newline that never comes.
                timed_out(&target, deadline, "the tls handshake").with_cause(
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
        let version = stream
            .get_ref()
            .1
            .protocol_version()
            .map_or_else(|| "TLS".to_string(), |v| format!("{v:?}"));
        done(Layer::Tls, tls_step_detail(&version, &endpoint.host));
        Ok(Box::new(stream))
    }

    /// A [`RawConnection`] to `endpoint`: the same transport and login as
    /// [`Connector::connect`], for reading replies in place (a keyspace walk).
    pub async fn connect_raw(&self, endpoint: &Endpoint) -> Result<RawConnection, ConnectError> {
        let deadline = self.options.connect_timeout;
        let started = Instant::now();
        let left = || deadline.saturating_sub(started.elapsed());
        let stream = self.transport(endpoint, &left, &mut |_, _| {}).await?;
        let mut conn = RawConnection::new(
            stream,
            endpoint.clone(),
            self.auth.password.clone(),
            self.options.command_timeout,
        );
        tokio::time::timeout(left(), conn.login(self.auth.username.as_deref()))
            .await
            .map_err(|_| timed_out(&endpoint.address(), deadline, "login"))??;
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
        if self.pushes.is_some() {
            info = info.set_protocol(redis::ProtocolVersion::RESP3);
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
        seen: &Arc<wire::Seen>,
    ) -> Result<NodeConnection, ConnectError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let stream = wire::Watched::new(stream, Arc::clone(seen));
        let mut config = AsyncConnectionConfig::new()
            .set_response_timeout(Some(self.options.command_timeout))
            .set_connection_timeout(Some(left));
        if let Some(pushes) = &self.pushes {
            config = config.set_push_sender(pushes.clone());
        }
        let made = tokio::time::timeout(
            left,
            MultiplexedConnection::new_with_config(&self.redis_info(), stream, config),
        )
        .await
        .map_err(|_| {
            let err = ConnectError::new(
                Layer::Timeout,
                endpoint.address(),
                format!("no answer within {} during login", wire::human(left)),
                None,
            );
            if endpoint.tls {
                err
            } else {
                err.with_cause("the endpoint may require TLS: use rediss:// (tls on)")
            }
        })?;
        let (conn, driver) = made.map_err(|e| classify(&e, endpoint, self.auth.secret()))?;
        tokio::spawn(driver);
        Ok(NodeConnection {
            conn,
            endpoint: endpoint.clone(),
            secret: self.auth.password.clone(),
            command_timeout: self.options.command_timeout,
        })
    }
}

/// One layer of a connection that worked, for the connectivity check.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Step {
    pub layer: Layer,
    #[serde(serialize_with = "serialize_millis", rename = "took_ms")]
    pub took: Duration,
    /// What was found, e.g. `valkey.orders.local → 10.0.3.7`, `TLSv1_3 handshake…`.
    pub detail: String,
}

fn serialize_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0 * 10.0).round() / 10.0)
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
            Ok(Err(e)) => Err(classify(&e, &self.endpoint, secret.as_deref())),
            Err(_) => Err(ConnectError::new(
                Layer::Timeout,
                self.endpoint.address(),
                format!("no reply within {}", wire::human(self.command_timeout)),
                None,
            )
            .with_cause("the server is overloaded or blocked by a slow command (see SLOWLOG)")),
        }
    }

    /// `INFO` (the default sections, errorstats and keyspace included), parsed, with how
    /// long it took. Not `INFO everything`: its commandstats and latencystats are several KB
    /// that nothing here reads, sent every second by every poller to a production server.
    pub async fn info(&mut self) -> Result<(Info, Duration), ConnectError> {
        let started = Instant::now();
        let bytes: Vec<u8> = self.query(&redis::cmd("INFO")).await?;
        let took = started.elapsed();
        Ok((Info::parse(&String::from_utf8_lossy(&bytes)), took))
    }

    /// The underlying multiplexed connection, for modules that issue many commands (SCAN).
    pub fn raw(&mut self) -> &mut MultiplexedConnection {
        &mut self.conn
    }

    /// Another handle on the same connection, for requests kept in flight concurrently
    /// (no deadline of its own: callers wrap each request in one).
    pub fn multiplexed(&self) -> MultiplexedConnection {
        self.conn.clone()
    }
}

/// No answer from `target` within the connect deadline during `stage`.
fn timed_out(target: &str, deadline: Duration, stage: &str) -> ConnectError {
    ConnectError::new(
        Layer::Timeout,
        target,
        format!("no answer within {} during {stage}", wire::human(deadline)),
        None,
    )
}

/// What the connectivity check says of a TLS handshake that worked; the host (from a config
/// file, AWS or SSM) is escaped like any text from outside.
fn tls_step_detail(version: &str, host: &str) -> String {
    format!(
        "{version} handshake, certificate valid for {}",
        escape_capped(host, 200)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_tls_step_escapes_the_host() {
        let detail = super::tls_step_detail("TLSv1_3", "evil\x1b]52;c;aGk=\x07.example");
        assert!(
            !detail.contains('\x1b') && !detail.contains('\x07'),
            "{detail}"
        );
        assert!(
            detail.contains("evil\\x1b]52;c;aGk=\\x07.example"),
            "{detail}"
        );
    }
}
