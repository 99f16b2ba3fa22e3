//! Snapshots, restores and ECS deployments through the SDKs: CreateSnapshot /
//! CreateServerlessCacheSnapshot, DescribeSnapshots / DescribeServerlessCacheSnapshots,
//! DeleteSnapshot / DeleteServerlessCacheSnapshot, CreateReplicationGroup with SnapshotName /
//! CreateServerlessCache with SnapshotArnsToRestore (subnet group, security groups, TLS and
//! user group copied from the source), ECS UpdateService `forceNewDeployment`,
//! DescribeServices and StopTask. Faults are mapped by their AWS error codes.

use super::AwsControlPlane;
use super::errors::one_line;
use crate::controlplane::{
    ControlPlaneError, EcsDeployment, EcsServiceState, RestoreRequest, Snapshot, SnapshotQuery,
    SnapshotTarget, with_timeout,
};
use aws_sdk_elasticache::types::{NodeSnapshot, ServerlessCacheSnapshot};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use secrecy::ExposeSecret;
use time::OffsetDateTime;

fn time_of(t: Option<&aws_smithy_types::DateTime>) -> Option<OffsetDateTime> {
    let t = t?;
    OffsetDateTime::from_unix_timestamp(t.secs()).ok()
}

/// "5 MB", "1.5 GB", "1024" → bytes.
pub fn parse_size(text: &str) -> Option<u64> {
    let mut parts = text.split_whitespace();
    let n: f64 = parts.next()?.parse().ok()?;
    let unit = parts.next().unwrap_or("B").to_ascii_uppercase();
    let mult: f64 = match unit.as_str() {
        "B" | "BYTES" => 1.0,
        "KB" => 1024.0,
        "MB" => 1024.0 * 1024.0,
        "GB" => 1024.0 * 1024.0 * 1024.0,
        "TB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((n * mult) as u64)
}

/// A DescribeSnapshots item in domain form.
pub fn snapshot_of(s: &aws_sdk_elasticache::types::Snapshot) -> Snapshot {
    let nodes: &[NodeSnapshot] = s.node_snapshots();
    let size: Option<u64> = nodes
        .iter()
        .map(|n| n.cache_size().and_then(parse_size))
        .sum();
    Snapshot {
        name: s.snapshot_name().unwrap_or_default().to_string(),
        status: s.snapshot_status().unwrap_or_default().to_string(),
        source: s.snapshot_source().unwrap_or("manual").to_string(),
        cache: s
            .replication_group_id()
            .or(s.cache_cluster_id())
            .map(str::to_string),
        cache_cluster_id: s.cache_cluster_id().map(str::to_string),
        serverless: false,
        created: time_of(
            nodes
                .first()
                .and_then(|n| n.snapshot_create_time())
                .or(s.cache_cluster_create_time()),
        ),
        size_bytes: if nodes.is_empty() { None } else { size },
        shard_count: s
            .num_node_groups()
            .map(|n| n as u32)
            .or(Some(nodes.len().max(1) as u32)),
        engine: s.engine().map(str::to_string),
        engine_version: s.engine_version().map(str::to_string),
        node_type: s.cache_node_type().map(str::to_string),
        arn: s.arn().map(str::to_string),
    }
}

/// A DescribeServerlessCacheSnapshots item in domain form.
pub fn serverless_snapshot_of(s: &ServerlessCacheSnapshot) -> Snapshot {
    let cfg = s.serverless_cache_configuration();
    Snapshot {
        name: s
            .serverless_cache_snapshot_name()
            .unwrap_or_default()
            .to_string(),
        status: s.status().unwrap_or_default().to_string(),
        source: s.snapshot_type().unwrap_or("manual").to_string(),
        cache: cfg
            .and_then(|c| c.serverless_cache_name())
            .map(str::to_string),
        cache_cluster_id: None,
        serverless: true,
        created: time_of(s.create_time()),
        size_bytes: s.bytes_used_for_cache().and_then(parse_size),
        shard_count: None,
        engine: cfg.and_then(|c| c.engine()).map(str::to_string),
        engine_version: cfg
            .and_then(|c| c.major_engine_version())
            .map(str::to_string),
        node_type: None,
        arn: s.arn().map(str::to_string),
    }
}

impl AwsControlPlane {
    /// Maps the faults a runbook acts on by code; anything else as usual.
    fn snapshot_fault<E>(&self, op: &str, e: &SdkError<E, HttpResponse>) -> ControlPlaneError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let Some(se) = e.as_service_error() else {
            return self.fail(op, e);
        };
        let code = se.code().unwrap_or_default().to_string();
        let message = one_line(se.message().unwrap_or_default());
        let detail = if message.is_empty() {
            code.clone()
        } else {
            format!("{code}: {message}")
        };
        match code.as_str() {
            "SnapshotAlreadyExistsFault"
            | "ServerlessCacheSnapshotAlreadyExistsFault"
            | "ReplicationGroupAlreadyExists"
            | "ReplicationGroupAlreadyExistsFault"
            | "ServerlessCacheAlreadyExistsFault" => {
                ControlPlaneError::AlreadyExists { what: detail }
            }
            "SnapshotQuotaExceededFault" | "ServerlessCacheSnapshotQuotaExceededFault" => {
                ControlPlaneError::QuotaExceeded {
                    operation: op.into(),
                    detail,
                }
            }
            "InvalidReplicationGroupState"
            | "InvalidReplicationGroupStateFault"
            | "InvalidCacheClusterState"
            | "InvalidCacheClusterStateFault"
            | "InvalidServerlessCacheStateFault"
            | "InvalidSnapshotState"
            | "InvalidSnapshotStateFault"
            | "InvalidServerlessCacheSnapshotStateFault"
            | "ServiceNotActiveException" => ControlPlaneError::InvalidState {
                operation: op.into(),
                detail,
            },
            "SnapshotNotFoundFault"
            | "ServerlessCacheSnapshotNotFoundFault"
            | "ReplicationGroupNotFoundFault"
            | "CacheClusterNotFound"
            | "CacheClusterNotFoundFault"
            | "ServerlessCacheNotFoundFault"
            | "ServiceNotFoundException"
            | "ClusterNotFoundException" => ControlPlaneError::NotFound { what: detail },
            _ => self.fail(op, e),
        }
    }

    pub(super) async fn create_snapshot_call(
        &self,
        name: &str,
        target: SnapshotTarget,
    ) -> Result<Snapshot, ControlPlaneError> {
        match target {
            SnapshotTarget::Serverless(cache) => {
                const OP: &str = "CreateServerlessCacheSnapshot";
                with_timeout(OP, self.timeout(), async {
                    let out = self
                        .elasticache
                        .create_serverless_cache_snapshot()
                        .serverless_cache_snapshot_name(name)
                        .serverless_cache_name(&cache)
                        .send()
                        .await
                        .map_err(|e| self.snapshot_fault(OP, &e))?;
                    out.serverless_cache_snapshot()
                        .map(serverless_snapshot_of)
                        .ok_or_else(|| ControlPlaneError::Service {
                            operation: OP.into(),
                            detail: "the answer held no snapshot".into(),
                        })
                })
                .await
            }
            target => {
                const OP: &str = "CreateSnapshot";
                with_timeout(OP, self.timeout(), async {
                    let mut call = self.elasticache.create_snapshot().snapshot_name(name);
                    call = match &target {
                        SnapshotTarget::Node(id) => call.cache_cluster_id(id),
                        SnapshotTarget::Group(id) => call.replication_group_id(id),
                        SnapshotTarget::Serverless(_) => call,
                    };
                    let out = call.send().await.map_err(|e| self.snapshot_fault(OP, &e))?;
                    out.snapshot()
                        .map(snapshot_of)
                        .ok_or_else(|| ControlPlaneError::Service {
                            operation: OP.into(),
                            detail: "the answer held no snapshot".into(),
                        })
                })
                .await
            }
        }
    }

    pub(super) async fn describe_snapshots_call(
        &self,
        query: SnapshotQuery,
    ) -> Result<Vec<Snapshot>, ControlPlaneError> {
        if query.serverless {
            const OP: &str = "DescribeServerlessCacheSnapshots";
            return with_timeout(OP, self.timeout(), async {
                let mut call = self.elasticache.describe_serverless_cache_snapshots();
                if let Some(c) = &query.cache {
                    call = call.serverless_cache_name(c);
                }
                if let Some(n) = &query.name {
                    call = call.serverless_cache_snapshot_name(n);
                }
                let items: Vec<ServerlessCacheSnapshot> = call
                    .into_paginator()
                    .items()
                    .send()
                    .try_collect()
                    .await
                    .map_err(|e| self.snapshot_fault(OP, &e))?;
                Ok(items.iter().map(serverless_snapshot_of).collect())
            })
            .await;
        }
        const OP: &str = "DescribeSnapshots";
        with_timeout(OP, self.timeout(), async {
            let mut call = self
                .elasticache
                .describe_snapshots()
                .show_node_group_config(true);
            if let Some(c) = &query.cache {
                call = call.replication_group_id(c);
            }
            if let Some(n) = &query.name {
                call = call.snapshot_name(n);
            }
            let items: Vec<aws_sdk_elasticache::types::Snapshot> = call
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| self.snapshot_fault(OP, &e))?;
            Ok(items.iter().map(snapshot_of).collect())
        })
        .await
    }

    pub(super) async fn delete_snapshot_call(
        &self,
        name: &str,
        serverless: bool,
    ) -> Result<(), ControlPlaneError> {
        if serverless {
            const OP: &str = "DeleteServerlessCacheSnapshot";
            return with_timeout(OP, self.timeout(), async {
                self.elasticache
                    .delete_serverless_cache_snapshot()
                    .serverless_cache_snapshot_name(name)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| self.snapshot_fault(OP, &e))
            })
            .await;
        }
        const OP: &str = "DeleteSnapshot";
        with_timeout(OP, self.timeout(), async {
            self.elasticache
                .delete_snapshot()
                .snapshot_name(name)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| self.snapshot_fault(OP, &e))
        })
        .await
    }

    pub(super) async fn restore_call(&self, r: RestoreRequest) -> Result<(), ControlPlaneError> {
        if r.serverless {
            const OP: &str = "CreateServerlessCache";
            return with_timeout(OP, self.timeout(), async {
                let source = self
                    .elasticache
                    .describe_serverless_caches()
                    .serverless_cache_name(&r.source)
                    .send()
                    .await
                    .map_err(|e| self.snapshot_fault("DescribeServerlessCaches", &e))?;
                let src = source.serverless_caches().first().ok_or_else(|| {
                    ControlPlaneError::NotFound {
                        what: format!("serverless cache {}", r.source),
                    }
                })?;
                let mut call = self
                    .elasticache
                    .create_serverless_cache()
                    .serverless_cache_name(&r.new_id)
                    .description(&r.description)
                    .engine(src.engine().unwrap_or("valkey"))
                    .set_major_engine_version(src.major_engine_version().map(str::to_string))
                    .set_subnet_ids(Some(src.subnet_ids().to_vec()))
                    .set_security_group_ids(Some(src.security_group_ids().to_vec()))
                    .set_user_group_id(src.user_group_id().map(str::to_string));
                if let Some(arn) = &r.snapshot_arn {
                    call = call.snapshot_arns_to_restore(arn);
                }
                call.send()
                    .await
                    .map(|_| ())
                    .map_err(|e| self.snapshot_fault(OP, &e))
            })
            .await;
        }
        const OP: &str = "CreateReplicationGroup";
        with_timeout(OP, self.timeout(), async {
            let groups = self
                .elasticache
                .describe_replication_groups()
                .replication_group_id(&r.source)
                .send()
                .await
                .map_err(|e| self.snapshot_fault("DescribeReplicationGroups", &e))?;
            let group =
                groups
                    .replication_groups()
                    .first()
                    .ok_or_else(|| ControlPlaneError::NotFound {
                        what: format!("replication group {}", r.source),
                    })?;
            let (subnet_group, security_groups) = match group.member_clusters().first() {
                Some(member) => {
                    let clusters = self
                        .elasticache
                        .describe_cache_clusters()
                        .cache_cluster_id(member)
                        .send()
                        .await
                        .map_err(|e| self.snapshot_fault("DescribeCacheClusters", &e))?;
                    let c = clusters.cache_clusters().first();
                    (
                        c.and_then(|c| c.cache_subnet_group_name())
                            .map(str::to_string),
                        c.map(|c| {
                            c.security_groups()
                                .iter()
                                .filter_map(|g| g.security_group_id().map(str::to_string))
                                .collect::<Vec<_>>()
                        })
                        .unwrap_or_default(),
                    )
                }
                None => (None, Vec::new()),
            };
            let replicas = r.replicas_per_shard.unwrap_or(0) as i32;
            let mut call = self
                .elasticache
                .create_replication_group()
                .replication_group_id(&r.new_id)
                .replication_group_description(&r.description)
                .snapshot_name(&r.snapshot)
                .set_engine(r.engine.clone())
                .set_engine_version(r.engine_version.clone())
                .set_cache_node_type(r.node_type.clone())
                .set_num_node_groups(r.shards.map(|n| n as i32))
                .replicas_per_node_group(replicas)
                .automatic_failover_enabled(replicas > 0)
                .set_cache_subnet_group_name(subnet_group)
                .set_security_group_ids((!security_groups.is_empty()).then_some(security_groups))
                .transit_encryption_enabled(
                    r.tls || group.transit_encryption_enabled() == Some(true),
                );
            if let Some(token) = &r.auth_token {
                call = call.auth_token(token.expose_secret());
            }
            call.send()
                .await
                .map(|_| ())
                .map_err(|e| self.snapshot_fault(OP, &e))
        })
        .await
    }

    pub(super) async fn force_new_deployment_call(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<(), ControlPlaneError> {
        const OP: &str = "UpdateService";
        with_timeout(OP, self.timeout(), async {
            self.ecs
                .update_service()
                .cluster(cluster)
                .service(service)
                .force_new_deployment(true)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| self.snapshot_fault(OP, &e))
        })
        .await
    }

    pub(super) async fn describe_service_call(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<EcsServiceState, ControlPlaneError> {
        const OP: &str = "DescribeServices";
        with_timeout(OP, self.timeout(), async {
            let out = self
                .ecs
                .describe_services()
                .cluster(cluster)
                .services(service)
                .send()
                .await
                .map_err(|e| self.snapshot_fault(OP, &e))?;
            let Some(s) = out.services().first() else {
                let reason = out
                    .failures()
                    .first()
                    .and_then(|f| f.reason())
                    .unwrap_or("MISSING");
                return Err(ControlPlaneError::NotFound {
                    what: format!("ECS service {service} in cluster {cluster} ({reason})"),
                });
            };
            Ok(EcsServiceState {
                status: s.status().unwrap_or_default().to_string(),
                desired: s.desired_count(),
                running: s.running_count(),
                deployments: s
                    .deployments()
                    .iter()
                    .map(|d| EcsDeployment {
                        id: d.id().unwrap_or_default().to_string(),
                        status: d.status().unwrap_or_default().to_string(),
                        rollout_state: d.rollout_state().map(|r| r.as_str().to_string()),
                        rollout_state_reason: d.rollout_state_reason().map(str::to_string),
                        desired: d.desired_count(),
                        running: d.running_count(),
                        pending: d.pending_count(),
                        created: time_of(d.created_at()),
                    })
                    .collect(),
                events: s
                    .events()
                    .iter()
                    .filter_map(|e| e.message().map(str::to_string))
                    .collect(),
            })
        })
        .await
    }

    pub(super) async fn stop_task_call(
        &self,
        cluster: &str,
        task: &str,
        reason: &str,
    ) -> Result<(), ControlPlaneError> {
        const OP: &str = "StopTask";
        with_timeout(OP, self.timeout(), async {
            self.ecs
                .stop_task()
                .cluster(cluster)
                .task(task)
                .reason(reason)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| self.snapshot_fault(OP, &e))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_aws_writes_them() {
        assert_eq!(parse_size("5 MB"), Some(5 * 1024 * 1024));
        assert_eq!(parse_size("0 MB"), Some(0));
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("lots"), None);
    }
}
