//! The INFO parser: every section of an INFO reply (default or `everything`) into a raw map, plus typed views of
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
        let empty = BTreeMap::new();
        let section = |name: &str| raw.get(name).unwrap_or(&empty);
        // Each view looks in its own section first, then anywhere (fields have moved between
        // sections across versions).
        let fields = |name: &'static str| Fields(&raw, name);
        let mut info = Info {
            raw: BTreeMap::new(),
            server: Server::from_fields(&fields("server")),
            clients: Clients::from_fields(&fields("clients")),
            memory: Memory::from_fields(&fields("memory")),
            persistence: Persistence::from_fields(&fields("persistence")),
            stats: Stats::from_fields(&fields("stats")),
            replication: Replication::from_fields(&fields("replication"), section("replication")),
            cpu: Cpu::from_fields(&fields("cpu")),
            cluster_enabled: fields("cluster")
                .num::<u8>("cluster_enabled")
                .map(|v| v == 1),
            keyspace: KeyspaceDb::from_section(section("keyspace")),
            commandstats: CommandStat::from_section(section("commandstats")),
            errorstats: ErrorStat::from_section(section("errorstats")),
        };
        info.raw = raw;
        info
    }

    /// The value of a field in whichever section holds it.
    pub fn get(&self, field: &str) -> Option<&str> {
        Fields(&self.raw, "").get(field)
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
    let mut name = String::new();
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    // A repeated header (never seen, but harmless) merges into the earlier section.
    let mut flush = |name: String, fields: BTreeMap<String, String>| {
        raw.entry(name).or_default().extend(fields);
    };
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(header) = line.strip_prefix('#') {
            let next = header.trim().to_ascii_lowercase();
            let done = std::mem::replace(&mut name, next);
            if !(done.is_empty() && fields.is_empty()) {
                flush(done, std::mem::take(&mut fields));
            }
            continue;
        }
        // Values may themselves contain ':' (e.g. `executable:/x`, IPv6 in `master_host`):
        // only the first one separates.
        if let Some((field, value)) = line.split_once(':')
            && !field.is_empty()
        {
            fields.insert(field.to_string(), value.to_string());
        }
    }
    if !(name.is_empty() && fields.is_empty()) {
        flush(name, fields);
    }
    raw
}

/// Field lookup in a preferred section, then across all, with typed accessors.
pub(crate) struct Fields<'a>(&'a BTreeMap<String, BTreeMap<String, String>>, &'a str);

impl<'a> Fields<'a> {
    pub(crate) fn get(&self, field: &str) -> Option<&'a str> {
        self.0
            .get(self.1)
            .and_then(|s| s.get(field))
            .or_else(|| self.0.values().find_map(|s| s.get(field)))
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
