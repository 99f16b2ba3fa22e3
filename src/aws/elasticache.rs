//! ElastiCache calls: paginated describes for discovery, tags, DescribeEvents and
//! TestFailover with its faults mapped to what a runbook can act on.

use super::AwsControlPlane;
use super::errors::one_line;
use crate::controlplane::{CacheEvent, ControlPlaneError, EventQuery, with_timeout};
use aws_sdk_elasticache::operation::test_failover::TestFailoverError;
use aws_sdk_elasticache::types::{
    CacheCluster, Event, ReplicationGroup, ServerlessCache, SourceType,
};
use std::collections::BTreeMap;
use time::OffsetDateTime;

impl AwsControlPlane {
    /// Every replication group of the environment, all pages.
    pub(super) async fn describe_replication_groups(
        &self,
    ) -> Result<Vec<ReplicationGroup>, ControlPlaneError> {
        const OP: &str = "DescribeReplicationGroups";
        with_timeout(OP, self.timeout(), async {
            self.elasticache
                .describe_replication_groups()
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| self.fail(OP, &e))
        })
        .await
    }

    /// Every cache cluster with node info, all pages: one pass serves both the engine
    /// versions of replication groups and the stand-alone clusters.
    pub(super) async fn describe_cache_clusters(
        &self,
    ) -> Result<Vec<CacheCluster>, ControlPlaneError> {
        const OP: &str = "DescribeCacheClusters";
        with_timeout(OP, self.timeout(), async {
            self.elasticache
                .describe_cache_clusters()
                .show_cache_node_info(true)
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| self.fail(OP, &e))
        })
        .await
    }

    /// Every serverless cache, all pages.
    pub(super) async fn describe_serverless_caches(
        &self,
    ) -> Result<Vec<ServerlessCache>, ControlPlaneError> {
        const OP: &str = "DescribeServerlessCaches";
        with_timeout(OP, self.timeout(), async {
            self.elasticache
                .describe_serverless_caches()
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| self.fail(OP, &e))
        })
        .await
    }

    /// The tags of one resource by ARN.
    pub(super) async fn tags_of(
        &self,
        arn: &str,
    ) -> Result<BTreeMap<String, String>, ControlPlaneError> {
        const OP: &str = "ListTagsForResource";
        with_timeout(OP, self.timeout(), async {
            let out = self
                .elasticache
                .list_tags_for_resource()
                .resource_name(arn)
                .send()
                .await
                .map_err(|e| self.fail(OP, &e))?;
            Ok(out
                .tag_list()
                .iter()
                .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
                .collect())
        })
        .await
    }

    /// DescribeEvents since `query.since`, all pages, oldest first.
    pub(super) async fn events(
        &self,
        query: EventQuery,
    ) -> Result<Vec<CacheEvent>, ControlPlaneError> {
        const OP: &str = "DescribeEvents";
        let start = aws_smithy_types::DateTime::from_secs(query.since.unix_timestamp());
        with_timeout(OP, self.timeout(), async {
            let mut request = self.elasticache.describe_events().start_time(start);
            if let Some(source) = &query.source {
                request = request.source_identifier(source);
            }
            if let Some(kind) = query.source_type {
                request = request.source_type(SourceType::from(kind.as_str()));
            }
            let events: Vec<Event> = request
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| self.fail(OP, &e))?;
            let mut out: Vec<CacheEvent> = events.iter().filter_map(event).collect();
            // AWS answers newest first; runbooks read a timeline.
            out.sort_by_key(|e| e.time);
            Ok(out)
        })
        .await
    }

    /// TestFailover of one node group, with its faults classified. The call is not
    /// idempotent (a retried request that AWS had already accepted fails over the shard
    /// twice and spends the quota twice), so the SDK never retries it: the runbook decides
    /// after a transport error, from the "Test Failover API called" event.
    pub(super) async fn failover(
        &self,
        replication_group: &str,
        node_group: &str,
    ) -> Result<(), ControlPlaneError> {
        const OP: &str = "TestFailover";
        let result = with_timeout(OP, self.timeout(), async {
            self.elasticache
                .test_failover()
                .replication_group_id(replication_group)
                .node_group_id(node_group)
                .customize()
                .config_override(
                    aws_sdk_elasticache::config::Builder::default()
                        .retry_config(aws_sdk_elasticache::config::retry::RetryConfig::disabled()),
                )
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    let quota = |m: Option<&str>| ControlPlaneError::QuotaExceeded {
                        operation: OP.to_string(),
                        detail: message_or(m, "at most 15 node groups per rolling 24 hours"),
                    };
                    let state = |m: Option<&str>| ControlPlaneError::InvalidState {
                        operation: OP.to_string(),
                        detail: message_or(m, "the replication group is not available"),
                    };
                    match e.as_service_error() {
                        Some(TestFailoverError::TestFailoverNotAvailableFault(f)) => {
                            quota(f.message())
                        }
                        // A request rate limit, not the 24-hour quota: waiting helps.
                        Some(TestFailoverError::ApiCallRateForCustomerExceededFault(_)) => {
                            ControlPlaneError::Throttled {
                                operation: OP.to_string(),
                            }
                        }
                        Some(TestFailoverError::InvalidReplicationGroupStateFault(f)) => {
                            state(f.message())
                        }
                        Some(TestFailoverError::InvalidCacheClusterStateFault(f)) => {
                            state(f.message())
                        }
                        Some(TestFailoverError::NodeGroupNotFoundFault(_)) => {
                            ControlPlaneError::NotFound {
                                what: format!(
                                    "node group {node_group} of replication group {replication_group}"
                                ),
                            }
                        }
                        Some(TestFailoverError::ReplicationGroupNotFoundFault(_)) => {
                            ControlPlaneError::NotFound {
                                what: format!("replication group {replication_group}"),
                            }
                        }
                        _ => self.fail(OP, &e),
                    }
                })
        })
        .await;
        match result {
            Err(ControlPlaneError::NotFound { what })
                if what.starts_with("replication group") && self.is_serverless(replication_group).await =>
            {
                Err(ControlPlaneError::Unsupported {
                    operation: OP.to_string(),
                    target: replication_group.to_string(),
                    why: "serverless caches have no node groups to fail over; AWS manages their availability"
                        .to_string(),
                })
            }
            other => other,
        }
    }

    /// Whether `name` is a serverless cache (best effort: any failure answers no).
    async fn is_serverless(&self, name: &str) -> bool {
        let lookup = self
            .elasticache
            .describe_serverless_caches()
            .serverless_cache_name(name)
            .send();
        matches!(
            tokio::time::timeout(self.timeout(), lookup).await,
            Ok(Ok(out)) if !out.serverless_caches().is_empty()
        )
    }
}

/// The fault's own message as one line, or `default` when AWS sent none.
fn message_or(message: Option<&str>, default: &str) -> String {
    match message.map(one_line) {
        Some(m) if !m.is_empty() => m,
        _ => default.to_string(),
    }
}

/// One ElastiCache event in domain form; events without a date are dropped.
pub(super) fn event(e: &Event) -> Option<CacheEvent> {
    let date = e.date()?;
    let time = OffsetDateTime::from_unix_timestamp(date.secs())
        .ok()?
        .replace_nanosecond(date.subsec_nanos())
        .ok()?;
    Some(CacheEvent {
        time,
        source: e.source_identifier().unwrap_or_default().to_string(),
        source_type: e
            .source_type()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        message: e.message().unwrap_or_default().to_string(),
    })
}
