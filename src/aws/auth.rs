//! Authentication changes through ElastiCache: ModifyReplicationGroup with `AuthToken` /
//! `AuthTokenUpdateStrategy` / `ApplyImmediately`, DescribeReplicationGroups for the group's
//! auth state, ModifyUser `Passwords` and DescribeUsers.
//!
//! The request builders and inputs hold the token and print it in `Debug`: none is ever
//! formatted, and no error text here quotes AWS's message for a rejected value (it could
//! echo what was sent).

use super::AwsControlPlane;
use super::errors::one_line;
use crate::controlplane::{
    AuthTokenStrategy, ControlPlaneError, GroupAuth, UserAuth, with_timeout,
};
use aws_sdk_elasticache::operation::describe_replication_groups::DescribeReplicationGroupsError;
use aws_sdk_elasticache::operation::describe_users::DescribeUsersError;
use aws_sdk_elasticache::operation::modify_replication_group::ModifyReplicationGroupError;
use aws_sdk_elasticache::operation::modify_user::ModifyUserError;
use aws_sdk_elasticache::types::{AuthTokenUpdateStrategyType, ReplicationGroup, User};
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;

fn state(operation: &str, code: &str, message: Option<&str>) -> ControlPlaneError {
    let message = message.map(one_line).unwrap_or_default();
    ControlPlaneError::InvalidState {
        operation: operation.into(),
        detail: if message.is_empty() {
            code.to_string()
        } else {
            format!("{code}: {message}")
        },
    }
}

/// A rejected value: AWS's message is not quoted, as it may echo the token.
fn bad_value(operation: &str, code: &str, what: &str) -> ControlPlaneError {
    ControlPlaneError::InvalidState {
        operation: operation.into(),
        detail: format!("{code}: {what}"),
    }
}

fn time_of(t: Option<&aws_smithy_types::DateTime>) -> Option<OffsetDateTime> {
    let t = t?;
    OffsetDateTime::from_unix_timestamp(t.secs()).ok()
}

/// The auth state of a replication group as DescribeReplicationGroups reports it.
pub fn group_auth(g: &ReplicationGroup) -> GroupAuth {
    GroupAuth {
        status: g.status().unwrap_or("unknown").to_string(),
        auth_token_enabled: g.auth_token_enabled().unwrap_or(false),
        transit_encryption: g.transit_encryption_enabled().unwrap_or(false),
        pending_auth_token_status: g
            .pending_modified_values()
            .and_then(|p| p.auth_token_status())
            .map(|s| s.as_str().to_string()),
        auth_token_last_modified: time_of(g.auth_token_last_modified_date()),
        user_groups: g.user_group_ids().to_vec(),
    }
}

/// One RBAC user as DescribeUsers reports it.
pub fn user_auth(u: &User) -> UserAuth {
    UserAuth {
        user_id: u.user_id().unwrap_or_default().to_string(),
        user_name: u.user_name().unwrap_or_default().to_string(),
        status: u.status().unwrap_or("unknown").to_string(),
        authentication_type: u
            .authentication()
            .and_then(|a| a.r#type())
            .map(|t| t.as_str().to_string())
            .unwrap_or_default(),
        password_count: u
            .authentication()
            .and_then(|a| a.password_count())
            .unwrap_or(0),
    }
}

impl AwsControlPlane {
    pub(super) async fn group_auth_state(&self, id: &str) -> Result<GroupAuth, ControlPlaneError> {
        const OP: &str = "DescribeReplicationGroups";
        with_timeout(OP, self.timeout(), async {
            let out = self
                .elasticache
                .describe_replication_groups()
                .replication_group_id(id)
                .send()
                .await
                .map_err(|e| match e.as_service_error() {
                    Some(DescribeReplicationGroupsError::ReplicationGroupNotFoundFault(_)) => {
                        ControlPlaneError::NotFound {
                            what: format!("replication group {id}"),
                        }
                    }
                    _ => self.fail(OP, &e),
                })?;
            out.replication_groups()
                .first()
                .map(group_auth)
                .ok_or_else(|| ControlPlaneError::NotFound {
                    what: format!("replication group {id}"),
                })
        })
        .await
    }

    pub(super) async fn modify_group_token(
        &self,
        id: &str,
        token: Option<&SecretString>,
        strategy: AuthTokenStrategy,
    ) -> Result<GroupAuth, ControlPlaneError> {
        const OP: &str = "ModifyReplicationGroup";
        let strategy = match strategy {
            AuthTokenStrategy::Rotate => AuthTokenUpdateStrategyType::Rotate,
            AuthTokenStrategy::Set => AuthTokenUpdateStrategyType::Set,
            AuthTokenStrategy::Delete => AuthTokenUpdateStrategyType::Delete,
        };
        with_timeout(OP, self.timeout(), async {
            let mut request = self
                .elasticache
                .modify_replication_group()
                .replication_group_id(id)
                .auth_token_update_strategy(strategy)
                .apply_immediately(true);
            if let Some(token) = token {
                request = request.auth_token(token.expose_secret());
            }
            let out = request.send().await.map_err(|e| match e.as_service_error() {
                Some(ModifyReplicationGroupError::InvalidReplicationGroupStateFault(f)) => {
                    state(OP, "InvalidReplicationGroupState", f.message())
                }
                Some(ModifyReplicationGroupError::InvalidCacheClusterStateFault(f)) => {
                    state(OP, "InvalidCacheClusterState", f.message())
                }
                Some(ModifyReplicationGroupError::InvalidParameterValueException(_)) => bad_value(
                    OP,
                    "InvalidParameterValue",
                    "AWS rejected the AUTH token (16–128 printable characters, symbols only !&#$^<>-)",
                ),
                Some(ModifyReplicationGroupError::InvalidParameterCombinationException(_)) => {
                    bad_value(
                        OP,
                        "InvalidParameterCombination",
                        "AWS refused this token change for the group (in-transit encryption is required; SET only after ROTATE; DELETE only when moving to RBAC)",
                    )
                }
                Some(ModifyReplicationGroupError::ReplicationGroupNotFoundFault(_)) => {
                    ControlPlaneError::NotFound {
                        what: format!("replication group {id}"),
                    }
                }
                _ => self.fail(OP, &e),
            })?;
            out.replication_group()
                .map(group_auth)
                .ok_or_else(|| ControlPlaneError::Service {
                    operation: OP.into(),
                    detail: "the answer held no replication group".into(),
                })
        })
        .await
    }

    pub(super) async fn user_state(&self, user_id: &str) -> Result<UserAuth, ControlPlaneError> {
        const OP: &str = "DescribeUsers";
        with_timeout(OP, self.timeout(), async {
            let out = self
                .elasticache
                .describe_users()
                .user_id(user_id)
                .send()
                .await
                .map_err(|e| match e.as_service_error() {
                    Some(DescribeUsersError::UserNotFoundFault(_)) => ControlPlaneError::NotFound {
                        what: format!("user {user_id}"),
                    },
                    _ => self.fail(OP, &e),
                })?;
            out.users()
                .first()
                .map(user_auth)
                .ok_or_else(|| ControlPlaneError::NotFound {
                    what: format!("user {user_id}"),
                })
        })
        .await
    }

    pub(super) async fn modify_user_secrets(
        &self,
        user_id: &str,
        passwords: &[SecretString],
    ) -> Result<UserAuth, ControlPlaneError> {
        const OP: &str = "ModifyUser";
        with_timeout(OP, self.timeout(), async {
            let out = self
                .elasticache
                .modify_user()
                .user_id(user_id)
                .set_passwords(Some(
                    passwords
                        .iter()
                        .map(|p| p.expose_secret().to_string())
                        .collect(),
                ))
                .send()
                .await
                .map_err(|e| match e.as_service_error() {
                    Some(ModifyUserError::InvalidUserStateFault(f)) => {
                        state(OP, "InvalidUserState", f.message())
                    }
                    Some(ModifyUserError::InvalidParameterValueException(_)) => bad_value(
                        OP,
                        "InvalidParameterValue",
                        "AWS rejected a password (16–128 printable characters without , \" / @; at most two)",
                    ),
                    Some(ModifyUserError::InvalidParameterCombinationException(_)) => bad_value(
                        OP,
                        "InvalidParameterCombination",
                        "AWS refused this combination of user settings",
                    ),
                    Some(ModifyUserError::UserNotFoundFault(_)) => ControlPlaneError::NotFound {
                        what: format!("user {user_id}"),
                    },
                    _ => self.fail(OP, &e),
                })?;
            Ok(UserAuth {
                user_id: out.user_id().unwrap_or(user_id).to_string(),
                user_name: out.user_name().unwrap_or_default().to_string(),
                status: out.status().unwrap_or("unknown").to_string(),
                authentication_type: out
                    .authentication()
                    .and_then(|a| a.r#type())
                    .map(|t| t.as_str().to_string())
                    .unwrap_or_default(),
                password_count: out
                    .authentication()
                    .and_then(|a| a.password_count())
                    .unwrap_or(0),
            })
        })
        .await
    }
}
