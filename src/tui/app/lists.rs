//! What the lists show, derived from the state: filtered environments and caches, node rows
//! joining discovery with live stats, and the alerts worth a person's attention.

use super::{App, EnvEntry, Load};
use crate::domain::{Cache, Node, NodeHealth, NodeRole};
use crate::valkey::info::Role;
use crate::valkey::stats::{NodeEntry, NodeKey, NodeStatus};

/// One node of the cache view: where discovery says it is, and what polling says of it.
#[derive(Debug, Clone)]
pub struct NodeRow<'a> {
    pub shard: &'a str,
    pub node: &'a Node,
    pub live: Option<&'a NodeEntry>,
}

impl NodeRow<'_> {
    /// The role INFO reports (it follows failovers), else discovery's.
    pub fn role(&self) -> NodeRole {
        match self.live.and_then(|e| e.latest.as_ref()).map(|s| s.role) {
            Some(Role::Primary) => NodeRole::Primary,
            Some(Role::Replica) => NodeRole::Replica,
            _ => self.node.role,
        }
    }

    /// `up`, `down`, `stale` or `pending`, and the reason when not up. Polling wins over
    /// discovery because it is seconds old rather than a control-plane interval.
    pub fn state(&self) -> (&'static str, Option<String>) {
        match self.live.map(|e| &e.status) {
            Some(NodeStatus::Up) => ("up", None),
            Some(s @ (NodeStatus::Down { .. } | NodeStatus::Stale { .. })) => {
                (s.label(), s.reason().map(str::to_string))
            }
            _ => match &self.node.health {
                NodeHealth::Down(reason) => ("down", Some(reason.clone())),
                _ => ("…", None),
            },
        }
    }
}

/// Something about a cache that needs a look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheAlert {
    NodesDown(usize),
    /// A queue cache (Sidekiq, Celery) whose policy may evict jobs.
    QueueEviction(String),
    MemoryFull(u8),
    Evicting,
    ReplicaLag(u64),
    BgsaveFailed,
    NotPolled(String),
}

impl CacheAlert {
    /// A few words for a narrow column.
    pub fn short(&self) -> String {
        match self {
            CacheAlert::NodesDown(n) => format!("{n} down"),
            CacheAlert::QueueEviction(_) => "evicts queues".into(),
            CacheAlert::MemoryFull(p) => format!("mem {p}%"),
            CacheAlert::Evicting => "evicting".into(),
            CacheAlert::ReplicaLag(_) => "lagging".into(),
            CacheAlert::BgsaveFailed => "bgsave err".into(),
            CacheAlert::NotPolled(_) => "not polled".into(),
        }
    }

    /// The whole story, for the cache view.
    pub fn text(&self) -> String {
        match self {
            CacheAlert::NodesDown(1) => "1 node down".into(),
            CacheAlert::NodesDown(n) => format!("{n} nodes down"),
            CacheAlert::QueueEviction(p) => format!("queues with {p}, want noeviction"),
            CacheAlert::MemoryFull(p) => format!("memory {p}%"),
            CacheAlert::Evicting => "evicting keys".into(),
            CacheAlert::ReplicaLag(b) => {
                format!("replica lag {}", super::super::view::fmt::bytes(*b))
            }
            CacheAlert::BgsaveFailed => "last bgsave failed".into(),
            CacheAlert::NotPolled(reason) => format!("not polled: {reason}"),
        }
    }
}

/// Lag in bytes above which a replica is worth flagging.
const LAG_ALERT_BYTES: u64 = 1 << 20;

impl App {
    /// Whether `text` passes the current filter (case-insensitive substring).
    pub fn matches(&self, text: &str) -> bool {
        self.filter.is_empty() || text.to_lowercase().contains(&self.filter.to_lowercase())
    }

    /// Environments passing the filter (on name, provider, region, profile).
    pub fn visible_envs(&self) -> Vec<&EnvEntry> {
        if !matches!(self.route, super::Route::Envs) {
            return self.envs.iter().collect();
        }
        self.envs
            .iter()
            .filter(|e| {
                let env = &e.env;
                self.matches(&format!(
                    "{} {} {} {}",
                    env.name,
                    env.provider,
                    env.region.as_deref().unwrap_or(""),
                    env.profile.as_deref().unwrap_or("")
                ))
            })
            .collect()
    }

    /// Caches of the current environment passing the filter (name, kind, engine, status).
    pub fn visible_caches(&self) -> Vec<&Cache> {
        let Some(env) = self.current_env() else {
            return Vec::new();
        };
        let Some(caches) = self.caches_of(&env.env.name) else {
            return Vec::new();
        };
        let filtering = matches!(self.route, super::Route::Caches { .. });
        caches
            .iter()
            .filter(|c| {
                !filtering
                    || self.matches(&format!("{} {} {} {}", c.name, c.kind, c.engine, c.status))
            })
            .collect()
    }

    /// Nodes of the cache on screen, shard by shard, passing the filter.
    pub fn node_rows(&self) -> Vec<NodeRow<'_>> {
        let Some(cache) = self.current_cache() else {
            return Vec::new();
        };
        cache
            .shards
            .iter()
            .flat_map(|s| s.nodes.iter().map(move |n| (s, n)))
            .map(|(shard, node)| NodeRow {
                shard: &shard.id,
                node,
                live: self.book.get(&NodeKey {
                    env: cache.env.clone(),
                    cache: cache.name.clone(),
                    node: node.id.clone(),
                }),
            })
            .filter(|r| {
                !matches!(self.tab, super::Tab::Stats | super::Tab::Keyspace)
                    || self.matches(&format!(
                        "{} {} {} {}",
                        r.shard,
                        r.node.id,
                        r.role(),
                        r.node.availability_zone.as_deref().unwrap_or("")
                    ))
            })
            .collect()
    }

    /// Nodes down in a cache: by polling when polled, else by discovery.
    pub fn nodes_down(&self, cache: &Cache) -> usize {
        cache
            .nodes()
            .filter(|n| {
                let key = NodeKey {
                    env: cache.env.clone(),
                    cache: cache.name.clone(),
                    node: n.id.clone(),
                };
                match self.book.get(&key).map(|e| &e.status) {
                    Some(NodeStatus::Down { .. }) => true,
                    Some(NodeStatus::Up | NodeStatus::Stale { .. }) => false,
                    _ => !n.health.is_up() && n.health != NodeHealth::Unknown,
                }
            })
            .count()
    }

    /// Everything about a cache worth flagging, most urgent first.
    pub fn alerts(&self, cache: &Cache) -> Vec<CacheAlert> {
        let mut alerts = Vec::new();
        if let Some(reason) = self.watch_errors.get(&cache.name) {
            alerts.push(CacheAlert::NotPolled(reason.clone()));
        }
        let down = self.nodes_down(cache);
        if down > 0 {
            alerts.push(CacheAlert::NodesDown(down));
        }
        let stats: Vec<_> = self
            .book
            .cache_nodes(&cache.env, &cache.name)
            .filter_map(|(_, e)| e.latest.as_ref())
            .collect();
        if self.queue_caches.get(&cache.name) == Some(&true) {
            let policy = stats
                .iter()
                .filter(|s| s.role != Role::Replica)
                .filter_map(|s| s.maxmemory_policy.clone())
                .find(|p| p != "noeviction");
            if let Some(policy) = policy {
                alerts.push(CacheAlert::QueueEviction(policy));
            }
        }
        let fill = stats
            .iter()
            .filter_map(|s| s.memory_fill())
            .fold(0.0, f64::max);
        if fill >= 0.9 {
            alerts.push(CacheAlert::MemoryFull((fill * 100.0).min(255.0) as u8));
        }
        if stats
            .iter()
            .any(|s| s.evicted_per_sec.is_some_and(|r| r > 0.0))
        {
            alerts.push(CacheAlert::Evicting);
        }
        let lag = stats
            .iter()
            .filter_map(|s| s.max_replica_lag_bytes())
            .max()
            .unwrap_or(0);
        if lag >= LAG_ALERT_BYTES {
            alerts.push(CacheAlert::ReplicaLag(lag));
        }
        if stats
            .iter()
            .any(|s| s.rdb_last_bgsave_status.as_deref() == Some("err"))
        {
            alerts.push(CacheAlert::BgsaveFailed);
        }
        alerts
    }

    /// The health column of an environment.
    pub fn env_health(&self, entry: &EnvEntry) -> (String, Health) {
        match &entry.discovery {
            Load::Loading => ("discovering…".into(), Health::Unknown),
            Load::Failed(e) => (e.clone(), Health::Bad),
            Load::Ready(d) => {
                let down: usize = d.caches.iter().map(|c| self.nodes_down(c)).sum();
                if down > 0 {
                    let s = if down == 1 { "" } else { "s" };
                    (format!("{down} node{s} down"), Health::Bad)
                } else if !d.warnings.is_empty() {
                    (format!("ok, {} warning(s)", d.warnings.len()), Health::Warn)
                } else {
                    ("ok".into(), Health::Good)
                }
            }
        }
    }
}

/// How a thing is doing, for colouring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Good,
    Warn,
    Bad,
    Unknown,
}
