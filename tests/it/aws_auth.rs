//! The AWS adapter's auth-rotation calls against aws-smithy-mocks (moto lacks them):
//! ModifyReplicationGroup with AuthToken/AuthTokenUpdateStrategy/ApplyImmediately, its
//! InvalidParameterValue and InvalidReplicationGroupState faults, DescribeReplicationGroups'
//! PendingModifiedValues.AuthTokenStatus, ModifyUser/DescribeUsers and their faults — and the
//! token kept out of every error text and of the log at trace level.

use aws_sdk_elasticache::Client as Ec;
use aws_sdk_elasticache::config::retry::RetryConfig;
use aws_sdk_elasticache::operation::describe_replication_groups::DescribeReplicationGroupsOutput;
use aws_sdk_elasticache::operation::describe_users::{DescribeUsersError, DescribeUsersOutput};
use aws_sdk_elasticache::operation::modify_replication_group::{
    ModifyReplicationGroupError, ModifyReplicationGroupOutput,
};
use aws_sdk_elasticache::operation::modify_user::{ModifyUserError, ModifyUserOutput};
use aws_sdk_elasticache::types::error::{
    InvalidParameterValueException, InvalidReplicationGroupStateFault, InvalidUserStateFault,
    UserNotFoundFault,
};
use aws_sdk_elasticache::types::{
    AuthTokenUpdateStatus, AuthTokenUpdateStrategyType, Authentication, AuthenticationType,
    ReplicationGroup, ReplicationGroupPendingModifiedValues, User,
};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use cachedeck::aws::AwsControlPlane;
use cachedeck::config::{Config, Settings};
use cachedeck::controlplane::{AuthTokenStrategy, ControlPlane, ControlPlaneError};
use secrecy::SecretString;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

const TOKEN: &str = "CanaryToken0rotate0xyzzy0DoNotLog0123456789";
const OLD: &str = "CanaryOld0rotate0plugh0DoNotLog00123456789";

fn plane(rules: &[&Rule]) -> AwsControlPlane {
    let text = "[environments.paperwurks-prod]\nprovider = \"aws\"\nprofile = \"p\"\nregion = \"eu-west-1\"\n";
    let config = Config::parse(Path::new("mocks.toml"), text).expect("config parses");
    let cfg = config.environments["paperwurks-prod"].clone();
    let elasticache = mock_client!(aws_sdk_elasticache, RuleMode::MatchAny, rules, |b| b
        .retry_config(RetryConfig::disabled()));
    let no_rules: &[&Rule] = &[];
    AwsControlPlane::from_clients(
        cfg.environment("paperwurks-prod", "mocks.toml"),
        cfg,
        Settings::default(),
        elasticache,
        mock_client!(aws_sdk_ecs, RuleMode::MatchAny, no_rules),
        mock_client!(aws_sdk_ssm, RuleMode::MatchAny, no_rules),
    )
}

fn group(status: &str, pending: Option<AuthTokenUpdateStatus>) -> ReplicationGroup {
    let mut b = ReplicationGroup::builder()
        .replication_group_id("paperwurks-prod")
        .status(status)
        .auth_token_enabled(true)
        .transit_encryption_enabled(true);
    if let Some(p) = pending {
        b = b.pending_modified_values(
            ReplicationGroupPendingModifiedValues::builder()
                .auth_token_status(p)
                .build(),
        );
    }
    b.build()
}

fn token() -> SecretString {
    SecretString::from(TOKEN.to_string())
}

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut inner) = self.0.lock() {
            inner.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn modify_replication_group_sends_token_strategy_and_apply_immediately() {
    let rotate = mock!(Ec::modify_replication_group)
        .match_requests(|r| {
            r.replication_group_id() == Some("paperwurks-prod")
                && r.auth_token() == Some(TOKEN)
                && r.auth_token_update_strategy() == Some(&AuthTokenUpdateStrategyType::Rotate)
                && r.apply_immediately() == Some(true)
        })
        .then_output(|| {
            ModifyReplicationGroupOutput::builder()
                .replication_group(group("modifying", Some(AuthTokenUpdateStatus::Rotating)))
                .build()
        });
    let plane = plane(&[&rotate]);
    let auth = plane
        .modify_auth_token("paperwurks-prod", Some(&token()), AuthTokenStrategy::Rotate)
        .await
        .expect("rotate");
    assert_eq!(auth.status, "modifying");
    assert_eq!(auth.pending_auth_token_status.as_deref(), Some("ROTATING"));
    assert!(!auth.settled());
    assert_eq!(rotate.num_calls(), 1);

    let set = mock!(Ec::modify_replication_group)
        .match_requests(|r| {
            r.auth_token_update_strategy() == Some(&AuthTokenUpdateStrategyType::Set)
                && r.auth_token() == Some(TOKEN)
        })
        .then_output(|| {
            ModifyReplicationGroupOutput::builder()
                .replication_group(group("modifying", Some(AuthTokenUpdateStatus::Setting)))
                .build()
        });
    let describe = mock!(Ec::describe_replication_groups)
        .match_requests(|r| r.replication_group_id() == Some("paperwurks-prod"))
        .then_output(|| {
            DescribeReplicationGroupsOutput::builder()
                .replication_groups(group("available", None))
                .build()
        });
    let plane = crate::aws_auth::plane(&[&set, &describe]);
    let auth = plane
        .modify_auth_token("paperwurks-prod", Some(&token()), AuthTokenStrategy::Set)
        .await
        .expect("set");
    assert_eq!(auth.pending_auth_token_status.as_deref(), Some("SETTING"));
    let now = plane
        .replication_group_auth("paperwurks-prod")
        .await
        .expect("describe");
    assert!(now.settled() && now.auth_token_enabled && now.transit_encryption);
}

#[tokio::test]
async fn modify_faults_are_classified_and_never_echo_the_token() {
    let bad = mock!(Ec::modify_replication_group).then_error(|| {
        ModifyReplicationGroupError::InvalidParameterValueException(
            InvalidParameterValueException::builder()
                .message(format!("Invalid AuthToken provided: {TOKEN}"))
                .build(),
        )
    });
    let err = plane(&[&bad])
        .modify_auth_token("paperwurks-prod", Some(&token()), AuthTokenStrategy::Rotate)
        .await
        .expect_err("invalid token");
    let text = err.to_string();
    assert!(
        matches!(err, ControlPlaneError::InvalidState { .. }),
        "{err:?}"
    );
    assert!(text.contains("InvalidParameterValue"), "{text}");
    assert!(!text.contains(TOKEN), "{text}");
    assert!(!format!("{err:?}").contains(TOKEN));

    let busy = mock!(Ec::modify_replication_group).then_error(|| {
        ModifyReplicationGroupError::InvalidReplicationGroupStateFault(
            InvalidReplicationGroupStateFault::builder()
                .message("Replication group must be in available state to modify.")
                .build(),
        )
    });
    let err = plane(&[&busy])
        .modify_auth_token("paperwurks-prod", Some(&token()), AuthTokenStrategy::Rotate)
        .await
        .expect_err("busy");
    assert!(
        err.to_string().contains("InvalidReplicationGroupState"),
        "{err}"
    );
}

#[tokio::test]
async fn modify_user_sets_passwords_and_describe_users_reads_them() {
    let modify = mock!(Ec::modify_user)
        .match_requests(|r| r.user_id() == Some("storefront-app") && r.passwords() == [OLD, TOKEN])
        .then_output(|| {
            ModifyUserOutput::builder()
                .user_id("storefront-app")
                .user_name("storefront-app")
                .status("modifying")
                .authentication(
                    Authentication::builder()
                        .r#type(AuthenticationType::Password)
                        .password_count(2)
                        .build(),
                )
                .build()
        });
    let describe = mock!(Ec::describe_users)
        .match_requests(|r| r.user_id() == Some("storefront-app"))
        .then_output(|| {
            DescribeUsersOutput::builder()
                .users(
                    User::builder()
                        .user_id("storefront-app")
                        .user_name("storefront-app")
                        .status("active")
                        .authentication(
                            Authentication::builder()
                                .r#type(AuthenticationType::Password)
                                .password_count(2)
                                .build(),
                        )
                        .build(),
                )
                .build()
        });
    let plane = plane(&[&modify, &describe]);
    let u = plane
        .modify_user_passwords(
            "storefront-app",
            &[SecretString::from(OLD.to_string()), token()],
        )
        .await
        .expect("modify user");
    assert_eq!((u.status.as_str(), u.password_count), ("modifying", 2));
    assert_eq!(u.authentication_type, "password");
    let u = plane
        .describe_user("storefront-app")
        .await
        .expect("describe");
    assert_eq!(u.status, "active");

    let missing = mock!(Ec::describe_users)
        .then_error(|| DescribeUsersError::UserNotFoundFault(UserNotFoundFault::builder().build()));
    let err = crate::aws_auth::plane(&[&missing])
        .describe_user("nobody")
        .await
        .expect_err("missing");
    assert_eq!(err.to_string(), "user nobody not found");

    let busy = mock!(Ec::modify_user).then_error(|| {
        ModifyUserError::InvalidUserStateFault(
            InvalidUserStateFault::builder()
                .message("User is not in active state")
                .build(),
        )
    });
    let err = crate::aws_auth::plane(&[&busy])
        .modify_user_passwords("storefront-app", &[token()])
        .await
        .expect_err("busy");
    assert!(err.to_string().contains("InvalidUserState"), "{err}");
    assert!(!err.to_string().contains(TOKEN));
}

#[tokio::test]
async fn the_token_never_reaches_the_log_at_trace_level() {
    let rotate = mock!(Ec::modify_replication_group).then_output(|| {
        ModifyReplicationGroupOutput::builder()
            .replication_group(group("modifying", Some(AuthTokenUpdateStatus::Rotating)))
            .build()
    });
    let user = mock!(Ec::modify_user).then_output(|| ModifyUserOutput::builder().build());
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let mut filter = tracing_subscriber::EnvFilter::new("trace");
    for clamp in cachedeck::aws::SDK_LOG_CLAMPS {
        filter = filter.add_directive(clamp.parse().expect("directive"));
    }
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_env_filter(filter)
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    tracing::trace!(target: "cachedeck::test", "trace is on");
    let plane = plane(&[&rotate, &user]);
    plane
        .modify_auth_token("paperwurks-prod", Some(&token()), AuthTokenStrategy::Rotate)
        .await
        .expect("rotate");
    plane
        .modify_user_passwords("storefront-app", &[token()])
        .await
        .expect("modify user");
    drop(guard);
    let text = String::from_utf8(buffer.0.lock().expect("lock").clone()).expect("utf-8");
    assert!(text.contains("trace is on"), "{text}");
    assert!(!text.contains(TOKEN), "the token is in the log:\n{text}");
}
