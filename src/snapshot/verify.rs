//! Checks a restored cache against a snapshot's manifest: key counts per shard and database
//! (keys with a TTL that expired in between are counted as expired, not missing), and every
//! sampled key present with the same type and value digest. Keys that changed while the
//! snapshot was taken are reported apart, never as errors.

use super::manifest::{self, Manifest, TtlState};
use crate::domain::Cache;
use crate::valkey::connect::Connector;
use serde::Serialize;
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// One database of one shard, counted.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CountCheck {
    pub shard: String,
    pub db: u32,
    pub expected_before: u64,
    pub expected_after: u64,
    pub restored: u64,
    /// Keys short of the snapshot's count that a TTL explains.
    pub expired: u64,
    pub ok: bool,
}

/// The verdict.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VerifyReport {
    pub verified: bool,
    pub keys_expected: u64,
    pub keys_restored: u64,
    pub counts: Vec<CountCheck>,
    pub sampled: usize,
    pub checked: usize,
    pub missing: usize,
    pub different: usize,
    pub expired: usize,
    pub changed_during_snapshot: usize,
    /// A few missing/different keys, escaped.
    pub examples: Vec<String>,
}

/// The cluster slot of a key (CRC16/XMODEM of the key or its `{hash tag}`).
pub fn slot(key: &[u8]) -> u16 {
    const CRC: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_XMODEM);
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        rest.iter()
            .position(|&b| b == b'}')
            .filter(|&len| len > 0)
            .map(|len| &rest[..len])
    });
    CRC.checksum(tagged.unwrap_or(key)) % 16384
}

fn in_range(slots: Option<&str>, s: u16) -> bool {
    let Some(text) = slots else {
        return false;
    };
    text.split(',').any(|r| match r.trim().split_once('-') {
        Some((a, b)) => {
            a.parse::<u16>().is_ok_and(|a| a <= s) && b.parse::<u16>().is_ok_and(|b| s <= b)
        }
        None => r.trim().parse::<u16>() == Ok(s),
    })
}

/// Verifies `restored` (as discovered) against `manifest`, reading its primaries directly.
pub async fn verify(
    manifest: &Manifest,
    restored: &Cache,
    connector: &Connector,
    progress: &(dyn Fn(u64, u64) + Send + Sync),
) -> Result<VerifyReport, String> {
    let mut report = VerifyReport {
        verified: false,
        keys_expected: manifest.keys_before().min(manifest.keys_after()),
        keys_restored: 0,
        counts: Vec::new(),
        sampled: manifest.sample.len(),
        checked: 0,
        missing: 0,
        different: 0,
        expired: 0,
        changed_during_snapshot: manifest.changed(),
        examples: Vec::new(),
    };
    if restored.shards.len() != manifest.shards.len() {
        return Err(format!(
            "the restored cache has {} shards, the snapshot {}",
            restored.shards.len(),
            manifest.shards.len()
        ));
    }
    let mut conns = Vec::new();
    for shard in &restored.shards {
        let node = shard
            .primary()
            .or(shard.nodes.first())
            .ok_or_else(|| format!("restored shard {} has no nodes", shard.id))?;
        conns.push(
            connector
                .connect(&node.endpoint())
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    // Counts, shard by shard in the snapshot's order.
    for (i, counts) in manifest.shards.iter().enumerate() {
        let (keys, _) = manifest::keyspace(&mut conns[i]).await?;
        let dbs: std::collections::BTreeSet<u32> = counts
            .keys_before
            .keys()
            .chain(counts.keys_after.keys())
            .chain(keys.keys())
            .copied()
            .collect();
        for db in dbs {
            let before = counts.keys_before.get(&db).copied().unwrap_or(0);
            let after = counts.keys_after.get(&db).copied().unwrap_or(0);
            let restored_n = keys.get(&db).copied().unwrap_or(0);
            let low = before.min(after);
            let high = before.max(after);
            let short = low.saturating_sub(restored_n);
            let ttl_keys = counts.expires.get(&db).copied().unwrap_or(0);
            let ok = restored_n <= high && short <= ttl_keys;
            report.keys_restored += restored_n;
            report.counts.push(CountCheck {
                shard: counts.shard.clone(),
                db,
                expected_before: before,
                expected_after: after,
                restored: restored_n,
                expired: short.min(ttl_keys),
                ok,
            });
        }
    }
    // The sample, grouped by restored shard and database.
    let mut groups: BTreeMap<(usize, u32), Vec<usize>> = BTreeMap::new();
    for (i, k) in manifest.sample.iter().enumerate() {
        if k.changed {
            continue;
        }
        let shard = if manifest.cluster_mode {
            let s = slot(&k.key());
            restored
                .shards
                .iter()
                .position(|sh| in_range(sh.slots.as_deref(), s))
                .or_else(|| manifest.shards.iter().position(|m| m.shard == k.shard))
                .unwrap_or(0)
        } else {
            manifest
                .shards
                .iter()
                .position(|m| m.shard == k.shard)
                .unwrap_or(0)
        };
        groups.entry((shard, k.db)).or_default().push(i);
    }
    let now_ms = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let total = report.sampled as u64;
    for ((shard, db), idx) in groups {
        let keys: Vec<Vec<u8>> = idx.iter().map(|&i| manifest.sample[i].key()).collect();
        let reads = manifest::read_keys(&mut conns[shard], db, &keys).await?;
        for (&i, read) in idx.iter().zip(reads) {
            let want = &manifest.sample[i];
            report.checked += 1;
            match read {
                None => {
                    let lapsed =
                        matches!(want.ttl, TtlState::Expires { at_ms } if at_ms <= now_ms + 1_000);
                    if lapsed {
                        report.expired += 1;
                    } else {
                        report.missing += 1;
                        example(&mut report.examples, "missing", &want.key());
                    }
                }
                Some(got) if got.kind != want.kind || got.digest != want.digest => {
                    report.different += 1;
                    example(&mut report.examples, "different", &want.key());
                }
                Some(_) => {}
            }
        }
        progress(report.checked as u64, total);
    }
    report.verified =
        report.missing == 0 && report.different == 0 && report.counts.iter().all(|c| c.ok);
    Ok(report)
}

fn example(examples: &mut Vec<String>, what: &str, key: &[u8]) {
    if examples.len() < 10 {
        examples.push(format!(
            "{what}: {}",
            crate::escape::escape_capped(key, 120)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_the_cluster_spec() {
        // Values from the Redis cluster specification and CLUSTER KEYSLOT.
        assert_eq!(slot(b"123456789"), 12739);
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(slot(b"foo{}{bar}"), slot(b"foo{}{bar}"));
        assert!(in_range(Some("0-5460"), 5460));
        assert!(!in_range(Some("0-5460"), 5461));
    }
}
