//! The INFO parser: every section of `INFO everything` into a raw map, plus typed views of
//! the fields cachedeck reads (server, clients, memory, persistence, stats, replication,
//! cpu, cluster, keyspace, commandstats, errorstats).
//!
//! INFO differs between Redis 7.0, Redis 7.1 on ElastiCache and Valkey 8.x (fields come and
//! go, ElastiCache hides some), so every typed field is optional, unknown fields are kept in
//! the raw map, and a line that does not parse is skipped rather than failing the sample.

mod sections;

pub use sections::{
    Clients, CommandStat, Cpu, ErrorStat, KeyspaceDb, Memory, Persistence, ReplicaLink,
    Replication, Role, Server, Stats,
};

use std::collections::BTreeMap;

/// One INFO reply, parsed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Info {
    /// Section name (lowercase, e.g. `persistence`) → field → value, exactly as sent.
    pub raw: BTreeMap<String, BTreeMap<String, String>>,
    pub server: Server,
    pub clients: Clients,
    pub memory: Memory,
    pub persistence: Persistence,
    pub stats: Stats,
    pub replication: Replication,
    pub cpu: Cpu,
    /// `cluster_enabled:1` in the Cluster section.
    pub cluster_enabled: Option<bool>,
    pub keyspace: Vec<KeyspaceDb>,
    pub commandstats: Vec<CommandStat>,
    pub errorstats: Vec<ErrorStat>,
}

impl Info {
    /// Parses the text of an INFO reply (CRLF or LF line ends; any sections).
    pub fn parse(text: &str) -> Info {
        let raw = parse_raw(text);
        let section = |name: &str| raw.get(name).cloned().unwrap_or_default();
        let fields = Fields(&raw);
        Info {
            server: Server::from_fields(&fields),
            clients: Clients::from_fields(&fields),
            memory: Memory::from_fields(&fields),
            persistence: Persistence::from_fields(&fields),
            stats: Stats::from_fields(&fields),
            replication: Replication::from_fields(&fields, &section("replication")),
            cpu: Cpu::from_fields(&fields),
            cluster_enabled: fields.num::<u8>("cluster_enabled").map(|v| v == 1),
            keyspace: KeyspaceDb::from_section(&section("keyspace")),
            commandstats: CommandStat::from_section(&section("commandstats")),
            errorstats: ErrorStat::from_section(&section("errorstats")),
            raw,
        }
    }

    /// The value of a field in whichever section holds it.
    pub fn get(&self, field: &str) -> Option<&str> {
        Fields(&self.raw).get(field)
    }

    /// Keys across every database.
    pub fn total_keys(&self) -> u64 {
        self.keyspace.iter().map(|db| db.keys).sum()
    }

    /// Keys with an expiry across every database.
    pub fn total_expires(&self) -> u64 {
        self.keyspace.iter().map(|db| db.expires).sum()
    }
}

/// Splits INFO text into sections and `field:value` pairs. Fields before any `# Section`
/// header (a reply to `INFO <one field section>` on some servers) land in section "".
fn parse_raw(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut raw: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(header) = line.strip_prefix('#') {
            current = header.trim().to_ascii_lowercase();
            raw.entry(current.clone()).or_default();
            continue;
        }
        // Values may themselves contain ':' (e.g. `executable:/x`, IPv6 in `master_host`):
        // only the first one separates.
        if let Some((field, value)) = line.split_once(':')
            && !field.is_empty()
        {
            raw.entry(current.clone())
                .or_default()
                .insert(field.to_string(), value.to_string());
        }
    }
    raw
}

/// Field lookup across sections, with typed accessors.
pub(crate) struct Fields<'a>(&'a BTreeMap<String, BTreeMap<String, String>>);

impl<'a> Fields<'a> {
    pub(crate) fn get(&self, field: &str) -> Option<&'a str> {
        self.0
            .values()
            .find_map(|s| s.get(field))
            .map(String::as_str)
    }

    pub(crate) fn string(&self, field: &str) -> Option<String> {
        self.get(field).map(str::to_string)
    }

    pub(crate) fn num<T: std::str::FromStr>(&self, field: &str) -> Option<T> {
        self.get(field).and_then(|v| v.trim().parse().ok())
    }

    /// `-1` means "never" or "not applicable" in many INFO fields.
    pub(crate) fn non_negative(&self, field: &str) -> Option<u64> {
        self.num::<i64>(field).and_then(|v| u64::try_from(v).ok())
    }

    pub(crate) fn flag(&self, field: &str) -> Option<bool> {
        self.num::<u8>(field).map(|v| v != 0)
    }

    /// Ratios such as `mem_fragmentation_ratio:1.02`; non-finite values are dropped.
    pub(crate) fn float(&self, field: &str) -> Option<f64> {
        self.num::<f64>(field).filter(|v| v.is_finite())
    }
}

/// Splits `a=1,b=2` (keyspace, slaveN, cmdstat_*, errorstat_*) into pairs.
pub(crate) fn parse_pairs(value: &str) -> BTreeMap<&str, &str> {
    value
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .collect()
}

#[cfg(test)]
mod tests;
