//! Pure mappings from ElastiCache SDK output structs to domain [`Cache`]s. No I/O here, so
//! every rule (roles, endpoints, auth mode, health) is unit-tested without a network.

use crate::domain::{
    AuthMode, Cache, CacheKind, Credentials, Endpoint, Endpoints, Node, NodeHealth, NodeRole,
    RoleSource, Shard,
};
use aws_sdk_elasticache::types::{
    AutomaticFailoverStatus, CacheCluster, ClusterMode, MultiAzStatus, ReplicationGroup,
    ServerlessCache,
};
use std::collections::HashMap;

/// What DescribeCacheClusters (ShowCacheNodeInfo) knows about one member cluster: the engine
/// version (absent from DescribeReplicationGroups) and the node's own address and status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberInfo {
    pub engine: Option<String>,
    pub engine_version: Option<String>,
    pub status: Option<String>,
    pub endpoint: Option<(String, u16)>,
    pub availability_zone: Option<String>,
}

/// Indexes one DescribeCacheClusters pass by cache cluster id.
pub fn member_index(clusters: &[CacheCluster]) -> HashMap<String, MemberInfo> {
    clusters
        .iter()
        .filter_map(|c| {
            let id = c.cache_cluster_id()?.to_string();
            let node = c.cache_nodes().first();
            let info = MemberInfo {
                engine: c.engine().map(str::to_string),
                engine_version: c.engine_version().map(str::to_string),
                status: node
                    .and_then(|n| n.cache_node_status())
                    .or(c.cache_cluster_status())
                    .map(str::to_string),
                endpoint: node.and_then(|n| endpoint_parts(n.endpoint())),
                availability_zone: node
                    .and_then(|n| n.customer_availability_zone())
                    .or(c.preferred_availability_zone())
                    .map(str::to_string),
            };
            Some((id, info))
        })
        .collect()
}

/// A replication group (cluster mode on or off) as a cache.
pub fn replication_group(
    env: &str,
    rg: &ReplicationGroup,
    members: &HashMap<String, MemberInfo>,
) -> Cache {
    let name = rg.replication_group_id().unwrap_or_default().to_string();
    let cluster_mode =
        rg.cluster_enabled() == Some(true) || rg.cluster_mode() == Some(&ClusterMode::Enabled);
    let tls = rg.transit_encryption_enabled() == Some(true);
    let member_infos: Vec<&MemberInfo> = rg
        .member_clusters()
        .iter()
        .filter_map(|id| members.get(id))
        .collect();
    let engine = rg
        .engine()
        .map(str::to_string)
        .or_else(|| member_infos.iter().find_map(|m| m.engine.clone()))
        .unwrap_or_else(|| "redis".to_string());
    let engine_version = member_infos
        .iter()
        .find_map(|m| m.engine_version.clone())
        .unwrap_or_else(|| "unknown".to_string());

    let shards: Vec<Shard> = rg
        .node_groups()
        .iter()
        .map(|group| {
            let nodes = group
                .node_group_members()
                .iter()
                .map(|member| {
                    let id = member.cache_cluster_id().unwrap_or_default().to_string();
                    let info = members.get(&id).cloned().unwrap_or_default();
                    let (host, port) = endpoint_parts(member.read_endpoint())
                        .or(info.endpoint.clone())
                        .unwrap_or_default();
                    let status = info
                        .status
                        .clone()
                        .or_else(|| group.status().map(str::to_string))
                        .unwrap_or_else(|| "unknown".to_string());
                    let role = role(member.current_role());
                    let role_source = match (role, cluster_mode) {
                        (NodeRole::Primary | NodeRole::Replica, _) => RoleSource::ControlPlane,
                        (_, true) => RoleSource::not_reported(),
                        (_, false) => RoleSource::Unknown(
                            "DescribeReplicationGroups gave no CurrentRole; not asked yet".into(),
                        ),
                    };
                    Node {
                        id,
                        tls,
                        role,
                        role_source,
                        host,
                        port,
                        availability_zone: member
                            .preferred_availability_zone()
                            .map(str::to_string)
                            .or(info.availability_zone),
                        health: health(&status),
                        status,
                    }
                })
                .collect();
            Shard {
                id: group.node_group_id().unwrap_or_default().to_string(),
                slots: group.slots().map(str::to_string),
                nodes,
            }
        })
        .collect();

    let first = rg.node_groups().first();
    let endpoints = Endpoints {
        primary: first
            .filter(|_| !cluster_mode)
            .and_then(|g| endpoint(g.primary_endpoint(), tls)),
        reader: first
            .filter(|_| !cluster_mode)
            .and_then(|g| endpoint(g.reader_endpoint(), tls)),
        configuration: endpoint(rg.configuration_endpoint(), tls),
    };
    let endpoint = if cluster_mode {
        endpoints.configuration.clone()
    } else {
        endpoints.primary.clone()
    };
    let auth = if rg.auth_token_enabled() == Some(true) {
        AuthMode::Token
    } else if !rg.user_group_ids().is_empty() {
        AuthMode::Rbac
    } else {
        AuthMode::None
    };

    Cache {
        name,
        env: env.to_string(),
        kind: CacheKind::ReplicationGroup,
        engine,
        engine_version,
        status: rg.status().unwrap_or("unknown").to_string(),
        cluster_mode,
        auth,
        tls,
        endpoint,
        endpoints,
        shards,
        automatic_failover: rg.automatic_failover() == Some(&AutomaticFailoverStatus::Enabled),
        multi_az: rg.multi_az() == Some(&MultiAzStatus::Enabled),
        arn: rg.arn().map(str::to_string),
        description: rg.description().map(str::to_string),
        notes: Vec::new(),
        credentials: Credentials::default(),
        ecs: None,
    }
}

/// A serverless cache: one shard with one node standing for its endpoint.
pub fn serverless(env: &str, sc: &ServerlessCache) -> Cache {
    let name = sc.serverless_cache_name().unwrap_or_default().to_string();
    let status = sc.status().unwrap_or("unknown").to_string();
    let primary = endpoint(sc.endpoint(), true);
    let reader = endpoint(sc.reader_endpoint(), true);
    let (host, port) = endpoint_parts(sc.endpoint()).unwrap_or_default();
    let engine_version = sc
        .full_engine_version()
        .or(sc.major_engine_version())
        .unwrap_or("unknown")
        .to_string();
    Cache {
        name: name.clone(),
        env: env.to_string(),
        kind: CacheKind::Serverless,
        engine: sc.engine().unwrap_or("valkey").to_string(),
        engine_version,
        status: status.clone(),
        cluster_mode: false,
        // Without a user group a serverless cache lets any client in as `default`, with
        // no password: that is no authentication, not RBAC.
        auth: if sc.user_group_id().is_some_and(|g| !g.is_empty()) {
            AuthMode::Rbac
        } else {
            AuthMode::None
        },
        tls: true,
        endpoint: primary.clone(),
        endpoints: Endpoints {
            primary,
            reader,
            configuration: None,
        },
        shards: vec![Shard {
            id: "serverless".to_string(),
            slots: None,
            nodes: vec![Node {
                id: name,
                tls: true,
                role: NodeRole::Primary,
                role_source: RoleSource::ControlPlane,
                host,
                port,
                availability_zone: None,
                health: health(&status),
                status,
            }],
        }],
        automatic_failover: false,
        multi_az: true,
        arn: sc.arn().map(str::to_string),
        description: sc.description().map(str::to_string),
        notes: vec!["serverless: billed per GB-hour and per ECPU; no TestFailover".to_string()],
        credentials: Credentials::default(),
        ecs: None,
    }
}

/// A cache cluster outside any replication group; `None` for memcached.
pub fn cache_cluster(env: &str, cc: &CacheCluster) -> Option<Cache> {
    let engine = cc.engine().unwrap_or("redis").to_string();
    if !matches!(engine.as_str(), "redis" | "valkey") {
        return None;
    }
    let name = cc.cache_cluster_id()?.to_string();
    let tls = cc.transit_encryption_enabled() == Some(true);
    let status = cc.cache_cluster_status().unwrap_or("unknown").to_string();
    let nodes: Vec<Node> = cc
        .cache_nodes()
        .iter()
        .map(|n| {
            let (host, port) = endpoint_parts(n.endpoint()).unwrap_or_default();
            let node_status = n.cache_node_status().unwrap_or(&status).to_string();
            Node {
                id: format!("{name}-{}", n.cache_node_id().unwrap_or("0001")),
                tls,
                role: NodeRole::Primary,
                role_source: RoleSource::ControlPlane,
                host,
                port,
                availability_zone: n
                    .customer_availability_zone()
                    .or(cc.preferred_availability_zone())
                    .map(str::to_string),
                health: health(&node_status),
                status: node_status,
            }
        })
        .collect();
    let primary = nodes
        .first()
        .filter(|n| !n.host.is_empty())
        .map(|n| n.endpoint());
    Some(Cache {
        name: name.clone(),
        env: env.to_string(),
        kind: CacheKind::CacheCluster,
        engine,
        engine_version: cc.engine_version().unwrap_or("unknown").to_string(),
        status,
        cluster_mode: false,
        auth: if cc.auth_token_enabled() == Some(true) {
            AuthMode::Token
        } else {
            AuthMode::None
        },
        tls,
        endpoint: primary.clone(),
        endpoints: Endpoints {
            primary,
            ..Endpoints::default()
        },
        shards: vec![Shard {
            id: "0001".to_string(),
            slots: None,
            nodes,
        }],
        automatic_failover: false,
        multi_az: false,
        arn: cc.arn().map(str::to_string),
        description: None,
        notes: Vec::new(),
        credentials: Credentials::default(),
        ecs: None,
    })
}

/// Node role from NodeGroupMember.CurrentRole; absent in cluster mode (ask INFO instead).
pub fn role(current_role: Option<&str>) -> NodeRole {
    match current_role {
        Some(r) if r.eq_ignore_ascii_case("primary") => NodeRole::Primary,
        Some(r) if r.eq_ignore_ascii_case("replica") => NodeRole::Replica,
        _ => NodeRole::Unknown,
    }
}

/// Control-plane health from an ElastiCache status word.
pub fn health(status: &str) -> NodeHealth {
    match status.to_ascii_lowercase().as_str() {
        "available" => NodeHealth::Up,
        "deleting"
        | "deleted"
        | "create-failed"
        | "failed"
        | "incompatible-network"
        | "incompatible-parameters"
        | "restore-failed" => NodeHealth::Down(format!("status: {status}")),
        _ => NodeHealth::Unknown,
    }
}

fn endpoint_parts(ep: Option<&aws_sdk_elasticache::types::Endpoint>) -> Option<(String, u16)> {
    let ep = ep?;
    let host = ep.address()?.to_string();
    let port = ep
        .port()
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(6379);
    Some((host, port))
}

fn endpoint(ep: Option<&aws_sdk_elasticache::types::Endpoint>, tls: bool) -> Option<Endpoint> {
    endpoint_parts(ep).map(|(host, port)| Endpoint::new(host, port, tls))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_elasticache::types::{
        CacheNode, Endpoint as AwsEndpoint, NodeGroup, NodeGroupMember,
    };

    fn ep(host: &str) -> AwsEndpoint {
        AwsEndpoint::builder().address(host).port(6379).build()
    }

    fn member(id: &str, role: &str, az: &str) -> NodeGroupMember {
        NodeGroupMember::builder()
            .cache_cluster_id(id)
            .cache_node_id("0001")
            .current_role(role)
            .read_endpoint(ep(&format!("{id}.cache.amazonaws.com")))
            .preferred_availability_zone(az)
            .build()
    }

    fn cluster(id: &str, rg: &str, version: &str) -> CacheCluster {
        CacheCluster::builder()
            .cache_cluster_id(id)
            .replication_group_id(rg)
            .engine("valkey")
            .engine_version(version)
            .cache_cluster_status("available")
            .cache_nodes(
                CacheNode::builder()
                    .cache_node_id("0001")
                    .cache_node_status("available")
                    .endpoint(ep(&format!("{id}.node")))
                    .customer_availability_zone("eu-west-1a")
                    .build(),
            )
            .build()
    }

    #[test]
    fn cluster_mode_off_group_maps_roles_endpoints_and_version() {
        let rg = ReplicationGroup::builder()
            .replication_group_id("jobs")
            .status("available")
            .engine("valkey")
            .member_clusters("jobs-001")
            .member_clusters("jobs-002")
            .node_groups(
                NodeGroup::builder()
                    .node_group_id("0001")
                    .status("available")
                    .primary_endpoint(ep("master.jobs"))
                    .reader_endpoint(ep("replica.jobs"))
                    .node_group_members(member("jobs-001", "primary", "eu-west-1a"))
                    .node_group_members(member("jobs-002", "replica", "eu-west-1b"))
                    .build(),
            )
            .automatic_failover(AutomaticFailoverStatus::Enabled)
            .multi_az(MultiAzStatus::Enabled)
            .transit_encryption_enabled(true)
            .auth_token_enabled(false)
            .cluster_enabled(false)
            .arn("arn:aws:elasticache:eu-west-1:1:replicationgroup:jobs")
            .build();
        let members = member_index(&[cluster("jobs-001", "jobs", "8.0.1")]);
        let cache = replication_group("dev", &rg, &members);
        assert_eq!(cache.engine, "valkey");
        assert_eq!(cache.engine_version, "8.0.1");
        assert!(!cache.cluster_mode && cache.tls && cache.automatic_failover && cache.multi_az);
        assert_eq!(cache.auth, AuthMode::None);
        assert_eq!(
            cache.endpoint.as_ref().map(|e| e.host.as_str()),
            Some("master.jobs")
        );
        assert_eq!(
            cache.endpoints.reader.as_ref().map(|e| e.host.as_str()),
            Some("replica.jobs")
        );
        let shard = &cache.shards[0];
        assert_eq!(shard.primary().map(|n| n.id.as_str()), Some("jobs-001"));
        assert_eq!(shard.replicas().count(), 1);
        assert_eq!(shard.nodes[0].health, NodeHealth::Up);
        // jobs-002 is missing from DescribeCacheClusters: status falls back to the group's.
        assert_eq!(shard.nodes[1].status, "available");
        assert_eq!(
            shard.nodes[1].availability_zone.as_deref(),
            Some("eu-west-1b")
        );
    }

    #[test]
    fn cluster_mode_on_uses_configuration_endpoint_and_node_info() {
        let rg = ReplicationGroup::builder()
            .replication_group_id("paperwurks")
            .status("available")
            .member_clusters("pw-0001-001")
            .node_groups(
                NodeGroup::builder()
                    .node_group_id("0001")
                    .slots("0-8191")
                    .node_group_members(
                        NodeGroupMember::builder()
                            .cache_cluster_id("pw-0001-001")
                            .build(),
                    )
                    .build(),
            )
            .configuration_endpoint(ep("clustercfg.paperwurks"))
            .cluster_enabled(true)
            .auth_token_enabled(true)
            .transit_encryption_enabled(true)
            .build();
        let mut cc = cluster("pw-0001-001", "paperwurks", "7.1.0");
        cc.engine = Some("redis".into());
        let cache = replication_group("prod", &rg, &member_index(&[cc]));
        assert!(cache.cluster_mode);
        assert_eq!(cache.engine, "redis");
        assert_eq!(cache.auth, AuthMode::Token);
        assert_eq!(
            cache.endpoint.as_ref().map(|e| e.address()),
            Some("clustercfg.paperwurks:6379".to_string())
        );
        assert!(cache.endpoints.primary.is_none());
        let node = &cache.shards[0].nodes[0];
        assert_eq!(node.role, NodeRole::Unknown);
        assert_eq!(node.host, "pw-0001-001.node");
        assert_eq!(cache.shards[0].slots.as_deref(), Some("0-8191"));
    }

    #[test]
    fn user_groups_mean_rbac() {
        let rg = ReplicationGroup::builder()
            .replication_group_id("x")
            .user_group_ids("ug-1")
            .build();
        assert_eq!(
            replication_group("dev", &rg, &HashMap::new()).auth,
            AuthMode::Rbac
        );
    }

    #[test]
    fn serverless_is_one_tls_rbac_node() {
        let sc = ServerlessCache::builder()
            .serverless_cache_name("storefront-dev")
            .user_group_id("storefront-users")
            .status("available")
            .engine("valkey")
            .major_engine_version("8")
            .full_engine_version("8.0")
            .endpoint(ep("storefront-dev.serverless.euw1.cache.amazonaws.com"))
            .reader_endpoint(
                AwsEndpoint::builder()
                    .address("storefront-dev.serverless.euw1.cache.amazonaws.com")
                    .port(6380)
                    .build(),
            )
            .build();
        let cache = serverless("dev", &sc);
        assert_eq!(cache.kind, CacheKind::Serverless);
        assert_eq!(cache.engine_version, "8.0");
        assert!(cache.tls);
        assert_eq!(cache.auth, AuthMode::Rbac);
        assert_eq!(cache.endpoints.reader.as_ref().map(|e| e.port), Some(6380));
        assert_eq!(cache.shards.len(), 1);
        assert_eq!(cache.shards[0].nodes[0].id, "storefront-dev");
    }

    #[test]
    fn serverless_without_a_user_group_has_no_authentication() {
        let sc = ServerlessCache::builder()
            .serverless_cache_name("open-dev")
            .status("available")
            .endpoint(ep("open-dev.serverless.euw1.cache.amazonaws.com"))
            .build();
        assert_eq!(serverless("dev", &sc).auth, AuthMode::None);
    }

    #[test]
    fn memcached_clusters_are_skipped() {
        let cc = CacheCluster::builder()
            .cache_cluster_id("mc")
            .engine("memcached")
            .build();
        assert!(cache_cluster("dev", &cc).is_none());
        let redis = cluster("solo", "", "7.1.0");
        let cache = cache_cluster("dev", &redis).expect("redis cluster maps");
        assert_eq!(cache.kind, CacheKind::CacheCluster);
        assert_eq!(cache.shards[0].nodes[0].id, "solo-0001");
        assert_eq!(
            cache.endpoint.as_ref().map(|e| e.host.as_str()),
            Some("solo.node")
        );
    }

    #[test]
    fn failed_status_is_down() {
        assert_eq!(
            health("create-failed"),
            NodeHealth::Down("status: create-failed".into())
        );
        assert_eq!(health("modifying"), NodeHealth::Unknown);
    }
}
