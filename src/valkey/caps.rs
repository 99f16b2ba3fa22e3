//! Caps on what cachedeck reads from a node. The redis crate reads a whole reply into
//! memory before handing it over and has no per-reply limit, so cachedeck bounds what it
//! asks for (SCAN `COUNT` ≤ 100 000, `SLOWLOG GET` ≤ [`SLOWLOG_MAX_ENTRIES`]) and checks the
//! size of each reply it gets against these caps: a reply over them stops that read with a
//! message naming the cap, instead of growing memory and work without bound. cachedeck
//! sends no `CLIENT LIST` and no `KEYS`.

/// Keys in one SCAN reply (COUNT is a hint: a server returns about COUNT keys).
pub const SCAN_MAX_KEYS: usize = 250_000;
/// Bytes of key names in one SCAN reply.
pub const SCAN_MAX_BYTES: usize = 64 << 20;
/// Entries asked for and kept from one `SLOWLOG GET`.
pub const SLOWLOG_MAX_ENTRIES: usize = 128;
/// Arguments kept per slowlog entry (the server itself keeps at most 32).
pub const SLOWLOG_MAX_ARGS: usize = 32;
/// Bytes kept per slowlog argument (the server itself keeps 128 and says how many more).
pub const SLOWLOG_MAX_ARG_BYTES: usize = 1024;

/// Checks one SCAN reply's keys against [`SCAN_MAX_KEYS`] and [`SCAN_MAX_BYTES`].
pub fn check_scan_batch(keys: &[Vec<u8>]) -> Result<(), String> {
    check_scan_batch_with(keys, SCAN_MAX_KEYS, SCAN_MAX_BYTES)
}

fn check_scan_batch_with(
    keys: &[Vec<u8>],
    max_keys: usize,
    max_bytes: usize,
) -> Result<(), String> {
    let bytes: usize = keys.iter().map(Vec::len).sum();
    if keys.len() > max_keys || bytes > max_bytes {
        return Err(format!(
            "a SCAN reply held {} keys with {} bytes of names, over cachedeck's cap of {max_keys} keys and {} MiB per reply; the scan of this node stopped there (lower `count`, and look for keys with huge names)",
            keys.len(),
            bytes,
            max_bytes >> 20
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_batches_over_the_cap_are_refused_with_the_cap_named() {
        let small = vec![b"a".to_vec(); 10];
        assert!(check_scan_batch_with(&small, 10, 1 << 20).is_ok());
        let err = check_scan_batch_with(&small, 9, 1 << 20).expect_err("too many keys");
        assert!(
            err.contains("10 keys") && err.contains("cap of 9 keys"),
            "{err}"
        );
        let big = vec![vec![b'k'; 600 << 10]; 2];
        let err = check_scan_batch_with(&big, 10, 1 << 20).expect_err("too many bytes");
        assert!(err.contains("1 MiB per reply"), "{err}");
        assert!(check_scan_batch(&big).is_ok());
    }
}
