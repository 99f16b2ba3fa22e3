//! The actions of the `ttl-remediate` runbook: `ttl-remediate-survey` (read-only: how many
//! keys match the pattern, how many have no TTL, examples, how long applying would take) and
//! `ttl-remediate` (dangerous: `EXPIRE key secs NX` on each matching key without TTL, or
//! nothing at all when `dry_run` is true). The work itself is [`crate::audit::remediate`];
//! these turn inputs into options, report progress, journal checkpoints and shape outputs.

use crate::audit::cost::{self, CostInputs, PriceTable};
use crate::audit::gentle::LatencyGuard;
use crate::audit::matcher::KeyMatcher;
use crate::audit::remediate::{self, Checkpoint, RemediateOptions, ShardProgress};
use crate::domain::CacheKind;
use crate::runbook::action::{
    Action, ActionContext, ActionError, InputSpec, Inputs, Observation, OutputSpec, PlanContext,
    PlannedCall,
};
use crate::runbook::value::{Value, ValueKind, Values};
use async_trait::async_trait;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How often checkpoints are journaled while applying (each one is an fsync).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

const PATTERN: InputSpec = InputSpec::required(
    "pattern",
    ValueKind::String,
    "a glob (`cache:product:*`) or a pattern as the audit prints it (`cache:product:{n}`)",
);
const RATE: InputSpec = InputSpec::optional(
    "rate",
    ValueKind::Int,
    Some("500"),
    "matching keys handled per second over the whole cache",
);
const COUNT: InputSpec = InputSpec::optional("count", ValueKind::Int, Some("1000"), "SCAN COUNT");
const P99: InputSpec = InputSpec::optional(
    "p99_threshold",
    ValueKind::Duration,
    Some("\"50ms\""),
    "pause while the side PING probe's p99 is over this",
);

const SURVEY_INPUTS: &[InputSpec] = &[
    PATTERN,
    RATE,
    COUNT,
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

const APPLY_INPUTS: &[InputSpec] = &[
    PATTERN,
    InputSpec::required("ttl", ValueKind::Duration, "the TTL to give, e.g. `7d`"),
    InputSpec::optional(
        "jitter",
        ValueKind::Int,
        Some("10"),
        "spread TTLs uniformly within ± this percentage (0–90)",
    ),
    RATE,
    COUNT,
    P99,
    InputSpec::optional(
        "dry_run",
        ValueKind::Bool,
        Some("true"),
        "write nothing (the survey step has counted)",
    ),
    InputSpec::optional(
        "max_keys",
        ValueKind::Int,
        Some("100000"),
        "refuse to set more TTLs than this",
    ),
    InputSpec::optional(
        "expected",
        ValueKind::Int,
        None,
        "keys without TTL the survey found (checked against max_keys before any write)",
    ),
    InputSpec::optional(
        "matched",
        ValueKind::Int,
        None,
        "matching keys the survey found (the progress bar's total)",
    ),
];

const fn out(name: &'static str, kind: ValueKind, doc: &'static str) -> OutputSpec {
    OutputSpec { name, kind, doc }
}

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
        "complete",
        ValueKind::Bool,
        "every shard counted to the end",
    ),
    out("duration_ms", ValueKind::Int, "how long the survey took"),
];

const APPLY_OUTPUTS: &[OutputSpec] = &[
    out("dry_run", ValueKind::Bool, "nothing was written"),
    out(
        "would_update",
        ValueKind::Int,
        "dry run: keys without TTL the survey found (would get one)",
    ),
    out("updated", ValueKind::Int, "keys given a TTL by this run"),
    out(
        "skipped_with_ttl",
        ValueKind::Int,
        "matching keys that already had a TTL",
    ),
    out(
        "raced",
        ValueKind::Int,
        "keys that got a TTL (or were deleted) between PTTL and EXPIRE",
    ),
    out(
        "vanished",
        ValueKind::Int,
        "keys deleted or expired before they were looked at",
    ),
    out("matched", ValueKind::Int, "matching keys looked at"),
    out(
        "shards",
        ValueKind::Any,
        "per shard: node, updated, skipped_with_ttl, restarts",
    ),
    out(
        "complete",
        ValueKind::Bool,
        "every shard remediated to the end",
    ),
    out(
        "duration_ms",
        ValueKind::Int,
        "since the step first started (resumes included)",
    ),
];

fn positive(inputs: &Inputs, name: &str) -> Result<Option<u64>, ActionError> {
    Ok(inputs.opt_int(name)?.filter(|v| *v > 0).map(|v| v as u64))
}

fn options(inputs: &Inputs, apply: bool) -> Result<RemediateOptions, ActionError> {
    let matcher = KeyMatcher::parse(inputs.str("pattern")?).map_err(|p| ActionError::Input {
        name: "pattern".into(),
        problem: p,
    })?;
    let ttl = match inputs.get("ttl") {
        Some(_) => inputs.duration("ttl")?,
        None => Duration::ZERO,
    };
    if apply && ttl < Duration::from_secs(1) {
        return Err(ActionError::Input {
            name: "ttl".into(),
            problem: "must be at least 1s (EXPIRE takes whole seconds)".into(),
        });
    }
    let defaults = LatencyGuard::default();
    Ok(RemediateOptions {
        matcher,
        ttl,
        jitter_pct: inputs.opt_int("jitter")?.unwrap_or(0).clamp(0, 90) as u32,
        rate: positive(inputs, "rate")?.unwrap_or(500),
        count: positive(inputs, "count")?.map_or(1000, |c| c.min(100_000) as u32),
        apply,
        max_keys: inputs.opt_int("max_keys")?.unwrap_or(100_000).max(0) as u64,
        examples: positive(inputs, "examples")?.map_or(5, |e| e.min(50) as usize),
        guard: LatencyGuard {
            p99_threshold: inputs
                .opt_duration("p99_threshold")?
                .unwrap_or(defaults.p99_threshold),
            ..defaults
        },
        batch_timeout: Duration::from_secs(10),
        shard_retries: 3,
    })
}

fn target(ctx: &PlanContext<'_>) -> String {
    ctx.cache
        .endpoint
        .as_ref()
        .map_or_else(|| "<no endpoint>".to_string(), |e| e.address())
}

fn scan_call(inputs: &Inputs) -> PlannedCall {
    let glob = KeyMatcher::parse(inputs.str("pattern").unwrap_or("<pattern>"))
        .map_or_else(|_| "<pattern>".to_string(), |m| m.server_glob().to_string());
    PlannedCall::valkey(
        "each shard's primary",
        format!(
            "SCAN cursor MATCH {} COUNT {}; PTTL k per matching key (pipelined, {} keys/s); PING probe on a side connection",
            crate::escape::escape(&glob),
            inputs.show("count"),
            inputs.show("rate")
        ),
        false,
    )
}

/// Runs the remediation (or the count) and folds shard updates into progress events and,
/// when `journal` is set, checkpoints.
async fn drive(
    ctx: &ActionContext,
    opts: &RemediateOptions,
    from: Option<Checkpoint>,
    total: Option<u64>,
    journal: bool,
) -> Result<Checkpoint, ActionError> {
    let seed = ctx.cache.endpoint.clone().ok_or_else(|| {
        ActionError::failed(format!(
            "remediate cache `{}`: it has no endpoint yet (status {})",
            ctx.cache.name, ctx.cache.status
        ))
    })?;
    let connector = ctx.connector().await?.clone();
    let node_tls = ctx.cache.nodes().next().map_or(seed.tls, |n| n.tls);
    let mut state = from.clone().unwrap_or_default();
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, ShardProgress)>();
    let run = remediate::run(
        &connector,
        &seed,
        node_tls,
        opts,
        from,
        tx,
        ctx.cancel.clone(),
    );
    tokio::pin!(run);
    let mut last = Instant::now();
    let result = loop {
        tokio::select! {
            r = &mut run => break r,
            Some((key, p)) = rx.recv() => {
                state.shards.insert(key, p);
                let t = state.totals();
                ctx.progress(t.matched, total, if opts.apply {
                    format!("matching keys handled, {} TTLs set", t.updated)
                } else {
                    format!("matching keys counted, {} without TTL", t.no_ttl)
                });
                if journal && last.elapsed() >= CHECKPOINT_EVERY {
                    ctx.checkpoint(state.to_facts()).await?;
                    last = Instant::now();
                }
            }
        }
    };
    let done = result
        .map_err(|e| ActionError::failed(format!("remediate cache `{}`: {e}", ctx.cache.name)))?;
    if journal {
        ctx.checkpoint(done.to_facts()).await?;
    }
    if ctx.cancel.is_cancelled() {
        return Err(ActionError::Interrupted);
    }
    Ok(done)
}

/// The shards' incomplete reasons, one string.
fn incomplete(c: &Checkpoint) -> Option<String> {
    let reasons: Vec<String> = c
        .shards
        .iter()
        .filter_map(|(k, s)| {
            s.incomplete
                .as_ref()
                .map(|r| format!("{k} ({}): {r}", s.node))
        })
        .collect();
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

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
            .with("complete", Value::bool(t.complete))
            .with(
                "duration_ms",
                Value::int(started.elapsed().as_millis() as i64),
            ))
    }
}

/// `ttl-remediate`: EXPIRE NX on matching keys without TTL (nothing when `dry_run`).
pub struct TtlRemediate;

#[async_trait]
impl Action for TtlRemediate {
    fn name(&self) -> &'static str {
        "ttl-remediate"
    }
    fn summary(&self) -> &'static str {
        "give matching keys without TTL one (EXPIRE NX), rate-limited and resumable"
    }
    fn inputs(&self) -> &'static [InputSpec] {
        APPLY_INPUTS
    }
    fn outputs(&self) -> &'static [OutputSpec] {
        APPLY_OUTPUTS
    }
    fn dangerous(&self) -> bool {
        true
    }
    fn plan(&self, ctx: &PlanContext<'_>, inputs: &Inputs) -> Vec<PlannedCall> {
        if inputs.bool("dry_run").unwrap_or(true) {
            return vec![PlannedCall::local(
                "dry run: nothing is sent (set dry_run=false to apply)",
            )];
        }
        vec![
            PlannedCall::valkey(
                target(ctx),
                "CLUSTER NODES (cluster mode: find shards); INFO (role, version, run_id)",
                false,
            ),
            scan_call(inputs),
            PlannedCall::valkey(
                "each shard's primary",
                format!(
                    "EXPIRE k {} NX (±{}%) per matching key without TTL, pipelined; at most {} keys",
                    inputs.show("ttl"),
                    inputs.show("jitter"),
                    inputs.show("max_keys")
                ),
                true,
            ),
        ]
    }
    /// Whatever an interrupted attempt did, continuing is safe: EXPIRE NX never changes a
    /// key twice. This looks at the cache again and says, per journaled shard, whether its
    /// cursor still holds (same server) or the shard is scanned again from 0.
    async fn observe(
        &self,
        ctx: &ActionContext,
        inputs: &Inputs,
    ) -> Result<Observation, ActionError> {
        if inputs.bool("dry_run").unwrap_or(true) {
            return Ok(Observation::NotDone);
        }
        let Some(c) = ctx.resume_from.as_ref().and_then(Checkpoint::from_facts) else {
            return Ok(Observation::NotDone);
        };
        let seed = ctx.cache.endpoint.clone().ok_or_else(|| {
            ActionError::failed(format!(
                "observe cache `{}`: it has no endpoint",
                ctx.cache.name
            ))
        })?;
        let connector = ctx.connector().await?.clone();
        let node_tls = ctx.cache.nodes().next().map_or(seed.tls, |n| n.tls);
        let now = remediate::servers(&connector, &seed, node_tls)
            .await
            .map_err(|e| ActionError::failed(format!("observe cache `{}`: {e}", ctx.cache.name)))?;
        let shards: Vec<String> = c
            .shards
            .iter()
            .map(|(key, p)| {
                let state = if p.done && p.incomplete.is_none() {
                    "done".to_string()
                } else {
                    match now.get(key) {
                        Some(run_id) if *run_id == p.server_run_id => {
                            format!("same server, continues at cursor {}", p.cursor)
                        }
                        Some(_) => {
                            "another server now (failover or restart), scanned again from 0".into()
                        }
                        None => "not found now, scanned again from 0".into(),
                    }
                };
                format!("{key}: {} TTLs set, {state}", p.updated)
            })
            .collect();
        Ok(Observation::Partial(format!(
            "{} TTLs set so far; {}",
            c.totals().updated,
            shards.join("; ")
        )))
    }
    async fn run(&self, ctx: &ActionContext, inputs: &Inputs) -> Result<Values, ActionError> {
        let dry_run = inputs.bool("dry_run")?;
        let opts = options(inputs, !dry_run)?;
        let expected = inputs.opt_int("expected")?.map(|e| e.max(0) as u64);
        let over = expected.filter(|e| *e > opts.max_keys);
        if dry_run {
            let would =
                expected.map_or_else(|| "the keys without TTL".into(), |e| format!("{e} keys"));
            ctx.output(format!(
                "dry run: nothing written; {would} would get a TTL of {} (±{}%); run again with --param dry_run=false to apply",
                humantime::format_duration(opts.ttl),
                opts.jitter_pct
            ));
            if let Some(e) = over {
                ctx.output(format!(
                    "note: {e} keys is over max_keys {}; applying needs --param max_keys={e} or more",
                    opts.max_keys
                ));
            }
            return Ok(outputs(true, &Checkpoint::default(), 0)
                .with("would_update", Value::int(expected.unwrap_or(0) as i64)));
        }
        if let Some(e) = over {
            return Err(ActionError::failed(format!(
                "set TTLs on {e} keys: that is more than max_keys {}; raise it with --param max_keys={e} if that is intended",
                opts.max_keys
            )));
        }
        let from = ctx.resume_from.as_ref().and_then(Checkpoint::from_facts);
        if let Some(c) = &from {
            let t = c.totals();
            ctx.output(format!(
                "continuing from the journal: {} TTLs already set, {} shard(s) at their last cursor",
                t.updated,
                c.shards.len()
            ));
        }
        let total = inputs.opt_int("matched")?.map(|m| m.max(0) as u64);
        let done = drive(ctx, &opts, from, total, true).await?;
        // Since the step first started, across resumes.
        let elapsed = (time::OffsetDateTime::now_utc() - ctx.first_started_at)
            .whole_milliseconds()
            .max(0) as u64;
        for (key, s) in &done.shards {
            ctx.output(format!(
                "{key} ({}): {} TTLs set, {} already had one, {} raced, {} vanished, {} restarts",
                s.node,
                s.updated,
                s.skipped_with_ttl(),
                s.raced,
                s.vanished,
                s.restarts
            ));
        }
        if let Some(why) = incomplete(&done) {
            return Err(ActionError::failed(format!(
                "finish the remediation ({} TTLs set so far): {why}",
                done.totals().updated
            )));
        }
        Ok(outputs(false, &done, elapsed).with("would_update", Value::int(0)))
    }
}

fn outputs(dry_run: bool, c: &Checkpoint, elapsed_ms: u64) -> Values {
    let t = c.totals();
    let shards: Vec<serde_json::Value> = c
        .shards
        .iter()
        .map(|(k, s)| {
            serde_json::json!({
                "shard": k,
                "node": s.node,
                "matched": s.matched,
                "updated": s.updated,
                "skipped_with_ttl": s.skipped_with_ttl(),
                "raced": s.raced,
                "vanished": s.vanished,
                "restarts": s.restarts,
                "complete": s.done && s.incomplete.is_none(),
            })
        })
        .collect();
    Values::new()
        .with("dry_run", Value::bool(dry_run))
        .with("updated", Value::int(t.updated as i64))
        .with("skipped_with_ttl", Value::int(t.with_ttl as i64))
        .with("raced", Value::int(t.raced as i64))
        .with("vanished", Value::int(t.vanished as i64))
        .with("matched", Value::int(t.matched as i64))
        .with("shards", Value::Json(serde_json::json!(shards)))
        .with("complete", Value::bool(!dry_run && t.complete))
        .with("duration_ms", Value::int(elapsed_ms as i64))
}
