//! The sandbox's SSM-like parameter store: one file per parameter under `params/`, mirroring
//! the parameter's path, mode 0600. Every write goes to a whole temp file first; `overwrite =
//! false` then links it into place (link(2) fails when the name exists), so it is an atomic
//! cross-process lock primitive, as PutParameter Overwrite=false is on AWS, and no reader
//! ever sees a half-written parameter.

use crate::controlplane::{
    ControlPlaneError, Parameter, ParameterType, ParameterValue, PutParameter,
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// A file-backed parameter store rooted at a directory.
#[derive(Debug, Clone)]
pub struct ParamStore {
    root: PathBuf,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    name: String,
    kind: String,
    value: String,
    version: i64,
    #[serde(with = "time::serde::rfc3339")]
    last_modified: OffsetDateTime,
    description: Option<String>,
}

fn kind_str(kind: ParameterType) -> &'static str {
    match kind {
        ParameterType::String => "String",
        ParameterType::SecureString => "SecureString",
        ParameterType::StringList => "StringList",
    }
}

fn kind_of(text: &str) -> ParameterType {
    match text {
        "SecureString" => ParameterType::SecureString,
        "StringList" => ParameterType::StringList,
        _ => ParameterType::String,
    }
}

fn failed(operation: &str, path: &Path, e: impl std::fmt::Display) -> ControlPlaneError {
    ControlPlaneError::Service {
        operation: operation.into(),
        detail: format!("{}: {e}", path.display()),
    }
}

impl ParamStore {
    /// The store of the sandbox in `sandbox_dir`.
    pub fn new(sandbox_dir: &Path) -> Self {
        ParamStore {
            root: sandbox_dir.join("params"),
        }
    }

    /// The file of a parameter; names are checked as SSM checks them (no `..`, no empty
    /// segment, only `a-zA-Z0-9_.-` in segments), so a name can never leave the store.
    fn file(&self, operation: &str, name: &str) -> Result<PathBuf, ControlPlaneError> {
        let rel = name.strip_prefix('/').unwrap_or(name);
        let ok = !rel.is_empty()
            && name.len() <= 2048
            && rel.split('/').all(|seg| {
                !seg.is_empty()
                    && seg != "."
                    && seg != ".."
                    && seg
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            });
        if !ok {
            return Err(ControlPlaneError::InvalidState {
                operation: operation.into(),
                detail: format!(
                    "parameter name `{}` is not valid; use /path/segments of letters, digits, _ . -",
                    name.escape_debug()
                ),
            });
        }
        Ok(self.root.join(format!("{rel}.param")))
    }

    fn read_file(
        &self,
        operation: &str,
        path: &Path,
    ) -> Result<Option<Parameter>, ControlPlaneError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(failed(operation, path, e)),
        };
        let stored: Stored = serde_json::from_str(&text).map_err(|e| failed(operation, path, e))?;
        let kind = kind_of(&stored.kind);
        let value = if kind == ParameterType::SecureString {
            ParameterValue::Secret(SecretString::from(stored.value))
        } else {
            ParameterValue::Plain(stored.value)
        };
        Ok(Some(Parameter {
            name: stored.name,
            kind,
            value,
            version: stored.version,
            last_modified: Some(stored.last_modified),
        }))
    }

    /// The sandbox directory this store belongs to.
    pub fn sandbox_dir(&self) -> &Path {
        self.root.parent().unwrap_or(&self.root)
    }

    /// GetParameter; `Ok(None)` when absent.
    pub fn get(&self, name: &str) -> Result<Option<Parameter>, ControlPlaneError> {
        let path = self.file("GetParameter", name)?;
        self.read_file("GetParameter", &path)
    }

    /// GetParametersByPath, recursive, in name order.
    pub fn by_path(&self, path: &str) -> Result<Vec<Parameter>, ControlPlaneError> {
        let trimmed = path.trim_end_matches('/');
        let dir = if trimmed.is_empty() {
            self.root.clone()
        } else {
            let file = self.file("GetParametersByPath", trimmed)?;
            file.with_extension("")
        };
        let mut found = Vec::new();
        let mut stack = vec![dir];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.filter_map(Result::ok) {
                let p = entry.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|e| e == "param")
                    && let Some(param) = self.read_file("GetParametersByPath", &p)?
                {
                    found.push(param);
                }
            }
        }
        found.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(found)
    }

    /// PutParameter; returns the new version.
    pub fn put(&self, put: &PutParameter) -> Result<i64, ControlPlaneError> {
        let op = "PutParameter";
        let path = self.file(op, &put.name)?;
        let name = if put.name.starts_with('/') {
            put.name.clone()
        } else {
            format!("/{}", put.name)
        };
        if let Some(parent) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|e| failed(op, parent, e))?;
        }
        let previous = self.read_file(op, &path)?;
        if previous.is_some() && !put.overwrite {
            return Err(ControlPlaneError::AlreadyExists {
                what: format!("parameter {name}"),
            });
        }
        let version = previous.map(|p| p.version + 1).unwrap_or(1);
        let stored = Stored {
            name: name.clone(),
            kind: kind_str(put.kind).into(),
            value: put.value.expose().to_string(),
            version,
            last_modified: OffsetDateTime::now_utc(),
            description: put.description.clone(),
        };
        let text = serde_json::to_string(&stored).map_err(|e| failed(op, &path, e))?;
        // Written whole to a temp file first, so a reader sees the old or the new value,
        // never half of one (nor an empty file between create and write).
        let tmp = path.with_extension(format!(
            "tmp{}-{}",
            std::process::id(),
            OffsetDateTime::now_utc().unix_timestamp_nanos()
        ));
        write_new(&tmp, &text).map_err(|e| failed(op, &tmp, e))?;
        let placed = if put.overwrite {
            std::fs::rename(&tmp, &path)
        } else {
            // link(2) fails when the name exists: create-only, and atomic across processes.
            let linked = std::fs::hard_link(&tmp, &path);
            let _ = std::fs::remove_file(&tmp);
            linked
        };
        match placed {
            Ok(()) => Ok(version),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(ControlPlaneError::AlreadyExists {
                    what: format!("parameter {name}"),
                })
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(failed(op, &path, e))
            }
        }
    }

    /// DeleteParameter; `NotFound` when absent.
    pub fn delete(&self, name: &str) -> Result<(), ControlPlaneError> {
        let path = self.file("DeleteParameter", name)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(ControlPlaneError::NotFound {
                    what: format!("parameter {name}"),
                })
            }
            Err(e) => Err(failed("DeleteParameter", &path, e)),
        }
    }

    /// The file a parameter lives in (for tests checking permissions).
    pub fn path_of(&self, name: &str) -> Result<PathBuf, ControlPlaneError> {
        self.file("GetParameter", name)
    }
}

/// Creates `path` exclusively (O_CREAT|O_EXCL), mode 0600, and writes `text`.
fn write_new(path: &Path, text: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// A convenience for seeding: a plain or secure put that overwrites.
pub fn put_value(
    store: &ParamStore,
    name: &str,
    value: &str,
    secure: bool,
) -> Result<i64, ControlPlaneError> {
    store.put(&PutParameter {
        name: name.into(),
        kind: if secure {
            ParameterType::SecureString
        } else {
            ParameterType::String
        },
        value: if secure {
            ParameterValue::Secret(SecretString::from(value.to_string()))
        } else {
            ParameterValue::Plain(value.to_string())
        },
        overwrite: true,
        description: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_escape_the_store() {
        let store = ParamStore::new(Path::new("/nonexistent"));
        assert!(store.get("/a/../../etc/passwd").is_err());
        assert!(store.get("/a//b").is_err());
        assert!(store.get("/paperwurks/dev/redis/url").is_ok());
    }

    #[test]
    fn overwrite_false_is_exclusive_and_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = crate::valkey::server::unique_temp_dir("params-test");
        let store = ParamStore::new(&dir);
        let put = |overwrite: bool, value: &str| PutParameter {
            name: "/app/dev/lock".into(),
            kind: ParameterType::SecureString,
            value: ParameterValue::Secret(SecretString::from(value.to_string())),
            overwrite,
            description: None,
        };
        assert_eq!(store.put(&put(false, "a")).expect("create"), 1);
        assert!(matches!(
            store.put(&put(false, "b")),
            Err(ControlPlaneError::AlreadyExists { .. })
        ));
        assert_eq!(store.put(&put(true, "c")).expect("overwrite"), 2);
        let got = store.get("/app/dev/lock").expect("get").expect("exists");
        assert_eq!(got.value.expose(), "c");
        assert_eq!(got.kind, ParameterType::SecureString);
        let mode = std::fs::metadata(store.path_of("/app/dev/lock").expect("path"))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(store.by_path("/app").expect("by path").len(), 1);
        assert_eq!(store.by_path("/other").expect("by path").len(), 0);
        store.delete("/app/dev/lock").expect("delete");
        assert!(matches!(
            store.delete("/app/dev/lock"),
            Err(ControlPlaneError::NotFound { .. })
        ));
        let _ = std::fs::remove_dir_all(dir);
    }
}
