//! Manifests on disk: `<state dir>/snapshots/<env>/<cache>/<snapshot>.json`, 0600, so a
//! restore run later (or on another day) verifies against what the snapshot run recorded.

use super::Manifest;
use std::path::{Path, PathBuf};

/// Where manifests live under `root` (the state dir).
pub fn path(root: &Path, env: &str, cache: &str, snapshot: &str) -> PathBuf {
    root.join("snapshots")
        .join(safe(env))
        .join(safe(cache))
        .join(format!("{}.json", safe(snapshot)))
}

/// Path components from names: only `[A-Za-z0-9._-]`, never `..`.
fn safe(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with('.') {
        format!("_{s}")
    } else {
        s
    }
}

/// Writes a manifest (0600, directories 0700).
pub fn save(root: &Path, manifest: &Manifest) -> Result<PathBuf, String> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let path = path(root, &manifest.env, &manifest.cache, &manifest.snapshot);
    if let Some(parent) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| format!("create {}: {e}", parent.display()))?;
    }
    let text = serde_json::to_vec(manifest).map_err(|e| e.to_string())?;
    let tmp = path.with_extension(format!("json.{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| format!("write {}: {e}", tmp.display()))?;
    f.write_all(&text)
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &path).map_err(|e| format!("write {}: {e}", path.display()))?;
    Ok(path)
}

/// Reads a manifest; `Ok(None)` when there is none for this snapshot.
pub fn load(
    root: &Path,
    env: &str,
    cache: &str,
    snapshot: &str,
) -> Result<Option<Manifest>, String> {
    let path = path(root, env, cache, snapshot);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_never_escape_the_store() {
        let p = path(Path::new("/s"), "dev", "../x", "a/b");
        assert_eq!(p, Path::new("/s/snapshots/dev/_.._x/a_b.json"));
        assert!(!p.to_string_lossy().contains("/../"));
    }
}
