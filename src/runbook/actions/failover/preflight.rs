//! `failover-preflight`: whether a test failover of a replication group may start — a
//! replica in every selected shard, automatic failover on, not serverless, replication lag
//! under the thresholds, and TestFailover quota left (counted from DescribeEvents).
//! Read-only; every problem found is reported at once.

use super::events::{self, QUOTA};
use crate::controlplane::EventQuery;
use crate::domain::{Cache, CacheKind, NodeRole, RoleSource, Shard};
use crate::runbook::action::{
    Action, ActionContext, ActionError, InputSpec, Inputs, OutputSpec, PlanContext, PlannedCall,
};
use crate::runbook::value::{Value, ValueKind, Values};
use async_trait::async_trait;
use serde::Serialize;
use time::OffsetDateTime;

pub struct FailoverPreflight;

/// The `shards` input's documentation, shared with `test-failover`.
pub const SHARDS_DOC: &str = "node group ids to fail over, e.g. [\"0001\"]; empty: every shard";

const INPUTS: &[InputSpec] = &[
    InputSpec::optional("shards", ValueKind::List, Some("[]"), SHARDS_DOC),
    InputSpec::optional(
        "max_lag_bytes",
        ValueKind::Int,
        Some("1048576"),
        "largest acceptable replication offset gap between a primary and a replica",
    ),
    InputSpec::optional(
        "max_lag",
        ValueKind::Duration,
        Some("\"10s\""),
        "largest acceptable time since a replica's last acknowledgement (INFO lag)",
    ),
    InputSpec::optional(
        "lag_wait",
        ValueKind::Duration,
        Some("\"30s\""),
        "how long to wait for replicas to come online and catch up before refusing",
    ),
];

/// Time between lag measurements while waiting for it to settle.
const LAG_POLL: std::time::Duration = std::time::Duration::from_millis(500);
const OUTPUTS: &[OutputSpec] = &[
    OutputSpec {
        name: "shards",
        kind: ValueKind::List,
        doc: "the node groups that will be failed over",
    },
    OutputSpec {
        name: "lag",
        kind: ValueKind::Any,
        doc: "per shard: primary, replicas, largest lag in bytes and seconds",
    },
    OutputSpec {
        name: "quota_used",
        kind: ValueKind::Int,
        doc: "node groups test-failed-over in the last 24 hours",
    },
    OutputSpec {
        name: "quota_left",
        kind: ValueKind::Int,
        doc: "node groups that may still be test-failed-over today",
    },
];

/// Why a serverless cache cannot be test-failed-over, in words.
pub const SERVERLESS_WHY: &str =
    "serverless caches have no nodes to fail over; AWS has no TestFailover for them";

/// The shards `wanted` names (all when empty), or which names do not exist.
pub fn select_shards<'a>(
    cache: &'a Cache,
    wanted: &[String],
) -> Result<Vec<&'a Shard>, ActionError> {
    if wanted.is_empty() {
        return Ok(cache.shards.iter().collect());
    }
    let unknown: Vec<&str> = wanted
        .iter()
        .filter(|w| !cache.shards.iter().any(|s| &s.id == *w))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        let have: Vec<&str> = cache.shards.iter().map(|s| s.id.as_str()).collect();
        return Err(ActionError::failed(format!(
            "select shards of `{}`: no node group {}; it has {}",
            cache.name,
            unknown.join(", "),
            have.join(", ")
        )));
    }
    Ok(cache
        .shards
        .iter()
        .filter(|s| wanted.contains(&s.id))
        .collect())
}

/// Replication lag of one shard, as its primary reports it.
#[derive(Debug, Clone, Serialize)]
pub struct ShardLag {
    pub shard: String,
    pub primary: String,
    pub replicas_online: u64,
    pub max_lag_bytes: u64,
    pub max_lag_seconds: u64,
}

/// Why a shard has no node of `role`, in words: the roles nobody could learn, if any.
pub fn unknown_roles(shard: &Shard) -> Option<String> {
    let unknown: Vec<String> = shard
        .nodes
        .iter()
        .filter(|n| n.role == NodeRole::Unknown)
        .map(|n| match &n.role_source {
            RoleSource::Unknown(why) => format!(
                "role of {} unknown: {}",
                crate::escape::escape_capped(&n.id, 80),
                why
            ),
            _ => format!(
                "role of {} unknown",
                crate::escape::escape_capped(&n.id, 80)
            ),
        })
        .collect();
    (!unknown.is_empty()).then(|| unknown.join("; "))
}

/// Reads INFO replication from the shard's primary.
pub async fn shard_lag(ctx: &ActionContext, shard: &Shard) -> Result<ShardLag, ActionError> {
    let primary = shard.primary().ok_or_else(|| {
        ActionError::failed(format!(
            "measure the lag of shard {}: it has no primary answering{}",
            shard.id,
            unknown_roles(shard)
                .map(|w| format!(" ({w})"))
                .unwrap_or_default()
        ))
    })?;
    let connector = ctx.connector().await?;
    let mut conn = connector.connect(&primary.endpoint()).await?;
    let (info, _) = conn.info().await?;
    let r = &info.replication;
    let head = r.master_repl_offset.unwrap_or(0);
    let online: Vec<_> = r
        .replicas
        .iter()
        .filter(|l| l.state.as_deref() == Some("online"))
        .collect();
    Ok(ShardLag {
        shard: shard.id.clone(),
        primary: primary.id.clone(),
        replicas_online: online.len() as u64,
        max_lag_bytes: online
            .iter()
            .map(|l| head.saturating_sub(l.offset.unwrap_or(0)))
            .max()
            .unwrap_or(0),
        max_lag_seconds: online
            .iter()
            .filter_map(|l| l.lag_seconds)
            .max()
            .unwrap_or(0),
    })
}

/// Reasons the cache itself (not its shards) cannot be failed over.
pub fn kind_problem(cache: &Cache) -> Option<String> {
    match cache.kind {
        CacheKind::ReplicationGroup => None,
        CacheKind::Serverless => Some(SERVERLESS_WHY.into()),
        other => Some(format!(
            "it is a {other}; TestFailover exists only for ElastiCache replication groups"
        )),
    }
}

/// Whether a measured lag is within the limits with a replica online.
fn settled(lag: &ShardLag, max_bytes: u64, max_secs: u64) -> bool {
    lag.replicas_online > 0 && lag.max_lag_bytes <= max_bytes && lag.max_lag_seconds <= max_secs
}

/// Measures every shard's lag, and while some shard has no replica online or lags over the
/// limits, measures again every [`LAG_POLL`] for up to `wait` (a replica that has just
/// started or synced catches up within seconds), reporting progress. Returns the last
/// measurement of each shard.
async fn settled_lags(
    ctx: &ActionContext,
    shards: &[&Shard],
    max_bytes: u64,
    max_secs: u64,
    wait: std::time::Duration,
) -> Result<Vec<Result<ShardLag, ActionError>>, ActionError> {
    let started = std::time::Instant::now();
    loop {
        let mut lags = Vec::with_capacity(shards.len());
        for s in shards {
            lags.push(shard_lag(ctx, s).await);
        }
        let unsettled: Vec<String> = lags
            .iter()
            .filter_map(|l| l.as_ref().ok())
            .filter(|l| !settled(l, max_bytes, max_secs))
            .map(|l| {
                format!(
                    "shard {}: {} replica(s) online, lag {} bytes / {} s",
                    l.shard, l.replicas_online, l.max_lag_bytes, l.max_lag_seconds
                )
            })
            .collect();
        let waited = started.elapsed();
        if unsettled.is_empty() || waited >= wait {
            return Ok(lags);
        }
        ctx.progress(
            waited.as_millis() as u64,
            Some(wait.as_millis() as u64),
            format!(
                "waiting up to {} for replication to settle ({})",
                humantime::format_duration(wait),
                unsettled.join("; ")
            ),
        );
        ctx.sleep(LAG_POLL.min(wait.saturating_sub(waited))).await?;
    }
}

#[async_trait]
impl Action for FailoverPreflight {
    fn name(&self) -> &'static str {
        "failover-preflight"
    }
    fn summary(&self) -> &'static str {
        "Check that a test failover may start: replicas, automatic failover, lag, quota"
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
    fn plan(&self, ctx: &PlanContext<'_>, _inputs: &Inputs) -> Vec<PlannedCall> {
        let mut calls: Vec<PlannedCall> = Vec::new();
        for s in &ctx.cache.shards {
            match s.primary() {
                Some(p) => calls.push(PlannedCall::valkey(
                    format!("{}:{}", p.host, p.port),
                    "INFO",
                    false,
                )),
                // Roles the control plane does not give are learned before the step.
                None => calls.extend(s.nodes.iter().map(|n| {
                    PlannedCall::valkey(
                        format!("{}:{}", n.host, n.port),
                        "ROLE (role not reported by the control plane), then INFO on the primary",
                        false,
                    )
                })),
            }
        }
        calls.push(PlannedCall::control_plane(
            "elasticache:DescribeEvents start_time=now-24h (count TestFailover calls)",
            false,
        ));
        calls
    }
    async fn run(&self, ctx: &ActionContext, inputs: &Inputs) -> Result<Values, ActionError> {
        let cache = &ctx.cache;
        if let Some(why) = kind_problem(cache) {
            return Err(ActionError::failed(format!(
                "start a test failover of `{}`: {why}",
                cache.name
            )));
        }
        let shards = select_shards(cache, &inputs.list("shards")?)?;
        let max_bytes = inputs.int("max_lag_bytes")?.max(0) as u64;
        let max_secs = inputs.duration("max_lag")?.as_secs();
        let mut problems = Vec::new();
        if !cache.automatic_failover {
            problems.push(
                "automatic failover is off; turn it on (modify-replication-group --automatic-failover-enabled) first"
                    .to_string(),
            );
        }
        let mut measured = Vec::new();
        for s in &shards {
            if s.replicas().next().is_none() {
                problems.push(match unknown_roles(s) {
                    Some(why) => format!("shard {}: no replica known to promote ({why})", s.id),
                    None => format!("shard {} has no replica to promote", s.id),
                });
                continue;
            }
            measured.push(*s);
        }
        let wait = inputs.duration("lag_wait")?;
        let lags = settled_lags(ctx, &measured, max_bytes, max_secs, wait).await?;
        let mut lags_ok = Vec::new();
        for (s, lag) in measured.iter().zip(lags) {
            match lag {
                Ok(lag) => {
                    ctx.output(format!(
                        "shard {}: primary {}, {} replica(s) online, lag {} bytes / {} s",
                        lag.shard,
                        lag.primary,
                        lag.replicas_online,
                        lag.max_lag_bytes,
                        lag.max_lag_seconds
                    ));
                    if lag.replicas_online == 0 {
                        problems.push(format!(
                            "shard {} has no replica online (waited {})",
                            s.id,
                            humantime::format_duration(wait)
                        ));
                    }
                    if lag.max_lag_bytes > max_bytes || lag.max_lag_seconds > max_secs {
                        problems.push(format!(
                            "shard {} lags {} bytes / {} s (limits {max_bytes} bytes / {max_secs} s) after waiting {}; wait for replicas to catch up",
                            s.id,
                            lag.max_lag_bytes,
                            lag.max_lag_seconds,
                            humantime::format_duration(wait)
                        ));
                    }
                    lags_ok.push(lag);
                }
                Err(e) => problems.push(format!("measure the lag of shard {}: {e}", s.id)),
            }
        }
        let lags = lags_ok;
        let now = OffsetDateTime::now_utc();
        let events = ctx
            .plane
            .describe_events(EventQuery::all(now - time::Duration::hours(24)))
            .await?;
        let used = events::quota_used(&events, now);
        let left = QUOTA.saturating_sub(used);
        ctx.output(format!(
            "TestFailover quota: {used} of {QUOTA} node groups used in the last 24 hours"
        ));
        if shards.len() > left {
            problems.push(format!(
                "the TestFailover quota allows {left} more node group(s) in the next 24 hours ({used} of {QUOTA} used) and {} are selected",
                shards.len()
            ));
        }
        if !problems.is_empty() {
            return Err(ActionError::failed(format!(
                "start a test failover of `{}`: {}",
                cache.name,
                problems.join("; ")
            )));
        }
        let ids: Vec<serde_json::Value> = shards.iter().map(|s| s.id.clone().into()).collect();
        Ok(Values::new()
            .with("shards", Value::Json(serde_json::Value::Array(ids)))
            .with(
                "lag",
                Value::Json(serde_json::to_value(&lags).unwrap_or_default()),
            )
            .with("quota_used", Value::int(used as i64))
            .with("quota_left", Value::int(left as i64)))
    }
}
