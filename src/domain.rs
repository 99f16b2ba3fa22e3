//! The estate as plain data: environments, caches, shards and nodes. No I/O lives here.
//!
//! Every provider (AWS, sandbox) produces these types; every consumer (headless output, the
//! TUI, runbooks) reads them. The serde shape of [`Cache`] is the public JSON of
//! `cachedeck caches --output json`, so field names are part of the interface.

use serde::{Deserialize, Serialize};
use std::fmt;

/// How careful cachedeck must be with an environment's caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Protection {
    /// Dangerous (mutating) steps are refused.
    ReadOnly,
    /// Dangerous steps need the operator to type the cache name (or `--confirm-cache`).
    #[default]
    Confirm,
    /// Dangerous steps run after the usual confirmation.
    Open,
}

impl Protection {
    pub fn as_str(self) -> &'static str {
        match self {
            Protection::ReadOnly => "read-only",
            Protection::Confirm => "confirm",
            Protection::Open => "open",
        }
    }
}

impl fmt::Display for Protection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which control plane answers for an environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    Aws,
    Sandbox,
    /// Caches known only by URL; no control plane, no AWS call at all.
    Static,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Aws => "aws",
            ProviderKind::Sandbox => "sandbox",
            ProviderKind::Static => "static",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What sort of thing a cache is; decides which runbooks and control-plane calls apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheKind {
    /// An ElastiCache replication group (cluster mode on or off).
    ReplicationGroup,
    /// An ElastiCache Serverless cache.
    Serverless,
    /// A stand-alone ElastiCache cache cluster that belongs to no replication group.
    CacheCluster,
    /// A self-managed Valkey running as an ECS service.
    EcsService,
    /// An endpoint known only by address (from SSM or a static URL in the config).
    Endpoint,
}

impl CacheKind {
    pub const ALL: [CacheKind; 5] = [
        CacheKind::ReplicationGroup,
        CacheKind::Serverless,
        CacheKind::CacheCluster,
        CacheKind::EcsService,
        CacheKind::Endpoint,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CacheKind::ReplicationGroup => "replication-group",
            CacheKind::Serverless => "serverless",
            CacheKind::CacheCluster => "cache-cluster",
            CacheKind::EcsService => "ecs-service",
            CacheKind::Endpoint => "endpoint",
        }
    }
}

impl fmt::Display for CacheKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How clients authenticate to a cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    /// No authentication at all.
    #[default]
    None,
    /// ElastiCache AUTH token (the `default` user's password).
    Token,
    /// ElastiCache RBAC user groups (serverless has only this).
    Rbac,
    /// Self-managed Valkey ACL users.
    Acl,
}

impl AuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::None => "none",
            AuthMode::Token => "token",
            AuthMode::Rbac => "rbac",
            AuthMode::Acl => "acl",
        }
    }
}

impl fmt::Display for AuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The role a node plays in its shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeRole {
    Primary,
    Replica,
    Unknown,
}

impl NodeRole {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::Primary => "primary",
            NodeRole::Replica => "replica",
            NodeRole::Unknown => "unknown",
        }
    }
}

impl fmt::Display for NodeRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who said what role a node plays. ElastiCache reports `CurrentRole` for cluster mode
/// disabled groups only; everywhere else the role is learned from the nodes
/// ([`crate::valkey::roles`]) before an action or a view relies on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case", tag = "from", content = "detail")]
pub enum RoleSource {
    /// The control plane (ElastiCache `CurrentRole`, a one-node cache, an ECS service).
    #[default]
    ControlPlane,
    /// The node itself answered ROLE.
    Node,
    /// The node could not be asked; its peers' CLUSTER SHARDS named its role. The detail
    /// says why the node itself did not answer.
    Peers(String),
    /// Nobody said: the detail says why (not reported by the control plane and not asked
    /// yet, or the node could not be asked).
    Unknown(String),
}

impl RoleSource {
    /// What the control plane of a cluster-mode-enabled group says of its nodes' roles.
    pub fn not_reported() -> RoleSource {
        RoleSource::Unknown(
            "not reported by the control plane in cluster mode; not asked yet".into(),
        )
    }

    /// Whether the role still has to be learned from the nodes.
    pub fn needs_learning(&self) -> bool {
        !matches!(self, RoleSource::ControlPlane)
    }
}

/// A host and port clients connect to, and whether it speaks TLS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl Endpoint {
    pub fn new(host: impl Into<String>, port: u16, tls: bool) -> Self {
        Endpoint {
            host: host.into(),
            port,
            tls,
        }
    }

    /// `host:port`, with IPv6 literals bracketed.
    pub fn address(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.address())
    }
}

/// Whether a node answers, as far as the control plane (or a liveness probe) can tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "state", content = "reason")]
pub enum NodeHealth {
    Up,
    /// Down, with the reason in words (e.g. "connection refused", "status: failed").
    Down(String),
    /// Not probed yet or not knowable.
    Unknown,
}

impl NodeHealth {
    pub fn is_up(&self) -> bool {
        matches!(self, NodeHealth::Up)
    }
}

/// One server process (an ElastiCache cache node, an ECS task, a sandbox process).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub id: String,
    pub role: NodeRole,
    pub host: String,
    pub port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    /// Provider status text (ElastiCache `available`, ECS `RUNNING`, sandbox `running`).
    pub status: String,
    pub health: NodeHealth,
    /// Whether the node itself speaks TLS. ElastiCache nodes of an encrypted cache do; the
    /// sandbox's nodes are plain behind its TLS-terminating endpoints.
    #[serde(default)]
    pub tls: bool,
    /// Where `role` comes from, and why it is unknown when it is.
    #[serde(default)]
    pub role_source: RoleSource,
}

impl Node {
    /// Where to reach this node directly.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint::new(self.host.clone(), self.port, self.tls)
    }
}

/// A node group: one primary and its replicas, owning a slot range in cluster mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slots: Option<String>,
    pub nodes: Vec<Node>,
}

impl Shard {
    pub fn primary(&self) -> Option<&Node> {
        self.nodes.iter().find(|n| n.role == NodeRole::Primary)
    }

    pub fn replicas(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.role == NodeRole::Replica)
    }
}

/// All the endpoints a cache offers. The `endpoint` of [`Cache`] is the one clients use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Endpoints {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary: Option<Endpoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reader: Option<Endpoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub configuration: Option<Endpoint>,
}

/// Where cachedeck can find the secret a cache needs, never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "from", content = "name")]
pub enum SecretRef {
    /// An environment variable of the cachedeck process.
    Env(String),
    /// An SSM parameter (SecureString) in the cache's environment.
    Ssm(String),
}

/// How to log in: the user name (for ACL/RBAC) and where its password lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Credentials {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretRef>,
    /// The SSM parameter holding the whole `rediss://user:pass@host:port` URL, when that is
    /// how the application is configured (seed 002).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url_parameter: Option<String>,
    /// A PEM file of CA certificates to trust for this cache's TLS (sandbox's local CA).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

/// The ECS side of a self-managed cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EcsRef {
    pub cluster: String,
    pub service: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

/// One cache as cachedeck presents it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cache {
    pub name: String,
    pub env: String,
    pub kind: CacheKind,
    pub engine: String,
    pub engine_version: String,
    pub status: String,
    pub cluster_mode: bool,
    pub auth: AuthMode,
    pub tls: bool,
    /// The endpoint applications use: primary (cluster mode off), configuration (cluster
    /// mode on), the serverless endpoint, or the service address.
    pub endpoint: Option<Endpoint>,
    pub endpoints: Endpoints,
    pub shards: Vec<Shard>,
    /// Automatic failover (Multi-AZ) is enabled; TestFailover needs it.
    #[serde(default)]
    pub automatic_failover: bool,
    #[serde(default)]
    pub multi_az: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Provider-specific notes worth showing (e.g. "endpoint from SSM /storefront-dev/...").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    #[serde(default)]
    pub credentials: Credentials,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecs: Option<EcsRef>,
}

impl Cache {
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.shards.iter().flat_map(|s| s.nodes.iter())
    }

    /// Nodes known to be down (not merely unprobed).
    pub fn nodes_down(&self) -> usize {
        self.nodes()
            .filter(|n| matches!(n.health, NodeHealth::Down(_)))
            .count()
    }

    /// "3×1" style shape: shards × replicas per shard (the largest replica count). A node
    /// group has one primary and the rest are replicas, so this needs no roles.
    pub fn shape(&self) -> String {
        let replicas = self
            .shards
            .iter()
            .map(|s| s.nodes.len().saturating_sub(1))
            .max()
            .unwrap_or(0);
        format!("{}×{}", self.shards.len(), replicas)
    }
}

/// An environment as configured (or implied), before its caches are known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    pub name: String,
    pub provider: ProviderKind,
    pub protection: Protection,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// Where this environment came from: a config file path, "aws config", "sandbox".
    pub source: String,
    /// The account and caller its credentials resolve to (STS GetCallerIdentity), once
    /// known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<Account>,
}

/// Who an environment's credentials are, as STS GetCallerIdentity answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The 12-digit account id.
    pub id: String,
    /// The caller's ARN (user, assumed role, …).
    pub caller_arn: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, role: NodeRole, up: bool) -> Node {
        Node {
            id: id.into(),
            role,
            host: "127.0.0.1".into(),
            port: 6379,
            availability_zone: None,
            status: "available".into(),
            tls: true,
            role_source: RoleSource::ControlPlane,
            health: if up {
                NodeHealth::Up
            } else {
                NodeHealth::Down("connection refused".into())
            },
        }
    }

    #[test]
    fn shape_counts_shards_and_largest_replica_set() {
        let cache = Cache {
            name: "orders".into(),
            env: "dev".into(),
            kind: CacheKind::ReplicationGroup,
            engine: "valkey".into(),
            engine_version: "8.1".into(),
            status: "available".into(),
            cluster_mode: true,
            auth: AuthMode::Token,
            tls: true,
            endpoint: None,
            endpoints: Endpoints::default(),
            shards: vec![
                Shard {
                    id: "0001".into(),
                    slots: None,
                    nodes: vec![
                        node("a", NodeRole::Primary, true),
                        node("b", NodeRole::Replica, false),
                    ],
                },
                Shard {
                    id: "0002".into(),
                    slots: None,
                    nodes: vec![node("c", NodeRole::Primary, true)],
                },
            ],
            automatic_failover: true,
            multi_az: true,
            arn: None,
            description: None,
            notes: vec![],
            credentials: Credentials::default(),
            ecs: None,
        };
        assert_eq!(cache.shape(), "2×1");
        assert!(
            cache.shards[0].nodes[0].endpoint().tls,
            "a node's endpoint uses its own TLS"
        );
        assert_eq!(cache.nodes_down(), 1);
        assert_eq!(cache.shards[0].primary().map(|n| n.id.as_str()), Some("a"));
        let json = serde_json::to_value(&cache).expect("serialize");
        assert_eq!(json["kind"], "replication-group");
        assert_eq!(json["auth"], "token");
        assert_eq!(json["shards"][0]["nodes"][1]["health"]["state"], "down");
    }

    #[test]
    fn ipv6_endpoint_is_bracketed() {
        assert_eq!(Endpoint::new("::1", 6379, false).address(), "[::1]:6379");
        assert_eq!(Endpoint::new("a.b", 1, true).address(), "a.b:1");
    }
}
