//! `SandboxControlPlane`: the [`ControlPlane`] of a sandbox environment. Discovery reads the
//! state file and asks every node ROLE (so a failover or a killed process shows); parameters
//! and events are files; TestFailover is a real promotion with ElastiCache's events and quota.

use super::client::{self, NodeAuth};
use super::events;
use super::params::ParamStore;
use super::state::{CacheState, State};
use crate::config::{EnvConfig, Settings};
use crate::controlplane::{
    CacheEvent, ControlPlane, ControlPlaneError, Discovery, EventQuery, Parameter, PutParameter,
    with_timeout,
};
use crate::domain::{
    Cache, CacheKind, Credentials, Environment, Node, NodeHealth, NodeRole, SecretRef, Shard,
};
use async_trait::async_trait;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a node gets to answer ROLE during discovery.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(300);
/// TestFailover's quota: node groups per rolling 24 hours.
pub const FAILOVER_QUOTA: usize = 15;
const FAILOVER_DEADLINE: Duration = Duration::from_secs(20);

/// The control plane of one sandbox environment.
#[derive(Debug, Clone)]
pub struct SandboxControlPlane {
    env: Environment,
    dir: PathBuf,
    params: ParamStore,
    settings: Settings,
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

    fn state(&self) -> Result<State, ControlPlaneError> {
        load(&self.dir)
    }

    fn find(&self, state: &State, name: &str) -> Result<CacheState, ControlPlaneError> {
        state
            .cache(&self.env.name, name)
            .cloned()
            .ok_or_else(|| ControlPlaneError::NotFound {
                what: format!("replication group {name} in {}", self.env.name),
            })
    }

    /// Builds the domain cache, asking every node its role.
    async fn cache(&self, state: &State, c: &CacheState) -> Cache {
        let auth = NodeAuth::of(c, &self.params);
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
                    let (role, health) = match role {
                        Ok(role) => (role, NodeHealth::Up),
                        Err(reason) => (NodeRole::Unknown, NodeHealth::Down(reason)),
                    };
                    Node {
                        id: n.id.clone(),
                        role,
                        host: crate::valkey::server::HOST.into(),
                        port: n.port,
                        availability_zone: Some(n.availability_zone.clone()),
                        status: if alive { "running" } else { "exited" }.into(),
                        health,
                    }
                })
                .collect();
            shards.push(Shard {
                id: s.id.clone(),
                slots: s.slots.clone(),
                nodes,
            });
        }
        let healthy = shards
            .iter()
            .all(|s| s.primary().is_some_and(|p| p.health.is_up()));
        let mut notes = c.notes.clone();
        if c.kind == CacheKind::Serverless {
            notes.push("serverless stand-in: one local node behind the TLS endpoint".into());
        }
        Cache {
            name: c.name.clone(),
            env: c.env.clone(),
            kind: c.kind,
            engine: state.engine.clone(),
            engine_version: state.engine_version.clone(),
            status: if healthy { "available" } else { "degraded" }.into(),
            cluster_mode: c.cluster_mode,
            auth: c.auth,
            tls: c.tls,
            endpoint: c.endpoint.clone(),
            endpoints: c.endpoints.clone(),
            shards,
            automatic_failover: c.automatic_failover,
            multi_az: c.automatic_failover,
            arn: Some(format!(
                "arn:aws:elasticache:local:000000000000:{}:{}",
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

    fn event(
        &self,
        source: &str,
        source_type: &str,
        message: &str,
    ) -> Result<CacheEvent, ControlPlaneError> {
        events::append(&self.dir, &self.env.name, source, source_type, message)
    }

    async fn failover(
        &self,
        replication_group: &str,
        node_group: &str,
    ) -> Result<(), ControlPlaneError> {
        let op = "TestFailover";
        let state = self.state()?;
        let c = self.find(&state, replication_group)?;
        match c.kind {
            CacheKind::ReplicationGroup => {}
            CacheKind::Serverless => {
                return Err(ControlPlaneError::Unsupported {
                    operation: op.into(),
                    target: replication_group.into(),
                    why: "serverless caches have no nodes to fail over; AWS offers no TestFailover for them".into(),
                });
            }
            other => {
                return Err(ControlPlaneError::Unsupported {
                    operation: op.into(),
                    target: replication_group.into(),
                    why: format!("it is a {other}, not a replication group"),
                });
            }
        }
        if !c.automatic_failover {
            return Err(ControlPlaneError::InvalidState {
                operation: op.into(),
                detail: format!("{replication_group} has automatic failover disabled"),
            });
        }
        let shard = c
            .shards
            .iter()
            .find(|s| s.id == node_group)
            .ok_or_else(|| ControlPlaneError::NotFound {
                what: format!(
                    "node group {node_group} in {replication_group} (it has: {})",
                    c.shards
                        .iter()
                        .map(|s| s.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })?;
        let history = events::read(&self.dir, &self.env.name)?;
        let used = events::failovers_in_last_day(&history, time::OffsetDateTime::now_utc());
        if used >= FAILOVER_QUOTA {
            return Err(ControlPlaneError::QuotaExceeded {
                operation: op.into(),
                detail: format!(
                    "{used} node groups were test-failed-over in the last 24 hours; AWS allows {FAILOVER_QUOTA}"
                ),
            });
        }
        let auth = NodeAuth::of(&c, &self.params);
        let probes = shard.nodes.iter().map(|n| {
            let auth = auth.clone();
            async move { client::role(n.port, &auth, PROBE_TIMEOUT).await }
        });
        let roles: Vec<_> = futures::future::join_all(probes).await;
        let primary = shard
            .nodes
            .iter()
            .zip(&roles)
            .find(|(_, r)| matches!(r, Ok(NodeRole::Primary)))
            .map(|(n, _)| n.clone());
        let replicas: Vec<_> = shard
            .nodes
            .iter()
            .zip(&roles)
            .filter(|(_, r)| matches!(r, Ok(NodeRole::Replica)))
            .map(|(n, _)| n.clone())
            .collect();
        let (Some(old), false) = (primary, replicas.is_empty()) else {
            return Err(ControlPlaneError::InvalidState {
                operation: op.into(),
                detail: format!(
                    "node group {node_group} of {replication_group} needs a live primary and a live replica"
                ),
            });
        };
        self.event(
            replication_group,
            "replication-group",
            &events::test_failover_called(node_group),
        )?;
        let svc = |detail: String| ControlPlaneError::Service {
            operation: op.into(),
            detail,
        };
        let until = Instant::now() + FAILOVER_DEADLINE;
        let step = Duration::from_secs(3);
        if c.cluster_mode {
            let target = &replicas[0];
            let mut conn = client::connect(target.port, &auth, step)
                .await
                .map_err(svc)?;
            client::command(&mut conn, redis::cmd("CLUSTER").arg("FAILOVER"), step)
                .await
                .map_err(|e| svc(format!("CLUSTER FAILOVER on {}: {e}", target.id)))?;
        } else {
            let mut conn = client::connect(old.port, &auth, step).await.map_err(svc)?;
            client::command(
                &mut conn,
                redis::cmd("FAILOVER").arg("TIMEOUT").arg(10_000),
                step,
            )
            .await
            .map_err(|e| svc(format!("FAILOVER on {}: {e}", old.id)))?;
        }
        // The new primary: whichever former replica now answers as primary.
        let promoted = std::sync::Mutex::new(None);
        let promoted_ref = &promoted;
        super::cluster::wait(until, "a replica to be promoted", || {
            let replicas = replicas.clone();
            let auth = auth.clone();
            async move {
                for r in &replicas {
                    if let Ok(NodeRole::Primary) = client::role(r.port, &auth, PROBE_TIMEOUT).await
                    {
                        if let Ok(mut slot) = promoted_ref.lock() {
                            *slot = Some(r.clone());
                        }
                        return Ok(true);
                    }
                }
                Ok(false)
            }
        })
        .await
        .map_err(svc)?;
        let new = promoted.lock().ok().and_then(|mut slot| slot.take());
        let Some(new) = new else {
            return Err(svc("no replica was promoted".into()));
        };
        self.event(
            replication_group,
            "replication-group",
            &format!(
                "Failover from primary node {} to replica node {} completed",
                old.id, new.id
            ),
        )?;
        self.event(
            &old.id,
            "cache-cluster",
            &format!("Recovering cache nodes {}", old.id),
        )?;
        if !c.cluster_mode {
            // FAILOVER leaves other replicas on the old primary; point them at the new one,
            // as ElastiCache does.
            for r in replicas.iter().filter(|r| r.port != new.port) {
                let mut conn = client::connect(r.port, &auth, step).await.map_err(svc)?;
                client::command(
                    &mut conn,
                    redis::cmd("REPLICAOF")
                        .arg(crate::valkey::server::HOST)
                        .arg(new.port),
                    step,
                )
                .await
                .map_err(|e| svc(format!("REPLICAOF on {}: {e}", r.id)))?;
            }
        }
        super::cluster::wait(until, "the old primary to sync as a replica", || {
            let auth = auth.clone();
            let port = old.port;
            async move {
                let mut conn = client::connect(port, &auth, PROBE_TIMEOUT).await?;
                let info = client::command(
                    &mut conn,
                    redis::cmd("INFO").arg("replication"),
                    PROBE_TIMEOUT,
                )
                .await?;
                let text = client::text_of(&info);
                Ok(text.contains("role:slave") && text.contains("master_link_status:up"))
            }
        })
        .await
        .map_err(svc)?;
        self.event(
            &old.id,
            "cache-cluster",
            &format!("Finished recovery for cache nodes {}", old.id),
        )?;
        Ok(())
    }
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

    async fn delete_parameter(&self, name: &str) -> Result<(), ControlPlaneError> {
        self.params.delete(name)
    }

    async fn describe_events(
        &self,
        query: EventQuery,
    ) -> Result<Vec<CacheEvent>, ControlPlaneError> {
        let all = events::read(&self.dir, &self.env.name)?;
        Ok(all
            .into_iter()
            .filter(|e| e.time >= query.since)
            .filter(|e| {
                query
                    .source
                    .as_deref()
                    .is_none_or(|s| e.source == s || e.source.starts_with(&format!("{s}-")))
            })
            .collect())
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
            self.failover(replication_group, node_group),
        )
        .await
    }
}
