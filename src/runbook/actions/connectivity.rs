//! `connectivity-check`: runs [`crate::connectivity::check`] from where cachedeck runs
//! against one endpoint or node of the cache and fails naming the broken layer and its
//! likely cause. Read-only.

use crate::connectivity;
use crate::runbook::action::{
    Action, ActionContext, ActionError, InputSpec, Inputs, OutputSpec, PlanContext, PlannedCall,
};
use crate::runbook::actions::nodes;
use crate::runbook::value::{Value, ValueKind, Values};
use crate::valkey::connect::ConnectOptions;
use async_trait::async_trait;

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
        for s in &report.stages {
            let took = s.ms.map(|m| format!(" ({m} ms)")).unwrap_or_default();
            let mark = if s.ok { "ok" } else { "FAILED" };
            ctx.output(format!("{} {mark}{took}: {}", s.layer, s.detail));
        }
        if let Some(f) = &report.failure {
            return Err(ActionError::failed(format!(
                "reach {} ({}): {f}",
                t.label, report.target
            )));
        }
        let num = |v: Option<f64>| Value::Json(v.map(serde_json::Value::from).unwrap_or_default());
        Ok(Values::new()
            .with("p50_ms", num(report.latency.as_ref().map(|l| l.p50_ms)))
            .with("p99_ms", num(report.latency.as_ref().map(|l| l.p99_ms)))
            .with(
                "role",
                Value::Json(
                    report
                        .role
                        .clone()
                        .map(serde_json::Value::from)
                        .unwrap_or_default(),
                ),
            )
            .with(
                "report",
                Value::Json(serde_json::to_value(&report).unwrap_or_default()),
            ))
    }
}
