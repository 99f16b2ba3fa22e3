//! The failover test's actions: `failover-preflight` (replicas, automatic failover, lag, the
//! TestFailover quota) and `test-failover` (probes, TestFailover per shard, events followed to
//! recovery, the report), with their shared parts.

mod events;
mod preflight;
mod probes;
mod report;
mod trigger;

pub use preflight::FailoverPreflight;
pub use trigger::TestFailover;
