//! Work the sandbox's control plane accepted and the endpoint daemon carries out (failovers,
//! restores): one JSON file per request in a queue directory, written whole (a temp file
//! renamed into place) and claimed by renaming it before the work starts, so each request is
//! carried out once, and a caller killed right after the call still gets its work done, as
//! AWS goes on with a call it answered.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// Puts `request` in the queue `name` under the sandbox directory `dir`.
pub fn put<T: Serialize>(dir: &Path, name: &str, request: &T) -> std::io::Result<()> {
    let queue = dir.join(name);
    std::fs::create_dir_all(&queue)?;
    let file = format!(
        "{}-{}.json",
        time::OffsetDateTime::now_utc().unix_timestamp_nanos(),
        std::process::id()
    );
    let tmp = queue.join(format!(".{file}.tmp"));
    std::fs::write(
        &tmp,
        serde_json::to_vec(request).map_err(std::io::Error::other)?,
    )?;
    // Renamed into place whole, so the daemon never reads half a request.
    std::fs::rename(&tmp, queue.join(file))
}

/// Claims every request waiting in the queue `name`, oldest first. A request another
/// claimer renamed first is skipped; one that cannot be read is logged and dropped.
pub fn take_all<T: DeserializeOwned>(dir: &Path, name: &str) -> Vec<T> {
    let Ok(entries) = std::fs::read_dir(dir.join(name)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut taken = Vec::new();
    for path in files {
        let claimed = path.with_extension("taken");
        if std::fs::rename(&path, &claimed).is_err() {
            continue;
        }
        let request = std::fs::read(&claimed)
            .ok()
            .and_then(|b| serde_json::from_slice::<T>(&b).ok());
        let _ = std::fs::remove_file(&claimed);
        match request {
            Some(r) => taken.push(r),
            None => {
                tracing::warn!(queue = name, file = %path.display(), "unreadable request dropped")
            }
        }
    }
    taken
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_taken_once_in_order_and_garbage_is_dropped() {
        let dir = tempfile::tempdir().expect("temp dir");
        put(dir.path(), "work", &1u32).unwrap();
        put(dir.path(), "work", &2u32).unwrap();
        std::fs::write(dir.path().join("work").join("0-bad.json"), b"{not json").unwrap();
        assert_eq!(take_all::<u32>(dir.path(), "work"), vec![1, 2]);
        assert!(take_all::<u32>(dir.path(), "work").is_empty(), "taken once");
        assert!(take_all::<u32>(dir.path(), "none").is_empty());
        let left: Vec<_> = std::fs::read_dir(dir.path().join("work"))
            .unwrap()
            .collect();
        assert!(left.is_empty(), "nothing left behind: {left:?}");
    }
}
