//! The scanner of one node: SCAN with COUNT, and ONE pipeline per batch that carries the
//! PTTL + TYPE (+ MEMORY USAGE … SAMPLES n) of the previous batch's keys, DBSIZE, and the
//! next SCAN — a single round trip per batch. Only SCAN, PTTL, TYPE, MEMORY USAGE, DBSIZE,
//! READONLY and PING are ever sent.
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

/// Scans the node behind `conn` to the end (or until cancelled/aborted).
pub async fn scan_node(
    conn: &mut NodeConnection,
    settings: &ScanSettings,
    limiter: Option<&RateLimiter>,
    guard: &GuardState,
    progress: Option<&mpsc::Sender<Progress>>,
    cancel: &CancellationToken,
) -> Result<NodeScan, ScanError> {
    let node = conn.endpoint().address();
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
    let hasher = RandomState::new();
    let mut seen: Option<HashSet<u64>> = (settings.dedup_max_keys > 0).then(HashSet::new);
    let mut out = NodeScan {
        aggregate: Aggregate::new(settings.limits.clone()),
        incomplete: None,
        dedup_exact: seen.is_some(),
        duplicates_skipped: 0,
        duplicates_possible: false,
        moved_keys: 0,
        dbsize_start: 0,
        dbsize_end: 0,
    };
    let mut max_dbsize = 0u64;
    let mut pending: Vec<Vec<u8>> = Vec::new();
    let mut next: Option<u64> = Some(0);
    let mut first = true;
    let mut scanned = 0u64;
    let mut done: Option<(Vec<Vec<u8>>, Vec<Value>)> = None;
    while !pending.is_empty() || next.is_some() {
        if cancel.is_cancelled() {
            out.incomplete = Some("cancelled".into());
            break;
        }
        if guard.paused.load(Ordering::Relaxed) {
            if guard.aborted.load(Ordering::Relaxed) {
                out.incomplete = Some(format!(
                    "latency guard: PING p99 stayed over the threshold on {node}; the scan was aborted"
                ));
                break;
            }
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
            continue;
        }
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for k in &pending {
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
        if let Some(c) = next {
            pipe.cmd("SCAN").arg(c).arg("COUNT").arg(count);
        }
        // The previous batch's replies are folded in while this batch is on the wire, so
        // the client's work overlaps the server's instead of adding to each round trip.
        let mut link = conn.raw().clone();
        let query = tokio::time::timeout(settings.batch_timeout, pipe.query_async(&mut link));
        let previous = done.take();
        let (replies, absorbed) = tokio::join!(query, async {
            match previous {
                Some((keys, replies)) => {
                    absorb(&mut out, &mut seen, &hasher, settings, keys, replies)
                }
                None => Ok(()),
            }
        });
        absorbed.map_err(&fail)?;
        let mut replies: Vec<Value> = match replies {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return Err(fail(crate::escape::escape(e.to_string()))),
            Err(_) => {
                return Err(fail(format!(
                    "no reply to a batch within {:?}",
                    settings.batch_timeout
                )));
            }
        };
        let want = pending.len() * per_key + 1 + usize::from(next.is_some());
        if replies.len() != want {
            return Err(fail(format!(
                "expected {want} replies to a batch, got {}",
                replies.len()
            )));
        }
        let tail = replies.split_off(pending.len() * per_key);
        done = Some((std::mem::take(&mut pending), replies));
        let mut it = tail.into_iter();
        let dbsize = it.next().as_ref().and_then(int).unwrap_or(0).max(0) as u64;
        if first {
            out.dbsize_start = dbsize;
        }
        out.dbsize_end = dbsize;
        max_dbsize = max_dbsize.max(dbsize);
        if !out.dedup_exact && (dbsize as f64) < 0.9 * max_dbsize as f64 {
            out.duplicates_possible = true;
        }
        if let Some(reply) = it.next() {
            let (cursor, keys) = scan_reply(reply).map_err(fail)?;
            scanned += keys.len() as u64;
            if let Some(l) = limiter {
                l.take(keys.len() as u64, cancel).await;
            }
            pending = keys;
            next = (cursor != 0).then_some(cursor);
        }
        first = false;
        if let Some(tx) = progress {
            // Progress is advisory: a slow reader loses updates, never blocks the scan.
            let _ = tx.try_send(Progress {
                node: node.clone(),
                scanned,
                dbsize,
            });
        }
    }
    if let Some((keys, replies)) = done.take() {
        absorb(&mut out, &mut seen, &hasher, settings, keys, replies).map_err(&fail)?;
    }
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
