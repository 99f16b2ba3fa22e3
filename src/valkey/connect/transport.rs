//! The layers under a connection, each failing with its own [`Layer`]: name resolution,
//! the TCP connect, and sorting the redis crate's errors (login, commands) into layers.

use super::error::{ConnectError, Layer};
use crate::domain::Endpoint;
use redis::{ErrorKind, RedisError};
use std::net::SocketAddr;
use tokio::net::TcpStream;

/// Why a reply that is not RESP came back.
pub(super) const NOT_RESP: &str = "something other than Valkey/Redis answers on that port, or a proxy in between alters the stream";

pub(super) async fn resolve(endpoint: &Endpoint) -> Result<Vec<SocketAddr>, ConnectError> {
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

pub(super) async fn connect_tcp(
    addrs: &[SocketAddr],
    target: &str,
) -> Result<TcpStream, ConnectError> {
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

/// Sorts a redis-crate error into a layer. A link that drops or a reply that is not RESP
/// while logging in is explained further from the bytes that came (`wire::Seen::explain`):
/// the error alone cannot tell a TLS-only endpoint from a reply cut short.
pub(super) fn classify(e: &RedisError, endpoint: &Endpoint, secret: Option<&str>) -> ConnectError {
    let target = endpoint.address();
    let text = e.to_string();
    let code = e.code().unwrap_or_default();
    let new = |layer| ConnectError::new(layer, target.clone(), &text, secret).with_code(code);
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
    if e.kind() == ErrorKind::Parse {
        return new(Layer::Protocol).with_cause(format!("the reply was not RESP: {NOT_RESP}"));
    }
    if e.is_connection_dropped() || e.is_io_error() {
        let err = new(Layer::Protocol);
        return if e.is_connection_refusal() {
            err.with_cause("the node went away")
        } else {
            err
        };
    }
    new(Layer::Server)
}
