//! `ping` and `info`: read-only probes of a cache's nodes, each under the connect and
//! command deadlines.

use crate::runbook::action::{
    Action, ActionContext, ActionError, InputSpec, Inputs, OutputSpec, PlanContext, PlannedCall,
};
use crate::runbook::actions::nodes;
use crate::runbook::value::{Value, ValueKind, Values};
use async_trait::async_trait;
use std::time::Instant;

pub struct Ping;

const PING_INPUTS: &[InputSpec] = &[
    InputSpec::optional(
        "node",
        ValueKind::String,
        Some("\"endpoint\""),
        nodes::NODE_DOC,
    ),
    InputSpec::optional("count", ValueKind::Int, Some("1"), "PINGs per node"),
];
const PING_OUTPUTS: &[OutputSpec] = &[
    OutputSpec {
        name: "nodes",
        kind: ValueKind::Int,
        doc: "nodes that answered",
    },
    OutputSpec {
        name: "max_latency_ms",
        kind: ValueKind::Any,
        doc: "slowest PING round trip, ms",
    },
];

#[async_trait]
impl Action for Ping {
    fn name(&self) -> &'static str {
        "ping"
    }
    fn summary(&self) -> &'static str {
        "PING nodes and measure the round trip"
    }
    fn inputs(&self) -> &'static [InputSpec] {
        PING_INPUTS
    }
    fn outputs(&self) -> &'static [OutputSpec] {
        PING_OUTPUTS
    }
    fn dangerous(&self) -> bool {
        false
    }
    fn plan(&self, ctx: &PlanContext<'_>, inputs: &Inputs) -> Vec<PlannedCall> {
        nodes::plan_each(
            ctx.cache,
            inputs,
            &format!("PING ×{}", inputs.show("count")),
        )
    }
    async fn run(&self, ctx: &ActionContext, inputs: &Inputs) -> Result<Values, ActionError> {
        let targets = nodes::select(&ctx.cache, inputs.str("node")?)?;
        let count = inputs.int("count")?.clamp(1, 10_000);
        let mut worst = 0.0f64;
        for (i, t) in targets.iter().enumerate() {
            let mut conn = ctx.connector().await?.connect(&t.endpoint).await?;
            for _ in 0..count {
                let started = Instant::now();
                let _: String = conn.query(&redis::cmd("PING")).await?;
                worst = worst.max(started.elapsed().as_secs_f64() * 1000.0);
            }
            ctx.progress(i as u64 + 1, Some(targets.len() as u64), t.label.clone());
            ctx.output(format!("{} ({}): PONG", t.label, t.endpoint.address()));
        }
        Ok(Values::new()
            .with("nodes", Value::int(targets.len() as i64))
            .with(
                "max_latency_ms",
                Value::Json(serde_json::json!((worst * 1000.0).round() / 1000.0)),
            ))
    }
}

pub struct InfoFields;

const INFO_INPUTS: &[InputSpec] = &[
    InputSpec::optional(
        "node",
        ValueKind::String,
        Some("\"endpoint\""),
        "one node: `endpoint` (default) or a node id",
    ),
    InputSpec::required(
        "fields",
        ValueKind::List,
        "INFO fields to read, e.g. [\"role\", \"connected_slaves\"]",
    ),
];
const INFO_OUTPUTS: &[OutputSpec] = &[
    OutputSpec {
        name: "fields",
        kind: ValueKind::Any,
        doc: "the fields read, by name (refer to one as `steps.ID.outputs.fields.NAME`)",
    },
    OutputSpec {
        name: "keys",
        kind: ValueKind::Int,
        doc: "keys in all databases (from the keyspace section)",
    },
];

#[async_trait]
impl Action for InfoFields {
    fn name(&self) -> &'static str {
        "info"
    }
    fn summary(&self) -> &'static str {
        "Read INFO fields of one node as outputs"
    }
    fn inputs(&self) -> &'static [InputSpec] {
        INFO_INPUTS
    }
    fn outputs(&self) -> &'static [OutputSpec] {
        INFO_OUTPUTS
    }
    fn dangerous(&self) -> bool {
        false
    }
    fn plan(&self, ctx: &PlanContext<'_>, inputs: &Inputs) -> Vec<PlannedCall> {
        nodes::plan_each(ctx.cache, inputs, "INFO everything")
    }
    async fn run(&self, ctx: &ActionContext, inputs: &Inputs) -> Result<Values, ActionError> {
        let targets = nodes::select(&ctx.cache, inputs.str("node")?)?;
        let Some(t) = targets.first() else {
            return Err(ActionError::failed("select a node: none"));
        };
        let mut conn = ctx.connector().await?.connect(&t.endpoint).await?;
        let (info, _) = conn.info().await?;
        let mut fields = serde_json::Map::new();
        for f in inputs.list("fields")? {
            let v = info.get(&f).map(|v| {
                // Numbers stay numbers so `check` can compare them.
                v.parse::<i64>()
                    .map(serde_json::Value::from)
                    .unwrap_or_else(|_| serde_json::Value::String(v.to_string()))
            });
            fields.insert(f, v.unwrap_or(serde_json::Value::Null));
        }
        ctx.output(format!(
            "{}: {}",
            t.label,
            crate::escape::escape_capped(
                serde_json::Value::Object(fields.clone()).to_string(),
                400
            )
        ));
        Ok(Values::new()
            .with("fields", Value::Json(serde_json::Value::Object(fields)))
            .with("keys", Value::int(info.total_keys() as i64)))
    }
}
