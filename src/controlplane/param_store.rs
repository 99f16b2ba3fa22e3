//! A file-backed, SSM-like parameter store: one file per parameter under `params/`, mirroring
//! the parameter's path, mode 0600. The sandbox's control plane keeps its parameters here, and
//! so does the local control plane of an environment without AWS (its run locks). Every write goes to a whole temp file first; `overwrite =
//! false` then links it into place (link(2) fails when the name exists), so it is an atomic
//! cross-process lock primitive, as PutParameter Overwrite=false is on AWS, and no reader
//! ever sees a half-written parameter.

use crate::controlplane::{
    ControlPlaneError, LabelOutcome, Parameter, ParameterSelector, ParameterType, ParameterValue,
    ParameterVersion, PutParameter,
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
    /// Labels of the newest version.
    #[serde(default)]
    labels: Vec<String>,
    /// Earlier versions still kept, oldest first.
    #[serde(default)]
    history: Vec<OldVersion>,
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct OldVersion {
    version: i64,
    #[serde(with = "time::serde::rfc3339")]
    last_modified: OffsetDateTime,
    labels: Vec<String>,
    /// Its type and value, for GetParameter `name:version` / `name:label`.
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    value: Option<String>,
}

/// Versions Parameter Store keeps of one parameter.
pub const MAX_VERSIONS: usize = 100;
/// Labels one version may carry.
pub const MAX_LABELS_PER_VERSION: usize = 10;

/// Whether a label follows Parameter Store's rules: 1–100 characters of letters, digits,
/// `.`, `-` and `_`, not starting with a digit, `aws` or `ssm` (in any case).
pub fn label_is_valid(label: &str) -> bool {
    let lower = label.to_ascii_lowercase();
    !label.is_empty()
        && label.len() <= 100
        && label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        && !label.starts_with(|c: char| c.is_ascii_digit())
        && !lower.starts_with("aws")
        && !lower.starts_with("ssm")
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
    /// The store kept under `dir` (in `dir/params`).
    pub fn new(dir: &Path) -> Self {
        ParamStore {
            root: dir.join("params"),
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
        let Some(stored) = self.read_stored(operation, path)? else {
            return Ok(None);
        };
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

    /// The directory this store belongs to (the sandbox's, for the sandbox's store).
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
        let mut history = Vec::new();
        if let Some(p) = previous {
            history = p.history;
            history.push(OldVersion {
                version: p.version,
                last_modified: p.last_modified,
                labels: p.labels,
                kind: Some(p.kind),
                value: Some(p.value),
            });
            // The newest version makes one more: the oldest goes, unless it is labelled.
            if history.len() + 1 > MAX_VERSIONS {
                let oldest = &history[0];
                if !oldest.labels.is_empty() {
                    return Err(ControlPlaneError::QuotaExceeded {
                        operation: op.into(),
                        detail: format!(
                            "ParameterMaxVersionLimitExceeded: version {} of {name}, the oldest of {MAX_VERSIONS}, cannot be deleted because it has a label; move the label to another version and try again",
                            oldest.version
                        ),
                    });
                }
                history.remove(0);
            }
        }
        let stored = Stored {
            name: name.clone(),
            kind: kind_str(put.kind).into(),
            value: put.value.expose().to_string(),
            version,
            last_modified: OffsetDateTime::now_utc(),
            description: put.description.clone(),
            labels: Vec::new(),
            history,
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

    /// LabelParameterVersion: `labels` onto `version` (the newest when `None`).
    pub fn label(
        &self,
        name: &str,
        version: Option<i64>,
        labels: &[String],
    ) -> Result<LabelOutcome, ControlPlaneError> {
        let op = "LabelParameterVersion";
        let path = self.file(op, name)?;
        if labels.is_empty() || labels.len() > MAX_LABELS_PER_VERSION {
            return Err(ControlPlaneError::InvalidState {
                operation: op.into(),
                detail: format!(
                    "ValidationException: Labels must have 1 to {MAX_LABELS_PER_VERSION} members ({} given)",
                    labels.len()
                ),
            });
        }
        if let Some(long) = labels.iter().find(|l| l.len() > 100) {
            return Err(ControlPlaneError::InvalidState {
                operation: op.into(),
                detail: format!(
                    "ValidationException: a label must have 1 to 100 characters (one has {})",
                    long.len()
                ),
            });
        }
        let mut stored =
            self.read_stored(op, &path)?
                .ok_or_else(|| ControlPlaneError::NotFound {
                    what: format!("parameter {name}"),
                })?;
        let version = version.unwrap_or(stored.version);
        let (valid, invalid): (Vec<&String>, Vec<&String>) =
            labels.iter().partition(|l| label_is_valid(l));
        let target: &Vec<String> = if version == stored.version {
            &stored.labels
        } else {
            &stored
                .history
                .iter()
                .find(|h| h.version == version)
                .ok_or_else(|| ControlPlaneError::NotFound {
                    what: format!("version {version} of parameter {name}"),
                })?
                .labels
        };
        let mut added: Vec<String> = Vec::new();
        for l in &valid {
            if !target.contains(l) && !added.contains(l) {
                added.push((*l).clone());
            }
        }
        if target.len() + added.len() > MAX_LABELS_PER_VERSION {
            return Err(ControlPlaneError::QuotaExceeded {
                operation: op.into(),
                detail: format!(
                    "ParameterVersionLabelLimitExceeded: version {version} of {name} can have at most {MAX_LABELS_PER_VERSION} labels; move one or more to another version"
                ),
            });
        }
        // A label names one version: it leaves the version that had it.
        let moved = |labels: &mut Vec<String>| labels.retain(|l| !added.contains(l));
        if version == stored.version {
            for h in &mut stored.history {
                moved(&mut h.labels);
            }
            stored.labels.extend(added.iter().cloned());
        } else {
            moved(&mut stored.labels);
            for h in &mut stored.history {
                if h.version == version {
                    h.labels.extend(added.iter().cloned());
                } else {
                    moved(&mut h.labels);
                }
            }
        }
        self.replace(op, &path, &stored)?;
        Ok(LabelOutcome {
            version,
            invalid_labels: invalid.into_iter().cloned().collect(),
        })
    }

    /// GetParameterHistory: every kept version, oldest first.
    pub fn history(&self, name: &str) -> Result<Vec<ParameterVersion>, ControlPlaneError> {
        let op = "GetParameterHistory";
        let path = self.file(op, name)?;
        let stored = self
            .read_stored(op, &path)?
            .ok_or_else(|| ControlPlaneError::NotFound {
                what: format!("parameter {name}"),
            })?;
        let mut out: Vec<ParameterVersion> = stored
            .history
            .iter()
            .map(|h| ParameterVersion {
                version: h.version,
                labels: h.labels.clone(),
                last_modified: Some(h.last_modified),
            })
            .collect();
        out.push(ParameterVersion {
            version: stored.version,
            labels: stored.labels.clone(),
            last_modified: Some(stored.last_modified),
        });
        Ok(out)
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
        let Some(old) = stored
            .history
            .into_iter()
            .find(|h| matches(h.version, &h.labels))
        else {
            return Ok(None);
        };
        match (old.kind, old.value) {
            (Some(kind), Some(value)) => Ok(Some(parameter(
                stored.name,
                &kind,
                value,
                old.version,
                old.last_modified,
            ))),
            // Written before the store kept old values.
            _ => Err(failed(
                op,
                &path,
                format!("version {} was stored without its value", old.version),
            )),
        }
    }

    /// Rewrites a parameter's file atomically (temp file + rename).
    fn replace(&self, op: &str, path: &Path, stored: &Stored) -> Result<(), ControlPlaneError> {
        let text = serde_json::to_string(stored).map_err(|e| failed(op, path, e))?;
        let tmp = path.with_extension(format!(
            "tmp{}-{}",
            std::process::id(),
            OffsetDateTime::now_utc().unix_timestamp_nanos()
        ));
        write_new(&tmp, &text).map_err(|e| failed(op, &tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            failed(op, path, e)
        })
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
    fn labels_move_between_versions_as_parameter_store_moves_them() {
        let dir = crate::valkey::server::unique_temp_dir("params-labels");
        let store = ParamStore::new(&dir);
        let name = "/app/dev/redis/url";
        let labels = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(matches!(
            store.label(name, None, &labels(&["current"])),
            Err(ControlPlaneError::NotFound { .. })
        ));
        for v in ["one", "two", "three"] {
            put_value(&store, name, v, true).expect("put");
        }
        // The newest version by default; invalid labels are returned, not attached.
        let out = store
            .label(
                name,
                None,
                &labels(&["current", "9lives", "AWS-x", "ssmthing", "a b", "run-1.2_x"]),
            )
            .expect("label");
        assert_eq!(out.version, 3);
        assert_eq!(
            out.invalid_labels,
            labels(&["9lives", "AWS-x", "ssmthing", "a b"])
        );
        // A label moves: `current` onto version 2 leaves version 3.
        store
            .label(name, Some(2), &labels(&["current"]))
            .expect("move");
        let h = store.history(name).expect("history");
        assert_eq!(h.iter().map(|v| v.version).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(h[1].labels, labels(&["current"]));
        assert_eq!(h[2].labels, labels(&["run-1.2_x"]));
        // A new version keeps the labels of the old ones where they were.
        put_value(&store, name, "four", true).expect("put");
        let h = store.history(name).expect("history");
        assert_eq!(h[1].labels, labels(&["current"]));
        assert!(h[3].labels.is_empty());
        assert!(matches!(
            store.label(name, Some(9), &labels(&["x"])),
            Err(ControlPlaneError::NotFound { .. })
        ));
        // At most 10 labels per version; labelling again with the same ones is no change.
        let ten: Vec<String> = (0..10).map(|i| format!("l{i}")).collect();
        store.label(name, Some(1), &ten).expect("ten labels");
        store
            .label(name, Some(1), &ten)
            .expect("the same ten again");
        assert!(matches!(
            store.label(name, Some(1), &labels(&["eleventh"])),
            Err(ControlPlaneError::QuotaExceeded { .. })
        ));
        assert!(store.label(name, Some(1), &[]).is_err());
        assert!(store.label(name, Some(1), &["x".repeat(101)]).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_oldest_version_goes_after_100_unless_labelled() {
        let dir = crate::valkey::server::unique_temp_dir("params-versions");
        let store = ParamStore::new(&dir);
        let name = "/app/dev/many";
        put_value(&store, name, "v", false).expect("put");
        store
            .label(name, Some(1), &["first".to_string()])
            .expect("label");
        for _ in 2..=MAX_VERSIONS {
            put_value(&store, name, "v", false).expect("put");
        }
        assert!(matches!(
            put_value(&store, name, "v", false),
            Err(ControlPlaneError::QuotaExceeded { .. })
        ));
        store
            .label(name, None, &["first".to_string()])
            .expect("move the label to the newest");
        assert_eq!(put_value(&store, name, "v", false).expect("put"), 101);
        let h = store.history(name).expect("history");
        assert_eq!(h.len(), MAX_VERSIONS);
        assert_eq!(h[0].version, 2);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn versions_are_read_back_by_number_and_label() {
        let dir = crate::valkey::server::unique_temp_dir("params-selectors");
        let store = ParamStore::new(&dir);
        let name = "/storefront-dev/redis/url";
        put_value(&store, name, "old", true).expect("v1");
        put_value(&store, name, "new", true).expect("v2");
        let at = |sel: ParameterSelector| {
            store
                .get_at(name, &sel)
                .expect("get")
                .map(|p| (p.version, p.kind, p.value.expose().to_string()))
        };
        let secure = ParameterType::SecureString;
        assert_eq!(
            at(ParameterSelector::Version(1)),
            Some((1, secure, "old".into()))
        );
        assert_eq!(
            at(ParameterSelector::Version(2)),
            Some((2, secure, "new".into()))
        );
        assert_eq!(at(ParameterSelector::Version(3)), None);
        store
            .label(name, Some(1), &["before-x".to_string()])
            .expect("label");
        assert_eq!(
            at(ParameterSelector::Label("before-x".into())),
            Some((1, secure, "old".into()))
        );
        assert_eq!(at(ParameterSelector::Label("other".into())), None);
        assert_eq!(
            store
                .get_at("/nothing/here", &ParameterSelector::Version(1))
                .expect("get")
                .map(|p| p.version),
            None
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
