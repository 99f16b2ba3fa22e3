//! Counts of the hardening suite, one `name count` line per test appended to a file that
//! `scripts/harden-summary.sh` adds up and prints at the end of a suite run.

use std::io::Write;
use std::path::PathBuf;

/// The summary file: `CACHEDECK_HARDEN_SUMMARY`, or `target/tmp/harden-summary.txt`.
pub fn file() -> PathBuf {
    std::env::var_os("CACHEDECK_HARDEN_SUMMARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("harden-summary.txt"))
}

/// Adds `count` to `name` (one `write` of one line, so parallel tests do not interleave).
pub fn add(name: &str, count: u64) {
    let path = file();
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        let _ = f.write_all(format!("{name} {count}\n").as_bytes());
    }
}
