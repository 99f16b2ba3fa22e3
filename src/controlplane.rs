//! The control-plane trait: everything cachedeck asks of AWS (or of the sandbox standing in
//! for it). Two real implementations exist: `aws::AwsControlPlane` and
//! `sandbox::SandboxControlPlane`. Valkey data-plane traffic never goes through here.

pub mod names;
pub mod param_store;

use crate::domain::{Account, Cache, Environment};
use async_trait::async_trait;
use secrecy::SecretString;
use serde::Serialize;
use std::time::Duration;
use time::OffsetDateTime;

pub mod events;

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

    // --- Which account an environment reaches ---
    /// The environment names an AWS profile that the AWS config files do not define.
    #[error("profile `{profile}` not found in {files}; known: {known}")]
    UnknownProfile {
        profile: String,
        files: String,
        known: String,
    },
    /// The credentials resolve to another account than the one the environment is pinned
    /// to; every call of the environment is refused.
    #[error(
        "{credentials} now resolves to account {actual}, this environment is pinned to {pinned}; fix the profile or `account_id`"
    )]
    AccountMismatch {
        credentials: String,
        actual: String,
        pinned: String,
    },
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

/// Which version of a parameter to read: SSM's `name:version` / `name:label` selectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParameterSelector {
    Version(i64),
    Label(String),
}

impl ParameterSelector {
    /// The selector as SSM writes it after the name (`3`, `cachedeck-before-x`).
    pub fn suffix(&self) -> String {
        match self {
            ParameterSelector::Version(v) => v.to_string(),
            ParameterSelector::Label(l) => l.clone(),
        }
    }
}

/// Why SSM would refuse a label (LabelParameterVersion's `InvalidLabels`): at most 100
/// characters of letters, digits, `.`, `-`, `_`, not starting with a digit, `aws` or `ssm`
/// (any case). `None` when it is valid.
pub fn label_problem(label: &str) -> Option<&'static str> {
    let lower = label.to_ascii_lowercase();
    if label.is_empty() || label.len() > 100 {
        Some("a label has 1 to 100 characters")
    } else if !label
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        Some("a label has only letters, digits, `.`, `-` and `_`")
    } else if label.starts_with(|c: char| c.is_ascii_digit())
        || lower.starts_with("aws")
        || lower.starts_with("ssm")
    {
        Some("a label cannot begin with a digit, `aws` or `ssm`")
    } else {
        None
    }
}

/// One version of a parameter as GetParameterHistory lists it: its number, time and labels.
/// The value is left out on purpose: history is read for versions and labels only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParameterVersion {
    pub version: i64,
    pub labels: Vec<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_modified: Option<OffsetDateTime>,
}

/// What LabelParameterVersion answered: the version labelled, and the labels it refused
/// for breaking the label rules (those are not attached; AWS does not fail the call).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabelOutcome {
    pub version: i64,
    pub invalid_labels: Vec<String>,
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

/// The kind of thing an event is about (DescribeEvents' `SourceType`). A replication
/// group's node events ("Recovering cache nodes …") come as `CacheCluster` events of its
/// member clusters, not as events of the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventSourceType {
    ReplicationGroup,
    CacheCluster,
    ServerlessCache,
}

impl EventSourceType {
    /// The AWS spelling (`replication-group`, `cache-cluster`, `serverless-cache`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventSourceType::ReplicationGroup => "replication-group",
            EventSourceType::CacheCluster => "cache-cluster",
            EventSourceType::ServerlessCache => "serverless-cache",
        }
    }
}

/// Which events to fetch.
#[derive(Debug, Clone)]
pub struct EventQuery {
    /// Only events about this source (replication group / cluster id); `None` for all.
    /// AWS wants `source_type` whenever a source is named.
    pub source: Option<String>,
    /// Only events about this type of source; `None` for every type.
    pub source_type: Option<EventSourceType>,
    /// Events after this time (DescribeEvents allows at most 14 days back).
    pub since: OffsetDateTime,
}

impl EventQuery {
    /// Every event since `since`.
    pub fn all(since: OffsetDateTime) -> EventQuery {
        EventQuery {
            source: None,
            source_type: None,
            since,
        }
    }

    /// Events about exactly `source` of type `kind`.
    pub fn of(source: &str, kind: EventSourceType, since: OffsetDateTime) -> EventQuery {
        EventQuery {
            source: Some(source.to_string()),
            source_type: Some(kind),
            since,
        }
    }

    /// Whether `e` is one this query asks for (exact source and type; for stores that
    /// filter on the client side, as the sandbox does).
    pub fn matches(&self, e: &CacheEvent) -> bool {
        e.time >= self.since
            && self.source.as_deref().is_none_or(|s| e.source == s)
            && self.source_type.is_none_or(|t| e.source_type == t.as_str())
    }
}

// ---- Snapshots, restores and ECS deployments -------------------------------------------

/// A snapshot as DescribeSnapshots / DescribeServerlessCacheSnapshots return it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    pub name: String,
    /// `creating`, `available`, `restoring`, `copying`, `deleting`, `failed`.
    pub status: String,
    /// `manual` or `automated`.
    pub source: String,
    /// The replication group (or serverless cache) it was taken of.
    pub cache: Option<String>,
    /// The cache cluster (node) it was taken on, when taken at node level.
    pub cache_cluster_id: Option<String>,
    pub serverless: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub created: Option<OffsetDateTime>,
    /// Bytes, where AWS says it (serverless: BytesUsedForCache; node snapshots: CacheSize).
    pub size_bytes: Option<u64>,
    /// NumNodeGroups: the shard count a restore must use.
    pub shard_count: Option<u32>,
    pub engine: Option<String>,
    pub engine_version: Option<String>,
    pub node_type: Option<String>,
    pub arn: Option<String>,
}

/// What CreateSnapshot / CreateServerlessCacheSnapshot is asked to snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotTarget {
    /// `CacheClusterId`: one node of a cluster-mode-off group (a replica, ideally).
    Node(String),
    /// `ReplicationGroupId`: the only level AWS allows in cluster mode.
    Group(String),
    /// CreateServerlessCacheSnapshot of this serverless cache.
    Serverless(String),
}

/// Which snapshots to list.
#[derive(Debug, Clone, Default)]
pub struct SnapshotQuery {
    /// Only snapshots of this replication group / serverless cache.
    pub cache: Option<String>,
    /// Only the snapshot of this name.
    pub name: Option<String>,
    /// Serverless snapshots (DescribeServerlessCacheSnapshots) instead of node ones.
    pub serverless: bool,
}

/// A new cache built from a snapshot: CreateReplicationGroup with `SnapshotName`, or
/// CreateServerlessCache with `SnapshotArnsToRestore`.
#[derive(Clone)]
pub struct RestoreRequest {
    /// The new replication group / serverless cache id.
    pub new_id: String,
    /// The cache the snapshot was taken of (subnet group, security groups, TLS copied from it).
    pub source: String,
    pub snapshot: String,
    /// The snapshot's ARN (serverless restores name it by ARN).
    pub snapshot_arn: Option<String>,
    pub serverless: bool,
    pub description: String,
    pub engine: Option<String>,
    pub engine_version: Option<String>,
    pub node_type: Option<String>,
    pub shards: Option<u32>,
    pub replicas_per_shard: Option<u32>,
    pub tls: bool,
    /// The AUTH token of the new group (never printed; `Debug` hides it).
    pub auth_token: Option<SecretString>,
}

impl std::fmt::Debug for RestoreRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestoreRequest")
            .field("new_id", &self.new_id)
            .field("source", &self.source)
            .field("snapshot", &self.snapshot)
            .field("serverless", &self.serverless)
            .field("shards", &self.shards)
            .field("replicas_per_shard", &self.replicas_per_shard)
            .field(
                "auth_token",
                &self.auth_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// One deployment of an ECS service (DescribeServices `deployments`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EcsDeployment {
    pub id: String,
    /// `PRIMARY`, `ACTIVE` or `INACTIVE`.
    pub status: String,
    /// `IN_PROGRESS`, `COMPLETED` or `FAILED`.
    pub rollout_state: Option<String>,
    pub rollout_state_reason: Option<String>,
    pub desired: i32,
    pub running: i32,
    pub pending: i32,
    #[serde(with = "time::serde::rfc3339::option")]
    pub created: Option<OffsetDateTime>,
}

/// An ECS service's deployments and events, newest event first (as DescribeServices).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct EcsServiceState {
    pub status: String,
    pub desired: i32,
    pub running: i32,
    pub deployments: Vec<EcsDeployment>,
    /// Service event messages, newest first.
    pub events: Vec<String>,
}

impl EcsServiceState {
    /// The PRIMARY deployment, the one a new deployment creates.
    pub fn primary(&self) -> Option<&EcsDeployment> {
        self.deployments.iter().find(|d| d.status == "PRIMARY")
    }
}

// ---- Auth rotation: AUTH tokens (ModifyReplicationGroup) and RBAC users (ModifyUser) ----

/// `AuthTokenUpdateStrategy` of ModifyReplicationGroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum AuthTokenStrategy {
    /// Adds the new token; the group accepts the previous one and the new one (at most two).
    Rotate,
    /// Keeps only the token sent (allowed after a ROTATE).
    Set,
    /// Removes the token (allowed only when moving the group to RBAC user groups).
    Delete,
}

impl AuthTokenStrategy {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthTokenStrategy::Rotate => "ROTATE",
            AuthTokenStrategy::Set => "SET",
            AuthTokenStrategy::Delete => "DELETE",
        }
    }
}

/// What DescribeReplicationGroups says about a group's authentication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupAuth {
    /// `available`, `modifying`, …
    pub status: String,
    pub auth_token_enabled: bool,
    pub transit_encryption: bool,
    /// `PendingModifiedValues.AuthTokenStatus`: `SETTING` or `ROTATING` while a change runs.
    pub pending_auth_token_status: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub auth_token_last_modified: Option<OffsetDateTime>,
    /// RBAC user groups attached to the group.
    pub user_groups: Vec<String>,
}

impl GroupAuth {
    /// `available` with no auth-token change pending.
    pub fn settled(&self) -> bool {
        self.status == "available" && self.pending_auth_token_status.is_none()
    }
}

/// An ECS service that uses a cache, and how its task definition points at it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsumerService {
    pub cluster: String,
    pub service: String,
    /// Container variables naming the cache (`SIDEKIQ_REDIS_URL`, `REDIS_PASSWORD`, …).
    pub variables: Vec<String>,
    /// The container whose variables name the cache (the one to exec into).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Running tasks (DescribeServices `runningCount`), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running: Option<i32>,
    /// `task-definition` (found by its variables) or `config` (named in the config file).
    pub found_by: String,
}

/// An ECS service with its task definition's containers (DescribeServices +
/// DescribeTaskDefinition), as consumer discovery reads it.
#[derive(Clone, PartialEq, Eq)]
pub struct EcsServiceDefinition {
    pub cluster: String,
    pub service: String,
    pub task_definition: String,
    pub running: i32,
    pub containers: Vec<ContainerDefinition>,
}

/// One container definition: `environment` (name, value) and `secrets` (name, valueFrom).
/// Values may hold credentials (a URL with a password): `Debug` prints names only.
#[derive(Clone, PartialEq, Eq)]
pub struct ContainerDefinition {
    pub name: String,
    pub environment: Vec<(String, String)>,
    pub secrets: Vec<(String, String)>,
}

impl std::fmt::Debug for ContainerDefinition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = |v: &[(String, String)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        f.debug_struct("ContainerDefinition")
            .field("name", &self.name)
            .field("environment", &names(&self.environment))
            .field("secrets", &names(&self.secrets))
            .finish()
    }
}

impl std::fmt::Debug for EcsServiceDefinition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EcsServiceDefinition")
            .field("cluster", &self.cluster)
            .field("service", &self.service)
            .field("task_definition", &self.task_definition)
            .field("running", &self.running)
            .field("containers", &self.containers)
            .finish()
    }
}

/// What DescribeUsers says about one RBAC user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserAuth {
    pub user_id: String,
    pub user_name: String,
    /// `active`, `modifying`, …
    pub status: String,
    /// `password`, `no-password`, `iam`.
    pub authentication_type: String,
    pub password_count: i32,
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

    /// LabelParameterVersion: attaches `labels` to `version` (the newest when `None`),
    /// moving any of them from the version that had it. At most 10 labels per version
    /// (`QuotaExceeded`); labels breaking the naming rules come back in `invalid_labels`.
    async fn label_parameter_version(
        &self,
        name: &str,
        version: Option<i64>,
        labels: &[String],
    ) -> Result<LabelOutcome, ControlPlaneError> {
        let _ = (version, labels);
        Err(unsupported_target("LabelParameterVersion", name))
    }

    /// GetParameterHistory: every version still kept, oldest first, with its labels.
    async fn get_parameter_history(
        &self,
        name: &str,
    ) -> Result<Vec<ParameterVersion>, ControlPlaneError> {
        Err(unsupported_target("GetParameterHistory", name))
    }

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

    // --- Accounts ---

    /// The account and caller the environment's credentials resolve to (STS
    /// GetCallerIdentity; the sandbox answers its fixed account). Planes without an
    /// account answer `Unsupported`.
    async fn caller_identity(&self) -> Result<Account, ControlPlaneError> {
        Err(ControlPlaneError::Unsupported {
            operation: "GetCallerIdentity".to_string(),
            target: format!("environment `{}`", self.environment().name),
            why: "it has no AWS account".to_string(),
        })
    }

    // ---- Parameter versions and labels (cutover / rollback) ------------------------------

    /// GetParameter of one version (`name:3`) or of the version a label is on
    /// (`name:label`); `Ok(None)` when the parameter, the version or the label does not exist.
    async fn get_parameter_at(
        &self,
        _name: &str,
        _at: &ParameterSelector,
    ) -> Result<Option<Parameter>, ControlPlaneError> {
        Err(unsupported("GetParameter (selector)", self.environment()))
    }

    // ---- Snapshots, restores and ECS deployments ----------------------------------------

    /// CreateSnapshot (node or group level) or CreateServerlessCacheSnapshot; returns the
    /// snapshot in its first state (`creating`).
    async fn create_snapshot(
        &self,
        _name: &str,
        _target: SnapshotTarget,
    ) -> Result<Snapshot, ControlPlaneError> {
        Err(unsupported("CreateSnapshot", self.environment()))
    }

    /// DescribeSnapshots / DescribeServerlessCacheSnapshots, all pages.
    async fn describe_snapshots(
        &self,
        _query: SnapshotQuery,
    ) -> Result<Vec<Snapshot>, ControlPlaneError> {
        Err(unsupported("DescribeSnapshots", self.environment()))
    }

    /// DeleteSnapshot / DeleteServerlessCacheSnapshot.
    async fn delete_snapshot(
        &self,
        _name: &str,
        _serverless: bool,
    ) -> Result<(), ControlPlaneError> {
        Err(unsupported("DeleteSnapshot", self.environment()))
    }

    /// CreateReplicationGroup with `SnapshotName` / CreateServerlessCache with
    /// `SnapshotArnsToRestore`: a new cache from a snapshot, never over the source.
    async fn restore_snapshot(&self, _request: RestoreRequest) -> Result<(), ControlPlaneError> {
        Err(unsupported("CreateReplicationGroup", self.environment()))
    }

    /// ECS UpdateService with `forceNewDeployment`.
    async fn force_new_deployment(
        &self,
        _cluster: &str,
        _service: &str,
    ) -> Result<(), ControlPlaneError> {
        Err(unsupported("UpdateService", self.environment()))
    }

    /// ECS DescribeServices: the service's deployments and events.
    async fn describe_service(
        &self,
        _cluster: &str,
        _service: &str,
    ) -> Result<EcsServiceState, ControlPlaneError> {
        Err(unsupported("DescribeServices", self.environment()))
    }

    /// ECS StopTask (SIGTERM, the stop timeout, then SIGKILL; the service starts a new one).
    async fn stop_task(
        &self,
        _cluster: &str,
        _task: &str,
        _reason: &str,
    ) -> Result<(), ControlPlaneError> {
        Err(unsupported("StopTask", self.environment()))
    }

    // ---- Auth rotation (the auth-rotate runbook) ----

    /// The authentication state of a replication group (DescribeReplicationGroups).
    async fn replication_group_auth(
        &self,
        replication_group: &str,
    ) -> Result<GroupAuth, ControlPlaneError> {
        Err(unsupported_target(
            "DescribeReplicationGroups",
            replication_group,
        ))
    }

    /// ModifyReplicationGroup with `AuthToken`, `AuthTokenUpdateStrategy` and
    /// `ApplyImmediately = true`; `token` is `None` only for DELETE. Returns the group's
    /// state as the call answered it (usually `modifying`).
    async fn modify_auth_token(
        &self,
        replication_group: &str,
        token: Option<&SecretString>,
        strategy: AuthTokenStrategy,
    ) -> Result<GroupAuth, ControlPlaneError> {
        let _ = (token, strategy);
        Err(unsupported_target(
            "ModifyReplicationGroup",
            replication_group,
        ))
    }

    /// The ECS services whose task definitions read this cache's secret or name its
    /// endpoint, and those the config names (the applications to roll after a new secret
    /// is published; where `exec --cache` goes). One implementation for every plane:
    /// [`crate::consumers::discover`] over [`ControlPlane::ecs_service_definitions`].
    async fn consumer_services(
        &self,
        cache: &Cache,
    ) -> Result<Vec<ConsumerService>, ControlPlaneError> {
        crate::consumers::discover(self, cache).await
    }

    /// Every ECS service of the environment with its task definition's containers
    /// (ListClusters, ListServices, DescribeServices, DescribeTaskDefinition).
    async fn ecs_service_definitions(
        &self,
    ) -> Result<Vec<EcsServiceDefinition>, ControlPlaneError> {
        Err(unsupported(
            "ListServices/DescribeTaskDefinition",
            self.environment(),
        ))
    }

    /// Consumers of `cache` named in the config (`[[environments.E.consumers]]`).
    fn configured_consumers(&self, cache: &Cache) -> Vec<ConsumerService> {
        let _ = cache;
        Vec::new()
    }

    /// One RBAC user (DescribeUsers with its id).
    async fn describe_user(&self, user_id: &str) -> Result<UserAuth, ControlPlaneError> {
        Err(unsupported_target("DescribeUsers", user_id))
    }

    /// ModifyUser `Passwords` (one or two): the user's passwords become exactly these.
    async fn modify_user_passwords(
        &self,
        user_id: &str,
        passwords: &[SecretString],
    ) -> Result<UserAuth, ControlPlaneError> {
        let _ = passwords;
        Err(unsupported_target("ModifyUser", user_id))
    }

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

fn unsupported(operation: &str, env: &Environment) -> ControlPlaneError {
    ControlPlaneError::Unsupported {
        operation: operation.into(),
        target: format!("environment {}", env.name),
        why: "this control plane does not implement it".into(),
    }
}

fn unsupported_target(operation: &str, target: &str) -> ControlPlaneError {
    ControlPlaneError::Unsupported {
        operation: operation.into(),
        target: target.into(),
        why: "this control plane does not implement it".into(),
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
