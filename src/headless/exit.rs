//! The exit codes of every headless command, and the mapping from the typed error kinds of
//! the runbook engine and `session` to them.

use crate::runbook::ErrorKind;
use crate::runbook::events::RunState;

/// Everything asked for was done: listed, or the runbook succeeded (or its dry run was printed).
pub const OK: u8 = 0;
/// A listing command: at least one environment could not be read; the others were listed.
pub const PARTIAL: u8 = 1;
/// A runbook step failed (after its retries and on_failure handling); see the report.
pub const FAILED: u8 = 1;
/// Bad input: unknown or invalid runbook, parameter, environment, cache or config. Nothing ran.
pub const BAD_INPUT: u8 = 2;
/// Refused by protection (read-only environment, missing --yes / --confirm-cache, or a
/// declined confirmation). Nothing dangerous ran.
pub const REFUSED: u8 = 3;
/// Another run holds the cache's lock; the message names the holder.
pub const LOCK_HELD: u8 = 4;
/// Interrupted (Ctrl-C / SIGTERM / SIGHUP); resume with `cachedeck runs resume ID`.
pub const INTERRUPTED: u8 = 5;

/// The exit code of an error of this kind.
pub fn for_kind(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::BadInput => BAD_INPUT,
        ErrorKind::Refused => REFUSED,
        ErrorKind::LockHeld => LOCK_HELD,
        ErrorKind::Failed => FAILED,
    }
}

/// The exit code of a run that ended in `state`.
pub fn for_state(state: RunState) -> u8 {
    match state {
        RunState::Succeeded => OK,
        RunState::Failed => FAILED,
        RunState::Interrupted => INTERRUPTED,
        RunState::Refused => REFUSED,
    }
}
