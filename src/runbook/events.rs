//! The typed events a run emits. The engine knows nothing of who listens: the headless
//! runner prints them, the TUI draws them, tests assert on them.

use crate::runbook::action::PlannedCall;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepState {
    Succeeded,
    Failed,
    /// Failed, but `on_failure = "continue"` let the run go on.
    FailedContinued,
    /// Done by an earlier attempt of this run (resume observed or journaled it).
    AlreadyDone,
    Interrupted,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunState {
    Succeeded,
    Failed,
    Interrupted,
    /// Refused before anything ran: protection, confirmation declined.
    Refused,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Interrupted => "interrupted",
            RunState::Refused => "refused",
        }
    }
}

/// A step as announced at the start of a run.
#[derive(Debug, Clone, Serialize)]
pub struct StepInfo {
    pub id: String,
    pub title: String,
    pub action: String,
    pub dangerous: bool,
}

/// Something that happened in a run.
#[derive(Debug)]
pub enum Event {
    RunStarted {
        run_id: String,
        runbook: String,
        env: String,
        cache: String,
        steps: Vec<StepInfo>,
        resumed: bool,
    },
    /// A dry run's plan for one step (nothing executes in a dry run).
    StepPlanned {
        step: String,
        dangerous: bool,
        calls: Vec<PlannedCall>,
    },
    StepStarted {
        step: String,
        attempt: u32,
    },
    StepProgress {
        step: String,
        done: u64,
        total: Option<u64>,
        message: String,
    },
    StepOutput {
        step: String,
        line: String,
    },
    /// The engine waits for the reply before running a step marked `confirm`. The TUI asks
    /// the operator to type `expect` (the cache name) when set; the headless runner answers
    /// from `--yes` / `--confirm-cache`. Dropping the sender counts as "no".
    NeedsConfirmation {
        step: String,
        prompt: String,
        expect: Option<String>,
        reply: oneshot::Sender<bool>,
    },
    StepFinished {
        step: String,
        state: StepState,
        elapsed: Duration,
        outputs: BTreeMap<String, serde_json::Value>,
        error: Option<String>,
    },
    RunFinished {
        run_id: String,
        state: RunState,
        error: Option<String>,
    },
}

/// The sending half handed to the engine and to actions; a gone receiver is not an error
/// (a reporter that quit must not stop a failover half-way).
#[derive(Clone, Debug)]
pub struct EventSender(mpsc::UnboundedSender<Event>);

impl EventSender {
    pub fn channel() -> (EventSender, mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (EventSender(tx), rx)
    }

    pub fn send(&self, event: Event) {
        let _ = self.0.send(event);
    }
}
