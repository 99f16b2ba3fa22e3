//! The AWS control plane against aws-smithy-mocks, for what moto lacks: serverless caches,
//! DescribeEvents, TestFailover and its faults, and the one-line error classification.

use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, future};
use aws_sdk_elasticache::Client as Ec;
use aws_sdk_elasticache::config::retry::RetryConfig;
use aws_sdk_elasticache::operation::describe_cache_clusters::DescribeCacheClustersOutput;
use aws_sdk_elasticache::operation::describe_events::{DescribeEventsError, DescribeEventsOutput};
use aws_sdk_elasticache::operation::describe_replication_groups::{
    DescribeReplicationGroupsError, DescribeReplicationGroupsOutput,
};
use aws_sdk_elasticache::operation::describe_serverless_caches::{
    DescribeServerlessCachesError, DescribeServerlessCachesOutput,
};
use aws_sdk_elasticache::operation::list_tags_for_resource::ListTagsForResourceOutput;
use aws_sdk_elasticache::operation::test_failover::{TestFailoverError, TestFailoverOutput};
use aws_sdk_elasticache::types::error::{
    ApiCallRateForCustomerExceededFault, InvalidReplicationGroupStateFault, NodeGroupNotFoundFault,
    ReplicationGroupNotFoundFault, TestFailoverNotAvailableFault,
};
use aws_sdk_elasticache::types::{
    Endpoint, Event, ReplicationGroup, ServerlessCache, SourceType, Tag,
};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use aws_smithy_types::DateTime;
use aws_smithy_types::error::ErrorMetadata;
use cachedeck::aws::AwsControlPlane;
use cachedeck::config::{Config, Settings};
use cachedeck::controlplane::{ControlPlane, ControlPlaneError, EventQuery, EventSourceType};
use serde_json::json;
use std::path::Path;
use time::OffsetDateTime;

const CONFIG: &str = r#"
[environments.storefront-dev]
provider = "aws"
profile = "acme-prod"
region = "eu-west-1"
"#;

fn plane(rules: &[&Rule]) -> AwsControlPlane {
    plane_with_config(CONFIG, rules)
}

fn plane_with_config(text: &str, rules: &[&Rule]) -> AwsControlPlane {
    let config = Config::parse(Path::new("mocks.toml"), text).expect("config parses");
    let cfg = config.environments["storefront-dev"].clone();
    // Retries off: a retried failure would only slow the test down without changing the
    // classification.
    let elasticache = mock_client!(aws_sdk_elasticache, RuleMode::MatchAny, rules, |b| b
        .retry_config(RetryConfig::disabled()));
    let no_rules: &[&Rule] = &[];
    AwsControlPlane::from_clients(
        cfg.environment("storefront-dev", "mocks.toml"),
        cfg,
        Settings::default(),
        elasticache,
        mock_client!(aws_sdk_ecs, RuleMode::MatchAny, no_rules),
        mock_client!(aws_sdk_ssm, RuleMode::MatchAny, no_rules),
    )
}

/// A plane whose ElastiCache client gets its credentials from `provider`. The mock
/// interceptor answers before credentials are resolved, so this is a real client; identity
/// fails before any connection is made, and the endpoint is loopback all the same.
fn plane_with_credentials(
    provider: aws_sdk_elasticache::config::SharedCredentialsProvider,
) -> AwsControlPlane {
    let config = Config::parse(Path::new("mocks.toml"), CONFIG).expect("config parses");
    let cfg = config.environments["storefront-dev"].clone();
    let elasticache = Ec::from_conf(
        aws_sdk_elasticache::Config::builder()
            .behavior_version(aws_sdk_elasticache::config::BehaviorVersion::latest())
            .region(aws_sdk_elasticache::config::Region::new("eu-west-1"))
            .endpoint_url("http://127.0.0.1:9")
            .retry_config(RetryConfig::disabled())
            .credentials_provider(provider)
            .build(),
    );
    let no_rules: &[&Rule] = &[];
    AwsControlPlane::from_clients(
        cfg.environment("storefront-dev", "mocks.toml"),
        cfg,
        Settings::default(),
        elasticache,
        mock_client!(aws_sdk_ecs, RuleMode::MatchAny, no_rules),
        mock_client!(aws_sdk_ssm, RuleMode::MatchAny, no_rules),
    )
}

fn empty_groups() -> Rule {
    mock!(Ec::describe_replication_groups)
        .then_output(|| DescribeReplicationGroupsOutput::builder().build())
}

fn empty_clusters() -> Rule {
    mock!(Ec::describe_cache_clusters)
        .then_output(|| DescribeCacheClustersOutput::builder().build())
}

fn storefront() -> ServerlessCache {
    ServerlessCache::builder()
        .serverless_cache_name("storefront-dev")
        .status("available")
        .engine("valkey")
        .major_engine_version("8")
        .full_engine_version("8.0")
        .endpoint(
            Endpoint::builder()
                .address("storefront-dev-x1y2.serverless.euw1.cache.amazonaws.com")
                .port(6379)
                .build(),
        )
        .reader_endpoint(
            Endpoint::builder()
                .address("storefront-dev-x1y2.serverless.euw1.cache.amazonaws.com")
                .port(6380)
                .build(),
        )
        .arn("arn:aws:elasticache:eu-west-1:123456789012:serverlesscache:storefront-dev")
        .user_group_id("storefront-users")
        .build()
}

/// A serverless cache created without a user group lets anyone in as `default` with no
/// password: discovery must say "none", not "rbac".
#[tokio::test]
async fn serverless_without_a_user_group_is_not_shown_as_rbac() {
    let serverless = mock!(Ec::describe_serverless_caches).then_output(|| {
        let open = ServerlessCache::builder()
            .serverless_cache_name("open-dev")
            .status("available")
            .engine("valkey")
            .endpoint(
                Endpoint::builder()
                    .address("open-dev-a1b2.serverless.euw1.cache.amazonaws.com")
                    .port(6379)
                    .build(),
            )
            .build();
        DescribeServerlessCachesOutput::builder()
            .serverless_caches(storefront())
            .serverless_caches(open)
            .build()
    });
    let found = plane(&[&serverless, &empty_groups(), &empty_clusters()])
        .discover()
        .await
        .expect("discovery works");
    let auth: Vec<(&str, &str)> = found
        .caches
        .iter()
        .map(|c| (c.name.as_str(), c.auth.as_str()))
        .collect();
    assert_eq!(auth, [("open-dev", "none"), ("storefront-dev", "rbac")]);
}

fn service_error(code: &'static str, message: &'static str) -> ErrorMetadata {
    ErrorMetadata::builder().code(code).message(message).build()
}

#[tokio::test]
async fn serverless_cache_has_the_common_json_shape() {
    let serverless = mock!(Ec::describe_serverless_caches).then_output(|| {
        DescribeServerlessCachesOutput::builder()
            .serverless_caches(storefront())
            .build()
    });
    let tags = mock!(Ec::list_tags_for_resource)
        .then_output(|| ListTagsForResourceOutput::builder().build());
    let plane = plane(&[&serverless, &empty_groups(), &empty_clusters(), &tags]);
    let found = plane.discover().await.expect("discovery works");
    assert!(found.warnings.is_empty(), "{:?}", found.warnings);
    assert_eq!(
        tags.num_calls(),
        0,
        "no tags configured, so no ListTagsForResource"
    );
    let json = serde_json::to_value(&found.caches).expect("serialize");
    let cache = &json[0];
    assert_eq!(
        json!({
            "name": cache["name"], "env": cache["env"], "kind": cache["kind"],
            "engine": cache["engine"], "engine_version": cache["engine_version"],
            "status": cache["status"], "cluster_mode": cache["cluster_mode"],
            "auth": cache["auth"], "tls": cache["tls"],
            "endpoint": {"host": cache["endpoint"]["host"], "port": cache["endpoint"]["port"]},
            "shards": [{"id": cache["shards"][0]["id"], "nodes": [{
                "id": cache["shards"][0]["nodes"][0]["id"],
                "role": cache["shards"][0]["nodes"][0]["role"],
                "host": cache["shards"][0]["nodes"][0]["host"],
                "port": cache["shards"][0]["nodes"][0]["port"],
            }]}],
        }),
        json!({
            "name": "storefront-dev", "env": "storefront-dev", "kind": "serverless",
            "engine": "valkey", "engine_version": "8.0", "status": "available",
            "cluster_mode": false, "auth": "rbac", "tls": true,
            "endpoint": {"host": "storefront-dev-x1y2.serverless.euw1.cache.amazonaws.com", "port": 6379},
            "shards": [{"id": "serverless", "nodes": [{
                "id": "storefront-dev", "role": "primary",
                "host": "storefront-dev-x1y2.serverless.euw1.cache.amazonaws.com", "port": 6379,
            }]}],
        })
    );
    assert_eq!(json.as_array().map(Vec::len), Some(1));
    assert_eq!(cache["endpoints"]["reader"]["port"], 6380);
    assert_eq!(serverless.num_calls(), 1);
}

fn group(id: &str) -> ReplicationGroup {
    ReplicationGroup::builder()
        .replication_group_id(id)
        .status("available")
        .arn(format!(
            "arn:aws:elasticache:eu-west-1:1:replicationgroup:{id}"
        ))
        .build()
}

#[tokio::test]
async fn name_prefixes_then_tags_decide_which_groups_stay() {
    let config = format!(
        "{CONFIG}[environments.storefront-dev.discovery]\nname_prefixes = [\"store\"]\ntags = {{ team = \"storefront\" }}\nkinds = [\"replication-group\"]\n"
    );
    let groups = mock!(Ec::describe_replication_groups).then_output(|| {
        DescribeReplicationGroupsOutput::builder()
            .replication_groups(group("store-a"))
            .replication_groups(group("store-b"))
            .replication_groups(group("payments-c"))
            .build()
    });
    let tagged = |team: &'static str| {
        move || {
            ListTagsForResourceOutput::builder()
                .tag_list(Tag::builder().key("team").value(team).build())
                .tag_list(Tag::builder().key("env").value("dev").build())
                .build()
        }
    };
    let tags_a = mock!(Ec::list_tags_for_resource)
        .match_requests(|r| r.resource_name().is_some_and(|n| n.ends_with(":store-a")))
        .then_output(tagged("storefront"));
    let tags_b = mock!(Ec::list_tags_for_resource)
        .match_requests(|r| r.resource_name().is_some_and(|n| n.ends_with(":store-b")))
        .then_output(tagged("payments"));
    let plane = plane_with_config(&config, &[&groups, &empty_clusters(), &tags_a, &tags_b]);
    let found = plane.discover().await.expect("discovery works");
    let names: Vec<&str> = found.caches.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["store-a"]);
    // payments-c fell to the prefix before any tag lookup.
    assert_eq!((tags_a.num_calls(), tags_b.num_calls()), (1, 1));
}

#[tokio::test]
async fn one_denied_source_is_a_warning_not_a_failure() {
    let serverless = mock!(Ec::describe_serverless_caches).then_error(|| {
        DescribeServerlessCachesError::generic(service_error(
            "AccessDenied",
            "User: arn:aws:sts::123456789012:assumed-role/oncall/jo is not authorized to perform: elasticache:DescribeServerlessCaches",
        ))
    });
    let plane = plane(&[&serverless, &empty_groups(), &empty_clusters()]);
    let found = plane.discover().await.expect("the other sources answered");
    assert!(found.caches.is_empty());
    assert_eq!(
        found.warnings,
        vec!["serverless caches: access denied to DescribeServerlessCaches (User: arn:aws:sts::123456789012:assumed-role/oncall/jo is not authorized to perform: elasticache:DescribeServerlessCaches); grant it in IAM or use another profile".to_string()]
    );
}

#[tokio::test]
async fn expired_token_stops_discovery_with_one_line() {
    let expired = || {
        ErrorMetadata::builder()
            .code("ExpiredToken")
            .message("The security token included in the request is expired")
            .build()
    };
    let groups = mock!(Ec::describe_replication_groups)
        .then_error(move || DescribeReplicationGroupsError::generic(expired()));
    let clusters = mock!(Ec::describe_cache_clusters).then_error(move || {
        aws_sdk_elasticache::operation::describe_cache_clusters::DescribeCacheClustersError::generic(
            expired(),
        )
    });
    let serverless = mock!(Ec::describe_serverless_caches)
        .then_error(move || DescribeServerlessCachesError::generic(expired()));
    let err = plane(&[&groups, &clusters, &serverless])
        .discover()
        .await
        .expect_err("credentials are expired");
    assert_eq!(
        err.to_string(),
        "no usable AWS credentials (the session token has expired); run `aws sso login --profile acme-prod` (or refresh the profile's credentials) and retry"
    );
}

#[derive(Debug)]
struct Failing(fn() -> CredentialsError);

impl ProvideCredentials for Failing {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::ready(Err((self.0)()))
    }
}

#[tokio::test]
async fn expired_sso_session_says_how_to_log_in() {
    let provider = aws_sdk_elasticache::config::SharedCredentialsProvider::new(Failing(|| {
        CredentialsError::provider_error("the SSO token has expired and cannot be refreshed")
    }));
    let plane = plane_with_credentials(provider);
    let err = plane
        .describe_events(EventQuery::all(OffsetDateTime::now_utc()))
        .await
        .expect_err("no credentials");
    assert_eq!(
        err.to_string(),
        "no usable AWS credentials (the SSO session has expired); run `aws sso login --profile acme-prod`"
    );
}

#[tokio::test]
async fn missing_credentials_are_one_line() {
    let provider = aws_sdk_elasticache::config::SharedCredentialsProvider::new(Failing(|| {
        CredentialsError::not_loaded("no providers in chain provided credentials")
    }));
    let plane = plane_with_credentials(provider);
    let err = plane.discover().await.expect_err("no credentials");
    assert_eq!(
        err.to_string(),
        "no usable AWS credentials (no credentials found in the environment, profile or instance role); check the credentials of profile `acme-prod` in ~/.aws, or pick another profile"
    );
}

async fn events_error(code: &'static str, message: &'static str) -> String {
    let rule = mock!(Ec::describe_events)
        .then_error(move || DescribeEventsError::generic(service_error(code, message)));
    plane(&[&rule])
        .describe_events(EventQuery::all(OffsetDateTime::now_utc()))
        .await
        .expect_err("mocked failure")
        .to_string()
}

#[tokio::test]
async fn service_errors_each_give_one_line() {
    assert_eq!(
        events_error(
            "AccessDenied",
            "not authorized to perform: elasticache:DescribeEvents"
        )
        .await,
        "access denied to DescribeEvents (not authorized to perform: elasticache:DescribeEvents); grant it in IAM or use another profile"
    );
    assert_eq!(
        events_error("Throttling", "Rate exceeded").await,
        "DescribeEvents was throttled by AWS; retry in a minute or lower the poll rate"
    );
    assert_eq!(
        events_error(
            "InvalidClientTokenId",
            "The security token included in the request is invalid."
        )
        .await,
        "no usable AWS credentials (the access key or session token was rejected (InvalidClientTokenId)); check the credentials of profile `acme-prod` in ~/.aws, or pick another profile"
    );
    assert_eq!(
        events_error(
            "InvalidParameterValue",
            "StartTime is more than 14 days\nin the past"
        )
        .await,
        "DescribeEvents failed: InvalidParameterValue: StartTime is more than 14 days in the past"
    );
}

fn event(secs: i64, message: &str) -> Event {
    Event::builder()
        .source_identifier("jobs-valkey")
        .source_type(SourceType::ReplicationGroup)
        .message(message)
        .date(DateTime::from_secs(secs))
        .build()
}

#[tokio::test]
async fn events_are_paged_filtered_and_oldest_first() {
    let first = mock!(Ec::describe_events)
        .match_requests(|r| {
            r.marker().is_none()
                && r.source_identifier() == Some("jobs-valkey")
                && r.source_type() == Some(&SourceType::ReplicationGroup)
                && r.start_time().map(|t| t.secs()) == Some(1_700_000_000)
        })
        .then_output(|| {
            DescribeEventsOutput::builder()
                .events(event(1_700_000_300, "Finished recovery for cache nodes 0001"))
                .events(event(1_700_000_200, "Failover from primary node jobs-valkey-001 to replica node jobs-valkey-002 completed"))
                .marker("page-2")
                .build()
        });
    let second = mock!(Ec::describe_events)
        .match_requests(|r| r.marker() == Some("page-2"))
        .then_output(|| {
            DescribeEventsOutput::builder()
                .events(event(
                    1_700_000_100,
                    "Test Failover API called for node group 0001",
                ))
                .build()
        });
    let events = plane(&[&first, &second])
        .describe_events(EventQuery::of(
            "jobs-valkey",
            EventSourceType::ReplicationGroup,
            OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("valid time"),
        ))
        .await
        .expect("events");
    let messages: Vec<&str> = events.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "Test Failover API called for node group 0001",
            "Failover from primary node jobs-valkey-001 to replica node jobs-valkey-002 completed",
            "Finished recovery for cache nodes 0001",
        ]
    );
    assert_eq!(events[0].source_type, "replication-group");
    assert_eq!(events[0].time.unix_timestamp(), 1_700_000_100);
    assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
}

#[tokio::test]
async fn test_failover_starts_one_node_group() {
    let rule = mock!(Ec::test_failover)
        .match_requests(|r| {
            r.replication_group_id() == Some("jobs-valkey") && r.node_group_id() == Some("0001")
        })
        .then_output(|| TestFailoverOutput::builder().build());
    plane(&[&rule])
        .test_failover("jobs-valkey", "0001")
        .await
        .expect("failover accepted");
    assert_eq!(rule.num_calls(), 1);
}

/// TestFailover is not idempotent: a 5xx (which the SDK would retry for any other call)
/// is sent once, and comes back as an error whose outcome the runbook checks in the events.
#[tokio::test]
async fn test_failover_is_never_retried_by_the_sdk() {
    let rule = mock!(Ec::test_failover)
        .sequence()
        .http_status(503, None)
        .times(3)
        .output(|| TestFailoverOutput::builder().build())
        .build();
    let retrying = plane_with_config(CONFIG, &[]);
    // The same adapter, but over a client that retries as the real one does.
    let elasticache = mock_client!(aws_sdk_elasticache, RuleMode::MatchAny, &[&rule], |b| b
        .retry_config(RetryConfig::standard().with_max_attempts(3)));
    let plane = AwsControlPlane::from_clients(
        retrying.environment().clone(),
        Config::parse(Path::new("mocks.toml"), CONFIG)
            .expect("config")
            .environments["storefront-dev"]
            .clone(),
        Settings::default(),
        elasticache,
        mock_client!(aws_sdk_ecs, RuleMode::MatchAny, &[] as &[&Rule]),
        mock_client!(aws_sdk_ssm, RuleMode::MatchAny, &[] as &[&Rule]),
    );
    let err = plane
        .test_failover("jobs-valkey", "0001")
        .await
        .expect_err("the 503 is returned, not retried");
    assert_eq!(rule.num_calls(), 1, "sent once: {err}");
}

/// ApiCallRateForCustomerExceeded is a request-rate limit (wait and retry), not the
/// 15-per-24-hours quota.
#[tokio::test]
async fn test_failover_rate_limit_is_throttling_not_quota() {
    let err = failover_error(|| {
        TestFailoverError::ApiCallRateForCustomerExceededFault(
            ApiCallRateForCustomerExceededFault::builder()
                .message("The customer has exceeded the allowed rate of API calls")
                .build(),
        )
    })
    .await;
    assert_eq!(
        err,
        ControlPlaneError::Throttled {
            operation: "TestFailover".into()
        }
    );
}

async fn failover_error(error: fn() -> TestFailoverError) -> ControlPlaneError {
    let rule = mock!(Ec::test_failover).then_error(error);
    plane(&[&rule])
        .test_failover("jobs-valkey", "0002")
        .await
        .expect_err("mocked fault")
}

#[tokio::test]
async fn test_failover_faults_are_classified() {
    let quota = failover_error(|| {
        TestFailoverError::TestFailoverNotAvailableFault(
            TestFailoverNotAvailableFault::builder()
                .message("TestFailover can be called at most 15 times per node group in 24 hours")
                .build(),
        )
    })
    .await;
    assert_eq!(
        quota.to_string(),
        "TestFailover refused: quota exceeded (TestFailover can be called at most 15 times per node group in 24 hours)"
    );

    let state = failover_error(|| {
        TestFailoverError::InvalidReplicationGroupStateFault(
            InvalidReplicationGroupStateFault::builder()
                .message("Replication group jobs-valkey is not in available state (modifying)")
                .build(),
        )
    })
    .await;
    assert_eq!(
        state,
        ControlPlaneError::InvalidState {
            operation: "TestFailover".into(),
            detail: "Replication group jobs-valkey is not in available state (modifying)".into()
        }
    );

    let missing = failover_error(|| {
        TestFailoverError::NodeGroupNotFoundFault(NodeGroupNotFoundFault::builder().build())
    })
    .await;
    assert_eq!(
        missing.to_string(),
        "node group 0002 of replication group jobs-valkey not found"
    );
}

#[tokio::test]
async fn test_failover_on_serverless_says_why_not() {
    let failover = mock!(Ec::test_failover).then_error(|| {
        TestFailoverError::ReplicationGroupNotFoundFault(
            ReplicationGroupNotFoundFault::builder().build(),
        )
    });
    let serverless = mock!(Ec::describe_serverless_caches)
        .match_requests(|r| r.serverless_cache_name() == Some("storefront-dev"))
        .then_output(|| {
            DescribeServerlessCachesOutput::builder()
                .serverless_caches(storefront())
                .build()
        });
    let err = plane(&[&failover, &serverless])
        .test_failover("storefront-dev", "0001")
        .await
        .expect_err("serverless has no node groups");
    assert!(
        matches!(&err, ControlPlaneError::Unsupported { target, .. } if target == "storefront-dev"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("TestFailover is not available for storefront-dev: serverless caches")
    );

    let failover_only = mock!(Ec::test_failover).then_error(|| {
        TestFailoverError::ReplicationGroupNotFoundFault(
            ReplicationGroupNotFoundFault::builder().build(),
        )
    });
    let none = mock!(Ec::describe_serverless_caches)
        .then_output(|| DescribeServerlessCachesOutput::builder().build());
    assert_eq!(
        plane(&[&failover_only, &none])
            .test_failover("gone", "0001")
            .await,
        Err(ControlPlaneError::NotFound {
            what: "replication group gone".into()
        })
    );
}

#[tokio::test]
async fn a_missing_region_says_where_to_set_it() {
    let config = Config::parse(
        Path::new("mocks.toml"),
        "[environments.storefront-dev]\nprovider = \"aws\"\n",
    )
    .expect("config parses");
    let cfg = config.environments["storefront-dev"].clone();
    // No region and no endpoint: the endpoint cannot be resolved, so nothing is sent.
    let elasticache = Ec::from_conf(
        aws_sdk_elasticache::Config::builder()
            .behavior_version(aws_sdk_elasticache::config::BehaviorVersion::latest())
            .credentials_provider(aws_sdk_elasticache::config::Credentials::for_tests())
            .build(),
    );
    let no_rules: &[&Rule] = &[];
    let plane = AwsControlPlane::from_clients(
        cfg.environment("storefront-dev", "mocks.toml"),
        cfg,
        Settings::default(),
        elasticache,
        mock_client!(aws_sdk_ecs, RuleMode::MatchAny, no_rules),
        mock_client!(aws_sdk_ssm, RuleMode::MatchAny, no_rules),
    );
    let err = plane
        .describe_events(EventQuery::all(OffsetDateTime::now_utc()))
        .await
        .expect_err("no region");
    assert_eq!(
        err.to_string(),
        "DescribeEvents failed: no AWS region is set; add `region = \"...\"` to the environment or its profile, or set AWS_REGION"
    );
}
