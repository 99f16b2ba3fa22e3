//! The AWS adapter's ECS Exec calls against aws-smithy-mocks (moto has no ExecuteCommand or
//! KMS): DescribeTasks → preflight facts, ExecuteCommand → a session with the CLI's target
//! naming, TargetNotConnectedException and access denied explained, KMS GenerateDataKey.

use aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput;
use aws_sdk_ecs::operation::execute_command::{ExecuteCommandError, ExecuteCommandOutput};
use aws_sdk_ecs::operation::list_tasks::ListTasksOutput;
use aws_sdk_ecs::types::error::{AccessDeniedException, TargetNotConnectedException};
use aws_sdk_ecs::types::{Container, ManagedAgent, ManagedAgentName, Session, Task};
use aws_sdk_kms::operation::generate_data_key::{GenerateDataKeyError, GenerateDataKeyOutput};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use cachedeck::aws::AwsControlPlane;
use cachedeck::config::{Config, Settings};
use cachedeck::controlplane::{ControlPlane, ControlPlaneError, ExecCommand};
use cachedeck::ecsexec::crypto;
use std::path::Path;

const CONFIG: &str = r#"
[environments.orders-prod]
provider = "aws"
profile = "acme-prod"
region = "eu-west-1"
"#;

fn plane(ecs_rules: &[&Rule], kms_rules: &[&Rule]) -> AwsControlPlane {
    let config = Config::parse(Path::new("mocks.toml"), CONFIG).expect("config parses");
    let cfg = config.environments["orders-prod"].clone();
    let no_rules: &[&Rule] = &[];
    AwsControlPlane::from_clients(
        cfg.environment("orders-prod", "mocks.toml"),
        cfg,
        Settings::default(),
        mock_client!(aws_sdk_elasticache, RuleMode::MatchAny, no_rules),
        mock_client!(aws_sdk_ecs, RuleMode::MatchAny, ecs_rules, |b| b
            .retry_config(aws_sdk_ecs::config::retry::RetryConfig::disabled())),
        mock_client!(aws_sdk_ssm, RuleMode::MatchAny, no_rules),
    )
    .with_kms(mock_client!(
        aws_sdk_kms,
        RuleMode::MatchAny,
        kms_rules,
        |b| b.retry_config(aws_sdk_kms::config::retry::RetryConfig::disabled())
    ))
}

fn task() -> Task {
    Task::builder()
        .task_arn(
            "arn:aws:ecs:eu-west-1:111122223333:task/orders-prod/0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        )
        .last_status("RUNNING")
        .enable_execute_command(true)
        .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
        .platform_version("1.4.0")
        .task_definition_arn("arn:aws:ecs:eu-west-1:111122223333:task-definition/orders-sidekiq:42")
        .containers(
            Container::builder()
                .name("sidekiq")
                .runtime_id("0f1e2d3c4b5a69788796a5b4c3d2e1f0-3287593042")
                .managed_agents(
                    ManagedAgent::builder()
                        .name(ManagedAgentName::ExecuteCommandAgent)
                        .last_status("RUNNING")
                        .build(),
                )
                .build(),
        )
        .build()
}

#[tokio::test]
async fn tasks_carry_what_the_preflight_needs() {
    let list = mock!(aws_sdk_ecs::Client::list_tasks)
        .match_requests(|r| r.cluster() == Some("orders-prod") && r.service_name() == Some("orders-sidekiq"))
        .then_output(|| {
            ListTasksOutput::builder()
                .task_arns("arn:aws:ecs:eu-west-1:111122223333:task/orders-prod/0f1e2d3c4b5a69788796a5b4c3d2e1f0")
                .build()
        });
    let describe = mock!(aws_sdk_ecs::Client::describe_tasks)
        .then_output(|| DescribeTasksOutput::builder().tasks(task()).build());
    let p = plane(&[&list, &describe], &[]);
    let tasks = p
        .exec_tasks("orders-prod", "orders-sidekiq")
        .await
        .expect("tasks");
    assert_eq!(tasks.len(), 1);
    let t = &tasks[0];
    assert_eq!(t.task_id, "0f1e2d3c4b5a69788796a5b4c3d2e1f0");
    assert!(t.enable_execute_command);
    assert_eq!(t.containers[0].exec_agent.as_deref(), Some("RUNNING"));
    assert_eq!(t.platform_version.as_deref(), Some("1.4.0"));
    cachedeck::headless::exec::preflight(t, "sidekiq", "orders-sidekiq").expect("preflight passes");
}

#[tokio::test]
async fn execute_command_returns_the_session_and_names_the_target_as_the_cli_does() {
    let exec = mock!(aws_sdk_ecs::Client::execute_command)
        .match_requests(|r| {
            r.interactive() == Some(true)
                && r.container() == Some("sidekiq")
                && r.command() == Some("sh -c 'echo hi'")
        })
        .then_output(|| {
            ExecuteCommandOutput::builder()
                .cluster_arn("arn:aws:ecs:eu-west-1:111122223333:cluster/orders-prod")
                .task_arn("arn:aws:ecs:eu-west-1:111122223333:task/orders-prod/0f1e2d3c4b5a69788796a5b4c3d2e1f0")
                .container_name("sidekiq")
                .interactive(true)
                .session(
                    Session::builder()
                        .session_id("ecs-execute-command-0a1b2c3d4e5f60718")
                        .stream_url("wss://ssmmessages.eu-west-1.amazonaws.com/v1/data-channel/ecs-execute-command-0a1b2c3d4e5f60718?role=publish_subscribe&cell-number=AAEAA")
                        .token_value("AAEAAtokenvalue")
                        .build(),
                )
                .build()
        });
    let describe = mock!(aws_sdk_ecs::Client::describe_tasks)
        .then_output(|| DescribeTasksOutput::builder().tasks(task()).build());
    let p = plane(&[&exec, &describe], &[]);
    let started = p
        .execute_command(ExecCommand {
            cluster: "orders-prod".into(),
            task: "0f1e2d3c4b5a69788796a5b4c3d2e1f0".into(),
            container: Some("sidekiq".into()),
            command: "sh -c 'echo hi'".into(),
        })
        .await
        .expect("session");
    assert_eq!(
        started.session.session_id,
        "ecs-execute-command-0a1b2c3d4e5f60718"
    );
    assert_eq!(
        started.session.target,
        "ecs:orders-prod_0f1e2d3c4b5a69788796a5b4c3d2e1f0_0f1e2d3c4b5a69788796a5b4c3d2e1f0-3287593042"
    );
    assert!(
        !format!("{:?}", started.session).contains("tokenvalue"),
        "the token never prints"
    );
}

fn exec_req() -> ExecCommand {
    ExecCommand {
        cluster: "orders-prod".into(),
        task: "0f1e2d3c4b5a69788796a5b4c3d2e1f0".into(),
        container: None,
        command: "true".into(),
    }
}

#[tokio::test]
async fn target_not_connected_is_explained_in_one_line() {
    let exec = mock!(aws_sdk_ecs::Client::execute_command).then_error(|| {
        ExecuteCommandError::TargetNotConnectedException(
            TargetNotConnectedException::builder()
                .message("The execute command failed due to an internal error. Try again later.")
                .build(),
        )
    });
    let err = plane(&[&exec], &[])
        .execute_command(exec_req())
        .await
        .expect_err("fails");
    let text = err.to_string();
    assert!(
        matches!(err, ControlPlaneError::InvalidState { .. }),
        "{err:?}"
    );
    assert!(
        text.starts_with("ExecuteCommand refused: the task's ExecuteCommandAgent is not connected"),
        "{text}"
    );
    assert!(text.contains("ssmmessages:CreateControlChannel"), "{text}");
    assert!(!text.contains('\n'));
}

#[tokio::test]
async fn access_denied_names_the_permission() {
    let exec = mock!(aws_sdk_ecs::Client::execute_command).then_error(|| {
        ExecuteCommandError::AccessDeniedException(
            AccessDeniedException::builder()
                .message("User: arn:aws:iam::111122223333:user/oncall is not authorized to perform: ecs:ExecuteCommand")
                .build(),
        )
    });
    let err = plane(&[&exec], &[])
        .execute_command(exec_req())
        .await
        .expect_err("fails");
    assert!(
        matches!(err, ControlPlaneError::AccessDenied { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("the caller needs ecs:ExecuteCommand"),
        "{err}"
    );
}

#[tokio::test]
async fn kms_generate_data_key_asks_for_64_bytes_with_the_session_context() {
    let gen_key = mock!(aws_sdk_kms::Client::generate_data_key)
        .match_requests(|r| {
            r.key_id() == Some("arn:aws:kms:eu-west-1:111122223333:key/exec")
                && r.number_of_bytes() == Some(64)
                && r.encryption_context()
                    .and_then(|c| c.get("aws:ssm:SessionId"))
                    .map(String::as_str)
                    == Some("ecs-execute-command-1")
                && r.encryption_context()
                    .and_then(|c| c.get("aws:ssm:TargetId"))
                    .map(String::as_str)
                    == Some("ecs:c_t_r")
        })
        .then_output(|| {
            GenerateDataKeyOutput::builder()
                .plaintext(aws_smithy_types::Blob::new(vec![7u8; 64]))
                .ciphertext_blob(aws_smithy_types::Blob::new(b"opaque-blob".to_vec()))
                .build()
        });
    let p = plane(&[], &[&gen_key]);
    let keys = p.exec_data_keys().expect("KMS is configured");
    let key = keys
        .generate_data_key(
            "arn:aws:kms:eu-west-1:111122223333:key/exec",
            &crypto::context("ecs-execute-command-1", "ecs:c_t_r"),
        )
        .await
        .expect("data key");
    assert_eq!(key.ciphertext, b"opaque-blob");
    crypto::SessionCipher::from_data_key(&key, crypto::Side::Client).expect("a usable key");
}

#[tokio::test]
async fn kms_access_denied_says_which_permission() {
    let gen_key = mock!(aws_sdk_kms::Client::generate_data_key).then_error(|| {
        GenerateDataKeyError::generic(
            aws_smithy_types::error::ErrorMetadata::builder()
                .code("AccessDeniedException")
                .message("not authorized to perform kms:GenerateDataKey")
                .build(),
        )
    });
    let p = plane(&[], &[&gen_key]);
    let err = p
        .exec_data_keys()
        .expect("KMS")
        .generate_data_key("k", &crypto::context("s", "t"))
        .await
        .err()
        .expect("denied");
    assert_eq!(
        err.to_string(),
        "KMS GenerateDataKey failed: AccessDeniedException: not authorized to perform kms:GenerateDataKey; the caller needs kms:GenerateDataKey on the cluster's exec KMS key"
    );
}
