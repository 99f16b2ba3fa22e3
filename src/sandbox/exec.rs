//! ECS Exec in the sandbox: the tasks of its ECS services (each task a real process) and
//! ExecuteCommand, which answers as ECS does (session id, a loopback stream URL, a token)
//! and serves the session with [`super::exec_agent`] in this process. The command runs in a
//! pseudo-terminal with the task's environment and working directory.
//!
//! The cluster of a sandbox environment is named after it. `sandbox-prod` encrypts exec
//! sessions with KMS (the sandbox's local KMS, key `alias/sandbox-prod-ecs-exec`), as
//! production clusters do; `CACHEDECK_SANDBOX_EXEC_KMS=<key id>` turns encryption on for
//! every environment and `CACHEDECK_SANDBOX_EXEC_FAULTS` (see [`Faults::parse`]) makes the
//! agent hostile.

use super::exec_agent::{self, AgentKms, AgentSpec, Faults, LocalKms};
use super::plane::SandboxControlPlane;
use super::state::{CacheState, NodeState};
use crate::controlplane::{ControlPlaneError, ExecCommand, ExecContainer, ExecStarted, ExecTask};
use crate::domain::CacheKind;
use crate::ecsexec::client::SessionInfo;
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

pub const FAULTS_ENV: &str = "CACHEDECK_SANDBOX_EXEC_FAULTS";
pub const KMS_ENV: &str = "CACHEDECK_SANDBOX_EXEC_KMS";
const CONTAINER: &str = "valkey";

/// The sandbox's task id of a process: stable while it lives, new when it is replaced.
fn task_id(env: &str, service: &str, node: &NodeState) -> String {
    let h = Sha256::digest(format!("{env}/{service}/{}/{}", node.pid, node.port));
    h[..16].iter().map(|b| format!("{b:02x}")).collect()
}

fn task(env: &str, cache: &CacheState, node: &NodeState) -> ExecTask {
    let id = task_id(env, &cache.name, node);
    let alive = crate::valkey::server::pid_alive(node.pid);
    ExecTask {
        cluster: env.to_string(),
        task_arn: format!("arn:aws:ecs:sandbox:000000000000:task/{env}/{id}"),
        task_id: id.clone(),
        last_status: if alive { "RUNNING" } else { "STOPPED" }.into(),
        enable_execute_command: true,
        launch_type: Some("FARGATE".into()),
        platform_version: Some("1.4.0".into()),
        task_definition_arn: format!(
            "arn:aws:ecs:sandbox:000000000000:task-definition/{}:1",
            cache.name
        ),
        containers: vec![ExecContainer {
            name: CONTAINER.into(),
            runtime_id: Some(format!("{id}-{}", node.port)),
            exec_agent: Some(if alive { "RUNNING" } else { "STOPPED" }.into()),
        }],
    }
}

impl SandboxControlPlane {
    fn ecs_services(&self) -> Result<Vec<CacheState>, ControlPlaneError> {
        let state = super::plane::load_state(&self.dir)?;
        Ok(state
            .caches
            .into_iter()
            .filter(|c| c.env == self.env.name && c.kind == CacheKind::EcsService)
            .collect())
    }

    fn check_cluster(&self, cluster: &str) -> Result<(), ControlPlaneError> {
        let name = cluster.rsplit('/').next().unwrap_or(cluster);
        if name != self.env.name {
            return Err(ControlPlaneError::InvalidState {
                operation: "ExecuteCommand".into(),
                detail: format!(
                    "cluster not found (Cluster not found.): {}",
                    crate::escape::escape(cluster)
                ),
            });
        }
        Ok(())
    }

    pub(super) fn sandbox_exec_tasks(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<Vec<ExecTask>, ControlPlaneError> {
        self.check_cluster(cluster)?;
        let services = self.ecs_services()?;
        let svc = services.iter().find(|c| c.name == service).ok_or_else(|| {
            ControlPlaneError::NotFound {
                what: format!(
                    "ECS service {} in cluster {cluster}",
                    crate::escape::escape(service)
                ),
            }
        })?;
        Ok(svc
            .shards
            .iter()
            .flat_map(|s| s.nodes.iter())
            .map(|n| task(&self.env.name, svc, n))
            .filter(|t| t.last_status == "RUNNING")
            .collect())
    }

    pub(super) async fn sandbox_execute_command(
        &self,
        req: ExecCommand,
    ) -> Result<ExecStarted, ControlPlaneError> {
        self.check_cluster(&req.cluster)?;
        let wanted = req.task.rsplit('/').next().unwrap_or(&req.task).to_string();
        let services = self.ecs_services()?;
        let found = services.iter().find_map(|c| {
            c.shards
                .iter()
                .flat_map(|s| s.nodes.iter())
                .find(|n| task_id(&self.env.name, &c.name, n) == wanted)
                .map(|n| (c, n))
        });
        let Some((svc, node)) = found else {
            return Err(ControlPlaneError::InvalidState {
                operation: "ExecuteCommand".into(),
                detail: format!(
                    "The specified task is not found or not running: {}",
                    crate::escape::escape(&wanted)
                ),
            });
        };
        let t = task(&self.env.name, svc, node);
        if let Some(c) = &req.container
            && c != CONTAINER
        {
            return Err(ControlPlaneError::InvalidState {
                operation: "ExecuteCommand".into(),
                detail: format!(
                    "The container {} does not exist in the task (it has: {CONTAINER})",
                    crate::escape::escape(c)
                ),
            });
        }
        if t.last_status != "RUNNING" {
            return Err(ControlPlaneError::InvalidState {
                operation: "ExecuteCommand".into(),
                detail: crate::aws::exec::explain(
                    "TargetNotConnectedException",
                    "The execute command failed due to an internal error. Try again later.",
                )
                .unwrap_or_default(),
            });
        }
        let session_id = format!("ecs-execute-command-{}", random_hex(9));
        let token = SecretString::from(random_hex(48));
        let runtime = t.containers[0].runtime_id.clone().unwrap_or_default();
        let target = format!("ecs:{}_{}_{runtime}", self.env.name, t.task_id);
        let faults = match std::env::var(FAULTS_ENV) {
            Ok(v) => Faults::parse(&v).map_err(|e| ControlPlaneError::InvalidState {
                operation: "ExecuteCommand".into(),
                detail: format!("{FAULTS_ENV}: {e}"),
            })?,
            Err(_) => Faults::default(),
        };
        let spec = AgentSpec {
            session_id: session_id.clone(),
            token: token.clone(),
            target: target.clone(),
            command: req.command,
            env: vec![
                (
                    "PATH".into(),
                    std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
                ),
                ("HOME".into(), node.dir.display().to_string()),
                ("HOSTNAME".into(), t.task_id.clone()),
                ("TERM".into(), "xterm-256color".into()),
            ],
            cwd: Some(node.dir.clone()),
            kms: self.exec_kms()?,
            faults,
            initial_wait: Duration::ZERO,
            accept_timeout: Duration::from_secs(60),
            session_timeout: Duration::from_secs(24 * 3600),
        };
        let (url, handle) =
            exec_agent::start(spec)
                .await
                .map_err(|e| ControlPlaneError::Service {
                    operation: "ExecuteCommand".into(),
                    detail: format!("the sandbox agent could not listen: {e}"),
                })?;
        let sid = session_id.clone();
        tokio::spawn(async move {
            if let Ok(report) = handle.await {
                tracing::info!(session = %sid, ?report, "sandbox exec session ended");
            }
        });
        Ok(ExecStarted {
            task_arn: t.task_arn,
            container_name: CONTAINER.into(),
            session: SessionInfo {
                session_id,
                stream_url: url,
                token,
                target,
            },
        })
    }

    /// The cluster's exec KMS key, if it has one.
    fn exec_kms(&self) -> Result<Option<AgentKms>, ControlPlaneError> {
        let key_id = match std::env::var(KMS_ENV) {
            Ok(k) if !k.is_empty() => k,
            _ if self.env.name == super::layout::PROD => "alias/sandbox-prod-ecs-exec".into(),
            _ => return Ok(None),
        };
        Ok(Some(AgentKms {
            key_id,
            kms: self.local_kms()?,
            random_challenge: true,
        }))
    }

    pub(super) fn local_kms(&self) -> Result<Arc<LocalKms>, ControlPlaneError> {
        LocalKms::open(&self.dir.join("kms").join("master.key"))
            .map(Arc::new)
            .map_err(|e| ControlPlaneError::Service {
                operation: "KMS".into(),
                detail: format!("the sandbox's KMS key cannot be read: {e}"),
            })
    }
}

fn random_hex(n: usize) -> String {
    use aws_lc_rs::rand::SecureRandom;
    let mut v = vec![0u8; n];
    let _ = aws_lc_rs::rand::SystemRandom::new().fill(&mut v);
    v.iter().map(|b| format!("{b:02x}")).collect()
}
