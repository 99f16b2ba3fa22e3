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

/// Claims every request waiting in the queue `name`, oldest first, and forgets it at once. A
/// request another claimer renamed first is skipped; one that cannot be read is logged and
/// dropped.
pub fn take_all<T: DeserializeOwned>(dir: &Path, name: &str) -> Vec<T> {
    claim_all(dir, name)
        .into_iter()
        .map(|(request, claim)| {
            claim.done();
            request
        })
        .collect()
}

/// A request claimed from a queue: kept on disk (as `*.taken`) until [`Claim::done`], so a
/// daemon stopped while carrying it out finds it again when it starts ([`requeue_claimed`]).
#[derive(Debug)]
pub struct Claim(PathBuf);

impl Claim {
    /// The request is carried out (or failed for good, as recorded): it is forgotten.
    pub fn done(self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// [`take_all`], each request with its [`Claim`].
pub fn claim_all<T: DeserializeOwned>(dir: &Path, name: &str) -> Vec<(T, Claim)> {
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
        match request {
            Some(r) => taken.push((r, Claim(claimed))),
            None => {
                let _ = std::fs::remove_file(&claimed);
                tracing::warn!(queue = name, file = %path.display(), "unreadable request dropped")
            }
        }
    }
    taken
}

/// Puts back every request of the queue `name` that was claimed and never done: called by the
/// one daemon of a sandbox as it starts, when no claim can be in progress.
pub fn requeue_claimed(dir: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(dir.join(name)) else {
        return;
    };
    for path in entries.flatten().map(|e| e.path()) {
        if path.extension().is_some_and(|x| x == "taken") {
            let _ = std::fs::rename(&path, path.with_extension("json"));
        }
    }
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

    #[test]
    fn a_claim_not_done_is_found_again_after_a_restart() {
        let dir = tempfile::tempdir().expect("temp dir");
        put(dir.path(), "work", &7u32).unwrap();
        put(dir.path(), "work", &8u32).unwrap();
        let mut claims = claim_all::<u32>(dir.path(), "work");
        assert_eq!(claims.len(), 2);
        let (_, second) = claims.pop().unwrap();
        let (first, claim) = claims.pop().unwrap();
        assert_eq!(first, 7);
        claim.done();
        // The daemon stops while carrying out 8: nothing claims it again until it restarts.
        drop(second);
        assert!(claim_all::<u32>(dir.path(), "work").is_empty());
        requeue_claimed(dir.path(), "work");
        assert_eq!(take_all::<u32>(dir.path(), "work"), vec![8]);
        assert!(take_all::<u32>(dir.path(), "work").is_empty());
    }
}
