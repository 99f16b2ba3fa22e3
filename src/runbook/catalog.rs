//! Where runbooks come from: the built-ins compiled in from `runbooks/*.toml`, and the
//! user's own from `config_dir()/runbooks/*.toml` (a user runbook with a built-in's name
//! replaces it). `cachedeck run` also takes a path to a file.

use crate::runbook::action::Registry;
use crate::runbook::validate::{self, Runbook, RunbookError};
use std::path::{Path, PathBuf};

/// The built-in runbooks: file name and text.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "health-check.toml",
        include_str!("../../runbooks/health-check.toml"),
    ),
    (
        "marker-roundtrip.toml",
        include_str!("../../runbooks/marker-roundtrip.toml"),
    ),
    (
        "failover-test.toml",
        include_str!("../../runbooks/failover-test.toml"),
    ),
    (
        "connectivity-check.toml",
        include_str!("../../runbooks/connectivity-check.toml"),
    ),
    (
        "ttl-audit.toml",
        include_str!("../../runbooks/ttl-audit.toml"),
    ),
    (
        "ttl-remediate.toml",
        include_str!("../../runbooks/ttl-remediate.toml"),
    ),
    (
        "snapshot.toml",
        include_str!("../../runbooks/snapshot.toml"),
    ),
    ("restore.toml", include_str!("../../runbooks/restore.toml")),
    ("cutover.toml", include_str!("../../runbooks/cutover.toml")),
    (
        "rollback.toml",
        include_str!("../../runbooks/rollback.toml"),
    ),
    (
        "survives-restart.toml",
        include_str!("../../runbooks/survives-restart.toml"),
    ),
    (
        "auth-rotate.toml",
        include_str!("../../runbooks/auth-rotate.toml"),
    ),
];

/// Why a runbook could not be had.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Invalid(#[from] RunbookError),
    #[error("read runbook {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "find runbook `{name}`: no such runbook; known: {known} (or give a path to a .toml file)"
    )]
    Unknown { name: String, known: String },
}

/// The directory of the user's runbooks.
pub fn user_dir() -> PathBuf {
    crate::config::config_dir().join("runbooks")
}

/// Parses one runbook file.
pub fn load_file(path: &Path, registry: &Registry) -> Result<Runbook, CatalogError> {
    let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(validate::parse(
        &path.display().to_string(),
        &text,
        registry,
    )?)
}

/// Every runbook: built-ins, then the user's (which replace built-ins of the same name).
/// Invalid user files are returned as errors so `runbooks list` can show them.
pub fn all(registry: &Registry) -> Vec<Result<Runbook, CatalogError>> {
    let mut found: Vec<Result<Runbook, CatalogError>> = BUILTIN
        .iter()
        .map(|(file, text)| {
            validate::parse(&format!("builtin:runbooks/{file}"), text, registry).map_err(Into::into)
        })
        .collect();
    let mut files: Vec<PathBuf> = std::fs::read_dir(user_dir())
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    for path in files {
        let loaded = load_file(&path, registry);
        if let Ok(rb) = &loaded {
            found.retain(|f| !matches!(f, Ok(b) if b.name == rb.name));
        }
        found.push(loaded);
    }
    found
}

/// A runbook by name, or by path when `name` looks like one.
pub fn find(name: &str, registry: &Registry) -> Result<Runbook, CatalogError> {
    if name.ends_with(".toml") || name.contains('/') {
        return load_file(Path::new(name), registry);
    }
    let all = all(registry);
    let mut known = Vec::new();
    let mut hit = None;
    for entry in all {
        match entry {
            Ok(rb) if rb.name == name => hit = Some(rb),
            Ok(rb) => known.push(rb.name),
            Err(_) => {}
        }
    }
    hit.ok_or_else(|| CatalogError::Unknown {
        name: name.to_string(),
        known: known.join(", "),
    })
}
