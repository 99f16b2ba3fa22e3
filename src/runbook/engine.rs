//! The engine: runs a checked runbook against one cache — lock, journal, confirmations,
//! timeouts, retries with backoff, on_failure, cancellation — and emits [`Event`]s. It knows
//! nothing of who listens. `resume` continues a journaled run without repeating a mutation
//! that took effect; `plan` describes a dry run without any I/O on the target.

mod resume;
mod step;

pub use resume::ResumeInfo;

use crate::controlplane::ControlPlane;
use crate::domain::{Cache, Environment};
use crate::runbook::ErrorKind;
use crate::runbook::action::{PlanContext, PlannedCall, Registry};
use crate::runbook::events::{Event, EventSender, RunState, StepInfo, StepState};
use crate::runbook::journal::{Journal, JournalError, RecordKind};
use crate::runbook::lock::{self, LockError, LockHolder};
use crate::runbook::template::Scope;
use crate::runbook::validate::{OnFailure, Runbook};
use crate::runbook::value::Values;
use crate::valkey::connect::ConnectOptions;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The cache a run acts on.
#[derive(Clone)]
pub struct Target {
    pub env: Environment,
    pub cache: Cache,
    pub plane: Arc<dyn ControlPlane>,
}

/// A run's lock name, opened journal and first scope, before its steps.
struct Started {
    lock_name: String,
    journal: Journal,
    scope: Scope,
}

/// Why a run could not be carried out at all (as opposed to a step failing).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Lock(Box<LockError>),
    #[error("resume run {run_id}: {why}")]
    Resume { run_id: String, why: String },
}

impl EngineError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            EngineError::Lock(l)
                if matches!(**l, LockError::Held { .. } | LockError::WrongId { .. }) =>
            {
                ErrorKind::LockHeld
            }
            EngineError::Resume { .. } => ErrorKind::BadInput,
            EngineError::Journal(JournalError::Busy(_)) => ErrorKind::LockHeld,
            _ => ErrorKind::Failed,
        }
    }
}

impl From<LockError> for EngineError {
    fn from(e: LockError) -> Self {
        EngineError::Lock(Box::new(e))
    }
}

/// One step's result in the final report.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub id: String,
    pub action: String,
    pub state: StepState,
    pub elapsed_ms: u128,
    pub outputs: BTreeMap<String, serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The result of a run (the headless runner prints it on stdout).
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run_id: String,
    pub runbook: String,
    pub env: String,
    pub cache: String,
    pub state: RunState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub steps: Vec<StepReport>,
    pub journal: PathBuf,
}

/// One step of a dry run.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedStep {
    pub id: String,
    pub title: String,
    pub action: String,
    pub dangerous: bool,
    pub confirm: bool,
    pub timeout_ms: u128,
    pub retries: u32,
    pub calls: Vec<PlannedCall>,
}

/// What a run would do.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub runbook: String,
    pub env: String,
    pub cache: String,
    /// Control-plane calls around the steps (the lock), when the runbook mutates.
    pub lock: Vec<PlannedCall>,
    pub steps: Vec<PlannedStep>,
}

/// Runs runbooks.
#[derive(Clone)]
pub struct Engine {
    pub registry: Registry,
    pub journal_dir: PathBuf,
    pub connect_options: ConnectOptions,
}

/// A run to start.
pub struct RunRequest {
    pub runbook: Runbook,
    pub params: Values,
    pub target: Target,
    /// Break a lock held by exactly this run id.
    pub force_unlock: Option<String>,
}

pub(crate) fn builtins(target: &Target, run_id: &str) -> BTreeMap<String, String> {
    let mut b = BTreeMap::new();
    b.insert("cache.name".into(), target.cache.name.clone());
    b.insert("cache.kind".into(), target.cache.kind.to_string());
    b.insert(
        "cache.endpoint".into(),
        target
            .cache
            .endpoint
            .as_ref()
            .map(|e| e.address())
            .unwrap_or_default(),
    );
    b.insert("env.name".into(), target.env.name.clone());
    b.insert("run.id".into(), run_id.to_string());
    b
}

impl Engine {
    pub fn new(registry: Registry, journal_dir: PathBuf, connect_options: ConnectOptions) -> Self {
        Engine {
            registry,
            journal_dir,
            connect_options,
        }
    }

    /// The dry-run plan: every step's exact calls, inputs resolved as far as they can be
    /// without running anything (outputs of earlier steps show as placeholders).
    pub fn plan(&self, runbook: &Runbook, params: &Values, target: &Target) -> Plan {
        let scope = Scope {
            params: params.clone(),
            steps: BTreeMap::new(),
            builtins: builtins(target, "<run id>"),
            placeholders: true,
        };
        let ctx = PlanContext {
            env: &target.env,
            cache: &target.cache,
        };
        let steps = runbook
            .steps
            .iter()
            .chain(&runbook.rollback)
            .map(|s| {
                let calls = match (self.registry.get(&s.action), step::resolve(s, &scope)) {
                    (Some(action), Ok(inputs)) => action.plan(&ctx, &inputs),
                    (_, Err(e)) => {
                        vec![PlannedCall::local(format!("(inputs not resolvable: {e})"))]
                    }
                    (None, _) => vec![],
                };
                PlannedStep {
                    id: s.id.clone(),
                    title: s.title.clone(),
                    action: s.action.clone(),
                    dangerous: s.dangerous,
                    confirm: s.confirm,
                    timeout_ms: s.timeout.as_millis(),
                    retries: s.retries,
                    calls,
                }
            })
            .collect();
        let lock = if runbook.mutates() {
            let name = lock::lock_name_for(&target.env, &target.cache);
            vec![
                PlannedCall::control_plane(
                    format!("PutParameter name={name} overwrite=false"),
                    true,
                ),
                PlannedCall::control_plane(
                    format!("DeleteParameter name={name} (at the end)"),
                    true,
                ),
            ]
        } else {
            vec![]
        };
        Plan {
            runbook: runbook.name.clone(),
            env: target.env.name.clone(),
            cache: target.cache.name.clone(),
            lock,
            steps,
        }
    }

    /// Starts a new run. The lock is taken before the journal exists, so a run that loses
    /// the lock leaves nothing behind.
    pub async fn start(
        &self,
        req: RunRequest,
        events: EventSender,
        cancel: CancellationToken,
    ) -> Result<RunReport, EngineError> {
        let run_id = crate::runbook::journal::new_run_id();
        let (lock_name, mut journal) = self
            .lock_and_open(
                &run_id,
                &req.runbook,
                &req.target,
                req.force_unlock.as_deref(),
            )
            .await?;
        journal.append(RecordKind::RunStarted {
            runbook: req.runbook.name.clone(),
            hash: req.runbook.hash.clone(),
            source: req.runbook.source.clone(),
            env: req.target.env.name.clone(),
            cache: req.target.cache.name.clone(),
            params: req.params.public(),
            user: lock::current_user(),
            host: lock::current_host(),
            pid: std::process::id(),
            text: req.runbook.text.clone(),
        })?;
        if req.runbook.mutates() {
            journal.append(RecordKind::Lock {
                name: lock_name.clone(),
                taken: true,
            })?;
        }
        let scope = Scope {
            params: req.params,
            steps: BTreeMap::new(),
            builtins: BTreeMap::new(),
            placeholders: false,
        };
        let started = Started {
            lock_name,
            journal,
            scope,
        };
        self.run(req.runbook, req.target, started, None, events, cancel)
            .execute()
            .await
    }

    /// Continues a journaled run against `target` (looked up from the journal's env and
    /// cache by the caller). Steps already done are not run again; the last started
    /// dangerous step is observed before anything is done.
    pub async fn resume(
        &self,
        info: ResumeInfo,
        runbook: Runbook,
        target: Target,
        force_unlock: Option<String>,
        events: EventSender,
        cancel: CancellationToken,
    ) -> Result<RunReport, EngineError> {
        let (lock_name, mut journal) = self
            .lock_and_open(&info.run_id, &runbook, &target, force_unlock.as_deref())
            .await?;
        journal.append(RecordKind::RunResumed {
            user: lock::current_user(),
            host: lock::current_host(),
            pid: std::process::id(),
        })?;
        let scope = Scope {
            params: Values::from_public(info.params.clone()),
            steps: BTreeMap::new(),
            builtins: BTreeMap::new(),
            placeholders: false,
        };
        let started = Started {
            lock_name,
            journal,
            scope,
        };
        self.run(runbook, target, started, Some(info), events, cancel)
            .execute()
            .await
    }

    /// What starting and resuming share: the cache's lock when the runbook mutates, then the
    /// run's journal (the lock is given back when the journal cannot be opened).
    async fn lock_and_open(
        &self,
        run_id: &str,
        runbook: &Runbook,
        target: &Target,
        force_unlock: Option<&str>,
    ) -> Result<(String, Journal), EngineError> {
        let lock_name = lock::lock_name_for(&target.env, &target.cache);
        if runbook.mutates() {
            let me = LockHolder::me(run_id, &runbook.name);
            lock::acquire(target.plane.as_ref(), &lock_name, &me, force_unlock).await?;
        }
        match Journal::open(&self.journal_dir, run_id) {
            Ok(journal) => Ok((lock_name, journal)),
            Err(e) => {
                if runbook.mutates() {
                    let _ = lock::release(target.plane.as_ref(), &lock_name, run_id).await;
                }
                Err(e.into())
            }
        }
    }

    /// The run, ready to execute.
    fn run(
        &self,
        runbook: Runbook,
        target: Target,
        started: Started,
        resume: Option<ResumeInfo>,
        events: EventSender,
        cancel: CancellationToken,
    ) -> Run<'_> {
        Run {
            engine: self,
            runbook,
            target,
            journal: started.journal,
            events,
            cancel,
            scope: started.scope,
            resume,
            lock_name: started.lock_name,
            reports: Vec::new(),
            connector: Default::default(),
            roles_said: None,
        }
    }
}

/// One run in progress.
pub(crate) struct Run<'a> {
    engine: &'a Engine,
    runbook: Runbook,
    target: Target,
    journal: Journal,
    events: EventSender,
    cancel: CancellationToken,
    scope: Scope,
    resume: Option<ResumeInfo>,
    lock_name: String,
    reports: Vec<StepReport>,
    connector: step::SharedConnector,
    /// The last roles line shown, so an unchanged one is not repeated before every step.
    roles_said: Option<String>,
}

impl Run<'_> {
    /// Before each step: learns from the nodes the roles the control plane did not give
    /// (cluster mode on AWS, ECS services, endpoints), so every action sees primaries and
    /// replicas — and after a failover, the new ones. Says so when it changed anything.
    async fn learn_roles(&mut self, step: &str) {
        if !crate::valkey::roles::needs_learning(&self.target.cache) {
            return;
        }
        let options = self.engine.connect_options;
        let connector = self
            .connector
            .get_or_try_init(|| {
                crate::valkey::connect::Connector::for_cache(
                    &self.target.cache,
                    Some(self.target.plane.as_ref()),
                    options,
                )
            })
            .await;
        let line = match connector {
            Ok(connector) => crate::valkey::roles::learn(&mut self.target.cache, connector)
                .await
                .summary(),
            Err(e) => Some(format!(
                "roles unknown: the nodes cannot be asked ({})",
                crate::escape::escape_capped(e.to_string(), 200)
            )),
        };
        if let Some(line) = line
            && self.roles_said.as_ref() != Some(&line)
        {
            self.events.send(Event::StepOutput {
                step: step.to_string(),
                line: line.clone(),
            });
            self.roles_said = Some(line);
        }
    }
    async fn execute(mut self) -> Result<RunReport, EngineError> {
        let run_id = self.journal.run_id().to_string();
        self.scope.builtins = builtins(&self.target, &run_id);
        self.events.send(Event::RunStarted {
            run_id: run_id.clone(),
            runbook: self.runbook.name.clone(),
            env: self.target.env.name.clone(),
            cache: self.target.cache.name.clone(),
            steps: self
                .runbook
                .steps
                .iter()
                .map(|s| StepInfo {
                    id: s.id.clone(),
                    title: s.title.clone(),
                    action: s.action.clone(),
                    dangerous: s.dangerous,
                })
                .collect(),
            resumed: self.resume.is_some(),
        });
        // The lock's heartbeat is renewed while the steps run, and stops with them.
        let heartbeat = self.runbook.mutates().then(|| {
            lock::Heartbeat::start(
                self.target.plane.clone(),
                self.lock_name.clone(),
                LockHolder::me(&run_id, &self.runbook.name),
            )
        });
        let (state, error) = self.steps().await?;
        drop(heartbeat);
        // An interrupted run keeps its lock: only `runs resume` (same run id) or an exact
        // --force-unlock may continue on this cache while it is half done.
        if self.runbook.mutates() && state != RunState::Interrupted {
            match lock::release(self.target.plane.as_ref(), &self.lock_name, &run_id).await {
                Ok(()) => {
                    self.journal.append(RecordKind::Lock {
                        name: self.lock_name.clone(),
                        taken: false,
                    })?;
                }
                Err(e) => tracing::warn!(error = %e, "lock not released"),
            }
        }
        self.journal.append(RecordKind::RunFinished {
            state,
            error: error.clone(),
        })?;
        self.events.send(Event::RunFinished {
            run_id: run_id.clone(),
            state,
            error: error.clone(),
        });
        Ok(RunReport {
            run_id,
            runbook: self.runbook.name.clone(),
            env: self.target.env.name.clone(),
            cache: self.target.cache.name.clone(),
            state,
            error,
            steps: self.reports,
            journal: self.journal.path().to_path_buf(),
        })
    }

    /// Runs the steps in order; returns how the run ended.
    async fn steps(&mut self) -> Result<(RunState, Option<String>), EngineError> {
        let steps = self.runbook.steps.clone();
        for s in &steps {
            if self.cancel.is_cancelled() {
                return Ok((
                    RunState::Interrupted,
                    Some("interrupted before step".into()),
                ));
            }
            self.learn_roles(&s.id).await;
            match self.step(s).await? {
                step::Outcome::Ok => {}
                step::Outcome::Interrupted => {
                    return Ok((
                        RunState::Interrupted,
                        Some(format!("interrupted in step `{}`", s.id)),
                    ));
                }
                step::Outcome::Declined(e) => return Ok((RunState::Refused, Some(e))),
                step::Outcome::Failed(e) => match &s.on_failure {
                    OnFailure::Continue => {}
                    OnFailure::Abort => return Ok((RunState::Failed, Some(e))),
                    OnFailure::Rollback(id) => {
                        let msg = match self.runbook.rollback.iter().find(|r| &r.id == id).cloned()
                        {
                            Some(r) => match self.step(&r).await? {
                                step::Outcome::Ok => format!("{e}; rolled back with `{id}`"),
                                step::Outcome::Interrupted => {
                                    return Ok((
                                        RunState::Interrupted,
                                        Some(format!("{e}; interrupted during rollback `{id}`")),
                                    ));
                                }
                                step::Outcome::Failed(r) | step::Outcome::Declined(r) => {
                                    format!("{e}; rollback `{id}` failed too: {r}")
                                }
                            },
                            None => e,
                        };
                        return Ok((RunState::Failed, Some(msg)));
                    }
                },
            }
        }
        Ok((RunState::Succeeded, None))
    }
}

/// Doubling backoff: `base`, `2×base`, `4×base`… capped at five minutes.
pub fn backoff(base: Duration, failed_attempts: u32) -> Duration {
    let factor = 2u32.saturating_pow(failed_attempts.saturating_sub(1));
    base.saturating_mul(factor).min(Duration::from_secs(300))
}
