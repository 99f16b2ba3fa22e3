//! Client probes against a real server: a write pause shows as an unavailability window of
//! the right size, every acknowledged write is present afterwards, and a killed server is
//! classed as refused.

use crate::harness::valkey::{raw_command, server};
use cachedeck::domain::Endpoint;
use cachedeck::probe::{self, ProbeConfig, ProbeKind};
use cachedeck::valkey::connect::{Auth, ConnectOptions, Connector};
use std::collections::HashSet;
use std::time::Duration;

fn connector() -> Connector {
    Connector::new(
        Auth::new(None, None),
        false,
        None,
        ConnectOptions::default(),
    )
    .expect("plain connector")
}

fn writer(port: u16, key: &str) -> ProbeConfig {
    ProbeConfig {
        kind: ProbeKind::Writer,
        endpoint: Endpoint::new("127.0.0.1", port, false),
        key: key.into(),
        interval: Duration::from_millis(5),
        attempt_timeout: Duration::from_secs(2),
    }
}

#[tokio::test]
async fn a_write_pause_is_measured_and_no_acked_write_is_lost() {
    let srv = server();
    let handle = probe::start(&connector(), writer(srv.port(), "probe:pause"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let trigger = handle.elapsed();
    let reply = raw_command(srv.port(), &["CLIENT", "PAUSE", "300", "WRITE"]);
    assert!(reply.starts_with("+OK"), "{reply}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let attempts = handle.stop().await;

    let summary = probe::summarize(&attempts, trigger);
    let window = summary.unavailable.expect("writes resumed");
    assert!(
        (280.0..700.0).contains(&window.duration_ms),
        "pause of 300 ms measured as {window:?}"
    );
    assert!(summary.acked > 50, "{summary:?}");
    assert_eq!(summary.server_before, summary.server_after);

    let list = raw_command(srv.port(), &["LRANGE", "probe:pause", "0", "-1"]);
    let present: HashSet<u64> = list.lines().filter_map(|l| l.parse::<u64>().ok()).collect();
    assert!(present.len() as u64 >= summary.acked, "{list}");
    assert!(probe::lost_acks(&attempts, &present).is_empty());
    let ttl = raw_command(srv.port(), &["TTL", "probe:pause"]);
    assert!(
        ttl.starts_with(":") && !ttl.starts_with(":-"),
        "probe key must expire: {ttl}"
    );
}

#[tokio::test]
async fn a_killed_server_is_refused_not_a_hang() {
    let mut srv = server();
    let handle = probe::start(&connector(), writer(srv.port(), "probe:kill"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    srv.kill();
    // After the process is gone (a reply it wrote just before dying may still be read).
    let trigger = handle.elapsed() + Duration::from_millis(50);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let attempts = handle.stop().await;
    let summary = probe::summarize(&attempts, trigger);
    assert!(summary.errors_by_class["refused"] > 0, "{summary:?}");
    // The freed port may be taken by another test's server at once: what matters is that
    // the killed server never acknowledged anything after the kill.
    let killed = summary.server_before.clone().expect("acks before the kill");
    let after_kill = attempts.iter().filter(|a| a.at > trigger);
    assert!(
        !after_kill
            .into_iter()
            .any(|a| matches!(&a.outcome, probe::Outcome::Acked { server } if *server == killed)),
        "{summary:?}"
    );
}
