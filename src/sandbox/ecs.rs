//! The sandbox's ECS deployments: UpdateService `forceNewDeployment`, DescribeServices
//! (deployments with `rolloutState`, the service's events as ECS words them) and StopTask, for
//! any sandbox ECS service (a cache of kind `ecs-service`, cluster = the environment).
//!
//! A task is replaced the way ECS replaces one: SIGTERM, up to the stop timeout, SIGKILL; then
//! a new process from the same data directory (the EFS volume) on a **new port** (a new task
//! address) under a new task id. StopTask is the SIGKILL path (a task killed without the
//! graceful stop, as after an OOM kill or a host failure), so a runbook can show what the
//! save schedule alone keeps. The sandbox does the replacement inside the call; AWS does it
//! after returning, which is why callers follow DescribeServices either way.

use super::plane::SandboxControlPlane;
use super::state::State;
use crate::controlplane::{ControlPlaneError, EcsDeployment, EcsServiceState};
use crate::domain::CacheKind;
use crate::valkey::server::{self as srv, ServerSpec};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;
use time::OffsetDateTime;

/// ECS's default stop timeout (`stopTimeout` of a container definition).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A service's deployment history, kept between calls.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
struct ServiceFile {
    deployments: Vec<EcsDeploymentRecord>,
    /// Newest first, as DescribeServices returns them.
    events: Vec<String>,
    next: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct EcsDeploymentRecord {
    id: String,
    status: String,
    rollout_state: String,
    #[serde(with = "time::serde::rfc3339")]
    created: OffsetDateTime,
}

fn file(dir: &Path, env: &str, service: &str) -> PathBuf {
    dir.join("ecs").join(env).join(format!("{service}.json"))
}

fn io(op: &str, e: impl std::fmt::Display) -> ControlPlaneError {
    ControlPlaneError::Service {
        operation: op.into(),
        detail: e.to_string(),
    }
}

fn load(dir: &Path, env: &str, service: &str, created: OffsetDateTime) -> ServiceFile {
    let loaded: Option<ServiceFile> = std::fs::read_to_string(file(dir, env, service))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    loaded.unwrap_or_else(|| ServiceFile {
        deployments: vec![EcsDeploymentRecord {
            id: "ecs-svc/0000000000000000001".into(),
            status: "PRIMARY".into(),
            rollout_state: "COMPLETED".into(),
            created,
        }],
        events: Vec::new(),
        next: 2,
    })
}

fn save(dir: &Path, env: &str, service: &str, f: &ServiceFile) -> Result<(), ControlPlaneError> {
    let path = file(dir, env, service);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io("UpdateService", e))?;
    }
    let tmp = path.with_extension(format!("json.{}", std::process::id()));
    std::fs::write(
        &tmp,
        serde_json::to_string_pretty(f).map_err(|e| io("UpdateService", e))?,
    )
    .map_err(|e| io("UpdateService", e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io("UpdateService", e))
}

fn event(f: &mut ServiceFile, text: String) {
    f.events.insert(0, text);
    f.events.truncate(100);
}

fn service_state<'a>(
    state: &'a State,
    cluster: &str,
    service: &str,
    op: &str,
) -> Result<&'a super::state::CacheState, ControlPlaneError> {
    if !state.environments.iter().any(|e| e.name == cluster) {
        return Err(ControlPlaneError::NotFound {
            what: format!("ECS cluster {cluster} (ClusterNotFoundException)"),
        });
    }
    state
        .cache(cluster, service)
        .filter(|c| c.kind == CacheKind::EcsService)
        .ok_or_else(|| ControlPlaneError::NotFound {
            what: format!(
                "ECS service {service} in cluster {cluster} ({op}: ServiceNotFoundException)"
            ),
        })
}

/// Replaces every task of a sandbox ECS service: `graceful` = SIGTERM, the stop timeout, then
/// SIGKILL; else SIGKILL at once. Each new task starts from the same data dir on a new port.
/// Returns (old task ids, new task ids).
pub async fn replace_tasks(
    dir: &Path,
    env: &str,
    service: &str,
    only_task: Option<&str>,
    graceful: bool,
    stop_timeout: Duration,
) -> Result<(Vec<String>, Vec<String>), ControlPlaneError> {
    let op = if graceful {
        "UpdateService"
    } else {
        "StopTask"
    };
    let _lock = super::setup::lock(dir).await.map_err(|e| io(op, e))?;
    let mut state = State::load(dir)
        .map_err(|e| io(op, e))?
        .ok_or_else(|| io(op, "the sandbox is down"))?;
    service_state(&state, env, service, op)?;
    let c = state
        .caches
        .iter()
        .position(|c| c.env == env && c.name == service)
        .ok_or_else(|| io(op, "service vanished"))?;
    let mut stopped = Vec::new();
    let mut started = Vec::new();
    let mut counter = state.caches[c]
        .shards
        .iter()
        .flat_map(|s| s.nodes.iter())
        .filter_map(|n| n.id.rsplit('-').next().and_then(|x| x.parse::<u32>().ok()))
        .max()
        .unwrap_or(1);
    for s in 0..state.caches[c].shards.len() {
        for n in 0..state.caches[c].shards[s].nodes.len() {
            let node = state.caches[c].shards[s].nodes[n].clone();
            if only_task.is_some_and(|t| t != node.id) {
                continue;
            }
            let (pid, port) = (node.pid, node.port);
            let stop = move || {
                if graceful {
                    srv::stop_detached(pid, port, stop_timeout)
                } else {
                    if srv::is_server_pid(pid) {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                    srv::stop_detached(pid, port, Duration::from_millis(100))
                }
            };
            tokio::task::spawn_blocking(stop)
                .await
                .map_err(|e| io(op, e))?
                .map_err(|e| io(op, e))?;
            stopped.push(node.id.clone());
            let conf = std::fs::read_to_string(node.dir.join("cachedeck.conf")).unwrap_or_default();
            let spec = ServerSpec {
                dir: Some(node.dir.clone()),
                port: None,
                config: conf.lines().map(str::to_string).collect(),
                args: node.args.clone(),
                ready_timeout: Duration::from_secs(120),
            };
            let server = super::nodes::spawn(spec).await.map_err(|e| io(op, e))?;
            counter += 1;
            let id = format!("{service}-{counter:03}");
            let updated = &mut state.caches[c].shards[s].nodes[n];
            updated.id = id.clone();
            updated.pid = server.pid;
            updated.port = server.port;
            started.push(id);
            let first_port = state.caches[c].shards[0].nodes[0].port;
            if let Some(ep) = &mut state.caches[c].endpoint {
                ep.port = first_port;
            }
            state.save(dir).map_err(|e| io(op, e))?;
        }
    }
    Ok((stopped, started))
}

/// UpdateService with `forceNewDeployment`.
pub async fn force_new_deployment(
    plane: &SandboxControlPlane,
    cluster: &str,
    service: &str,
) -> Result<(), ControlPlaneError> {
    let dir = plane.dir().to_path_buf();
    let state = plane.state()?;
    let consumer = state
        .consumers
        .iter()
        .any(|c| c.env == cluster && c.service == service);
    if !consumer {
        service_state(&state, cluster, service, "UpdateService")?;
    }
    let mut f = load(&dir, cluster, service, state.created);
    let id = format!("ecs-svc/{:019}", f.next);
    f.next += 1;
    for d in &mut f.deployments {
        if d.status == "PRIMARY" {
            d.status = "ACTIVE".into();
        }
    }
    f.deployments.insert(
        0,
        EcsDeploymentRecord {
            id: id.clone(),
            status: "PRIMARY".into(),
            rollout_state: "IN_PROGRESS".into(),
            created: OffsetDateTime::now_utc(),
        },
    );
    save(&dir, cluster, service, &f)?;
    let (old, new) = if consumer {
        super::consumer::replace(&dir, cluster, service, STOP_TIMEOUT).await?
    } else {
        replace_tasks(&dir, cluster, service, None, true, STOP_TIMEOUT).await?
    };
    event(
        &mut f,
        format!(
            "(service {service}) has stopped {} running tasks: (task {}).",
            old.len(),
            old.join(") (task ")
        ),
    );
    event(
        &mut f,
        format!(
            "(service {service}) has started {} tasks: (task {}).",
            new.len(),
            new.join(") (task ")
        ),
    );
    f.deployments.retain(|d| d.status == "PRIMARY");
    if let Some(d) = f.deployments.first_mut() {
        d.rollout_state = "COMPLETED".into();
    }
    event(
        &mut f,
        format!("(service {service}) (deployment {id}) deployment completed."),
    );
    event(
        &mut f,
        format!("(service {service}) has reached a steady state."),
    );
    save(&dir, cluster, service, &f)
}

/// StopTask: the SIGKILL path; the service starts a replacement task.
pub async fn stop_task(
    plane: &SandboxControlPlane,
    cluster: &str,
    task: &str,
    reason: &str,
) -> Result<(), ControlPlaneError> {
    let dir = plane.dir().to_path_buf();
    let state = plane.state()?;
    let service = state
        .caches
        .iter()
        .filter(|c| c.env == cluster && c.kind == CacheKind::EcsService)
        .find(|c| c.shards.iter().any(|s| s.nodes.iter().any(|n| n.id == task)))
        .map(|c| c.name.clone())
        .ok_or_else(|| ControlPlaneError::NotFound {
            what: format!("task {task} in cluster {cluster} (InvalidParameterException: The referenced task was not found)"),
        })?;
    let mut f = load(&dir, cluster, &service, state.created);
    let (old, new) =
        replace_tasks(&dir, cluster, &service, Some(task), false, STOP_TIMEOUT).await?;
    tracing::info!(task, reason, "sandbox StopTask");
    event(
        &mut f,
        format!(
            "(service {service}) has stopped {} running tasks: (task {}).",
            old.len(),
            old.join(") (task ")
        ),
    );
    event(
        &mut f,
        format!(
            "(service {service}) has started {} tasks: (task {}).",
            new.len(),
            new.join(") (task ")
        ),
    );
    event(
        &mut f,
        format!("(service {service}) has reached a steady state."),
    );
    save(&dir, cluster, &service, &f)
}

/// DescribeServices of one service.
pub fn describe(
    plane: &SandboxControlPlane,
    cluster: &str,
    service: &str,
) -> Result<EcsServiceState, ControlPlaneError> {
    let state = plane.state()?;
    let (running, desired) = match state
        .consumers
        .iter()
        .find(|c| c.env == cluster && c.service == service)
    {
        Some(c) => (i32::from(super::consumer::is_consumer_pid(c.pid)), 1),
        None => {
            let cache = service_state(&state, cluster, service, "DescribeServices")?;
            let running = cache
                .shards
                .iter()
                .flat_map(|s| s.nodes.iter())
                .filter(|n| srv::pid_alive(n.pid))
                .count() as i32;
            let desired = cache.shards.iter().map(|s| s.nodes.len()).sum::<usize>() as i32;
            (running, desired)
        }
    };
    let f = load(plane.dir(), cluster, service, state.created);
    Ok(EcsServiceState {
        status: "ACTIVE".into(),
        desired,
        running,
        deployments: f
            .deployments
            .iter()
            .map(|d| EcsDeployment {
                id: d.id.clone(),
                status: d.status.clone(),
                rollout_state: Some(d.rollout_state.clone()),
                rollout_state_reason: None,
                desired,
                running: if d.status == "PRIMARY" { running } else { 0 },
                pending: 0,
                created: Some(d.created),
            })
            .collect(),
        events: f.events.clone(),
    })
}
