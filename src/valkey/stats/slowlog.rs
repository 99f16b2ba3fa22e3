//! SLOWLOG GET: the slowest recent commands of a node. Arguments are untrusted bytes (key
//! names, values) and are kept raw; [`SlowlogEntry::command_line`] escapes them for display.

use crate::escape::escape_capped;
use crate::valkey::caps::{SLOWLOG_MAX_ARG_BYTES, SLOWLOG_MAX_ARGS, SLOWLOG_MAX_ENTRIES};
use crate::valkey::connect::{ConnectError, Layer, NodeConnection};
use redis::Value;
use serde::Serialize;

/// One slow command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlowlogEntry {
    pub id: u64,
    /// Unix seconds when it ran.
    pub timestamp: i64,
    pub duration_micros: u64,
    /// The command and its arguments as the server logged them (it truncates long ones).
    #[serde(skip)]
    pub args: Vec<Vec<u8>>,
    pub client_addr: Option<String>,
    pub client_name: Option<String>,
    /// Arguments (or bytes of them) left out by cachedeck's caps
    /// ([`SLOWLOG_MAX_ARGS`], [`SLOWLOG_MAX_ARG_BYTES`]).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub capped: bool,
}

impl SlowlogEntry {
    /// The command line, escaped, each argument capped at `max_arg` characters.
    pub fn command_line(&self, max_arg: usize) -> String {
        let mut line = self
            .args
            .iter()
            .map(|a| escape_capped(a, max_arg))
            .collect::<Vec<_>>()
            .join(" ");
        if self.capped {
            line.push_str(" …(capped by cachedeck)");
        }
        line
    }

    fn from_value(v: &Value) -> Option<SlowlogEntry> {
        let Value::Array(fields) = v else {
            return None;
        };
        let int = |i: usize| match fields.get(i) {
            Some(Value::Int(n)) => Some(*n),
            _ => None,
        };
        let text = |i: usize| match fields.get(i) {
            Some(Value::BulkString(b)) => Some(escape_capped(b, 200)),
            Some(Value::SimpleString(s)) => Some(escape_capped(s, 200)),
            _ => None,
        };
        let mut capped = false;
        let args = match fields.get(3) {
            Some(Value::Array(args)) => {
                capped |= args.len() > SLOWLOG_MAX_ARGS;
                args.iter()
                    .take(SLOWLOG_MAX_ARGS)
                    .map(|a| {
                        let mut b = match a {
                            Value::BulkString(b) => b.clone(),
                            Value::SimpleString(s) => s.clone().into_bytes(),
                            Value::Int(n) => n.to_string().into_bytes(),
                            _ => Vec::new(),
                        };
                        if b.len() > SLOWLOG_MAX_ARG_BYTES {
                            b.truncate(SLOWLOG_MAX_ARG_BYTES);
                            capped = true;
                        }
                        b
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        Some(SlowlogEntry {
            id: u64::try_from(int(0)?).ok()?,
            timestamp: int(1)?,
            duration_micros: u64::try_from(int(2)?).unwrap_or(0),
            args,
            client_addr: text(4).filter(|s| !s.is_empty()),
            client_name: text(5).filter(|s| !s.is_empty()),
            capped,
        })
    }
}

/// The node's last `count` slow commands (at most [`SLOWLOG_MAX_ENTRIES`]), newest first.
pub async fn fetch_slowlog(
    conn: &mut NodeConnection,
    count: usize,
) -> Result<Vec<SlowlogEntry>, ConnectError> {
    let count = count.min(SLOWLOG_MAX_ENTRIES);
    let value: Value = conn
        .query(redis::cmd("SLOWLOG").arg("GET").arg(count))
        .await?;
    parse_slowlog_capped(&value, count).ok_or_else(|| {
        ConnectError::new(
            Layer::Protocol,
            conn.endpoint().address(),
            "SLOWLOG GET did not return a list",
            None,
        )
    })
}

/// Parses a SLOWLOG GET reply, malformed entries skipped, at most `max` kept: a server that
/// sends more than it was asked for is cut off (with a log line saying so).
fn parse_slowlog_capped(value: &Value, max: usize) -> Option<Vec<SlowlogEntry>> {
    match value {
        Value::Array(items) => {
            if items.len() > max {
                tracing::warn!(
                    sent = items.len(),
                    kept = max,
                    "SLOWLOG GET returned more entries than asked for; cachedeck kept the first"
                );
            }
            Some(
                items
                    .iter()
                    .take(max)
                    .filter_map(SlowlogEntry::from_value)
                    .collect(),
            )
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(b: &[u8]) -> Value {
        Value::BulkString(b.to_vec())
    }

    #[test]
    fn parses_entries_and_escapes_hostile_arguments() {
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(7),
                Value::Int(1_700_000_000),
                Value::Int(15_000),
                Value::Array(vec![bulk(b"GET"), bulk(b"user:\x1b[2J\xff")]),
                bulk(b"10.0.0.9:51234"),
                bulk(b""),
            ]),
            Value::Int(3), // malformed: skipped
            Value::Array(vec![
                Value::Int(6),
                Value::Int(1),
                Value::Int(2),
                Value::Array(vec![]),
            ]),
        ]);
        let entries = parse_slowlog_capped(&reply, SLOWLOG_MAX_ENTRIES).expect("a list");
        assert_eq!(entries.len(), 2);
        let e = &entries[0];
        assert_eq!(e.id, 7);
        assert_eq!(e.duration_micros, 15_000);
        assert_eq!(e.command_line(64), "GET user:\\x1b[2J\\xff");
        assert_eq!(e.client_addr.as_deref(), Some("10.0.0.9:51234"));
        assert_eq!(e.client_name, None);
        assert_eq!(entries[1].client_addr, None);
        assert_eq!(parse_slowlog_capped(&Value::Nil, 10), None);
    }

    #[test]
    fn hostile_replies_are_capped_and_say_so() {
        let entry = |args: Vec<Value>| {
            Value::Array(vec![
                Value::Int(1),
                Value::Int(1),
                Value::Int(1),
                Value::Array(args),
            ])
        };
        let many_args = entry((0..1000).map(|_| bulk(b"x")).collect());
        let huge_arg = entry(vec![bulk(b"SET"), bulk(&vec![b'v'; 1 << 20])]);
        let reply = Value::Array(
            std::iter::once(many_args)
                .chain(std::iter::once(huge_arg))
                .chain((0..500).map(|_| entry(vec![bulk(b"GET")])))
                .collect(),
        );
        let entries = parse_slowlog_capped(&reply, SLOWLOG_MAX_ENTRIES).expect("a list");
        assert_eq!(entries.len(), SLOWLOG_MAX_ENTRIES);
        assert_eq!(entries[0].args.len(), SLOWLOG_MAX_ARGS);
        assert!(entries[0].capped);
        assert_eq!(entries[1].args[1].len(), SLOWLOG_MAX_ARG_BYTES);
        assert!(
            entries[1]
                .command_line(64)
                .ends_with("…(capped by cachedeck)")
        );
        assert!(!entries[2].capped);
        assert_eq!(entries[2].command_line(64), "GET");
    }
}
