//! One step of a run: resolve inputs, re-observe on resume, confirm, then attempts with
//! timeout, write-ahead journaling, retries with backoff and cancellation.

use super::{EngineError, Run, StepReport, backoff};
use crate::runbook::action::{
    Action, ActionContext, ActionError, Inputs, Observation, PlanContext,
};
use crate::runbook::events::{Event, StepState};
use crate::runbook::journal::RecordKind;
use crate::runbook::protect;
use crate::runbook::template::Scope;
use crate::runbook::validate::{OnFailure, Step};
use crate::runbook::value::{Values, check_kind};
use std::sync::Arc;
use std::time::Instant;
use time::OffsetDateTime;
use tokio::sync::{OnceCell, oneshot};

/// How a step ended, as far as the run is concerned.
pub(crate) enum Outcome {
    Ok,
    Failed(String),
    Interrupted,
    Declined(String),
}

/// Resolves a step's input templates against the scope.
pub(crate) fn resolve(s: &Step, scope: &Scope) -> Result<Inputs, String> {
    let mut values = Values::new();
    for (name, template) in &s.inputs {
        let v = scope
            .resolve(template)
            .map_err(|e| format!("input `{name}`: {e}"))?;
        values.insert(name.clone(), v);
    }
    Ok(Inputs(values))
}

impl Run<'_> {
    fn context(
        &self,
        s: &Step,
        attempt: u32,
        intent_at: Option<OffsetDateTime>,
        first: OffsetDateTime,
    ) -> ActionContext {
        ActionContext {
            env: self.target.env.clone(),
            cache: self.target.cache.clone(),
            plane: self.target.plane.clone(),
            run_id: self.journal.run_id().to_string(),
            step_id: s.id.clone(),
            attempt,
            intent_at,
            first_started_at: first,
            cancel: self.cancel.clone(),
            events: self.events.clone(),
            connector: self.connector.clone(),
            connect_options: self.engine.connect_options,
            resume_from: None,
            checkpoints: None,
        }
    }

    /// One attempt of `action`, journaling its checkpoints (`progress` records) as they
    /// come and updating `last` so a retry or resume continues from the newest one.
    async fn attempt(
        &mut self,
        s: &Step,
        action: &Arc<dyn Action>,
        mut ctx: ActionContext,
        inputs: &Inputs,
        last: &mut Option<serde_json::Value>,
    ) -> Result<Result<Values, ActionError>, EngineError> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        ctx.resume_from = last.clone();
        ctx.checkpoints = Some(tx);
        let attempt = ctx.attempt;
        let cancel = self.cancel.clone();
        let run = tokio::time::timeout(s.timeout, action.run(&ctx, inputs));
        tokio::pin!(run);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(Err(ActionError::Interrupted)),
                r = &mut run => {
                    return Ok(r.unwrap_or_else(|_| Err(ActionError::Timeout {
                        what: format!("finish step `{}`", s.id),
                        after: s.timeout,
                    })));
                }
                Some((facts, written)) = rx.recv() => {
                    self.journal.append(RecordKind::Progress {
                        step: s.id.clone(),
                        attempt,
                        facts: facts.clone(),
                    })?;
                    *last = Some(facts);
                    let _ = written.send(());
                }
            }
        }
    }

    fn finish(
        &mut self,
        s: &Step,
        state: StepState,
        started: Instant,
        outputs: &Values,
        error: Option<String>,
    ) {
        let public = outputs.public();
        self.events.send(Event::StepFinished {
            step: s.id.clone(),
            state: state.clone(),
            elapsed: started.elapsed(),
            outputs: public.clone(),
            error: error.clone(),
        });
        self.reports.push(StepReport {
            id: s.id.clone(),
            action: s.action.clone(),
            state,
            elapsed_ms: started.elapsed().as_millis(),
            outputs: public,
            error,
        });
    }

    fn done(
        &mut self,
        s: &Step,
        attempt: u32,
        outputs: Values,
        state: StepState,
        started: Instant,
    ) -> Result<Outcome, EngineError> {
        self.journal.append(RecordKind::StepDone {
            step: s.id.clone(),
            attempt,
            outputs: outputs.public(),
            secret_outputs: outputs.secret_names(),
        })?;
        self.finish(s, state, started, &outputs, None);
        self.scope.steps.insert(s.id.clone(), outputs);
        Ok(Outcome::Ok)
    }

    fn failed(
        &mut self,
        s: &Step,
        attempt: u32,
        error: String,
        started: Instant,
    ) -> Result<Outcome, EngineError> {
        let continued = s.on_failure == OnFailure::Continue;
        self.journal.append(RecordKind::StepFailed {
            step: s.id.clone(),
            attempt,
            error: error.clone(),
            retrying: false,
            continued,
        })?;
        let state = if continued {
            StepState::FailedContinued
        } else {
            StepState::Failed
        };
        self.finish(s, state, started, &Values::new(), Some(error.clone()));
        Ok(Outcome::Failed(error))
    }

    async fn ask(&self, s: &Step, expect: Option<String>) -> bool {
        let (tx, rx) = oneshot::channel();
        let what = if s.dangerous { "change" } else { "run against" };
        self.events.send(Event::NeedsConfirmation {
            step: s.id.clone(),
            prompt: format!(
                "step `{}` ({}) will {what} cache `{}` in `{}` ({})",
                s.id,
                s.title,
                self.target.cache.name,
                self.target.env.name,
                self.target.env.protection
            ),
            expect,
            reply: tx,
        });
        tokio::select! {
            _ = self.cancel.cancelled() => false,
            r = rx => r.unwrap_or(false),
        }
    }

    /// Asks the action whether an earlier attempt took effect, journaling what it found.
    async fn observe(
        &mut self,
        action: &Arc<dyn Action>,
        ctx: &ActionContext,
        inputs: &Inputs,
    ) -> Result<Result<Observation, String>, EngineError> {
        let found = action.observe(ctx, inputs).await;
        let facts = match &found {
            Ok(Observation::Done(_)) => "the earlier attempt took effect".to_string(),
            Ok(Observation::NotDone) => "the earlier attempt did not take effect".to_string(),
            Ok(Observation::Unknown(why)) => format!("cannot tell: {why}"),
            Ok(Observation::Partial(what)) => {
                format!("the earlier attempt took effect in part ({what}); continuing")
            }
            Err(e) => format!("observing failed: {e}"),
        };
        self.journal.append(RecordKind::Observed {
            step: ctx.step_id.clone(),
            facts: facts.clone(),
        })?;
        self.events.send(Event::StepOutput {
            step: ctx.step_id.clone(),
            line: format!("observed: {facts}"),
        });
        Ok(found.map_err(|e| e.to_string()))
    }

    pub(crate) async fn step(&mut self, s: &Step) -> Result<Outcome, EngineError> {
        let started = Instant::now();
        let Some(action) = self.engine.registry.get(&s.action).cloned() else {
            return self.failed(
                s,
                0,
                format!("step `{}`: unknown action `{}`", s.id, s.action),
                started,
            );
        };
        let prior = self
            .resume
            .as_ref()
            .and_then(|r| r.steps.get(&s.id))
            .cloned();
        let inputs = match resolve(s, &self.scope) {
            Ok(i) => i,
            Err(e) => return self.failed(s, 0, format!("step `{}`: {e}", s.id), started),
        };
        for spec in action.inputs() {
            if let Some(v) = inputs.get(spec.name)
                && let Err(p) = check_kind(spec.kind, v)
            {
                return self.failed(
                    s,
                    0,
                    format!("step `{}`: input `{}`: {p}", s.id, spec.name),
                    started,
                );
            }
        }
        let first = prior
            .as_ref()
            .and_then(|p| p.first_started)
            .unwrap_or_else(OffsetDateTime::now_utc);
        let mut attempt = prior.as_ref().map(|p| p.attempts).unwrap_or(0);
        let mut checkpoint = prior.as_ref().and_then(|p| p.progress.clone());

        if let Some(p) = &prior {
            if p.continued {
                self.finish(
                    s,
                    StepState::FailedContinued,
                    started,
                    &Values::new(),
                    Some("failed in an earlier attempt of this run; continued".into()),
                );
                return Ok(Outcome::Ok);
            }
            if let Some((outputs, secrets)) = &p.done {
                let mut values = Values::from_public(outputs.clone());
                if !secrets.is_empty() {
                    // Secret outputs are never journaled: only the action can get them back.
                    let ctx = self.context(s, attempt, p.intent_at, first);
                    match self.observe(&action, &ctx, &inputs).await? {
                        Ok(Observation::Done(v)) => values = v,
                        Ok(_) | Err(_) => {
                            return self.failed(s, attempt, format!("step `{}` is done but its secret outputs ({}) cannot be recovered; start a new run", s.id, secrets.join(", ")), started);
                        }
                    }
                }
                self.finish(s, StepState::AlreadyDone, started, &values, None);
                self.scope.steps.insert(s.id.clone(), values);
                return Ok(Outcome::Ok);
            }
            if s.dangerous && p.intent_at.is_some() {
                let mut ctx = self.context(s, attempt, p.intent_at, first);
                ctx.resume_from = checkpoint.clone();
                match self.observe(&action, &ctx, &inputs).await? {
                    Ok(Observation::Done(outputs)) => {
                        return self.done(s, attempt, outputs, StepState::AlreadyDone, started);
                    }
                    Ok(Observation::NotDone | Observation::Partial(_)) => {}
                    Ok(Observation::Unknown(why)) | Err(why) => {
                        return self.failed(s, attempt, format!("step `{}` may already have taken effect and it cannot be told ({why}); check the cache by hand before going on", s.id), started);
                    }
                }
            }
        }

        if s.confirm || s.dangerous {
            let expect = protect::expected_name(
                self.target.env.protection,
                s.dangerous,
                &self.target.cache.name,
            );
            if !self.ask(s, expect).await {
                if self.cancel.is_cancelled() {
                    self.finish(s, StepState::Interrupted, started, &Values::new(), None);
                    return Ok(Outcome::Interrupted);
                }
                let e = protect::Refusal::Declined { step: s.id.clone() }.to_string();
                self.finish(
                    s,
                    StepState::Failed,
                    started,
                    &Values::new(),
                    Some(e.clone()),
                );
                return Ok(Outcome::Declined(e));
            }
        }

        let last = attempt + s.retries + 1;
        let mut intent_at = prior.as_ref().and_then(|p| p.intent_at);
        loop {
            attempt += 1;
            self.journal.append(RecordKind::StepStarted {
                step: s.id.clone(),
                attempt,
            })?;
            self.events.send(Event::StepStarted {
                step: s.id.clone(),
                attempt,
            });
            if s.dangerous {
                let plan_ctx = PlanContext {
                    env: &self.target.env,
                    cache: &self.target.cache,
                };
                let calls = action
                    .plan(&plan_ctx, &inputs)
                    .iter()
                    .filter(|c| c.mutates)
                    .map(|c| c.call.clone())
                    .collect();
                let record = self.journal.append(RecordKind::Intent {
                    step: s.id.clone(),
                    attempt,
                    calls,
                })?;
                intent_at.get_or_insert(record.at);
            }
            let ctx = self.context(s, attempt, intent_at, first);
            let result = self
                .attempt(s, &action, ctx, &inputs, &mut checkpoint)
                .await?;
            let error = match result {
                Ok(outputs) => {
                    return self.done(s, attempt, outputs, StepState::Succeeded, started);
                }
                Err(ActionError::Interrupted) => {
                    self.journal.append(RecordKind::StepFailed {
                        step: s.id.clone(),
                        attempt,
                        error: "interrupted".into(),
                        retrying: false,
                        continued: false,
                    })?;
                    self.finish(
                        s,
                        StepState::Interrupted,
                        started,
                        &Values::new(),
                        Some("interrupted".into()),
                    );
                    return Ok(Outcome::Interrupted);
                }
                Err(e) => e,
            };
            let message = format!("step `{}`: {error}", s.id);
            if !(error.retryable() && attempt < last) {
                return self.failed(s, attempt, message, started);
            }
            self.journal.append(RecordKind::StepFailed {
                step: s.id.clone(),
                attempt,
                error: message.clone(),
                retrying: true,
                continued: false,
            })?;
            let pause = backoff(s.backoff, attempt);
            self.events.send(Event::StepOutput {
                step: s.id.clone(),
                line: format!("attempt {attempt} failed: {error}; retrying in {pause:?}"),
            });
            tokio::select! {
                _ = self.cancel.cancelled() => {
                    self.finish(s, StepState::Interrupted, started, &Values::new(), Some("interrupted".into()));
                    return Ok(Outcome::Interrupted);
                }
                _ = tokio::time::sleep(pause) => {}
            }
            if s.dangerous {
                // A timed-out or dropped mutation may still have landed: look before retrying.
                let mut ctx = self.context(s, attempt, intent_at, first);
                ctx.resume_from = checkpoint.clone();
                match self.observe(&action, &ctx, &inputs).await? {
                    Ok(Observation::Done(outputs)) => {
                        return self.done(s, attempt, outputs, StepState::Succeeded, started);
                    }
                    Ok(Observation::NotDone | Observation::Partial(_)) => {}
                    Ok(Observation::Unknown(why)) | Err(why) => {
                        return self.failed(s, attempt, format!("{message}; not retried because it cannot be told whether it took effect ({why})"), started);
                    }
                }
            }
        }
    }
}

/// Keeps `OnceCell` in the import list used by the run's shared connector.
pub(crate) type SharedConnector = Arc<OnceCell<crate::valkey::connect::Connector>>;
