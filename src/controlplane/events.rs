//! The events of one cache, asked for with the source types AWS files them under and matched
//! exactly: a replication group's own events (`replication-group`, its id) and its nodes'
//! events (`cache-cluster`, the ids of its own member clusters), a serverless cache's
//! (`serverless-cache`), a stand-alone cluster's (`cache-cluster`). A group `orders-v2` is
//! never taken for `orders`.

use super::{CacheEvent, ControlPlane, ControlPlaneError, EventQuery, EventSourceType};
use crate::domain::{Cache, CacheKind};
use std::collections::BTreeSet;
use time::OffsetDateTime;

/// What identifies a cache's events: its own id and type, and the ids of its member cache
/// clusters (the node ids of a replication group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSources {
    pub id: String,
    /// `None` for caches that have no control-plane events (ECS services, URLs).
    pub kind: Option<EventSourceType>,
    pub members: BTreeSet<String>,
}

impl EventSources {
    /// The event sources of `cache`.
    pub fn of(cache: &Cache) -> EventSources {
        let kind = match cache.kind {
            CacheKind::ReplicationGroup => Some(EventSourceType::ReplicationGroup),
            CacheKind::CacheCluster => Some(EventSourceType::CacheCluster),
            CacheKind::Serverless => Some(EventSourceType::ServerlessCache),
            _ => None,
        };
        let members = match cache.kind {
            CacheKind::ReplicationGroup => cache.nodes().map(|n| n.id.clone()).collect(),
            _ => BTreeSet::new(),
        };
        EventSources {
            id: cache.name.clone(),
            kind,
            members,
        }
    }

    /// Whether `e` is about this cache: its own id with its own type, or (for a group) one
    /// of its member clusters. An event without a type is matched by id alone.
    pub fn concerns(&self, e: &CacheEvent) -> bool {
        let Some(kind) = self.kind else {
            return false;
        };
        let typed = |t: EventSourceType| e.source_type.is_empty() || e.source_type == t.as_str();
        (e.source == self.id && typed(kind))
            || (self.members.contains(&e.source) && typed(EventSourceType::CacheCluster))
    }

    /// The queries that fetch this cache's events: its own, plus every cache-cluster event
    /// for a group (filtered to its members by [`Self::concerns`]). One call per type keeps
    /// a group with many nodes at two calls.
    pub fn queries(&self, since: OffsetDateTime) -> Vec<EventQuery> {
        let Some(kind) = self.kind else {
            return Vec::new();
        };
        let mut queries = vec![EventQuery::of(&self.id, kind, since)];
        if !self.members.is_empty() {
            queries.push(EventQuery {
                source: None,
                source_type: Some(EventSourceType::CacheCluster),
                since,
            });
        }
        queries
    }
}

/// The events of `cache` since `since`, oldest first.
pub async fn for_cache(
    plane: &dyn ControlPlane,
    cache: &Cache,
    since: OffsetDateTime,
) -> Result<Vec<CacheEvent>, ControlPlaneError> {
    let sources = EventSources::of(cache);
    let mut out = Vec::new();
    for query in sources.queries(since) {
        let found = plane.describe_events(query).await?;
        out.extend(
            found
                .into_iter()
                .filter(|e| e.time >= since && sources.concerns(e)),
        );
    }
    // A group's events may come back from both queries: one copy each.
    out.sort_by(|a, b| {
        (a.time, &a.source, &a.source_type, &a.message).cmp(&(
            b.time,
            &b.source,
            &b.source_type,
            &b.message,
        ))
    });
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AuthMode, Credentials, Endpoints, Node, NodeHealth, NodeRole, Shard};

    fn cache(name: &str, kind: CacheKind) -> Cache {
        Cache {
            name: name.into(),
            env: "dev".into(),
            kind,
            engine: "valkey".into(),
            engine_version: "8.1".into(),
            status: "available".into(),
            cluster_mode: false,
            auth: AuthMode::None,
            tls: false,
            endpoint: None,
            endpoints: Endpoints::default(),
            shards: Vec::new(),
            automatic_failover: false,
            multi_az: false,
            arn: None,
            description: None,
            notes: vec![],
            credentials: Credentials::default(),
            ecs: None,
        }
    }

    fn ev(source: &str, kind: &str) -> CacheEvent {
        CacheEvent {
            time: OffsetDateTime::UNIX_EPOCH,
            source: source.into(),
            source_type: kind.into(),
            message: "m".into(),
        }
    }

    fn group(name: &str, nodes: &[&str]) -> EventSources {
        let mut cache = cache(name, CacheKind::ReplicationGroup);
        cache.shards = vec![Shard {
            id: "0001".into(),
            slots: None,
            nodes: nodes
                .iter()
                .map(|id| Node {
                    id: id.to_string(),
                    role: NodeRole::Unknown,
                    role_source: Default::default(),
                    host: "h".into(),
                    port: 6379,
                    availability_zone: None,
                    status: "available".into(),
                    health: NodeHealth::Unknown,
                    tls: false,
                })
                .collect(),
        }];
        EventSources::of(&cache)
    }

    #[test]
    fn another_group_with_the_same_prefix_is_not_ours() {
        let orders = group("orders", &["orders-001", "orders-002"]);
        assert!(orders.concerns(&ev("orders", "replication-group")));
        assert!(orders.concerns(&ev("orders-001", "cache-cluster")));
        assert!(!orders.concerns(&ev("orders-v2", "replication-group")));
        assert!(!orders.concerns(&ev("orders-v2-001", "cache-cluster")));
        assert!(!orders.concerns(&ev("orders-003", "cache-cluster")));
        // Same id, another type: a serverless cache called `orders` is someone else.
        assert!(!orders.concerns(&ev("orders", "serverless-cache")));
        assert!(!orders.concerns(&ev("orders-001", "replication-group")));
    }

    #[test]
    fn each_kind_asks_for_its_own_source_type() {
        let since = OffsetDateTime::UNIX_EPOCH;
        let orders = group("orders", &["orders-001"]);
        let types: Vec<_> = orders
            .queries(since)
            .iter()
            .map(|q| (q.source.clone(), q.source_type))
            .collect();
        assert_eq!(
            types,
            vec![
                (
                    Some("orders".into()),
                    Some(EventSourceType::ReplicationGroup)
                ),
                (None, Some(EventSourceType::CacheCluster)),
            ]
        );
        let sc = EventSources::of(&cache("storefront", CacheKind::Serverless));
        assert_eq!(
            sc.queries(since)[0].source_type,
            Some(EventSourceType::ServerlessCache)
        );
        let cc = EventSources::of(&cache("legacy", CacheKind::CacheCluster));
        assert_eq!(cc.queries(since).len(), 1);
        assert_eq!(
            cc.queries(since)[0].source_type,
            Some(EventSourceType::CacheCluster)
        );
        let ecs = EventSources::of(&cache("valkey", CacheKind::EcsService));
        assert!(ecs.queries(since).is_empty());
    }
}
