//! The sandbox's SSM-like parameter store: one file per parameter under `params/`, mirroring
//! the parameter's path, mode 0600. `overwrite = false` creates with O_CREAT|O_EXCL, so it is
//! an atomic cross-process lock primitive, as PutParameter Overwrite=false is on AWS.

use crate::controlplane::{
    ControlPlaneError, Parameter, ParameterSelector, ParameterType, ParameterValue, PutParameter,
    label_problem,
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
    /// Labels on the current version (LabelParameterVersion).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    labels: Vec<String>,
    /// Earlier versions, oldest first (SSM keeps 100 versions in all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    history: Vec<StoredVersion>,
}

/// An earlier version of a parameter, as GetParameter `name:version` reads it.
#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct StoredVersion {
    kind: String,
    value: String,
    version: i64,
    #[serde(with = "time::serde::rfc3339")]
    last_modified: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    labels: Vec<String>,
}

/// SSM keeps this many versions of a parameter.
const MAX_VERSIONS: usize = 100;

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

    fn read_stored(
        &self,
        operation: &str,
        path: &Path,
    ) -> Result<Option<Stored>, ControlPlaneError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(failed(operation, path, e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| failed(operation, path, e))
    }

    fn read_file(
        &self,
        operation: &str,
        path: &Path,
    ) -> Result<Option<Parameter>, ControlPlaneError> {
        Ok(self.read_stored(operation, path)?.map(|stored| {
            parameter(
                stored.name,
                &stored.kind,
                stored.value,
                stored.version,
                stored.last_modified,
            )
        }))
    }

    /// Replaces a parameter's file (temp file + rename: readers see all of it or none).
    fn rewrite(
        &self,
        operation: &str,
        path: &Path,
        stored: &Stored,
    ) -> Result<(), ControlPlaneError> {
        let text = serde_json::to_string(stored).map_err(|e| failed(operation, path, e))?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        write_new(&tmp, &text).map_err(|e| failed(operation, &tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| failed(operation, path, e))
    }

    /// GetParameter with a `name:version` or `name:label` selector; `Ok(None)` when the
    /// parameter, version or label does not exist (AWS: ParameterNotFound /
    /// ParameterVersionNotFound).
    pub fn get_at(
        &self,
        name: &str,
        at: &ParameterSelector,
    ) -> Result<Option<Parameter>, ControlPlaneError> {
        let op = "GetParameter";
        let path = self.file(op, name)?;
        let Some(stored) = self.read_stored(op, &path)? else {
            return Ok(None);
        };
        let matches = |version: i64, labels: &[String]| match at {
            ParameterSelector::Version(v) => *v == version,
            ParameterSelector::Label(l) => labels.iter().any(|x| x == l),
        };
        if matches(stored.version, &stored.labels) {
            return Ok(Some(parameter(
                stored.name,
                &stored.kind,
                stored.value,
                stored.version,
                stored.last_modified,
            )));
        }
        Ok(stored
            .history
            .into_iter()
            .find(|h| matches(h.version, &h.labels))
            .map(|h| parameter(stored.name, &h.kind, h.value, h.version, h.last_modified)))
    }

    /// LabelParameterVersion: the labels go on `version`, leaving any other version they
    /// were on; at most 10 labels per version; labels SSM would list as invalid fail the
    /// call, named.
    pub fn label(
        &self,
        name: &str,
        version: i64,
        labels: &[String],
    ) -> Result<(), ControlPlaneError> {
        let op = "LabelParameterVersion";
        let invalid: Vec<&str> = labels
            .iter()
            .filter(|l| label_problem(l).is_some())
            .map(String::as_str)
            .collect();
        if !invalid.is_empty() {
            return Err(ControlPlaneError::InvalidState {
                operation: op.into(),
                detail: format!(
                    "SSM refused the label(s) {} on {name}: a label has letters, digits, `.`, \
                     `-`, `_` and does not begin with a digit, `aws` or `ssm`",
                    invalid.join(", ")
                ),
            });
        }
        let path = self.file(op, name)?;
        let Some(mut stored) = self.read_stored(op, &path)? else {
            return Err(ControlPlaneError::NotFound {
                what: format!("parameter {name}"),
            });
        };
        let current = stored.version;
        let target = if version == current {
            &stored.labels
        } else {
            match stored.history.iter().find(|h| h.version == version) {
                Some(h) => &h.labels,
                None => {
                    return Err(ControlPlaneError::NotFound {
                        what: format!("version {version} of parameter {name}"),
                    });
                }
            }
        };
        let mut merged = target.clone();
        for l in labels {
            if !merged.contains(l) {
                merged.push(l.clone());
            }
        }
        if merged.len() > 10 {
            return Err(ControlPlaneError::InvalidState {
                operation: op.into(),
                detail: format!(
                    "version {version} of {name} would have more than 10 labels \
                     (ParameterVersionLabelLimitExceeded); move some to another version"
                ),
            });
        }
        let moved = |own: &mut Vec<String>| own.retain(|l| !labels.contains(l));
        moved(&mut stored.labels);
        for h in &mut stored.history {
            moved(&mut h.labels);
        }
        if version == current {
            stored.labels = merged;
        } else if let Some(h) = stored.history.iter_mut().find(|h| h.version == version) {
            h.labels = merged;
        }
        self.rewrite(op, &path, &stored)
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
        let previous = self.read_stored(op, &path)?;
        if previous.is_some() && !put.overwrite {
            return Err(ControlPlaneError::AlreadyExists {
                what: format!("parameter {name}"),
            });
        }
        let version = previous.as_ref().map(|p| p.version + 1).unwrap_or(1);
        let (description, history) = match previous {
            Some(p) => {
                let mut history = p.history;
                history.push(StoredVersion {
                    kind: p.kind,
                    value: p.value,
                    version: p.version,
                    last_modified: p.last_modified,
                    labels: p.labels,
                });
                if history.len() >= MAX_VERSIONS {
                    // As SSM: the oldest version goes, unless a label holds it.
                    if !history[0].labels.is_empty() {
                        return Err(ControlPlaneError::InvalidState {
                            operation: op.into(),
                            detail: format!(
                                "{name} has {MAX_VERSIONS} versions and the oldest, version {}, \
                                 has a label (ParameterMaxVersionLimitExceeded); move the label",
                                history[0].version
                            ),
                        });
                    }
                    history.remove(0);
                }
                (put.description.clone().or(p.description), history)
            }
            None => (put.description.clone(), Vec::new()),
        };
        let stored = Stored {
            name: name.clone(),
            kind: kind_str(put.kind).into(),
            value: put.value.expose().to_string(),
            version,
            last_modified: OffsetDateTime::now_utc(),
            description,
            labels: Vec::new(),
            history,
        };
        if put.overwrite {
            self.rewrite(op, &path, &stored)?;
        } else {
            let text = serde_json::to_string(&stored).map_err(|e| failed(op, &path, e))?;
            match write_new(&path, &text) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Err(ControlPlaneError::AlreadyExists {
                        what: format!("parameter {name}"),
                    });
                }
                Err(e) => return Err(failed(op, &path, e)),
            }
        }
        Ok(version)
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

fn parameter(
    name: String,
    kind: &str,
    value: String,
    version: i64,
    last_modified: OffsetDateTime,
) -> Parameter {
    let kind = kind_of(kind);
    let value = if kind == ParameterType::SecureString {
        ParameterValue::Secret(SecretString::from(value))
    } else {
        ParameterValue::Plain(value)
    };
    Parameter {
        name,
        kind,
        value,
        version,
        last_modified: Some(last_modified),
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

    #[test]
    fn versions_and_labels_behave_as_ssm() {
        let dir = crate::valkey::server::unique_temp_dir("params-labels");
        let store = ParamStore::new(&dir);
        let name = "/storefront-dev/redis/endpoint";
        assert_eq!(put_value(&store, name, "old.host", false).expect("v1"), 1);
        assert_eq!(put_value(&store, name, "new.host", false).expect("v2"), 2);
        let at = |sel: ParameterSelector| {
            store
                .get_at(name, &sel)
                .expect("get")
                .map(|p| (p.version, p.value.expose().to_string()))
        };
        assert_eq!(
            at(ParameterSelector::Version(1)),
            Some((1, "old.host".into()))
        );
        assert_eq!(at(ParameterSelector::Version(3)), None);
        store
            .label(name, 1, &["before-x".into()])
            .expect("label v1");
        assert_eq!(
            at(ParameterSelector::Label("before-x".into())),
            Some((1, "old.host".into()))
        );
        // A label moves: it is on one version at a time.
        store.label(name, 2, &["before-x".into()]).expect("move");
        assert_eq!(
            at(ParameterSelector::Label("before-x".into())),
            Some((2, "new.host".into()))
        );
        assert_eq!(at(ParameterSelector::Label("nothing".into())), None);
        assert!(matches!(
            store.label(name, 9, &["x".into()]),
            Err(ControlPlaneError::NotFound { .. })
        ));
        for bad in ["aws-x", "SSMx", "1x", "a b", ""] {
            let err = store.label(name, 2, &[bad.into()]).expect_err(bad);
            assert!(
                matches!(err, ControlPlaneError::InvalidState { .. }),
                "{bad}"
            );
        }
        let ten: Vec<String> = (0..10).map(|i| format!("l{i}")).collect();
        assert!(store.label(name, 1, &ten).is_ok());
        assert!(store.label(name, 1, &["l10".into()]).is_err());
        // Writing keeps the history and the labels of earlier versions.
        assert_eq!(put_value(&store, name, "third", false).expect("v3"), 3);
        assert_eq!(
            at(ParameterSelector::Label("before-x".into())),
            Some((2, "new.host".into()))
        );
        assert_eq!(store.get(name).expect("get").expect("exists").version, 3);
        let _ = std::fs::remove_dir_all(dir);
    }
}
