//! The append-only journal of a run: one JSONL file per run under
//! `state_dir()/runs/`, mode 0600, each record fsynced before the engine goes on. It holds
//! no secret: records are built from public values only, and a secret that slipped in would
//! make the write fail (secret values refuse to serialize) rather than land on disk.
//!
//! Dangerous steps are write-ahead: an `intent` record is on disk before the mutation is
//! attempted, `step-done` after; resume uses the pair to tell "never tried" from "maybe
//! took effect" (then it asks the action to `observe`).

use crate::runbook::events::RunState;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// Why the journal could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("write the run journal {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("write a journal record: {0}")]
    Encode(String),
    #[error("find run `{0}`: no such journal (see `cachedeck runs list`)")]
    UnknownRun(String),
    #[error("read run id `{0}`: run ids are letters, digits and `-` (see `cachedeck runs list`)")]
    BadId(String),
    #[error(
        "continue run {0}: it is still running in another cachedeck process; wait for it or stop it first"
    )]
    Busy(String),
}

/// One journal line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub run_id: String,
    #[serde(flatten)]
    pub kind: RecordKind,
}

/// What a record says.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "kebab-case")]
pub enum RecordKind {
    RunStarted {
        runbook: String,
        hash: String,
        source: String,
        env: String,
        cache: String,
        params: BTreeMap<String, serde_json::Value>,
        user: String,
        host: String,
        pid: u32,
        /// The runbook text, so `runs resume` runs exactly what was started.
        text: String,
    },
    RunResumed {
        user: String,
        host: String,
        pid: u32,
    },
    StepStarted {
        step: String,
        attempt: u32,
    },
    /// Written before a dangerous call: the calls about to be made.
    Intent {
        step: String,
        attempt: u32,
        calls: Vec<String>,
    },
    /// A long step's checkpoint (e.g. per-shard SCAN cursors and counts): resume hands
    /// the last one back to the action, which continues from it.
    Progress {
        step: String,
        attempt: u32,
        facts: serde_json::Value,
    },
    /// What `observe` found on resume.
    Observed {
        step: String,
        facts: String,
    },
    StepDone {
        step: String,
        attempt: u32,
        outputs: BTreeMap<String, serde_json::Value>,
        /// Names of secret outputs (values never journaled): resume re-observes to get them.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        secret_outputs: Vec<String>,
    },
    StepFailed {
        step: String,
        attempt: u32,
        error: String,
        /// Another attempt follows.
        retrying: bool,
        /// `on_failure = "continue"` let the run go on (resume does not retry it).
        continued: bool,
    },
    Lock {
        name: String,
        taken: bool,
    },
    RunFinished {
        state: RunState,
        #[serde(default)]
        error: Option<String>,
    },
}

/// The directory of run journals.
pub fn runs_dir() -> PathBuf {
    crate::config::state_dir().join("runs")
}

/// A new run id: UTC time then random hex, so ids sort by start time.
pub fn new_run_id() -> String {
    let now = OffsetDateTime::now_utc();
    let r: u32 = rand::random();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z-{r:08x}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

fn check_id(id: &str) -> Result<(), JournalError> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(JournalError::BadId(crate::escape::escape_capped(id, 80)));
    }
    Ok(())
}

/// The journal file of a run.
pub fn path_of(dir: &Path, run_id: &str) -> Result<PathBuf, JournalError> {
    check_id(run_id)?;
    Ok(dir.join(format!("{run_id}.jsonl")))
}

/// An open journal, appending.
#[derive(Debug)]
pub struct Journal {
    run_id: String,
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Opens (creating with mode 0600) the journal of `run_id` in `dir`.
    pub fn open(dir: &Path, run_id: &str) -> Result<Journal, JournalError> {
        let path = path_of(dir, run_id)?;
        let io = |source| JournalError::Io {
            path: path.clone(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        // One writer per run: a `runs resume` of a run that is still going must not
        // interleave records (or mutations) with it.
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(JournalError::Busy(run_id.to_string()));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        Ok(Journal {
            run_id: run_id.to_string(),
            path,
            file,
        })
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record and fsyncs it.
    pub fn append(&mut self, kind: RecordKind) -> Result<Record, JournalError> {
        let record = Record {
            at: OffsetDateTime::now_utc(),
            run_id: self.run_id.clone(),
            kind,
        };
        let mut line =
            serde_json::to_string(&record).map_err(|e| JournalError::Encode(e.to_string()))?;
        line.push('\n');
        let io = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(line.as_bytes()).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        Ok(record)
    }
}

/// Every record of a run. A torn last line (the runner was killed mid-write) is skipped.
pub fn read(dir: &Path, run_id: &str) -> Result<Vec<Record>, JournalError> {
    let path = path_of(dir, run_id)?;
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(JournalError::UnknownRun(run_id.to_string()));
        }
        Err(source) => return Err(JournalError::Io { path, source }),
    };
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<Record>(l).ok())
        .collect())
}

/// One line of `cachedeck runs list`.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub runbook: String,
    pub env: String,
    pub cache: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started: OffsetDateTime,
    /// `succeeded`, `failed`, `interrupted`, `refused`, or `incomplete` (killed, or running).
    pub state: String,
    pub last_step: Option<String>,
}

/// Summarises a run's records.
pub fn summarize(records: &[Record]) -> Option<RunSummary> {
    let first = records.first()?;
    let RecordKind::RunStarted {
        runbook,
        env,
        cache,
        ..
    } = &first.kind
    else {
        return None;
    };
    let mut state = "incomplete".to_string();
    let mut last_step = None;
    for r in records {
        match &r.kind {
            RecordKind::StepStarted { step, .. } => last_step = Some(step.clone()),
            RecordKind::RunFinished { state: s, .. } => state = s.as_str().to_string(),
            RecordKind::RunResumed { .. } => state = "incomplete".into(),
            _ => {}
        }
    }
    Some(RunSummary {
        run_id: first.run_id.clone(),
        runbook: runbook.clone(),
        env: env.clone(),
        cache: cache.clone(),
        started: first.at,
        state,
        last_step,
    })
}

/// Every run in `dir`, newest first.
pub fn list(dir: &Path) -> Result<Vec<RunSummary>, JournalError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(JournalError::Io {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut runs = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_suffix(".jsonl") else {
            continue;
        };
        if let Ok(records) = read(dir, id) {
            runs.extend(summarize(&records));
        }
    }
    runs.sort_by(|a, b| b.run_id.cmp(&a.run_id));
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn journal_is_private_and_survives_a_torn_last_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = new_run_id();
        let mut j = Journal::open(dir.path(), &id).expect("open");
        j.append(RecordKind::StepStarted {
            step: "a".into(),
            attempt: 1,
        })
        .expect("append");
        let mode = std::fs::metadata(j.path())
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::OpenOptions::new()
            .append(true)
            .open(j.path())
            .and_then(|mut f| f.write_all(b"{\"at\":\"20"))
            .expect("torn write");
        let records = read(dir.path(), &id).expect("read");
        assert_eq!(records.len(), 1);
        assert!(read(dir.path(), "../etc/passwd").is_err());
    }
}
