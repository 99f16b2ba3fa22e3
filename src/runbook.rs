//! Runbooks: the file format and its validation, the engine that runs steps and emits
//! events, the journal that makes runs resumable, per-cache locks, protection levels, the
//! built-in actions, and the headless runner.
//!
//! Data flows one way: a [`file`] is validated into a [`Runbook`]; the [`engine`] executes
//! it against one cache, writing the [`journal`] and emitting [`events`]; reporters (the
//! headless [`runner`], the TUI) only read those events.

pub mod action;
pub mod actions;
pub mod catalog;
pub mod engine;
pub mod events;
pub mod file;
pub mod journal;
pub mod lock;
pub mod protect;
pub mod runner;
pub mod session;
pub mod template;
pub mod validate;
pub mod value;

pub use validate::{Runbook, RunbookError};
