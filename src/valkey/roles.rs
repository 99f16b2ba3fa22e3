//! Node roles learned from the nodes themselves.
//!
//! ElastiCache's DescribeReplicationGroups reports `NodeGroupMember.CurrentRole` for cluster
//! mode **disabled** groups only; a cluster-mode-enabled group, a multi-task ECS service or
//! an endpoint known by address comes out of discovery with every role unknown. Before an
//! action or a view relies on roles (failover preflight, `primaries`/`replicas` selectors,
//! the queue-marker check), [`learn`] asks each such node ROLE, and in cluster mode asks a
//! node that answered for CLUSTER SHARDS to name the roles of the nodes that did not. A node
//! nobody could name keeps [`NodeRole::Unknown`] with the reason in its
//! [`RoleSource::Unknown`], so a refusal can say why instead of "no replica".

use crate::domain::{Cache, Endpoint, NodeRole, RoleSource};
use crate::valkey::connect::Connector;
use std::time::Duration;

/// How long one node gets to connect and answer ROLE.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// What one [`learn`] pass did, for a progress line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Learned {
    /// Nodes whose role had to be learned.
    pub asked: usize,
    /// Of those, the nodes that answered ROLE themselves.
    pub answered: usize,
    /// Nodes that did not answer but were named by a peer's CLUSTER SHARDS.
    pub from_peers: usize,
    /// Nodes still without a role: (node id, why).
    pub unknown: Vec<(String, String)>,
}

impl Learned {
    /// One line for a person, or `None` when nothing had to be learned.
    pub fn summary(&self) -> Option<String> {
        if self.asked == 0 {
            return None;
        }
        let mut line = format!(
            "roles learned from the nodes: {} of {} answered ROLE",
            self.answered, self.asked
        );
        if self.from_peers > 0 {
            line.push_str(&format!(
                ", {} named by a peer's CLUSTER SHARDS",
                self.from_peers
            ));
        }
        for (id, why) in &self.unknown {
            line.push_str(&format!("; role of {} unknown: {why}", esc(id)));
        }
        Some(line)
    }
}

/// Whether any node of `cache` has a role the control plane did not give.
pub fn needs_learning(cache: &Cache) -> bool {
    cache.nodes().any(|n| n.role_source.needs_learning())
}

/// The role named in a ROLE reply (`master` / `slave` / `sentinel`).
pub fn role_of(reply: &redis::Value) -> NodeRole {
    match reply {
        redis::Value::Array(items) => items.first().map_or(NodeRole::Unknown, word_role),
        _ => NodeRole::Unknown,
    }
}

fn word_role(v: &redis::Value) -> NodeRole {
    match text(v).as_deref() {
        Some("master") | Some("primary") => NodeRole::Primary,
        Some("slave") | Some("replica") => NodeRole::Replica,
        _ => NodeRole::Unknown,
    }
}

fn text(v: &redis::Value) -> Option<String> {
    match v {
        redis::Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        redis::Value::SimpleString(s) => Some(s.clone()),
        redis::Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

fn esc(s: &str) -> String {
    crate::escape::escape_capped(s, 160)
}

/// Asks one node ROLE.
async fn ask(connector: &Connector, endpoint: &Endpoint) -> Result<NodeRole, String> {
    let work = async {
        let mut conn = connector
            .connect(endpoint)
            .await
            .map_err(|e| e.to_string())?;
        let reply: redis::Value = conn
            .query(&redis::cmd("ROLE"))
            .await
            .map_err(|e| e.to_string())?;
        match role_of(&reply) {
            NodeRole::Unknown => Err("ROLE named no primary or replica role".to_string()),
            role => Ok(role),
        }
    };
    match tokio::time::timeout(ASK_TIMEOUT, work).await {
        Ok(r) => r.map_err(|e| esc(&e)),
        Err(_) => Err(format!("no answer to ROLE within {ASK_TIMEOUT:?}")),
    }
}

/// One node as a peer's CLUSTER SHARDS describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerNode {
    pub names: Vec<String>,
    pub ports: Vec<u16>,
    pub role: NodeRole,
}

/// `[k1, v1, k2, v2…]` (RESP2) or a map (RESP3) as pairs.
fn pairs(v: &redis::Value) -> Vec<(String, &redis::Value)> {
    match v {
        redis::Value::Array(items) => items
            .chunks(2)
            .filter_map(|c| match c {
                [k, v] => text(k).map(|k| (k, v)),
                _ => None,
            })
            .collect(),
        redis::Value::Map(items) => items
            .iter()
            .filter_map(|(k, v)| text(k).map(|k| (k, v)))
            .collect(),
        _ => Vec::new(),
    }
}

/// Every node of a CLUSTER SHARDS reply with its addresses and role.
pub fn parse_cluster_shards(reply: &redis::Value) -> Vec<PeerNode> {
    let redis::Value::Array(shards) = reply else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for shard in shards {
        for (key, nodes) in pairs(shard) {
            let (true, redis::Value::Array(nodes)) = (key == "nodes", nodes) else {
                continue;
            };
            for node in nodes {
                let mut peer = PeerNode {
                    names: Vec::new(),
                    ports: Vec::new(),
                    role: NodeRole::Unknown,
                };
                for (k, v) in pairs(node) {
                    match (k.as_str(), v) {
                        ("ip" | "endpoint" | "hostname", v) => {
                            if let Some(t) = text(v).filter(|t| !t.is_empty() && t != "?") {
                                peer.names.push(t);
                            }
                        }
                        ("port" | "tls-port", redis::Value::Int(p)) => {
                            if let Ok(p) = u16::try_from(*p) {
                                peer.ports.push(p);
                            }
                        }
                        ("role", v) => peer.role = word_role(v),
                        _ => {}
                    }
                }
                out.push(peer);
            }
        }
    }
    out
}

/// Asks `endpoint` for CLUSTER SHARDS.
async fn cluster_shards(
    connector: &Connector,
    endpoint: &Endpoint,
) -> Result<Vec<PeerNode>, String> {
    let work = async {
        let mut conn = connector
            .connect(endpoint)
            .await
            .map_err(|e| e.to_string())?;
        let reply: redis::Value = conn
            .query(redis::cmd("CLUSTER").arg("SHARDS"))
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(parse_cluster_shards(&reply))
    };
    match tokio::time::timeout(ASK_TIMEOUT, work).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "no answer to CLUSTER SHARDS within {ASK_TIMEOUT:?}"
        )),
    }
}

/// Learns the role of every node of `cache` whose role the control plane did not give:
/// ROLE on each (all at once, each under [`ASK_TIMEOUT`]), then in cluster mode CLUSTER
/// SHARDS from a node that answered for those that did not. Nodes the control plane
/// described are left as they are.
pub async fn learn(cache: &mut Cache, connector: &Connector) -> Learned {
    let targets: Vec<(usize, usize, Endpoint)> = cache
        .shards
        .iter()
        .enumerate()
        .flat_map(|(si, s)| {
            s.nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| n.role_source.needs_learning())
                .map(move |(ni, n)| (si, ni, n.endpoint()))
        })
        .collect();
    let mut learned = Learned {
        asked: targets.len(),
        ..Learned::default()
    };
    if targets.is_empty() {
        return learned;
    }
    let answers =
        futures::future::join_all(targets.iter().map(|(_, _, ep)| ask(connector, ep))).await;
    let mut missing = Vec::new();
    let mut answered_at = None;
    for ((si, ni, ep), answer) in targets.iter().zip(answers) {
        let node = &mut cache.shards[*si].nodes[*ni];
        match answer {
            _ if node.host.is_empty() => {
                node.role = NodeRole::Unknown;
                node.role_source =
                    RoleSource::Unknown("no address for the node; it cannot be asked".into());
                missing.push((*si, *ni));
            }
            Ok(role) => {
                node.role = role;
                node.role_source = RoleSource::Node;
                learned.answered += 1;
                answered_at.get_or_insert_with(|| ep.clone());
            }
            Err(why) => {
                node.role = NodeRole::Unknown;
                node.role_source = RoleSource::Unknown(format!("the node cannot be asked: {why}"));
                missing.push((*si, *ni));
            }
        }
    }
    if cache.cluster_mode
        && !missing.is_empty()
        && let Some(at) = answered_at
    {
        match cluster_shards(connector, &at).await {
            Ok(peers) => {
                for &(si, ni) in &missing {
                    let node = &mut cache.shards[si].nodes[ni];
                    let named = peers.iter().find(|p| {
                        p.ports.contains(&node.port) && p.names.iter().any(|h| h == &node.host)
                    });
                    if let Some(peer) = named.filter(|p| p.role != NodeRole::Unknown) {
                        let why = match &node.role_source {
                            RoleSource::Unknown(why) => why.clone(),
                            _ => String::new(),
                        };
                        node.role = peer.role;
                        node.role_source = RoleSource::Peers(why);
                        learned.from_peers += 1;
                    }
                }
            }
            Err(e) => tracing::debug!(error = %esc(&e), "CLUSTER SHARDS for roles"),
        }
    }
    for s in &cache.shards {
        for n in &s.nodes {
            if let RoleSource::Unknown(why) = &n.role_source
                && n.role == NodeRole::Unknown
            {
                learned.unknown.push((n.id.clone(), why.clone()));
            }
        }
    }
    learned
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn role_replies_name_primary_and_replica() {
        assert_eq!(
            role_of(&Value::Array(vec![bulk("master"), Value::Int(0)])),
            NodeRole::Primary
        );
        assert_eq!(
            role_of(&Value::Array(vec![bulk("slave"), bulk("10.0.0.1")])),
            NodeRole::Replica
        );
        assert_eq!(
            role_of(&Value::Array(vec![bulk("sentinel")])),
            NodeRole::Unknown
        );
        assert_eq!(role_of(&Value::Nil), NodeRole::Unknown);
    }

    #[test]
    fn cluster_shards_in_resp2_and_resp3_shapes() {
        let node = |ip: &str, port: i64, role: &str| {
            Value::Array(vec![
                bulk("id"),
                bulk("abc"),
                bulk("port"),
                Value::Int(port),
                bulk("ip"),
                bulk(ip),
                bulk("endpoint"),
                bulk(ip),
                bulk("hostname"),
                bulk(""),
                bulk("role"),
                bulk(role),
                bulk("health"),
                bulk("online"),
            ])
        };
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("slots"),
            Value::Array(vec![Value::Int(0), Value::Int(16383)]),
            bulk("nodes"),
            Value::Array(vec![
                node("127.0.0.1", 7001, "master"),
                node("127.0.0.1", 7002, "replica"),
            ]),
        ])]);
        let peers = parse_cluster_shards(&reply);
        assert_eq!(peers.len(), 2);
        assert_eq!(peers[0].role, NodeRole::Primary);
        assert_eq!(peers[1].ports, vec![7002]);
        assert_eq!(peers[1].names, vec!["127.0.0.1", "127.0.0.1"]);
        let resp3 = Value::Array(vec![Value::Map(vec![(
            bulk("nodes"),
            Value::Array(vec![Value::Map(vec![
                (bulk("port"), Value::Int(7003)),
                (bulk("hostname"), bulk("pw-0001-002.cache.local")),
                (bulk("role"), bulk("replica")),
            ])]),
        )])]);
        let peers = parse_cluster_shards(&resp3);
        assert_eq!(peers[0].names, vec!["pw-0001-002.cache.local"]);
        assert_eq!(peers[0].role, NodeRole::Replica);
    }
}
