//! The actions of the `ttl-remediate` runbook: `ttl-remediate-survey` (read-only: how many
//! keys match the pattern, how many have no TTL, examples, how long applying would take) and
//! `ttl-remediate` (dangerous: `EXPIRE key secs NX` on each matching key without TTL, or
//! nothing at all when `dry_run` is true). The work itself is [`crate::audit::remediate`];
//! this module turns inputs into options and runs it with progress and checkpoints; the
//! actions are in `survey` and `apply`.

mod apply;
mod survey;

pub use apply::TtlRemediate;
pub use survey::TtlRemediateSurvey;

use crate::audit::gentle::LatencyGuard;
use crate::audit::matcher::KeyMatcher;
use crate::audit::remediate::{self, Checkpoint, RemediateOptions, ShardProgress};
use crate::runbook::action::{
    ActionContext, ActionError, InputSpec, Inputs, OutputSpec, PlanContext, PlannedCall,
};
use crate::runbook::value::ValueKind;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How often checkpoints are journaled while applying: each is an fsync and a journal line,
/// so the pause grows with the run (a tenth of its age, between these bounds). Losing the
/// last pause's worth on a crash only costs re-reading those keys (EXPIRE NX).
const CHECKPOINT_MIN: Duration = Duration::from_millis(500);
const CHECKPOINT_MAX: Duration = Duration::from_secs(10);

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
const SCAN_RATE: InputSpec = InputSpec::optional(
    "scan_rate",
    ValueKind::Int,
    Some("50000"),
    "keys SCAN walks past per second over the whole cache, matching or not (0: unpaced)",
);
const DB: InputSpec = InputSpec::optional(
    "db",
    ValueKind::Int,
    Some("-1"),
    "logical database outside cluster mode (-1: every database holding keys)",
);
const P99: InputSpec = InputSpec::optional(
    "p99_threshold",
    ValueKind::Duration,
    Some("\"50ms\""),
    "pause while the side PING probe's p99 is over this",
);

const fn out(name: &'static str, kind: ValueKind, doc: &'static str) -> OutputSpec {
    OutputSpec { name, kind, doc }
}

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
        scan_rate: inputs.opt_int("scan_rate")?.unwrap_or(50_000).max(0) as u64,
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
        db: inputs.opt_int("db")?.and_then(|d| u32::try_from(d).ok()),
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
            "SCAN cursor MATCH {} COUNT {} (walking ≤ {} keys/s); PTTL k per matching key (pipelined, {} keys/s); PING probe on a side connection",
            crate::escape::escape(&glob),
            inputs.show("count"),
            inputs.show("scan_rate"),
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
    let started = Instant::now();
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
                let every = (started.elapsed() / 10).clamp(CHECKPOINT_MIN, CHECKPOINT_MAX);
                if journal && last.elapsed() >= every {
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
