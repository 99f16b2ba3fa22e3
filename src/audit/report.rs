//! The audit's result: totals against DBSIZE, per-pattern statistics, the biggest keys,
//! findings ranked by impact, and its JSON, CSV and Markdown renderings.

use super::aggregate::{Aggregate, BigKey, OVERFLOW, PatternStats};
use super::family::Expectation;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt::Write;

/// How one shard's scan went.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardSummary {
    pub node: String,
    pub replica: bool,
    pub keys: u64,
    pub dbsize_start: u64,
    pub dbsize: u64,
    pub restarts: u32,
    pub complete: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incomplete_reason: Option<String>,
    pub dedup: Cow<'static, str>,
    pub duplicates_skipped: u64,
    pub worst_probe_p99_ms: f64,
}

/// One ranked observation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finding {
    /// Share of memory (when sampled) or of keys this finding is about, 0–100.
    pub impact_pct: f64,
    pub pattern: String,
    pub message: String,
}

/// The whole audit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditReport {
    pub total_keys: u64,
    pub keys_without_ttl: u64,
    /// DBSIZE summed over the scanned nodes, at the start and at the end of the scan.
    pub dbsize_start: u64,
    pub dbsize_end: u64,
    pub complete: bool,
    pub incomplete_reasons: Vec<String>,
    /// `exact` when every node's keys were deduplicated, else `detect`.
    pub dedup: Cow<'static, str>,
    pub duplicates_possible: bool,
    pub duration_ms: u64,
    pub memory_sampled: bool,
    pub memory_bytes: Option<u64>,
    pub overflow_keys: u64,
    pub patterns: Vec<PatternStats>,
    pub top_keys: Vec<BigKey>,
    pub findings: Vec<Finding>,
    pub shards: Vec<ShardSummary>,
}

impl AuditReport {
    /// Builds the report from the merged aggregate and the per-shard summaries.
    pub fn build(
        agg: &Aggregate,
        shards: Vec<ShardSummary>,
        mut incomplete_reasons: Vec<String>,
        duplicates_possible: bool,
        memory_sampled: bool,
        duration_ms: u64,
    ) -> AuditReport {
        let patterns = agg.sorted_patterns();
        let memory_bytes =
            memory_sampled.then(|| patterns.iter().filter_map(|p| p.memory_bytes).sum::<u64>());
        for s in &shards {
            if let Some(r) = &s.incomplete_reason {
                incomplete_reasons.push(format!("{}: {r}", s.node));
            }
        }
        let complete = incomplete_reasons.is_empty() && shards.iter().all(|s| s.complete);
        let mut report = AuditReport {
            total_keys: agg.keys,
            keys_without_ttl: agg.no_ttl,
            dbsize_start: shards.iter().map(|s| s.dbsize_start).sum(),
            dbsize_end: shards.iter().map(|s| s.dbsize).sum(),
            complete,
            incomplete_reasons,
            dedup: if shards.iter().all(|s| s.dedup == "exact") {
                "exact".into()
            } else {
                "detect".into()
            },
            duplicates_possible,
            duration_ms,
            memory_sampled,
            memory_bytes,
            overflow_keys: agg.overflowed_keys,
            patterns,
            top_keys: agg.top_keys(),
            findings: Vec::new(),
            shards,
        };
        report.findings = findings(&report);
        report
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// One row per pattern.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "pattern,db,family,keys,no_ttl,memory_bytes,ttl_lt_1m,ttl_lt_1h,ttl_lt_1d,ttl_lt_7d,ttl_lt_30d,ttl_ge_30d,ttl_none,types\n",
        );
        for p in &self.patterns {
            let types: Vec<String> = p.types.iter().map(|(t, n)| format!("{t}={n}")).collect();
            let h = p.ttl_histogram;
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                csv_field(&p.pattern),
                p.db,
                csv_field(p.family.as_deref().unwrap_or("")),
                p.keys,
                p.no_ttl,
                p.memory_bytes.map(|m| m.to_string()).unwrap_or_default(),
                h.lt_1m,
                h.lt_1h,
                h.lt_1d,
                h.lt_7d,
                h.lt_30d,
                h.ge_30d,
                h.none,
                csv_field(&types.join(" ")),
            );
        }
        out
    }

    pub fn to_markdown(&self) -> String {
        let mut out = String::from("# TTL audit\n\n");
        let _ = writeln!(
            out,
            "{} keys scanned (DBSIZE {}), {} without TTL ({:.1} %), {} patterns, {} ms{}.\n",
            self.total_keys,
            self.dbsize_end,
            self.keys_without_ttl,
            pct(self.keys_without_ttl, self.total_keys),
            self.patterns.len(),
            self.duration_ms,
            if self.complete { "" } else { " — INCOMPLETE" }
        );
        for r in &self.incomplete_reasons {
            let _ = writeln!(out, "- incomplete: {}", md_cell(r));
        }
        if !self.findings.is_empty() {
            out.push_str("## Findings\n\n");
            for f in &self.findings {
                let _ = writeln!(out, "- {}", md_cell(&f.message));
            }
            out.push('\n');
        }
        // A database column only when the keys live in more than database 0.
        let dbs = self.patterns.iter().any(|p| p.db != 0);
        out.push_str(if dbs {
            "## Patterns\n\n| pattern | db | family | keys | no TTL | memory | <1m | <1h | <1d | <7d | <30d | >=30d | none |\n|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        } else {
            "## Patterns\n\n| pattern | family | keys | no TTL | memory | <1m | <1h | <1d | <7d | <30d | >=30d | none |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        });
        for p in &self.patterns {
            let h = p.ttl_histogram.buckets();
            let db = if dbs {
                format!(" {} |", p.db)
            } else {
                String::new()
            };
            let _ = write!(
                out,
                "| `{}` |{db} {} | {} | {} | {} ",
                md_cell(&p.pattern),
                p.family.as_deref().unwrap_or(""),
                p.keys,
                p.no_ttl,
                p.memory_bytes.map(|m| m.to_string()).unwrap_or_default()
            );
            for (_, n) in h {
                let _ = write!(out, "| {n} ");
            }
            out.push_str("|\n");
        }
        if !self.top_keys.is_empty() {
            out.push_str(
                "\n## Biggest keys\n\n| key | bytes | type | TTL ms |\n|---|---:|---|---:|\n",
            );
            for k in &self.top_keys {
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | {} |",
                    md_cell(&k.key),
                    k.memory_bytes,
                    md_cell(&k.kind),
                    k.ttl_ms
                );
            }
        }
        out
    }
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

fn csv_field(s: &str) -> String {
    // A leading = + - @ would be a formula in a spreadsheet: quote it with a tick.
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('`', "'")
}

/// Findings, biggest impact first.
fn findings(r: &AuditReport) -> Vec<Finding> {
    let mut out = Vec::new();
    let total_mem = r.memory_bytes.unwrap_or(0);
    for p in &r.patterns {
        if p.no_ttl == 0 || p.expectation == Some(Expectation::NoTtlNormal) {
            continue;
        }
        let why = match (p.expectation, &p.family) {
            (Some(Expectation::TtlExpected), Some(f)) => {
                format!("; {f} keys are expected to expire, so this is a leak")
            }
            _ => String::new(),
        };
        let name = if p.db == 0 {
            format!("`{}`", p.pattern)
        } else {
            format!("`{}` (db {})", p.pattern, p.db)
        };
        let (impact, message) = match p.no_ttl_memory_bytes {
            Some(m) if total_mem > 0 => {
                let share = pct(m, total_mem);
                (
                    share,
                    format!(
                        "{share:.0} % of memory ({m} bytes) is in {name} keys without TTL ({} keys){why}",
                        p.no_ttl
                    ),
                )
            }
            _ => {
                let share = pct(p.no_ttl, r.total_keys);
                (
                    share,
                    format!(
                        "{share:.0} % of keys ({}) are {name} keys without TTL{why}",
                        p.no_ttl
                    ),
                )
            }
        };
        // A known leak ranks above an unknown pattern of the same size.
        let boost = if p.expectation == Some(Expectation::TtlExpected) {
            1.5
        } else {
            1.0
        };
        out.push((
            impact * boost,
            Finding {
                impact_pct: (impact * 10.0).round() / 10.0,
                pattern: p.pattern.clone(),
                message,
            },
        ));
    }
    out.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut out: Vec<Finding> = out.into_iter().map(|(_, f)| f).take(20).collect();
    if r.overflow_keys > 0 {
        out.push(Finding {
            impact_pct: pct(r.overflow_keys, r.total_keys),
            pattern: OVERFLOW.into(),
            message: format!(
                "{} keys did not fit the pattern limit and are counted under `{OVERFLOW}`; raise max-patterns or add user patterns",
                r.overflow_keys
            ),
        });
    }
    if r.duplicates_possible {
        out.push(Finding {
            impact_pct: 0.0,
            pattern: String::new(),
            message: "the keyspace shrank during the scan while dedup was off (too many keys): SCAN may have returned some keys twice, so counts may be slightly high".into(),
        });
    }
    out
}
