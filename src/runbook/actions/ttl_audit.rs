//! The runbook action `ttl-audit` (read-only): runs the audit on the step's cache, reports
//! progress (keys scanned of DBSIZE), optionally writes the report (JSON, CSV or Markdown by
//! the file's extension) and returns the totals and the whole report (for the runner and the
//! TUI). On a serverless cache it first estimates the ECPU cost and refuses when it is over
//! the step's `max_usd`.

use crate::audit::cost::{self, CostInputs, PriceTable};
use crate::audit::report::AuditReport;
use crate::audit::{AuditOptions, gentle::LatencyGuard};
use crate::domain::CacheKind;
use crate::runbook::action::{
    Action, ActionContext, ActionError, InputSpec, Inputs, OutputSpec, PlanContext, PlannedCall,
};
use crate::runbook::value::{Value, ValueKind, Values};
use async_trait::async_trait;
use std::collections::HashMap;
use tokio::sync::mpsc;

/// The action's name: runbooks with a step of it have an audit report to print or show.
pub const NAME: &str = "ttl-audit";

pub struct TtlAudit;

const INPUTS: &[InputSpec] = &[
    InputSpec::optional(
        "count",
        ValueKind::Int,
        Some("1000"),
        "SCAN COUNT per batch",
    ),
    InputSpec::optional(
        "rate",
        ValueKind::Int,
        Some("0"),
        "keys per second over the whole cache (0: unpaced)",
    ),
    InputSpec::optional(
        "memory_samples",
        ValueKind::Int,
        Some("0"),
        "MEMORY USAGE … SAMPLES n per key (0: memory not sampled)",
    ),
    InputSpec::optional(
        "max_patterns",
        ValueKind::Int,
        Some("1000"),
        "distinct patterns kept",
    ),
    InputSpec::optional(
        "patterns",
        ValueKind::List,
        None,
        "user globs, tried in order",
    ),
    InputSpec::optional("top", ValueKind::Int, Some("10"), "biggest keys listed"),
    InputSpec::optional(
        "p99_threshold",
        ValueKind::Duration,
        Some("\"50ms\""),
        "pause while the side PING probe's p99 is over this",
    ),
    InputSpec::optional(
        "prefer_replicas",
        ValueKind::Bool,
        Some("true"),
        "scan a replica of each shard when one is healthy",
    ),
    InputSpec::optional(
        "report",
        ValueKind::String,
        None,
        "write the report here (.json, .csv or .md)",
    ),
    InputSpec::optional(
        "max_usd",
        ValueKind::Any,
        Some("1.0"),
        "serverless: refuse when the estimated cost is higher",
    ),
];

const OUTPUTS: &[OutputSpec] = &[
    OutputSpec {
        name: "total_keys",
        kind: ValueKind::Int,
        doc: "keys counted",
    },
    OutputSpec {
        name: "keys_without_ttl",
        kind: ValueKind::Int,
        doc: "keys without TTL",
    },
    OutputSpec {
        name: "complete",
        kind: ValueKind::Bool,
        doc: "every shard scanned to the end",
    },
    OutputSpec {
        name: "findings",
        kind: ValueKind::Any,
        doc: "findings ranked by impact (text)",
    },
    OutputSpec {
        name: "report",
        kind: ValueKind::Any,
        doc: "the whole audit report (bounded by max_patterns, not by keys)",
    },
];

fn options(inputs: &Inputs) -> Result<AuditOptions, ActionError> {
    let positive = |name: &str| -> Result<Option<u64>, ActionError> {
        Ok(inputs.opt_int(name)?.filter(|v| *v > 0).map(|v| v as u64))
    };
    let defaults = AuditOptions::default();
    Ok(AuditOptions {
        count: positive("count")?.map_or(defaults.count, |c| c.min(100_000) as u32),
        rate_limit: positive("rate")?,
        memory_samples: positive("memory_samples")?.map(|s| s.min(10_000) as u32),
        max_patterns: positive("max_patterns")?.map_or(defaults.max_patterns, |m| m as usize),
        user_patterns: inputs.list("patterns")?,
        top_n: positive("top")?.map_or(defaults.top_n, |t| t as usize),
        prefer_replicas: inputs.get("prefer_replicas").is_none()
            || inputs.bool("prefer_replicas")?,
        guard: LatencyGuard {
            p99_threshold: inputs
                .opt_duration("p99_threshold")?
                .unwrap_or(defaults.guard.p99_threshold),
            ..defaults.guard
        },
        ..defaults
    })
}

/// A dollar ceiling input (`max_usd`): a number, or text holding one (runbook parameters
/// have no float type); 1.0 when absent.
pub(crate) fn dollars(inputs: &Inputs, name: &str) -> Result<f64, ActionError> {
    let bad = |shown: String| {
        ActionError::failed(format!(
            "read {name} `{shown}`: give a number of dollars such as 2.5"
        ))
    };
    match inputs.get(name) {
        None => Ok(1.0),
        Some(Value::Json(serde_json::Value::Number(n))) => {
            n.as_f64().ok_or_else(|| bad(n.to_string()))
        }
        Some(Value::Json(serde_json::Value::String(s))) => s
            .trim()
            .trim_start_matches('$')
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| bad(crate::escape::escape(s))),
        Some(_) => Err(bad("?".into())),
    }
}

/// Writes `report` to `path` in the format its extension names.
fn write_report(report: &AuditReport, path: &str) -> Result<(), ActionError> {
    let text = match std::path::Path::new(path)
        .extension()
        .and_then(|e| e.to_str())
    {
        Some("csv") => report.to_csv(),
        Some("md") | Some("markdown") => report.to_markdown(),
        _ => report.to_json(),
    };
    std::fs::write(path, text)
        .map_err(|e| ActionError::failed(format!("write the audit report to {path}: {e}")))
}

#[async_trait]
impl Action for TtlAudit {
    fn name(&self) -> &'static str {
        NAME
    }
    fn summary(&self) -> &'static str {
        "scan every key (gently) and report keys without TTL by pattern"
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
        let target = ctx
            .cache
            .endpoint
            .as_ref()
            .map_or_else(|| "<no endpoint>".to_string(), |e| e.address());
        let mut per_key = "PTTL k + TYPE k".to_string();
        if inputs.opt_int("memory_samples").ok().flatten().unwrap_or(0) > 0 {
            per_key.push_str(&format!(
                " + MEMORY USAGE k SAMPLES {}",
                inputs.show("memory_samples")
            ));
        }
        vec![
            PlannedCall::valkey(
                target.clone(),
                "CLUSTER NODES (cluster mode: find shards)",
                false,
            ),
            PlannedCall::valkey(
                "each shard (a replica when present, READONLY)",
                format!(
                    "SCAN cursor COUNT {} with one pipeline per batch: {per_key} + DBSIZE; PING probe on a side connection",
                    inputs.show("count")
                ),
                false,
            ),
        ]
    }
    async fn run(&self, ctx: &ActionContext, inputs: &Inputs) -> Result<Values, ActionError> {
        let opts = options(inputs)?;
        let seed = ctx.cache.endpoint.clone().ok_or_else(|| {
            ActionError::failed(format!(
                "audit cache `{}`: it has no endpoint yet (status {})",
                ctx.cache.name, ctx.cache.status
            ))
        })?;
        let connector = ctx.connector().await?.clone();
        let node_tls = ctx.cache.nodes().next().map_or(seed.tls, |n| n.tls);
        if ctx.cache.kind == CacheKind::Serverless {
            self.check_cost(ctx, inputs, &opts).await?;
        }
        let (tx, mut rx) = mpsc::channel(256);
        let run = crate::audit::run(
            &connector,
            &seed,
            node_tls,
            &opts,
            Some(tx),
            ctx.cancel.clone(),
        );
        tokio::pin!(run);
        let mut nodes: HashMap<String, (u64, u64)> = HashMap::new();
        let report = loop {
            tokio::select! {
                r = &mut run => break r,
                Some(p) = rx.recv() => {
                    nodes.insert(p.node, (p.scanned, p.dbsize));
                    let done = nodes.values().map(|v| v.0).sum();
                    let total = nodes.values().map(|v| v.1).sum();
                    ctx.progress(done, Some(total), "keys scanned");
                }
            }
        }
        .map_err(|e| ActionError::failed(format!("audit cache `{}`: {e}", ctx.cache.name)))?;
        if ctx.cancel.is_cancelled() {
            return Err(ActionError::Interrupted);
        }
        for f in report.findings.iter().take(10) {
            ctx.output(f.message.clone());
        }
        if let Some(path) = inputs.opt_str("report")? {
            write_report(&report, path)?;
            ctx.output(format!("report written to {path}"));
        }
        let findings: Vec<&str> = report.findings.iter().map(|f| f.message.as_str()).collect();
        let whole = serde_json::to_value(&report)
            .map_err(|e| ActionError::failed(format!("encode the audit report: {e}")))?;
        Ok(Values::new()
            .with("total_keys", Value::int(report.total_keys as i64))
            .with(
                "keys_without_ttl",
                Value::int(report.keys_without_ttl as i64),
            )
            .with("complete", Value::bool(report.complete))
            .with("findings", Value::Json(serde_json::json!(findings)))
            .with("report", Value::Json(whole)))
    }
}

impl TtlAudit {
    /// Serverless bills per KB moved: estimate from DBSIZE and a sample of key names.
    async fn check_cost(
        &self,
        ctx: &ActionContext,
        inputs: &Inputs,
        opts: &AuditOptions,
    ) -> Result<(), ActionError> {
        let mut conn = ctx.connect_endpoint().await?;
        let dbsize: u64 = conn.query(&redis::cmd("DBSIZE")).await?;
        let (_, sample): (u64, Vec<Vec<u8>>) = conn
            .query(redis::cmd("SCAN").arg(0).arg("COUNT").arg(100))
            .await?;
        let mean = if sample.is_empty() {
            16.0
        } else {
            sample.iter().map(Vec::len).sum::<usize>() as f64 / sample.len() as f64
        };
        let est = cost::estimate(
            CostInputs {
                dbsize,
                mean_key_bytes: mean,
                count: opts.count,
                memory: opts.memory_samples.is_some(),
            },
            &PriceTable::default(),
        );
        let max_usd = dollars(inputs, "max_usd")?;
        ctx.output(format!(
            "serverless estimate: {} keys, {} ECPUs, ${:.4}",
            dbsize, est.ecpus, est.usd
        ));
        if est.usd > max_usd {
            return Err(ActionError::failed(format!(
                "start the audit: its estimated cost ${:.4} is over max_usd ${max_usd:.4}; to agree, run it again with --param max_usd=<dollars> (or raise it in the TUI's form)",
                est.usd
            )));
        }
        Ok(())
    }
}
