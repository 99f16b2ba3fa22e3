//! `cachedeck snapshots --env E [--cache C]`: the environment's snapshots (node and
//! serverless), with name, status, source (manual/automated), created, size where AWS says
//! it, and shard count. Names come from AWS and are escaped.

use super::Format;
use super::{Table, exit};
use crate::controlplane::{Snapshot, SnapshotQuery};
use crate::escape::escape_capped;
use crate::estate::Estate;
use std::process::ExitCode;

pub async fn run(
    estate: &Estate,
    env: &str,
    cache: Option<&str>,
    output: Format,
) -> anyhow::Result<ExitCode> {
    let plane = match estate.plane(env) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(exit::BAD_INPUT));
        }
    };
    let mut all: Vec<Snapshot> = Vec::new();
    let mut failed = false;
    for serverless in [false, true] {
        let query = SnapshotQuery {
            cache: cache.map(str::to_string),
            name: None,
            serverless,
        };
        match plane.describe_snapshots(query).await {
            Ok(found) => all.extend(found),
            Err(e) => {
                eprintln!(
                    "error: {env}: {} snapshots: {e}",
                    if serverless { "serverless" } else { "node" }
                );
                failed = true;
            }
        }
    }
    all.sort_by_key(|s| std::cmp::Reverse(s.created));
    match output {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "snapshots": all }))?
        ),
        _ => print!("{}", table(&all).render()),
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn size(bytes: Option<u64>) -> String {
    match bytes {
        None => "-".into(),
        Some(b) if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        Some(b) if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        Some(b) if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        Some(b) => format!("{b} B"),
    }
}

fn table(snapshots: &[Snapshot]) -> Table {
    let mut table = Table::new([
        "NAME", "CACHE", "STATUS", "SOURCE", "CREATED", "SIZE", "SHARDS",
    ]);
    for s in snapshots {
        table.row([
            escape_capped(&s.name, 80),
            escape_capped(s.cache.as_deref().unwrap_or("-"), 60),
            escape_capped(&s.status, 20),
            escape_capped(&s.source, 12),
            s.created
                .and_then(|c| {
                    c.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_else(|| "-".into()),
            size(s.size_bytes),
            s.shard_count.map(|n| n.to_string()).unwrap_or_else(|| {
                if s.serverless {
                    "serverless".into()
                } else {
                    "-".into()
                }
            }),
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(size(None), "-");
        assert_eq!(size(Some(512)), "512 B");
        assert_eq!(size(Some(3 * 1024 * 1024)), "3.0 MiB");
    }
}
