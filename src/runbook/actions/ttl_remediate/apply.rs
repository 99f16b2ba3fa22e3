//! `ttl-remediate`: `EXPIRE key secs NX` on the matching keys without TTL — nothing when
//! `dry_run` — refusing above `max_keys`, continuing from the journaled checkpoint on retry
//! or resume, and failing (resumably) when a shard could not be finished.

use super::{
    COUNT, DB, P99, PATTERN, RATE, SCAN_RATE, drive, incomplete, options, out, scan_call, target,
};
use crate::audit::remediate::{self, Checkpoint};
use crate::runbook::action::{
    Action, ActionContext, ActionError, InputSpec, Inputs, Observation, OutputSpec, PlanContext,
    PlannedCall,
};
use crate::runbook::value::{Value, ValueKind, Values};
use async_trait::async_trait;

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
    SCAN_RATE,
    DB,
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
    InputSpec::optional(
        "estimated_usd",
        ValueKind::Any,
        None,
        "serverless: the survey's cost estimate of applying, checked against max_usd",
    ),
    InputSpec::optional(
        "max_usd",
        ValueKind::Any,
        Some("1.0"),
        "serverless: refuse to apply when the estimate is over this many dollars",
    ),
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
        // Continuing is safe whatever is found, so a cache that cannot be looked at now is
        // said, not an error: the run itself will fail (and can be resumed) if it stays so.
        let now = match look(ctx).await {
            Ok(now) => now,
            Err(e) => {
                return Ok(Observation::Partial(format!(
                    "{} TTLs set so far; the cache cannot be looked at now ({e})",
                    c.totals().updated
                )));
            }
        };
        let shards: Vec<String> = c
            .shards
            .iter()
            .map(|(key, p)| {
                let state = if p.done && p.incomplete.is_none() {
                    "done".to_string()
                } else {
                    match now.get(remediate::shard_of(key)) {
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
        let usd = match inputs.get("estimated_usd") {
            Some(crate::runbook::value::Value::Json(v)) => v.as_f64().unwrap_or(0.0),
            _ => 0.0,
        };
        let max_usd = super::super::ttl_audit::dollars(inputs, "max_usd")?;
        if usd > max_usd {
            return Err(ActionError::failed(format!(
                "set TTLs on `{}`: applying costs about ${usd:.4} on this serverless cache, over max_usd ${max_usd:.4}; to agree, run it again with --param max_usd=<dollars>",
                ctx.cache.name
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

/// Each shard's primary's `run_id` now.
async fn look(ctx: &ActionContext) -> Result<std::collections::BTreeMap<String, String>, String> {
    let seed = ctx.cache.endpoint.clone().ok_or("it has no endpoint")?;
    let connector = ctx.connector().await.map_err(|e| e.to_string())?.clone();
    let node_tls = ctx.cache.nodes().next().map_or(seed.tls, |n| n.tls);
    remediate::servers(&connector, &seed, node_tls)
        .await
        .map_err(|e| e.to_string())
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
