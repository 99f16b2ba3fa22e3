//! Typed views of the INFO sections. Every field is optional: a server that does not send it
//! (older Redis, ElastiCache's trimmed INFO) leaves it `None` instead of failing the parse.

use super::{Fields, parse_pairs};
use serde::Serialize;
use std::collections::BTreeMap;

/// `# Server`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Server {
    /// `valkey` or `redis` (Valkey sends `server_name`; Redis does not).
    pub engine: String,
    /// The engine's own version: `valkey_version` on Valkey, `redis_version` on Redis.
    pub version: Option<String>,
    /// `redis_version` (Valkey reports 7.2.4 here for compatibility).
    pub redis_version: Option<String>,
    pub mode: Option<String>,
    pub os: Option<String>,
    pub run_id: Option<String>,
    pub tcp_port: Option<u16>,
    pub uptime_in_seconds: Option<u64>,
    pub process_id: Option<u64>,
}

impl Server {
    pub(crate) fn from_fields(f: &Fields<'_>) -> Server {
        let engine = f
            .string("server_name")
            .unwrap_or_else(|| "redis".to_string());
        Server {
            version: f
                .string("valkey_version")
                .or_else(|| f.string("redis_version")),
            engine,
            redis_version: f.string("redis_version"),
            mode: f.string("server_mode").or_else(|| f.string("redis_mode")),
            os: f.string("os"),
            run_id: f.string("run_id"),
            tcp_port: f.num("tcp_port"),
            uptime_in_seconds: f.num("uptime_in_seconds"),
            process_id: f.num("process_id"),
        }
    }
}

/// `# Clients`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Clients {
    pub connected_clients: Option<u64>,
    pub blocked_clients: Option<u64>,
    pub maxclients: Option<u64>,
    pub tracking_clients: Option<u64>,
    pub pubsub_clients: Option<u64>,
}

impl Clients {
    pub(crate) fn from_fields(f: &Fields<'_>) -> Clients {
        Clients {
            connected_clients: f.num("connected_clients"),
            blocked_clients: f.num("blocked_clients"),
            maxclients: f.num("maxclients"),
            tracking_clients: f.num("tracking_clients"),
            pubsub_clients: f.num("pubsub_clients"),
        }
    }
}

/// `# Memory`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Memory {
    pub used_memory: Option<u64>,
    pub used_memory_rss: Option<u64>,
    pub used_memory_peak: Option<u64>,
    pub used_memory_dataset: Option<u64>,
    /// 0 means "no limit".
    pub maxmemory: Option<u64>,
    pub maxmemory_policy: Option<String>,
    pub mem_fragmentation_ratio: Option<f64>,
    pub allocator: Option<String>,
}

impl Memory {
    pub(crate) fn from_fields(f: &Fields<'_>) -> Memory {
        Memory {
            used_memory: f.num("used_memory"),
            used_memory_rss: f.num("used_memory_rss"),
            used_memory_peak: f.num("used_memory_peak"),
            used_memory_dataset: f.num("used_memory_dataset"),
            maxmemory: f.num("maxmemory"),
            maxmemory_policy: f.string("maxmemory_policy"),
            mem_fragmentation_ratio: f.float("mem_fragmentation_ratio"),
            allocator: f.string("mem_allocator"),
        }
    }
}

/// `# Persistence`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Persistence {
    pub loading: Option<bool>,
    pub rdb_changes_since_last_save: Option<u64>,
    pub rdb_bgsave_in_progress: Option<bool>,
    /// Unix seconds of the last successful save.
    pub rdb_last_save_time: Option<u64>,
    /// `ok` or `err`.
    pub rdb_last_bgsave_status: Option<String>,
    pub rdb_last_bgsave_time_sec: Option<u64>,
    pub rdb_saves: Option<u64>,
    pub aof_enabled: Option<bool>,
    pub aof_rewrite_in_progress: Option<bool>,
    pub aof_last_bgrewrite_status: Option<String>,
    pub aof_last_write_status: Option<String>,
}

impl Persistence {
    pub(crate) fn from_fields(f: &Fields<'_>) -> Persistence {
        Persistence {
            loading: f.flag("loading"),
            rdb_changes_since_last_save: f.num("rdb_changes_since_last_save"),
            rdb_bgsave_in_progress: f.flag("rdb_bgsave_in_progress"),
            rdb_last_save_time: f.non_negative("rdb_last_save_time"),
            rdb_last_bgsave_status: f.string("rdb_last_bgsave_status"),
            rdb_last_bgsave_time_sec: f.non_negative("rdb_last_bgsave_time_sec"),
            rdb_saves: f.num("rdb_saves"),
            aof_enabled: f.flag("aof_enabled"),
            aof_rewrite_in_progress: f.flag("aof_rewrite_in_progress"),
            aof_last_bgrewrite_status: f.string("aof_last_bgrewrite_status"),
            aof_last_write_status: f.string("aof_last_write_status"),
        }
    }
}

/// `# Stats`: the counters rates are computed from.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    pub total_connections_received: Option<u64>,
    pub total_commands_processed: Option<u64>,
    pub instantaneous_ops_per_sec: Option<u64>,
    pub total_net_input_bytes: Option<u64>,
    pub total_net_output_bytes: Option<u64>,
    pub instantaneous_input_kbps: Option<f64>,
    pub instantaneous_output_kbps: Option<f64>,
    pub rejected_connections: Option<u64>,
    pub expired_keys: Option<u64>,
    pub evicted_keys: Option<u64>,
    pub keyspace_hits: Option<u64>,
    pub keyspace_misses: Option<u64>,
    pub total_error_replies: Option<u64>,
    pub latest_fork_usec: Option<u64>,
}

impl Stats {
    pub(crate) fn from_fields(f: &Fields<'_>) -> Stats {
        Stats {
            total_connections_received: f.num("total_connections_received"),
            total_commands_processed: f.num("total_commands_processed"),
            instantaneous_ops_per_sec: f.num("instantaneous_ops_per_sec"),
            total_net_input_bytes: f.num("total_net_input_bytes"),
            total_net_output_bytes: f.num("total_net_output_bytes"),
            instantaneous_input_kbps: f.float("instantaneous_input_kbps"),
            instantaneous_output_kbps: f.float("instantaneous_output_kbps"),
            rejected_connections: f.num("rejected_connections"),
            expired_keys: f.num("expired_keys"),
            evicted_keys: f.num("evicted_keys"),
            keyspace_hits: f.num("keyspace_hits"),
            keyspace_misses: f.num("keyspace_misses"),
            total_error_replies: f.num("total_error_replies"),
            latest_fork_usec: f.num("latest_fork_usec"),
        }
    }
}

/// Which side of replication a node is on (`master`/`slave` in INFO).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Primary,
    Replica,
    #[default]
    Unknown,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Replica => "replica",
            Role::Unknown => "unknown",
        }
    }
}

/// One `slaveN:ip=…,port=…,state=…,offset=…,lag=…` line of a primary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReplicaLink {
    pub ip: String,
    pub port: Option<u16>,
    pub state: Option<String>,
    pub offset: Option<u64>,
    /// Seconds since the replica's last acknowledgement.
    pub lag_seconds: Option<u64>,
}

/// `# Replication`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Replication {
    pub role: Role,
    pub connected_replicas: Option<u64>,
    pub replicas: Vec<ReplicaLink>,
    pub master_repl_offset: Option<u64>,
    /// The replication history id; a replica shares its primary's, which pairs them up.
    pub master_replid: Option<String>,
    /// Replica side: where its primary is and how the link is.
    pub master_host: Option<String>,
    pub master_port: Option<u16>,
    pub master_link_status: Option<String>,
    pub master_last_io_seconds_ago: Option<u64>,
    pub master_sync_in_progress: Option<bool>,
    pub master_link_down_since_seconds: Option<u64>,
    /// A replica's own processed offset.
    pub slave_repl_offset: Option<u64>,
}

impl Replication {
    pub(crate) fn from_fields(f: &Fields<'_>, section: &BTreeMap<String, String>) -> Replication {
        let role = match f.get("role") {
            Some("master") => Role::Primary,
            Some("slave") | Some("replica") => Role::Replica,
            _ => Role::Unknown,
        };
        // slave0, slave1, … sorted numerically (slave10 after slave9).
        let mut replicas: Vec<(u32, ReplicaLink)> = section
            .iter()
            .filter_map(|(k, v)| {
                let n = k.strip_prefix("slave")?.parse::<u32>().ok()?;
                let pairs = parse_pairs(v);
                Some((
                    n,
                    ReplicaLink {
                        ip: pairs.get("ip").map(|s| s.to_string()).unwrap_or_default(),
                        port: pairs.get("port").and_then(|p| p.parse().ok()),
                        state: pairs.get("state").map(|s| s.to_string()),
                        offset: pairs.get("offset").and_then(|p| p.parse().ok()),
                        lag_seconds: pairs.get("lag").and_then(|p| p.parse().ok()),
                    },
                ))
            })
            .collect();
        replicas.sort_by_key(|(n, _)| *n);
        Replication {
            role,
            connected_replicas: f.num("connected_slaves"),
            replicas: replicas.into_iter().map(|(_, r)| r).collect(),
            master_repl_offset: f.non_negative("master_repl_offset"),
            master_replid: f.string("master_replid"),
            master_host: f.string("master_host"),
            master_port: f.num("master_port"),
            master_link_status: f.string("master_link_status"),
            master_last_io_seconds_ago: f.non_negative("master_last_io_seconds_ago"),
            master_sync_in_progress: f.flag("master_sync_in_progress"),
            master_link_down_since_seconds: f.non_negative("master_link_down_since_seconds"),
            slave_repl_offset: f.non_negative("slave_repl_offset"),
        }
    }
}

/// `# CPU`, in seconds of CPU time since start.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Cpu {
    pub used_cpu_sys: Option<f64>,
    pub used_cpu_user: Option<f64>,
    pub used_cpu_sys_children: Option<f64>,
    pub used_cpu_user_children: Option<f64>,
}

impl Cpu {
    pub(crate) fn from_fields(f: &Fields<'_>) -> Cpu {
        Cpu {
            used_cpu_sys: f.float("used_cpu_sys"),
            used_cpu_user: f.float("used_cpu_user"),
            used_cpu_sys_children: f.float("used_cpu_sys_children"),
            used_cpu_user_children: f.float("used_cpu_user_children"),
        }
    }
}

/// One `dbN:keys=…,expires=…,avg_ttl=…` line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KeyspaceDb {
    pub db: u32,
    pub keys: u64,
    pub expires: u64,
    /// Milliseconds (an estimate; 0 when no key expires or on replicas).
    pub avg_ttl_ms: u64,
}

impl KeyspaceDb {
    pub(crate) fn from_section(section: &BTreeMap<String, String>) -> Vec<KeyspaceDb> {
        let mut dbs: Vec<KeyspaceDb> = section
            .iter()
            .filter_map(|(k, v)| {
                let db = k.strip_prefix("db")?.parse().ok()?;
                let pairs = parse_pairs(v);
                let num = |name: &str| pairs.get(name).and_then(|p| p.parse().ok());
                Some(KeyspaceDb {
                    db,
                    keys: num("keys")?,
                    expires: num("expires").unwrap_or(0),
                    avg_ttl_ms: num("avg_ttl").unwrap_or(0),
                })
            })
            .collect();
        dbs.sort_by_key(|d| d.db);
        dbs
    }
}

/// One `cmdstat_<name>:calls=…,usec=…,…` line (`<name>` may be `config|set`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CommandStat {
    pub command: String,
    pub calls: u64,
    pub usec: u64,
    pub usec_per_call: Option<f64>,
    /// Redis 7.0+: calls refused before running, and calls that failed while running.
    pub rejected_calls: Option<u64>,
    pub failed_calls: Option<u64>,
}

impl CommandStat {
    pub(crate) fn from_section(section: &BTreeMap<String, String>) -> Vec<CommandStat> {
        let mut stats: Vec<CommandStat> = section
            .iter()
            .filter_map(|(k, v)| {
                let command = k.strip_prefix("cmdstat_")?.to_string();
                let pairs = parse_pairs(v);
                Some(CommandStat {
                    command,
                    calls: pairs.get("calls")?.parse().ok()?,
                    usec: pairs.get("usec").and_then(|p| p.parse().ok()).unwrap_or(0),
                    usec_per_call: pairs
                        .get("usec_per_call")
                        .and_then(|p| p.parse().ok())
                        .filter(|v: &f64| v.is_finite()),
                    rejected_calls: pairs.get("rejected_calls").and_then(|p| p.parse().ok()),
                    failed_calls: pairs.get("failed_calls").and_then(|p| p.parse().ok()),
                })
            })
            .collect();
        // Busiest first: what a person scanning the list wants.
        stats.sort_by(|a, b| b.calls.cmp(&a.calls).then(a.command.cmp(&b.command)));
        stats
    }
}

/// One `errorstat_<PREFIX>:count=…` line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ErrorStat {
    pub error: String,
    pub count: u64,
}

impl ErrorStat {
    pub(crate) fn from_section(section: &BTreeMap<String, String>) -> Vec<ErrorStat> {
        let mut stats: Vec<ErrorStat> = section
            .iter()
            .filter_map(|(k, v)| {
                Some(ErrorStat {
                    error: k.strip_prefix("errorstat_")?.to_string(),
                    count: parse_pairs(v).get("count")?.parse().ok()?,
                })
            })
            .collect();
        stats.sort_by(|a, b| b.count.cmp(&a.count).then(a.error.cmp(&b.error)));
        stats
    }
}
