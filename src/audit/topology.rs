//! Which nodes to scan: one per shard. Cluster mode is read from CLUSTER NODES (each shard's
//! primary and healthy replicas, named by its first slot so a shard can be found again after
//! a failover); a standalone server is one shard.

use crate::domain::Endpoint;
use crate::valkey::connect::{ConnectError, Connector, NodeConnection};

/// One shard to scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// The lowest slot it serves (None when not in cluster mode).
    pub first_slot: Option<u16>,
    pub primary: Endpoint,
    pub replicas: Vec<Endpoint>,
}

impl Shard {
    /// The node to scan: a replica when asked and one is healthy, else the primary.
    /// Returns the endpoint and whether it is a replica (needs READONLY in cluster mode).
    pub fn target(&self, prefer_replica: bool) -> (Endpoint, bool) {
        match self.replicas.first() {
            Some(r) if prefer_replica => (r.clone(), true),
            _ => (self.primary.clone(), false),
        }
    }
}

/// The shards behind `conn` (the node it is connected to, for a standalone server).
pub async fn discover(
    conn: &mut NodeConnection,
    node_tls: bool,
) -> Result<Vec<Shard>, ConnectError> {
    let reply: Result<Vec<u8>, ConnectError> = conn.query(redis::cmd("CLUSTER").arg("NODES")).await;
    match reply {
        Ok(text) => Ok(parse_cluster_nodes(
            &String::from_utf8_lossy(&text),
            node_tls,
        )),
        // "ERR This instance has cluster support disabled": a standalone server.
        Err(e)
            if e.detail
                .to_ascii_lowercase()
                .contains("cluster support disabled") =>
        {
            Ok(vec![Shard {
                first_slot: None,
                primary: conn.endpoint().clone(),
                replicas: Vec::new(),
            }])
        }
        Err(e) => Err(e),
    }
}

/// Finds `shard` again after a failover: asks its own nodes, then `seed`, for the shard
/// that now serves the same first slot (a standalone server: whatever `seed` leads to).
pub async fn rediscover(
    connector: &Connector,
    shard: &Shard,
    seed: &Endpoint,
    node_tls: bool,
) -> Option<Shard> {
    let mut candidates: Vec<Endpoint> = shard.replicas.clone();
    candidates.insert(0, shard.primary.clone());
    candidates.push(seed.clone());
    if shard.first_slot.is_none() {
        // The seed is the endpoint that follows the primary; the old node may be a replica.
        candidates.retain(|e| e == seed);
    }
    for ep in candidates {
        let Ok(mut conn) = connector.connect(&ep).await else {
            continue;
        };
        if let Ok(shards) = discover(&mut conn, node_tls).await
            && let Some(s) = shards
                .into_iter()
                .find(|s| s.first_slot == shard.first_slot)
        {
            return Some(s);
        }
    }
    None
}

/// Parses CLUSTER NODES into shards with slots, ordered by first slot. Nodes flagged
/// `fail`, `fail?`, `handshake` or `noaddr` are left out.
pub fn parse_cluster_nodes(text: &str, tls: bool) -> Vec<Shard> {
    struct Line<'a> {
        id: &'a str,
        addr: Endpoint,
        primary_of: Option<&'a str>,
        first_slot: Option<u16>,
        healthy: bool,
    }
    let mut lines = Vec::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 8 {
            continue;
        }
        let addr = f[1].split('@').next().unwrap_or("");
        let Some((host, port)) = addr.rsplit_once(':') else {
            continue;
        };
        let Ok(port) = port.parse::<u16>() else {
            continue;
        };
        let flags = f[2];
        let healthy = !flags
            .split(',')
            .any(|x| matches!(x, "fail" | "fail?" | "handshake" | "noaddr"))
            && port != 0
            && f[7] == "connected";
        let first_slot = f[8..]
            .iter()
            .filter(|s| !s.starts_with('['))
            .filter_map(|s| s.split('-').next()?.parse::<u16>().ok())
            .min();
        lines.push(Line {
            id: f[0],
            addr: Endpoint::new(host, port, tls),
            primary_of: (f[3] != "-").then_some(f[3]),
            first_slot,
            healthy,
        });
    }
    let mut shards: Vec<Shard> = lines
        .iter()
        .filter(|l| l.primary_of.is_none() && l.first_slot.is_some() && l.healthy)
        .map(|p| Shard {
            first_slot: p.first_slot,
            primary: p.addr.clone(),
            replicas: lines
                .iter()
                .filter(|r| r.primary_of == Some(p.id) && r.healthy)
                .map(|r| r.addr.clone())
                .collect(),
        })
        .collect();
    shards.sort_by_key(|s| s.first_slot);
    shards
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nodes() {
        let text = "\
a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
a2 127.0.0.1:7001@17001 master - 0 0 2 connected 5461-10922
a3 127.0.0.1:7002@17002 master - 0 0 3 connected 10923-16383 [5000->-a2]
r1 127.0.0.1:7003@17003 slave a1 0 0 1 connected
r2 127.0.0.1:7004@17004 slave,fail a2 0 0 2 disconnected
";
        let s = parse_cluster_nodes(text, false);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].first_slot, Some(0));
        assert_eq!(s[0].replicas, vec![Endpoint::new("127.0.0.1", 7003, false)]);
        assert!(s[1].replicas.is_empty());
        assert_eq!(s[2].first_slot, Some(10923));
        assert_eq!(
            s[0].target(true),
            (Endpoint::new("127.0.0.1", 7003, false), true)
        );
        assert_eq!(
            s[1].target(true),
            (Endpoint::new("127.0.0.1", 7001, false), false)
        );
    }
}
