//! Which nodes of a cache an action talks to: `endpoint` (the client endpoint), `all`,
//! `primaries`, `replicas`, or one node id.

use crate::domain::{Cache, Endpoint, NodeRole};
use crate::runbook::action::{ActionContext, ActionError, Inputs, PlannedCall};
use crate::valkey::connect::ConnectError;
use redis::FromRedisValue;

/// The `node` input's documentation, shared by the actions that take it.
pub const NODE_DOC: &str = "`endpoint` (default), `all`, `primaries`, `replicas`, or a node id";

/// One place to connect to, with a label for messages and outputs.
#[derive(Debug, Clone)]
pub struct NodeTarget {
    pub label: String,
    pub endpoint: Endpoint,
    pub role: NodeRole,
}

/// Resolves a `node` selector against the cache.
pub fn select(cache: &Cache, which: &str) -> Result<Vec<NodeTarget>, ActionError> {
    if which == "endpoint" {
        let endpoint = cache.endpoint.clone().ok_or_else(|| {
            ActionError::failed(format!("reach cache `{}`: it has no endpoint", cache.name))
        })?;
        return Ok(vec![NodeTarget {
            label: "endpoint".into(),
            endpoint,
            role: NodeRole::Unknown,
        }]);
    }
    let picked: Vec<NodeTarget> = cache
        .nodes()
        .filter(|n| match which {
            "all" => true,
            "primaries" => n.role == NodeRole::Primary,
            "replicas" => n.role == NodeRole::Replica,
            id => n.id == id,
        })
        .map(|n| NodeTarget {
            label: n.id.clone(),
            endpoint: n.endpoint(),
            role: n.role,
        })
        .collect();
    if picked.is_empty() {
        let ids: Vec<&str> = cache.nodes().map(|n| n.id.as_str()).collect();
        return Err(ActionError::failed(format!(
            "select nodes `{which}` of cache `{}`: none match; it has {}",
            cache.name,
            ids.join(", ")
        )));
    }
    Ok(picked)
}

/// How a plan names the selected nodes without I/O.
pub fn describe(cache: &Cache, which: &str) -> Vec<String> {
    match select(cache, which) {
        Ok(targets) => targets.iter().map(|t| t.endpoint.address()).collect(),
        Err(_) => vec![format!("<{which}>")],
    }
}

/// The dry-run plan of a read-only action that sends `call` to each node its `node` input
/// selects (`endpoint` when unset).
pub fn plan_each(cache: &Cache, inputs: &Inputs, call: &str) -> Vec<PlannedCall> {
    let which = inputs.opt_str("node").ok().flatten().unwrap_or("endpoint");
    describe(cache, which)
        .into_iter()
        .map(|t| PlannedCall::valkey(t, call, false))
        .collect()
}

/// The node a `MOVED` reply sent to `from` points at (same TLS; an empty host means
/// `from`'s host), if `e` is one.
pub fn moved_to(e: &ConnectError, from: &Endpoint) -> Option<Endpoint> {
    let (host, port) = e.moved_to()?;
    let host = if host.is_empty() {
        from.host.clone()
    } else {
        host
    };
    Some(Endpoint::new(host, port, from.tls))
}

/// Runs `cmd` on `endpoint`, following cluster `MOVED` redirects (at most 3), so key
/// commands work through a cluster's configuration endpoint.
pub async fn query_routed<T: FromRedisValue>(
    ctx: &ActionContext,
    endpoint: &Endpoint,
    cmd: &redis::Cmd,
) -> Result<T, ActionError> {
    let mut target = endpoint.clone();
    for _ in 0..4 {
        let mut conn = ctx.connector().await?.connect(&target).await?;
        match conn.query(cmd).await {
            Err(e) => match moved_to(&e, &target) {
                Some(next) => target = next,
                None => return Err(e.into()),
            },
            Ok(v) => return Ok(v),
        }
    }
    Err(ActionError::failed(format!(
        "reach the key's node from {}: more than 3 MOVED redirects",
        endpoint.address()
    )))
}
