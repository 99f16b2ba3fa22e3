//! A bounded history of a node's figures for charts: a ring buffer of small points, so a
//! TUI polling dozens of nodes every second keeps a flat memory footprint.

use super::NodeStats;
use serde::Serialize;
use std::collections::VecDeque;
use time::OffsetDateTime;

/// The figures a chart plots, taken from one [`NodeStats`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HistoryPoint {
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub ops_per_sec: Option<f64>,
    pub hit_rate: Option<f64>,
    pub used_memory: Option<u64>,
    pub maxmemory: Option<u64>,
    pub mem_fragmentation_ratio: Option<f64>,
    pub connected_clients: Option<u64>,
    pub blocked_clients: Option<u64>,
    pub evicted_per_sec: Option<f64>,
    pub expired_per_sec: Option<f64>,
    pub net_in_bytes_per_sec: Option<f64>,
    pub net_out_bytes_per_sec: Option<f64>,
    pub max_replica_lag_bytes: Option<u64>,
    pub cpu_percent: Option<f64>,
    pub keys: u64,
}

impl From<&NodeStats> for HistoryPoint {
    fn from(s: &NodeStats) -> Self {
        HistoryPoint {
            time: s.time,
            ops_per_sec: s.ops_per_sec,
            hit_rate: s.hit_rate,
            used_memory: s.used_memory,
            maxmemory: s.maxmemory,
            mem_fragmentation_ratio: s.mem_fragmentation_ratio,
            connected_clients: s.connected_clients,
            blocked_clients: s.blocked_clients,
            evicted_per_sec: s.evicted_per_sec,
            expired_per_sec: s.expired_per_sec,
            net_in_bytes_per_sec: s.net_in_bytes_per_sec,
            net_out_bytes_per_sec: s.net_out_bytes_per_sec,
            max_replica_lag_bytes: s.max_replica_lag_bytes(),
            cpu_percent: s.cpu_percent,
            keys: s.keys,
        }
    }
}

/// The last `capacity` points, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    capacity: usize,
    points: VecDeque<HistoryPoint>,
}

impl History {
    /// Default: ten minutes at one sample a second.
    pub const DEFAULT_CAPACITY: usize = 600;

    pub fn new(capacity: usize) -> History {
        let capacity = capacity.max(1);
        History {
            capacity,
            points: VecDeque::with_capacity(capacity.min(4096)),
        }
    }

    pub fn push(&mut self, point: HistoryPoint) {
        if self.points.len() == self.capacity {
            self.points.pop_front();
        }
        self.points.push_back(point);
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn points(&self) -> impl DoubleEndedIterator<Item = &HistoryPoint> + ExactSizeIterator {
        self.points.iter()
    }

    pub fn latest(&self) -> Option<&HistoryPoint> {
        self.points.back()
    }

    /// One figure over the last `width` points (oldest first); gaps stay `None`.
    pub fn series(
        &self,
        width: usize,
        pick: impl Fn(&HistoryPoint) -> Option<f64>,
    ) -> Vec<Option<f64>> {
        let skip = self.points.len().saturating_sub(width);
        self.points.iter().skip(skip).map(pick).collect()
    }

    /// The same as whole numbers for a sparkline (gaps as 0, values scaled by `scale`, e.g.
    /// 100 for a hit rate in percent).
    pub fn sparkline(
        &self,
        width: usize,
        scale: f64,
        pick: impl Fn(&HistoryPoint) -> Option<f64>,
    ) -> Vec<u64> {
        self.series(width, pick)
            .into_iter()
            .map(|v| v.map_or(0, |v| (v * scale).max(0.0).round() as u64))
            .collect()
    }
}

impl Default for History {
    fn default() -> Self {
        History::new(History::DEFAULT_CAPACITY)
    }
}
