//! The scanner of one node: SCAN with COUNT runs ahead on its own connection, and ONE
//! pipeline per batch carries its keys' PTTL + TYPE (+ MEMORY USAGE … SAMPLES n) and a
//! DBSIZE, two batches in flight so the server always has the next one queued. Only SCAN,
//! PTTL, TYPE, MEMORY USAGE, DBSIZE, INFO keyspace, SELECT, READONLY and PING are ever sent.
//!
//! # Duplicates
//!
//! SCAN returns every key present for the whole scan at least once, but may return a key
//! twice when the server's hash table shrinks mid-scan. Exact dedup needs memory per key
//! (a 64-bit fingerprint: ≈ 16 bytes in a hash set, 160 MB at 10M keys), which breaks the
//! 64 MB client budget. The trade-off chosen: fingerprints are kept while the node has at
//! most `dedup_max_keys` keys (default 1M, ≈ 16–32 MB), which makes counts exact there
//! (a fingerprint collision, ≈ 1 in 10¹⁰ at 1M keys, would under-count one key); past it
//! the set is dropped and the scan *detects* instead: a shrink needs the node to lose a
//! large share of its keys, so when DBSIZE falls below 90 % of the highest value seen
//! during the scan the result says `duplicates_possible` rather than silently over-count.

use super::aggregate::{Aggregate, AggregateLimits};
use super::gentle::{GuardState, RateLimiter};
use crate::valkey::connect::NodeConnection;
use redis::Value;
use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What a scanner needs to know.
#[derive(Debug, Clone)]
pub struct ScanSettings {
    pub count: u32,
    /// MEMORY USAGE … SAMPLES n (n ≥ 1: SAMPLES 0 walks whole collections).
    pub memory_samples: Option<u32>,
    pub dedup_max_keys: usize,
    pub batch_timeout: Duration,
    pub limits: AggregateLimits,
}

/// Progress of one node's scan.
#[derive(Debug, Clone)]
pub struct Progress {
    pub node: String,
    pub scanned: u64,
    pub dbsize: u64,
}

/// Why a node's scan stopped early in a way a restart can fix.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("scan node {node}: {detail}")]
    Node { node: String, detail: String },
}

/// The result of one node's scan.
#[derive(Debug)]
pub struct NodeScan {
    pub aggregate: Aggregate,
    /// Why the scan is not complete (cancelled, latency guard, keys that moved).
    pub incomplete: Option<String>,
    pub dedup_exact: bool,
    pub duplicates_skipped: u64,
    pub duplicates_possible: bool,
    pub moved_keys: u64,
    pub dbsize_start: u64,
    pub dbsize_end: u64,
}

impl NodeScan {
    /// Folds the scan of another database of the same node into this one.
    pub fn merge(&mut self, o: NodeScan) {
        self.aggregate.merge(o.aggregate);
        self.incomplete = match (self.incomplete.take(), o.incomplete) {
            (Some(a), Some(b)) => Some(format!("{a}; {b}")),
            (a, b) => a.or(b),
        };
        self.dedup_exact &= o.dedup_exact;
        self.duplicates_skipped += o.duplicates_skipped;
        self.duplicates_possible |= o.duplicates_possible;
        self.moved_keys += o.moved_keys;
        self.dbsize_start += o.dbsize_start;
        self.dbsize_end += o.dbsize_end;
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::SimpleString(s) => Some(s.clone()),
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::Okay => Some("OK".into()),
        _ => None,
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

/// Splits a SCAN reply into the next cursor and the keys.
fn scan_reply(v: Value) -> Result<(u64, Vec<Vec<u8>>), String> {
    let Value::Array(mut parts) = v else {
        if let Value::ServerError(e) = v {
            return Err(format!(
                "SCAN failed: {}",
                crate::escape::escape(e.to_string())
            ));
        }
        return Err("SCAN returned an unexpected reply".into());
    };
    if parts.len() != 2 {
        return Err("SCAN returned an unexpected reply".into());
    }
    let keys = parts.pop();
    let cursor = parts
        .pop()
        .as_ref()
        .and_then(int)
        .ok_or("SCAN returned no cursor")?;
    let keys = match keys {
        Some(Value::Array(ks)) => ks
            .into_iter()
            .map(|k| match k {
                Value::BulkString(b) => Ok(b),
                Value::SimpleString(s) => Ok(s.into_bytes()),
                _ => Err("SCAN returned a key that is not a string".to_string()),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err("SCAN returned no key list".into()),
    };
    Ok((cursor as u64, keys))
}

fn is_moved(v: &Value) -> bool {
    matches!(v, Value::ServerError(e) if matches!(e.code(), "MOVED" | "ASK" | "TRYAGAIN"))
}

/// Counts one batch's keys from their PTTL/TYPE(/MEMORY USAGE) replies.
fn absorb(
    out: &mut NodeScan,
    seen: &mut Option<HashSet<u64>>,
    hasher: &RandomState,
    settings: &ScanSettings,
    keys: Vec<Vec<u8>>,
    replies: Vec<Value>,
) -> Result<(), String> {
    let per_key = if settings.memory_samples.is_some() {
        3
    } else {
        2
    };
    let mut it = replies.into_iter();
    for key in keys {
        let (pttl, kind) = (it.next(), it.next());
        let mem = if per_key == 3 { it.next() } else { None };
        let (Some(pttl), Some(kind)) = (pttl, kind) else {
            break;
        };
        if is_moved(&pttl) || is_moved(&kind) {
            out.moved_keys += 1;
            continue;
        }
        let (Some(ttl), Some(kind)) = (int(&pttl), text(&kind)) else {
            return Err("PTTL or TYPE failed on a key".into());
        };
        if ttl == -2 || kind == "none" {
            continue; // deleted or expired since SCAN saw it: not present throughout
        }
        if let Some(set) = seen.as_mut() {
            if !set.insert(hasher.hash_one(&key)) {
                out.duplicates_skipped += 1;
                continue;
            }
            if set.len() > settings.dedup_max_keys {
                *seen = None;
                out.dedup_exact = false;
            }
        }
        let memory = mem.as_ref().and_then(int).map(|m| m.max(0) as u64);
        out.aggregate.add(&key, ttl, &kind, memory);
    }
    Ok(())
}

/// Pipelines in flight on the work connection: while the server answers one batch, the
/// next is already queued behind it, so the server never idles while the client parses.
const IN_FLIGHT: usize = 2;
/// Batches of SCAN results waiting for their PTTL/TYPE pipeline.
const SCAN_AHEAD: usize = 2;

/// Runs SCAN to the end on its own connection, ahead of the PTTL/TYPE pipelines, honouring
/// the rate limit, the latency guard and cancellation. Returns why it stopped early, if it did.
async fn scan_ahead(
    link: &mut NodeConnection,
    count: u32,
    timeout: Duration,
    limiter: Option<&RateLimiter>,
    guard: &GuardState,
    cancel: &CancellationToken,
    batches: mpsc::Sender<Vec<Vec<u8>>>,
) -> Result<Option<String>, String> {
    let node = link.endpoint().address();
    let mut cursor = 0u64;
    loop {
        if cancel.is_cancelled() {
            return Ok(Some("cancelled".into()));
        }
        if guard.paused.load(Ordering::Relaxed) {
            if guard.aborted.load(Ordering::Relaxed) {
                return Ok(Some(format!(
                    "latency guard: PING p99 stayed over the threshold on {node}; the scan was aborted"
                )));
            }
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
            continue;
        }
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor).arg("COUNT").arg(count);
        let reply: Value = match tokio::time::timeout(timeout, cmd.query_async(link.raw())).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return Err(crate::escape::escape(e.to_string())),
            Err(_) => return Err(format!("no reply to SCAN within {timeout:?}")),
        };
        let (next, keys) = scan_reply(reply)?;
        crate::valkey::caps::check_scan_batch(&keys).map_err(|e| format!("{node}: {e}"))?;
        if let Some(l) = limiter {
            l.take(keys.len() as u64, cancel).await;
        }
        if !keys.is_empty() && batches.send(keys).await.is_err() {
            return Ok(None); // the pipelines stopped; their error is the one reported
        }
        if next == 0 {
            return Ok(None);
        }
        cursor = next;
    }
}

type Flight =
    tokio::task::JoinHandle<Result<redis::RedisResult<Vec<Value>>, tokio::time::error::Elapsed>>;

/// Sends one batch's PTTL + TYPE (+ MEMORY USAGE) and a DBSIZE as one pipeline.
fn launch(
    link: &NodeConnection,
    keys: &[Vec<u8>],
    settings: &ScanSettings,
    timeout: Duration,
) -> Flight {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for k in keys {
        pipe.cmd("PTTL").arg(k);
        pipe.cmd("TYPE").arg(k);
        if let Some(n) = settings.memory_samples {
            pipe.cmd("MEMORY")
                .arg("USAGE")
                .arg(k)
                .arg("SAMPLES")
                .arg(n.max(1));
        }
    }
    pipe.cmd("DBSIZE");
    let mut link = link.multiplexed();
    tokio::spawn(async move { tokio::time::timeout(timeout, pipe.query_async(&mut link)).await })
}

/// The two connections to one node, both already on database `db` (SELECT).
pub struct Links<'a> {
    /// Carries the PTTL/TYPE pipelines.
    pub work: &'a mut NodeConnection,
    /// Runs SCAN ahead of them.
    pub scan: &'a mut NodeConnection,
    pub db: u32,
}

/// Scans one database of the node to the end (or until cancelled/aborted): `links.scan` runs
/// SCAN ahead while
/// `links.work` carries the PTTL/TYPE pipelines, [`IN_FLIGHT`] at a time, so the server's work on
/// one batch overlaps the client's on the previous.
pub async fn scan_node(
    links: Links<'_>,
    settings: &ScanSettings,
    limiter: Option<&RateLimiter>,
    guard: &GuardState,
    progress: Option<&mpsc::Sender<Progress>>,
    cancel: &CancellationToken,
) -> Result<NodeScan, ScanError> {
    let node = links.work.endpoint().address();
    let fail = |detail: String| ScanError::Node {
        node: node.clone(),
        detail,
    };
    let count = match limiter {
        Some(l) => settings.count.min(l.batch_hint()),
        None => settings.count,
    }
    .max(1);
    let per_key = if settings.memory_samples.is_some() {
        3
    } else {
        2
    };
    let (tx, mut rx) = mpsc::channel::<Vec<Vec<u8>>>(SCAN_AHEAD);
    let scanner = scan_ahead(
        links.scan,
        count,
        settings.batch_timeout,
        limiter,
        guard,
        cancel,
        tx,
    );
    let work = async {
        let hasher = RandomState::new();
        let mut seen: Option<HashSet<u64>> = (settings.dedup_max_keys > 0).then(HashSet::new);
        let mut out = NodeScan {
            aggregate: Aggregate::for_db(settings.limits.clone(), links.db),
            incomplete: None,
            dedup_exact: seen.is_some(),
            duplicates_skipped: 0,
            duplicates_possible: false,
            moved_keys: 0,
            dbsize_start: 0,
            dbsize_end: 0,
        };
        let mut max_dbsize = 0u64;
        let mut scanned = 0u64;
        let mut first = true;
        let mut flights: std::collections::VecDeque<(Vec<Vec<u8>>, Flight)> =
            std::collections::VecDeque::new();
        let mut open = true;
        while open || !flights.is_empty() {
            if open && flights.len() < IN_FLIGHT {
                match rx.recv().await {
                    Some(keys) => {
                        let flight = launch(links.work, &keys, settings, settings.batch_timeout);
                        flights.push_back((keys, flight));
                    }
                    None => open = false,
                }
                continue;
            }
            let Some((keys, flight)) = flights.pop_front() else {
                break;
            };
            let mut replies = match flight.await {
                Ok(Ok(Ok(v))) => v,
                Ok(Ok(Err(e))) => return Err(crate::escape::escape(e.to_string())),
                Ok(Err(_)) => {
                    return Err(format!(
                        "no reply to a batch within {:?}",
                        settings.batch_timeout
                    ));
                }
                Err(e) => return Err(format!("the batch task failed: {e}")),
            };
            let want = keys.len() * per_key + 1;
            if replies.len() != want {
                return Err(format!(
                    "expected {want} replies to a batch, got {}",
                    replies.len()
                ));
            }
            let dbsize = replies.pop().as_ref().and_then(int).unwrap_or(0).max(0) as u64;
            if first {
                out.dbsize_start = dbsize;
                first = false;
            }
            out.dbsize_end = dbsize;
            max_dbsize = max_dbsize.max(dbsize);
            scanned += keys.len() as u64;
            absorb(&mut out, &mut seen, &hasher, settings, keys, replies)?;
            if !out.dedup_exact && (dbsize as f64) < 0.9 * max_dbsize as f64 {
                out.duplicates_possible = true;
            }
            if let Some(tx) = progress {
                // Progress is advisory: a slow reader loses updates, never blocks the scan.
                let _ = tx.try_send(Progress {
                    node: node.clone(),
                    scanned,
                    dbsize,
                });
            }
        }
        Ok(out)
    };
    let (stopped, worked) = tokio::join!(scanner, work);
    let mut out = worked.map_err(&fail)?;
    out.incomplete = stopped.map_err(&fail)?;
    if out.moved_keys > 0 && out.incomplete.is_none() {
        out.incomplete = Some(format!(
            "{} keys moved to another shard during the scan of {node} (slot migration)",
            out.moved_keys
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_reply_parses() {
        let v = Value::Array(vec![
            Value::BulkString(b"17".to_vec()),
            Value::Array(vec![Value::BulkString(b"a\xff".to_vec())]),
        ]);
        let (c, k) = scan_reply(v).expect("parses");
        assert_eq!(c, 17);
        assert_eq!(k, vec![b"a\xff".to_vec()]);
        assert!(scan_reply(Value::Nil).is_err());
    }
}
