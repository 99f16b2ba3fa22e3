//! Runbook parameters after checking: their types, defaults, and binding `--param` text.

use super::Runbook;
use crate::runbook::file::ParamType;
use crate::runbook::value::{Value, ValueKind, Values, check_kind};

/// A parameter after checking.
#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    pub kind: ParamType,
    pub default: Option<Value>,
    pub values: Vec<String>,
    pub description: String,
}

impl Param {
    /// Parses `--param name=TEXT` into this parameter's type.
    pub fn parse(&self, text: &str) -> Result<Value, String> {
        let v = match self.kind {
            ParamType::Int => text
                .trim()
                .parse::<i64>()
                .map(Value::int)
                .map_err(|_| format!("`{text}` is not an integer"))?,
            ParamType::Bool => match text.trim() {
                "true" | "yes" | "1" => Value::bool(true),
                "false" | "no" | "0" => Value::bool(false),
                _ => return Err(format!("`{text}` is not true or false")),
            },
            ParamType::List => Value::Json(serde_json::Value::Array(
                text.split(',')
                    .map(|s| serde_json::Value::String(s.trim().to_string()))
                    .filter(|s| s.as_str() != Some(""))
                    .collect(),
            )),
            _ => Value::str(text),
        };
        self.check(&v)?;
        Ok(v)
    }

    pub(super) fn check(&self, v: &Value) -> Result<(), String> {
        match self.kind {
            ParamType::Enum => {
                let s = v.display();
                if self.values.contains(&s) {
                    Ok(())
                } else {
                    Err(format!("`{s}` is not one of {}", self.values.join(", ")))
                }
            }
            kind => check_kind(value_kind(kind), v),
        }
    }
}

fn value_kind(kind: ParamType) -> ValueKind {
    match kind {
        ParamType::String | ParamType::Enum => ValueKind::String,
        ParamType::Int => ValueKind::Int,
        ParamType::Bool => ValueKind::Bool,
        ParamType::Duration => ValueKind::Duration,
        ParamType::List => ValueKind::List,
    }
}

pub(super) fn type_name(kind: ParamType) -> &'static str {
    match kind {
        ParamType::String => "string",
        ParamType::Int => "int",
        ParamType::Bool => "bool",
        ParamType::Duration => "duration",
        ParamType::Enum => "enum",
        ParamType::List => "list",
    }
}

/// Checks `--param` values against a runbook and fills defaults; `Err` names the problem.
pub fn bind_params(runbook: &Runbook, given: &[(String, String)]) -> Result<Values, String> {
    let mut values = Values::new();
    for (name, text) in given {
        let param = runbook.param(name).ok_or_else(|| {
            format!(
                "runbook `{}` has no parameter `{name}`; it has: {}",
                runbook.name,
                runbook
                    .params
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        let v = param
            .parse(text)
            .map_err(|e| format!("--param {name}: {e}"))?;
        values.insert(name.clone(), v);
    }
    let mut missing = Vec::new();
    for p in &runbook.params {
        if values.get(&p.name).is_none() {
            match &p.default {
                Some(d) => values.insert(p.name.clone(), d.clone()),
                None => missing.push(p),
            }
        }
    }
    match missing.as_slice() {
        [] => {}
        [p] => {
            return Err(format!(
                "runbook `{}` needs --param {}=... ({})",
                runbook.name, p.name, p.description
            ));
        }
        several => {
            // Every missing one at once, so a person fixes the command line in one go.
            let list = several
                .iter()
                .map(|p| format!("--param {}=... ({})", p.name, p.description))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(format!(
                "runbook `{}` needs {} parameters: {list}",
                runbook.name,
                several.len()
            ));
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runbook::{actions, catalog};

    fn restore() -> Runbook {
        catalog::find("restore", &actions::builtin()).expect("the built-in restore runbook")
    }

    #[test]
    fn names_every_missing_parameter_at_once() {
        let err = bind_params(&restore(), &[]).expect_err("snapshot and target are required");
        assert!(err.contains("needs 2 parameters"), "{err}");
        assert!(err.contains("--param snapshot=..."), "{err}");
        assert!(err.contains("--param target=..."), "{err}");
    }

    #[test]
    fn names_the_one_missing_parameter() {
        let given = [("snapshot".to_string(), "snap-1".to_string())];
        let err = bind_params(&restore(), &given).expect_err("target is required");
        assert!(
            err.starts_with("runbook `restore` needs --param target=..."),
            "{err}"
        );
        let given = [
            ("snapshot".to_string(), "snap-1".to_string()),
            ("target".to_string(), "orders-restored".to_string()),
        ];
        let values = bind_params(&restore(), &given).expect("both given");
        assert!(values.get("target").is_some());
    }
}
