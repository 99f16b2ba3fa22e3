//! `snapshot-preflight` and `snapshot-create`: an ElastiCache / serverless snapshot with its
//! manifest (key counts and a deterministic sample read while the snapshot is taken).
//!
//! Preflight refuses before any call: a cache that is not `available`, a snapshot already
//! in progress, the daily manual-snapshot limit used up (with the time the next slot frees),
//! a name AWS would refuse. `snapshot-create` calls CreateSnapshot once per run: on a retry or
//! `runs resume` it finds the snapshot by name (DescribeSnapshots) and follows it instead.

use crate::controlplane::{ControlPlaneError, EventQuery, Snapshot, SnapshotQuery, SnapshotTarget};
use crate::domain::{Cache, CacheKind, Endpoint, NodeRole};
use crate::runbook::action::{
    Action, ActionContext, ActionError, InputSpec, Inputs, Observation, OutputSpec, PlanContext,
    PlannedCall,
};
use crate::runbook::value::{Value, ValueKind, Values};
use crate::snapshot::manifest::{self, Manifest, SampleKey, ShardCounts};
use crate::snapshot::tracking::Tracker;
use async_trait::async_trait;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// Manual snapshots per node per rolling 24 hours (ElastiCache).
pub const NODE_DAILY_LIMIT: usize = 20;
/// Manual snapshots per serverless cache per rolling 24 hours.
pub const SERVERLESS_DAILY_LIMIT: usize = 24;

const fn out(name: &'static str, kind: ValueKind, doc: &'static str) -> OutputSpec {
    OutputSpec { name, kind, doc }
}

/// AWS's snapshot name rules (it lowercases names): 1–255 characters, letters, digits and
/// hyphens, a letter first, no two hyphens in a row, no hyphen at the end.
pub fn check_name(name: &str) -> Result<String, String> {
    crate::controlplane::names::check_snapshot_name(name).map_err(|why| {
        format!(
            "snapshot name `{}` {why}",
            crate::escape::escape_capped(name, 80)
        )
    })
}

/// The default name: `cachedeck-<cache>-<utc yyyymmdd-hhmmss>`.
pub fn default_name(cache: &str, at: OffsetDateTime) -> String {
    let cache: String = cache
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let mut name = format!(
        "cachedeck-{cache}-{:04}{:02}{:02}-{:02}{:02}{:02}",
        at.year(),
        at.month() as u8,
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    while name.contains("--") {
        name = name.replace("--", "-");
    }
    name
}

/// Where the snapshot is taken: (target, node id for messages).
fn target_of(cache: &Cache, node: &str) -> Result<SnapshotTarget, ActionError> {
    match cache.kind {
        CacheKind::Serverless => Ok(SnapshotTarget::Serverless(cache.name.clone())),
        CacheKind::ReplicationGroup if cache.cluster_mode => {
            Ok(SnapshotTarget::Group(cache.name.clone()))
        }
        CacheKind::ReplicationGroup if !node.is_empty() => Ok(SnapshotTarget::Node(node.into())),
        CacheKind::ReplicationGroup => Ok(SnapshotTarget::Group(cache.name.clone())),
        other => Err(ActionError::failed(format!(
            "snapshot cache `{}`: a {} has no ElastiCache snapshots (use the ecs-service path)",
            cache.name,
            other.as_str()
        ))),
    }
}

/// A replica that is up (BGSAVE on a replica spares the primary), else the primary.
pub fn pick_node(cache: &Cache) -> Option<String> {
    let shard = cache.shards.first()?;
    shard
        .replicas()
        .find(|n| n.health.is_up())
        .or(shard.primary())
        .map(|n| n.id.clone())
}

async fn find(ctx: &ActionContext, name: &str) -> Result<Option<Snapshot>, ActionError> {
    let serverless = ctx.cache.kind == CacheKind::Serverless;
    match ctx
        .plane
        .describe_snapshots(SnapshotQuery {
            cache: None,
            name: Some(name.into()),
            serverless,
        })
        .await
    {
        Ok(found) => Ok(found
            .into_iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))),
        Err(ControlPlaneError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn fmt_time(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

// ---- snapshot-preflight -----------------------------------------------------------------

pub struct SnapshotPreflight;

const PRE_INPUTS: &[InputSpec] = &[InputSpec::optional(
    "name",
    ValueKind::String,
    Some("\"\""),
    "snapshot name (AWS lowercases it); empty: cachedeck-<cache>-<utc timestamp>",
)];
const PRE_OUTPUTS: &[OutputSpec] = &[
    out("name", ValueKind::String, "the snapshot name, lowercased"),
    out(
        "node",
        ValueKind::String,
        "the node snapshotted (cluster mode off), else empty",
    ),
    out(
        "level",
        ValueKind::String,
        "`node`, `group` or `serverless`: the CreateSnapshot level",
    ),
    out(
        "used_today",
        ValueKind::Int,
        "manual snapshots in the last 24 hours",
    ),
    out("limit", ValueKind::Int, "the daily manual-snapshot limit"),
];

#[async_trait]
impl Action for SnapshotPreflight {
    fn name(&self) -> &'static str {
        "snapshot-preflight"
    }
    fn summary(&self) -> &'static str {
        "Check status, snapshots in progress, the daily limit and the name before a snapshot"
    }
    fn inputs(&self) -> &'static [InputSpec] {
        PRE_INPUTS
    }
    fn outputs(&self) -> &'static [OutputSpec] {
        PRE_OUTPUTS
    }
    fn dangerous(&self) -> bool {
        false
    }
    fn plan(&self, ctx: &PlanContext<'_>, _inputs: &Inputs) -> Vec<PlannedCall> {
        let call = if ctx.cache.kind == CacheKind::Serverless {
            format!(
                "elasticache:DescribeServerlessCacheSnapshots ServerlessCacheName={}",
                ctx.cache.name
            )
        } else {
            format!(
                "elasticache:DescribeSnapshots ReplicationGroupId={}",
                ctx.cache.name
            )
        };
        vec![PlannedCall::control_plane(call, false)]
    }
    async fn run(&self, ctx: &ActionContext, inputs: &Inputs) -> Result<Values, ActionError> {
        let cache = &ctx.cache;
        let wanted = inputs.str("name")?;
        let name = if wanted.is_empty() {
            default_name(&cache.name, ctx.first_started_at)
        } else {
            check_name(wanted).map_err(ActionError::Failed)?
        };
        if !wanted.is_empty() && name != wanted {
            ctx.output(format!(
                "AWS stores snapshot names in lowercase: the snapshot will be `{name}`"
            ));
        }
        if cache.kind == CacheKind::EcsService {
            ctx.output(
                "self-managed Valkey: BGSAVE on the task, no AWS snapshot (and no daily limit)",
            );
            return Ok(Values::new()
                .with("name", Value::str(name))
                .with("node", Value::str(""))
                .with("level", Value::str("bgsave"))
                .with("used_today", Value::int(0))
                .with("limit", Value::int(0)));
        }
        if cache.status != "available" {
            return Err(ActionError::failed(format!(
                "snapshot cache `{}`: its status is {}, not available; wait until it is",
                cache.name, cache.status
            )));
        }
        let serverless = cache.kind == CacheKind::Serverless;
        let node = if cache.kind == CacheKind::ReplicationGroup && !cache.cluster_mode {
            pick_node(cache).unwrap_or_default()
        } else {
            String::new()
        };
        let target = target_of(cache, &node)?;
        let level = match target {
            SnapshotTarget::Node(_) => "node",
            SnapshotTarget::Group(_) => "group",
            SnapshotTarget::Serverless(_) => "serverless",
        };
        let all = ctx
            .plane
            .describe_snapshots(SnapshotQuery {
                cache: Some(cache.name.clone()),
                name: None,
                serverless,
            })
            .await?;
        if let Some(busy) = all.iter().find(|s| s.status == "creating") {
            return Err(ActionError::failed(format!(
                "snapshot cache `{}`: snapshot {} is still being created; wait for it (AWS takes one at a time)",
                cache.name,
                crate::escape::escape_capped(&busy.name, 120)
            )));
        }
        if all.iter().any(|s| s.name.eq_ignore_ascii_case(&name)) {
            return Err(ActionError::failed(format!(
                "snapshot `{name}` already exists; choose another name"
            )));
        }
        let now = OffsetDateTime::now_utc();
        let day_ago = now - time::Duration::hours(24);
        let mut recent: Vec<OffsetDateTime> = all
            .iter()
            .filter(|s| s.source == "manual")
            .filter(|s| node.is_empty() || s.cache_cluster_id.as_deref().is_none_or(|n| n == node))
            .filter_map(|s| s.created)
            .filter(|c| *c > day_ago)
            .collect();
        recent.sort();
        let limit = if serverless {
            SERVERLESS_DAILY_LIMIT
        } else {
            NODE_DAILY_LIMIT
        };
        if recent.len() >= limit {
            let frees = recent[recent.len() - limit] + time::Duration::hours(24);
            return Err(ActionError::failed(format!(
                "snapshot cache `{}`: {} manual snapshots in the last 24 hours (the limit is {limit}); the next slot frees up at {}",
                cache.name,
                recent.len(),
                fmt_time(frees)
            )));
        }
        if serverless {
            ctx.output(
                "a serverless cache accepts no other API call while it backs up (no scaling, no updates)",
            );
        }
        ctx.output(format!(
            "{} manual snapshots in the last 24 hours (limit {limit}); level {level}{}",
            recent.len(),
            if node.is_empty() {
                String::new()
            } else {
                format!(", node {node}")
            }
        ));
        Ok(Values::new()
            .with("name", Value::str(name))
            .with("node", Value::str(node))
            .with("level", Value::str(level))
            .with("used_today", Value::int(recent.len() as i64))
            .with("limit", Value::int(limit as i64)))
    }
}

// ---- snapshot-create --------------------------------------------------------------------

pub struct SnapshotCreate;

const CREATE_INPUTS: &[InputSpec] = &[
    InputSpec::required("name", ValueKind::String, "the snapshot name (lowercase)"),
    InputSpec::optional(
        "node",
        ValueKind::String,
        Some("\"\""),
        "cluster mode off: the node (CacheClusterId) to snapshot; empty: group level",
    ),
    InputSpec::optional(
        "sample",
        ValueKind::Int,
        Some("2000"),
        "keys in the manifest's deterministic sample (0: counts only)",
    ),
    InputSpec::optional(
        "poll",
        ValueKind::Duration,
        Some("\"15s\""),
        "time between DescribeSnapshots calls while waiting",
    ),
    InputSpec::optional(
        "download",
        ValueKind::String,
        Some("\"\""),
        "ecs-service: also stream the RDB to this local file over the replication protocol (0600)",
    ),
    InputSpec::optional(
        "timeout",
        ValueKind::Duration,
        Some("\"2h\""),
        "how long the snapshot may take to become available",
    ),
];
const CREATE_OUTPUTS: &[OutputSpec] = &[
    out("snapshot", ValueKind::String, "the snapshot name"),
    out("status", ValueKind::String, "its final status"),
    out("size_bytes", ValueKind::Any, "its size, where AWS says it"),
    out(
        "keys",
        ValueKind::Int,
        "keys when the snapshot was requested",
    ),
    out("sampled", ValueKind::Int, "keys in the sample"),
    out(
        "changed_during_snapshot",
        ValueKind::Int,
        "sampled keys that changed while the snapshot was taken",
    ),
    out(
        "snapshot_ms",
        ValueKind::Int,
        "CreateSnapshot to available, ms",
    ),
    out("sample_ms", ValueKind::Int, "reading the sample, ms"),
    out(
        "manifest_path",
        ValueKind::String,
        "where the manifest is stored",
    ),
    out(
        "manifest",
        ValueKind::Any,
        "the manifest: counts per shard and database, the sample",
    ),
    out(
        "download",
        ValueKind::Any,
        "ecs-service with `download`: path, bytes, crc64, form (len/eof), ms",
    ),
];

/// Where a shard's counts and sample are read.
struct ReadTarget {
    shard: String,
    slots: Option<String>,
    label: String,
    endpoint: Endpoint,
    readonly: bool,
}

fn read_targets(cache: &Cache, node: &str) -> Result<Vec<ReadTarget>, ActionError> {
    if cache.shards.is_empty() || cache.kind == CacheKind::Serverless {
        let endpoint = cache.endpoint.clone().ok_or_else(|| {
            ActionError::failed(format!("read cache `{}`: it has no endpoint", cache.name))
        })?;
        return Ok(vec![ReadTarget {
            shard: cache
                .shards
                .first()
                .map(|s| s.id.clone())
                .unwrap_or_else(|| "0001".into()),
            slots: None,
            label: "endpoint".into(),
            endpoint,
            readonly: false,
        }]);
    }
    let mut out = Vec::new();
    for shard in &cache.shards {
        let n = shard
            .nodes
            .iter()
            .find(|n| !node.is_empty() && n.id == node)
            .or_else(|| shard.replicas().find(|n| n.health.is_up()))
            .or(shard.primary())
            .ok_or_else(|| {
                ActionError::failed(format!(
                    "read shard {}: it has no node that is up",
                    shard.id
                ))
            })?;
        out.push(ReadTarget {
            shard: shard.id.clone(),
            slots: shard.slots.clone(),
            label: n.id.clone(),
            endpoint: n.endpoint(),
            readonly: cache.cluster_mode && n.role == NodeRole::Replica,
        });
    }
    Ok(out)
}

async fn connect(
    ctx: &ActionContext,
    t: &ReadTarget,
) -> Result<crate::valkey::connect::NodeConnection, ActionError> {
    let mut conn = ctx.connector().await?.connect(&t.endpoint).await?;
    if t.readonly {
        let _: () = conn.query(&redis::cmd("READONLY")).await?;
    }
    Ok(conn)
}

/// [`connect`] for the keyspace walk, whose replies are read in place.
async fn connect_raw(
    ctx: &ActionContext,
    t: &ReadTarget,
) -> Result<crate::valkey::connect::RawConnection, ActionError> {
    let mut conn = ctx.connector().await?.connect_raw(&t.endpoint).await?;
    if t.readonly {
        let refused = conn.call(&redis::cmd("READONLY")).await?.error();
        if let Some(e) = refused {
            return Err(ActionError::failed(format!(
                "READONLY on {}: {}",
                t.label,
                crate::escape::escape_capped(e, 200)
            )));
        }
    }
    Ok(conn)
}

/// Per shard: the node read, and the key counts before the snapshot was requested and once
/// it was available (with the expiring keys of the first reading).
fn shard_counts(targets: &[ReadTarget], before: &[Counts], after: &[Counts]) -> Vec<ShardCounts> {
    targets
        .iter()
        .zip(before.iter().zip(after.iter()))
        .map(|(t, ((kb, exp), (ka, _)))| ShardCounts {
            shard: t.shard.clone(),
            slots: t.slots.clone(),
            node: t.label.clone(),
            keys_before: kb.clone(),
            keys_after: ka.clone(),
            expires: exp.clone(),
        })
        .collect()
}

/// Keys and expiring keys per database of one shard (INFO keyspace).
type Counts = (
    std::collections::BTreeMap<u32, u64>,
    std::collections::BTreeMap<u32, u64>,
);

/// Counts per database on every target.
async fn counts(ctx: &ActionContext, targets: &[ReadTarget]) -> Result<Vec<Counts>, ActionError> {
    let mut out = Vec::new();
    for t in targets {
        let mut conn = connect(ctx, t).await?;
        out.push(
            manifest::keyspace(&mut conn)
                .await
                .map_err(|e| ActionError::failed(format!("read {}: {e}", t.label)))?,
        );
    }
    Ok(out)
}

/// Write tracking on every target (see [`crate::snapshot::tracking`]), started before the
/// snapshot is asked for; `None` for a target where it cannot be had (the save marks decide
/// there).
async fn start_tracking(
    ctx: &ActionContext,
    targets: &[ReadTarget],
    cutoff: u64,
) -> Result<Vec<Option<Tracker>>, ActionError> {
    let connector = ctx.connector().await?;
    let mut out = Vec::new();
    for t in targets {
        match Tracker::start(connector, &t.endpoint, cutoff).await {
            Ok(tracker) => out.push(Some(tracker)),
            Err(e) => {
                ctx.output(format!(
                    "{}: no write tracking ({}); keys read after the save began are held to the save marks",
                    t.label,
                    crate::escape::escape_capped(e, 160)
                ));
                out.push(None);
            }
        }
    }
    Ok(out)
}

/// Each target's [`manifest::SaveMark`] before the snapshot is asked for.
async fn save_marks(
    ctx: &ActionContext,
    targets: &[ReadTarget],
) -> Result<Vec<manifest::SaveMark>, ActionError> {
    let mut out = Vec::new();
    for t in targets {
        let mut conn = connect(ctx, t).await?;
        out.push(
            manifest::save_mark(&mut conn)
                .await
                .map_err(|e| ActionError::failed(format!("read {}: {e}", t.label)))?,
        );
    }
    Ok(out)
}

/// Picks and reads the sample on every target, while the snapshot is taken; with each key
/// whether its read holds the saved value by the save marks alone (see
/// [`manifest::SaveMark::holds_since`]; `start` is each target's mark before the snapshot
/// was asked for) — what decides when the node's write tracking is not available.
async fn read_sample(
    ctx: &ActionContext,
    targets: &[ReadTarget],
    keyspaces: &[std::collections::BTreeMap<u32, u64>],
    cutoff: u64,
    start: &[manifest::SaveMark],
) -> Result<(Vec<SampleKey>, Vec<bool>), ActionError> {
    let total: u64 = keyspaces.iter().flat_map(|k| k.values()).sum();
    let walked = std::sync::atomic::AtomicU64::new(0);
    // Every shard at once: each is a node of its own.
    let read =
        futures::future::try_join_all(targets.iter().zip(keyspaces).zip(start).map(
            |((t, keys), start)| read_node_sample(ctx, t, keys, cutoff, start, total, &walked),
        ))
        .await?;
    let mut sample = Vec::new();
    let mut held = Vec::new();
    for (s, h) in read {
        sample.extend(s);
        held.extend(h);
    }
    Ok((sample, held))
}

/// [`read_sample`] on one target.
async fn read_node_sample(
    ctx: &ActionContext,
    t: &ReadTarget,
    keys: &std::collections::BTreeMap<u32, u64>,
    cutoff: u64,
    start: &manifest::SaveMark,
    total: u64,
    walked: &std::sync::atomic::AtomicU64,
) -> Result<(Vec<SampleKey>, Vec<bool>), ActionError> {
    use std::sync::atomic::Ordering;
    let mut sample = Vec::new();
    let mut held = Vec::new();
    let mut conn = connect(ctx, t).await?;
    let mut walk = connect_raw(ctx, t).await?;
    for &db in keys.keys() {
        let mut on_batch = |n: usize| {
            let now = walked.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
            ctx.progress(now, Some(total.max(now)), "choosing the sample");
        };
        let chosen = manifest::pick(&mut walk, db, cutoff, &mut on_batch)
            .await
            .map_err(|e| ActionError::failed(format!("scan {}: {e}", t.label)))?;
        let reads = manifest::read_keys_marked(&mut conn, db, &chosen, true)
            .await
            .map_err(|e| ActionError::failed(format!("read {}: {e}", t.label)))?;
        for (key, (read, mark)) in chosen.into_iter().zip(reads) {
            let Some(read) = read else {
                continue;
            };
            sample.push(SampleKey {
                key_hex: manifest::to_hex(&key),
                db,
                shard: t.shard.clone(),
                kind: read.kind,
                ttl: read.ttl,
                digest: read.digest,
                changed: false,
            });
            held.push(mark.holds_since(start));
        }
    }
    Ok((sample, held))
}

/// The sample read beside the save (none when no sample is asked for), and how long it took.
async fn read_sample_timed(
    ctx: &ActionContext,
    targets: &[ReadTarget],
    before: &[Counts],
    cutoff: u64,
    start: &[manifest::SaveMark],
    sample_target: u64,
) -> Result<((Vec<SampleKey>, Vec<bool>), Duration), ActionError> {
    let t = Instant::now();
    if sample_target == 0 {
        return Ok((Default::default(), t.elapsed()));
    }
    let keyspaces: Vec<_> = before.iter().map(|(k, _)| k.clone()).collect();
    let sample = read_sample(ctx, targets, &keyspaces, cutoff, start).await?;
    Ok((sample, t.elapsed()))
}

/// After the save: the key counts again, and the sampled keys that changed while it ran
/// marked as such: on a node with write tracking, the keys it says were written since
/// tracking began (before the snapshot was asked for, so before every read of the sample);
/// elsewhere, the keys whose second read differs from the first, or whose first read the save
/// marks do not hold. Returns the counts.
async fn settle_sample(
    ctx: &ActionContext,
    targets: &[ReadTarget],
    trackers: &mut [Option<Tracker>],
    sample: &mut [SampleKey],
    held: &[bool],
) -> Result<Vec<Counts>, ActionError> {
    let after = counts(ctx, targets).await?;
    let mut written = Vec::new();
    for i in 0..targets.len() {
        written.push(match trackers.get_mut(i) {
            Some(Some(tracker)) => tracker.written().await.ok().flatten(),
            _ => None,
        });
    }
    let untracked: Vec<&ReadTarget> = targets
        .iter()
        .zip(&written)
        .filter(|(_, w)| w.is_none())
        .map(|(t, _)| t)
        .collect();
    mark_changed(ctx, &untracked, sample).await?;
    for (t, written) in targets.iter().zip(&written) {
        for (k, held) in sample.iter_mut().zip(held) {
            if k.shard == t.shard {
                k.changed |= match written {
                    Some(keys) => keys.contains(&k.key()),
                    None => !held,
                };
            }
        }
    }
    Ok(after)
}

/// Reads the sample of each of `targets` again after the snapshot and flags keys that
/// changed since their first read (which, when it preceded the save's fork, brackets it).
async fn mark_changed(
    ctx: &ActionContext,
    targets: &[&ReadTarget],
    sample: &mut [SampleKey],
) -> Result<(), ActionError> {
    for t in targets {
        let mut by_db: std::collections::BTreeMap<u32, Vec<usize>> = Default::default();
        for (i, k) in sample.iter().enumerate() {
            if k.shard == t.shard {
                by_db.entry(k.db).or_default().push(i);
            }
        }
        if by_db.is_empty() {
            continue;
        }
        let mut conn = connect(ctx, t).await?;
        for (db, idx) in by_db {
            let keys: Vec<Vec<u8>> = idx.iter().map(|&i| sample[i].key()).collect();
            let reads = manifest::read_keys(&mut conn, db, &keys)
                .await
                .map_err(|e| ActionError::failed(format!("read {}: {e}", t.label)))?;
            for (&i, read) in idx.iter().zip(reads) {
                let same = read
                    .as_ref()
                    .is_some_and(|r| r.kind == sample[i].kind && r.digest == sample[i].digest);
                sample[i].changed |= !same;
            }
        }
    }
    Ok(())
}

/// Polls DescribeSnapshots until `available`; `failed` or vanished fails with AWS's event.
async fn wait_available(
    ctx: &ActionContext,
    name: &str,
    every: Duration,
    deadline: Duration,
) -> Result<Snapshot, ActionError> {
    let started = Instant::now();
    let last_status = std::sync::Mutex::new(String::new());
    let result = ctx
        .poll(
            &format!("see snapshot {name} become available"),
            every,
            deadline,
            || async {
                match find(ctx, name).await? {
                    Some(s) if s.status == "available" => Ok(Some(Ok(s))),
                    Some(s) if s.status == "failed" => Ok(Some(Err(format!(
                        "snapshot {name} failed: {}",
                        event_text(ctx, name).await
                    )))),
                    Some(s) => {
                        if let Ok(mut last) = last_status.lock()
                            && *last != s.status
                        {
                            ctx.output(format!("snapshot {name}: {}", s.status));
                            *last = s.status.clone();
                        }
                        ctx.waiting(started, format!("snapshot {}", s.status));
                        Ok(None)
                    }
                    None => Ok(Some(Err(format!(
                        "snapshot {name} vanished: {}",
                        event_text(ctx, name).await
                    )))),
                }
            },
        )
        .await?;
    result.map_err(ActionError::Failed)
}

/// The newest event that names the snapshot, escaped (or a note that there is none).
async fn event_text(ctx: &ActionContext, name: &str) -> String {
    let since = ctx.first_started_at - time::Duration::minutes(5);
    match ctx.plane.describe_events(EventQuery::all(since)).await {
        Ok(events) => events
            .iter()
            .rev()
            .find(|e| e.message.contains(&format!("'{name}'")) || e.message.contains(name))
            .map(|e| crate::escape::escape_capped(&e.message, 300))
            .unwrap_or_else(|| "no event names it".into()),
        Err(e) => format!("events unreadable: {e}"),
    }
}

#[async_trait]
impl Action for SnapshotCreate {
    fn name(&self) -> &'static str {
        "snapshot-create"
    }
    fn summary(&self) -> &'static str {
        "CreateSnapshot, wait until available, and record the manifest (counts and a sample)"
    }
    fn inputs(&self) -> &'static [InputSpec] {
        CREATE_INPUTS
    }
    fn outputs(&self) -> &'static [OutputSpec] {
        CREATE_OUTPUTS
    }
    fn dangerous(&self) -> bool {
        true
    }
    fn plan(&self, ctx: &PlanContext<'_>, inputs: &Inputs) -> Vec<PlannedCall> {
        let node = inputs.opt_str("node").ok().flatten().unwrap_or("");
        let call = match target_of(ctx.cache, node) {
            Ok(SnapshotTarget::Node(n)) => format!(
                "elasticache:CreateSnapshot SnapshotName={} CacheClusterId={n}",
                inputs.show("name")
            ),
            Ok(SnapshotTarget::Group(g)) => format!(
                "elasticache:CreateSnapshot SnapshotName={} ReplicationGroupId={g}",
                inputs.show("name")
            ),
            Ok(SnapshotTarget::Serverless(s)) => format!(
                "elasticache:CreateServerlessCacheSnapshot ServerlessCacheSnapshotName={} ServerlessCacheName={s}",
                inputs.show("name")
            ),
            Err(e) => format!("refused: {e}"),
        };
        vec![
            PlannedCall::local("INFO keyspace, SCAN + TYPE/PTTL/reads of the sample on each shard"),
            PlannedCall::control_plane(call, true),
            PlannedCall::control_plane(
                format!(
                    "elasticache:DescribeSnapshots SnapshotName={} every {} until available",
                    inputs.show("name"),
                    inputs.show("poll")
                ),
                false,
            ),
        ]
    }
    async fn observe(
        &self,
        ctx: &ActionContext,
        inputs: &Inputs,
    ) -> Result<Observation, ActionError> {
        let name = inputs.str("name")?;
        Ok(match find(ctx, name).await? {
            None => Observation::NotDone,
            Some(s) => Observation::Partial(format!(
                "snapshot {name} exists ({}); following it and recording the manifest",
                s.status
            )),
        })
    }
    async fn run(&self, ctx: &ActionContext, inputs: &Inputs) -> Result<Values, ActionError> {
        let name = check_name(inputs.str("name")?).map_err(ActionError::Failed)?;
        let node = inputs.str("node")?;
        let sample_target = inputs.int("sample")?.max(0) as u64;
        let every = inputs.duration("poll")?;
        let deadline = inputs.duration("timeout")?;
        if ctx.cache.kind == CacheKind::EcsService {
            return self_managed(ctx, &name, sample_target, inputs.str("download")?).await;
        }
        let target = target_of(&ctx.cache, node)?;
        let targets = read_targets(&ctx.cache, node)?;

        let before = counts(ctx, &targets).await?;
        let total: u64 = before.iter().flat_map(|(k, _)| k.values()).sum();
        let cutoff = if sample_target == 0 {
            0
        } else {
            manifest::cutoff(sample_target, total)
        };
        // Before the snapshot is asked for: what the sample's reads are held to.
        let mut trackers = if sample_target == 0 {
            Vec::new()
        } else {
            start_tracking(ctx, &targets, cutoff).await?
        };
        let start = save_marks(ctx, &targets).await?;
        let started = Instant::now();
        let existing = find(ctx, &name).await?;
        let create = async {
            match existing {
                Some(s) if ctx.intent_at.is_some() || ctx.attempt > 1 => {
                    ctx.output(format!(
                        "snapshot {name} was already requested by this run ({}); following it",
                        s.status
                    ));
                }
                Some(_) => {
                    return Err(ActionError::failed(format!(
                        "snapshot `{name}` already exists and this run did not create it; choose another name"
                    )));
                }
                None => {
                    ctx.output(format!("CreateSnapshot {name} ({target:?})"));
                    ctx.plane.create_snapshot(&name, target.clone()).await?;
                }
            }
            let snap = wait_available(ctx, &name, every, deadline).await?;
            Ok((snap, started.elapsed()))
        };
        let sample_read = read_sample_timed(ctx, &targets, &before, cutoff, &start, sample_target);
        let (created, sampled) = tokio::join!(create, sample_read);
        let (snap, snapshot_took) = created?;
        let ((mut sample, held), sample_took) = sampled?;
        let after = settle_sample(ctx, &targets, &mut trackers, &mut sample, &held).await?;
        let shards = shard_counts(&targets, &before, &after);
        let manifest = Manifest {
            env: ctx.env.name.clone(),
            cache: ctx.cache.name.clone(),
            snapshot: name.clone(),
            engine: ctx.cache.engine.clone(),
            engine_version: ctx.cache.engine_version.clone(),
            cluster_mode: ctx.cache.cluster_mode,
            taken_at: snap.created.unwrap_or(ctx.first_started_at),
            sample_target,
            cutoff,
            shards,
            sample,
        };
        let path = crate::snapshot::store::save(&crate::config::state_dir(), &manifest)
            .map_err(|e| ActionError::failed(format!("store the manifest: {e}")))?;
        ctx.output(format!(
            "snapshot {name} available in {:.1} s; {} keys, sample of {} ({} changed during the snapshot); manifest {}",
            snapshot_took.as_secs_f64(),
            manifest.keys_before(),
            manifest.sample.len(),
            manifest.changed(),
            path.display()
        ));
        let manifest_json = serde_json::to_value(&manifest)
            .map_err(|e| ActionError::failed(format!("encode the manifest: {e}")))?;
        Ok(Values::new()
            .with("snapshot", Value::str(&name))
            .with("status", Value::str(&snap.status))
            .with(
                "size_bytes",
                Value::Json(
                    snap.size_bytes
                        .map(serde_json::Value::from)
                        .unwrap_or_default(),
                ),
            )
            .with("keys", Value::int(manifest.keys_before() as i64))
            .with("sampled", Value::int(manifest.sample.len() as i64))
            .with(
                "changed_during_snapshot",
                Value::int(manifest.changed() as i64),
            )
            .with("snapshot_ms", Value::int(snapshot_took.as_millis() as i64))
            .with("sample_ms", Value::int(sample_took.as_millis() as i64))
            .with("manifest_path", Value::str(path.display().to_string()))
            .with("manifest", Value::Json(manifest_json))
            .with("download", Value::Json(serde_json::Value::Null)))
    }
}

/// The ecs-service path: BGSAVE and wait, the manifest, and the optional RDB download.
async fn self_managed(
    ctx: &ActionContext,
    name: &str,
    sample_target: u64,
    download: &str,
) -> Result<Values, ActionError> {
    let targets = read_targets(&ctx.cache, "")?;
    let before = counts(ctx, &targets).await?;
    let total: u64 = before.iter().flat_map(|(k, _)| k.values()).sum();
    let cutoff = manifest::cutoff(sample_target, total);
    let mut trackers = if sample_target == 0 {
        Vec::new()
    } else {
        start_tracking(ctx, &targets, cutoff).await?
    };
    let start = save_marks(ctx, &targets).await?;
    let started = Instant::now();
    let mut conn = connect(ctx, &targets[0]).await?;
    // The sample is read while the BGSAVE runs.
    let save = async {
        let saved_at =
            super::survives_restart::bgsave(ctx, &mut conn, Duration::from_secs(3600)).await?;
        Ok::<_, ActionError>((saved_at, started.elapsed()))
    };
    let sample_read = read_sample_timed(ctx, &targets, &before, cutoff, &start, sample_target);
    let (saved, sampled) = tokio::join!(save, sample_read);
    let (saved_at, snapshot_took) = saved?;
    let ((mut sample, held), sample_took) = sampled?;
    let after = settle_sample(ctx, &targets, &mut trackers, &mut sample, &held).await?;
    let shards = shard_counts(&targets, &before, &after);
    let manifest = Manifest {
        env: ctx.env.name.clone(),
        cache: ctx.cache.name.clone(),
        snapshot: name.to_string(),
        engine: ctx.cache.engine.clone(),
        engine_version: ctx.cache.engine_version.clone(),
        cluster_mode: false,
        taken_at: OffsetDateTime::from_unix_timestamp(saved_at / 1000)
            .unwrap_or(ctx.first_started_at),
        sample_target,
        cutoff,
        shards,
        sample,
    };
    let path = crate::snapshot::store::save(&crate::config::state_dir(), &manifest)
        .map_err(|e| ActionError::failed(format!("store the manifest: {e}")))?;
    let mut downloaded = serde_json::Value::Null;
    if !download.is_empty() {
        let endpoint = &targets[0].endpoint;
        if endpoint.tls {
            return Err(ActionError::failed(
                "download: the node speaks TLS, which the RDB download does not support yet",
            ));
        }
        let auth =
            crate::valkey::connect::resolve_auth(&ctx.cache.credentials, Some(ctx.plane.as_ref()))
                .await?;
        let progress = |done: u64, total: Option<u64>| ctx.progress(done, total, "RDB bytes");
        let got = crate::snapshot::rdb::download(
            &endpoint.host,
            endpoint.port,
            auth.username.as_deref(),
            auth.password.as_ref(),
            std::path::Path::new(download),
            Duration::from_secs(3600),
            &progress,
        )
        .await
        .map_err(|e| ActionError::failed(format!("download the RDB: {e}")))?;
        ctx.output(format!(
            "RDB downloaded to {download}: {} bytes, CRC-64 {:016x} ({} form) in {} ms",
            got.bytes, got.crc64, got.form, got.millis
        ));
        downloaded = serde_json::json!({
            "path": download,
            "bytes": got.bytes,
            "crc64": format!("{:016x}", got.crc64),
            "form": got.form,
            "ms": got.millis,
        });
    }
    ctx.output(format!(
        "BGSAVE done in {:.1} s; {} keys, sample of {}; manifest {}",
        snapshot_took.as_secs_f64(),
        manifest.keys_before(),
        manifest.sample.len(),
        path.display()
    ));
    let manifest_json = serde_json::to_value(&manifest)
        .map_err(|e| ActionError::failed(format!("encode the manifest: {e}")))?;
    Ok(Values::new()
        .with("snapshot", Value::str(name))
        .with("status", Value::str("available"))
        .with("size_bytes", Value::Json(serde_json::Value::Null))
        .with("keys", Value::int(manifest.keys_before() as i64))
        .with("sampled", Value::int(manifest.sample.len() as i64))
        .with(
            "changed_during_snapshot",
            Value::int(manifest.changed() as i64),
        )
        .with("snapshot_ms", Value::int(snapshot_took.as_millis() as i64))
        .with("sample_ms", Value::int(sample_took.as_millis() as i64))
        .with("manifest_path", Value::str(path.display().to_string()))
        .with("manifest", Value::Json(manifest_json))
        .with("download", Value::Json(downloaded)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_are_valid_and_stable() {
        let at = time::macros::datetime!(2026-12-01 14:30:05 UTC);
        let n = default_name("Orders_EU", at);
        assert_eq!(n, "cachedeck-orders-eu-20261201-143005");
        assert!(check_name(&n).is_ok());
    }
}
