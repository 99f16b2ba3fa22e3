//! The manifest: key counts per shard and database, and a deterministic sample of keys read
//! type by type. A key is in the sample when a 64-bit hash of its name falls under a cut-off
//! chosen from the key count, so reading the same keyspace again picks the same keys.

use crate::valkey::connect::{NodeConnection, RawConnection};
use redis::Value as RValue;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::time::Duration;
use time::OffsetDateTime;

/// Values larger than this many bytes or elements are digested by size only (never read
/// whole: the sample must not block the server).
pub const MAX_ELEMENTS: i64 = 10_000;
pub const MAX_BYTES: i64 = 4 * 1024 * 1024;
const BATCH: usize = 200;
/// Keys asked per SCAN call while choosing the sample: fewer round trips, each still short.
pub const SCAN_COUNT: usize = 5_000;
const DEADLINE: Duration = Duration::from_secs(10);

/// Key counts of one shard.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ShardCounts {
    pub shard: String,
    pub slots: Option<String>,
    /// The node the counts and sample were read on.
    pub node: String,
    /// Keys per database before the snapshot was requested.
    pub keys_before: BTreeMap<u32, u64>,
    /// Keys per database once the snapshot was available (equal when nothing was written).
    pub keys_after: BTreeMap<u32, u64>,
    /// Keys with a TTL per database (they may expire before a restore).
    pub expires: BTreeMap<u32, u64>,
}

/// The TTL state of a sampled key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum TtlState {
    Persistent,
    /// Expires at this time (unix ms).
    Expires {
        at_ms: i64,
    },
}

/// One sampled key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SampleKey {
    /// The key's bytes, hex.
    pub key_hex: String,
    pub db: u32,
    pub shard: String,
    /// `string`, `hash`, `list`, `set`, `zset`, `stream`, …
    pub kind: String,
    pub ttl: TtlState,
    /// SHA-256 (first 16 bytes, hex) of the value read type by type; `size:N` for values over
    /// the size bounds.
    pub digest: String,
    /// The key changed (or vanished) between the reads before and after the snapshot.
    #[serde(default)]
    pub changed: bool,
}

impl SampleKey {
    pub fn key(&self) -> Vec<u8> {
        from_hex(&self.key_hex)
    }
}

/// What a snapshot holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub env: String,
    pub cache: String,
    pub snapshot: String,
    pub engine: String,
    pub engine_version: String,
    pub cluster_mode: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub taken_at: OffsetDateTime,
    /// The sample size asked for, and the hash cut-off it gave.
    pub sample_target: u64,
    pub cutoff: u64,
    pub shards: Vec<ShardCounts>,
    pub sample: Vec<SampleKey>,
}

impl Manifest {
    pub fn keys_before(&self) -> u64 {
        self.shards
            .iter()
            .flat_map(|s| s.keys_before.values())
            .sum()
    }
    pub fn keys_after(&self) -> u64 {
        self.shards.iter().flat_map(|s| s.keys_after.values()).sum()
    }
    pub fn changed(&self) -> usize {
        self.sample.iter().filter(|k| k.changed).count()
    }
}

/// FNV-1a, 64 bit: the sample's hash of a key name (stable across versions and hosts).
pub fn key_hash(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The cut-off that picks about `target` keys out of `total`.
pub fn cutoff(target: u64, total: u64) -> u64 {
    if total == 0 || target >= total {
        return u64::MAX;
    }
    ((u64::MAX as u128) * (target as u128) / (total as u128)) as u64
}

pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn from_hex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .filter_map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
        .collect()
}

async fn pipe(conn: &mut NodeConnection, p: &redis::Pipeline) -> Result<Vec<RValue>, String> {
    match tokio::time::timeout(DEADLINE, p.query_async::<Vec<RValue>>(conn.raw())).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(crate::escape::escape_capped(e.to_string(), 200)),
        Err(_) => Err(format!("no reply within {DEADLINE:?}")),
    }
}

/// Keys per database (`INFO keyspace`) and keys with a TTL.
pub async fn keyspace(
    conn: &mut NodeConnection,
) -> Result<(BTreeMap<u32, u64>, BTreeMap<u32, u64>), String> {
    let text: String = conn
        .query(redis::cmd("INFO").arg("keyspace"))
        .await
        .map_err(|e| e.to_string())?;
    let info = crate::valkey::info::Info::parse(&text);
    let keys = info.keyspace.iter().map(|d| (d.db, d.keys)).collect();
    let expires = info.keyspace.iter().map(|d| (d.db, d.expires)).collect();
    Ok((keys, expires))
}

/// SCANs database `db` and returns the keys under `cutoff`. The walk reads each SCAN reply in
/// place ([`RawConnection`]): a million key names are hashed without a value built for each,
/// so choosing the sample costs the server's SCAN and little more.
pub async fn pick(
    conn: &mut RawConnection,
    db: u32,
    cutoff: u64,
    on_batch: &mut (dyn FnMut(usize) + Send),
) -> Result<Vec<Vec<u8>>, String> {
    let select = conn
        .call(redis::cmd("SELECT").arg(db))
        .await
        .map_err(|e| e.to_string())?
        .error();
    // Cluster nodes accept only SELECT 0, and a fresh connection is on 0 already.
    if let Some(e) = select.filter(|_| db != 0) {
        return Err(crate::escape::escape_capped(e, 200));
    }
    let mut cursor: u64 = 0;
    let mut chosen = Vec::new();
    loop {
        let (next, n) = conn
            .scan_page(cursor, SCAN_COUNT, &mut |k| {
                if key_hash(k) <= cutoff {
                    chosen.push(k.to_vec());
                }
            })
            .await
            .map_err(|e| e.to_string())?;
        on_batch(n);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    chosen.sort();
    chosen.dedup();
    Ok(chosen)
}

async fn select(conn: &mut NodeConnection, db: u32) -> Result<(), String> {
    if db == 0 {
        // Cluster nodes accept only SELECT 0; a fresh connection is on 0 already.
        let _: Result<(), _> = conn.query(redis::cmd("SELECT").arg(0)).await;
        return Ok(());
    }
    conn.query::<()>(redis::cmd("SELECT").arg(db))
        .await
        .map_err(|e| e.to_string())
}

/// Where a node's save and replication stood at one moment (`INFO persistence` and
/// `INFO replication`): whether a save has begun since an earlier mark, and whether any
/// write reached the node since (its replication offset moved).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SaveMark {
    pub in_progress: bool,
    pub saves: Option<u64>,
    pub last_save: Option<i64>,
    pub offset: Option<i64>,
}

impl SaveMark {
    fn parse(persistence: &str, replication: &str) -> SaveMark {
        let field = |text: &str, name: &str| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))
                .map(|v| v.trim().to_string())
        };
        SaveMark {
            in_progress: field(persistence, "rdb_bgsave_in_progress").as_deref() == Some("1"),
            saves: field(persistence, "rdb_saves").and_then(|v| v.parse().ok()),
            last_save: field(persistence, "rdb_last_save_time").and_then(|v| v.parse().ok()),
            offset: field(replication, "master_repl_offset").and_then(|v| v.parse().ok()),
        }
    }

    /// Whether a read made before `self` was taken holds the value the snapshot begun after
    /// `start` saved. It does when no save had begun yet by `self` (the read comes before the
    /// save's fork, and the read after the snapshot tells whether the key changed across
    /// it), or when no write reached the node between `start` and `self` (whatever the
    /// fork's moment, the value is the same). Otherwise a write between the fork and the read
    /// may have touched the key: it cannot be checked.
    pub fn holds_since(&self, start: &SaveMark) -> bool {
        let begun = self.in_progress
            || self.saves != start.saves
            || self.last_save != start.last_save
            || (self.saves.is_none() && self.last_save.is_none());
        let quiet = self.offset.is_some() && self.offset == start.offset;
        !begun || quiet
    }
}

fn text_of(v: &RValue) -> String {
    match v {
        RValue::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        RValue::SimpleString(s) => s.clone(),
        RValue::VerbatimString { text, .. } => text.clone(),
        _ => String::new(),
    }
}

/// The node's [`SaveMark`] now.
pub async fn save_mark(conn: &mut NodeConnection) -> Result<SaveMark, String> {
    let mut p = redis::pipe();
    p.cmd("INFO")
        .arg("persistence")
        .cmd("INFO")
        .arg("replication");
    let v = pipe(conn, &p).await?;
    Ok(SaveMark::parse(
        &v.first().map(text_of).unwrap_or_default(),
        &v.get(1).map(text_of).unwrap_or_default(),
    ))
}

/// One key as read: type, TTL and digest; `None` when it does not exist.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRead {
    pub kind: String,
    pub ttl: TtlState,
    pub digest: String,
}

fn size_cmd(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "string" => "STRLEN",
        "hash" => "HLEN",
        "list" => "LLEN",
        "set" => "SCARD",
        "zset" => "ZCARD",
        "stream" => "XLEN",
        _ => return None,
    })
}

fn read_cmd(kind: &str, key: &[u8]) -> Option<redis::Cmd> {
    let mut c = match kind {
        "string" => redis::cmd("GET"),
        "hash" => redis::cmd("HGETALL"),
        "list" => {
            let mut c = redis::cmd("LRANGE");
            c.arg(key).arg(0).arg(-1);
            return Some(c);
        }
        "set" => redis::cmd("SMEMBERS"),
        "zset" => {
            let mut c = redis::cmd("ZRANGE");
            c.arg(key).arg(0).arg(-1).arg("WITHSCORES");
            return Some(c);
        }
        "stream" => {
            let mut c = redis::cmd("XRANGE");
            c.arg(key).arg("-").arg("+");
            return Some(c);
        }
        _ => return None,
    };
    c.arg(key);
    Some(c)
}

/// Flattens a reply into byte strings (nested arrays, maps and numbers included).
fn flatten(v: &RValue, out: &mut Vec<Vec<u8>>) {
    match v {
        RValue::BulkString(b) => out.push(b.clone()),
        RValue::SimpleString(s) => out.push(s.as_bytes().to_vec()),
        RValue::Int(i) => out.push(i.to_string().into_bytes()),
        RValue::Double(d) => out.push(d.to_string().into_bytes()),
        RValue::Array(items) | RValue::Set(items) => items.iter().for_each(|i| flatten(i, out)),
        RValue::Map(pairs) => pairs.iter().for_each(|(k, v)| {
            flatten(k, out);
            flatten(v, out);
        }),
        RValue::Nil => out.push(b"\0nil".to_vec()),
        other => out.push(format!("{other:?}").into_bytes()),
    }
}

/// The digest of a value: its parts in a canonical order (hash fields and set members
/// sorted), each length-prefixed, SHA-256, first 16 bytes.
pub fn digest(kind: &str, reply: &RValue) -> String {
    let mut parts = Vec::new();
    flatten(reply, &mut parts);
    match kind {
        "set" => parts.sort(),
        "hash" => {
            let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = parts
                .chunks(2)
                .map(|c| (c[0].clone(), c.get(1).cloned().unwrap_or_default()))
                .collect();
            pairs.sort();
            parts = pairs.into_iter().flat_map(|(k, v)| [k, v]).collect();
        }
        _ => {}
    }
    let mut h = Sha256::new();
    h.update(kind.as_bytes());
    for p in &parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    to_hex(&h.finalize()[..16])
}

/// Reads keys of database `db` (already chosen): TYPE + PTTL, then each value's size, then
/// the values within bounds; in pipelines of [`BATCH`].
pub async fn read_keys(
    conn: &mut NodeConnection,
    db: u32,
    keys: &[Vec<u8>],
) -> Result<Vec<Option<KeyRead>>, String> {
    Ok(read_keys_marked(conn, db, keys, false)
        .await?
        .into_iter()
        .map(|(read, _)| read)
        .collect())
}

/// [`read_keys`], each key with the node's [`SaveMark`] taken just after its batch was read
/// (when `marked`; the default mark otherwise).
pub async fn read_keys_marked(
    conn: &mut NodeConnection,
    db: u32,
    keys: &[Vec<u8>],
    marked: bool,
) -> Result<Vec<(Option<KeyRead>, SaveMark)>, String> {
    select(conn, db).await?;
    let now_ms = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(BATCH) {
        let mut p = redis::pipe();
        for k in chunk {
            p.cmd("TYPE").arg(k).cmd("PTTL").arg(k);
        }
        let meta = pipe(conn, &p).await?;
        let mut kinds = Vec::new();
        for (i, _) in chunk.iter().enumerate() {
            let kind = match &meta[2 * i] {
                RValue::SimpleString(s) => s.clone(),
                RValue::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                RValue::Okay => "ok".into(),
                _ => "none".into(),
            };
            let pttl = match &meta[2 * i + 1] {
                RValue::Int(n) => *n,
                _ => -2,
            };
            kinds.push((kind, pttl));
        }
        let mut p = redis::pipe();
        for (k, (kind, _)) in chunk.iter().zip(&kinds) {
            match size_cmd(kind) {
                Some(c) => p.cmd(c).arg(k),
                None => p.cmd("EXISTS").arg(k),
            };
        }
        let sizes = pipe(conn, &p).await?;
        let mut p = redis::pipe();
        let mut read_idx = Vec::new();
        let mut queued = 0usize;
        for (i, (k, (kind, _))) in chunk.iter().zip(&kinds).enumerate() {
            let size = match &sizes[i] {
                RValue::Int(n) => *n,
                _ => 0,
            };
            let limit = if kind == "string" {
                MAX_BYTES
            } else {
                MAX_ELEMENTS
            };
            if size <= limit
                && let Some(c) = read_cmd(kind, k)
            {
                p.add_command(c);
                read_idx.push(Some(queued));
                queued += 1;
            } else {
                read_idx.push(None);
            }
        }
        if marked {
            p.cmd("INFO")
                .arg("persistence")
                .cmd("INFO")
                .arg("replication");
        }
        let mut values = if marked || read_idx.iter().any(Option::is_some) {
            pipe(conn, &p).await?
        } else {
            Vec::new()
        };
        let mark = if marked {
            let replication = values.pop().map(|v| text_of(&v)).unwrap_or_default();
            let persistence = values.pop().map(|v| text_of(&v)).unwrap_or_default();
            SaveMark::parse(&persistence, &replication)
        } else {
            SaveMark::default()
        };
        for (i, (kind, pttl)) in kinds.into_iter().enumerate() {
            if kind == "none" || pttl == -2 {
                out.push((None, mark.clone()));
                continue;
            }
            let ttl = if pttl >= 0 {
                TtlState::Expires {
                    at_ms: now_ms + pttl,
                }
            } else {
                TtlState::Persistent
            };
            let digest = match read_idx[i] {
                Some(j) => digest(&kind, &values[j]),
                None => format!(
                    "size:{}",
                    match &sizes[i] {
                        RValue::Int(n) => *n,
                        _ => 0,
                    }
                ),
            };
            out.push((Some(KeyRead { kind, ttl, digest }), mark.clone()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cutoff_picks_about_the_target_share() {
        let keys: Vec<String> = (0..100_000).map(|i| format!("user:{i}:session")).collect();
        let c = cutoff(2_000, keys.len() as u64);
        let n = keys.iter().filter(|k| key_hash(k.as_bytes()) <= c).count();
        assert!((1_700..2_300).contains(&n), "picked {n}");
        assert_eq!(cutoff(10, 5), u64::MAX);
    }

    #[test]
    fn set_and_hash_digests_ignore_order() {
        let a = RValue::Array(vec![
            RValue::BulkString(b"x".to_vec()),
            RValue::BulkString(b"y".to_vec()),
        ]);
        let b = RValue::Array(vec![
            RValue::BulkString(b"y".to_vec()),
            RValue::BulkString(b"x".to_vec()),
        ]);
        assert_eq!(digest("set", &a), digest("set", &b));
        assert_ne!(digest("list", &a), digest("list", &b));
        let h1 = RValue::Map(vec![
            (
                RValue::BulkString(b"f1".to_vec()),
                RValue::BulkString(b"1".to_vec()),
            ),
            (
                RValue::BulkString(b"f2".to_vec()),
                RValue::BulkString(b"2".to_vec()),
            ),
        ]);
        let h2 = RValue::Array(vec![
            RValue::BulkString(b"f2".to_vec()),
            RValue::BulkString(b"2".to_vec()),
            RValue::BulkString(b"f1".to_vec()),
            RValue::BulkString(b"1".to_vec()),
        ]);
        assert_eq!(digest("hash", &h1), digest("hash", &h2));
    }

    #[test]
    fn a_read_holds_before_the_save_begins_or_while_nothing_is_written() {
        let at = |saves: u64, in_progress: bool, offset: i64| SaveMark {
            in_progress,
            saves: Some(saves),
            last_save: Some(1_000 + saves as i64),
            offset: Some(offset),
        };
        let start = at(4, false, 500);
        // No save yet: the read precedes the fork, whatever was written.
        assert!(at(4, false, 900).holds_since(&start));
        // The save began (running or done) and writes arrived: a write may sit between the
        // fork and the read.
        assert!(!at(4, true, 900).holds_since(&start));
        assert!(!at(5, false, 900).holds_since(&start));
        // The save began but nothing was written since the start: the value is the saved one.
        assert!(at(5, false, 500).holds_since(&start));
        assert!(at(4, true, 500).holds_since(&start));
        // A node that says nothing about its saves is taken as saving.
        let silent = SaveMark {
            offset: Some(900),
            ..SaveMark::default()
        };
        assert!(!silent.holds_since(&SaveMark::default()));
        let parsed = SaveMark::parse(
            "# Persistence\r\nrdb_bgsave_in_progress:1\r\nrdb_saves:7\r\nrdb_last_save_time:1700\r\n",
            "# Replication\r\nrole:slave\r\nmaster_repl_offset:4242\r\n",
        );
        assert_eq!(
            parsed,
            SaveMark {
                in_progress: true,
                saves: Some(7),
                last_save: Some(1700),
                offset: Some(4242)
            }
        );
    }

    #[test]
    fn hex_round_trips() {
        let k = b"\x00odd\xffkey".to_vec();
        assert_eq!(from_hex(&to_hex(&k)), k);
    }
}
