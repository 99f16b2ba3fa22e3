//! Reading the replies a remediation gets: integers, SCAN pages, server errors that mean a
//! key or a primary moved, version strings. Server text is untrusted and escaped.

use redis::Value;

pub(super) fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

/// A reply that means "this node no longer owns the key / is no longer a primary".
pub(super) fn redirected(v: &Value) -> bool {
    matches!(v, Value::ServerError(e)
        if matches!(e.code(), "MOVED" | "ASK" | "TRYAGAIN" | "READONLY" | "LOADING" | "CLUSTERDOWN"))
}

pub(super) fn server_error(v: &Value) -> Option<String> {
    match v {
        Value::ServerError(e) => Some(crate::escape::escape_capped(e.to_string(), 200)),
        _ => None,
    }
}

/// Splits a SCAN reply into the next cursor and the keys.
pub(super) fn scan_reply(v: Value) -> Result<(u64, Vec<Vec<u8>>), String> {
    let Value::Array(parts) = v else {
        return Err(
            server_error(&v).map_or("SCAN returned an unexpected reply".into(), |e| {
                format!("SCAN failed: {e}")
            }),
        );
    };
    let mut it = parts.into_iter();
    let (Some(cursor), Some(Value::Array(keys))) = (it.next(), it.next()) else {
        return Err("SCAN returned an unexpected reply".into());
    };
    let cursor = int(&cursor).ok_or("SCAN returned no cursor")? as u64;
    let keys = keys
        .into_iter()
        .filter_map(|k| match k {
            Value::BulkString(b) => Some(b),
            Value::SimpleString(s) => Some(s.into_bytes()),
            _ => None,
        })
        .collect();
    Ok((cursor, keys))
}

/// `major.minor` of a version string, e.g. `7.2.4` → (7, 2).
pub(super) fn version(text: &str) -> Option<(u32, u32)> {
    let mut it = text.split('.');
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_replies() {
        assert_eq!(version("7.2.4"), Some((7, 2)));
        assert_eq!(version("6"), None);
        let (c, k) = scan_reply(Value::Array(vec![
            Value::BulkString(b"42".to_vec()),
            Value::Array(vec![Value::BulkString(b"a\x1b".to_vec())]),
        ]))
        .expect("parses");
        assert_eq!((c, k), (42, vec![b"a\x1b".to_vec()]));
        assert!(scan_reply(Value::Nil).is_err());
    }
}
