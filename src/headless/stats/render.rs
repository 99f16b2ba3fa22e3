//! The rows of `cachedeck stats`: one per node, as JSON for scripts or an aligned table for
//! people. Node ids and error texts come from servers and control planes and are escaped.

use crate::domain::{Cache, Node};
use crate::escape::escape_capped;
use crate::headless::Table;
use crate::valkey::stats::{Alert, NodeKey, NodeStatus, Severity, StatsBook};
use serde::Serialize;
use time::OffsetDateTime;

pub(super) struct Context<'a> {
    pub cache: &'a Cache,
    pub nodes: &'a [Node],
    pub book: &'a StatsBook,
}

/// The JSON shape of one node (the public interface of `--output json`).
#[derive(Debug, Serialize)]
pub(super) struct Row {
    id: String,
    address: String,
    role: String,
    up: bool,
    state: &'static str,
    error: Option<String>,
    ops_per_sec: Option<f64>,
    hit_rate: Option<f64>,
    used_memory: Option<u64>,
    maxmemory: Option<u64>,
    mem_fragmentation_ratio: Option<f64>,
    connected_clients: Option<u64>,
    blocked_clients: Option<u64>,
    evicted_keys: Option<u64>,
    expired_keys: Option<u64>,
    evicted_per_sec: Option<f64>,
    expired_per_sec: Option<f64>,
    repl_offset: Option<u64>,
    repl_lag_bytes: Option<u64>,
    master_link_status: Option<String>,
    net_in_bytes_per_sec: Option<f64>,
    net_out_bytes_per_sec: Option<f64>,
    cpu_percent: Option<f64>,
    rdb_last_bgsave_status: Option<String>,
    rdb_last_save_time: Option<u64>,
    rdb_changes_since_last_save: Option<u64>,
    aof_enabled: Option<bool>,
    keys: Option<u64>,
    engine: Option<String>,
    version: Option<String>,
    /// Conditions worth a look (failed save, memory nearly full, evictions, lag…).
    alerts: Vec<Alert>,
}

#[derive(Serialize)]
struct Report<'a> {
    cache: &'a str,
    env: &'a str,
    #[serde(with = "time::serde::rfc3339")]
    time: OffsetDateTime,
    nodes: Vec<Row>,
}

pub(super) fn rows(ctx: &Context<'_>) -> Vec<Row> {
    ctx.nodes
        .iter()
        .map(|node| {
            let key = NodeKey {
                env: ctx.cache.env.clone(),
                cache: ctx.cache.name.clone(),
                node: node.id.clone(),
            };
            let entry = ctx.book.get(&key);
            let status = entry.map_or(&NodeStatus::Pending, |e| &e.status);
            // Figures are reported only while they are current; a stale node shows its reason.
            let s = entry
                .filter(|e| e.status.is_up())
                .and_then(|e| e.latest.as_ref());
            Row {
                id: escape_capped(&node.id, 120),
                address: escape_capped(format!("{}:{}", node.host, node.port), 200),
                role: s
                    .map_or(node.role.as_str(), |s| s.role.as_str())
                    .to_string(),
                up: status.is_up(),
                state: status.label(),
                error: match status {
                    NodeStatus::Pending => Some("no answer yet".into()),
                    other => other.reason().map(str::to_string),
                },
                ops_per_sec: s.and_then(|s| s.ops_per_sec).map(round1),
                hit_rate: s.and_then(|s| s.hit_rate).map(round4),
                used_memory: s.and_then(|s| s.used_memory),
                maxmemory: s.and_then(|s| s.maxmemory),
                mem_fragmentation_ratio: s.and_then(|s| s.mem_fragmentation_ratio),
                connected_clients: s.and_then(|s| s.connected_clients),
                blocked_clients: s.and_then(|s| s.blocked_clients),
                evicted_keys: s.and_then(|s| s.evicted_keys),
                expired_keys: s.and_then(|s| s.expired_keys),
                evicted_per_sec: s.and_then(|s| s.evicted_per_sec).map(round1),
                expired_per_sec: s.and_then(|s| s.expired_per_sec).map(round1),
                repl_offset: s.and_then(|s| s.repl_offset),
                repl_lag_bytes: s.and_then(|_| ctx.book.repl_lag_bytes(&key)),
                master_link_status: s.and_then(|s| s.master_link_status.clone()),
                net_in_bytes_per_sec: s.and_then(|s| s.net_in_bytes_per_sec).map(round1),
                net_out_bytes_per_sec: s.and_then(|s| s.net_out_bytes_per_sec).map(round1),
                cpu_percent: s.and_then(|s| s.cpu_percent).map(round1),
                rdb_last_bgsave_status: s.and_then(|s| s.rdb_last_bgsave_status.clone()),
                rdb_last_save_time: s.and_then(|s| s.rdb_last_save_time),
                rdb_changes_since_last_save: s.and_then(|s| s.rdb_changes_since_last_save),
                aof_enabled: s.and_then(|s| s.aof_enabled),
                keys: s.map(|s| s.keys),
                engine: s.map(|s| escape_capped(&s.engine, 40)),
                version: s
                    .and_then(|s| s.version.as_deref())
                    .map(|v| escape_capped(v, 40)),
                alerts: s.map(|s| s.alerts()).unwrap_or_default(),
            }
        })
        .collect()
}

fn report<'a>(ctx: &'a Context<'_>) -> Report<'a> {
    Report {
        cache: &ctx.cache.name,
        env: &ctx.cache.env,
        time: OffsetDateTime::now_utc(),
        nodes: rows(ctx),
    }
}

pub(super) fn json_pretty(ctx: &Context<'_>) -> String {
    serde_json::to_string_pretty(&report(ctx))
        .map_or_else(|e| format!("{{\"error\":\"{e}\"}}\n"), |s| s + "\n")
}

pub(super) fn json_line(ctx: &Context<'_>) -> String {
    serde_json::to_string(&report(ctx))
        .map_or_else(|e| format!("{{\"error\":\"{e}\"}}\n"), |s| s + "\n")
}

pub(super) fn table(ctx: &Context<'_>, watch: bool) -> String {
    let rows = rows(ctx);
    let mut t = Table::new([
        "NODE", "ROLE", "STATE", "OPS/S", "HIT%", "USED", "MAX", "FRAG", "CLIENTS", "BLOCKED",
        "EVICT/S", "EXPIRE/S", "LAG", "IN/S", "OUT/S", "BGSAVE", "KEYS",
    ]);
    for r in &rows {
        // `id` is escaped already (the JSON carries it escaped too).
        t.row_escaped([
            r.id.clone(),
            r.role.clone(),
            r.state.to_string(),
            opt(r.ops_per_sec.map(|v| format!("{v:.0}"))),
            opt(r.hit_rate.map(|v| format!("{:.1}", v * 100.0))),
            opt(r.used_memory.map(bytes)),
            opt(r
                .maxmemory
                .map(|m| if m == 0 { "none".into() } else { bytes(m) })),
            opt(r.mem_fragmentation_ratio.map(|v| format!("{v:.2}"))),
            opt(r.connected_clients.map(|v| v.to_string())),
            opt(r.blocked_clients.map(|v| v.to_string())),
            opt(r.evicted_per_sec.map(|v| format!("{v:.0}"))),
            opt(r.expired_per_sec.map(|v| format!("{v:.0}"))),
            opt(r.repl_lag_bytes.map(bytes)),
            opt(r.net_in_bytes_per_sec.map(|v| bytes(v as u64))),
            opt(r.net_out_bytes_per_sec.map(|v| bytes(v as u64))),
            opt(r.rdb_last_bgsave_status.clone()),
            opt(r.keys.map(|v| v.to_string())),
        ]);
    }
    let mut out = String::new();
    if watch {
        let now = OffsetDateTime::now_utc();
        out.push_str(&format!(
            "{} {} {:02}:{:02}:{:02}Z\n",
            ctx.cache.env,
            ctx.cache.name,
            now.hour(),
            now.minute(),
            now.second()
        ));
    }
    out.push_str(&t.render());
    for r in &rows {
        if let (false, Some(e)) = (r.up, &r.error) {
            out.push_str(&format!("{} {}: {e}\n", r.id, r.state));
        }
        for a in &r.alerts {
            let level = match a.severity {
                Severity::Critical => "CRITICAL",
                Severity::Warning => "warning",
            };
            out.push_str(&format!("{} {level}: {}\n", r.id, a.message));
        }
    }
    if watch {
        out.push('\n');
    }
    out
}

fn opt(v: Option<String>) -> String {
    v.unwrap_or_else(|| "-".into())
}

/// 1536 → "1.5K": binary units as INFO's `_human` fields use.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "K", "M", "G", "T", "P"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n}B")
    } else {
        format!("{v:.1}{}", UNITS[unit])
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn round4(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_use_binary_units() {
        assert_eq!(bytes(512), "512B");
        assert_eq!(bytes(1536), "1.5K");
        assert_eq!(bytes(64 * 1024 * 1024), "64.0M");
    }
}
