//! `ttl-remediate-survey`: the read-only count before anything is changed — keys matching
//! the pattern with and without TTL, escaped examples, how long applying would take, and on
//! serverless what applying would cost.

use super::{
    COUNT, DB, P99, PATTERN, RATE, SCAN_RATE, drive, incomplete, options, out, positive, scan_call,
    target,
};
use crate::audit::cost::{self, CostInputs, PriceTable};
use crate::domain::CacheKind;
use crate::runbook::action::{
    Action, ActionContext, ActionError, InputSpec, Inputs, OutputSpec, PlanContext, PlannedCall,
};
use crate::runbook::value::{Value, ValueKind, Values};
use async_trait::async_trait;
use std::time::{Duration, Instant};

const SURVEY_INPUTS: &[InputSpec] = &[
    PATTERN,
    RATE,
    COUNT,
    SCAN_RATE,
    DB,
    P99,
    InputSpec::optional(
        "examples",
        ValueKind::Int,
        Some("5"),
        "example keys without TTL shown (escaped)",
    ),
    InputSpec::optional(
        "apply_rate",
        ValueKind::Int,
        None,
        "the rate applying will use, for the estimate (default: `rate`)",
    ),
];

const SURVEY_OUTPUTS: &[OutputSpec] = &[
    out(
        "matching",
        ValueKind::String,
        "which keys the pattern matches, in words",
    ),
    out(
        "pattern_kind",
        ValueKind::String,
        "`glob` or `audit-pattern`",
    ),
    out("matched", ValueKind::Int, "keys matching the pattern"),
    out(
        "no_ttl",
        ValueKind::Int,
        "of those, keys without TTL (would get one)",
    ),
    out(
        "with_ttl",
        ValueKind::Int,
        "of those, keys that already have a TTL (left alone)",
    ),
    out(
        "examples",
        ValueKind::List,
        "example keys without TTL, escaped",
    ),
    out(
        "estimated_apply_s",
        ValueKind::Int,
        "how long applying takes at `rate`",
    ),
    out(
        "estimated_usd",
        ValueKind::Any,
        "serverless: what applying costs at the default price table (0 elsewhere)",
    ),
    out(
        "complete",
        ValueKind::Bool,
        "every shard counted to the end",
    ),
    out("duration_ms", ValueKind::Int, "how long the survey took"),
];

/// `ttl-remediate-survey`: counts, read-only.
pub struct TtlRemediateSurvey;

#[async_trait]
impl Action for TtlRemediateSurvey {
    fn name(&self) -> &'static str {
        "ttl-remediate-survey"
    }
    fn summary(&self) -> &'static str {
        "count the keys matching a pattern with and without TTL (read-only)"
    }
    fn inputs(&self) -> &'static [InputSpec] {
        SURVEY_INPUTS
    }
    fn outputs(&self) -> &'static [OutputSpec] {
        SURVEY_OUTPUTS
    }
    fn dangerous(&self) -> bool {
        false
    }
    fn plan(&self, ctx: &PlanContext<'_>, inputs: &Inputs) -> Vec<PlannedCall> {
        vec![
            PlannedCall::valkey(
                target(ctx),
                "CLUSTER NODES (cluster mode: find shards); INFO",
                false,
            ),
            scan_call(inputs),
        ]
    }
    async fn run(&self, ctx: &ActionContext, inputs: &Inputs) -> Result<Values, ActionError> {
        let opts = options(inputs, false)?;
        ctx.output(format!("matching: {}", opts.matcher.describe()));
        let started = Instant::now();
        let found = drive(ctx, &opts, None, None, false).await?;
        let t = found.totals();
        let examples: Vec<String> = found
            .shards
            .values()
            .flat_map(|s| s.examples.iter().cloned())
            .take(opts.examples)
            .collect();
        let apply_rate = positive(inputs, "apply_rate")?.unwrap_or(opts.rate);
        let estimate = t.matched.div_ceil(apply_rate);
        ctx.output(format!(
            "{} keys match: {} without TTL (would get one), {} with a TTL (left alone); applying at {} keys/s takes about {}",
            t.matched,
            t.no_ttl,
            t.with_ttl,
            apply_rate,
            humantime::format_duration(Duration::from_secs(estimate))
        ));
        for e in &examples {
            ctx.output(format!("  e.g. {e}"));
        }
        let mut usd = 0.0;
        if ctx.cache.kind == CacheKind::Serverless {
            // Applying sends PTTL per matching key and EXPIRE per key without TTL: about
            // what the audit's estimate charges for two commands per key.
            let est = cost::estimate(
                CostInputs {
                    dbsize: t.matched,
                    mean_key_bytes: t.key_bytes as f64 / t.matched.max(1) as f64,
                    count: opts.count,
                    memory: false,
                },
                &PriceTable::default(),
            );
            ctx.output(format!(
                "serverless: applying costs about {} ECPUs (${:.4}) at the default price table",
                est.ecpus, est.usd
            ));
            usd = est.usd;
        }
        if let Some(why) = incomplete(&found) {
            ctx.output(format!("incomplete: {why}"));
        }
        Ok(Values::new()
            .with("matching", Value::str(opts.matcher.describe()))
            .with("pattern_kind", Value::str(opts.matcher.kind()))
            .with("matched", Value::int(t.matched as i64))
            .with("no_ttl", Value::int(t.no_ttl as i64))
            .with("with_ttl", Value::int(t.with_ttl as i64))
            .with("examples", Value::Json(serde_json::json!(examples)))
            .with("estimated_apply_s", Value::int(estimate as i64))
            .with("estimated_usd", Value::Json(serde_json::json!(usd)))
            .with("complete", Value::bool(t.complete))
            .with(
                "duration_ms",
                Value::int(started.elapsed().as_millis() as i64),
            ))
    }
}
