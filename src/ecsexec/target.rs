//! Which task and container an exec session goes to, checked before ExecuteCommand with
//! reasons a person can act on, and a captured run of one command (for the connectivity
//! check from a consumer). Works on any `ControlPlane`.

use super::client::{self, ClientOptions, Input, Stream};
use super::wrap;
use crate::consumers;
use crate::controlplane::{ConsumerService, ControlPlane, ExecCommand, ExecTask};
use crate::domain::Cache;
use std::sync::Arc;
use tokio::sync::mpsc;

/// The task to exec into, chosen and checked.
#[derive(Clone)]
pub struct Target {
    pub plane: Arc<dyn ControlPlane>,
    pub cluster: String,
    pub service: String,
    pub task: ExecTask,
    pub container: String,
    /// The consumer entry when the target was found as a consumer of a cache.
    pub consumer: Option<ConsumerService>,
}

/// The task to use: `wanted` (id or ARN), else the first running one with exec enabled.
pub fn choose_task(
    tasks: &[ExecTask],
    wanted: Option<&str>,
    cluster: &str,
    service: &str,
) -> anyhow::Result<ExecTask> {
    match wanted {
        Some(id) => tasks
            .iter()
            .find(|t| t.task_id == id || t.task_arn == id)
            .cloned()
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "task {} is not a running task of service {service} (running: {})",
                    crate::escape::escape(id),
                    list(tasks)
                )
            }),
        None => tasks
            .iter()
            .find(|t| t.last_status == "RUNNING" && t.enable_execute_command)
            .or_else(|| tasks.first())
            .cloned()
            .ok_or_else(|| {
                anyhow::anyhow!("service {service} in cluster {cluster} has no running task")
            }),
    }
}

fn list(tasks: &[ExecTask]) -> String {
    if tasks.is_empty() {
        return "none".into();
    }
    tasks
        .iter()
        .map(|t| t.task_id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The container: `wanted`, else `default`, else the task's only one.
pub fn choose_container(
    task: &ExecTask,
    wanted: Option<&str>,
    default: Option<&str>,
) -> anyhow::Result<String> {
    wanted
        .or(default)
        .map(str::to_string)
        .or_else(|| (task.containers.len() == 1).then(|| task.containers[0].name.clone()))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "the task has several containers; choose one with --container ({})",
                task.containers
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// What ECS Exec needs of a task, each missing piece as one line with what to do.
pub fn preflight(task: &ExecTask, container: &str, service: &str) -> anyhow::Result<()> {
    if !task.enable_execute_command {
        anyhow::bail!(
            "task {} was started without enableExecuteCommand; turn it on with `aws ecs update-service --service {service} --enable-execute-command --force-new-deployment` and exec into a new task",
            task.task_id
        );
    }
    let Some(c) = task.containers.iter().find(|c| c.name == container) else {
        anyhow::bail!(
            "task {} has no container {} (it has: {})",
            task.task_id,
            crate::escape::escape(container),
            task.containers
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    match c.exec_agent.as_deref() {
        Some("RUNNING") => {}
        other => anyhow::bail!(
            "the ExecuteCommandAgent of container {container} is {}, not RUNNING; the task role needs ssmmessages:* and the task a route to ssmmessages; start a new task once fixed",
            other.unwrap_or("absent")
        ),
    }
    if task.launch_type.as_deref() == Some("FARGATE")
        && let Some(v) = &task.platform_version
        && v != "LATEST"
        && version_below(v, (1, 4, 0))
    {
        anyhow::bail!(
            "Fargate platform {v} has no ECS Exec; it needs 1.4.0 or later (update the service's platformVersion)"
        );
    }
    Ok(())
}

fn version_below(v: &str, min: (u32, u32, u32)) -> bool {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let got = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    got < min
}

/// A task of a consumer of `cache`: the service named (`service`), else the first consumer
/// with a running task.
pub async fn consumer(
    plane: Arc<dyn ControlPlane>,
    cache: &Cache,
    service: Option<&str>,
    task: Option<&str>,
    container: Option<&str>,
) -> anyhow::Result<Target> {
    let found = consumers::discover(plane.as_ref(), cache).await?;
    if found.is_empty() {
        anyhow::bail!(
            "no consumer of cache `{}` found: no ECS task definition names its endpoint or parameters; name the app's service with --service S (or add it under [[environments.<env>.consumers]] in the config)",
            crate::escape::escape(&cache.name)
        );
    }
    let chosen = match service {
        Some(s) => found.iter().find(|c| c.service == s).ok_or_else(|| {
            anyhow::anyhow!(
                "service {} is not a consumer of `{}` (consumers: {})",
                crate::escape::escape(s),
                crate::escape::escape(&cache.name),
                names(&found)
            )
        })?,
        None => found
            .iter()
            .find(|c| c.running.is_none_or(|n| n > 0))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "no consumer of `{}` has a running task (consumers: {})",
                    crate::escape::escape(&cache.name),
                    names(&found)
                )
            })?,
    }
    .clone();
    let tasks = plane.exec_tasks(&chosen.cluster, &chosen.service).await?;
    let t = choose_task(&tasks, task, &chosen.cluster, &chosen.service)?;
    let container = choose_container(&t, container, chosen.container.as_deref())?;
    preflight(&t, &container, &chosen.service)?;
    Ok(Target {
        plane,
        cluster: chosen.cluster.clone(),
        service: chosen.service.clone(),
        task: t,
        container,
        consumer: Some(chosen),
    })
}

fn names(list: &[ConsumerService]) -> String {
    list.iter()
        .map(|c| c.service.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a captured command printed and how it ended.
#[derive(Debug)]
pub struct Captured {
    pub stdout: Vec<u8>,
    /// `None`: no exit marker came (no shell, or the session ended early).
    pub code: Option<i32>,
    /// Output beyond `limit` was dropped.
    pub truncated: bool,
}

/// Runs `argv` in the target (wrapped for its exit code) and keeps up to `limit` bytes of
/// its output; `stdin` is sent as typed input.
pub async fn run_captured(
    target: &Target,
    argv: &[String],
    stdin: Option<Vec<u8>>,
    limit: usize,
) -> anyhow::Result<Captured> {
    let w = wrap::wrap(argv);
    let started = target
        .plane
        .execute_command(ExecCommand {
            cluster: target.cluster.clone(),
            task: target.task.task_arn.clone(),
            container: Some(target.container.clone()),
            command: w.command.clone(),
        })
        .await?;
    let opts = ClientOptions {
        data_keys: target.plane.exec_data_keys(),
        size: Some((200, 50)),
        ..ClientOptions::default()
    };
    let (in_tx, in_rx) = mpsc::channel(16);
    if let Some(bytes) = stdin {
        in_tx.send(Input::Bytes(bytes)).await.ok();
    }
    let (out_tx, mut out_rx) = mpsc::channel::<(Stream, Vec<u8>)>(64);
    let session = started.session.clone();
    let client = tokio::spawn(async move { client::run(&session, &opts, in_rx, out_tx).await });
    let mut scanner = w.scanner();
    let mut stdout = Vec::new();
    let mut truncated = false;
    while let Some((_, bytes)) = out_rx.recv().await {
        let shown = scanner.push(&bytes);
        let room = limit.saturating_sub(stdout.len());
        truncated |= shown.len() > room;
        stdout.extend_from_slice(&shown[..shown.len().min(room)]);
    }
    drop(in_tx);
    client
        .await
        .map_err(|e| anyhow::anyhow!("the session task failed: {e}"))?
        .map_err(|e| anyhow::anyhow!("session {}: {e}", started.session.session_id))?;
    let (rest, code) = scanner.finish();
    let room = limit.saturating_sub(stdout.len());
    stdout.extend_from_slice(&rest[..rest.len().min(room)]);
    Ok(Captured {
        stdout,
        code,
        truncated,
    })
}
