//! From a probe's record of attempts to the figures of a failover report. Pure functions.

use super::{Attempt, ErrorClass, Outcome};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// A stretch of time, in milliseconds since the probe started.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Window {
    pub start_ms: f64,
    pub end_ms: f64,
    pub duration_ms: f64,
}

impl Window {
    fn between(start: Duration, end: Duration) -> Window {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        Window {
            start_ms: ms(start),
            end_ms: ms(end),
            duration_ms: ms(end.saturating_sub(start)),
        }
    }
}

/// What one probe saw around an event (the trigger).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeSummary {
    pub attempts: u64,
    pub acked: u64,
    pub failed: u64,
    pub errors_by_class: BTreeMap<&'static str, u64>,
    /// The longest stretch after the trigger with no acknowledged attempt: from the last
    /// acknowledged attempt before it to the first one after it. `None` when nothing was
    /// acknowledged after the trigger (the probe never recovered).
    pub unavailable: Option<Window>,
    /// The server answering before the trigger and the one answering at the end.
    pub server_before: Option<String>,
    pub server_after: Option<String>,
    /// From the first failure after the trigger to the first acknowledgement by a server other
    /// than the one before: how long the endpoint took to follow the new primary.
    pub follow_ms: Option<f64>,
}

fn acked_by(a: &Attempt) -> Option<&str> {
    match &a.outcome {
        Outcome::Acked { server } => Some(server),
        Outcome::Failed { .. } => None,
    }
}

/// Summarises `attempts` (in the order they happened) around `trigger`.
pub fn summarize(attempts: &[Attempt], trigger: Duration) -> ProbeSummary {
    let mut errors_by_class: BTreeMap<&'static str, u64> =
        ErrorClass::ALL.iter().map(|c| (c.as_str(), 0)).collect();
    let mut acked = 0;
    for a in attempts {
        match &a.outcome {
            Outcome::Acked { .. } => acked += 1,
            Outcome::Failed { class } => *errors_by_class.entry(class.as_str()).or_default() += 1,
        }
    }
    let before: Vec<&Attempt> = attempts.iter().filter(|a| a.at < trigger).collect();
    let after: Vec<&Attempt> = attempts.iter().filter(|a| a.at >= trigger).collect();
    let last_ack_before = before.iter().rev().find(|a| acked_by(a).is_some());
    let server_before = last_ack_before
        .and_then(|a| acked_by(a))
        .map(str::to_string);
    let server_after = attempts
        .iter()
        .rev()
        .find_map(|a| acked_by(a))
        .map(str::to_string);

    // Longest gap between consecutive acknowledgements, starting from the last one before
    // the trigger (or the trigger itself when there was none).
    let mut previous = last_ack_before.map_or(trigger, |a| a.at);
    let mut unavailable: Option<Window> = None;
    for a in after.iter().filter(|a| acked_by(a).is_some()) {
        let gap = Window::between(previous, a.at);
        if unavailable.is_none_or(|w| gap.duration_ms > w.duration_ms) {
            unavailable = Some(gap);
        }
        previous = a.at;
    }

    let first_failure = after
        .iter()
        .find(|a| matches!(a.outcome, Outcome::Failed { .. }))
        .map(|a| a.at);
    let follow_ms = match (&server_before, first_failure) {
        (Some(old), Some(failed_at)) => after
            .iter()
            .find(|a| acked_by(a).is_some_and(|s| s != old) && a.at >= failed_at)
            .map(|a| (a.at - failed_at).as_secs_f64() * 1000.0),
        _ => None,
    };

    ProbeSummary {
        attempts: attempts.len() as u64,
        acked,
        failed: attempts.len() as u64 - acked,
        errors_by_class,
        unavailable,
        server_before,
        server_after,
        follow_ms,
    }
}

/// Sequence numbers that were acknowledged but are not in `present` (what the new primary
/// holds): acknowledged writes the failover lost.
pub fn lost_acks(attempts: &[Attempt], present: &HashSet<u64>) -> Vec<u64> {
    attempts
        .iter()
        .filter(|a| acked_by(a).is_some() && !present.contains(&a.seq))
        .map(|a| a.seq)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(seq: u64, ms: u64, server: &str) -> Attempt {
        Attempt {
            seq,
            at: Duration::from_millis(ms),
            outcome: Outcome::Acked {
                server: server.into(),
            },
        }
    }

    fn fail(seq: u64, ms: u64, class: ErrorClass) -> Attempt {
        Attempt {
            seq,
            at: Duration::from_millis(ms),
            outcome: Outcome::Failed { class },
        }
    }

    #[test]
    fn the_window_runs_from_the_last_ack_before_to_the_first_after() {
        let attempts = vec![
            ack(1, 0, "old"),
            ack(2, 10, "old"),
            ack(3, 20, "old"),
            fail(4, 30, ErrorClass::Readonly),
            fail(5, 40, ErrorClass::Refused),
            fail(6, 60, ErrorClass::Refused),
            ack(7, 85, "new"),
            ack(8, 95, "new"),
        ];
        let s = summarize(&attempts, Duration::from_millis(25));
        let w = s.unavailable.expect("window");
        assert_eq!((w.start_ms, w.end_ms, w.duration_ms), (20.0, 85.0, 65.0));
        assert_eq!(s.errors_by_class["readonly"], 1);
        assert_eq!(s.errors_by_class["refused"], 2);
        assert_eq!(s.errors_by_class["moved"], 0);
        assert_eq!(s.server_before.as_deref(), Some("old"));
        assert_eq!(s.server_after.as_deref(), Some("new"));
        assert_eq!(s.follow_ms, Some(55.0));
        assert_eq!((s.acked, s.failed), (5, 3));
    }

    #[test]
    fn a_probe_that_never_recovers_has_no_window() {
        let attempts = vec![ack(1, 0, "old"), fail(2, 10, ErrorClass::Timeout)];
        let s = summarize(&attempts, Duration::from_millis(5));
        assert_eq!(s.unavailable, None);
        assert_eq!(s.follow_ms, None);
    }

    #[test]
    fn lost_acks_are_acknowledged_sequences_missing_afterwards() {
        let attempts = vec![
            ack(1, 0, "a"),
            ack(2, 1, "a"),
            fail(3, 2, ErrorClass::Refused),
            ack(4, 3, "b"),
        ];
        let present: HashSet<u64> = [1, 4].into_iter().collect();
        assert_eq!(lost_acks(&attempts, &present), vec![2]);
    }
}
