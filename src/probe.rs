//! Client probes: what an application sees while something happens to a cache. A writer
//! sends sequence-numbered writes through the primary endpoint every few milliseconds and
//! a reader reads through the reader endpoint; every attempt is recorded with its outcome and
//! the server that answered. `summary` turns the record into the failover figures
//! (write-unavailability window, errors by class, acknowledged writes lost, endpoint
//! follow time).

mod classify;
mod runner;
mod summary;

pub use classify::{ErrorClass, classify};

pub use runner::{ProbeConfig, ProbeHandle, ProbeKind, start};
pub use summary::{ProbeSummary, Window, lost_acks, summarize};

use serde::Serialize;
use std::time::Duration;

/// One probe attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    /// Sequence number (writes) or attempt number (reads).
    pub seq: u64,
    /// When the attempt was answered (or failed), since the probe started.
    #[serde(serialize_with = "as_millis")]
    pub at: Duration,
    pub outcome: Outcome,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "result")]
pub enum Outcome {
    /// Acknowledged by the server with this run id.
    Acked {
        server: String,
    },
    Failed {
        class: ErrorClass,
    },
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}
