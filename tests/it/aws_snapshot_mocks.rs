//! Snapshot, serverless snapshot and ECS deployment calls against aws-smithy-mocks (retries
//! off): what moto does not implement, and the failure paths a runbook acts on.

use aws_sdk_ecs::Client as Ecs;
use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
use aws_sdk_ecs::operation::update_service::UpdateServiceOutput;
use aws_sdk_ecs::types::{Deployment, DeploymentRolloutState, Failure, Service, ServiceEvent};
use aws_sdk_elasticache::Client as Ec;
use aws_sdk_elasticache::config::retry::RetryConfig;
use aws_sdk_elasticache::operation::create_serverless_cache_snapshot::CreateServerlessCacheSnapshotOutput;
use aws_sdk_elasticache::operation::create_snapshot::CreateSnapshotError;
use aws_sdk_elasticache::operation::describe_snapshots::DescribeSnapshotsOutput;
use aws_sdk_elasticache::types::{
    NodeSnapshot, ServerlessCacheConfiguration, ServerlessCacheSnapshot, Snapshot,
};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use aws_smithy_types::error::ErrorMetadata;
use cachedeck::aws::AwsControlPlane;
use cachedeck::config::{Config, Settings};
use cachedeck::controlplane::{ControlPlane, ControlPlaneError, SnapshotQuery, SnapshotTarget};
use std::path::Path;

const CONFIG: &str = r#"
[environments.dev]
provider = "aws"
region = "eu-west-1"
"#;

fn plane(ec_rules: &[&Rule], ecs_rules: &[&Rule]) -> AwsControlPlane {
    let config = Config::parse(Path::new("mocks.toml"), CONFIG).expect("config parses");
    let cfg = config.environments["dev"].clone();
    let no_rules: &[&Rule] = &[];
    AwsControlPlane::from_clients(
        cfg.environment("dev", "mocks.toml"),
        cfg,
        Settings::default(),
        mock_client!(aws_sdk_elasticache, RuleMode::MatchAny, ec_rules, |b| b
            .retry_config(RetryConfig::disabled())),
        mock_client!(aws_sdk_ecs, RuleMode::MatchAny, ecs_rules, |b| b
            .retry_config(aws_sdk_ecs::config::retry::RetryConfig::disabled())),
        mock_client!(aws_sdk_ssm, RuleMode::MatchAny, no_rules),
    )
}

fn fault(code: &'static str, message: &'static str) -> Rule {
    mock!(Ec::create_snapshot).then_error(move || {
        CreateSnapshotError::generic(ErrorMetadata::builder().code(code).message(message).build())
    })
}

async fn create_error(code: &'static str, message: &'static str) -> ControlPlaneError {
    plane(&[&fault(code, message)], &[])
        .create_snapshot("orders-1", SnapshotTarget::Node("orders-002".into()))
        .await
        .expect_err("the fault")
}

#[tokio::test]
async fn create_snapshot_faults_map_to_what_a_runbook_acts_on() {
    let quota = create_error(
        "SnapshotQuotaExceededFault",
        "The request cannot be processed because it would exceed the allowed number of snapshots.",
    )
    .await;
    assert!(
        matches!(&quota, ControlPlaneError::QuotaExceeded { operation, .. } if operation == "CreateSnapshot"),
        "{quota:?}"
    );
    let exists = create_error(
        "SnapshotAlreadyExistsFault",
        "Snapshot orders-1 already exists.",
    )
    .await;
    assert!(
        matches!(&exists, ControlPlaneError::AlreadyExists { what } if what.contains("already exists")),
        "{exists:?}"
    );
    let state = create_error(
        "InvalidReplicationGroupState",
        "Replication group orders is not in available state.",
    )
    .await;
    assert!(
        matches!(&state, ControlPlaneError::InvalidState { .. }),
        "{state:?}"
    );
    assert!(
        state.to_string().contains("not in available state"),
        "{state}"
    );
}

#[tokio::test]
async fn a_failed_snapshot_and_node_sizes_are_mapped() {
    let rule = mock!(Ec::describe_snapshots).then_output(|| {
        DescribeSnapshotsOutput::builder()
            .snapshots(
                Snapshot::builder()
                    .snapshot_name("orders-1")
                    .snapshot_status("failed")
                    .snapshot_source("manual")
                    .replication_group_id("orders")
                    .cache_cluster_id("orders-002")
                    .num_node_groups(1)
                    .cache_node_type("cache.r7g.large")
                    .node_snapshots(NodeSnapshot::builder().cache_size("3 MB").build())
                    .build(),
            )
            .build()
    });
    let found = plane(&[&rule], &[])
        .describe_snapshots(SnapshotQuery {
            name: Some("orders-1".into()),
            ..Default::default()
        })
        .await
        .expect("DescribeSnapshots");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].status, "failed");
    assert_eq!(found[0].cache.as_deref(), Some("orders"));
    assert_eq!(found[0].cache_cluster_id.as_deref(), Some("orders-002"));
    assert_eq!(found[0].size_bytes, Some(3 * 1024 * 1024));
    assert_eq!(found[0].shard_count, Some(1));
}

#[tokio::test]
async fn serverless_snapshots_use_their_own_calls() {
    let rule = mock!(Ec::create_serverless_cache_snapshot)
        .match_requests(|r| {
            r.serverless_cache_name() == Some("storefront-dev")
                && r.serverless_cache_snapshot_name() == Some("sf-1")
        })
        .then_output(|| {
            CreateServerlessCacheSnapshotOutput::builder()
                .serverless_cache_snapshot(
                    ServerlessCacheSnapshot::builder()
                        .serverless_cache_snapshot_name("sf-1")
                        .arn("arn:aws:elasticache:eu-west-1:123456789012:serverlesscachesnapshot:sf-1")
                        .status("creating")
                        .snapshot_type("manual")
                        .bytes_used_for_cache("0 MB")
                        .serverless_cache_configuration(
                            ServerlessCacheConfiguration::builder()
                                .serverless_cache_name("storefront-dev")
                                .engine("valkey")
                                .major_engine_version("8")
                                .build(),
                        )
                        .build(),
                )
                .build()
        });
    let made = plane(&[&rule], &[])
        .create_snapshot("sf-1", SnapshotTarget::Serverless("storefront-dev".into()))
        .await
        .expect("CreateServerlessCacheSnapshot");
    assert!(made.serverless);
    assert_eq!(made.status, "creating");
    assert_eq!(made.cache.as_deref(), Some("storefront-dev"));
    assert!(made.arn.as_deref().is_some_and(|a| a.ends_with(":sf-1")));
}

#[tokio::test]
async fn ecs_deployments_are_forced_and_followed() {
    let update = mock!(Ecs::update_service)
        .match_requests(|r| {
            r.force_new_deployment() == Some(true)
                && r.service() == Some("valkey")
                && r.cluster() == Some("orders")
        })
        .then_output(|| UpdateServiceOutput::builder().build());
    let describe = mock!(Ecs::describe_services)
        .match_requests(|r| r.services() == ["valkey"])
        .then_output(|| {
            DescribeServicesOutput::builder()
                .services(
                    Service::builder()
                        .service_name("valkey")
                        .status("ACTIVE")
                        .desired_count(1)
                        .running_count(1)
                        .deployments(
                            Deployment::builder()
                                .id("ecs-svc/1234567890123456789")
                                .status("PRIMARY")
                                .rollout_state(DeploymentRolloutState::Completed)
                                .desired_count(1)
                                .running_count(1)
                                .build(),
                        )
                        .events(
                            ServiceEvent::builder()
                                .message("(service valkey) has reached a steady state.")
                                .build(),
                        )
                        .build(),
                )
                .build()
        });
    let plane = plane(&[], &[&update, &describe]);
    plane
        .force_new_deployment("orders", "valkey")
        .await
        .expect("UpdateService");
    let s = plane
        .describe_service("orders", "valkey")
        .await
        .expect("DescribeServices");
    assert_eq!(
        s.primary().and_then(|d| d.rollout_state.as_deref()),
        Some("COMPLETED")
    );
    assert_eq!((s.running, s.desired), (1, 1));
    assert!(s.events[0].contains("steady state"));

    let missing = mock!(Ecs::describe_services).then_output(|| {
        DescribeServicesOutput::builder()
            .failures(
                Failure::builder()
                    .arn("arn:aws:ecs:eu-west-1:123456789012:service/orders/ghost")
                    .reason("MISSING")
                    .build(),
            )
            .build()
    });
    let err = plane_missing(&missing).await;
    assert!(
        matches!(&err, ControlPlaneError::NotFound { what } if what.contains("MISSING")),
        "{err:?}"
    );
}

async fn plane_missing(rule: &Rule) -> ControlPlaneError {
    plane(&[], &[rule])
        .describe_service("orders", "ghost")
        .await
        .expect_err("a missing service")
}
