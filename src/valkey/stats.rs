//! The live-stats model: one INFO sample per node per poll ([`NodeSample`]), the figures
//! derived from two consecutive samples ([`NodeStats`]: rates, hit rate, lag…), a bounded
//! history for charts, the per-node poller that produces them as [`StatsEvent`] messages,
//! and the [`StatsBook`] that folds those messages into the current picture.
//!
//! Rates come from counter deltas between samples, never from a single sample, so a
//! one-second view is real; a counter that went backwards (restart, failover to a fresh
//! node) gives no rate for that interval instead of a huge negative or wrapped one.

mod alerts;
mod book;
mod history;
mod poller;
mod slowlog;

pub use alerts::{Alert, Severity};
pub use book::{NodeEntry, NodeStatus, StatsBook};
pub use history::{History, HistoryPoint};
pub use poller::{PollTarget, Poller, PollerConfig, StatsEvent, poll_nodes, sample_node};
pub use slowlog::{SlowlogEntry, fetch_slowlog};

use crate::valkey::info::{Info, KeyspaceDb, Role};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// Identifies one node of one cache of one environment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct NodeKey {
    pub env: String,
    pub cache: String,
    /// The node id from the domain model (`domain::Node::id`).
    pub node: String,
}

/// One INFO reply from one node, and when it was taken.
#[derive(Debug, Clone)]
pub struct NodeSample {
    /// Monotonic time the reply arrived: rates are computed from these.
    pub at: Instant,
    /// Wall-clock time for display and JSON.
    pub wall: OffsetDateTime,
    /// How long INFO took to answer (a crude latency signal).
    pub latency: Duration,
    pub info: Arc<Info>,
}

impl NodeSample {
    pub fn new(info: Info, latency: Duration) -> NodeSample {
        NodeSample {
            at: Instant::now(),
            wall: OffsetDateTime::now_utc(),
            latency,
            info: Arc::new(info),
        }
    }
}

/// Lag of one replica as its primary sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplicaLag {
    /// `ip:port` as the primary reports it (ElastiCache reports private IPs).
    pub address: String,
    pub state: Option<String>,
    pub offset: Option<u64>,
    /// The primary's offset minus the replica's acknowledged offset.
    pub lag_bytes: Option<u64>,
    pub lag_seconds: Option<u64>,
}

/// Everything cachedeck shows about a node at one instant, derived from the latest sample
/// and (for rates) the one before it. `None` means "not known" (no previous sample, field
/// not sent by this server, counter reset).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeStats {
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub role: Role,
    pub engine: String,
    pub version: Option<String>,
    pub uptime_seconds: Option<u64>,
    pub latency_ms: f64,
    /// From the `total_commands_processed` delta when there is a previous sample, else the
    /// server's own `instantaneous_ops_per_sec`.
    pub ops_per_sec: Option<f64>,
    pub instantaneous_ops_per_sec: Option<u64>,
    /// Hits / (hits + misses) over the interval, 0..=1; `None` when there were no lookups.
    pub hit_rate: Option<f64>,
    /// The same since the server started.
    pub hit_rate_lifetime: Option<f64>,
    pub used_memory: Option<u64>,
    /// 0 = no limit.
    pub maxmemory: Option<u64>,
    pub maxmemory_policy: Option<String>,
    pub mem_fragmentation_ratio: Option<f64>,
    pub connected_clients: Option<u64>,
    pub blocked_clients: Option<u64>,
    /// Totals since start.
    pub evicted_keys: Option<u64>,
    pub expired_keys: Option<u64>,
    pub evicted_per_sec: Option<f64>,
    pub expired_per_sec: Option<f64>,
    pub net_in_bytes_per_sec: Option<f64>,
    pub net_out_bytes_per_sec: Option<f64>,
    /// Server CPU (user + system, main process) as a percentage of one core over the interval.
    pub cpu_percent: Option<f64>,
    /// `master_repl_offset` on a primary, the processed offset on a replica.
    pub repl_offset: Option<u64>,
    /// A primary's view of each replica.
    pub replicas: Vec<ReplicaLag>,
    /// Replica side: the link to its primary (`up`/`down`) and since when it is down.
    pub master_link_status: Option<String>,
    pub master_link_down_seconds: Option<u64>,
    pub rdb_last_bgsave_status: Option<String>,
    /// Unix seconds.
    pub rdb_last_save_time: Option<u64>,
    pub rdb_changes_since_last_save: Option<u64>,
    pub rdb_bgsave_in_progress: Option<bool>,
    pub aof_enabled: Option<bool>,
    pub aof_last_write_status: Option<String>,
    pub loading: Option<bool>,
    pub keys: u64,
    pub expires: u64,
    pub keyspace: Vec<KeyspaceDb>,
}

impl NodeStats {
    /// Figures from `current`, with rates over the interval since `previous` when given.
    pub fn derive(current: &NodeSample, previous: Option<&NodeSample>) -> NodeStats {
        let info = &current.info;
        let s = &info.stats;
        let prev = previous.filter(|p| p.at < current.at && same_process(&p.info, info));
        let secs = prev.map(|p| current.at.duration_since(p.at).as_secs_f64());
        let rate = |now: Option<u64>, then: fn(&Info) -> Option<u64>| -> Option<f64> {
            let then = then(&prev?.info)?;
            let delta = now?.checked_sub(then)?;
            let secs = secs.filter(|s| *s > 0.0)?;
            Some(delta as f64 / secs)
        };
        let ops_per_sec = rate(s.total_commands_processed, |i| {
            i.stats.total_commands_processed
        })
        .or(s.instantaneous_ops_per_sec.map(|v| v as f64));
        let hit_rate = prev.and_then(|p| {
            let hits = s.keyspace_hits?.checked_sub(p.info.stats.keyspace_hits?)?;
            let misses = s
                .keyspace_misses?
                .checked_sub(p.info.stats.keyspace_misses?)?;
            ratio(hits, misses)
        });
        let repl = &info.replication;
        let primary_offset = repl.master_repl_offset;
        NodeStats {
            time: current.wall,
            role: repl.role,
            engine: info.server.engine.clone(),
            version: info.server.version.clone(),
            uptime_seconds: info.server.uptime_in_seconds,
            latency_ms: current.latency.as_secs_f64() * 1000.0,
            ops_per_sec,
            instantaneous_ops_per_sec: s.instantaneous_ops_per_sec,
            hit_rate,
            hit_rate_lifetime: ratio(s.keyspace_hits.unwrap_or(0), s.keyspace_misses.unwrap_or(0)),
            used_memory: info.memory.used_memory,
            maxmemory: info.memory.maxmemory,
            maxmemory_policy: info.memory.maxmemory_policy.clone(),
            mem_fragmentation_ratio: info.memory.mem_fragmentation_ratio,
            connected_clients: info.clients.connected_clients,
            blocked_clients: info.clients.blocked_clients,
            evicted_keys: s.evicted_keys,
            expired_keys: s.expired_keys,
            evicted_per_sec: rate(s.evicted_keys, |i| i.stats.evicted_keys),
            expired_per_sec: rate(s.expired_keys, |i| i.stats.expired_keys),
            net_in_bytes_per_sec: rate(s.total_net_input_bytes, |i| i.stats.total_net_input_bytes),
            net_out_bytes_per_sec: rate(s.total_net_output_bytes, |i| {
                i.stats.total_net_output_bytes
            }),
            cpu_percent: prev.and_then(|p| {
                let now = cpu_seconds(info)?;
                let then = cpu_seconds(&p.info)?;
                let secs = secs.filter(|s| *s > 0.0)?;
                Some(((now - then) / secs * 100.0).max(0.0))
            }),
            repl_offset: match repl.role {
                Role::Replica => repl.slave_repl_offset.or(primary_offset),
                _ => primary_offset,
            },
            replicas: repl
                .replicas
                .iter()
                .map(|r| ReplicaLag {
                    address: match r.port {
                        Some(port) => format!("{}:{port}", r.ip),
                        None => r.ip.clone(),
                    },
                    state: r.state.clone(),
                    offset: r.offset,
                    lag_bytes: primary_offset
                        .zip(r.offset)
                        .map(|(p, o)| p.saturating_sub(o)),
                    lag_seconds: r.lag_seconds,
                })
                .collect(),
            master_link_status: repl.master_link_status.clone(),
            master_link_down_seconds: repl.master_link_down_since_seconds,
            rdb_last_bgsave_status: info.persistence.rdb_last_bgsave_status.clone(),
            rdb_last_save_time: info.persistence.rdb_last_save_time,
            rdb_changes_since_last_save: info.persistence.rdb_changes_since_last_save,
            rdb_bgsave_in_progress: info.persistence.rdb_bgsave_in_progress,
            aof_enabled: info.persistence.aof_enabled,
            aof_last_write_status: info.persistence.aof_last_write_status.clone(),
            loading: info.persistence.loading,
            keys: info.total_keys(),
            expires: info.total_expires(),
            keyspace: info.keyspace.clone(),
        }
    }

    /// Largest lag in bytes over this primary's replicas.
    pub fn max_replica_lag_bytes(&self) -> Option<u64> {
        self.replicas.iter().filter_map(|r| r.lag_bytes).max()
    }

    /// Used memory as a share of maxmemory (0..=1+), when a limit is set.
    pub fn memory_fill(&self) -> Option<f64> {
        let max = self.maxmemory.filter(|m| *m > 0)?;
        Some(self.used_memory? as f64 / max as f64)
    }
}

/// Two samples of the same server process: counters are comparable only then.
fn same_process(a: &Info, b: &Info) -> bool {
    match (&a.server.run_id, &b.server.run_id) {
        (Some(x), Some(y)) => x == y,
        // ElastiCache may hide run_id: fall back on uptime not going backwards.
        _ => match (a.server.uptime_in_seconds, b.server.uptime_in_seconds) {
            (Some(x), Some(y)) => y >= x,
            _ => true,
        },
    }
}

fn cpu_seconds(info: &Info) -> Option<f64> {
    Some(info.cpu.used_cpu_sys? + info.cpu.used_cpu_user?)
}

fn ratio(hits: u64, misses: u64) -> Option<f64> {
    let total = hits.checked_add(misses)?;
    (total > 0).then(|| hits as f64 / total as f64)
}

#[cfg(test)]
mod tests;
