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
use super::state::{CacheState, ConsumerState, NodeState};
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
/// The container of a consumer service's task.
pub const APP_CONTAINER: &str = "app";
const ACCOUNT_ARN: &str = "arn:aws:ecs:sandbox:000000000000";

/// A consumer service's task as DescribeTasks shows it.
fn consumer_task(c: &ConsumerState) -> ExecTask {
    let h = Sha256::digest(format!("{}/{}/{}/{}", c.env, c.service, c.task, c.pid));
    let id: String = h[..16].iter().map(|b| format!("{b:02x}")).collect();
    let alive = super::consumer::is_consumer_pid(c.pid);
    let status = if alive { "RUNNING" } else { "STOPPED" };
    ExecTask {
        cluster: c.env.clone(),
        task_arn: format!("{ACCOUNT_ARN}:task/{}/{id}", c.env),
        task_id: id.clone(),
        last_status: status.into(),
        enable_execute_command: true,
        launch_type: Some("FARGATE".into()),
        platform_version: Some("1.4.0".into()),
        task_definition_arn: format!("{ACCOUNT_ARN}:task-definition/{}:{}", c.service, 1),
        containers: vec![ExecContainer {
            name: APP_CONTAINER.into(),
            runtime_id: Some(format!("{id}-{}", c.pid)),
            exec_agent: Some(status.into()),
        }],
    }
}

/// The environment of a running process (the task's, as its container sees it), without
/// the sandbox's own plumbing.
fn process_env(pid: i32) -> Vec<(String, String)> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    raw.split(|b| *b == 0)
        .filter_map(|kv| {
            let text = String::from_utf8_lossy(kv);
            let (k, v) = text.split_once('=')?;
            (!k.starts_with("CACHEDECK_") && !k.is_empty()).then(|| (k.to_string(), v.to_string()))
        })
        .collect()
}

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
    fn consumers(&self) -> Result<Vec<ConsumerState>, ControlPlaneError> {
        let state = super::plane::load_state(&self.dir)?;
        Ok(state
            .consumers
            .into_iter()
            .filter(|c| c.env == self.env.name)
            .collect())
    }

    /// DescribeServices + DescribeTaskDefinition of every sandbox ECS service: the consumer
    /// services with their task definitions' `environment` and `secrets` (`valueFrom` the
    /// parameter's ARN), and the ECS Valkey services (one `valkey` container, no variables).
    pub(super) fn sandbox_service_definitions(
        &self,
    ) -> Result<Vec<crate::controlplane::EcsServiceDefinition>, ControlPlaneError> {
        use super::consumer::VarSource;
        use crate::controlplane::{ContainerDefinition, EcsServiceDefinition};
        let mut out = Vec::new();
        for c in self.consumers()? {
            let mut environment = Vec::new();
            let mut secrets = Vec::new();
            for v in &c.vars {
                match &v.source {
                    VarSource::Plain(value) => environment.push((v.name.clone(), value.clone())),
                    VarSource::Parameter(p) => secrets.push((
                        v.name.clone(),
                        format!(
                            "arn:aws:ssm:sandbox:000000000000:parameter/{}",
                            p.trim_start_matches('/')
                        ),
                    )),
                }
            }
            out.push(EcsServiceDefinition {
                cluster: c.env.clone(),
                service: c.service.clone(),
                task_definition: format!("{ACCOUNT_ARN}:task-definition/{}:1", c.service),
                running: i32::from(super::consumer::is_consumer_pid(c.pid)),
                containers: vec![ContainerDefinition {
                    name: APP_CONTAINER.into(),
                    environment,
                    secrets,
                }],
            });
        }
        for svc in self.ecs_services()? {
            let running = svc
                .shards
                .iter()
                .flat_map(|s| s.nodes.iter())
                .filter(|n| crate::valkey::server::pid_alive(n.pid))
                .count();
            out.push(EcsServiceDefinition {
                cluster: self.env.name.clone(),
                service: svc.name.clone(),
                task_definition: format!("{ACCOUNT_ARN}:task-definition/{}:1", svc.name),
                running: running as i32,
                containers: vec![ContainerDefinition {
                    name: CONTAINER.into(),
                    environment: Vec::new(),
                    secrets: Vec::new(),
                }],
            });
        }
        Ok(out)
    }

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
        if let Some(c) = self.consumers()?.iter().find(|c| c.service == service) {
            return Ok(vec![consumer_task(c)]
                .into_iter()
                .filter(|t| t.last_status == "RUNNING")
                .collect());
        }
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
        if let Some(c) = self
            .consumers()?
            .into_iter()
            .find(|c| consumer_task(c).task_id == wanted)
        {
            return self.exec_consumer(req, &c).await;
        }
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
        let env = vec![
            (
                "PATH".into(),
                std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
            ),
            ("HOME".into(), node.dir.display().to_string()),
            ("HOSTNAME".into(), t.task_id.clone()),
            ("TERM".into(), "xterm-256color".into()),
        ];
        self.start_session(&t, CONTAINER, req.command, env, Some(node.dir.clone()))
            .await
    }

    /// ExecuteCommand into a consumer service's task: its container's environment is the
    /// running task's own (secrets as read at task start); a `port-blocked` fault runs the
    /// session in a network of its own where the cache's ports drop SYNs.
    async fn exec_consumer(
        &self,
        req: ExecCommand,
        c: &ConsumerState,
    ) -> Result<ExecStarted, ControlPlaneError> {
        let t = consumer_task(c);
        if let Some(name) = &req.container
            && name != APP_CONTAINER
        {
            return Err(ControlPlaneError::InvalidState {
                operation: "ExecuteCommand".into(),
                detail: format!(
                    "The container {} does not exist in the task (it has: {APP_CONTAINER})",
                    crate::escape::escape(name)
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
        let mut env = process_env(c.pid);
        let home = c.log.parent().map(|p| p.to_path_buf());
        for (k, v) in [
            ("HOME", home.as_ref().map(|h| h.display().to_string())),
            ("HOSTNAME", Some(t.task_id.clone())),
            ("TERM", Some("xterm-256color".to_string())),
        ] {
            env.retain(|(name, _)| name != k);
            if let Some(v) = v {
                env.push((k.into(), v));
            }
        }
        if !env.iter().any(|(k, _)| k == "PATH") {
            env.push((
                "PATH".into(),
                std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
            ));
        }
        let mut command = req.command;
        if c.fault == Some(super::faults::ConsumerFault::PortBlocked) {
            command = self.isolated(c, &command)?;
        }
        self.start_session(&t, APP_CONTAINER, command, env, home)
            .await
    }

    /// `command` wrapped to run in a network namespace where the consumer's cache ports are
    /// black holes (`cachedeck sandbox isolate` under `unshare -rn`).
    fn isolated(&self, c: &ConsumerState, command: &str) -> Result<String, ControlPlaneError> {
        let state = super::plane::load_state(&self.dir)?;
        let mut ports: Vec<u16> = Vec::new();
        if let Some(cache) = state.cache(&c.env, &c.cache) {
            if let Some(e) = &cache.endpoint {
                ports.push(e.port);
            }
            let eps = &cache.endpoints;
            for e in [&eps.primary, &eps.reader, &eps.configuration]
                .into_iter()
                .flatten()
            {
                ports.push(e.port);
            }
            ports.extend(
                cache
                    .shards
                    .iter()
                    .flat_map(|s| s.nodes.iter().map(|n| n.port)),
            );
        }
        ports.sort_unstable();
        ports.dedup();
        let exe = std::env::current_exe().map_err(|e| ControlPlaneError::Service {
            operation: "ExecuteCommand".into(),
            detail: e.to_string(),
        })?;
        let argv = shell_words::split(command).map_err(|e| ControlPlaneError::InvalidState {
            operation: "ExecuteCommand".into(),
            detail: format!("Failed to parse commands input: {e}"),
        })?;
        let mut words = vec![
            "unshare".to_string(),
            "-rn".into(),
            exe.display().to_string(),
            "sandbox".into(),
            "isolate".into(),
        ];
        for p in ports {
            words.push("--block".into());
            words.push(p.to_string());
        }
        words.push("--".into());
        words.extend(argv);
        Ok(shell_words::join(words))
    }

    async fn start_session(
        &self,
        t: &ExecTask,
        container: &str,
        command: String,
        env: Vec<(String, String)>,
        cwd: Option<std::path::PathBuf>,
    ) -> Result<ExecStarted, ControlPlaneError> {
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
            command,
            env,
            cwd,
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
            task_arn: t.task_arn.clone(),
            container_name: container.into(),
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

pub(super) fn random_hex(n: usize) -> String {
    use aws_lc_rs::rand::SecureRandom;
    let mut v = vec![0u8; n];
    let _ = aws_lc_rs::rand::SystemRandom::new().fill(&mut v);
    v.iter().map(|b| format!("{b:02x}")).collect()
}
