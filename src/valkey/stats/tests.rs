//! Rate and hit-rate derivation between two samples, counter resets, replica lag and the
//! book's up/stale/down logic.

use super::*;
use crate::valkey::connect::{ConnectError, Layer};
use std::time::Duration;

const PRIMARY: &str = include_str!("../../../tests/fixtures/info/valkey-8.1-primary.txt");
const REPLICA: &str = include_str!("../../../tests/fixtures/info/valkey-8.1-replica.txt");

/// A sample of the primary fixture with some counters replaced, taken at `at`.
fn sample(at: Instant, edits: &[(&str, &str)]) -> NodeSample {
    let mut text = PRIMARY.to_string();
    for (field, value) in edits {
        let start = text.find(&format!("\n{field}:")).expect("field in fixture") + 1;
        let end = start + text[start..].find("\r\n").expect("line end");
        text.replace_range(start..end, &format!("{field}:{value}"));
    }
    NodeSample {
        at,
        wall: OffsetDateTime::now_utc(),
        latency: Duration::from_millis(2),
        info: Arc::new(Info::parse(&text)),
    }
}

#[test]
fn rates_come_from_counter_deltas_over_the_interval() {
    let t0 = Instant::now();
    let a = sample(
        t0,
        &[
            ("total_commands_processed", "1000"),
            ("keyspace_hits", "100"),
            ("keyspace_misses", "100"),
            ("evicted_keys", "10"),
            ("expired_keys", "0"),
            ("total_net_input_bytes", "0"),
            ("total_net_output_bytes", "0"),
        ],
    );
    let b = sample(
        t0 + Duration::from_secs(2),
        &[
            ("total_commands_processed", "5000"),
            ("keyspace_hits", "190"),
            ("keyspace_misses", "110"),
            ("evicted_keys", "30"),
            ("expired_keys", "4"),
            ("total_net_input_bytes", "2048"),
            ("total_net_output_bytes", "8192"),
        ],
    );
    let s = NodeStats::derive(&b, Some(&a));
    assert_eq!(s.ops_per_sec, Some(2000.0));
    assert_eq!(s.hit_rate, Some(0.9));
    assert_eq!(s.hit_rate_lifetime, Some(190.0 / 300.0));
    assert_eq!(s.evicted_per_sec, Some(10.0));
    assert_eq!(s.expired_per_sec, Some(2.0));
    assert_eq!(s.net_in_bytes_per_sec, Some(1024.0));
    assert_eq!(s.net_out_bytes_per_sec, Some(4096.0));
    // Same CPU counters in both samples: an idle server.
    assert_eq!(s.cpu_percent, Some(0.0));
    assert_eq!(s.role, Role::Primary);
    assert_eq!(s.keys, 52);
    assert_eq!(s.rdb_last_bgsave_status.as_deref(), Some("ok"));
    assert_eq!(s.aof_enabled, Some(true));
    assert_eq!(s.memory_fill(), Some(1_250_312.0 / 67_108_864.0));
}

#[test]
fn first_sample_falls_back_on_the_servers_instantaneous_figure() {
    let s = NodeStats::derive(&sample(Instant::now(), &[]), None);
    assert_eq!(s.ops_per_sec, Some(39.0));
    assert_eq!(s.hit_rate, None, "no interval, no interval hit rate");
    assert_eq!(s.evicted_per_sec, None);
}

#[test]
fn a_restart_between_samples_gives_no_rate_instead_of_garbage() {
    let t0 = Instant::now();
    let a = sample(t0, &[("total_commands_processed", "900000")]);
    let b = sample(
        t0 + Duration::from_secs(1),
        &[
            ("total_commands_processed", "10"),
            ("run_id", "ffffffffffffffffffffffffffffffffffffffff"),
        ],
    );
    let s = NodeStats::derive(&b, Some(&a));
    // Different process: fall back on the instantaneous figure, not 10 - 900000.
    assert_eq!(s.ops_per_sec, Some(39.0));
    // Same process but a counter went backwards (CONFIG RESETSTAT): no rate.
    let c = sample(
        t0 + Duration::from_secs(1),
        &[("total_commands_processed", "10"), ("keyspace_hits", "0")],
    );
    let s = NodeStats::derive(&c, Some(&a));
    assert_eq!(s.ops_per_sec, Some(39.0));
    assert_eq!(s.hit_rate, None);
}

#[test]
fn primary_reports_replica_lag_in_bytes() {
    let s = NodeStats::derive(
        &sample(Instant::now(), &[("master_repl_offset", "2663")]),
        None,
    );
    assert_eq!(s.replicas.len(), 1);
    assert_eq!(s.replicas[0].address, "127.0.0.1:26402");
    assert_eq!(s.replicas[0].lag_bytes, Some(1000));
    assert_eq!(s.max_replica_lag_bytes(), Some(1000));
}

fn key(node: &str) -> NodeKey {
    NodeKey {
        env: "dev".into(),
        cache: "orders".into(),
        node: node.into(),
    }
}

fn ok_event(node: &str, text: &str) -> StatsEvent {
    let info = Info::parse(text);
    let sample = NodeSample::new(info, Duration::from_millis(1));
    StatsEvent::Sample {
        key: key(node),
        stats: Box::new(NodeStats::derive(&sample, None)),
        info: sample.info.clone(),
    }
}

fn failed(node: &str, layer: Layer, n: u32) -> StatsEvent {
    StatsEvent::Failed {
        key: key(node),
        error: ConnectError::new(layer, "127.0.0.1:1", "boom", None),
        consecutive: n,
        retry_in: Duration::from_secs(1),
    }
}

#[test]
fn book_pairs_a_replica_with_its_primary_for_lag() {
    let mut book = StatsBook::new(10);
    let primary = PRIMARY.replace("master_repl_offset:1663", "master_repl_offset:5663");
    book.apply(ok_event("p", &primary));
    book.apply(ok_event("r", REPLICA));
    assert_eq!(book.repl_lag_bytes(&key("r")), Some(4000));
    assert_eq!(book.repl_lag_bytes(&key("p")), Some(4000));
    assert_eq!(
        book.cache_ops_per_sec("dev", "orders"),
        Some(
            39.0 + 0.0_f64.max(
                Info::parse(REPLICA)
                    .stats
                    .instantaneous_ops_per_sec
                    .unwrap_or(0) as f64
            )
        )
    );
    assert_eq!(book.cache_used_memory("dev", "orders"), Some(1_250_312));
}

#[test]
fn timeouts_go_stale_then_down_while_refusals_are_down_at_once() {
    let mut book = StatsBook::new(3);
    book.track(key("p"));
    assert_eq!(
        book.get(&key("p")).map(|e| e.status.label()),
        Some("pending")
    );
    book.apply(ok_event("p", PRIMARY));
    book.apply(failed("p", Layer::Timeout, 1));
    let entry = book.get(&key("p")).expect("tracked");
    assert_eq!(entry.status.label(), "stale");
    assert!(entry.latest.is_some(), "old figures stay visible");
    book.apply(failed("p", Layer::Timeout, 2));
    assert_eq!(book.get(&key("p")).map(|e| e.status.label()), Some("down"));
    book.apply(failed("q", Layer::Tcp, 1));
    let q = book.get(&key("q")).expect("tracked on failure");
    assert_eq!(q.status.label(), "down");
    assert!(q.status.reason().is_some_and(|r| r.contains("boom")));
    book.apply(ok_event("q", PRIMARY));
    assert!(book.get(&key("q")).is_some_and(|e| e.status.is_up()));
}

#[test]
fn history_is_bounded_and_keeps_the_newest() {
    let mut book = StatsBook::new(3);
    for _ in 0..5 {
        book.apply(ok_event("p", PRIMARY));
    }
    let history = &book.get(&key("p")).expect("entry").history;
    assert_eq!(history.len(), 3);
    assert_eq!(history.capacity(), 3);
    assert_eq!(history.sparkline(2, 1.0, |p| p.ops_per_sec), vec![39, 39]);
    assert_eq!(history.series(10, |p| p.hit_rate).len(), 3);
}

#[test]
fn a_healthy_node_raises_no_alert() {
    let s = NodeStats::derive(&sample(Instant::now(), &[]), None);
    assert_eq!(s.alerts(), vec![]);
}

#[test]
fn failed_saves_full_memory_evictions_and_lag_raise_alerts_most_urgent_first() {
    let t0 = Instant::now();
    let a = sample(t0, &[("evicted_keys", "0")]);
    let b = sample(
        t0 + Duration::from_secs(1),
        &[
            ("evicted_keys", "50"),
            ("used_memory", "65000000"),
            ("rdb_last_bgsave_status", "err"),
            ("master_repl_offset", "20000000"),
            (
                "slave0",
                "ip=10.0.0.9,port=6379,state=wait_bgsave\u{1b}[2J,offset=1663,lag=3",
            ),
        ],
    );
    let alerts = NodeStats::derive(&b, Some(&a)).alerts();
    let messages: Vec<&str> = alerts.iter().map(|a| a.message.as_str()).collect();
    assert_eq!(alerts[0].severity, Severity::Critical);
    assert_eq!(
        messages[0],
        "last RDB background save failed (disk full or fork failed?)"
    );
    assert_eq!(messages[1], "memory 97% of maxmemory (allkeys-lru)");
    assert!(messages.contains(&"evicting 50 keys/s"), "{messages:?}");
    assert!(
        messages.contains(&"replica 10.0.0.9:6379 is 19 MiB behind"),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("is wait_bgsave\\x1b[2J")),
        "server text is escaped: {messages:?}"
    );
}

#[test]
fn a_replica_with_its_link_down_is_critical() {
    let text = REPLICA
        .replace("master_link_status:up", "master_link_status:down")
        .replace(
            "master_sync_in_progress:0",
            "master_sync_in_progress:0\r\nmaster_link_down_since_seconds:42",
        );
    let s = NodeStats::derive(&NodeSample::new(Info::parse(&text), Duration::ZERO), None);
    assert_eq!(
        s.alerts(),
        vec![Alert {
            severity: Severity::Critical,
            message: "replication link to the primary is down for 42s".into()
        }]
    );
}

#[test]
fn cpu_percent_is_cpu_seconds_over_wall_seconds() {
    let t0 = Instant::now();
    let a = sample(t0, &[("used_cpu_sys", "10.0"), ("used_cpu_user", "20.0")]);
    let b = sample(
        t0 + Duration::from_secs(2),
        &[("used_cpu_sys", "10.5"), ("used_cpu_user", "20.5")],
    );
    let s = NodeStats::derive(&b, Some(&a));
    assert!(
        s.cpu_percent.is_some_and(|c| (c - 50.0).abs() < 1e-9),
        "{:?}",
        s.cpu_percent
    );
}
