//! The runbook file format as serde types (TOML). Spans are kept on every value a later
//! check may complain about, so errors point at file:line:col. See docs/runbooks.md.

use crate::domain::CacheKind;
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// A runbook file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunbookFile {
    /// Unique name, kebab-case; what `cachedeck run NAME` takes.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// One line shown in lists.
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// Cache kinds it makes sense for.
    #[schemars(with = "Vec<CacheKindSchema>")]
    pub applies_to: Vec<Spanned<CacheKind>>,
    /// Typed parameters, given with `--param name=value`.
    #[serde(default)]
    pub params: BTreeMap<String, ParamDef>,
    /// Read-only checks run before any step; a failing precondition stops the run.
    #[serde(default)]
    pub preconditions: Vec<StepDef>,
    pub steps: Vec<StepDef>,
    /// Steps run only when a step's `on_failure = "rollback"` names them.
    #[serde(default)]
    pub rollback: Vec<StepDef>,
}

/// The schema twin of [`CacheKind`] (the domain stays free of schema derives).
#[derive(JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[allow(dead_code)]
enum CacheKindSchema {
    ReplicationGroup,
    Serverless,
    CacheCluster,
    EcsService,
    Endpoint,
}

/// The type of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ParamType {
    String,
    Int,
    Bool,
    Duration,
    Enum,
    List,
}

/// One parameter.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParamDef {
    #[serde(rename = "type")]
    #[schemars(with = "ParamType")]
    pub kind: Spanned<ParamType>,
    /// Without a default the parameter is required.
    #[schemars(with = "Option<serde_json::Value>")]
    pub default: Option<Spanned<toml::Value>>,
    /// The allowed values of an `enum` parameter.
    #[serde(default)]
    pub values: Vec<String>,
    #[serde(default)]
    pub description: String,
}

/// What to do when a step fails after its retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailureDef {
    /// Stop the run (the default).
    #[default]
    Abort,
    /// Record the failure and go on with the next step.
    Continue,
    /// Run the `[[rollback]]` step named by `rollback`, then stop.
    Rollback,
}

/// One step (or precondition, or rollback step).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepDef {
    /// Unique within the runbook; later steps refer to `steps.<id>.outputs.<name>`.
    #[schemars(with = "String")]
    pub id: Spanned<String>,
    #[serde(default)]
    pub title: Option<String>,
    /// A built-in action (`cachedeck runbooks actions` lists them).
    #[schemars(with = "String")]
    pub action: Spanned<String>,
    /// The action's inputs; strings may hold `{{ params.x }}`, `{{ steps.id.outputs.y }}`,
    /// `{{ cache.name }}`, `{{ env.name }}`, `{{ run.id }}`.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub inputs: BTreeMap<String, Spanned<toml::Value>>,
    /// Must be true when the action mutates anything.
    #[serde(default)]
    pub dangerous: bool,
    /// Ask the operator before this step.
    #[serde(default)]
    pub confirm: bool,
    /// A bool parameter (e.g. `dry_run`) that, when true for a run, makes this dangerous step
    /// look-only: read-only environments allow it, nothing asks to confirm, no lock is taken.
    /// The action must honour the same parameter and write nothing then.
    #[schemars(with = "Option<String>")]
    pub dangerous_unless: Option<Spanned<String>>,
    /// Deadline of one attempt, e.g. `30s`, `20m` (default 60s).
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Spanned<String>>,
    /// Extra attempts after a retryable failure (network, throttling, timeout).
    #[serde(default)]
    pub retries: u32,
    /// First pause between attempts, doubled each time (default 1s).
    #[schemars(with = "Option<String>")]
    pub backoff: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<OnFailureDef>")]
    pub on_failure: Option<Spanned<OnFailureDef>>,
    /// The rollback step to run when `on_failure = "rollback"`.
    #[schemars(with = "Option<String>")]
    pub rollback: Option<Spanned<String>>,
}

/// The JSON schema of runbook files (shipped as `assets/runbook.schema.json`; editors with
/// TOML schema support, e.g. taplo, use it for completion and checks).
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(RunbookFile);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
