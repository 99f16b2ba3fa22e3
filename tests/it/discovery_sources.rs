//! One failing source is a warning for that source, never the end of an environment's
//! discovery: one ECS service whose ListTasks fails, and SSM unreachable (no VPC endpoint
//! for it) while ElastiCache answers.

use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
use aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput;
use aws_sdk_ecs::operation::list_tasks::{ListTasksError, ListTasksOutput};
use aws_sdk_ecs::types::error::ServerException;
use aws_sdk_ecs::types::{Service, Task};
use aws_sdk_elasticache::Client as Ec;
use aws_sdk_elasticache::config::retry::RetryConfig;
use aws_sdk_elasticache::operation::describe_cache_clusters::DescribeCacheClustersOutput;
use aws_sdk_elasticache::operation::describe_replication_groups::DescribeReplicationGroupsOutput;
use aws_sdk_elasticache::types::ReplicationGroup;
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use cachedeck::aws::AwsControlPlane;
use cachedeck::config::{Config, Settings};
use cachedeck::controlplane::ControlPlane;
use std::path::Path;

const CONFIG: &str = r#"
[environments.ops]
provider = "aws"
region = "eu-west-1"
protection = "read-only"

[environments.ops.discovery]
kinds = ["replication-group", "ecs-service", "endpoint"]

[[environments.ops.ssm]]
name = "storefront"
endpoint = "/storefront/redis/endpoint"

[[environments.ops.ecs]]
cluster = "apps"
services = ["a-valkey", "b-valkey"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_ecs_service_and_unreachable_ssm_are_warnings() {
    let groups = mock!(Ec::describe_replication_groups).then_compute_output(|_| {
        DescribeReplicationGroupsOutput::builder()
            .replication_groups(
                ReplicationGroup::builder()
                    .replication_group_id("jobs")
                    .status("available")
                    .build(),
            )
            .build()
    });
    let clusters = mock!(Ec::describe_cache_clusters)
        .then_compute_output(|_| DescribeCacheClustersOutput::builder().build());
    let services = mock!(aws_sdk_ecs::Client::describe_services).then_compute_output(|_| {
        DescribeServicesOutput::builder()
            .services(Service::builder().service_name("a-valkey").build())
            .services(Service::builder().service_name("b-valkey").build())
            .build()
    });
    let broken = mock!(aws_sdk_ecs::Client::list_tasks)
        .match_requests(|r| r.service_name() == Some("a-valkey"))
        .then_error(|| {
            ListTasksError::ServerException(
                ServerException::builder().message("internal error").build(),
            )
        });
    let listed = mock!(aws_sdk_ecs::Client::list_tasks).then_compute_output(|_| {
        ListTasksOutput::builder()
            .task_arns("arn:aws:ecs:eu-west-1:1:task/apps/t1")
            .build()
    });
    let tasks = mock!(aws_sdk_ecs::Client::describe_tasks).then_compute_output(|_| {
        DescribeTasksOutput::builder()
            .tasks(
                Task::builder()
                    .task_arn("arn:aws:ecs:eu-west-1:1:task/apps/t1")
                    .last_status("RUNNING")
                    .build(),
            )
            .build()
    });
    let config = Config::parse(Path::new("sources.toml"), CONFIG).expect("config");
    let cfg = config.environments["ops"].clone();
    let ec_rules: &[&Rule] = &[&groups, &clusters];
    let ecs_rules: &[&Rule] = &[&services, &broken, &listed, &tasks];
    // SSM behind a closed loopback port: as unreachable as a missing VPC endpoint.
    let ssm = aws_sdk_ssm::Client::from_conf(
        aws_sdk_ssm::Config::builder()
            .behavior_version(aws_sdk_ssm::config::BehaviorVersion::latest())
            .region(aws_sdk_ssm::config::Region::new("eu-west-1"))
            .endpoint_url("http://127.0.0.1:9")
            .retry_config(aws_sdk_ssm::config::retry::RetryConfig::disabled())
            .credentials_provider(aws_sdk_ssm::config::Credentials::new(
                "AKIDTEST", "secret", None, None, "test",
            ))
            .build(),
    );
    let plane = AwsControlPlane::from_clients(
        cfg.environment("ops", "sources.toml"),
        cfg,
        Settings::default(),
        mock_client!(aws_sdk_elasticache, RuleMode::MatchAny, ec_rules, |b| b
            .retry_config(RetryConfig::disabled())),
        mock_client!(aws_sdk_ecs, RuleMode::MatchAny, ecs_rules, |b| b
            .retry_config(aws_sdk_ecs::config::retry::RetryConfig::disabled())),
        ssm,
    );
    let found = plane
        .discover()
        .await
        .expect("one failing source does not end discovery");
    let names: Vec<&str> = found.caches.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["jobs", "b-valkey"], "{:?}", found.warnings);
    assert!(
        found
            .warnings
            .iter()
            .any(|w| w.starts_with("ecs apps/a-valkey: ") && w.ends_with("; skipped")),
        "{:?}",
        found.warnings
    );
    assert!(
        found
            .warnings
            .iter()
            .any(|w| w.starts_with("ssm cache storefront: ")),
        "{:?}",
        found.warnings
    );
}

/// An endpoint parameter that holds a whole URL is parsed, not taken as a host name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_parameter_holding_a_url_is_parsed() {
    use aws_sdk_ssm::operation::get_parameter::GetParameterOutput;
    use aws_sdk_ssm::types::{Parameter, ParameterType};
    let groups = mock!(Ec::describe_replication_groups)
        .then_compute_output(|_| DescribeReplicationGroupsOutput::builder().build());
    let clusters = mock!(Ec::describe_cache_clusters)
        .then_compute_output(|_| DescribeCacheClustersOutput::builder().build());
    let param = mock!(aws_sdk_ssm::Client::get_parameter).then_compute_output(|req| {
        GetParameterOutput::builder()
            .parameter(
                Parameter::builder()
                    .name(req.name().unwrap_or_default())
                    .value("rediss://sf-x1.serverless.euw1.cache.amazonaws.com:6380")
                    .r#type(ParameterType::String)
                    .version(1)
                    .build(),
            )
            .build()
    });
    let config = Config::parse(Path::new("sources.toml"), CONFIG).expect("config");
    let mut cfg = config.environments["ops"].clone();
    cfg.ecs.clear();
    let ec_rules: &[&Rule] = &[&groups, &clusters];
    let ssm_rules: &[&Rule] = &[&param];
    let no_rules: &[&Rule] = &[];
    let plane = AwsControlPlane::from_clients(
        cfg.environment("ops", "sources.toml"),
        cfg,
        Settings::default(),
        mock_client!(aws_sdk_elasticache, RuleMode::MatchAny, ec_rules),
        mock_client!(aws_sdk_ecs, RuleMode::MatchAny, no_rules),
        mock_client!(aws_sdk_ssm, RuleMode::MatchAny, ssm_rules),
    );
    let found = plane.discover().await.expect("discover");
    let storefront = found
        .caches
        .iter()
        .find(|c| c.name == "storefront")
        .unwrap_or_else(|| panic!("{:?} {:?}", found.caches, found.warnings));
    let ep = storefront.endpoint.as_ref().expect("endpoint");
    assert_eq!(
        (ep.host.as_str(), ep.port, ep.tls),
        ("sf-x1.serverless.euw1.cache.amazonaws.com", 6380, true)
    );
}

/// The TUI re-discovers every 15 s: a SecureString URL is decrypted (a KMS Decrypt and an
/// audit-log line each time) only when its version changed, and a task definition revision,
/// which never changes, is read once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediscovery_decrypts_only_new_versions_and_reads_task_definitions_once() {
    use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput;
    use aws_sdk_ecs::types::{ContainerDefinition, TaskDefinition};
    use aws_sdk_ssm::operation::get_parameter::GetParameterOutput;
    use aws_sdk_ssm::types::{Parameter, ParameterType};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};

    const TEXT: &str = r#"
[environments.ops]
provider = "aws"
region = "eu-west-1"

[environments.ops.discovery]
kinds = ["ecs-service", "endpoint"]

[[environments.ops.ssm]]
name = "paperwurks"
url = "/paperwurks/prod/redis/url"

[[environments.ops.ecs]]
cluster = "apps"
services = ["a-valkey"]
"#;
    let version = Arc::new(AtomicI64::new(1));
    let head_version = version.clone();
    // Without decryption a SecureString's value is its ciphertext.
    let head = mock!(aws_sdk_ssm::Client::get_parameter)
        .match_requests(|r| r.with_decryption() != Some(true))
        .then_compute_output(move |req| {
            GetParameterOutput::builder()
                .parameter(
                    Parameter::builder()
                        .name(req.name().unwrap_or_default())
                        .value("AQICAHh0ciphertext")
                        .r#type(ParameterType::SecureString)
                        .version(head_version.load(Ordering::SeqCst))
                        .build(),
                )
                .build()
        });
    let full_version = version.clone();
    let decrypted = mock!(aws_sdk_ssm::Client::get_parameter)
        .match_requests(|r| r.with_decryption() == Some(true))
        .then_compute_output(move |req| {
            let v = full_version.load(Ordering::SeqCst);
            GetParameterOutput::builder()
                .parameter(
                    Parameter::builder()
                        .name(req.name().unwrap_or_default())
                        .value(format!(
                            "rediss://:tok-{v}@pw-v{v}.cache.amazonaws.com:6379"
                        ))
                        .r#type(ParameterType::SecureString)
                        .version(v)
                        .build(),
                )
                .build()
        });
    let services = mock!(aws_sdk_ecs::Client::describe_services).then_compute_output(|_| {
        DescribeServicesOutput::builder()
            .services(
                Service::builder()
                    .service_name("a-valkey")
                    .task_definition("arn:aws:ecs:eu-west-1:1:task-definition/a-valkey:7")
                    .build(),
            )
            .build()
    });
    let listed = mock!(aws_sdk_ecs::Client::list_tasks)
        .then_compute_output(|_| ListTasksOutput::builder().build());
    let definition =
        mock!(aws_sdk_ecs::Client::describe_task_definition).then_compute_output(|_| {
            DescribeTaskDefinitionOutput::builder()
                .task_definition(
                    TaskDefinition::builder()
                        .container_definitions(
                            ContainerDefinition::builder()
                                .name("valkey")
                                .image("valkey/valkey:8.1.1")
                                .build(),
                        )
                        .build(),
                )
                .build()
        });
    let config = Config::parse(Path::new("sources.toml"), TEXT).expect("config");
    let cfg = config.environments["ops"].clone();
    let no_rules: &[&Rule] = &[];
    let ecs_rules: &[&Rule] = &[&services, &listed, &definition];
    let ssm_rules: &[&Rule] = &[&head, &decrypted];
    let plane = AwsControlPlane::from_clients(
        cfg.environment("ops", "sources.toml"),
        cfg,
        Settings::default(),
        mock_client!(aws_sdk_elasticache, RuleMode::MatchAny, no_rules),
        mock_client!(aws_sdk_ecs, RuleMode::MatchAny, ecs_rules),
        mock_client!(aws_sdk_ssm, RuleMode::MatchAny, ssm_rules),
    );
    let host = |found: &cachedeck::controlplane::Discovery| {
        let cache = found
            .caches
            .iter()
            .find(|c| c.name == "paperwurks")
            .unwrap_or_else(|| panic!("{:?} {:?}", found.caches, found.warnings));
        cache.endpoint.as_ref().expect("endpoint").host.clone()
    };
    let versions = |found: &cachedeck::controlplane::Discovery| {
        found
            .caches
            .iter()
            .find(|c| c.name == "a-valkey")
            .map(|c| c.engine_version.clone())
    };
    for _ in 0..3 {
        let found = plane.discover().await.expect("discover");
        assert_eq!(host(&found), "pw-v1.cache.amazonaws.com");
        assert_eq!(versions(&found).as_deref(), Some("8.1.1"));
    }
    assert_eq!(head.num_calls(), 3, "each discovery reads the version");
    assert_eq!(decrypted.num_calls(), 1, "decrypted once for version 1");
    assert_eq!(definition.num_calls(), 1, "a revision is read once");

    // A new version (the URL was rotated or moved): decrypted once more.
    version.store(2, Ordering::SeqCst);
    let found = plane.discover().await.expect("discover");
    assert_eq!(host(&found), "pw-v2.cache.amazonaws.com");
    assert_eq!(decrypted.num_calls(), 2);
    // Nothing of the secret is kept in what discovery returns.
    assert!(!format!("{found:?}").contains("tok-2"));
}
