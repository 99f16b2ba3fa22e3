//! TTL remediation: find the keys matching a pattern that have no TTL and (when applying)
//! give each one with `EXPIRE key secs NX`. Every shard's PRIMARY is scanned (writes go to
//! primaries) in parallel — outside cluster mode every logical database holding keys, each on
//! its own — under the audit's shared rate limit and latency guard. Only SCAN, PTTL,
//! EXPIRE … NX, INFO, SELECT and PING are sent — never KEYS, FLUSH*, CONFIG, DEBUG or DEL.
//!
//! # Why repeating work is harmless
//!
//! `EXPIRE … NX` only sets a TTL on a key that has none, so a key is given a TTL at most
//! once, a TTL somebody set meanwhile is never overwritten, and running any part of the scan
//! again changes nothing that was already changed. That is what makes restarts and resumes
//! safe: a shard whose primary fails over or answers MOVED/READONLY is scanned again from
//! cursor 0 (a cursor is only valid on the server that issued it), and `runs resume`
//! continues each shard from its last journaled cursor — everything before that cursor was
//! already handled, and keys handled after it are simply found with a TTL again.
//!
//! Progress is a [`Checkpoint`]: per shard the cursor, the server's `run_id` it belongs to,
//! and the counts. The `ttl-remediate` action journals it as the run goes.

mod reply;
mod shard;

use super::gentle::{LatencyGuard, RateLimiter};
use super::matcher::KeyMatcher;
use super::topology::{self, Shard};
use crate::domain::Endpoint;
use crate::valkey::connect::{ConnectError, Connector};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Keys de-duplicated exactly over the whole run (split between shards and databases).
const DEDUP_KEYS: usize = 1_000_000;

/// How to remediate.
#[derive(Debug, Clone)]
pub struct RemediateOptions {
    pub matcher: KeyMatcher,
    /// The TTL to give (whole seconds; at least 1 s).
    pub ttl: Duration,
    /// Spread each TTL uniformly within ± this percentage, so keys do not all expire at once.
    pub jitter_pct: u32,
    /// Matching keys handled per second, over the whole cache.
    pub rate: u64,
    /// Keys SCAN may walk past per second over the whole cache (0: unpaced), charged as the
    /// COUNT of each call: a pattern matching few keys still walks the whole keyspace.
    pub scan_rate: u64,
    /// SCAN COUNT.
    pub count: u32,
    /// Send EXPIRE; `false` only counts.
    pub apply: bool,
    /// Refuse to set more TTLs than this in one run (the shard stops, incomplete).
    pub max_keys: u64,
    /// Example keys (escaped) kept per shard.
    pub examples: usize,
    pub guard: LatencyGuard,
    pub batch_timeout: Duration,
    /// Restarts of one shard (failover, MOVED) before it is left incomplete.
    pub shard_retries: u32,
    /// The logical database (outside cluster mode); `None`: every one holding keys.
    pub db: Option<u32>,
}

/// One shard's progress and counts (journaled in checkpoints; counts are since the shard's
/// current pass started, except `updated` and `raced`, which add up over the whole run).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardProgress {
    /// The node scanned (`host:port`).
    pub node: String,
    /// The server's INFO `run_id` the cursor belongs to: a cursor is worthless elsewhere.
    pub server_run_id: String,
    pub cursor: u64,
    pub done: bool,
    /// Keys matching the pattern seen in this pass.
    pub matched: u64,
    /// Their names' total length (for the serverless cost estimate).
    #[serde(default)]
    pub key_bytes: u64,
    /// Of those, without TTL when looked at (PTTL -1).
    pub no_ttl: u64,
    /// Of those, with a TTL when looked at (includes keys this run set before a restart).
    pub with_ttl: u64,
    /// Gone between SCAN and PTTL.
    pub vanished: u64,
    /// TTLs set by this run (EXPIRE NX answered 1), over every pass and resume.
    pub updated: u64,
    /// EXPIRE NX answered 0 after PTTL -1: a TTL was set (or the key deleted) meanwhile.
    pub raced: u64,
    /// `updated` when this pass started (those keys show up in `with_ttl` again).
    pub updated_before_pass: u64,
    pub restarts: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<String>,
}

impl ShardProgress {
    /// Keys skipped because they already had a TTL (not counting this run's own).
    pub fn skipped_with_ttl(&self) -> u64 {
        self.with_ttl.saturating_sub(self.updated_before_pass)
    }

    /// Undoes the counts of a batch that was not finished (its cursor did not move on, so
    /// it will be scanned again). TTLs it set stay in `updated`; they are discounted from
    /// `with_ttl` when the batch is seen again, like a restarted pass's.
    pub(crate) fn rollback_batch(&mut self, snapshot: &ShardProgress) {
        let gained = self.updated.saturating_sub(snapshot.updated);
        *self = ShardProgress {
            updated: self.updated,
            updated_before_pass: snapshot.updated_before_pass + gained,
            incomplete: self.incomplete.take(),
            ..snapshot.clone()
        };
    }

    /// Starts a new pass from cursor 0 on `node`.
    pub(crate) fn restart(&mut self, node: String, server_run_id: String) {
        *self = ShardProgress {
            node,
            server_run_id,
            updated: self.updated,
            raced: self.raced,
            updated_before_pass: self.updated,
            restarts: self.restarts,
            examples: std::mem::take(&mut self.examples),
            ..ShardProgress::default()
        };
    }
}

/// Every shard's progress, keyed by shard (`slots:<first slot>`, or `standalone`; with
/// `/db<n>` for a logical database past 0).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub shards: BTreeMap<String, ShardProgress>,
}

impl Checkpoint {
    /// Reads a journaled checkpoint (`None` when it is not one).
    pub fn from_facts(facts: &serde_json::Value) -> Option<Checkpoint> {
        serde_json::from_value(facts.clone()).ok()
    }

    pub fn to_facts(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    fn sum(&self, f: impl Fn(&ShardProgress) -> u64) -> u64 {
        self.shards.values().map(f).sum()
    }

    pub fn totals(&self) -> Totals {
        Totals {
            matched: self.sum(|s| s.matched),
            key_bytes: self.sum(|s| s.key_bytes),
            no_ttl: self.sum(|s| s.no_ttl),
            with_ttl: self.sum(ShardProgress::skipped_with_ttl),
            vanished: self.sum(|s| s.vanished),
            updated: self.sum(|s| s.updated),
            raced: self.sum(|s| s.raced),
            complete: !self.shards.is_empty()
                && self
                    .shards
                    .values()
                    .all(|s| s.done && s.incomplete.is_none()),
        }
    }
}

/// Counts over every shard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub matched: u64,
    pub key_bytes: u64,
    pub no_ttl: u64,
    /// Skipped because they already had a TTL.
    pub with_ttl: u64,
    pub vanished: u64,
    pub updated: u64,
    pub raced: u64,
    pub complete: bool,
}

/// Why remediation could not start at all.
#[derive(Debug, thiserror::Error)]
pub enum RemediateError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("find the shards of {0}: CLUSTER NODES lists no shard with slots")]
    NoShards(String),
}

/// A shard's name in a checkpoint: `slots:<first slot>`, or `standalone`.
fn shard_key(s: &Shard) -> String {
    s.first_slot
        .map_or_else(|| "standalone".to_string(), |slot| format!("slots:{slot}"))
}

/// A job's key in a checkpoint: the shard's, with `/db<n>` past database 0.
fn job_key(s: &Shard, db: u32) -> String {
    match db {
        0 => shard_key(s),
        n => format!("{}/db{n}", shard_key(s)),
    }
}

/// The shard part of a job's key (what [`servers`] is keyed by).
pub fn shard_of(job_key: &str) -> &str {
    job_key.split('/').next().unwrap_or(job_key)
}

/// Each shard's primary's INFO `run_id` now, by shard key (what a checkpoint's cursors
/// are checked against).
pub async fn servers(
    connector: &Connector,
    seed: &Endpoint,
    node_tls: bool,
) -> Result<BTreeMap<String, String>, RemediateError> {
    let mut conn = connector.connect(seed).await?;
    let shards = topology::discover(&mut conn, node_tls).await?;
    drop(conn);
    let mut out = BTreeMap::new();
    for s in shards {
        let Ok(mut c) = connector.connect(&s.primary).await else {
            continue;
        };
        if let Ok(text) = c.query::<Vec<u8>>(redis::cmd("INFO").arg("server")).await {
            let info = crate::valkey::info::Info::parse(&String::from_utf8_lossy(&text));
            out.insert(shard_key(&s), info.get("run_id").unwrap_or("").to_string());
        }
    }
    Ok(out)
}

/// Remediates (or, without `apply`, counts) the cache reachable at `seed`, continuing from
/// `from` when given. Every change of a shard's progress is sent on `updates`; the result
/// is the final checkpoint (its totals say whether it is complete).
pub async fn run(
    connector: &Connector,
    seed: &Endpoint,
    node_tls: bool,
    opts: &RemediateOptions,
    from: Option<Checkpoint>,
    updates: mpsc::UnboundedSender<(String, ShardProgress)>,
    cancel: CancellationToken,
) -> Result<Checkpoint, RemediateError> {
    let mut conn = connector.connect(seed).await?;
    let shards = topology::discover(&mut conn, node_tls).await?;
    if shards.is_empty() {
        return Err(RemediateError::NoShards(seed.address()));
    }
    // Cluster mode has database 0 only; elsewhere an application may use several.
    let cluster = shards.iter().any(|s| s.first_slot.is_some());
    let dbs = match opts.db {
        _ if cluster => vec![0],
        Some(db) => vec![db],
        None => super::databases(&mut conn).await,
    };
    drop(conn);
    let limiter = RateLimiter::new(opts.rate.max(1));
    let scan_limiter = (opts.scan_rate > 0).then(|| RateLimiter::new(opts.scan_rate));
    // The cap is shared: one budget of TTLs for the whole run, resumes included.
    let from = from.unwrap_or_default();
    let already: u64 = from.shards.values().map(|s| s.updated).sum();
    let budget = Arc::new(std::sync::atomic::AtomicU64::new(
        opts.max_keys.saturating_sub(already),
    ));
    // The shard tasks stop when this future is dropped (a step timeout, a cancelled
    // attempt), so a retry never runs beside orphans of the attempt before it.
    let cancel = cancel.child_token();
    let _stop_on_drop = cancel.clone().drop_guard();
    // One budget of ~16 MB of fingerprints for the whole run, however many shards.
    let jobs = (shards.len() * dbs.len()).max(1);
    let dedup_max = (DEDUP_KEYS / jobs).max(10_000);
    let mut tasks = Vec::new();
    for (s, db) in shards
        .iter()
        .flat_map(|s| dbs.iter().map(move |db| (s, *db)))
    {
        let key = job_key(s, db);
        let job = shard::ShardJob {
            key: key.clone(),
            connector: connector.clone(),
            seed: seed.clone(),
            node_tls,
            shard: s.clone(),
            db,
            dedup_max,
            opts: opts.clone(),
            limiter: limiter.clone(),
            scan_limiter: scan_limiter.clone(),
            budget: budget.clone(),
            progress: from.shards.get(&key).cloned(),
            updates: updates.clone(),
            cancel: cancel.clone(),
        };
        tasks.push((key, tokio::spawn(job.run())));
    }
    let mut out = Checkpoint::default();
    for (key, t) in tasks {
        let p = t.await.unwrap_or_else(|e| ShardProgress {
            incomplete: Some(format!("the shard's task stopped: {e}")),
            ..ShardProgress::default()
        });
        out.shards.insert(key, p);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_stay_whole_across_a_lost_batch_and_a_restarted_pass() {
        // 10 matching keys: 4 with a TTL, 6 without.
        let mut p = ShardProgress {
            matched: 4,
            with_ttl: 2,
            no_ttl: 2,
            updated: 2,
            ..ShardProgress::default()
        };
        // A batch sets 2 more TTLs, then its connection drops before the cursor moves on.
        let snapshot = p.clone();
        p.matched += 3;
        p.no_ttl += 2;
        p.with_ttl += 1;
        p.updated += 2;
        p.rollback_batch(&snapshot);
        assert_eq!((p.matched, p.updated, p.updated_before_pass), (4, 4, 2));
        // Seen again: those 2 now have a TTL; then the last 3 keys (1 TTL, 2 without).
        p.matched += 6;
        p.with_ttl += 4;
        p.no_ttl += 2;
        p.updated += 2;
        assert_eq!(p.updated + p.skipped_with_ttl(), p.matched);
        assert_eq!((p.updated, p.skipped_with_ttl()), (6, 4));

        // A failover: the pass starts again from 0 on another server.
        p.restart("10.0.0.2:6379".into(), "b".into());
        assert_eq!((p.matched, p.cursor, p.updated), (0, 0, 6));
        p.matched = 10;
        p.with_ttl = 10; // every key has a TTL now, 6 of them ours
        assert_eq!(p.skipped_with_ttl(), 4);
        let c = Checkpoint {
            shards: [("slots:0".to_string(), p.clone())].into(),
        };
        let back = Checkpoint::from_facts(&c.to_facts()).expect("round trip");
        assert_eq!(back, c);
        let t = back.totals();
        assert_eq!((t.updated, t.with_ttl, t.complete), (6, 4, false));
    }
}
