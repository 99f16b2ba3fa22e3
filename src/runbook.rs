//! Runbooks: the file format and its validation, the engine that runs steps and emits
//! events, the journal that makes runs resumable, per-cache locks, protection levels, the
//! built-in actions.
//!
//! Data flows one way: a [`file`] is validated into a [`Runbook`]; the [`engine`] executes
//! it against one cache, writing the [`journal`] and emitting [`events`]; reporters (the
//! headless `run` command, the TUI) only read those events. Errors carry an [`ErrorKind`]
//! that each front end maps to what it shows (the headless exit codes).

pub mod action;
pub mod actions;
pub mod catalog;
pub mod engine;
pub mod events;
pub mod file;
pub mod journal;
pub mod lock;
pub mod protect;
pub mod session;
pub mod template;
pub mod validate;
pub mod value;

pub use validate::{Runbook, RunbookError};

/// What kind of failure an error of the engine or of [`session`] is, for a front end to map
/// to its own terms (an exit code, a message) without knowing every variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Unknown or invalid runbook, parameter, environment, cache or run; nothing ran.
    BadInput,
    /// Refused by protection; nothing dangerous ran.
    Refused,
    /// Another run holds the cache's lock (or its journal).
    LockHeld,
    /// Something failed while carrying the run out (a control plane, the journal).
    Failed,
}
