//! `SandboxControlPlane`: the [`ControlPlane`] of a sandbox environment. Discovery reads the
//! state file and asks every node ROLE (so a failover or a killed process shows); parameters
//! and events are files; TestFailover is a real promotion with ElastiCache's events and quota.

use super::client::{self, NodeAuth};
use super::events;
use super::params::ParamStore;
use super::state::{CacheState, State};
use crate::config::{EnvConfig, Settings};
use crate::controlplane::{
    AuthTokenStrategy, CacheEvent, ControlPlane, ControlPlaneError, Discovery, EcsServiceState,
    EventQuery, GroupAuth, Parameter, PutParameter, RestoreRequest, Snapshot, SnapshotQuery,
    SnapshotTarget, UserAuth, with_timeout,
};
use crate::domain::{
    Account, Cache, CacheKind, Credentials, Environment, Node, NodeHealth, NodeRole, RoleSource,
    SecretRef, Shard,
};
use async_trait::async_trait;
use secrecy::SecretString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a node gets to answer ROLE during discovery.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(300);
/// TestFailover's quota: node groups per rolling 24 hours.
pub const FAILOVER_QUOTA: usize = 15;
pub const FAILOVER_DEADLINE: Duration = Duration::from_secs(20);
/// The account every sandbox environment reports, as GetCallerIdentity would: a fixed,
/// obviously fake 12-digit id (the one in the sandbox's ARNs).
pub const SANDBOX_ACCOUNT_ID: &str = "000000000000";

/// The control plane of one sandbox environment.
#[derive(Debug, Clone)]
pub struct SandboxControlPlane {
    pub(super) env: Environment,
    pub(super) dir: PathBuf,
    pub(super) params: ParamStore,
    pub(super) settings: Settings,
}

impl SandboxControlPlane {
    /// The control plane of environment `name` of the sandbox in [`super::sandbox_dir`].
    pub fn open(
        name: &str,
        cfg: &EnvConfig,
        settings: &Settings,
    ) -> Result<Self, ControlPlaneError> {
        Self::open_at(&super::sandbox_dir(), name, cfg, settings)
    }

    /// The same, for the sandbox in `dir`.
    pub fn open_at(
        dir: &Path,
        name: &str,
        cfg: &EnvConfig,
        settings: &Settings,
    ) -> Result<Self, ControlPlaneError> {
        let state = load(dir)?;
        if !state.environments.iter().any(|e| e.name == name) {
            return Err(ControlPlaneError::NotFound {
                what: format!(
                    "sandbox environment `{name}` (it has: {})",
                    state
                        .environments
                        .iter()
                        .map(|e| e.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        Ok(SandboxControlPlane {
            env: cfg.environment(name, "sandbox"),
            dir: dir.to_path_buf(),
            params: ParamStore::new(dir),
            settings: settings.clone(),
        })
    }

    /// The sandbox directory this plane reads.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(super) fn state(&self) -> Result<State, ControlPlaneError> {
        load(&self.dir)
    }

    pub(super) fn find(&self, state: &State, name: &str) -> Result<CacheState, ControlPlaneError> {
        state
            .cache(&self.env.name, name)
            .cloned()
            .ok_or_else(|| ControlPlaneError::NotFound {
                what: format!("replication group {name} in {}", self.env.name),
            })
    }

    /// Builds the domain cache as DescribeReplicationGroups / DescribeCacheClusters (or ECS
    /// DescribeTasks) would describe it. The nodes are asked their role, which AWS knows for
    /// cluster mode disabled groups; what AWS cannot know is not said: a node whose process
    /// is gone is being replaced (`rebooting cache cluster nodes`, health unknown, as the
    /// AWS adapter maps that word) rather than "down", a task whose process is gone is
    /// STOPPED, and the group stays `available`. Liveness is the watch service's to find.
    async fn cache(&self, state: &State, c: &CacheState) -> Cache {
        let auth = NodeAuth::of(c, &self.params);
        // TLS is terminated by the sandbox's daemon, as the bundled valkey-server has none.
        // A cluster-mode group with in-transit encryption is reached node by node through
        // each node's TLS front (the address its nodes announce), as DescribeCacheClusters
        // gives a TLS group's node endpoints; other groups' nodes are plain (their TLS is
        // at the primary/reader endpoints).
        let fronted = c.cluster_mode && c.tls;
        let mut shards = Vec::new();
        for s in &c.shards {
            let probes = s.nodes.iter().map(|n| {
                let auth = auth.clone();
                async move { client::role(n.port, &auth, PROBE_TIMEOUT).await }
            });
            let roles = futures::future::join_all(probes).await;
            let nodes = s
                .nodes
                .iter()
                .zip(roles)
                .map(|(n, role)| {
                    let alive = crate::valkey::server::pid_alive(n.pid);
                    let status = match (alive, c.kind) {
                        (true, CacheKind::EcsService) => "RUNNING",
                        (false, CacheKind::EcsService) => "STOPPED",
                        // Nodes of a cache being created are `creating` until it is built.
                        (_, _) if c.status.is_some() => "creating",
                        (true, _) => "available",
                        (false, _) => "rebooting cache cluster nodes",
                    };
                    let health = match (alive, c.kind) {
                        (true, CacheKind::EcsService) => NodeHealth::Up,
                        (false, CacheKind::EcsService) => NodeHealth::Down("task stopped".into()),
                        _ => crate::aws::map::health(status),
                    };
                    let (role, role_source) = match role {
                        // DescribeReplicationGroups gives CurrentRole only for cluster mode
                        // disabled groups; in cluster mode the roles are learned from the
                        // nodes, as they must be on AWS.
                        Ok(_) if c.cluster_mode => (NodeRole::Unknown, RoleSource::not_reported()),
                        Ok(role) => (role, RoleSource::ControlPlane),
                        Err(reason) => (
                            NodeRole::Unknown,
                            RoleSource::Unknown(format!("the node does not answer: {reason}")),
                        ),
                    };
                    Node {
                        id: n.id.clone(),
                        role,
                        role_source,
                        host: if fronted {
                            super::tls::CLUSTER_FRONT_HOST.into()
                        } else {
                            crate::valkey::server::HOST.into()
                        },
                        port: n.port,
                        availability_zone: Some(n.availability_zone.clone()),
                        status: status.into(),
                        health,
                        tls: fronted,
                    }
                })
                .collect();
            shards.push(Shard {
                id: s.id.clone(),
                slots: s.slots.clone(),
                nodes,
            });
        }
        // A cache whose endpoint the daemon does not serve yet (restored a moment ago) is
        // still `creating`: AWS says `available` only once the endpoint answers.
        let served = match &c.endpoint {
            Some(ep) => matches!(
                tokio::time::timeout(
                    PROBE_TIMEOUT,
                    tokio::net::TcpStream::connect((ep.host.as_str(), ep.port)),
                )
                .await,
                Ok(Ok(_))
            ),
            None => true,
        };
        let status = match c.status.as_deref() {
            Some(status) => status,
            None if served => "available",
            None => "creating",
        };
        let mut notes = c.notes.clone();
        if c.kind == CacheKind::Serverless {
            // DescribeServerlessCaches names no nodes: the cache is its endpoint, as the
            // AWS adapter maps it (the local process behind it stays the sandbox's own).
            if let Some(endpoint) = &c.endpoint {
                shards = vec![Shard {
                    id: "serverless".into(),
                    slots: None,
                    nodes: vec![Node {
                        id: c.name.clone(),
                        role: NodeRole::Primary,
                        role_source: RoleSource::ControlPlane,
                        host: endpoint.host.clone(),
                        port: endpoint.port,
                        availability_zone: None,
                        status: status.into(),
                        health: crate::aws::map::health(status),
                        tls: endpoint.tls,
                    }],
                }];
            }
            notes.push("serverless stand-in: one local node behind the TLS endpoint".into());
        }
        Cache {
            name: c.name.clone(),
            env: c.env.clone(),
            kind: c.kind,
            engine: state.engine.clone(),
            engine_version: state.engine_version.clone(),
            status: status.into(),
            cluster_mode: c.cluster_mode,
            auth: c.auth,
            tls: c.tls,
            endpoint: c.endpoint.clone(),
            endpoints: c.endpoints.clone(),
            shards,
            automatic_failover: c.automatic_failover,
            multi_az: c.automatic_failover,
            arn: Some(format!(
                "arn:aws:elasticache:local:{SANDBOX_ACCOUNT_ID}:{}:{}",
                match c.kind {
                    CacheKind::Serverless => "serverlesscache",
                    _ => "replicationgroup",
                },
                c.name
            )),
            description: Some(c.description.clone()),
            notes,
            credentials: Credentials {
                username: c.username.clone(),
                password: c.password_parameter.clone().map(SecretRef::Ssm),
                url_parameter: c.url_parameter.clone(),
                ca_file: c.tls.then(|| state.ca_file.display().to_string()),
            },
            ecs: c.ecs.clone(),
        }
    }

    pub(super) fn event(
        &self,
        source: &str,
        source_type: &str,
        message: &str,
    ) -> Result<CacheEvent, ControlPlaneError> {
        events::append(&self.dir, &self.env.name, source, source_type, message)
    }
}

/// The state file, or why the sandbox cannot answer.
pub(super) fn load_state(dir: &Path) -> Result<State, ControlPlaneError> {
    load(dir)
}

fn load(dir: &Path) -> Result<State, ControlPlaneError> {
    match State::load(dir) {
        Ok(Some(state)) => Ok(state),
        Ok(None) => Err(ControlPlaneError::Unreachable {
            endpoint: format!("sandbox in {}", dir.display()),
            detail: "the sandbox is down; run `cachedeck sandbox up`".into(),
        }),
        Err(e) => Err(ControlPlaneError::Service {
            operation: "read sandbox state".into(),
            detail: e.to_string(),
        }),
    }
}

#[async_trait]
impl ControlPlane for SandboxControlPlane {
    fn environment(&self) -> &Environment {
        &self.env
    }

    async fn discover(&self) -> Result<Discovery, ControlPlaneError> {
        with_timeout("discover sandbox", self.settings.call_timeout, async {
            let state = self.state()?;
            let mine: Vec<&CacheState> = state
                .caches
                .iter()
                .filter(|c| c.env == self.env.name)
                .collect();
            let caches =
                futures::future::join_all(mine.iter().map(|c| self.cache(&state, c))).await;
            Ok(Discovery {
                caches,
                warnings: Vec::new(),
            })
        })
        .await
    }

    async fn get_parameter(&self, name: &str) -> Result<Option<Parameter>, ControlPlaneError> {
        self.params.get(name)
    }

    async fn get_parameters_by_path(
        &self,
        path: &str,
    ) -> Result<Vec<Parameter>, ControlPlaneError> {
        self.params.by_path(path)
    }

    async fn put_parameter(&self, put: PutParameter) -> Result<i64, ControlPlaneError> {
        self.params.put(&put)
    }

    async fn get_parameter_at(
        &self,
        name: &str,
        at: &crate::controlplane::ParameterSelector,
    ) -> Result<Option<Parameter>, ControlPlaneError> {
        self.params.get_at(name, at)
    }

    async fn delete_parameter(&self, name: &str) -> Result<(), ControlPlaneError> {
        self.params.delete(name)
    }

    async fn label_parameter_version(
        &self,
        name: &str,
        version: Option<i64>,
        labels: &[String],
    ) -> Result<crate::controlplane::LabelOutcome, ControlPlaneError> {
        self.params.label(name, version, labels)
    }

    async fn get_parameter_history(
        &self,
        name: &str,
    ) -> Result<Vec<crate::controlplane::ParameterVersion>, ControlPlaneError> {
        self.params.history(name)
    }

    async fn describe_events(
        &self,
        query: EventQuery,
    ) -> Result<Vec<CacheEvent>, ControlPlaneError> {
        let all = events::read(&self.dir, &self.env.name)?;
        // As DescribeEvents: the exact source identifier and type, never a name prefix.
        Ok(all.into_iter().filter(|e| query.matches(e)).collect())
    }

    async fn test_failover(
        &self,
        replication_group: &str,
        node_group: &str,
    ) -> Result<(), ControlPlaneError> {
        with_timeout(
            "TestFailover",
            self.settings
                .call_timeout
                .max(FAILOVER_DEADLINE + Duration::from_secs(5)),
            super::failover::test_failover(self, replication_group, node_group),
        )
        .await
    }

    async fn caller_identity(&self) -> Result<Account, ControlPlaneError> {
        self.state()?;
        Ok(Account {
            id: SANDBOX_ACCOUNT_ID.to_string(),
            caller_arn: format!(
                "arn:aws:iam::{SANDBOX_ACCOUNT_ID}:user/{}",
                crate::runbook::lock::current_user()
            ),
        })
    }

    // ---- ECS Exec ----

    async fn exec_tasks(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<Vec<crate::controlplane::ExecTask>, ControlPlaneError> {
        self.sandbox_exec_tasks(cluster, service)
    }

    async fn execute_command(
        &self,
        req: crate::controlplane::ExecCommand,
    ) -> Result<crate::controlplane::ExecStarted, ControlPlaneError> {
        self.sandbox_execute_command(req).await
    }

    fn exec_data_keys(&self) -> Option<std::sync::Arc<dyn crate::ecsexec::crypto::DataKeys>> {
        self.local_kms()
            .ok()
            .map(|k| k as std::sync::Arc<dyn crate::ecsexec::crypto::DataKeys>)
    }

    // ---- Snapshots, restores and ECS deployments ----------------------------------------

    async fn create_snapshot(
        &self,
        name: &str,
        target: SnapshotTarget,
    ) -> Result<Snapshot, ControlPlaneError> {
        with_timeout(
            "CreateSnapshot",
            self.settings.call_timeout,
            super::snapshots::create(self, name, target),
        )
        .await
    }

    // ---- Auth rotation (sandbox::auth) ----

    async fn ecs_service_definitions(
        &self,
    ) -> Result<Vec<crate::controlplane::EcsServiceDefinition>, ControlPlaneError> {
        self.sandbox_service_definitions()
    }

    async fn replication_group_auth(
        &self,
        replication_group: &str,
    ) -> Result<GroupAuth, ControlPlaneError> {
        with_timeout(
            "DescribeReplicationGroups",
            self.settings.call_timeout,
            self.sandbox_group_auth(replication_group),
        )
        .await
    }

    async fn describe_snapshots(
        &self,
        query: SnapshotQuery,
    ) -> Result<Vec<Snapshot>, ControlPlaneError> {
        with_timeout(
            "DescribeSnapshots",
            self.settings.call_timeout,
            super::snapshots::describe(self, query),
        )
        .await
    }

    async fn modify_auth_token(
        &self,
        replication_group: &str,
        token: Option<&SecretString>,
        strategy: AuthTokenStrategy,
    ) -> Result<GroupAuth, ControlPlaneError> {
        with_timeout(
            "ModifyReplicationGroup",
            self.settings.call_timeout,
            self.sandbox_modify_auth_token(replication_group, token, strategy),
        )
        .await
    }

    async fn delete_snapshot(&self, name: &str, serverless: bool) -> Result<(), ControlPlaneError> {
        super::snapshots::delete(self, name, serverless)
    }

    async fn restore_snapshot(&self, request: RestoreRequest) -> Result<(), ControlPlaneError> {
        // The call answers once the cache is `creating` (the endpoint daemon builds it); only
        // without a live daemon is it built within the call, and loading a large RDB takes
        // a while.
        with_timeout(
            "CreateReplicationGroup",
            self.settings.call_timeout.max(Duration::from_secs(300)),
            super::restore::restore(self, request),
        )
        .await
    }

    async fn describe_user(&self, user_id: &str) -> Result<UserAuth, ControlPlaneError> {
        with_timeout(
            "DescribeUsers",
            self.settings.call_timeout,
            self.sandbox_describe_user(user_id),
        )
        .await
    }

    async fn force_new_deployment(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<(), ControlPlaneError> {
        // The sandbox replaces the task within the call (SIGTERM, stop timeout, SIGKILL).
        with_timeout(
            "UpdateService",
            self.settings
                .call_timeout
                .max(super::ecs::STOP_TIMEOUT + Duration::from_secs(150)),
            super::ecs::force_new_deployment(self, cluster, service),
        )
        .await
    }

    async fn describe_service(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<EcsServiceState, ControlPlaneError> {
        super::ecs::describe(self, cluster, service)
    }

    async fn stop_task(
        &self,
        cluster: &str,
        task: &str,
        reason: &str,
    ) -> Result<(), ControlPlaneError> {
        with_timeout(
            "StopTask",
            self.settings.call_timeout.max(Duration::from_secs(150)),
            super::ecs::stop_task(self, cluster, task, reason),
        )
        .await
    }

    async fn modify_user_passwords(
        &self,
        user_id: &str,
        passwords: &[SecretString],
    ) -> Result<UserAuth, ControlPlaneError> {
        with_timeout(
            "ModifyUser",
            self.settings.call_timeout,
            self.sandbox_modify_user(user_id, passwords),
        )
        .await
    }
}
