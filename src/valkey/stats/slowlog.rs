//! SLOWLOG GET: the slowest recent commands of a node. Arguments are untrusted bytes (key
//! names, values) and are kept raw; [`SlowlogEntry::command_line`] escapes them for display.

use crate::escape::escape_capped;
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
}

impl SlowlogEntry {
    /// The command line, escaped, each argument capped at `max_arg` characters.
    pub fn command_line(&self, max_arg: usize) -> String {
        self.args
            .iter()
            .map(|a| escape_capped(a, max_arg))
            .collect::<Vec<_>>()
            .join(" ")
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
        let args = match fields.get(3) {
            Some(Value::Array(args)) => args
                .iter()
                .map(|a| match a {
                    Value::BulkString(b) => b.clone(),
                    Value::SimpleString(s) => s.clone().into_bytes(),
                    Value::Int(n) => n.to_string().into_bytes(),
                    _ => Vec::new(),
                })
                .collect(),
            _ => Vec::new(),
        };
        Some(SlowlogEntry {
            id: u64::try_from(int(0)?).ok()?,
            timestamp: int(1)?,
            duration_micros: u64::try_from(int(2)?).unwrap_or(0),
            args,
            client_addr: text(4).filter(|s| !s.is_empty()),
            client_name: text(5).filter(|s| !s.is_empty()),
        })
    }
}

/// The node's last `count` slow commands, newest first.
pub async fn fetch_slowlog(
    conn: &mut NodeConnection,
    count: usize,
) -> Result<Vec<SlowlogEntry>, ConnectError> {
    let value: Value = conn
        .query(redis::cmd("SLOWLOG").arg("GET").arg(count))
        .await?;
    parse_slowlog(&value).ok_or_else(|| {
        ConnectError::new(
            Layer::Protocol,
            conn.endpoint().address(),
            "SLOWLOG GET did not return a list",
            None,
        )
    })
}

/// Parses a SLOWLOG GET reply; malformed entries are skipped.
pub fn parse_slowlog(value: &Value) -> Option<Vec<SlowlogEntry>> {
    match value {
        Value::Array(items) => Some(items.iter().filter_map(SlowlogEntry::from_value).collect()),
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
        let entries = parse_slowlog(&reply).expect("a list");
        assert_eq!(entries.len(), 2);
        let e = &entries[0];
        assert_eq!(e.id, 7);
        assert_eq!(e.duration_micros, 15_000);
        assert_eq!(e.command_line(64), "GET user:\\x1b[2J\\xff");
        assert_eq!(e.client_addr.as_deref(), Some("10.0.0.9:51234"));
        assert_eq!(e.client_name, None);
        assert_eq!(entries[1].client_addr, None);
        assert_eq!(parse_slowlog(&Value::Nil), None);
    }
}
