//! The report of `test-failover`: probe figures, acknowledged writes lost (read back from
//! the new primary), old → new primary per shard (server run ids mapped to node ids), and
//! the event timeline, as the step's outputs.

use super::events::{self, Progress};
use super::preflight::ShardLag;
use crate::controlplane::CacheEvent;
use crate::domain::{Cache, Endpoint};
use crate::probe::{self, Attempt, ProbeSummary};
use crate::runbook::action::{ActionContext, ActionError};
use crate::runbook::value::{Value, Values};
use serde::Serialize;
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// One shard's failover.
#[derive(Debug, Clone, Serialize)]
pub struct ShardResult {
    pub id: String,
    pub old_primary: Option<String>,
    pub new_primary: Option<String>,
    /// Whether this attempt called TestFailover (false: an earlier attempt of the run did).
    pub triggered_here: bool,
    pub recovered: bool,
    /// How far AWS's clock (the "Test Failover API called" event's time) was from this
    /// host's when the call was made, in seconds (positive: AWS ahead); only when it looks
    /// larger than the event timestamps' own resolution.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock_skew_s: Option<i64>,
}

impl ShardResult {
    pub fn from_progress(
        id: &str,
        old: Option<String>,
        p: &Progress,
        triggered_here: bool,
    ) -> ShardResult {
        let (old_ev, new_ev) = p.completed.clone().unzip();
        ShardResult {
            id: id.to_string(),
            old_primary: old.or(old_ev),
            new_primary: new_ev,
            triggered_here,
            recovered: p.recovered,
            clock_skew_s: None,
        }
    }
}

/// What the probes recorded around the trigger.
pub struct Measured<'a> {
    pub key: &'a str,
    pub writes: &'a [Attempt],
    pub trigger_writer: Duration,
    pub reads: Option<&'a [Attempt]>,
    pub trigger_reader: Option<Duration>,
    pub lag_before: &'a [ShardLag],
    pub shards: Vec<ShardResult>,
    pub events: &'a [CacheEvent],
}

fn timeline(events: &[CacheEvent]) -> serde_json::Value {
    let items: Vec<&CacheEvent> = events
        .iter()
        .filter(|e| events::is_failover_event(e))
        .collect();
    serde_json::to_value(items).unwrap_or_default()
}

fn round(ms: f64) -> serde_json::Value {
    json!((ms * 1000.0).round() / 1000.0)
}

/// Outputs when the probes could not measure (the run was resumed after the trigger).
pub fn unmeasured(ctx: &ActionContext, shards: Vec<ShardResult>, events: &[CacheEvent]) -> Values {
    ctx.output(
        "the probes died with the interrupted run: window and lost writes were not measured",
    );
    Values::new()
        .with("write_unavailable_ms", Value::Json(serde_json::Value::Null))
        .with("acked_writes_lost", Value::Json(serde_json::Value::Null))
        .with("writes_acked", Value::Json(serde_json::Value::Null))
        .with("errors_by_class", Value::Json(json!({})))
        .with("writer", Value::Json(serde_json::Value::Null))
        .with("reader", Value::Json(serde_json::Value::Null))
        .with("endpoint_follow_ms", Value::Json(serde_json::Value::Null))
        .with("lag_before", Value::Json(serde_json::Value::Null))
        .with(
            "shards",
            Value::Json(serde_json::to_value(shards).unwrap_or_default()),
        )
        .with("events", Value::Json(timeline(events)))
}

/// Reads the probe list back through `endpoint`, following one MOVED redirect.
async fn read_back(
    ctx: &ActionContext,
    endpoint: &Endpoint,
    key: &str,
) -> Result<HashSet<u64>, ActionError> {
    let connector = ctx.connector().await?;
    let mut conn = connector.connect(endpoint).await?;
    let lrange = redis::cmd("LRANGE").arg(key).arg(0).arg(-1).to_owned();
    let items: Vec<String> = match conn.query(&lrange).await {
        Ok(v) => v,
        Err(e) => {
            // Cluster mode: the endpoint may not own the probe key's slot.
            let next = super::super::nodes::moved_to(&e, endpoint).ok_or(e)?;
            conn = connector.connect(&next).await?;
            conn.query(&lrange).await?
        }
    };
    let _: Result<i64, _> = conn.query(redis::cmd("DEL").arg(key)).await;
    Ok(items.iter().filter_map(|s| s.parse().ok()).collect())
}

/// Server run id → node id, asking every node of the (re-discovered) cache.
async fn run_ids(ctx: &ActionContext, cache: &Cache) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let Ok(connector) = ctx.connector().await else {
        return map;
    };
    for node in cache.nodes() {
        let Ok(mut conn) = connector.connect(&node.endpoint()).await else {
            continue;
        };
        if let Ok(text) = conn.query::<String>(redis::cmd("INFO").arg("server")).await
            && let Some(id) = text.lines().find_map(|l| l.strip_prefix("run_id:"))
        {
            map.insert(id.trim().to_string(), node.id.clone());
        }
    }
    map
}

/// The probe summary with servers named by node id where known.
fn named(summary: &ProbeSummary, ids: &BTreeMap<String, String>) -> serde_json::Value {
    let name = |s: &Option<String>| {
        s.as_ref()
            .map(|r| ids.get(r).cloned().unwrap_or_else(|| format!("run_id {r}")))
    };
    json!({
        "attempts": summary.attempts,
        "acked": summary.acked,
        "failed": summary.failed,
        "errors_by_class": summary.errors_by_class,
        "unavailable": summary.unavailable,
        "server_before": name(&summary.server_before),
        "server_after": name(&summary.server_after),
        "follow_ms": summary.follow_ms.map(round),
    })
}

/// The outputs of a measured failover.
pub async fn measured(ctx: &ActionContext, m: Measured<'_>) -> Result<Values, ActionError> {
    let endpoint = ctx
        .cache
        .endpoints
        .primary
        .clone()
        .or_else(|| ctx.cache.endpoint.clone())
        .ok_or_else(|| ActionError::failed("read the probe list: no primary endpoint"))?;
    let present = read_back(ctx, &endpoint, m.key).await?;
    let lost = probe::lost_acks(m.writes, &present);
    let writer = probe::summarize(m.writes, m.trigger_writer);
    let reader = match (m.reads, m.trigger_reader) {
        (Some(r), Some(t)) => Some(probe::summarize(r, t)),
        _ => None,
    };
    // The cache as it is now: new roles, and the nodes whose run ids the probes saw.
    let mut now = match ctx.plane.discover().await {
        Ok(d) => d.caches.into_iter().find(|c| c.name == ctx.cache.name),
        Err(e) => {
            ctx.output(format!("re-discover the cache after the failover: {e}"));
            None
        }
    };
    // In cluster mode the control plane names no roles: ask the nodes who leads now.
    if let Some(c) = now.as_mut()
        && crate::valkey::roles::needs_learning(c)
        && let Ok(connector) = ctx.connector().await
    {
        crate::valkey::roles::learn(c, connector).await;
    }
    let ids = run_ids(ctx, now.as_ref().unwrap_or(&ctx.cache)).await;
    let mut shards = m.shards;
    for s in &mut shards {
        if s.new_primary.is_none() {
            s.new_primary = now
                .as_ref()
                .and_then(|c| c.shards.iter().find(|x| x.id == s.id))
                .and_then(|x| x.primary())
                .map(|n| n.id.clone());
        }
        ctx.output(format!(
            "shard {}: {} → {}",
            s.id,
            s.old_primary.as_deref().unwrap_or("?"),
            s.new_primary.as_deref().unwrap_or("?")
        ));
    }
    let window = writer.unavailable.map(|w| w.duration_ms);
    ctx.output(format!(
        "writes: {} acked, {} failed, unavailable {} ms, {} acknowledged writes lost",
        writer.acked,
        writer.failed,
        window
            .map(|w| format!("{w:.1}"))
            .unwrap_or_else(|| "?".into()),
        lost.len()
    ));
    if !lost.is_empty() {
        let first: Vec<String> = lost.iter().take(20).map(u64::to_string).collect();
        ctx.output(format!("lost sequence numbers: {}", first.join(" ")));
    }
    Ok(Values::new()
        .with(
            "write_unavailable_ms",
            Value::Json(window.map(round).unwrap_or(serde_json::Value::Null)),
        )
        .with("acked_writes_lost", Value::int(lost.len() as i64))
        .with("writes_acked", Value::int(writer.acked as i64))
        .with(
            "errors_by_class",
            Value::Json(json!(writer.errors_by_class)),
        )
        .with("writer", Value::Json(named(&writer, &ids)))
        .with(
            "reader",
            Value::Json(
                reader
                    .map(|r| named(&r, &ids))
                    .unwrap_or(serde_json::Value::Null),
            ),
        )
        .with(
            "endpoint_follow_ms",
            Value::Json(
                writer
                    .follow_ms
                    .map(round)
                    .unwrap_or(serde_json::Value::Null),
            ),
        )
        .with(
            "lag_before",
            Value::Json(serde_json::to_value(m.lag_before).unwrap_or_default()),
        )
        .with(
            "shards",
            Value::Json(serde_json::to_value(&shards).unwrap_or_default()),
        )
        .with("events", Value::Json(timeline(m.events))))
}
