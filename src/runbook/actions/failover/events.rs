//! Reading ElastiCache's failover events (DescribeEvents, or the sandbox's copies of them):
//! the TestFailover quota, whether a node group's test failover was already triggered, and
//! how far a failover has got. Pure functions over [`CacheEvent`]s.

use crate::controlplane::CacheEvent;
use crate::controlplane::events::EventSources;
use serde::Serialize;
use time::OffsetDateTime;

/// TestFailover's quota: node groups per rolling 24 hours.
pub const QUOTA: usize = 15;

const CALLED: &str = "Test Failover API called for node group ";
/// ElastiCache writes both spellings: "primary" in newer texts, "master" in older ones.
const FAILOVER_FROM: [&str; 2] = ["Failover from primary node ", "Failover from master node "];
const TO_REPLICA: &str = " to replica node ";
const RECOVERING: &str = "Recovering cache nodes";
const FINISHED: &str = "Finished recovery for cache nodes";

/// The node group a "Test Failover API called for node group X" event names.
pub fn triggered_group(e: &CacheEvent) -> Option<&str> {
    e.message
        .strip_prefix(CALLED)
        .map(|rest| rest.trim().trim_end_matches('.'))
}

/// Node groups test-failed-over in the 24 hours before `now` (the quota in use).
pub fn quota_used(events: &[CacheEvent], now: OffsetDateTime) -> usize {
    let since = now - time::Duration::hours(24);
    events
        .iter()
        .filter(|e| e.time > since && triggered_group(e).is_some())
        .count()
}

/// Whether TestFailover of `node_group` of the group `rg` was called at or after `since`:
/// the event of the group itself (exact id and type), never one of another group.
pub fn was_triggered(
    events: &[CacheEvent],
    rg: &EventSources,
    node_group: &str,
    since: OffsetDateTime,
) -> bool {
    events
        .iter()
        .any(|e| e.time >= since && rg.concerns(e) && triggered_group(e) == Some(node_group))
}

/// How far one node group's failover has got, from its events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Progress {
    pub called: bool,
    /// Old and new primary from "Failover from primary node A to replica node B completed".
    pub completed: Option<(String, String)>,
    pub recovering: bool,
    pub recovered: bool,
}

impl Progress {
    /// The failover is over: the replica was promoted and the old primary recovered.
    pub fn done(&self) -> bool {
        self.completed.is_some() && self.recovered
    }

    /// The event the failover still waits for, for timeout messages.
    pub fn waiting_for(&self) -> &'static str {
        if !self.called {
            "\"Test Failover API called\""
        } else if self.completed.is_none() {
            "\"Failover from primary node … completed\""
        } else {
            "\"Finished recovery for cache nodes …\""
        }
    }
}

/// Parses "Failover from primary node A to replica node B completed".
fn failover_pair(message: &str) -> Option<(String, String)> {
    let rest = FAILOVER_FROM
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))?;
    let (old, rest) = rest.split_once(TO_REPLICA)?;
    let new = rest.split_whitespace().next()?;
    Some((old.trim().to_string(), new.to_string()))
}

/// The progress of the failover of `node_group` of `rg` whose primary was `old_primary`
/// (when known), from events at or after `since`.
pub fn progress(
    events: &[CacheEvent],
    rg: &EventSources,
    node_group: &str,
    old_primary: Option<&str>,
    since: OffsetDateTime,
) -> Progress {
    let mut p = Progress::default();
    // Recovery events name the old primary's cache cluster (the sandbox) or only node ids
    // such as `0001` (AWS); the source then names the cluster. The old primary is the one
    // seen before the trigger or, should the names differ, the one the event names.
    let about_old = |e: &CacheEvent, named: Option<&str>| {
        let is = |old: &str| e.source == old || e.message.contains(old);
        (old_primary.is_none() && named.is_none())
            || old_primary.is_some_and(is)
            || named.is_some_and(is)
    };
    for e in events.iter().filter(|e| e.time >= since && rg.concerns(e)) {
        let named = p.completed.as_ref().map(|(old, _)| old.clone());
        let named = named.as_deref();
        if triggered_group(e) == Some(node_group) {
            p.called = true;
        } else if let Some((old, new)) = failover_pair(&e.message) {
            // Shards fail over one after another: the first completion after this group's
            // trigger is this group's; a later one naming the old primary seen wins.
            if p.called && (p.completed.is_none() || old_primary == Some(old.as_str())) {
                p.completed = Some((old, new));
            }
        } else if e.message.starts_with(RECOVERING) && p.called && about_old(e, named) {
            p.recovering = true;
        } else if e.message.starts_with(FINISHED) && p.completed.is_some() && about_old(e, named) {
            p.recovered = true;
        }
    }
    p
}

/// Whether an event belongs in a failover's timeline.
pub fn is_failover_event(e: &CacheEvent) -> bool {
    triggered_group(e).is_some()
        || failover_pair(&e.message).is_some()
        || e.message.starts_with(RECOVERING)
        || e.message.starts_with(FINISHED)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(secs: i64, source: &str, message: &str) -> CacheEvent {
        // Group events name the group; node events name a member cache cluster.
        let kind = if source.ends_with(|c: char| c.is_ascii_digit()) {
            "cache-cluster"
        } else {
            "replication-group"
        };
        CacheEvent {
            time: OffsetDateTime::from_unix_timestamp(1_700_000_000 + secs).expect("time"),
            source: source.into(),
            source_type: kind.into(),
            message: message.into(),
        }
    }

    fn orders() -> EventSources {
        EventSources {
            id: "orders".into(),
            kind: Some(crate::controlplane::EventSourceType::ReplicationGroup),
            members: ["orders-001", "orders-002"]
                .into_iter()
                .map(String::from)
                .collect(),
        }
    }

    #[test]
    fn progress_follows_the_aws_texts() {
        let since = OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("time");
        let events = vec![
            ev(-5, "orders", "Test Failover API called for node group 0001"),
            ev(1, "orders", "Test Failover API called for node group 0001"),
            ev(
                9,
                "orders",
                "Failover from primary node orders-001 to replica node orders-002 completed",
            ),
            ev(10, "orders-001", "Recovering cache nodes 0001"),
        ];
        let p = progress(&events, &orders(), "0001", Some("orders-001"), since);
        assert!(p.called && p.recovering && !p.recovered && !p.done());
        assert_eq!(
            p.completed,
            Some(("orders-001".into(), "orders-002".into()))
        );
        assert!(p.waiting_for().contains("Finished recovery"));
        let mut more = events.clone();
        more.push(ev(
            30,
            "orders-001",
            "Finished recovery for cache nodes 0001",
        ));
        assert!(progress(&more, &orders(), "0001", Some("orders-001"), since).done());
        // Another group's failover is not this one's.
        assert!(!progress(&more, &orders(), "0002", Some("orders-001"), since).called);
        assert!(was_triggered(&events, &orders(), "0001", since));
        // Names that differ from the ones discovered still complete the failover.
        let p = progress(&more, &orders(), "0001", Some("orders-0001-001"), since);
        assert_eq!(
            p.completed,
            Some(("orders-001".into(), "orders-002".into()))
        );
        assert!(p.done());
        assert!(!was_triggered(&events[..1], &orders(), "0001", since));
    }

    #[test]
    fn another_groups_failover_is_not_ours() {
        let since = OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("time");
        let events = vec![
            ev(
                1,
                "orders-v2",
                "Test Failover API called for node group 0001",
            ),
            ev(
                9,
                "orders-v2",
                "Failover from primary node orders-v2-001 to replica node orders-v2-002 completed",
            ),
            ev(
                20,
                "orders-v2-001",
                "Finished recovery for cache nodes 0001",
            ),
        ];
        assert!(!was_triggered(&events, &orders(), "0001", since));
        let p = progress(&events, &orders(), "0001", Some("orders-001"), since);
        assert_eq!(p, Progress::default());
    }

    #[test]
    fn master_is_read_as_primary() {
        let since = OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("time");
        let events = vec![
            ev(1, "orders", "Test Failover API called for node group 0001"),
            ev(
                9,
                "orders",
                "Failover from master node orders-001 to replica node orders-002 completed",
            ),
            ev(30, "orders-001", "Finished recovery for cache nodes 0001"),
        ];
        let p = progress(&events, &orders(), "0001", Some("orders-001"), since);
        assert_eq!(
            p.completed,
            Some(("orders-001".into(), "orders-002".into()))
        );
        assert!(p.done());
        assert!(is_failover_event(&events[1]));
    }

    #[test]
    fn quota_counts_node_groups_of_the_last_day() {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("time");
        let events = vec![
            ev(-90_000, "a", "Test Failover API called for node group 0001"),
            ev(-100, "a", "Test Failover API called for node group 0001"),
            ev(-50, "b", "Test Failover API called for node group 0003"),
            ev(
                -40,
                "b",
                "Failover from primary node b-1 to replica node b-2 completed",
            ),
        ];
        assert_eq!(quota_used(&events, now), 2);
    }
}
