//! The contract between the runbook engine and the built-in actions a step can name.
//!
//! # Writing an action
//!
//! An action is a type implementing [`Action`], registered by name in
//! [`crate::runbook::actions::builtin`]. It declares:
//! - its typed [`inputs`](Action::inputs) and [`outputs`](Action::outputs): the validator
//!   checks every runbook step against them (unknown input, missing input, wrong type,
//!   reference to an output that does not exist) before anything runs;
//! - whether it is [`dangerous`](Action::dangerous) (mutates a cache or the control plane):
//!   a step using a dangerous action must say `dangerous = true`, read-only environments
//!   refuse it, and the engine writes an `intent` journal record before calling
//!   [`run`](Action::run) and a `done` record after;
//! - [`plan`](Action::plan): for `--dry-run`, the exact control-plane calls and Valkey
//!   commands `run` would make, without any I/O;
//! - [`observe`](Action::observe): for `runs resume`, whether an interrupted earlier attempt
//!   already took effect. A dangerous action whose effect can be seen (a parameter, a key,
//!   a "Test Failover API called" event after [`ActionContext::intent_at`]) must implement it,
//!   otherwise resume stops and asks the operator instead of risking a second mutation.
//!
//! While running, an action reports with [`ActionContext::progress`] (bars: done/total) and
//! [`ActionContext::output`] (live lines), journals checkpoints of long work with
//! [`ActionContext::checkpoint`] (handed back as [`ActionContext::resume_from`] when the
//! step is retried or resumed), waits with [`ActionContext::sleep`] (returns
//! [`ActionError::Interrupted`] on Ctrl-C) and polls with [`ActionContext::poll`]. The
//! engine applies the step's timeout and retries around `run`; long waits (snapshots,
//! failovers) should poll inside `run` with their own deadline input rather than rely on
//! retries. Secrets go in and out as [`Value::Secret`]: they are never journaled or printed.

use crate::controlplane::{ControlPlane, ControlPlaneError};
use crate::domain::{Cache, Environment};
use crate::runbook::events::{Event, EventSender};
use crate::runbook::value::{Value, ValueKind, Values, parse_duration};
use crate::valkey::connect::{ConnectError, ConnectOptions, Connector, NodeConnection};
use async_trait::async_trait;
use serde::Serialize;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

/// One input an action accepts.
#[derive(Debug, Clone, Copy)]
pub struct InputSpec {
    pub name: &'static str,
    pub kind: ValueKind,
    /// Required inputs have no default; optional ones use `default` (TOML text) or none.
    pub required: bool,
    /// The default as TOML-ish text (`"5s"`, `3`, `true`), applied when the step omits it.
    pub default: Option<&'static str>,
    pub doc: &'static str,
}

impl InputSpec {
    pub const fn required(name: &'static str, kind: ValueKind, doc: &'static str) -> Self {
        InputSpec {
            name,
            kind,
            required: true,
            default: None,
            doc,
        }
    }

    pub const fn optional(
        name: &'static str,
        kind: ValueKind,
        default: Option<&'static str>,
        doc: &'static str,
    ) -> Self {
        InputSpec {
            name,
            kind,
            required: false,
            default,
            doc,
        }
    }
}

/// One output an action produces (later steps refer to it as `steps.<id>.outputs.<name>`).
#[derive(Debug, Clone, Copy)]
pub struct OutputSpec {
    pub name: &'static str,
    pub kind: ValueKind,
    pub doc: &'static str,
}

/// Where a planned call goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "via", content = "target")]
pub enum Via {
    /// The environment's control plane (AWS APIs, or the sandbox's stand-ins).
    ControlPlane,
    /// A Valkey node or endpoint, `host:port`.
    Valkey(String),
    /// Nothing leaves the process (waits, checks).
    Local,
}

/// One call `run` would make, shown by `--dry-run`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedCall {
    #[serde(flatten)]
    pub via: Via,
    /// The call as an operator would recognise it, e.g.
    /// `ssm:PutParameter name=/cachedeck/locks/dev/orders overwrite=false` or `SET k v EX 600`.
    pub call: String,
    pub mutates: bool,
}

impl PlannedCall {
    pub fn control_plane(call: impl Into<String>, mutates: bool) -> Self {
        PlannedCall {
            via: Via::ControlPlane,
            call: call.into(),
            mutates,
        }
    }

    pub fn valkey(target: impl Into<String>, call: impl Into<String>, mutates: bool) -> Self {
        PlannedCall {
            via: Via::Valkey(target.into()),
            call: call.into(),
            mutates,
        }
    }

    pub fn local(call: impl Into<String>) -> Self {
        PlannedCall {
            via: Via::Local,
            call: call.into(),
            mutates: false,
        }
    }
}

/// What `observe` found about an earlier, interrupted attempt.
#[derive(Debug, Clone)]
pub enum Observation {
    /// The effect is not there: running the step is needed and safe.
    NotDone,
    /// The effect is in place; these are the outputs the step would have produced.
    Done(Values),
    /// It cannot be told; the engine stops rather than risk repeating a mutation.
    Unknown(String),
    /// Part of the effect is in place (what, in words) and running the step again safely
    /// continues it (e.g. from its last checkpoint): the engine runs it.
    Partial(String),
}

/// Why an action failed. Texts are lowercase fragments that read after "failed to …".
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// An input is missing or of the wrong type (a bug in the runbook the validator missed).
    #[error("use input `{name}`: {problem}")]
    Input { name: String, problem: String },
    #[error(transparent)]
    ControlPlane(#[from] ControlPlaneError),
    #[error("{0}")]
    Valkey(#[from] ConnectError),
    /// The action ran and its check did not hold (e.g. a marker read back differs).
    #[error("{0}")]
    Failed(String),
    /// A wait or poll ran out of time.
    #[error("{what} within {after:?}")]
    Timeout { what: String, after: Duration },
    /// The run was cancelled (Ctrl-C); the engine records `interrupted`.
    #[error("finish: interrupted")]
    Interrupted,
}

impl ActionError {
    pub fn failed(msg: impl Into<String>) -> Self {
        ActionError::Failed(msg.into())
    }

    /// Whether a retry could help (network trouble, throttling, timeouts); a failed check,
    /// bad input or a refused operation will fail the same way again.
    pub fn retryable(&self) -> bool {
        match self {
            ActionError::ControlPlane(e) => matches!(
                e,
                ControlPlaneError::Throttled { .. }
                    | ControlPlaneError::Timeout { .. }
                    | ControlPlaneError::Unreachable { .. }
            ),
            ActionError::Valkey(_) | ActionError::Timeout { .. } => true,
            ActionError::Input { .. } | ActionError::Failed(_) | ActionError::Interrupted => false,
        }
    }
}

/// A step's resolved inputs with typed accessors (defaults already applied).
#[derive(Clone, Debug, Default)]
pub struct Inputs(pub Values);

impl Inputs {
    fn bad(name: &str, problem: impl Into<String>) -> ActionError {
        ActionError::Input {
            name: name.to_string(),
            problem: problem.into(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    fn json(&self, name: &str) -> Result<Option<&serde_json::Value>, ActionError> {
        match self.0.get(name) {
            None | Some(Value::Json(serde_json::Value::Null)) => Ok(None),
            Some(Value::Json(v)) => Ok(Some(v)),
            Some(Value::Secret(_)) => {
                Err(Self::bad(name, "is a secret where plain text is expected"))
            }
        }
    }

    pub fn opt_str(&self, name: &str) -> Result<Option<&str>, ActionError> {
        match self.json(name)? {
            None => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(Self::bad(name, format!("expected text, found {other}"))),
        }
    }

    pub fn str(&self, name: &str) -> Result<&str, ActionError> {
        self.opt_str(name)?
            .ok_or_else(|| Self::bad(name, "is missing"))
    }

    pub fn opt_int(&self, name: &str) -> Result<Option<i64>, ActionError> {
        match self.json(name)? {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| Self::bad(name, format!("expected an integer, found {v}"))),
        }
    }

    pub fn int(&self, name: &str) -> Result<i64, ActionError> {
        self.opt_int(name)?
            .ok_or_else(|| Self::bad(name, "is missing"))
    }

    pub fn bool(&self, name: &str) -> Result<bool, ActionError> {
        match self.json(name)? {
            None => Err(Self::bad(name, "is missing")),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| Self::bad(name, format!("expected true or false, found {v}"))),
        }
    }

    pub fn opt_duration(&self, name: &str) -> Result<Option<Duration>, ActionError> {
        match self.json(name)? {
            None => Ok(None),
            Some(v) => parse_duration(v).map(Some).map_err(|p| Self::bad(name, p)),
        }
    }

    pub fn duration(&self, name: &str) -> Result<Duration, ActionError> {
        self.opt_duration(name)?
            .ok_or_else(|| Self::bad(name, "is missing"))
    }

    pub fn list(&self, name: &str) -> Result<Vec<String>, ActionError> {
        match self.json(name)? {
            None => Ok(Vec::new()),
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| Self::bad(name, format!("expected text items, found {i}")))
                })
                .collect(),
            Some(other) => Err(Self::bad(name, format!("expected a list, found {other}"))),
        }
    }

    pub fn secret(&self, name: &str) -> Result<&crate::runbook::value::SecretValue, ActionError> {
        match self.0.get(name) {
            Some(Value::Secret(s)) => Ok(s),
            Some(_) => Err(Self::bad(
                name,
                "must come from a secret output, not plain text",
            )),
            None => Err(Self::bad(name, "is missing")),
        }
    }

    /// The input as text for plans and messages (`<unknown until run>` placeholders included).
    pub fn show(&self, name: &str) -> String {
        self.0
            .get(name)
            .map(Value::display)
            .unwrap_or_else(|| "<unset>".into())
    }
}

/// What `plan` may look at: the target, no I/O.
#[derive(Debug, Clone)]
pub struct PlanContext<'a> {
    pub env: &'a Environment,
    pub cache: &'a Cache,
}

/// What a running action may use. One per step attempt.
pub struct ActionContext {
    pub env: Environment,
    pub cache: Cache,
    pub plane: Arc<dyn ControlPlane>,
    pub run_id: String,
    pub step_id: String,
    pub attempt: u32,
    /// When the write-ahead `intent` record of this step was written by an earlier attempt
    /// (set for `observe` on resume): effects seen after this time are this run's.
    pub intent_at: Option<OffsetDateTime>,
    /// When this step first started (across resumes), e.g. for waits that resume.
    pub first_started_at: OffsetDateTime,
    pub cancel: CancellationToken,
    pub(crate) events: EventSender,
    pub(crate) connector: Arc<OnceCell<Connector>>,
    pub(crate) connect_options: ConnectOptions,
    /// The last checkpoint this step journaled in an earlier attempt (this run's retries,
    /// or the attempt a `runs resume` continues), for actions that pick up where they were.
    pub resume_from: Option<serde_json::Value>,
    pub(crate) checkpoints: Option<CheckpointSender>,
}

/// A checkpoint on its way to the journal, with the reply sent once it is on disk.
pub(crate) type CheckpointSender =
    tokio::sync::mpsc::UnboundedSender<(serde_json::Value, tokio::sync::oneshot::Sender<()>)>;

impl ActionContext {
    /// Reports progress of a long step (`total` when known), shown as a bar.
    pub fn progress(&self, done: u64, total: Option<u64>, message: impl Into<String>) {
        self.events.send(Event::StepProgress {
            step: self.step_id.clone(),
            done,
            total,
            message: message.into(),
        });
    }

    /// Reports a wait with no measure of its own (AWS status polls, rollouts, drains): the
    /// message with the time waited so far, and no count, so no front end shows the seconds
    /// as if they were items done.
    pub fn waiting(&self, started: std::time::Instant, message: impl std::fmt::Display) {
        self.progress(
            0,
            None,
            format!("{message} · {}", waited(started.elapsed())),
        );
    }

    /// A line of live output (already escaped if it came from a cache: it is untrusted).
    pub fn output(&self, line: impl Into<String>) {
        self.events.send(Event::StepOutput {
            step: self.step_id.clone(),
            line: line.into(),
        });
    }

    /// Journals a checkpoint of this step (public facts only, never a secret) and returns
    /// once it is on disk; after an interruption the next attempt gets the last one as
    /// [`resume_from`](ActionContext::resume_from). Only `run` may call it.
    pub async fn checkpoint(&self, facts: serde_json::Value) -> Result<(), ActionError> {
        let Some(tx) = &self.checkpoints else {
            return Ok(());
        };
        let (done, written) = tokio::sync::oneshot::channel();
        if tx.send((facts, done)).is_err() {
            return Ok(());
        }
        tokio::select! {
            _ = self.cancel.cancelled() => Err(ActionError::Interrupted),
            r = written => r.map_err(|_| ActionError::failed("journal a checkpoint: the run stopped")),
        }
    }

    /// Sleeps, or returns [`ActionError::Interrupted`] as soon as the run is cancelled.
    pub async fn sleep(&self, d: Duration) -> Result<(), ActionError> {
        tokio::select! {
            _ = self.cancel.cancelled() => Err(ActionError::Interrupted),
            _ = tokio::time::sleep(d) => Ok(()),
        }
    }

    /// Calls `check` every `every` until it returns `Some`, the deadline passes
    /// ([`ActionError::Timeout`] naming `what`), or the run is cancelled.
    pub async fn poll<T, F, Fut>(
        &self,
        what: &str,
        every: Duration,
        deadline: Duration,
        mut check: F,
    ) -> Result<T, ActionError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>, ActionError>>,
    {
        let started = Instant::now();
        loop {
            if let Some(v) = check().await? {
                return Ok(v);
            }
            if started.elapsed() >= deadline {
                return Err(ActionError::Timeout {
                    what: what.to_string(),
                    after: deadline,
                });
            }
            self.sleep(every.min(deadline.saturating_sub(started.elapsed())))
                .await?;
        }
    }

    /// The cache's connector (credentials resolved once per run, through the control plane
    /// for SSM-held secrets).
    pub async fn connector(&self) -> Result<&Connector, ActionError> {
        let connector = self
            .connector
            .get_or_try_init(|| {
                Connector::for_cache(&self.cache, Some(self.plane.as_ref()), self.connect_options)
            })
            .await?;
        Ok(connector)
    }

    /// Connects to the cache's client endpoint (primary / configuration / service).
    pub async fn connect_endpoint(&self) -> Result<NodeConnection, ActionError> {
        let endpoint = self.cache.endpoint.clone().ok_or_else(|| {
            ActionError::failed(format!(
                "connect to cache `{}`: it has no endpoint yet (status {})",
                self.cache.name, self.cache.status
            ))
        })?;
        Ok(self.connector().await?.connect(&endpoint).await?)
    }
}

/// A built-in action a runbook step can name.
#[async_trait]
pub trait Action: Send + Sync {
    /// The name steps use (`action = "set-marker"`), kebab-case.
    fn name(&self) -> &'static str;
    /// One line for `cachedeck runbooks actions` and docs.
    fn summary(&self) -> &'static str;
    fn inputs(&self) -> &'static [InputSpec];
    fn outputs(&self) -> &'static [OutputSpec];
    /// Mutates a cache or the control plane.
    fn dangerous(&self) -> bool;
    /// The calls `run` would make with these inputs; no I/O.
    fn plan(&self, ctx: &PlanContext<'_>, inputs: &Inputs) -> Vec<PlannedCall>;
    /// Whether an interrupted earlier attempt already took effect (see the module docs).
    /// The default suits read-only actions: running them again is harmless.
    async fn observe(
        &self,
        _ctx: &ActionContext,
        _inputs: &Inputs,
    ) -> Result<Observation, ActionError> {
        if self.dangerous() {
            Ok(Observation::Unknown(format!(
                "action `{}` cannot tell whether it already took effect",
                self.name()
            )))
        } else {
            Ok(Observation::NotDone)
        }
    }
    /// Does the work and returns the declared outputs.
    async fn run(&self, ctx: &ActionContext, inputs: &Inputs) -> Result<Values, ActionError>;
    /// Rules between a step's inputs as written in the runbook file (templates not yet
    /// filled), checked when the runbook is validated: `Err` names the input, the problem
    /// and the fix.
    fn check_written_inputs(
        &self,
        _inputs: &std::collections::BTreeMap<String, serde_json::Value>,
    ) -> Result<(), WrittenInputProblem> {
        Ok(())
    }
}

/// A step's inputs break a rule of their action ([`Action::check_written_inputs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenInputProblem {
    pub input: &'static str,
    pub problem: String,
    pub fix: String,
}

/// The actions steps can name.
#[derive(Clone, Default)]
pub struct Registry {
    actions: BTreeMap<&'static str, Arc<dyn Action>>,
}

impl Registry {
    pub fn new() -> Self {
        Registry::default()
    }

    /// Adds (or replaces) an action under its name.
    pub fn register(&mut self, action: Arc<dyn Action>) {
        self.actions.insert(action.name(), action);
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Action>> {
        self.actions.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.actions.keys().copied()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Action>> {
        self.actions.values()
    }
}

/// A time waited, as a person reads it: `850 ms`, `15 s`, `2 min 5 s`.
pub fn waited(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 => format!("{} ms", d.as_millis()),
        1..=59 => format!("{secs} s"),
        _ if secs.is_multiple_of(60) => format!("{} min", secs / 60),
        _ => format!("{} min {} s", secs / 60, secs % 60),
    }
}

#[cfg(test)]
mod wait_tests {
    use std::time::Duration;

    #[test]
    fn waits_read_as_time() {
        assert_eq!(super::waited(Duration::from_millis(850)), "850 ms");
        assert_eq!(super::waited(Duration::from_secs(15)), "15 s");
        assert_eq!(super::waited(Duration::from_secs(120)), "2 min");
        assert_eq!(super::waited(Duration::from_secs(125)), "2 min 5 s");
    }
}
