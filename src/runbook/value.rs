//! Values that flow through a run: parameters, step inputs and step outputs.
//!
//! Public values are JSON. Secrets (tokens, passwords) are [`SecretValue`]s, which redact
//! themselves in `Debug` and refuse to serialize, so a secret can never reach the journal,
//! a JSON report or a log line by accident: the write fails instead.

use secrecy::{ExposeSecret, SecretString};
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// A secret value. `Debug` and `Display` print `[secret]`; `Serialize` fails.
#[derive(Clone)]
pub struct SecretValue(SecretString);

impl SecretValue {
    pub fn new(value: impl Into<String>) -> Self {
        SecretValue(SecretString::from(value.into()))
    }

    /// The secret for use (never for display).
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[secret]")
    }
}

impl Serialize for SecretValue {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(
            "a secret value cannot be serialized; keep it out of journals and reports",
        ))
    }
}

/// One value of a run.
#[derive(Clone, Debug)]
pub enum Value {
    Json(serde_json::Value),
    Secret(SecretValue),
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Json(v) => v.serialize(s),
            Value::Secret(v) => v.serialize(s),
        }
    }
}

impl Value {
    pub fn str(s: impl Into<String>) -> Value {
        Value::Json(serde_json::Value::String(s.into()))
    }

    pub fn int(i: i64) -> Value {
        Value::Json(serde_json::Value::from(i))
    }

    pub fn bool(b: bool) -> Value {
        Value::Json(serde_json::Value::Bool(b))
    }

    pub fn is_secret(&self) -> bool {
        matches!(self, Value::Secret(_))
    }

    /// The value as text for templates and messages; secrets show as `[secret]`.
    pub fn display(&self) -> String {
        match self {
            Value::Json(serde_json::Value::String(s)) => s.clone(),
            Value::Json(v) => v.to_string(),
            Value::Secret(_) => "[secret]".into(),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

/// The type of a parameter, an action input or an action output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    String,
    Int,
    Bool,
    /// Text such as `90s`, `5m`, `1h 30m` (humantime), or a number of seconds.
    Duration,
    /// A list of strings.
    List,
    /// A secret string: never journaled, never printed.
    Secret,
    /// Any JSON value (e.g. a map of INFO fields).
    Any,
}

impl ValueKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ValueKind::String => "string",
            ValueKind::Int => "int",
            ValueKind::Bool => "bool",
            ValueKind::Duration => "duration",
            ValueKind::List => "list",
            ValueKind::Secret => "secret",
            ValueKind::Any => "any",
        }
    }
}

/// Parses a duration written as humantime text or a number of seconds.
pub fn parse_duration(v: &serde_json::Value) -> Result<Duration, String> {
    match v {
        serde_json::Value::String(s) => humantime::parse_duration(s.trim())
            .map_err(|e| format!("`{s}` is not a duration ({e}); write e.g. `90s`, `5m`, `1h`")),
        serde_json::Value::Number(n) => n
            .as_u64()
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{n} is not a whole number of seconds")),
        other => Err(format!("expected a duration such as `5m`, found {other}")),
    }
}

/// Checks that `v` fits `kind`; `Err` says what was expected.
pub fn check_kind(kind: ValueKind, v: &Value) -> Result<(), String> {
    use serde_json::Value as J;
    match (kind, v) {
        (ValueKind::Any, _) => Ok(()),
        (ValueKind::Secret, Value::Secret(_)) => Ok(()),
        (_, Value::Secret(_)) => Err(format!("expected {}, found a secret", kind.as_str())),
        (ValueKind::Secret, Value::Json(_)) => Err("expected a secret value".into()),
        (ValueKind::String, Value::Json(J::String(_))) => Ok(()),
        (ValueKind::Int, Value::Json(J::Number(n))) if n.is_i64() => Ok(()),
        (ValueKind::Bool, Value::Json(J::Bool(_))) => Ok(()),
        (ValueKind::Duration, Value::Json(j)) => parse_duration(j).map(|_| ()),
        (ValueKind::List, Value::Json(J::Array(items))) if items.iter().all(J::is_string) => Ok(()),
        (k, Value::Json(j)) => Err(format!("expected {}, found {j}", k.as_str())),
    }
}

/// Named values: a step's resolved inputs or its outputs.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(transparent)]
pub struct Values(pub BTreeMap<String, Value>);

impl Values {
    pub fn new() -> Self {
        Values::default()
    }

    pub fn insert(&mut self, name: impl Into<String>, value: Value) {
        self.0.insert(name.into(), value);
    }

    /// Builder form of [`Values::insert`].
    pub fn with(mut self, name: impl Into<String>, value: Value) -> Self {
        self.insert(name, value);
        self
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// The bool value `name` holds, if it holds one.
    pub fn flag(&self, name: &str) -> Option<bool> {
        match self.0.get(name) {
            Some(Value::Json(v)) => v.as_bool(),
            _ => None,
        }
    }

    /// The public values only (secrets left out), for journals and reports.
    pub fn public(&self) -> BTreeMap<String, serde_json::Value> {
        self.0
            .iter()
            .filter_map(|(k, v)| match v {
                Value::Json(j) => Some((k.clone(), j.clone())),
                Value::Secret(_) => None,
            })
            .collect()
    }

    /// Names of the secret values (journaled by name only, so resume knows to re-observe).
    pub fn secret_names(&self) -> Vec<String> {
        self.0
            .iter()
            .filter(|(_, v)| v.is_secret())
            .map(|(k, _)| k.clone())
            .collect()
    }

    pub fn from_public(map: BTreeMap<String, serde_json::Value>) -> Self {
        Values(map.into_iter().map(|(k, v)| (k, Value::Json(v))).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_refuse_to_serialize_and_redact_debug() {
        let values = Values::new().with("user", Value::str("app")).with(
            "token",
            Value::Secret(SecretValue::new("s3cr3t-token-value")),
        );
        assert!(serde_json::to_string(&values).is_err());
        assert!(!format!("{values:?}").contains("s3cr3t"));
        let public = serde_json::to_string(&values.public()).expect("public values serialize");
        assert_eq!(public, r#"{"user":"app"}"#);
        assert_eq!(values.secret_names(), vec!["token".to_string()]);
    }

    #[test]
    fn kinds_are_checked() {
        assert!(check_kind(ValueKind::Duration, &Value::str("5m")).is_ok());
        assert!(check_kind(ValueKind::Duration, &Value::str("5 parsecs")).is_err());
        assert!(check_kind(ValueKind::Int, &Value::str("5")).is_err());
        assert!(check_kind(ValueKind::Int, &Value::int(5)).is_ok());
    }
}
