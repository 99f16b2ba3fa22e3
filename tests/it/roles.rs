//! Node roles learned from the nodes where the control plane does not report them (cluster
//! mode on AWS): ROLE per node, CLUSTER SHARDS for a node that cannot be asked, a clear
//! reason when nobody can say, and the TUI's queue-marker check finding a cluster's
//! primaries.

use crate::harness::valkey::{cluster_pair, raw_command};
use cachedeck::domain::{
    AuthMode, Cache, CacheKind, Credentials, Endpoint, Endpoints, Node, NodeHealth, NodeRole,
    RoleSource, Shard,
};
use cachedeck::valkey::connect::{Auth, ConnectOptions, Connector};
use cachedeck::valkey::roles;
use std::time::Duration;

fn node(id: &str, port: u16) -> Node {
    Node {
        id: id.into(),
        role: NodeRole::Unknown,
        host: "127.0.0.1".into(),
        port,
        availability_zone: None,
        status: "available".into(),
        health: NodeHealth::Up,
        tls: false,
        role_source: RoleSource::not_reported(),
    }
}

/// A cluster-mode group as DescribeReplicationGroups describes it: no roles.
fn cache(primary: u16, replica: u16) -> Cache {
    Cache {
        name: "pw".into(),
        env: "prod".into(),
        kind: CacheKind::ReplicationGroup,
        engine: "valkey".into(),
        engine_version: "8.1".into(),
        status: "available".into(),
        cluster_mode: true,
        auth: AuthMode::None,
        tls: false,
        endpoint: Some(Endpoint::new("127.0.0.1", primary, false)),
        endpoints: Endpoints::default(),
        // The replica first: discovery order says nothing about roles.
        shards: vec![Shard {
            id: "0001".into(),
            slots: Some("0-16383".into()),
            nodes: vec![node("pw-0001-002", replica), node("pw-0001-001", primary)],
        }],
        automatic_failover: true,
        multi_az: true,
        arn: None,
        description: None,
        notes: vec![],
        credentials: Credentials::default(),
        ecs: None,
    }
}

fn connector() -> Connector {
    Connector::new(
        Auth::default(),
        false,
        None,
        ConnectOptions {
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_secs(1),
        },
    )
    .expect("connector")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_come_from_the_nodes_then_from_peers_then_a_reason() {
    let (primary, mut replica) = cluster_pair().await;
    let mut c = cache(primary.port(), replica.port());
    assert!(c.shards[0].primary().is_none() && roles::needs_learning(&c));
    // A marker key for the TUI's queue check (Sidekiq's `queues` set).
    let reply = raw_command(primary.port(), &["SADD", "queues", "default"]);
    assert_eq!(reply, ":1\r\n");
    assert!(
        cachedeck::watch::has_queue_markers(c.clone(), &connector()).await,
        "the queue check finds the cluster's primary although discovery named no roles"
    );

    let learned = roles::learn(&mut c, &connector()).await;
    assert_eq!(learned.asked, 2);
    assert_eq!(learned.answered, 2);
    assert_eq!(
        c.shards[0].primary().map(|n| n.id.as_str()),
        Some("pw-0001-001")
    );
    assert_eq!(c.shards[0].replicas().count(), 1);
    assert!(c.nodes().all(|n| n.role_source == RoleSource::Node));

    // A replica that cannot be asked: the primary's CLUSTER SHARDS still names it.
    replica.kill();
    let mut c = cache(primary.port(), replica.port());
    let learned = roles::learn(&mut c, &connector()).await;
    assert_eq!(
        (learned.answered, learned.from_peers),
        (1, 1),
        "{learned:?}"
    );
    let dead = &c.shards[0].nodes[0];
    assert_eq!(dead.role, NodeRole::Replica);
    assert!(
        matches!(&dead.role_source, RoleSource::Peers(why) if why.contains("cannot be asked")),
        "{:?}",
        dead.role_source
    );

    // Nobody answers: every role unknown, each with its reason, and the line says so.
    let mut primary = primary;
    primary.kill();
    let mut c = cache(primary.port(), replica.port());
    let learned = roles::learn(&mut c, &connector()).await;
    assert_eq!(learned.answered, 0);
    assert_eq!(learned.unknown.len(), 2);
    let line = learned.summary().expect("a line");
    assert!(
        line.contains("role of pw-0001-001 unknown: the node cannot be asked"),
        "{line}"
    );
    assert!(c.nodes().all(|n| n.role == NodeRole::Unknown));
}
