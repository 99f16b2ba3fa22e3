//! Alerts: the conditions in a node's figures an on-call engineer should not have to spot
//! by reading numbers (failed saves, a full or evicting node, a broken replication link,
//! a replica far behind). The caches list shows them; `cachedeck stats` can too.

use super::NodeStats;
use crate::escape::escape_capped;
use crate::valkey::info::Role;
use serde::Serialize;

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Warning,
    Critical,
}

/// One condition worth a look, in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    pub severity: Severity,
    pub message: String,
}

/// Memory fill from which a node is close to evicting or refusing writes.
const FILL_WARNING: f64 = 0.85;
const FILL_CRITICAL: f64 = 0.95;
/// A replica this many bytes behind its primary is worth a look.
const LAG_WARNING_BYTES: u64 = 10 * 1024 * 1024;
/// Fragmentation only matters once there is real memory to waste.
const FRAGMENTATION_WARNING: f64 = 1.5;
const FRAGMENTATION_MIN_BYTES: u64 = 100 * 1024 * 1024;

impl NodeStats {
    /// The alerts these figures raise, most urgent first.
    pub fn alerts(&self) -> Vec<Alert> {
        let mut alerts = Vec::new();
        let mut raise = |severity, message: String| alerts.push(Alert { severity, message });
        if self.rdb_last_bgsave_status.as_deref() == Some("err") {
            raise(
                Severity::Critical,
                "last RDB background save failed (disk full or fork failed?)".into(),
            );
        }
        if self.aof_last_write_status.as_deref() == Some("err") {
            raise(Severity::Critical, "last AOF write failed".into());
        }
        if let Some(fill) = self.memory_fill() {
            let policy = self.maxmemory_policy.as_deref().unwrap_or("unknown policy");
            let pct = fill * 100.0;
            if fill >= FILL_CRITICAL {
                raise(
                    Severity::Critical,
                    format!("memory {pct:.0}% of maxmemory ({policy})"),
                );
            } else if fill >= FILL_WARNING {
                raise(
                    Severity::Warning,
                    format!("memory {pct:.0}% of maxmemory ({policy})"),
                );
            }
        }
        if let Some(rate) = self.evicted_per_sec.filter(|r| *r > 0.0) {
            raise(Severity::Warning, format!("evicting {rate:.0} keys/s"));
        }
        if self.role == Role::Replica && self.master_link_status.as_deref() == Some("down") {
            let since = self
                .master_link_down_seconds
                .map_or(String::new(), |s| format!(" for {s}s"));
            raise(
                Severity::Critical,
                format!("replication link to the primary is down{since}"),
            );
        }
        for r in &self.replicas {
            if r.lag_bytes.is_some_and(|lag| lag >= LAG_WARNING_BYTES) {
                let mib = r.lag_bytes.unwrap_or(0) as f64 / (1024.0 * 1024.0);
                raise(
                    Severity::Warning,
                    format!(
                        "replica {} is {mib:.0} MiB behind",
                        escape_capped(&r.address, 80)
                    ),
                );
            }
            if r.state.as_deref().is_some_and(|s| s != "online") {
                let state = escape_capped(r.state.as_deref().unwrap_or_default(), 40);
                raise(
                    Severity::Warning,
                    format!("replica {} is {state}", escape_capped(&r.address, 80)),
                );
            }
        }
        if self
            .mem_fragmentation_ratio
            .is_some_and(|f| f > FRAGMENTATION_WARNING)
            && self
                .used_memory
                .is_some_and(|u| u >= FRAGMENTATION_MIN_BYTES)
        {
            let ratio = self.mem_fragmentation_ratio.unwrap_or_default();
            raise(
                Severity::Warning,
                format!("memory fragmentation {ratio:.2}"),
            );
        }
        if self.loading == Some(true) {
            raise(Severity::Warning, "loading its dataset".into());
        }
        alerts.sort_by_key(|a| std::cmp::Reverse(a.severity));
        alerts
    }
}
