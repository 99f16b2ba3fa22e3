//! The watch service against a real valkey-server: live stats of a cache that lists no
//! nodes come from its endpoint, queue caches are recognised, a cache whose password cannot
//! be read is one failure while the others are polled, and the detail watch reads SLOWLOG.

use crate::harness::valkey::{raw_command, server};
use cachedeck::domain::{
    AuthMode, Cache, CacheKind, Credentials, Endpoint, Endpoints, Node, NodeHealth, NodeRole,
    RoleSource, SecretRef, Shard,
};
use cachedeck::valkey::connect::ConnectOptions;
use cachedeck::valkey::stats::{PollerConfig, StatsEvent};
use cachedeck::watch::{self, DetailConfig, Sink, StatsConfig, Update};
use std::time::Duration;
use tokio::sync::mpsc;

fn cache(name: &str, port: u16, shards: Vec<Shard>) -> Cache {
    Cache {
        name: name.into(),
        env: "test".into(),
        kind: if shards.is_empty() {
            CacheKind::Serverless
        } else {
            CacheKind::ReplicationGroup
        },
        engine: "valkey".into(),
        engine_version: "8.1".into(),
        status: "available".into(),
        cluster_mode: false,
        auth: AuthMode::None,
        tls: false,
        endpoint: Some(Endpoint::new("127.0.0.1", port, false)),
        endpoints: Endpoints::default(),
        shards,
        automatic_failover: false,
        multi_az: false,
        arn: None,
        description: None,
        notes: vec![],
        credentials: Credentials::default(),
        ecs: None,
    }
}

fn primary(id: &str, port: u16) -> Shard {
    Shard {
        id: "0001".into(),
        slots: None,
        nodes: vec![Node {
            id: id.into(),
            role: NodeRole::Primary,
            host: "127.0.0.1".into(),
            port,
            availability_zone: None,
            status: "available".into(),
            health: NodeHealth::Up,
            tls: false,
            role_source: RoleSource::ControlPlane,
        }],
    }
}

fn options() -> ConnectOptions {
    ConnectOptions {
        connect_timeout: Duration::from_secs(3),
        command_timeout: Duration::from_secs(3),
    }
}

async fn next(rx: &mut mpsc::Receiver<Update>) -> Update {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an update within 10 s")
        .expect("the watch is running")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_watch_polls_nodes_and_endpoints_finds_queues_and_reports_unreadable_passwords() {
    let queues = server();
    let plain = server();
    assert!(raw_command(queues.port(), &["SET", "queues", "default"]).contains("OK"));

    let mut locked = cache(
        "locked",
        plain.port(),
        vec![primary("locked-001", plain.port())],
    );
    locked.credentials.password =
        Some(SecretRef::Env("CACHEDECK_TEST_WATCH_UNSET_PASSWORD".into()));
    let caches = vec![
        cache(
            "jobs",
            queues.port(),
            vec![primary("jobs-001", queues.port())],
        ),
        // Lists no nodes (serverless): polled through its endpoint as a node of its own name.
        cache("edge", plain.port(), vec![]),
        locked,
    ];
    let config = StatsConfig {
        options: options(),
        poller: PollerConfig {
            interval: Duration::from_millis(200),
            ..PollerConfig::default()
        },
        queues: true,
    };
    let (tx, mut rx) = mpsc::channel(64);
    let watch = watch::stats(None, caches, config, Sink::plain(tx));

    let mut sampled = std::collections::BTreeSet::new();
    let mut found_queues = std::collections::BTreeMap::new();
    let mut failed = None;
    while sampled.len() < 2 || found_queues.len() < 2 || failed.is_none() {
        match next(&mut rx).await {
            Update::Stats(StatsEvent::Sample { key, .. }) => {
                sampled.insert((key.cache, key.node));
            }
            Update::Stats(StatsEvent::Failed { key, error, .. }) => {
                panic!("{}/{} failed: {error}", key.cache, key.node)
            }
            Update::Queues { cache, queues } => {
                found_queues.insert(cache, queues);
            }
            Update::Failed { cache, error } => failed = Some((cache, error.to_string())),
            other => panic!("a stats watch sent {other:?}"),
        }
    }
    let expected: std::collections::BTreeSet<(String, String)> = [
        ("edge".to_string(), "edge".to_string()),
        ("jobs".to_string(), "jobs-001".to_string()),
    ]
    .into();
    assert_eq!(sampled, expected);
    // The endpoint of a cache that lists no nodes is looked at too (its role is unknown).
    let expected_queues: std::collections::BTreeMap<String, bool> =
        [("edge".to_string(), false), ("jobs".to_string(), true)].into();
    assert_eq!(found_queues, expected_queues);
    let (cache, reason) = failed.expect("the locked cache failed");
    assert_eq!(cache, "locked");
    assert!(
        reason.contains("CACHEDECK_TEST_WATCH_UNSET_PASSWORD"),
        "the reason names the missing variable: {reason}"
    );

    // Dropping the handle stops the watch: the channel closes.
    drop(watch);
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while rx.recv().await.is_some() {}
    })
    .await;
    assert!(
        closed.is_ok(),
        "the watch kept sending after it was dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detail_watch_reads_every_nodes_slowlog() {
    let node = server();
    assert!(
        raw_command(
            node.port(),
            &["CONFIG", "SET", "slowlog-log-slower-than", "0"]
        )
        .contains("OK")
    );
    assert!(raw_command(node.port(), &["SET", "slow-key", "v"]).contains("OK"));
    let watched = cache(
        "orders",
        node.port(),
        vec![primary("orders-001", node.port())],
    );
    let (tx, mut rx) = mpsc::channel(64);
    let config = DetailConfig::new(options(), Duration::from_secs(60));
    let watch = watch::detail(None, watched, config, Sink::plain(tx));
    match next(&mut rx).await {
        Update::Slowlog { node, result } => {
            assert_eq!(node, "orders-001");
            let entries = result.expect("SLOWLOG GET answers");
            assert!(
                entries
                    .iter()
                    .any(|e| e.args.iter().any(|a| a.as_slice() == b"slow-key")),
                "the SET is in the slowlog: {entries:?}"
            );
        }
        other => panic!("expected the slowlog first (no control plane, no events): {other:?}"),
    }
    // Asked again (a poke, or the 5 s interval), it reads every node again.
    watch.poll_now();
    match next(&mut rx).await {
        Update::Slowlog { node, result } => {
            assert_eq!(node, "orders-001");
            assert!(result.is_ok());
        }
        other => panic!("expected the slowlog again: {other:?}"),
    }
}
