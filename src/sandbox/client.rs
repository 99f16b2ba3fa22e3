//! Small async Valkey client helpers for the sandbox's own use (ROLE probes, failover,
//! cluster setup, seeding): loopback only, every call under a deadline, credentials from the
//! parameter store and never in an error text.

use super::params::ParamStore;
use super::state::CacheState;
use crate::domain::NodeRole;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

/// How the sandbox logs in to a node.
#[derive(Clone, Default)]
pub struct NodeAuth {
    pub username: Option<String>,
    pub password: Option<SecretString>,
}

impl std::fmt::Debug for NodeAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeAuth")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl NodeAuth {
    /// How the sandbox logs in to a cache's nodes: the newest secret its control plane
    /// knows (`sandbox::auth`), else the cache's password parameter.
    pub fn of(cache: &CacheState, params: &ParamStore) -> NodeAuth {
        Self::for_cache(
            &cache.env,
            &cache.name,
            cache.username.as_deref(),
            cache.password_parameter.as_deref(),
            params,
        )
    }

    /// [`NodeAuth::of`] from the parts an endpoint proxy knows.
    pub fn for_cache(
        env: &str,
        cache: &str,
        username: Option<&str>,
        parameter: Option<&str>,
        params: &ParamStore,
    ) -> NodeAuth {
        match super::auth::load(params.sandbox_dir(), env, cache).and_then(|r| r.newest()) {
            Some(password) => NodeAuth {
                username: username.map(str::to_string),
                password: Some(password),
            },
            None => Self::from_parameter(username, parameter, params),
        }
    }

    /// From a parameter name and user (the daemon's view of a proxy).
    pub fn from_parameter(
        username: Option<&str>,
        parameter: Option<&str>,
        params: &ParamStore,
    ) -> NodeAuth {
        let password = parameter
            .and_then(|name| params.get(name).ok().flatten())
            .map(|p| SecretString::from(p.value.expose().to_string()));
        NodeAuth {
            username: username.map(str::to_string),
            password,
        }
    }
}

/// Connects to a loopback node and authenticates. Errors are short words, no secrets.
pub async fn connect(
    port: u16,
    auth: &NodeAuth,
    timeout: Duration,
) -> Result<MultiplexedConnection, String> {
    let mut settings = RedisConnectionInfo::default();
    if let Some(user) = &auth.username {
        settings = settings.set_username(user);
    }
    if let Some(password) = &auth.password {
        settings = settings.set_password(password.expose_secret());
    }
    let info = ConnectionAddr::Tcp(crate::valkey::server::HOST.into(), port)
        .into_connection_info()
        .map_err(|e| e.to_string())?
        .set_redis_settings(settings);
    let client = redis::Client::open(info).map_err(|e| e.to_string())?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    match tokio::time::timeout(
        timeout + Duration::from_millis(50),
        client.get_multiplexed_async_connection_with_config(&config),
    )
    .await
    {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(describe(&e)),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// A short, secret-free description of a client error.
pub fn describe(e: &redis::RedisError) -> String {
    if e.is_connection_refusal() {
        "connection refused".into()
    } else if e.is_timeout() {
        "timed out".into()
    } else {
        let text = e.to_string();
        // Server error texts are untrusted: keep them short and on one line.
        text.chars().filter(|c| !c.is_control()).take(160).collect()
    }
}

/// Asks a node its role (ROLE) on a fresh connection, with a deadline.
pub async fn role(port: u16, auth: &NodeAuth, timeout: Duration) -> Result<NodeRole, String> {
    let mut conn = connect(port, auth, timeout).await?;
    role_on(&mut conn, timeout).await
}

/// Asks ROLE over an open connection, with a deadline.
pub async fn role_on(
    conn: &mut MultiplexedConnection,
    timeout: Duration,
) -> Result<NodeRole, String> {
    let cmd = redis::cmd("ROLE");
    match tokio::time::timeout(timeout, cmd.query_async::<redis::Value>(conn)).await {
        Ok(Ok(reply)) => Ok(role_of(&reply)),
        Ok(Err(e)) => Err(describe(&e)),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// The role in a ROLE reply (`master` / `slave` / `sentinel`).
pub fn role_of(reply: &redis::Value) -> NodeRole {
    crate::valkey::roles::role_of(reply)
}

/// Runs one command and returns its reply, with a deadline.
pub async fn command(
    conn: &mut MultiplexedConnection,
    cmd: &redis::Cmd,
    timeout: Duration,
) -> Result<redis::Value, String> {
    match tokio::time::timeout(timeout, cmd.query_async::<redis::Value>(conn)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(describe(&e)),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// A reply as text (bulk or simple string), for INFO-like answers.
pub fn text_of(value: &redis::Value) -> String {
    match value {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        redis::Value::SimpleString(s) => s.clone(),
        redis::Value::VerbatimString { text, .. } => text.clone(),
        other => format!("{other:?}"),
    }
}
