//! The sandbox's consumer services: ECS-like application tasks that use the caches — a
//! Sidekiq-like worker for `orders`, a Celery-like worker for `paperwurks`, a web app for
//! `storefront`. Each task is a real local process (`cachedeck sandbox consumer`, hidden)
//! started the way ECS starts a task: its task definition's `environment` and `secrets`
//! (`valueFrom` a parameter, read once at task start) become environment variables — the
//! seeds' variable names — never argv. It keeps a pool of connections open, PINGs over each,
//! and logs every client error to its log file; a connection that breaks is opened again
//! with the credentials the task started with, as a real app does until it is restarted.
//! A rolled service (UpdateService `forceNewDeployment`) gets a new task that reads the
//! secret again.

use super::params::ParamStore;
use super::state::{ConsumerState, State};
use crate::controlplane::ControlPlaneError;
use crate::domain::Endpoint;
use crate::valkey::connect::{Auth, ConnectOptions, Connector};
use secrecy::SecretString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Connections each consumer task keeps open.
pub const POOL: usize = 3;
/// How often each pooled connection is used.
const TICK: Duration = Duration::from_millis(250);

/// Where a task definition variable's value comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VarSource {
    /// `environment`: a plain value (endpoint, user name).
    Plain(String),
    /// `secrets[].valueFrom`: a parameter, read when the task starts.
    Parameter(String),
}

/// One container variable of a consumer's task definition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TaskVar {
    pub name: String,
    pub source: VarSource,
}

/// The consumer services of the sandbox's `sandbox-dev` estate and their task definitions.
pub fn plans(state: &State) -> Vec<ConsumerState> {
    let mut out = Vec::new();
    let dev = super::layout::DEV;
    let endpoint_url = |cache: &str| {
        state.cache(dev, cache).and_then(|c| {
            c.endpoint.as_ref().map(|e| {
                (
                    if e.tls { "rediss" } else { "redis" },
                    e.host.clone(),
                    e.port,
                )
            })
        })
    };
    let plain = |name: &str, value: String| TaskVar {
        name: name.into(),
        source: VarSource::Plain(value),
    };
    let secret = |name: &str, param: &str| TaskVar {
        name: name.into(),
        source: VarSource::Parameter(param.into()),
    };
    if let (Some(c), Some((scheme, host, port))) =
        (state.cache(dev, "orders"), endpoint_url("orders"))
        && let Some(p) = &c.password_parameter
    {
        out.push(consumer(
            "orders-sidekiq",
            "orders",
            vec![
                plain("SIDEKIQ_REDIS_URL", format!("{scheme}://{host}:{port}/0")),
                secret("REDIS_PASSWORD", p),
            ],
        ));
    }
    if let Some(c) = state.cache(dev, "paperwurks")
        && let Some(p) = &c.url_parameter
    {
        out.push(consumer(
            "paperwurks-celery",
            "paperwurks",
            vec![secret("CELERY_BROKER_URL", p)],
        ));
    }
    if let (Some(c), Some((scheme, host, port))) =
        (state.cache(dev, "storefront"), endpoint_url("storefront"))
        && let Some(p) = &c.password_parameter
    {
        out.push(consumer(
            "storefront-web",
            "storefront",
            vec![
                plain("REDIS_URL", format!("{scheme}://{host}:{port}/0")),
                plain("REDIS_USERNAME", c.username.clone().unwrap_or_default()),
                secret("REDIS_PASSWORD", p),
            ],
        ));
    }
    out
}

fn consumer(service: &str, cache: &str, vars: Vec<TaskVar>) -> ConsumerState {
    ConsumerState {
        env: super::layout::DEV.into(),
        service: service.into(),
        cache: cache.into(),
        vars,
        task: String::new(),
        pid: 0,
        log: PathBuf::new(),
        generation: 0,
        fault: None,
    }
}

fn fail(op: &str, e: impl std::fmt::Display) -> ControlPlaneError {
    ControlPlaneError::Service {
        operation: op.into(),
        detail: e.to_string(),
    }
}

/// Starts one task of a consumer service: secrets read now, handed over in the environment.
pub fn start_task(
    dir: &Path,
    exe: &Path,
    params: &ParamStore,
    c: &mut ConsumerState,
) -> Result<(), ControlPlaneError> {
    const OP: &str = "RunTask";
    c.generation += 1;
    c.task = format!("{}-{:03}", c.service, c.generation);
    let task_dir = dir.join("consumers").join(&c.env).join(&c.service);
    std::fs::create_dir_all(&task_dir).map_err(|e| fail(OP, e))?;
    c.log = task_dir.join("consumer.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&c.log)
        .map_err(|e| fail(OP, e))?;
    let err = log.try_clone().map_err(|e| fail(OP, e))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args([
        "sandbox",
        "consumer",
        "--service",
        &c.service,
        "--task",
        &c.task,
    ])
    // A container's environment: its image's basics and its task definition's variables.
    .env_clear()
    .env(
        "PATH",
        std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
    )
    .env("LANG", "C.UTF-8")
    .env("HOME", &task_dir)
    .env(super::DIR_ENV, dir)
    .stdin(std::process::Stdio::null())
    .stdout(log)
    .stderr(err);
    // The CA bundle the container trusts, where OpenSSL-based clients look for it.
    let mut env = vec![(
        "SSL_CERT_FILE".to_string(),
        dir.join("tls").join("ca.pem").display().to_string(),
    )];
    let mut secret_vars = Vec::new();
    for v in &c.vars {
        let value = match &v.source {
            VarSource::Plain(s) => s.clone(),
            VarSource::Parameter(p) => {
                secret_vars.push(v.name.clone());
                params
                    .get(p)?
                    .map(|p| p.value.expose().to_string())
                    .ok_or_else(|| {
                        fail(OP, format!("secret {p} of {} does not exist", c.service))
                    })?
            }
        };
        env.push((v.name.clone(), value));
    }
    super::faults::apply(dir, c.fault, &mut env, &secret_vars)?;
    for (k, v) in &env {
        cmd.env(k, v);
    }
    // Where cachedeck itself logs (not part of the container's environment as exec shows it).
    if let Some(v) = std::env::var_os("CACHEDECK_STATE_DIR") {
        cmd.env("CACHEDECK_STATE_DIR", v);
    }
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
    let child = cmd.spawn().map_err(|e| fail(OP, e))?;
    c.pid = child.id() as i32;
    std::thread::spawn(move || {
        let mut child = child;
        let _ = child.wait();
    });
    Ok(())
}

/// Whether `pid` is one of our consumer tasks (never signal a recycled pid).
pub fn is_consumer_pid(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            let text = String::from_utf8_lossy(&c);
            text.contains("sandbox\0consumer")
        })
        .unwrap_or(false)
}

/// Stops a task as ECS does: SIGTERM, up to `timeout`, then SIGKILL.
pub fn stop_task(pid: i32, timeout: Duration) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    if pid <= 0 || !is_consumer_pid(pid) {
        return;
    }
    let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    let until = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < until {
        if !is_consumer_pid(pid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
}

/// Replaces every task of a consumer service (UpdateService `forceNewDeployment`).
pub async fn replace(
    dir: &Path,
    env: &str,
    service: &str,
    stop_timeout: Duration,
) -> Result<(Vec<String>, Vec<String>), ControlPlaneError> {
    const OP: &str = "UpdateService";
    let _lock = super::setup::lock(dir).await.map_err(|e| fail(OP, e))?;
    let mut state = State::load(dir)
        .map_err(|e| fail(OP, e))?
        .ok_or_else(|| fail(OP, "the sandbox is down"))?;
    let exe = std::env::current_exe().map_err(|e| fail(OP, e))?;
    let params = ParamStore::new(dir);
    let Some(c) = state
        .consumers
        .iter_mut()
        .find(|c| c.env == env && c.service == service)
    else {
        return Err(ControlPlaneError::NotFound {
            what: format!("ECS service {service} in cluster {env} (ServiceNotFoundException)"),
        });
    };
    let old = c.task.clone();
    let pid = c.pid;
    tokio::task::spawn_blocking(move || stop_task(pid, stop_timeout))
        .await
        .map_err(|e| fail(OP, e))?;
    start_task(dir, &exe, &params, c)?;
    let new = c.task.clone();
    state.save(dir).map_err(|e| fail(OP, e))?;
    Ok((vec![old], vec![new]))
}

/// The consumer task's main loop (`cachedeck sandbox consumer`): a pool of connections to
/// the cache, built from the task's environment; runs until SIGTERM or the sandbox is gone.
pub async fn run(service: &str, task: &str) -> Result<(), String> {
    let dir = super::sandbox_dir();
    let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
    let (url_var, user_var) = match service {
        "orders-sidekiq" => ("SIDEKIQ_REDIS_URL", None),
        "paperwurks-celery" => ("CELERY_BROKER_URL", None),
        _ => ("REDIS_URL", Some("REDIS_USERNAME")),
    };
    let text = var(url_var).ok_or_else(|| format!("{url_var} is not set"))?;
    let url = url::Url::parse(&text).map_err(|_| format!("{url_var} is not a URL"))?;
    let host = url.host_str().unwrap_or("127.0.0.1").to_string();
    let port = url.port().unwrap_or(6379);
    let tls = url.scheme() == "rediss";
    let from_url =
        crate::valkey::connect::password_from_url(url_var, &text).map_err(|e| e.to_string())?;
    let password = var("REDIS_PASSWORD").map(SecretString::from).or(from_url);
    let user = user_var
        .and_then(var)
        .or_else(|| Some(url.username().to_string()).filter(|u| !u.is_empty()));
    let ca = var("SSL_CERT_FILE");
    let connector = Connector::new(
        Auth::new(user, password),
        tls,
        ca.as_deref(),
        ConnectOptions {
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(2),
        },
    )
    .map_err(|e| e.to_string())?;
    let endpoint = Endpoint::new(host, port, tls);
    let log = |line: String| {
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{now} {task} {line}");
        let _ = out.flush();
    };
    log(format!(
        "started; {POOL} connections to {}",
        endpoint.address()
    ));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    // A cluster client learns the primaries from CLUSTER SLOTS (the addresses the nodes
    // announce) and spreads its connections over them.
    let targets = match cluster_primaries(&connector, &endpoint).await {
        Some(primaries) if !primaries.is_empty() => {
            log(format!(
                "cluster: connections spread over {} primaries: {}",
                primaries.len(),
                primaries
                    .iter()
                    .map(Endpoint::address)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            primaries
        }
        _ => vec![endpoint.clone()],
    };
    let mut pool: Vec<Option<crate::valkey::connect::NodeConnection>> =
        (0..POOL).map(|_| None).collect();
    loop {
        if !dir.join(super::state::STATE_FILE).exists() {
            log("sandbox gone; exiting".into());
            return Ok(());
        }
        for (i, slot) in pool.iter_mut().enumerate() {
            if slot.is_none() {
                match connector.connect(&targets[i % targets.len()]).await {
                    Ok(mut conn) => {
                        let _ = conn
                            .query::<redis::Value>(redis::cmd("CLIENT").arg("SETNAME").arg(task))
                            .await;
                        log(format!("connection {i} opened"));
                        *slot = Some(conn);
                    }
                    Err(e) => {
                        log(format!("error: connection {i}: {e}"));
                        continue;
                    }
                }
            }
            if let Some(conn) = slot.as_mut()
                && let Err(e) = conn.query::<redis::Value>(&redis::cmd("PING")).await
            {
                log(format!("error: connection {i}: {e}"));
                *slot = None;
            }
        }
        tokio::select! {
            _ = term.recv() => {
                log("SIGTERM: closing connections; exiting".into());
                return Ok(());
            }
            _ = tokio::time::sleep(TICK) => {}
        }
    }
}

/// The primaries of a cluster as CLUSTER SLOTS names them (same TLS as `endpoint`); `None`
/// when the endpoint is no cluster node or does not answer.
async fn cluster_primaries(connector: &Connector, endpoint: &Endpoint) -> Option<Vec<Endpoint>> {
    let mut conn = connector.connect(endpoint).await.ok()?;
    let reply: redis::Value = conn.query(redis::cmd("CLUSTER").arg("SLOTS")).await.ok()?;
    Some(primaries_of(&reply, endpoint))
}

/// The distinct primaries of a CLUSTER SLOTS reply, in slot order; an empty host means the
/// address the client used.
fn primaries_of(reply: &redis::Value, endpoint: &Endpoint) -> Vec<Endpoint> {
    let text = |v: &redis::Value| match v {
        redis::Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        redis::Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    let mut out: Vec<Endpoint> = Vec::new();
    let redis::Value::Array(ranges) = reply else {
        return out;
    };
    for range in ranges {
        let redis::Value::Array(fields) = range else {
            continue;
        };
        let Some(redis::Value::Array(primary)) = fields.get(2) else {
            continue;
        };
        let (Some(host), Some(redis::Value::Int(port))) =
            (primary.first().and_then(text), primary.get(1))
        else {
            continue;
        };
        let host = if host.is_empty() || host == "?" {
            endpoint.host.clone()
        } else {
            host
        };
        let Ok(port) = u16::try_from(*port) else {
            continue;
        };
        let ep = Endpoint::new(host, port, endpoint.tls);
        if !out.contains(&ep) {
            out.push(ep);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value as V;

    fn bulk(s: &str) -> V {
        V::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn primaries_come_from_cluster_slots_in_slot_order() {
        let range = |a: i64, b: i64, host: &str, port: i64| {
            V::Array(vec![
                V::Int(a),
                V::Int(b),
                V::Array(vec![bulk(host), V::Int(port), bulk("id")]),
                V::Array(vec![bulk(host), V::Int(port + 1), bulk("id2")]),
            ])
        };
        let reply = V::Array(vec![
            range(0, 5460, "127.0.1.1", 7000),
            range(5461, 10922, "", 7002),
            range(10923, 16383, "127.0.1.1", 7000),
        ]);
        let from = Endpoint::new("127.0.1.9", 7000, true);
        assert_eq!(
            primaries_of(&reply, &from),
            vec![
                Endpoint::new("127.0.1.1", 7000, true),
                Endpoint::new("127.0.1.9", 7002, true),
            ]
        );
        assert!(primaries_of(&V::Nil, &from).is_empty());
    }
}
