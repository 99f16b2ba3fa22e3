//! Sandbox events: append-only JSONL per environment, with the texts ElastiCache uses, so
//! runbooks read the same messages from the sandbox as from DescribeEvents.

use crate::controlplane::{CacheEvent, ControlPlaneError};
use std::io::Write;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// The events file of one environment.
pub fn events_file(dir: &Path, env: &str) -> PathBuf {
    dir.join("events").join(format!("{env}.jsonl"))
}

fn io_error(operation: &str, path: &Path, e: std::io::Error) -> ControlPlaneError {
    ControlPlaneError::Service {
        operation: operation.into(),
        detail: format!("{}: {e}", path.display()),
    }
}

/// Appends one event (a single `write` of one line, so concurrent writers do not interleave).
pub fn append(
    dir: &Path,
    env: &str,
    source: &str,
    source_type: &str,
    message: &str,
) -> Result<CacheEvent, ControlPlaneError> {
    let event = CacheEvent {
        time: OffsetDateTime::now_utc(),
        source: source.into(),
        source_type: source_type.into(),
        message: message.into(),
    };
    let path = events_file(dir, env);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io_error("record event", parent, e))?;
    }
    let mut line = serde_json::to_string(&event).map_err(|e| ControlPlaneError::Service {
        operation: "record event".into(),
        detail: e.to_string(),
    })?;
    line.push('\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| io_error("record event", &path, e))?;
    file.write_all(line.as_bytes())
        .map_err(|e| io_error("record event", &path, e))?;
    Ok(event)
}

#[derive(serde::Deserialize)]
struct Line {
    #[serde(with = "time::serde::rfc3339")]
    time: OffsetDateTime,
    source: String,
    source_type: String,
    message: String,
}

/// Every event of an environment, oldest first; unreadable lines are skipped.
pub fn read(dir: &Path, env: &str) -> Result<Vec<CacheEvent>, ControlPlaneError> {
    let path = events_file(dir, env);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("DescribeEvents", &path, e)),
    };
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<Line>(l).ok())
        .map(|l| CacheEvent {
            time: l.time,
            source: l.source,
            source_type: l.source_type,
            message: l.message,
        })
        .collect())
}

/// The message AWS writes when TestFailover is called for a node group.
pub fn test_failover_called(node_group: &str) -> String {
    format!("Test Failover API called for node group {node_group}")
}

/// How many node groups were test-failed-over in the 24 hours before `now`.
pub fn failovers_in_last_day(events: &[CacheEvent], now: OffsetDateTime) -> usize {
    let since = now - time::Duration::hours(24);
    events
        .iter()
        .filter(|e| {
            e.time > since
                && e.message
                    .starts_with("Test Failover API called for node group")
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_counts_only_the_last_24_hours_of_test_failovers() {
        let now = OffsetDateTime::now_utc();
        let event = |hours_ago: i64, message: String| CacheEvent {
            time: now - time::Duration::hours(hours_ago),
            source: "orders".into(),
            source_type: "replication-group".into(),
            message,
        };
        let events = vec![
            event(30, test_failover_called("0001")),
            event(23, test_failover_called("0001")),
            event(1, test_failover_called("0002")),
            event(1, "Finished recovery for cache nodes orders-001".into()),
        ];
        assert_eq!(failovers_in_last_day(&events, now), 2);
    }

    #[test]
    fn events_round_trip_through_the_file() {
        let dir = crate::valkey::server::unique_temp_dir("events-test");
        append(&dir, "sandbox-dev", "orders", "replication-group", "one").expect("append");
        append(&dir, "sandbox-dev", "orders-001", "cache-cluster", "two").expect("append");
        let found = read(&dir, "sandbox-dev").expect("read");
        assert_eq!(
            found.iter().map(|e| e.message.as_str()).collect::<Vec<_>>(),
            ["one", "two"]
        );
        assert!(read(&dir, "sandbox-prod").expect("read").is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }
}
