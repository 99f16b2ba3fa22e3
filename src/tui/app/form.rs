//! The parameter form of a runbook: one text field per typed parameter (its default filled
//! in), a dry-run toggle, and validation exactly as the engine binds parameters
//! (`Param::parse`, then `bind_params`), with each error shown on its own field.

use crate::runbook::file::ParamType;
use crate::runbook::validate::{Runbook, bind_params};
use crate::runbook::value::Value;

/// One parameter being edited.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub kind: &'static str,
    pub description: String,
    /// The default as text, if the parameter has one.
    pub default: Option<String>,
    pub text: String,
    pub error: Option<String>,
}

/// The form of one runbook for one cache.
#[derive(Debug, Clone)]
pub struct Form {
    pub env: String,
    pub cache: String,
    pub runbook: Runbook,
    pub fields: Vec<Field>,
    /// Index of the focused row; `fields.len()` is the dry-run toggle.
    pub focus: usize,
    pub dry_run: bool,
    /// A problem that belongs to no single field.
    pub error: Option<String>,
    /// The picker's list, to go back to it with Esc.
    pub picked_from: Vec<Runbook>,
}

/// A default as the operator would type it (a list as `a, b`, not JSON).
fn default_text(v: &Value) -> String {
    match v {
        Value::Json(serde_json::Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        other => other.display(),
    }
}

fn kind_name(kind: ParamType) -> &'static str {
    match kind {
        ParamType::String => "string",
        ParamType::Int => "int",
        ParamType::Bool => "bool",
        ParamType::Duration => "duration",
        ParamType::Enum => "enum",
        ParamType::List => "list",
    }
}

impl Form {
    pub fn new(env: &str, cache: &str, runbook: Runbook, picked_from: Vec<Runbook>) -> Form {
        let fields = runbook
            .params
            .iter()
            .map(|p| {
                let default = p.default.as_ref().map(default_text);
                let description = if p.values.is_empty() {
                    p.description.clone()
                } else {
                    format!("{} (one of {})", p.description, p.values.join(", "))
                };
                Field {
                    name: p.name.clone(),
                    kind: kind_name(p.kind),
                    description,
                    text: default.clone().unwrap_or_default(),
                    default,
                    error: None,
                }
            })
            .collect();
        Form {
            env: env.to_string(),
            cache: cache.to_string(),
            runbook,
            fields,
            focus: 0,
            dry_run: false,
            error: None,
            picked_from,
        }
    }

    /// Moves the focus by `by` rows, wrapping (the dry-run toggle is the last row).
    pub fn move_focus(&mut self, by: isize) {
        let rows = self.fields.len() as isize + 1;
        self.focus = (self.focus as isize + by).rem_euclid(rows) as usize;
    }

    /// A typed character: text for a field; Space toggles the dry run on its row.
    pub fn input(&mut self, c: char) {
        match self.fields.get_mut(self.focus) {
            Some(field) if !c.is_control() => {
                field.text.push(c);
                field.error = None;
            }
            Some(_) => {}
            None if c == ' ' => self.dry_run = !self.dry_run,
            None => {}
        }
    }

    pub fn backspace(&mut self) {
        if let Some(field) = self.fields.get_mut(self.focus) {
            field.text.pop();
            field.error = None;
        }
    }

    /// Whether a run with the values as typed would change the cache (a `dangerous_unless`
    /// flag can make a step look-only); unparsable values count as the worst case.
    pub fn mutates(&self) -> bool {
        let flag = |name: &str| {
            let field = self.fields.iter().find(|f| f.name == name)?;
            match self.runbook.param(name)?.parse(&field.text).ok()? {
                Value::Json(v) => v.as_bool(),
                Value::Secret(_) => None,
            }
        };
        self.runbook.clone().for_params(flag).mutates()
    }

    /// Checks every field as the engine would. `Some` holds the `name=value` pairs to run
    /// with; `None` leaves each problem on its field (and the focus on the first one).
    pub fn validate(&mut self) -> Option<Vec<(String, String)>> {
        self.error = None;
        let mut given = Vec::new();
        let mut first_bad = None;
        for (i, field) in self.fields.iter_mut().enumerate() {
            field.error = None;
            let Some(param) = self.runbook.param(&field.name) else {
                continue;
            };
            if field.text.trim().is_empty() && param.default.is_none() {
                field.error = Some(format!("needs a value ({})", param.description));
            } else if let Err(e) = param.parse(&field.text) {
                field.error = Some(e);
            } else {
                given.push((field.name.clone(), field.text.clone()));
            }
            if field.error.is_some() && first_bad.is_none() {
                first_bad = Some(i);
            }
        }
        if let Some(i) = first_bad {
            self.focus = i;
            return None;
        }
        // The engine's own binding, so the form can never accept what a run would refuse.
        match bind_params(&self.runbook, &given) {
            Ok(_) => Some(given),
            Err(e) => {
                self.error = Some(e);
                None
            }
        }
    }
}
