//! Direct looks at the sandbox's nodes for the hooks: plain connections to the node
//! processes (the sandbox terminates TLS in its endpoint daemon), with the cache's password.

use crate::harness::sandbox::Sandbox;
use cachedeck::sandbox::state::CacheState;
use std::time::Duration;

/// The sandbox's record of `env`/`cache`.
pub fn cache(sandbox: &Sandbox, env: &str, name: &str) -> CacheState {
    sandbox
        .state()
        .caches
        .into_iter()
        .find(|c| c.env == env && c.name == name)
        .unwrap_or_else(|| panic!("the sandbox has no cache {env}/{name}"))
}

/// The cache's password or AUTH token, from the sandbox's parameter store.
pub fn password(sandbox: &Sandbox, cache: &CacheState) -> Option<String> {
    let name = cache.password_parameter.as_ref()?;
    let p = sandbox
        .params()
        .get(name)
        .expect("read parameter")
        .unwrap_or_else(|| panic!("no parameter {name}"));
    Some(p.value.expose().to_string())
}

/// A connection to one node, authenticated as the cache's user.
pub fn connect(sandbox: &Sandbox, cache: &CacheState, port: u16) -> redis::Connection {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("client");
    let mut c = client
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect to node 127.0.0.1:{port}: {e}"));
    c.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    if let Some(pw) = password(sandbox, cache) {
        let mut auth = redis::cmd("AUTH");
        if let Some(user) = &cache.username {
            auth.arg(user);
        }
        let () = auth.arg(pw).query(&mut c).expect("AUTH");
    }
    c
}

/// Every node's port of the cache.
pub fn ports(cache: &CacheState) -> Vec<u16> {
    cache
        .shards
        .iter()
        .flat_map(|s| s.nodes.iter().map(|n| n.port))
        .collect()
}

/// The port of the node answering ROLE as primary (outside cluster mode).
pub fn primary(sandbox: &Sandbox, env: &str, name: &str) -> u16 {
    let cache = cache(sandbox, env, name);
    for port in ports(&cache) {
        let mut c = connect(sandbox, &cache, port);
        let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut c).expect("ROLE");
        if matches!(role.first(), Some(redis::Value::BulkString(r)) if r == b"master") {
            return port;
        }
    }
    panic!("{env}/{name} has no primary")
}

/// How many times the node executed `command` (INFO commandstats).
pub fn calls(sandbox: &Sandbox, env: &str, name: &str, port: u16, command: &str) -> u64 {
    let cache = cache(sandbox, env, name);
    let mut c = connect(sandbox, &cache, port);
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut c)
        .expect("INFO commandstats");
    let prefix = format!("cmdstat_{command}:calls=");
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Whether `password` is accepted by the node at `port` (as the default user).
pub fn auth_ok(port: u16, password: &str) -> bool {
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}/")) else {
        return false;
    };
    let Ok(mut c) = client.get_connection_with_timeout(Duration::from_secs(5)) else {
        return false;
    };
    redis::cmd("AUTH").arg(password).query::<()>(&mut c).is_ok()
}
