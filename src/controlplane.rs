//! The control-plane trait: everything cachedeck asks of AWS (or of the sandbox standing in
//! for it). Two real implementations exist: `aws::AwsControlPlane` and
//! `sandbox::SandboxControlPlane`. Valkey data-plane traffic never goes through here.

use crate::domain::{Cache, Environment};
use async_trait::async_trait;
use secrecy::SecretString;
use serde::Serialize;
use std::time::Duration;
use time::OffsetDateTime;

/// The default deadline of one control-plane call (one SDK operation, all pages included).
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a control-plane call failed, classified so that each kind reads as one clear line.
///
/// Texts are lowercase fragments that read after "failed to …: ". They never contain a
/// secret: SDK inputs (which print auth tokens in `Debug`) are never formatted into them.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ControlPlaneError {
    /// Credentials are missing, expired (SSO) or unusable.
    #[error("no usable AWS credentials ({detail}); {hint}")]
    Credentials { detail: String, hint: String },
    /// The caller is not allowed to perform the operation.
    #[error("access denied to {operation} ({detail}); grant it in IAM or use another profile")]
    AccessDenied { operation: String, detail: String },
    /// AWS throttled the caller even after retries.
    #[error("{operation} was throttled by AWS; retry in a minute or lower the poll rate")]
    Throttled { operation: String },
    /// The call did not finish before its deadline.
    #[error("{operation} timed out after {after:?}; check network access to the endpoint")]
    Timeout { operation: String, after: Duration },
    /// The named thing does not exist.
    #[error("{what} not found")]
    NotFound { what: String },
    /// The thing already exists (e.g. a lock parameter created with Overwrite=false).
    #[error("{what} already exists")]
    AlreadyExists { what: String },
    /// The operation does not apply to this kind of cache; `why` says why in words.
    #[error("{operation} is not available for {target}: {why}")]
    Unsupported {
        operation: String,
        target: String,
        why: String,
    },
    /// The target is in a state that does not allow the operation.
    #[error("{operation} refused: {detail}")]
    InvalidState { operation: String, detail: String },
    /// An AWS quota (e.g. TestFailover's 15 node groups per 24 h) is used up.
    #[error("{operation} refused: quota exceeded ({detail})")]
    QuotaExceeded { operation: String, detail: String },
    /// The endpoint could not be reached at all.
    #[error("cannot reach {endpoint} ({detail}); check the region, endpoint_url and network")]
    Unreachable { endpoint: String, detail: String },
    /// Anything else, with the service's own code and message.
    #[error("{operation} failed: {detail}")]
    Service { operation: String, detail: String },
}

/// What a discovery pass found: the caches, and problems that did not stop it.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    pub caches: Vec<Cache>,
    /// One line each, e.g. "ssm /storefront-dev/redis/port: not found".
    pub warnings: Vec<String>,
}

/// The type of an SSM-style parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ParameterType {
    String,
    SecureString,
    StringList,
}

/// A parameter value; `SecureString` values stay wrapped so they cannot be printed by mistake.
#[derive(Debug, Clone)]
pub enum ParameterValue {
    Plain(String),
    Secret(SecretString),
}

impl ParameterValue {
    /// The value for use (never for display).
    pub fn expose(&self) -> &str {
        use secrecy::ExposeSecret;
        match self {
            ParameterValue::Plain(v) => v,
            ParameterValue::Secret(s) => s.expose_secret(),
        }
    }
}

/// A parameter as read from the store.
#[derive(Debug, Clone)]
pub struct Parameter {
    pub name: String,
    pub kind: ParameterType,
    pub value: ParameterValue,
    pub version: i64,
    pub last_modified: Option<OffsetDateTime>,
}

/// A write to the parameter store.
#[derive(Debug, Clone)]
pub struct PutParameter {
    pub name: String,
    pub kind: ParameterType,
    pub value: ParameterValue,
    /// With `false`, an existing parameter makes the call fail with `AlreadyExists`: the
    /// primitive behind cross-host locks.
    pub overwrite: bool,
    pub description: Option<String>,
}

/// An ElastiCache-style event (DescribeEvents) or its sandbox equivalent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CacheEvent {
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// The replication group, cache cluster or serverless cache the event is about.
    pub source: String,
    pub source_type: String,
    pub message: String,
}

/// Which events to fetch.
#[derive(Debug, Clone)]
pub struct EventQuery {
    /// Only events about this source (replication group / cluster id); `None` for all.
    pub source: Option<String>,
    /// Events after this time (DescribeEvents allows at most 14 days back).
    pub since: OffsetDateTime,
}

/// Everything cachedeck asks of the control plane of one environment.
///
/// Implementations put a deadline on every call and classify failures into
/// [`ControlPlaneError`]. They are cheap to share (`Arc<dyn ControlPlane>`).
#[async_trait]
pub trait ControlPlane: Send + Sync {
    /// The environment this control plane answers for.
    fn environment(&self) -> &Environment;

    /// Finds every cache of the environment: replication groups, serverless caches, plain
    /// cache clusters, ECS services and SSM-named endpoints, as configured.
    async fn discover(&self) -> Result<Discovery, ControlPlaneError>;

    /// Reads one parameter; `Ok(None)` when it does not exist.
    async fn get_parameter(&self, name: &str) -> Result<Option<Parameter>, ControlPlaneError>;

    /// Reads every parameter under a path, recursively.
    async fn get_parameters_by_path(&self, path: &str)
    -> Result<Vec<Parameter>, ControlPlaneError>;

    /// Writes a parameter; returns its new version.
    async fn put_parameter(&self, put: PutParameter) -> Result<i64, ControlPlaneError>;

    /// Deletes a parameter; deleting one that does not exist is `NotFound`.
    async fn delete_parameter(&self, name: &str) -> Result<(), ControlPlaneError>;

    /// Recent events, oldest first.
    async fn describe_events(
        &self,
        query: EventQuery,
    ) -> Result<Vec<CacheEvent>, ControlPlaneError>;

    /// Starts a test failover of one node group (shard) of a replication group, as
    /// ElastiCache TestFailover does: one group per call, at most 15 node groups per rolling
    /// 24 h. Serverless caches answer `Unsupported` with the reason.
    async fn test_failover(
        &self,
        replication_group: &str,
        node_group: &str,
    ) -> Result<(), ControlPlaneError>;

    // ---- ECS Exec ----

    /// The tasks of an ECS service (ListTasks + DescribeTasks), for ECS Exec.
    async fn exec_tasks(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<Vec<ExecTask>, ControlPlaneError> {
        let _ = (cluster, service);
        Err(ControlPlaneError::Unsupported {
            operation: "ECS Exec".into(),
            target: self.environment().name.clone(),
            why: "this environment has no ECS control plane".into(),
        })
    }

    /// ECS ExecuteCommand: a Session Manager session into one container of a task.
    async fn execute_command(&self, req: ExecCommand) -> Result<ExecStarted, ControlPlaneError> {
        let _ = req;
        Err(ControlPlaneError::Unsupported {
            operation: "ExecuteCommand".into(),
            target: self.environment().name.clone(),
            why: "this environment has no ECS control plane".into(),
        })
    }

    /// Where data keys come from when a cluster encrypts exec sessions with KMS.
    fn exec_data_keys(&self) -> Option<std::sync::Arc<dyn crate::ecsexec::crypto::DataKeys>> {
        None
    }
}

// ---- ECS Exec -------------------------------------------------------------------------

/// A running task as ECS Exec sees it (DescribeTasks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecTask {
    pub cluster: String,
    pub task_arn: String,
    /// The last part of the ARN.
    pub task_id: String,
    pub last_status: String,
    /// Whether the task was started with `enableExecuteCommand`.
    pub enable_execute_command: bool,
    pub launch_type: Option<String>,
    pub platform_version: Option<String>,
    pub task_definition_arn: String,
    pub containers: Vec<ExecContainer>,
}

/// A container of an [`ExecTask`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecContainer {
    pub name: String,
    pub runtime_id: Option<String>,
    /// `lastStatus` of its `ExecuteCommandAgent` managed agent (`RUNNING` when usable).
    pub exec_agent: Option<String>,
}

/// One ExecuteCommand call (always `interactive`, the only mode ECS offers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecCommand {
    pub cluster: String,
    pub task: String,
    pub container: Option<String>,
    /// Recorded by CloudTrail and session logs: never put a secret here.
    pub command: String,
}

/// What ExecuteCommand returned, with the target the encryption context names.
#[derive(Debug, Clone)]
pub struct ExecStarted {
    pub task_arn: String,
    pub container_name: String,
    pub session: crate::ecsexec::client::SessionInfo,
}

/// Runs `fut` with a deadline, turning expiry into [`ControlPlaneError::Timeout`].
pub async fn with_timeout<T>(
    operation: &str,
    after: Duration,
    fut: impl std::future::Future<Output = Result<T, ControlPlaneError>>,
) -> Result<T, ControlPlaneError> {
    match tokio::time::timeout(after, fut).await {
        Ok(result) => result,
        Err(_) => Err(ControlPlaneError::Timeout {
            operation: operation.to_string(),
            after,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn with_timeout_reports_the_operation_and_deadline() {
        let slow = async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<_, ControlPlaneError>(())
        };
        let err = with_timeout("DescribeReplicationGroups", Duration::from_millis(20), slow)
            .await
            .expect_err("must time out");
        assert_eq!(
            err.to_string(),
            "DescribeReplicationGroups timed out after 20ms; check network access to the endpoint"
        );
    }

    #[test]
    fn secret_parameter_values_do_not_debug_print() {
        let v = ParameterValue::Secret(SecretString::from("hunter2-token-value"));
        assert!(!format!("{v:?}").contains("hunter2"));
        assert_eq!(v.expose(), "hunter2-token-value");
    }
}
