//! `test-failover`: fails over the selected shards of a replication group one after another
//! (ElastiCache TestFailover) while client probes measure what applications see, and
//! reports the write-unavailability window, errors by class, acknowledged writes lost, the
//! lag before the trigger, old → new primary per shard, endpoint follow time and the event
//! timeline.
//!
//! Never calls TestFailover twice for one shard of one run: before each call it looks for a
//! "Test Failover API called for node group X" event after the step's write-ahead intent,
//! and `observe` (resume) does the same.

use super::events::{self, Progress};
use super::preflight::{SHARDS_DOC, kind_problem, select_shards, shard_lag};
use super::probes::Probes;
use super::report::{self, ShardResult};
use crate::controlplane::events::{self as cache_events, EventSources};
use crate::controlplane::{CacheEvent, ControlPlaneError};
use crate::probe::ProbeHandle;
use crate::runbook::action::{
    Action, ActionContext, ActionError, InputSpec, Inputs, Observation, OutputSpec, PlanContext,
    PlannedCall,
};
use crate::runbook::value::{ValueKind, Values};
use async_trait::async_trait;
use std::time::Duration;
use time::OffsetDateTime;

pub struct TestFailover;

const INPUTS: &[InputSpec] = &[
    InputSpec::optional("shards", ValueKind::List, Some("[]"), SHARDS_DOC),
    InputSpec::optional(
        "timeout",
        ValueKind::Duration,
        Some("\"15m\""),
        "how long one shard's failover may take to recover",
    ),
    InputSpec::optional(
        "event_poll",
        ValueKind::Duration,
        Some("\"5s\""),
        "time between DescribeEvents calls while following a failover",
    ),
    InputSpec::optional(
        "probe_interval",
        ValueKind::Duration,
        Some("\"5ms\""),
        "time between probe writes (the window's resolution)",
    ),
    InputSpec::optional(
        "warmup",
        ValueKind::Duration,
        Some("\"500ms\""),
        "probing before the first trigger",
    ),
    InputSpec::optional(
        "settle",
        ValueKind::Duration,
        Some("\"2s\""),
        "probing after the last shard recovered",
    ),
];

const fn out(name: &'static str, doc: &'static str) -> OutputSpec {
    OutputSpec {
        name,
        kind: ValueKind::Any,
        doc,
    }
}

const OUTPUTS: &[OutputSpec] = &[
    out(
        "write_unavailable_ms",
        "longest gap between acknowledged probe writes after the trigger, ms (null: not measured)",
    ),
    out(
        "acked_writes_lost",
        "acknowledged probe writes missing from the new primary (null: not measured)",
    ),
    out("writes_acked", "probe writes acknowledged"),
    out("errors_by_class", "failed probe writes by error class"),
    out(
        "writer",
        "the writer probe: window, servers before/after (node ids), follow time",
    ),
    out("reader", "the reader probe through the reader endpoint"),
    out(
        "endpoint_follow_ms",
        "from the first failed write to the first write acknowledged by the new primary",
    ),
    out(
        "lag_before",
        "replication lag per shard just before the trigger",
    ),
    out(
        "shards",
        "per shard: id, old_primary, new_primary, triggered",
    ),
    out("events", "the failover's event timeline"),
];

/// Slack for the control plane's clock running behind ours: events are looked for from
/// this long before the step's intent, so a resume still finds a trigger whose event AWS
/// stamped a little "before" this host thought it called. The skew seen at the trigger is
/// reported per shard when it is larger than [`SKEW_REPORTED`].
const CLOCK_SLACK: time::Duration = time::Duration::seconds(30);

/// Skew between the event's time and this host's worth reporting (event times are whole
/// seconds; a call takes a moment).
const SKEW_REPORTED: time::Duration = time::Duration::seconds(3);

/// How long to look for the "Test Failover API called" event after TestFailover failed in
/// transit (AWS may have taken the call), before deciding it did not happen.
const CONFIRM_WINDOW: Duration = Duration::from_secs(60);

/// Whether a failed TestFailover may still have been taken by AWS: the request or its
/// answer was lost in transit, or AWS answered with an error that names no fault. A
/// fault AWS names (quota, state, not found, throttled, access) means it was refused.
fn outcome_unknown(e: &ControlPlaneError) -> bool {
    matches!(
        e,
        ControlPlaneError::Timeout { .. }
            | ControlPlaneError::Unreachable { .. }
            | ControlPlaneError::Service { .. }
    )
}

/// After a TestFailover whose outcome is unknown: looks for its "called" event for up to
/// `window`; `true` when AWS took the call.
async fn confirm_called(
    ctx: &ActionContext,
    shard: &str,
    every: Duration,
    window: Duration,
    after: Option<OffsetDateTime>,
) -> Result<bool, ActionError> {
    let sources = EventSources::of(&ctx.cache);
    let found = ctx
        .poll(
            &format!("see TestFailover of node group {shard} arrive"),
            every.min(Duration::from_secs(5)),
            window,
            || async {
                let events = events_since(ctx, since(ctx, after)).await?;
                Ok(
                    events::was_triggered(&events, &sources, shard, since(ctx, after))
                        .then_some(()),
                )
            },
        )
        .await;
    match found {
        Ok(()) => Ok(true),
        Err(ActionError::Timeout { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The time of the "Test Failover API called" event of `shard` at or after `since`.
fn called_at(
    events: &[CacheEvent],
    sources: &EventSources,
    shard: &str,
    since: OffsetDateTime,
) -> Option<OffsetDateTime> {
    events
        .iter()
        .find(|e| {
            e.time >= since && sources.concerns(e) && events::triggered_group(e) == Some(shard)
        })
        .map(|e| e.time)
}

/// Seconds AWS's event clock is off from ours, given that the call was sent within
/// [`sent`, `answered`] here: 0 when the event falls inside (give or take a second).
fn skew(event: OffsetDateTime, sent: OffsetDateTime, answered: OffsetDateTime) -> i64 {
    let tolerance = time::Duration::seconds(1);
    if event < sent - tolerance {
        (event - sent).whole_seconds()
    } else if event > answered + tolerance {
        (event - answered).whole_seconds()
    } else {
        0
    }
}

/// The events of this run: everything from the step's write-ahead intent on (less the clock
/// slack), and strictly after `after` — the newest event of the cache seen before this run
/// called anything (its baseline) — so a failover of an earlier run inside the slack is never
/// taken for this run's.
fn since(ctx: &ActionContext, after: Option<OffsetDateTime>) -> OffsetDateTime {
    let from = ctx.intent_at.unwrap_or(ctx.first_started_at) - CLOCK_SLACK;
    match after {
        Some(a) if a + time::Duration::nanoseconds(1) > from => a + time::Duration::nanoseconds(1),
        _ => from,
    }
}

/// The baseline this step journaled before its first TestFailover: `None` when it never got
/// that far (so nothing was called), `Some(None)` when the cache had no event in the window.
fn journaled_baseline(ctx: &ActionContext) -> Option<Option<OffsetDateTime>> {
    let facts = ctx.resume_from.as_ref()?;
    let value = facts.get(BASELINE_KEY)?;
    if value.is_null() {
        return Some(None);
    }
    let text = value.as_str()?;
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(Some)
}

/// The checkpoint field holding the baseline.
const BASELINE_KEY: &str = "events_after";

/// Reads the baseline from the journal, or takes it now (the newest event of the cache in
/// the window) and journals it before any TestFailover is sent.
async fn baseline(ctx: &ActionContext) -> Result<Option<OffsetDateTime>, ActionError> {
    if let Some(b) = journaled_baseline(ctx) {
        return Ok(b);
    }
    let events = events_since(ctx, since(ctx, None)).await?;
    let newest = events.iter().map(|e| e.time).max();
    let value = match newest {
        Some(t) => serde_json::Value::String(
            t.format(&time::format_description::well_known::Rfc3339)
                .map_err(|e| ActionError::failed(format!("format the event baseline: {e}")))?,
        ),
        None => serde_json::Value::Null,
    };
    ctx.checkpoint(serde_json::json!({ BASELINE_KEY: value }))
        .await?;
    Ok(newest)
}

async fn events_since(
    ctx: &ActionContext,
    since: OffsetDateTime,
) -> Result<Vec<CacheEvent>, ActionError> {
    // The group's own events and its member clusters' (recovery events are about cache
    // clusters), matched exactly: another group's failover is never taken for ours.
    Ok(cache_events::for_cache(ctx.plane.as_ref(), &ctx.cache, since).await?)
}

/// Polls DescribeEvents until the shard's failover recovered, echoing new events.
async fn follow(
    ctx: &ActionContext,
    shard: &str,
    old_primary: Option<&str>,
    every: Duration,
    deadline: Duration,
    seen: &std::sync::Mutex<usize>,
    after: Option<OffsetDateTime>,
) -> Result<Progress, ActionError> {
    let from = since(ctx, after);
    let last = std::sync::Mutex::new(Progress::default());
    let result = ctx
        .poll(
            &format!("see shard {shard}'s failover recover"),
            every,
            deadline,
            || async {
                let events = events_since(ctx, from).await?;
                if let Ok(mut n) = seen.lock() {
                    for e in events.iter().skip(*n) {
                        ctx.output(format!(
                            "event {} {}: {}",
                            e.time.time(),
                            crate::escape::escape_capped(&e.source, 80),
                            crate::escape::escape_capped(&e.message, 200)
                        ));
                    }
                    *n = (*n).max(events.len());
                }
                let p = events::progress(
                    &events,
                    &EventSources::of(&ctx.cache),
                    shard,
                    old_primary,
                    from,
                );
                let done = p.done();
                if let Ok(mut l) = last.lock() {
                    *l = p.clone();
                }
                Ok(done.then_some(p))
            },
        )
        .await;
    match result {
        Err(ActionError::Timeout { after, .. }) => {
            let waiting = last.lock().map(|p| p.waiting_for()).unwrap_or("recovery");
            Err(ActionError::Timeout {
                what: format!(
                    "see shard {shard}'s failover recover (still waiting for the event {waiting})"
                ),
                after,
            })
        }
        other => other,
    }
}

/// The trigger and the follow-up, with the probes running; the probes are stopped by the
/// caller whatever happens here.
async fn trigger_all(
    ctx: &ActionContext,
    inputs: &Inputs,
    shards: &[(String, Option<String>)],
    results: &mut Vec<ShardResult>,
    after: Option<OffsetDateTime>,
) -> Result<(), ActionError> {
    let every = inputs.duration("event_poll")?;
    let deadline = inputs.duration("timeout")?;
    let seen = std::sync::Mutex::new(0usize);
    for (i, (shard, old)) in shards.iter().enumerate() {
        let already = events::was_triggered(
            &events_since(ctx, since(ctx, after)).await?,
            &EventSources::of(&ctx.cache),
            shard,
            since(ctx, after),
        );
        let mut sent = None;
        if already {
            ctx.output(format!(
                "shard {shard}: TestFailover was already called in this run; following it"
            ));
        } else {
            ctx.output(format!(
                "TestFailover {} node group {shard}",
                ctx.cache.name
            ));
            let before = OffsetDateTime::now_utc();
            match ctx.plane.test_failover(&ctx.cache.name, shard).await {
                Ok(()) => {}
                Err(e) if outcome_unknown(&e) => {
                    // Never call twice blindly: AWS may have taken the call.
                    ctx.output(format!(
                        "TestFailover of node group {shard} failed in transit ({e}); looking for its \"Test Failover API called\" event before deciding"
                    ));
                    if !confirm_called(ctx, shard, every, CONFIRM_WINDOW, after).await? {
                        return Err(ActionError::failed(format!(
                            "TestFailover of node group {shard} failed in transit ({e}) and no \"Test Failover API called\" event appeared within {CONFIRM_WINDOW:?}, so it did not take effect; it was not called again (a retry or `cachedeck runs resume` looks for the event first, then calls it)"
                        )));
                    }
                    ctx.output(format!(
                        "AWS took TestFailover of node group {shard} after all; following it"
                    ));
                }
                Err(e) => return Err(e.into()),
            }
            sent = Some((before, OffsetDateTime::now_utc()));
        }
        let p = follow(ctx, shard, old.as_deref(), every, deadline, &seen, after).await?;
        ctx.progress(
            i as u64 + 1,
            Some(shards.len() as u64),
            format!("shard {shard} recovered"),
        );
        let mut result = ShardResult::from_progress(shard, old.clone(), &p, !already);
        if let Some((before, answered)) = sent {
            let events = events_since(ctx, since(ctx, after)).await?;
            let sources = EventSources::of(&ctx.cache);
            if let Some(at) = called_at(&events, &sources, shard, since(ctx, after)) {
                let off = skew(at, before, answered);
                if off.abs() >= SKEW_REPORTED.whole_seconds() {
                    ctx.output(format!(
                        "clock skew: AWS stamped the TestFailover of node group {shard} {}s {} this host's clock{}",
                        off.abs(),
                        if off < 0 { "behind" } else { "ahead of" },
                        if off.abs() >= CLOCK_SLACK.whole_seconds() {
                            "; larger than the 30 s a resume allows for: sync this host's clock (NTP) before resuming"
                        } else {
                            ""
                        }
                    ));
                    result.clock_skew_s = Some(off);
                }
            }
        }
        results.push(result);
    }
    Ok(())
}

#[async_trait]
impl Action for TestFailover {
    fn name(&self) -> &'static str {
        "test-failover"
    }
    fn summary(&self) -> &'static str {
        "TestFailover per shard with client probes; report the window and lost writes"
    }
    fn inputs(&self) -> &'static [InputSpec] {
        INPUTS
    }
    fn outputs(&self) -> &'static [OutputSpec] {
        OUTPUTS
    }
    fn dangerous(&self) -> bool {
        true
    }
    fn plan(&self, ctx: &PlanContext<'_>, inputs: &Inputs) -> Vec<PlannedCall> {
        let wanted = inputs.list("shards").unwrap_or_default();
        let shards: Vec<String> = match select_shards(ctx.cache, &wanted) {
            Ok(s) => s.iter().map(|s| s.id.clone()).collect(),
            Err(_) if wanted.is_empty() => vec![inputs.show("shards")],
            Err(_) => wanted,
        };
        let writer = ctx
            .cache
            .endpoints
            .primary
            .as_ref()
            .or(ctx.cache.endpoint.as_ref())
            .map(|e| e.address())
            .unwrap_or_else(|| "<primary endpoint>".into());
        let mut calls = vec![PlannedCall::valkey(
            writer.clone(),
            format!(
                "RPUSH cachedeck:failover-probe:<run id> <seq> every {} (probe writer)",
                inputs.show("probe_interval")
            ),
            true,
        )];
        if let Some(r) = &ctx.cache.endpoints.reader {
            calls.push(PlannedCall::valkey(
                r.address(),
                "LLEN cachedeck:failover-probe:<run id> (probe reader)",
                false,
            ));
        }
        for s in shards {
            calls.push(PlannedCall::control_plane(
                format!(
                    "elasticache:TestFailover replication_group_id={} node_group_id={s}",
                    ctx.cache.name
                ),
                true,
            ));
            calls.push(PlannedCall::control_plane(
                format!(
                    "elasticache:DescribeEvents every {} until \"Finished recovery\"",
                    inputs.show("event_poll")
                ),
                false,
            ));
        }
        calls.push(PlannedCall::valkey(
            writer,
            "LRANGE cachedeck:failover-probe:<run id> 0 -1, then DEL it",
            true,
        ));
        calls
    }

    async fn observe(
        &self,
        ctx: &ActionContext,
        inputs: &Inputs,
    ) -> Result<Observation, ActionError> {
        let shards: Vec<(String, Option<String>)> =
            select_shards(&ctx.cache, &inputs.list("shards")?)?
                .iter()
                .map(|s| (s.id.clone(), None))
                .collect();
        // The baseline is journaled before the first TestFailover: without it, nothing was
        // called, whatever events an earlier run left in the window.
        let Some(after) = journaled_baseline(ctx) else {
            return Ok(Observation::NotDone);
        };
        let events = events_since(ctx, since(ctx, after)).await?;
        let triggered = shards
            .iter()
            .filter(|(s, _)| {
                events::was_triggered(&events, &EventSources::of(&ctx.cache), s, since(ctx, after))
            })
            .count();
        if triggered < shards.len() {
            // `run` skips the shards already triggered and follows them instead.
            return Ok(Observation::NotDone);
        }
        // Every trigger took effect: follow them to the end, without probes (they died with
        // the interrupted process), and report what the events and the nodes say.
        let mut results = Vec::new();
        let every = inputs.duration("event_poll")?;
        let deadline = inputs.duration("timeout")?;
        let seen = std::sync::Mutex::new(0usize);
        for (shard, _) in &shards {
            let p = follow(ctx, shard, None, every, deadline, &seen, after).await?;
            results.push(ShardResult::from_progress(shard, None, &p, true));
        }
        let events = events_since(ctx, since(ctx, after)).await?;
        Ok(Observation::Done(report::unmeasured(ctx, results, &events)))
    }

    async fn run(&self, ctx: &ActionContext, inputs: &Inputs) -> Result<Values, ActionError> {
        if let Some(why) = kind_problem(&ctx.cache) {
            return Err(ActionError::failed(format!(
                "fail over `{}`: {why}",
                ctx.cache.name
            )));
        }
        let selected = select_shards(&ctx.cache, &inputs.list("shards")?)?;
        let shards: Vec<(String, Option<String>)> = selected
            .iter()
            .map(|s| (s.id.clone(), s.primary().map(|p| p.id.clone())))
            .collect();
        let after = baseline(ctx).await?;
        let mut lag_before = Vec::new();
        for s in &selected {
            match shard_lag(ctx, s).await {
                Ok(l) => lag_before.push(l),
                Err(e) => ctx.output(format!("lag of shard {} before the trigger: {e}", s.id)),
            }
        }
        let first = shards.first().map(|(id, _)| id.as_str());
        let probes = Probes::start(ctx, inputs.duration("probe_interval")?, first).await?;
        ctx.output(format!(
            "probing: writer through the primary endpoint on key {}{}",
            crate::escape::escape_capped(&probes.key, 120),
            if probes.reader.is_some() {
                ", reader through the reader endpoint"
            } else {
                ""
            }
        ));
        let warmup = ctx.sleep(inputs.duration("warmup")?).await;
        let trigger_writer = probes.writer.elapsed();
        let trigger_reader = probes.reader.as_ref().map(ProbeHandle::elapsed);
        let mut results = Vec::new();
        let outcome = match warmup {
            Ok(()) => trigger_all(ctx, inputs, &shards, &mut results, after).await,
            Err(e) => Err(e),
        };
        let outcome = match outcome {
            Ok(()) => ctx.sleep(inputs.duration("settle")?).await,
            Err(e) => Err(e),
        };
        let writes = probes.writer.stop().await;
        let reads = match probes.reader {
            Some(r) => Some(r.stop().await),
            None => None,
        };
        if let Err(e) = outcome {
            // The probe list expires on its own; removing it now is only tidiness.
            if let Ok(mut conn) = ctx.connect_endpoint().await {
                let _: Result<i64, _> = conn.query(redis::cmd("DEL").arg(&probes.key)).await;
            }
            return Err(e);
        }
        let events = events_since(ctx, since(ctx, after)).await?;
        report::measured(
            ctx,
            report::Measured {
                key: &probes.key,
                writes: &writes,
                trigger_writer,
                reads: reads.as_deref(),
                trigger_reader,
                lag_before: &lag_before,
                shards: results,
                events: &events,
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_is_measured_outside_the_call() {
        let t = |s: i64| OffsetDateTime::from_unix_timestamp(1_700_000_000 + s).expect("time");
        assert_eq!(skew(t(10), t(10), t(11)), 0);
        assert_eq!(
            skew(t(9), t(10), t(11)),
            0,
            "a second of rounding is no skew"
        );
        assert_eq!(skew(t(-20), t(10), t(11)), -30, "AWS behind");
        assert_eq!(skew(t(20), t(10), t(11)), 9, "AWS ahead");
    }

    #[test]
    fn only_faults_aws_names_count_as_refused() {
        let op = || "TestFailover".to_string();
        assert!(outcome_unknown(&ControlPlaneError::Timeout {
            operation: op(),
            after: Duration::from_secs(20)
        }));
        assert!(outcome_unknown(&ControlPlaneError::Unreachable {
            endpoint: "AWS".into(),
            detail: "connection reset".into()
        }));
        assert!(!outcome_unknown(&ControlPlaneError::Throttled {
            operation: op()
        }));
        assert!(!outcome_unknown(&ControlPlaneError::QuotaExceeded {
            operation: op(),
            detail: "15".into()
        }));
    }
}
