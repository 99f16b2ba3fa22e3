//! The stats book: folds [`StatsEvent`]s into the current state of every polled node (its
//! latest figures, history, and whether it is up, stale or down, with the reason). The TUI
//! keeps one in its state; `cachedeck stats` keeps one too.

use super::{History, HistoryPoint, NodeKey, NodeStats, StatsEvent};
use crate::valkey::connect::{ConnectError, Layer};
use crate::valkey::info::{Info, Role};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use time::OffsetDateTime;

/// How a node is doing, as far as polling can tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum NodeStatus {
    /// Not answered yet.
    Pending,
    Up,
    /// The last poll failed in a way that may pass (timeout); figures shown are old.
    Stale {
        reason: String,
        #[serde(with = "time::serde::rfc3339")]
        since: OffsetDateTime,
    },
    /// The node cannot be reached (refused, no such host, auth) or kept failing.
    Down {
        reason: String,
        #[serde(with = "time::serde::rfc3339")]
        since: OffsetDateTime,
    },
}

impl NodeStatus {
    pub fn is_up(&self) -> bool {
        matches!(self, NodeStatus::Up)
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            NodeStatus::Stale { reason, .. } | NodeStatus::Down { reason, .. } => Some(reason),
            _ => None,
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            NodeStatus::Pending => "pending",
            NodeStatus::Up => "up",
            NodeStatus::Stale { .. } => "stale",
            NodeStatus::Down { .. } => "down",
        }
    }
}

/// Failures in a row after which even a "may pass" failure counts as down.
const DOWN_AFTER: u32 = 2;

/// One node's state.
#[derive(Debug, Clone)]
pub struct NodeEntry {
    pub status: NodeStatus,
    pub latest: Option<NodeStats>,
    pub info: Option<Arc<Info>>,
    pub history: History,
    pub consecutive_failures: u32,
    pub last_error: Option<ConnectError>,
}

impl NodeEntry {
    fn new(history: usize) -> NodeEntry {
        NodeEntry {
            status: NodeStatus::Pending,
            latest: None,
            info: None,
            history: History::new(history),
            consecutive_failures: 0,
            last_error: None,
        }
    }
}

/// Every polled node's state, keyed by env/cache/node.
#[derive(Debug, Clone)]
pub struct StatsBook {
    nodes: BTreeMap<NodeKey, NodeEntry>,
    history: usize,
}

impl Default for StatsBook {
    fn default() -> Self {
        StatsBook::new(History::DEFAULT_CAPACITY)
    }
}

impl StatsBook {
    /// A book keeping `history` points per node.
    pub fn new(history: usize) -> StatsBook {
        StatsBook {
            nodes: BTreeMap::new(),
            history,
        }
    }

    /// Registers a node before its first answer, so it shows as pending.
    pub fn track(&mut self, key: NodeKey) {
        let history = self.history;
        self.nodes
            .entry(key)
            .or_insert_with(|| NodeEntry::new(history));
    }

    /// Applies one poller message.
    pub fn apply(&mut self, event: StatsEvent) {
        let history = self.history;
        match event {
            StatsEvent::Sample { key, stats, info } => {
                let entry = self
                    .nodes
                    .entry(key)
                    .or_insert_with(|| NodeEntry::new(history));
                entry.history.push(HistoryPoint::from(stats.as_ref()));
                entry.latest = Some(*stats);
                entry.info = Some(info);
                entry.status = NodeStatus::Up;
                entry.consecutive_failures = 0;
                entry.last_error = None;
            }
            StatsEvent::Failed {
                key,
                error,
                consecutive,
                ..
            } => {
                let entry = self
                    .nodes
                    .entry(key)
                    .or_insert_with(|| NodeEntry::new(history));
                let now = OffsetDateTime::now_utc();
                let since = match &entry.status {
                    NodeStatus::Stale { since, .. } | NodeStatus::Down { since, .. } => *since,
                    _ => now,
                };
                let reason = error.to_string();
                let may_pass = matches!(error.layer, Layer::Timeout | Layer::Server);
                entry.status = if may_pass && consecutive < DOWN_AFTER && entry.latest.is_some() {
                    NodeStatus::Stale { reason, since }
                } else {
                    NodeStatus::Down { reason, since }
                };
                entry.consecutive_failures = consecutive;
                entry.last_error = Some(error);
            }
        }
    }

    pub fn get(&self, key: &NodeKey) -> Option<&NodeEntry> {
        self.nodes.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&NodeKey, &NodeEntry)> {
        self.nodes.iter()
    }

    /// The nodes of one cache, in node-id order.
    pub fn cache_nodes<'a>(
        &'a self,
        env: &'a str,
        cache: &'a str,
    ) -> impl Iterator<Item = (&'a NodeKey, &'a NodeEntry)> + 'a {
        self.nodes
            .iter()
            .filter(move |(k, _)| k.env == env && k.cache == cache)
    }

    /// Replication lag in bytes of a node: for a replica, its primary's offset minus its
    /// own (the primary is the node of the same cache with the same replication id); for a
    /// primary, the largest lag among its replicas.
    pub fn repl_lag_bytes(&self, key: &NodeKey) -> Option<u64> {
        let entry = self.nodes.get(key)?;
        let stats = entry.latest.as_ref()?;
        match stats.role {
            Role::Primary => stats.max_replica_lag_bytes(),
            Role::Replica => {
                let replid = entry.info.as_ref()?.replication.master_replid.clone()?;
                let own = stats.repl_offset?;
                self.cache_nodes(&key.env, &key.cache)
                    .filter_map(|(_, e)| e.info.as_ref())
                    .find(|i| {
                        i.replication.role == Role::Primary
                            && i.replication.master_replid.as_deref() == Some(replid.as_str())
                    })
                    .and_then(|i| i.replication.master_repl_offset)
                    .map(|primary| primary.saturating_sub(own))
            }
            Role::Unknown => None,
        }
    }

    /// Sum of ops/s over a cache's nodes that are up (the caches list's "ops/s" column).
    pub fn cache_ops_per_sec(&self, env: &str, cache: &str) -> Option<f64> {
        let rates: Vec<f64> = self
            .cache_nodes(env, cache)
            .filter(|(_, e)| e.status.is_up())
            .filter_map(|(_, e)| e.latest.as_ref()?.ops_per_sec)
            .collect();
        (!rates.is_empty()).then(|| rates.iter().sum())
    }

    /// Used memory summed over a cache's primaries (replicas hold copies).
    pub fn cache_used_memory(&self, env: &str, cache: &str) -> Option<u64> {
        let used: Vec<u64> = self
            .cache_nodes(env, cache)
            .filter_map(|(_, e)| e.latest.as_ref())
            .filter(|s| s.role != Role::Replica)
            .filter_map(|s| s.used_memory)
            .collect();
        (!used.is_empty()).then(|| used.iter().sum())
    }

    /// Forgets the nodes of a cache (the TUI left its view).
    pub fn forget_cache(&mut self, env: &str, cache: &str) {
        self.nodes
            .retain(|k, _| !(k.env == env && k.cache == cache));
    }
}
