//! `{{ ... }}` references in step inputs: parsing (for validation) and resolution (at run
//! time). A string that is exactly one reference takes the referenced value with its type
//! (an int stays an int, a secret stays a secret); references inside longer text are
//! interpolated as text, and interpolating a secret makes the whole string secret.

use crate::runbook::value::{SecretValue, Value, Values};
use std::collections::BTreeMap;

/// What a `{{ ... }}` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ref {
    Param(String),
    /// `steps.ID.outputs.NAME`, optionally `.KEY...` into a map output (e.g. INFO fields).
    Output {
        step: String,
        output: String,
        path: Vec<String>,
    },
    /// `cache.name`, `cache.kind`, `cache.endpoint`, `env.name`, `run.id`.
    Builtin(String),
}

/// The built-in names a template may use.
pub const BUILTINS: [&str; 5] = [
    "cache.name",
    "cache.kind",
    "cache.endpoint",
    "env.name",
    "run.id",
];

/// One reference in a string, with its byte range (`{{` to `}}`) in that string.
#[derive(Debug, Clone)]
pub struct Found {
    pub reference: Ref,
    pub start: usize,
    pub end: usize,
}

/// Finds every reference in `s`; `Err((offset, message))` for a malformed one.
pub fn find_refs(s: &str) -> Result<Vec<Found>, (usize, String)> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(open) = s[at..].find("{{").map(|i| i + at) {
        let close = s[open..]
            .find("}}")
            .map(|i| i + open)
            .ok_or((open, "`{{` without a closing `}}`".to_string()))?;
        let inner = s[open + 2..close].trim();
        found.push(Found {
            reference: parse_ref(inner).map_err(|m| (open, m))?,
            start: open,
            end: close + 2,
        });
        at = close + 2;
    }
    Ok(found)
}

fn parse_ref(inner: &str) -> Result<Ref, String> {
    let parts: Vec<&str> = inner.split('.').collect();
    match parts.as_slice() {
        ["params", name] if !name.is_empty() => Ok(Ref::Param((*name).to_string())),
        ["steps", step, "outputs", output, path @ ..]
            if !step.is_empty() && !output.is_empty() && path.iter().all(|p| !p.is_empty()) =>
        {
            Ok(Ref::Output {
                step: (*step).to_string(),
                output: (*output).to_string(),
                path: path.iter().map(|p| (*p).to_string()).collect(),
            })
        }
        _ if BUILTINS.contains(&inner) => Ok(Ref::Builtin(inner.to_string())),
        _ => Err(format!(
            "`{{{{ {inner} }}}}` is not a reference; use params.NAME, steps.ID.outputs.NAME, or one of {}",
            BUILTINS.join(", ")
        )),
    }
}

/// What references resolve against.
#[derive(Debug, Default)]
pub struct Scope {
    pub params: Values,
    pub steps: BTreeMap<String, Values>,
    pub builtins: BTreeMap<String, String>,
    /// In a dry run, outputs of steps that have not run show as `<steps.id.outputs.y>`.
    pub placeholders: bool,
}

impl Scope {
    fn lookup(&self, r: &Ref) -> Result<Value, String> {
        match r {
            Ref::Param(name) => {
                self.params.get(name).cloned().ok_or_else(|| {
                    format!("parameter `{name}` has no value; pass --param {name}=...")
                })
            }
            Ref::Output { step, output, path } => {
                match self.steps.get(step).and_then(|v| v.get(output)) {
                    Some(Value::Json(j)) if !path.is_empty() => {
                        let mut at = j;
                        for key in path {
                            at = at.get(key.as_str()).ok_or_else(|| {
                                format!(
                                    "output `{output}` of step `{step}` has no `{}`",
                                    path.join(".")
                                )
                            })?;
                        }
                        Ok(Value::Json(at.clone()))
                    }
                    Some(v) => Ok(v.clone()),
                    None if self.placeholders => {
                        Ok(Value::str(format!("<steps.{step}.outputs.{output}>")))
                    }
                    None => Err(format!(
                        "step `{step}` produced no output `{output}` (did it run and succeed?)"
                    )),
                }
            }
            Ref::Builtin(name) => self
                .builtins
                .get(name)
                .map(Value::str)
                .ok_or_else(|| format!("`{name}` is not known for this run")),
        }
    }

    /// Resolves every reference inside a JSON input value.
    pub fn resolve(&self, v: &serde_json::Value) -> Result<Value, String> {
        use serde_json::Value as J;
        match v {
            J::String(s) => self.resolve_str(s),
            J::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    match self.resolve(item)? {
                        Value::Json(j) => out.push(j),
                        Value::Secret(_) => {
                            return Err("a secret cannot be placed inside a list".into());
                        }
                    }
                }
                Ok(Value::Json(J::Array(out)))
            }
            J::Object(map) => {
                let mut out = serde_json::Map::new();
                for (k, item) in map {
                    match self.resolve(item)? {
                        Value::Json(j) => {
                            out.insert(k.clone(), j);
                        }
                        Value::Secret(_) => {
                            return Err("a secret cannot be placed inside a table".into());
                        }
                    }
                }
                Ok(Value::Json(J::Object(out)))
            }
            other => Ok(Value::Json(other.clone())),
        }
    }

    fn resolve_str(&self, s: &str) -> Result<Value, String> {
        let refs = find_refs(s).map_err(|(_, m)| m)?;
        if let [only] = refs.as_slice()
            && only.start == 0
            && only.end == s.len()
        {
            return self.lookup(&only.reference);
        }
        let mut out = String::with_capacity(s.len());
        let mut secret = false;
        let mut at = 0;
        for f in &refs {
            out.push_str(&s[at..f.start]);
            match self.lookup(&f.reference)? {
                Value::Secret(sv) => {
                    secret = true;
                    out.push_str(sv.expose());
                }
                v => out.push_str(&v.display()),
            }
            at = f.end;
        }
        out.push_str(&s[at..]);
        Ok(if secret {
            Value::Secret(SecretValue::new(out))
        } else {
            Value::str(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_reference_keeps_type_and_text_interpolates() {
        let mut scope = Scope::default();
        scope.params.insert("n", Value::int(3));
        scope.builtins.insert("cache.name".into(), "orders".into());
        let v = scope
            .resolve(&serde_json::json!("{{ params.n }}"))
            .expect("resolves");
        assert_eq!(v.display(), "3");
        assert!(matches!(v, Value::Json(serde_json::Value::Number(_))));
        let v = scope
            .resolve(&serde_json::json!("k:{{cache.name}}:{{ params.n }}"))
            .expect("resolves");
        assert_eq!(v.display(), "k:orders:3");
    }

    #[test]
    fn malformed_references_are_reported_with_offset() {
        assert_eq!(find_refs("ab {{ params.x").err().map(|e| e.0), Some(3));
        assert!(find_refs("{{ steps.a.b }}").is_err());
        assert!(find_refs("{{ bogus }}").is_err());
    }

    #[test]
    fn interpolated_secret_stays_secret() {
        let mut scope = Scope::default();
        scope.steps.insert(
            "gen".into(),
            Values::new().with("token", Value::Secret(SecretValue::new("tok"))),
        );
        let v = scope
            .resolve(&serde_json::json!("Bearer {{ steps.gen.outputs.token }}"))
            .expect("resolves");
        assert!(v.is_secret());
    }
}
