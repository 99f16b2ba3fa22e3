//! Turns runbook text into a checked [`Runbook`]: parse errors and every semantic error
//! (unknown action, input or reference, duplicate step id, bad duration, forward reference
//! or cycle, undeclared dangerous step) at file:line:col with a fix.

use crate::config::hint;
use crate::domain::CacheKind;
use crate::runbook::action::Registry;
use crate::runbook::file::{OnFailureDef, ParamType, RunbookFile, StepDef};
use crate::runbook::value::{Value, check_kind};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use toml::Spanned;

mod params;
mod refs;

use params::type_name;
pub use params::{Param, bind_params};
use refs::check_refs;

/// Default deadline of one step attempt.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default first pause between attempts.
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);

/// A runbook file that cannot be used, with where and how to fix it.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{path}:{line}:{column}: {message}\n  fix: {hint}")]
pub struct RunbookError {
    pub path: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub hint: String,
}

/// Where a step sits in a runbook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Precondition,
    Main,
    Rollback,
}

/// What a failing step leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnFailure {
    Abort,
    Continue,
    Rollback(String),
}

/// A step after checking.
#[derive(Debug, Clone)]
pub struct Step {
    pub id: String,
    pub title: String,
    pub action: String,
    /// Input templates (JSON with `{{ }}` references), defaults of the action applied.
    pub inputs: BTreeMap<String, serde_json::Value>,
    pub dangerous: bool,
    pub confirm: bool,
    /// The bool parameter that, when true, makes this step look-only (see [`Runbook::for_params`]).
    pub dangerous_unless: Option<String>,
    pub timeout: Duration,
    pub retries: u32,
    pub backoff: Duration,
    pub on_failure: OnFailure,
    pub phase: Phase,
}

/// A checked runbook, ready to run.
#[derive(Debug, Clone)]
pub struct Runbook {
    pub name: String,
    pub title: String,
    pub description: String,
    pub applies_to: Vec<CacheKind>,
    pub params: Vec<Param>,
    /// Preconditions first, then the main steps, in file order.
    pub steps: Vec<Step>,
    pub rollback: Vec<Step>,
    /// Where it came from: `builtin` or a file path.
    pub source: String,
    pub text: String,
    /// SHA-256 of the text, hex: the journal records it so resume runs the same runbook.
    pub hash: String,
}

/// Two checked runbooks are the same when they come from the same text (its hash) and
/// source, and [`Runbook::for_params`] left the same steps dangerous and confirmed.
impl PartialEq for Runbook {
    fn eq(&self, other: &Runbook) -> bool {
        let flags = |r: &Runbook| -> Vec<(bool, bool)> {
            r.steps
                .iter()
                .chain(&r.rollback)
                .map(|s| (s.dangerous, s.confirm))
                .collect()
        };
        self.hash == other.hash
            && self.source == other.source
            && self.name == other.name
            && flags(self) == flags(other)
    }
}

impl Runbook {
    /// Whether any step mutates (then the run takes the cache lock).
    pub fn mutates(&self) -> bool {
        self.steps.iter().chain(&self.rollback).any(|s| s.dangerous)
    }

    /// This runbook as it runs with `params`: a step whose `dangerous_unless` parameter is
    /// true is neither dangerous nor confirmed (the action writes nothing then), so protection,
    /// confirmation and the lock see what the run really does. `flag` reads a bool parameter.
    pub fn for_params(mut self, flag: impl Fn(&str) -> Option<bool>) -> Runbook {
        for s in self.steps.iter_mut().chain(self.rollback.iter_mut()) {
            if s.dangerous_unless.as_deref().and_then(&flag) == Some(true) {
                s.dangerous = false;
                s.confirm = false;
            }
        }
        self
    }

    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().chain(&self.rollback).find(|s| s.id == id)
    }

    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }
}

/// SHA-256 of runbook text, hex.
pub fn hash_text(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

struct Checker<'a> {
    path: &'a str,
    text: &'a str,
}

impl Checker<'_> {
    fn err(&self, at: usize, message: impl Into<String>, hint: impl Into<String>) -> RunbookError {
        let (line, column) = crate::config::line_col(self.text, at);
        RunbookError {
            path: self.path.to_string(),
            line,
            column,
            // Messages quote the file's text (e.g. an unknown variant): escaped, line by line.
            message: crate::escape::escape_lines(&message.into()),
            hint: crate::escape::escape_lines(&hint.into()),
        }
    }

    fn duration(
        &self,
        d: &Option<Spanned<String>>,
        default: Duration,
    ) -> Result<Duration, RunbookError> {
        match d {
            None => Ok(default),
            Some(s) => humantime::parse_duration(s.get_ref().trim()).map_err(|e| {
                self.err(
                    s.span().start,
                    format!("`{}` is not a duration ({e})", s.get_ref()),
                    "write a duration such as \"30s\", \"5m\" or \"1h 30m\"",
                )
            }),
        }
    }
}

/// Parses and checks runbook text; `path` is only used in messages.
pub fn parse(path: &str, text: &str, registry: &Registry) -> Result<Runbook, RunbookError> {
    let c = Checker { path, text };
    let file: RunbookFile = toml::from_str(text).map_err(|e| {
        let at = e.span().map(|s| s.start).unwrap_or(0);
        let message = e.message().trim().to_string();
        let hint = hint::hint_for(&message, &HINTS);
        c.err(at, message, hint)
    })?;
    check(&c, file, registry)
}

/// Runbook files' hints (see [`hint::hint_for`]).
const HINTS: hint::Hints = hint::Hints {
    doc: "docs/runbooks.md",
    otherwise: "see docs/runbooks.md for the format",
    special: &[(
        "invalid type",
        "give the value the type shown above (numbers unquoted, durations quoted)",
    )],
};

fn check(c: &Checker<'_>, file: RunbookFile, registry: &Registry) -> Result<Runbook, RunbookError> {
    let name = file.name.get_ref().clone();
    if name.is_empty()
        || !name
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
    {
        return Err(c.err(
            file.name.span().start,
            format!("runbook name `{name}` is not kebab-case"),
            "use lowercase letters, digits and `-`, e.g. \"failover-test\"",
        ));
    }
    let mut params = Vec::new();
    for (pname, def) in &file.params {
        let kind = *def.kind.get_ref();
        if kind == ParamType::Enum && def.values.is_empty() {
            return Err(c.err(
                def.kind.span().start,
                format!("enum parameter `{pname}` lists no values"),
                "add `values = [\"a\", \"b\"]`",
            ));
        }
        let mut param = Param {
            name: pname.clone(),
            kind,
            default: None,
            values: def.values.clone(),
            description: def.description.clone(),
        };
        if let Some(d) = &def.default {
            let json = serde_json::to_value(d.get_ref()).map_err(|e| {
                c.err(
                    d.span().start,
                    format!("default of `{pname}` cannot be used: {e}"),
                    "give a plain value",
                )
            })?;
            let v = Value::Json(json);
            param.check(&v).map_err(|p| {
                c.err(
                    d.span().start,
                    format!("default of parameter `{pname}` ({}): {p}", type_name(kind)),
                    format!("give a value of type {}", type_name(kind)),
                )
            })?;
            param.default = Some(v);
        }
        params.push(param);
    }
    let param_names: BTreeSet<&str> = file.params.keys().map(String::as_str).collect();
    let bool_params: BTreeSet<&str> = params
        .iter()
        .filter(|p| p.kind == ParamType::Bool)
        .map(|p| p.name.as_str())
        .collect();

    let mut seen: BTreeMap<String, &'static [crate::runbook::action::OutputSpec]> = BTreeMap::new();
    let mut steps = Vec::new();
    let rollback_ids: BTreeSet<&str> = file
        .rollback
        .iter()
        .map(|s| s.id.get_ref().as_str())
        .collect();
    let groups = [
        (Phase::Precondition, &file.preconditions),
        (Phase::Main, &file.steps),
        (Phase::Rollback, &file.rollback),
    ];
    let mut all_ids: BTreeSet<String> = BTreeSet::new();
    let mut rollback = Vec::new();
    for (phase, defs) in groups {
        for def in defs.iter() {
            let id = def.id.get_ref();
            if !all_ids.insert(id.clone()) {
                return Err(c.err(
                    def.id.span().start,
                    format!("duplicate step id `{id}`"),
                    "give every step (preconditions and rollback included) its own id",
                ));
            }
            if let Some(flag) = &def.dangerous_unless {
                if !def.dangerous {
                    return Err(c.err(
                        flag.span().start,
                        format!("step `{id}`: `dangerous_unless` on a step that is not dangerous"),
                        "remove `dangerous_unless`, or add `dangerous = true`",
                    ));
                }
                if !bool_params.contains(flag.get_ref().as_str()) {
                    return Err(c.err(
                        flag.span().start,
                        format!(
                            "step `{id}`: `dangerous_unless` names `{}`, which is not a bool parameter",
                            flag.get_ref()
                        ),
                        "name a parameter declared with `type = \"bool\"` (e.g. `dry_run`)",
                    ));
                }
            }
            let step = check_step(c, def, phase, registry, &param_names, &seen, &rollback_ids)?;
            if let Some(action) = registry.get(&step.action)
                && phase != Phase::Rollback
            {
                seen.insert(id.clone(), action.outputs());
            }
            if phase == Phase::Rollback {
                rollback.push(step);
            } else {
                steps.push(step);
            }
        }
    }
    if file.steps.is_empty() {
        return Err(c.err(
            0,
            "the runbook has no steps",
            "add at least one [[steps]] table",
        ));
    }
    Ok(Runbook {
        name,
        title: file.title,
        description: file.description,
        applies_to: file.applies_to.iter().map(|k| *k.get_ref()).collect(),
        params,
        steps,
        rollback,
        source: c.path.to_string(),
        text: c.text.to_string(),
        hash: hash_text(c.text),
    })
}

fn check_step(
    c: &Checker<'_>,
    def: &StepDef,
    phase: Phase,
    registry: &Registry,
    params: &BTreeSet<&str>,
    earlier: &BTreeMap<String, &'static [crate::runbook::action::OutputSpec]>,
    rollback_ids: &BTreeSet<&str>,
) -> Result<Step, RunbookError> {
    let id = def.id.get_ref().clone();
    let action_name = def.action.get_ref();
    let action = registry.get(action_name).ok_or_else(|| {
        c.err(
            def.action.span().start,
            format!("step `{id}`: unknown action `{action_name}`"),
            format!(
                "use one of: {}",
                registry.names().collect::<Vec<_>>().join(", ")
            ),
        )
    })?;
    if action.dangerous() && !def.dangerous {
        return Err(c.err(
            def.action.span().start,
            format!("step `{id}`: action `{action_name}` mutates, but the step does not say so"),
            "add `dangerous = true` (read-only environments will then refuse it)",
        ));
    }
    if phase == Phase::Precondition && def.dangerous {
        return Err(c.err(
            def.id.span().start,
            format!("precondition `{id}` is dangerous"),
            "preconditions only look; move it to [[steps]]",
        ));
    }
    let mut inputs = BTreeMap::new();
    for (name, value) in &def.inputs {
        let Some(spec) = action.inputs().iter().find(|s| s.name == name) else {
            return Err(c.err(
                value.span().start,
                format!("step `{id}`: action `{action_name}` has no input `{name}`"),
                format!(
                    "its inputs are: {}",
                    action
                        .inputs()
                        .iter()
                        .map(|s| s.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        let json = serde_json::to_value(value.get_ref()).map_err(|e| {
            c.err(
                value.span().start,
                format!("input `{name}` cannot be used: {e}"),
                "give a plain value",
            )
        })?;
        let mut has_refs = false;
        check_refs(
            c,
            &json,
            value.span(),
            &id,
            phase,
            params,
            earlier,
            &mut has_refs,
        )?;
        if !has_refs {
            check_kind(spec.kind, &Value::Json(json.clone())).map_err(|p| {
                c.err(
                    value.span().start,
                    format!("step `{id}`: input `{name}`: {p}"),
                    format!("give a value of type {}", spec.kind.as_str()),
                )
            })?;
        }
        inputs.insert(name.clone(), json);
    }
    if let Err(p) = action.check_written_inputs(&inputs) {
        let at = def
            .inputs
            .get(p.input)
            .map_or(def.id.span().start, |v| v.span().start);
        return Err(c.err(
            at,
            format!("step `{id}`: input `{}`: {}", p.input, p.problem),
            p.fix,
        ));
    }
    for spec in action.inputs() {
        if inputs.contains_key(spec.name) {
            continue;
        }
        if spec.required {
            return Err(c.err(
                def.id.span().start,
                format!(
                    "step `{id}`: action `{action_name}` needs input `{}`",
                    spec.name
                ),
                format!(
                    "add `{} = ...` under the step's inputs ({})",
                    spec.name, spec.doc
                ),
            ));
        }
        if let Some(d) = spec.default {
            let v = toml::from_str::<toml::Table>(&format!("v = {d}"))
                .ok()
                .and_then(|t| t.get("v").cloned())
                .and_then(|v| serde_json::to_value(v).ok());
            if let Some(v) = v {
                inputs.insert(spec.name.to_string(), v);
            }
        }
    }
    let on_failure = match def
        .on_failure
        .as_ref()
        .map(|s| *s.get_ref())
        .unwrap_or_default()
    {
        OnFailureDef::Abort => OnFailure::Abort,
        OnFailureDef::Continue => OnFailure::Continue,
        OnFailureDef::Rollback => {
            let at = def.on_failure.as_ref().map(|s| s.span().start).unwrap_or(0);
            let Some(target) = &def.rollback else {
                return Err(c.err(
                    at,
                    format!("step `{id}`: on_failure = \"rollback\" names no rollback step"),
                    "add `rollback = \"<id of a [[rollback]] step>\"`",
                ));
            };
            if phase == Phase::Rollback {
                return Err(c.err(
                    at,
                    format!("rollback step `{id}` cannot itself roll back"),
                    "use on_failure = \"abort\" or \"continue\" in [[rollback]] steps",
                ));
            }
            if !rollback_ids.contains(target.get_ref().as_str()) {
                return Err(c.err(
                    target.span().start,
                    format!("step `{id}`: no [[rollback]] step `{}`", target.get_ref()),
                    "name a step defined under [[rollback]]",
                ));
            }
            OnFailure::Rollback(target.get_ref().clone())
        }
    };
    if let (Some(r), false) = (&def.rollback, matches!(on_failure, OnFailure::Rollback(_))) {
        return Err(c.err(
            r.span().start,
            format!("step `{id}`: `rollback` is set but on_failure is not \"rollback\""),
            "add `on_failure = \"rollback\"` or remove `rollback`",
        ));
    }
    Ok(Step {
        title: def
            .title
            .clone()
            .unwrap_or_else(|| action.summary().to_string()),
        action: action_name.clone(),
        inputs,
        dangerous: def.dangerous,
        confirm: def.confirm,
        dangerous_unless: def.dangerous_unless.as_ref().map(|f| f.get_ref().clone()),
        timeout: c.duration(&def.timeout, DEFAULT_TIMEOUT)?,
        retries: def.retries,
        backoff: c.duration(&def.backoff, DEFAULT_BACKOFF)?,
        on_failure,
        phase,
        id,
    })
}
