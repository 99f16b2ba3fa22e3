//! `connectivity-check`: runs [`crate::connectivity::check`] from where cachedeck runs
//! against one endpoint or node of the cache and fails naming the broken layer and its
//! likely cause. Read-only.

use crate::connectivity::{self, ConnectivityReport, remote};
use crate::domain::Endpoint;
use crate::runbook::action::{
    Action, ActionContext, ActionError, InputSpec, Inputs, OutputSpec, PlanContext, PlannedCall,
};
use crate::runbook::actions::nodes;
use crate::runbook::value::{Value, ValueKind, Values};
use crate::valkey::connect::ConnectOptions;
use async_trait::async_trait;
use std::time::Duration;

pub struct ConnectivityCheck;

const INPUTS: &[InputSpec] = &[
    InputSpec::optional(
        "node",
        ValueKind::String,
        Some("\"endpoint\""),
        "`endpoint` (default), or a node id",
    ),
    InputSpec::optional(
        "pings",
        ValueKind::Int,
        Some("20"),
        "PINGs for the latency figures",
    ),
    InputSpec::optional(
        "connect_timeout",
        ValueKind::Duration,
        Some("\"5s\""),
        "deadline of each layer (dns, tcp) and of tls + auth + the first PING together",
    ),
    InputSpec::optional(
        "from",
        ValueKind::String,
        Some("\"here\""),
        "`here`, or `consumer[:SERVICE]`: also inside a consumer's task through ECS Exec, side by side",
    ),
    InputSpec::optional(
        "probe",
        ValueKind::String,
        Some("\"auto\""),
        "the client used inside the task: auto, valkey-cli, python3, ruby, openssl or dev-tcp",
    ),
];
const OUTPUTS: &[OutputSpec] = &[
    OutputSpec {
        name: "report",
        kind: ValueKind::Any,
        doc: "the whole report: stages, addresses, latency, role",
    },
    OutputSpec {
        name: "p50_ms",
        kind: ValueKind::Any,
        doc: "median PING round trip, ms",
    },
    OutputSpec {
        name: "p99_ms",
        kind: ValueKind::Any,
        doc: "99th percentile PING round trip, ms",
    },
    OutputSpec {
        name: "role",
        kind: ValueKind::Any,
        doc: "primary or replica",
    },
    OutputSpec {
        name: "from_task",
        kind: ValueKind::Any,
        doc: "with from=consumer: the check inside the task (service, task, tool, variables, report)",
    },
];

#[async_trait]
impl Action for ConnectivityCheck {
    fn name(&self) -> &'static str {
        "connectivity-check"
    }
    fn summary(&self) -> &'static str {
        "Check DNS, TCP, TLS, AUTH, PING latency and role of an endpoint, layer by layer"
    }
    fn inputs(&self) -> &'static [InputSpec] {
        INPUTS
    }
    fn outputs(&self) -> &'static [OutputSpec] {
        OUTPUTS
    }
    fn dangerous(&self) -> bool {
        false
    }
    fn plan(&self, ctx: &PlanContext<'_>, inputs: &Inputs) -> Vec<PlannedCall> {
        let call = format!(
            "DNS, TCP, TLS, AUTH, ACL WHOAMI, PING ×{}, ROLE",
            inputs.show("pings")
        );
        nodes::plan_each(ctx.cache, inputs, &call)
    }
    async fn run(&self, ctx: &ActionContext, inputs: &Inputs) -> Result<Values, ActionError> {
        let targets = nodes::select(&ctx.cache, inputs.str("node")?)?;
        let Some(t) = targets.first() else {
            return Err(ActionError::failed("select a node: none"));
        };
        let timeout = inputs.duration("connect_timeout")?;
        let connector = ctx.connector().await?.with_options(ConnectOptions {
            connect_timeout: timeout,
            command_timeout: timeout,
        });
        let pings = inputs.int("pings")?.clamp(1, 10_000) as u32;
        let report = connectivity::check(&connector, &t.endpoint, pings).await;
        let from = inputs.str("from")?;
        let mut from_task = serde_json::Value::Null;
        let mut latency = report.latency.clone();
        let mut role = report.role.clone();
        if let Some(rest) = from.strip_prefix("consumer") {
            let service = rest.strip_prefix(':').filter(|s| !s.is_empty());
            if !rest.is_empty() && service.is_none() {
                return Err(ActionError::Input {
                    name: "from".into(),
                    problem: format!("`{from}` is not `here`, `consumer` or `consumer:SERVICE`"),
                });
            }
            let probe =
                remote::Probe::parse(inputs.str("probe")?).ok_or_else(|| ActionError::Input {
                    name: "probe".into(),
                    problem: "not one of auto, valkey-cli, python3, ruby, openssl, dev-tcp".into(),
                })?;
            let inside = from_consumer(ctx, service, probe, &t.endpoint, pings, timeout).await?;
            let (service, task, remote) = &inside;
            let cause = remote::diagnose(remote, &report, ctx.cache.endpoint.as_ref());
            ctx.output(format!(
                "from task {task} of {service} ({}; reads {}) | from here",
                remote.tool.as_deref().unwrap_or("no tool"),
                if remote.variables.is_empty() {
                    "no variable".to_string()
                } else {
                    remote.variables.join(", ")
                },
            ));
            for layer in ["dns", "tcp", "tls", "auth", "ping", "latency", "role"] {
                let a = side(&remote.report, layer);
                let b = side(&report, layer);
                if a.is_some() || b.is_some() {
                    ctx.output(format!(
                        "{layer:<7} task: {} | here: {}",
                        a.unwrap_or_else(|| "-".into()),
                        b.unwrap_or_else(|| "-".into())
                    ));
                }
            }
            let mut json = serde_json::to_value(remote).unwrap_or_default();
            json["service"] = service.clone().into();
            json["task"] = task.clone().into();
            json["likely_cause"] = cause.clone().into();
            from_task = json;
            if let Some(f) = &remote.report.failure {
                return Err(ActionError::failed(format!(
                    "reach {} from task {task} of {service}: {} layer: {}; likely cause: {}",
                    remote.report.target,
                    f.layer,
                    f.detail,
                    cause.unwrap_or_default()
                )));
            }
            latency = remote.report.latency.clone().or(latency);
            role = remote.report.role.clone().or(role);
        } else if from != "here" {
            return Err(ActionError::Input {
                name: "from".into(),
                problem: format!("`{from}` is not `here`, `consumer` or `consumer:SERVICE`"),
            });
        } else {
            for s in &report.stages {
                let took = s.ms.map(|m| format!(" ({m} ms)")).unwrap_or_default();
                let mark = if s.ok { "ok" } else { "FAILED" };
                ctx.output(format!("{} {mark}{took}: {}", s.layer, s.detail));
            }
        }
        if let Some(f) = &report.failure {
            return Err(ActionError::failed(format!(
                "reach {} ({}): {f}",
                t.label, report.target
            )));
        }
        let num = |v: Option<f64>| Value::Json(v.map(serde_json::Value::from).unwrap_or_default());
        Ok(Values::new()
            .with("p50_ms", num(latency.as_ref().map(|l| l.p50_ms)))
            .with("p99_ms", num(latency.as_ref().map(|l| l.p99_ms)))
            .with(
                "role",
                Value::Json(role.map(serde_json::Value::from).unwrap_or_default()),
            )
            .with("from_task", Value::Json(from_task))
            .with(
                "report",
                Value::Json(serde_json::to_value(&report).unwrap_or_default()),
            ))
    }
}

/// One layer of a report for the side-by-side view.
fn side(r: &ConnectivityReport, layer: &str) -> Option<String> {
    let s = r.stages.iter().find(|s| s.layer == layer)?;
    let took = s.ms.map(|m| format!(" {m} ms")).unwrap_or_default();
    let mark = if s.ok { "ok" } else { "FAILED" };
    Some(format!("{mark}{took} {}", s.detail))
}

/// The check inside a consumer's task: (service, task id, what the probe reported).
async fn from_consumer(
    ctx: &ActionContext,
    service: Option<&str>,
    probe: remote::Probe,
    endpoint: &Endpoint,
    pings: u32,
    timeout: Duration,
) -> Result<(String, String, remote::RemoteReport), ActionError> {
    let target =
        crate::ecsexec::target::consumer(ctx.plane.clone(), &ctx.cache, service, None, None)
            .await
            .map_err(|e| ActionError::failed(format!("find a consumer task: {e}")))?;
    let variables = target
        .consumer
        .as_ref()
        .map(|c| c.variables.clone())
        .unwrap_or_default();
    let argv = remote::command(probe, &variables, endpoint, pings, timeout.as_secs_f64());
    let captured = crate::ecsexec::target::run_captured(&target, &argv, None, 1 << 20)
        .await
        .map_err(|e| {
            ActionError::failed(format!(
                "run the check in task {} of {}: {e}",
                target.task.task_id, target.service
            ))
        })?;
    Ok((
        target.service.clone(),
        target.task.task_id.clone(),
        remote::parse(&captured.stdout),
    ))
}
