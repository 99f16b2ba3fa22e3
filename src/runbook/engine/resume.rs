//! What a journal says about a run, for `runs resume`: the runbook text and parameters it
//! started with, and per step whether it finished, failed-and-continued, or was left with a
//! write-ahead `intent` and no `done` (the case that needs `observe`).

use crate::runbook::events::RunState;
use crate::runbook::journal::{Record, RecordKind};
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// One step's history in a journal.
#[derive(Debug, Clone, Default)]
pub struct StepHistory {
    pub attempts: u32,
    pub first_started: Option<OffsetDateTime>,
    /// The first write-ahead record of a dangerous step.
    pub intent_at: Option<OffsetDateTime>,
    /// Public outputs and the names of secret outputs, when the step finished.
    pub done: Option<(BTreeMap<String, serde_json::Value>, Vec<String>)>,
    pub continued: bool,
    /// The last checkpoint the step journaled (`progress` records), if any.
    pub progress: Option<serde_json::Value>,
}

/// A journaled run, as needed to resume it.
#[derive(Debug, Clone)]
pub struct ResumeInfo {
    pub run_id: String,
    pub runbook: String,
    pub hash: String,
    pub source: String,
    pub text: String,
    pub env: String,
    pub cache: String,
    pub params: BTreeMap<String, serde_json::Value>,
    pub steps: BTreeMap<String, StepHistory>,
    /// How the last attempt at the run ended (`None`: killed or still running).
    pub finished: Option<RunState>,
}

impl ResumeInfo {
    /// Reads a run's records; `Err` says why it cannot be resumed.
    pub fn from_records(run_id: &str, records: &[Record]) -> Result<ResumeInfo, String> {
        let Some(RecordKind::RunStarted {
            runbook,
            hash,
            source,
            env,
            cache,
            params,
            text,
            ..
        }) = records.first().map(|r| &r.kind)
        else {
            return Err("its journal does not start with a run-started record".into());
        };
        let mut info = ResumeInfo {
            run_id: run_id.to_string(),
            runbook: runbook.clone(),
            hash: hash.clone(),
            source: source.clone(),
            text: text.clone(),
            env: env.clone(),
            cache: cache.clone(),
            params: params.clone(),
            steps: BTreeMap::new(),
            finished: None,
        };
        for r in records {
            match &r.kind {
                RecordKind::StepStarted { step, attempt } => {
                    let h = info.steps.entry(step.clone()).or_default();
                    h.attempts = h.attempts.max(*attempt);
                    h.first_started.get_or_insert(r.at);
                }
                RecordKind::Intent { step, .. } => {
                    info.steps
                        .entry(step.clone())
                        .or_default()
                        .intent_at
                        .get_or_insert(r.at);
                }
                RecordKind::StepDone {
                    step,
                    outputs,
                    secret_outputs,
                    ..
                } => {
                    info.steps.entry(step.clone()).or_default().done =
                        Some((outputs.clone(), secret_outputs.clone()));
                }
                RecordKind::Progress { step, facts, .. } => {
                    info.steps.entry(step.clone()).or_default().progress = Some(facts.clone());
                }
                RecordKind::StepFailed {
                    step, continued, ..
                } => {
                    info.steps.entry(step.clone()).or_default().continued |= *continued;
                }
                RecordKind::RunFinished { state, .. } => info.finished = Some(*state),
                RecordKind::RunResumed { .. } => info.finished = None,
                _ => {}
            }
        }
        if info.finished == Some(RunState::Succeeded) {
            return Err("it already succeeded; there is nothing to resume".into());
        }
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: RecordKind) -> Record {
        Record {
            at: OffsetDateTime::now_utc(),
            run_id: "r1".into(),
            kind,
        }
    }

    #[test]
    fn the_last_checkpoint_of_a_step_is_handed_back() {
        let records = vec![
            record(RecordKind::RunStarted {
                runbook: "ttl-remediate".into(),
                hash: "h".into(),
                source: "builtin".into(),
                env: "dev".into(),
                cache: "orders".into(),
                params: BTreeMap::new(),
                user: "u".into(),
                host: "h".into(),
                pid: 1,
                text: String::new(),
            }),
            record(RecordKind::StepStarted {
                step: "apply".into(),
                attempt: 1,
            }),
            record(RecordKind::Progress {
                step: "apply".into(),
                attempt: 1,
                facts: serde_json::json!({"cursor": 10}),
            }),
            record(RecordKind::Progress {
                step: "apply".into(),
                attempt: 1,
                facts: serde_json::json!({"cursor": 20}),
            }),
        ];
        let info = ResumeInfo::from_records("r1", &records).expect("resumable");
        let apply = &info.steps["apply"];
        assert_eq!(apply.progress, Some(serde_json::json!({"cursor": 20})));
        assert!(apply.done.is_none());
    }
}
