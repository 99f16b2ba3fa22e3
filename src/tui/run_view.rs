//! The runner view's state: a pure fold of the engine's [`Event`]s (the TUI is one more
//! reporter of the same events as the headless runner, never a second engine), plus the
//! confirmation the engine is waiting on.

use crate::audit::report::AuditReport;
use crate::escape::escape_capped;
use crate::runbook::events::{Event, RunState, StepState};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::oneshot;

/// Output lines kept per run; older ones scroll away so a chatty step cannot grow memory.
pub const MAX_OUTPUT: usize = 200;
/// Longest output line kept, in characters, after escaping.
const MAX_LINE: usize = 240;

/// Where one step is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepPhase {
    Pending,
    Running { attempt: u32 },
    Ok,
    Failed,
    Skipped,
    Interrupted,
}

impl StepPhase {
    pub fn label(&self) -> &'static str {
        match self {
            StepPhase::Pending => "pending",
            StepPhase::Running { .. } => "running",
            StepPhase::Ok => "ok",
            StepPhase::Failed => "failed",
            StepPhase::Skipped => "skipped",
            StepPhase::Interrupted => "interrupted",
        }
    }
}

/// One step as the run view shows it.
#[derive(Debug, Clone)]
pub struct StepRow {
    pub id: String,
    pub action: String,
    pub title: String,
    pub dangerous: bool,
    pub phase: StepPhase,
    pub elapsed: Option<Duration>,
    /// `(done, total)` of the last progress event while running.
    pub progress: Option<(u64, Option<u64>)>,
    pub progress_message: String,
    pub error: Option<String>,
    /// The step's outputs as compact JSON, escaped (for the final report).
    pub outputs: String,
    /// When the current attempt started (the app's clock), for the running step's age.
    pub started: Option<OffsetDateTime>,
}

/// A question the engine waits on. The reply sender is taken once: answering twice, or
/// dropping the run, counts as "no" on the engine side.
#[derive(Debug)]
pub struct PendingConfirm {
    pub step: String,
    pub prompt: String,
    /// The cache name the operator must type (confirm environments), if any.
    pub expect: Option<String>,
    pub typed: String,
    reply: Option<oneshot::Sender<bool>>,
}

impl PendingConfirm {
    /// Whether Enter would accept: the typed text matches the cache name when one is asked.
    pub fn acceptable(&self) -> bool {
        self.expect.as_ref().is_none_or(|e| *e == self.typed)
    }
}

/// The whole run as the view shows it.
#[derive(Debug, Default)]
pub struct RunView {
    pub run_id: String,
    pub runbook: String,
    pub cache: String,
    pub steps: Vec<StepRow>,
    pub output: Vec<String>,
    pub confirm: Option<PendingConfirm>,
    pub finished: Option<(RunState, Option<String>)>,
    /// The report of a finished `ttl-audit` step (its own screen shows it).
    pub audit: Option<Box<AuditReport>>,
    /// The app's clock at the last tick: a running step's age is `now - started`.
    pub now: Option<OffsetDateTime>,
    /// How many lines back from the newest the output panel is scrolled (k/j); 0 follows.
    pub scroll_back: usize,
}

impl RunView {
    /// Folds one engine event into the view.
    pub fn apply(&mut self, event: Event) {
        match event {
            Event::RunStarted {
                run_id,
                runbook,
                cache,
                steps,
                ..
            } => {
                self.run_id = run_id;
                self.runbook = runbook;
                self.cache = cache;
                self.steps = steps
                    .into_iter()
                    .map(|s| StepRow {
                        id: s.id,
                        action: s.action,
                        title: s.title,
                        dangerous: s.dangerous,
                        phase: StepPhase::Pending,
                        elapsed: None,
                        progress: None,
                        progress_message: String::new(),
                        error: None,
                        outputs: String::new(),
                        started: None,
                    })
                    .collect();
            }
            Event::StepPlanned { .. } => {}
            Event::StepStarted { step, attempt } => {
                if let Some(row) = self.step_mut(&step) {
                    row.phase = StepPhase::Running { attempt };
                }
            }
            Event::StepProgress {
                step,
                done,
                total,
                message,
            } => {
                if let Some(row) = self.step_mut(&step) {
                    row.progress = Some((done, total));
                    row.progress_message = escape_capped(message, MAX_LINE);
                }
            }
            Event::StepOutput { step, line } => {
                // Output can carry data from the cache: escape before it is kept.
                let line = format!("{step}: {}", escape_capped(line, MAX_LINE));
                self.output.push(line);
                if self.output.len() > MAX_OUTPUT {
                    let extra = self.output.len() - MAX_OUTPUT;
                    self.output.drain(..extra);
                }
            }
            Event::NeedsConfirmation {
                step,
                prompt,
                expect,
                reply,
            } => {
                self.confirm = Some(PendingConfirm {
                    step,
                    prompt: escape_capped(prompt, MAX_LINE),
                    expect,
                    typed: String::new(),
                    reply: Some(reply),
                });
            }
            Event::StepFinished {
                step,
                state,
                elapsed,
                error,
                outputs,
            } => {
                let mut outputs = outputs;
                if let Some(row) = self.step_mut(&step) {
                    let report = (row.action == crate::runbook::actions::ttl_audit::NAME)
                        .then(|| outputs.remove("report"))
                        .flatten();
                    if let Some(r) = report.and_then(|r| serde_json::from_value(r).ok()) {
                        self.audit = Some(Box::new(r));
                    }
                }
                if let Some(row) = self.step_mut(&step) {
                    if !outputs.is_empty() {
                        let json = serde_json::Value::Object(outputs.into_iter().collect());
                        // Outputs can carry data from the cache: escaped like output lines.
                        row.outputs = escape_capped(json.to_string(), MAX_LINE);
                    }
                    row.phase = match state {
                        StepState::Succeeded | StepState::AlreadyDone => StepPhase::Ok,
                        StepState::Failed | StepState::FailedContinued => StepPhase::Failed,
                        StepState::Interrupted => StepPhase::Interrupted,
                    };
                    row.elapsed = Some(elapsed);
                    row.error = error.map(|e| escape_capped(e, MAX_LINE));
                }
            }
            Event::RunFinished { state, error, .. } => {
                // Steps never reached are skipped; a confirmation nobody answered is moot.
                for row in &mut self.steps {
                    if matches!(row.phase, StepPhase::Pending) {
                        row.phase = StepPhase::Skipped;
                    }
                }
                self.confirm = None;
                self.finished = Some((state, error.map(|e| escape_capped(e, MAX_LINE))));
            }
        }
    }

    /// Folds one event that arrived at `now` (the app's clock; the fold itself reads none).
    pub fn apply_at(&mut self, event: Event, now: OffsetDateTime) {
        if let Event::StepStarted { step, .. } = &event
            && let Some(row) = self.step_mut(step)
        {
            row.started = Some(now);
        }
        self.now = Some(now);
        self.apply(event);
    }

    /// Answers the open confirmation: `true` only if the typed name matches. Returns whether
    /// a question was open.
    pub fn answer(&mut self, yes: bool) -> bool {
        let Some(mut confirm) = self.confirm.take() else {
            return false;
        };
        let accept = yes && confirm.acceptable();
        if let Some(reply) = confirm.reply.take() {
            // A gone engine (run cancelled) is not an error here.
            let _ = reply.send(accept);
        }
        true
    }

    /// A character typed into the open confirmation (control characters are ignored: the
    /// cache name never holds one).
    pub fn confirm_input(&mut self, c: char) {
        if let Some(confirm) = self.confirm.as_mut()
            && !c.is_control()
        {
            confirm.typed.push(c);
        }
    }

    /// Deletes the last typed character of the open confirmation.
    pub fn confirm_backspace(&mut self) {
        if let Some(confirm) = self.confirm.as_mut() {
            confirm.typed.pop();
        }
    }

    pub fn is_finished(&self) -> bool {
        self.finished.is_some()
    }

    fn step_mut(&mut self, id: &str) -> Option<&mut StepRow> {
        self.steps.iter_mut().find(|s| s.id == id)
    }
}

#[cfg(test)]
mod tests;
