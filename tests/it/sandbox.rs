//! The sandbox end to end: real processes started by `cachedeck sandbox up`, discovered
//! through `SandboxControlPlane`, failed over for real, and gone after `down`.

#![allow(clippy::expect_used)]

use crate::harness::sandbox::Sandbox;
use cachedeck::controlplane::{
    ControlPlane, ControlPlaneError, EventQuery, EventSourceType, ParameterType, ParameterValue,
    PutParameter,
};
use cachedeck::domain::{Cache, CacheKind, NodeHealth, NodeRole, RoleSource};
use cachedeck::sandbox::events;
use cachedeck::valkey::server::{pid_alive, port_free};
use redis::{IntoConnectionInfo, RedisConnectionInfo};
use std::path::Path;
use std::time::{Duration, Instant};

fn find<'a>(caches: &'a [Cache], name: &str) -> &'a Cache {
    caches.iter().find(|c| c.name == name).unwrap_or_else(|| {
        panic!(
            "no cache {name} in {:?}",
            caches.iter().map(|c| &c.name).collect::<Vec<_>>()
        )
    })
}

/// The TLS cluster as DescribeReplicationGroups/DescribeCacheClusters give a cluster-mode
/// group with in-transit encryption: a TLS configuration endpoint and TLS node endpoints;
/// through them, CLUSTER SLOTS and MOVED name only those TLS addresses, and following a
/// MOVED over TLS reaches the key.
async fn cluster_speaks_tls_through_announced_fronts(sandbox: &Sandbox, paperwurks: &Cache) {
    use cachedeck::domain::Endpoint;
    use cachedeck::sandbox::tls::CLUSTER_FRONT_HOST;
    use cachedeck::valkey::connect::{Auth, ConnectOptions, Connector};
    assert!(paperwurks.tls && paperwurks.cluster_mode);
    let config = paperwurks
        .endpoints
        .configuration
        .clone()
        .expect("configuration endpoint");
    assert_eq!(paperwurks.endpoint.as_ref(), Some(&config));
    assert!(
        config.tls && config.host == CLUSTER_FRONT_HOST,
        "{config:?}"
    );
    let fronts: Vec<Endpoint> = paperwurks.nodes().map(|n| n.endpoint()).collect();
    assert_eq!(fronts.len(), 6);
    assert!(
        fronts.iter().all(|e| e.tls && e.host == CLUSTER_FRONT_HOST),
        "{fronts:?}"
    );
    let token = secret(sandbox, "/paperwurks/dev/redis/auth-token");
    assert_eq!(
        secret(sandbox, "/paperwurks/dev/redis/url"),
        format!("rediss://:{token}@{CLUSTER_FRONT_HOST}:{}/0", config.port)
    );
    let ca = paperwurks.credentials.ca_file.clone().expect("ca_file");
    let connector = Connector::new(
        Auth::new(None, Some(secrecy::SecretString::from(token))),
        true,
        Some(&ca),
        ConnectOptions {
            connect_timeout: Duration::from_secs(3),
            command_timeout: Duration::from_secs(3),
        },
    )
    .expect("connector");
    let mut conn = connector
        .connect(&config)
        .await
        .expect("TLS to the configuration endpoint");
    let slots: Vec<(u16, u16, String, u16)> = conn
        .query::<Vec<redis::Value>>(redis::cmd("CLUSTER").arg("SLOTS"))
        .await
        .expect("CLUSTER SLOTS")
        .into_iter()
        .map(|range| {
            let redis::Value::Array(f) = range else {
                panic!("CLUSTER SLOTS entry {range:?}")
            };
            let int = |v: &redis::Value| match v {
                redis::Value::Int(i) => *i as u16,
                other => panic!("{other:?}"),
            };
            let redis::Value::Array(primary) = &f[2] else {
                panic!("{f:?}")
            };
            let host = match &primary[0] {
                redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                other => panic!("{other:?}"),
            };
            (int(&f[0]), int(&f[1]), host, int(&primary[1]))
        })
        .collect();
    assert_eq!(slots.len(), 3, "{slots:?}");
    for (_, _, host, port) in &slots {
        assert_eq!(host, CLUSTER_FRONT_HOST);
        assert!(fronts.iter().any(|e| e.port == *port), "{port} is no node");
    }
    // A key of a slot the configuration endpoint's node does not own: MOVED to a TLS front.
    let (start, end, _, owner) = slots
        .iter()
        .find(|(_, _, _, p)| *p != config.port)
        .cloned()
        .expect("another shard");
    let key = (0..10_000)
        .map(|i| format!("tls-moved-{i}"))
        .find(|k| (start..=end).contains(&cachedeck::valkey::slot::key_slot(k)))
        .expect("a key of that shard");
    let moved = conn
        .query::<redis::Value>(redis::cmd("SET").arg(&key).arg("1"))
        .await
        .expect_err("MOVED")
        .to_string();
    assert!(
        moved.contains(&format!("{CLUSTER_FRONT_HOST}:{owner}")),
        "the redirect names the TLS front: {moved}"
    );
    let mut there = connector
        .connect(&Endpoint::new(CLUSTER_FRONT_HOST, owner, true))
        .await
        .expect("TLS to the MOVED target");
    let () = there
        .query(redis::cmd("SET").arg(&key).arg("1").arg("PX").arg(60_000))
        .await
        .expect("SET where MOVED pointed");
}

fn roles(cache: &Cache) -> Vec<Vec<NodeRole>> {
    cache
        .shards
        .iter()
        .map(|s| s.nodes.iter().map(|n| n.role).collect())
        .collect()
}

fn secret(sandbox: &Sandbox, name: &str) -> String {
    sandbox
        .params()
        .get(name)
        .expect("read parameter")
        .unwrap_or_else(|| panic!("parameter {name} missing"))
        .value
        .expose()
        .to_string()
}

/// A client connection through a TLS endpoint, trusting only the sandbox CA.
async fn tls_connection(
    ca: &Path,
    port: u16,
    user: Option<&str>,
    password: &str,
) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut settings = RedisConnectionInfo::default().set_password(password);
    if let Some(user) = user {
        settings = settings.set_username(user);
    }
    let info = format!("rediss://127.0.0.1:{port}/")
        .into_connection_info()?
        .set_redis_settings(settings);
    let client = redis::Client::build_with_tls(
        info,
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(std::fs::read(ca).expect("read CA")),
        },
    )?;
    client.get_multiplexed_async_connection().await
}

async fn plain_connection(port: u16, password: Option<&str>) -> redis::aio::MultiplexedConnection {
    let mut settings = RedisConnectionInfo::default();
    if let Some(p) = password {
        settings = settings.set_password(p);
    }
    let info = format!("redis://127.0.0.1:{port}/")
        .into_connection_info()
        .expect("info")
        .set_redis_settings(settings);
    redis::Client::open(info)
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to node")
}

/// The port of the server behind a connection (INFO server's tcp_port).
async fn served_by(conn: &mut redis::aio::MultiplexedConnection) -> u16 {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(conn)
        .await
        .expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix("tcp_port:"))
        .and_then(|p| p.trim().parse().ok())
        .expect("tcp_port in INFO")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_builds_the_seed_estates_and_down_leaves_nothing() {
    let sandbox = Sandbox::up(3000);
    assert!(
        sandbox.stdout.contains("sandbox up: 15 processes"),
        "{}",
        sandbox.stdout
    );
    let state = sandbox.state();
    // Every replica online and caught up when `up` returns.
    let left = cachedeck::sandbox::steady::unsteady(&state, &sandbox.params()).await;
    assert!(left.is_empty(), "not steady right after up: {left:?}");

    let dev = sandbox
        .plane("sandbox-dev")
        .discover()
        .await
        .expect("discover dev");
    let mut kinds: Vec<(String, CacheKind, bool)> = dev
        .caches
        .iter()
        .map(|c| (c.name.clone(), c.kind, c.cluster_mode))
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            ("orders".into(), CacheKind::ReplicationGroup, false),
            ("paperwurks".into(), CacheKind::ReplicationGroup, true),
            ("storefront".into(), CacheKind::Serverless, false),
            ("valkey-ecs".into(), CacheKind::EcsService, false),
        ]
    );
    let orders = find(&dev.caches, "orders");
    use NodeRole::{Primary, Replica};
    assert_eq!(roles(orders), vec![vec![Primary, Replica, Replica]]);
    assert!(orders.tls && orders.automatic_failover);
    assert!(orders.endpoints.primary.is_some() && orders.endpoints.reader.is_some());
    let paperwurks = find(&dev.caches, "paperwurks");
    // Cluster mode: DescribeReplicationGroups names no roles, and neither does the sandbox;
    // they are learned from the nodes.
    assert_eq!(roles(paperwurks), vec![vec![NodeRole::Unknown; 2]; 3]);
    assert!(
        paperwurks
            .nodes()
            .all(|n| n.role_source == RoleSource::not_reported()),
        "{:?}",
        paperwurks.shards
    );
    assert_eq!(paperwurks.shape(), "3×1");
    assert_eq!(paperwurks.status, "available");
    let learned = sandbox.with_roles("sandbox-dev", paperwurks.clone()).await;
    assert_eq!(roles(&learned), vec![vec![Primary, Replica]; 3]);
    assert!(learned.nodes().all(|n| n.role_source == RoleSource::Node));
    assert_eq!(paperwurks.shards[2].slots.as_deref(), Some("10922-16383"));
    assert!(find(&dev.caches, "valkey-ecs").ecs.is_some());
    cluster_speaks_tls_through_announced_fronts(&sandbox, paperwurks).await;
    // Every node of every cache answers, on the port the state recorded for that process;
    // a serverless cache names no nodes, as DescribeServerlessCaches: its one "node" is
    // its TLS endpoint.
    let storefront = find(&dev.caches, "storefront");
    assert_eq!(storefront.shards.len(), 1);
    assert_eq!(storefront.shards[0].id, "serverless");
    let ep = storefront.endpoint.as_ref().expect("endpoint");
    let only = &storefront.shards[0].nodes[..];
    assert_eq!(only.len(), 1);
    assert_eq!(
        (only[0].id.as_str(), only[0].port, only[0].tls),
        ("storefront", ep.port, true)
    );
    for cache in dev.caches.iter().filter(|c| c.name != "storefront") {
        for node in cache.nodes() {
            assert_eq!(node.health, NodeHealth::Up, "{} {}", cache.name, node.id);
            let recorded = state
                .nodes()
                .find(|(c, n)| c.env == "sandbox-dev" && c.name == cache.name && n.id == node.id)
                .map(|(_, n)| n.port);
            assert_eq!(recorded, Some(node.port));
        }
    }
    let prod = sandbox
        .plane("sandbox-prod")
        .discover()
        .await
        .expect("discover prod");
    assert_eq!(
        roles(find(&prod.caches, "orders")),
        vec![vec![Primary, Replica]]
    );
    assert_eq!(find(&prod.caches, "storefront").kind, CacheKind::Serverless);

    // The same estate through the binary: the sandbox's environments are implied.
    let listed = sandbox
        .cachedeck()
        .args(["caches", "--env", "sandbox-dev", "--output", "json"])
        .output()
        .expect("caches");
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("caches json");
    let mut names: Vec<&str> = listed["caches"]
        .as_array()
        .expect("caches array")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    names.sort();
    assert_eq!(names, ["orders", "paperwurks", "storefront", "valkey-ecs"]);

    // Idempotent up.
    let again = sandbox
        .cachedeck()
        .args(["sandbox", "up"])
        .output()
        .expect("up again");
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("already up"));

    // Status: every process, all up.
    let status = sandbox
        .cachedeck()
        .args(["sandbox", "status", "--output", "json"])
        .output()
        .expect("status");
    assert!(status.status.success());
    let rows: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status json");
    let rows = rows.as_array().expect("array");
    assert_eq!(rows.len(), 15);
    assert!(rows.iter().all(|r| r["alive"] == true), "{rows:?}");

    // Serverless: endpoint published in the parameter store, RBAC user only, TLS.
    let storefront = find(&dev.caches, "storefront");
    let endpoint = storefront.endpoint.clone().expect("endpoint");
    assert_eq!(
        secret(&sandbox, "/storefront-dev/redis/endpoint"),
        endpoint.host
    );
    assert_eq!(
        secret(&sandbox, "/storefront-dev/redis/port"),
        endpoint.port.to_string()
    );
    let password = secret(&sandbox, "/storefront-dev/redis/password");
    let mut conn = tls_connection(
        &state.ca_file,
        endpoint.port,
        Some("storefront-app"),
        &password,
    )
    .await
    .expect("connect to storefront as the app user");
    let keys: i64 = redis::cmd("DBSIZE")
        .query_async(&mut conn)
        .await
        .expect("DBSIZE");
    assert!(keys > 100, "storefront has {keys} keys");
    // The local process behind the endpoint (the sandbox's own knowledge, not AWS's).
    let node_port = state
        .cache("sandbox-dev", "storefront")
        .expect("storefront state")
        .shards[0]
        .nodes[0]
        .port;
    let mut anonymous = plain_connection(node_port, None).await;
    let refused: redis::RedisResult<String> =
        redis::cmd("GET").arg("x").query_async(&mut anonymous).await;
    assert!(refused.is_err(), "default user must be off");

    // Seeded Sidekiq keys on the orders primary.
    let token = secret(&sandbox, "/orders/dev/redis/auth-token");
    let mut primary = plain_connection(
        orders.shards[0].primary().expect("primary").port,
        Some(&token),
    )
    .await;
    let exists: i64 = redis::cmd("EXISTS")
        .arg("queue:default")
        .arg("stat:failed:2026-11-23")
        .arg("schedule")
        .query_async(&mut primary)
        .await
        .expect("EXISTS");
    assert_eq!(exists, 3);

    // Parameter store: Overwrite=false is exclusive; files are 0600; secrets stay wrapped.
    let plane = sandbox.plane("sandbox-dev");
    let lock = || PutParameter {
        name: "/cachedeck/locks/orders".into(),
        kind: ParameterType::String,
        value: ParameterValue::Plain("operator-a".into()),
        overwrite: false,
        description: None,
    };
    assert_eq!(plane.put_parameter(lock()).await.expect("first put"), 1);
    assert!(matches!(
        plane.put_parameter(lock()).await,
        Err(ControlPlaneError::AlreadyExists { .. })
    ));
    use std::os::unix::fs::PermissionsExt;
    for name in ["/cachedeck/locks/orders", "/paperwurks/dev/redis/url"] {
        let path = sandbox.params().path_of(name).expect("path");
        let mode = std::fs::metadata(&path)
            .expect("param file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }
    let url = plane
        .get_parameter("/paperwurks/dev/redis/url")
        .await
        .expect("get url")
        .expect("url exists");
    assert_eq!(url.kind, ParameterType::SecureString);
    assert!(!format!("{url:?}").contains(url.value.expose()));
    plane
        .delete_parameter("/cachedeck/locks/orders")
        .await
        .expect("delete");
    assert!(matches!(
        plane.delete_parameter("/cachedeck/locks/orders").await,
        Err(ControlPlaneError::NotFound { .. })
    ));
    let by_path = plane
        .get_parameters_by_path("/storefront-dev")
        .await
        .expect("by path");
    assert_eq!(by_path.len(), 3);

    // Down: no process and no port left, state gone.
    let pids: Vec<i32> = state
        .nodes()
        .map(|(_, n)| n.pid)
        .chain(state.daemon.iter().map(|d| d.pid))
        .collect();
    let ports: Vec<u16> = state
        .nodes()
        .map(|(_, n)| n.port)
        .chain(state.proxies.iter().map(|p| p.port))
        .collect();
    let out = sandbox.down();
    assert!(out.contains("sandbox down"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(5);
    // The daemon leaves on its own after its state disappears; give it its poll interval.
    while pids.iter().any(|&p| pid_alive(p)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for pid in pids {
        assert!(!pid_alive(pid), "pid {pid} still alive after down");
    }
    for port in ports {
        assert!(port_free(port), "port {port} still taken after down");
    }
    assert!(!sandbox.dir().join("state.json").exists());
    assert!(cachedeck::sandbox::environments_in(&sandbox.dir()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_shows_down_and_the_rest_stays_up() {
    let sandbox = Sandbox::up(500);
    let state = sandbox.state();
    let (_, victim) = state
        .nodes()
        .find(|(c, n)| c.env == "sandbox-dev" && c.name == "orders" && n.id == "orders-003")
        .expect("orders-003");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim.pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill replica");
    let deadline = Instant::now() + Duration::from_secs(5);
    while pid_alive(victim.pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dev = sandbox
        .plane("sandbox-dev")
        .discover()
        .await
        .expect("discovery still works");
    // Discovery says what AWS would: the node is being replaced, its health is not the
    // control plane's to tell (the watch service finds it down), the group is available.
    for cache in &dev.caches {
        for node in cache.nodes() {
            if node.id == "orders-003" && cache.name == "orders" {
                assert_eq!(node.status, "rebooting cache cluster nodes", "{node:?}");
                assert_eq!(node.health, NodeHealth::Unknown, "{node:?}");
            } else {
                assert_eq!(node.health, NodeHealth::Up, "{} {}", cache.name, node.id);
            }
        }
    }
    let orders = find(&dev.caches, "orders");
    assert_eq!(orders.status, "available");
    assert_eq!(orders.nodes_down(), 0);
    assert_eq!(
        orders.shards[0].primary().map(|n| n.id.as_str()),
        Some("orders-001")
    );
    let status = sandbox
        .cachedeck()
        .args(["sandbox", "status"])
        .output()
        .expect("status");
    assert_eq!(
        status.status.code(),
        Some(1),
        "a dead process makes status exit 1"
    );
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.lines()
            .any(|l| l.contains("orders-003") && l.ends_with("down")),
        "{text}"
    );

    // `up` again starts the dead replica on its port, as a replica of the primary.
    let out = sandbox
        .cachedeck()
        .args(["sandbox", "up"])
        .output()
        .expect("up");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("started again sandbox-dev/orders orders-003"),
        "{text}"
    );
    // `up` returned only once the restarted replica had resynced and caught up.
    let left = cachedeck::sandbox::steady::unsteady(&sandbox.state(), &sandbox.params()).await;
    assert!(left.is_empty(), "not steady right after up: {left:?}");
    let dev = sandbox
        .plane("sandbox-dev")
        .discover()
        .await
        .expect("discover");
    let orders = find(&dev.caches, "orders");
    assert_eq!(orders.nodes_down(), 0);
    let back = orders
        .nodes()
        .find(|n| n.id == "orders-003")
        .expect("orders-003");
    assert_eq!((back.role, back.port), (NodeRole::Replica, victim.port));

    // A restarted ECS task keeps its data through its RDB file.
    let ecs = find(&dev.caches, "valkey-ecs");
    let node = &ecs.shards[0].nodes[0];
    let mut conn = plain_connection(node.port, None).await;
    let _: () = redis::cmd("SET")
        .arg("survives-restart")
        .arg("yes")
        .query_async(&mut conn)
        .await
        .expect("SET");
    let keys_before: i64 = redis::cmd("DBSIZE")
        .query_async(&mut conn)
        .await
        .expect("DBSIZE");
    let old_pid = sandbox
        .state()
        .nodes()
        .find(|(c, _)| c.name == "valkey-ecs")
        .map(|(_, n)| n.pid);
    let new_pid = cachedeck::sandbox::repair::restart_node(
        &sandbox.dir(),
        "sandbox-dev",
        "valkey-ecs",
        &node.id,
    )
    .await
    .expect("restart the ECS task");
    assert_ne!(Some(new_pid), old_pid);
    let mut conn = plain_connection(node.port, None).await;
    let marker: String = redis::cmd("GET")
        .arg("survives-restart")
        .query_async(&mut conn)
        .await
        .expect("GET");
    assert_eq!(marker, "yes");
    let keys_after: i64 = redis::cmd("DBSIZE")
        .query_async(&mut conn)
        .await
        .expect("DBSIZE");
    assert_eq!(keys_after, keys_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_failover_promotes_a_replica_and_the_endpoint_follows() {
    let sandbox = Sandbox::up(1000);
    let state = sandbox.state();
    let plane = sandbox.plane("sandbox-dev");
    let before = plane.discover().await.expect("discover");
    let orders = find(&before.caches, "orders");
    let old_primary = orders.shards[0].primary().expect("primary").clone();
    let endpoint = orders.endpoints.primary.clone().expect("primary endpoint");
    let token = secret(&sandbox, "/orders/dev/redis/auth-token");

    let mut old_conn = tls_connection(&state.ca_file, endpoint.port, None, &token)
        .await
        .expect("connect through the primary endpoint");
    assert_eq!(served_by(&mut old_conn).await, old_primary.port);
    let _: () = redis::cmd("SET")
        .arg("marker")
        .arg("before")
        .query_async(&mut old_conn)
        .await
        .expect("SET");

    let since = time::OffsetDateTime::now_utc() - time::Duration::minutes(1);
    let started = Instant::now();
    plane
        .test_failover("orders", "0001")
        .await
        .expect("test failover");
    // As ElastiCache, the call returns once accepted; the failover finishes on its own.
    sandbox
        .wait_for_event(
            "sandbox-dev",
            &format!("Finished recovery for cache nodes {}", old_primary.id),
            Duration::from_secs(30),
        )
        .await;
    let took = started.elapsed();
    eprintln!("test failover of orders/0001 took {took:?}");
    assert!(took < Duration::from_secs(15), "failover took {took:?}");

    let after = plane.discover().await.expect("discover after");
    let orders_after = find(&after.caches, "orders");
    let new_primary = orders_after.shards[0]
        .primary()
        .expect("a primary after failover")
        .clone();
    assert_ne!(new_primary.id, old_primary.id);
    let old_now = orders_after
        .nodes()
        .find(|n| n.id == old_primary.id)
        .expect("old node");
    assert_eq!(old_now.role, NodeRole::Replica);
    assert_eq!(orders_after.shards[0].replicas().count(), 2);

    let messages: Vec<String> = cachedeck::controlplane::events::for_cache(&plane, orders, since)
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.message)
        .collect();
    // As DescribeEvents: the group's own events name the group; its nodes' recovery
    // events are cache-cluster events of the member clusters.
    let group_only = plane
        .describe_events(EventQuery::of(
            "orders",
            EventSourceType::ReplicationGroup,
            since,
        ))
        .await
        .expect("events");
    assert_eq!(group_only.len(), 2, "{group_only:?}");
    assert_eq!(
        messages,
        vec![
            "Test Failover API called for node group 0001".to_string(),
            format!(
                "Failover from primary node {} to replica node {} completed",
                old_primary.id, new_primary.id
            ),
            format!("Recovering cache nodes {}", old_primary.id),
            format!("Finished recovery for cache nodes {}", old_primary.id),
        ]
    );

    // The connection to the demoted primary is closed by the endpoint.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let r: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut old_conn).await;
        if r.is_err() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "connection to the demoted primary stayed open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A new connection through the same endpoint writes to the new primary.
    let mut conn = tls_connection(&state.ca_file, endpoint.port, None, &token)
        .await
        .expect("reconnect through the primary endpoint");
    assert_eq!(served_by(&mut conn).await, new_primary.port);
    let _: () = redis::cmd("SET")
        .arg("marker2")
        .arg("after")
        .query_async(&mut conn)
        .await
        .expect("SET on new primary");
    let kept: String = redis::cmd("GET")
        .arg("marker")
        .query_async(&mut conn)
        .await
        .expect("GET");
    assert_eq!(kept, "before");
    // The reader endpoint lands on a replica.
    let reader = orders_after.endpoints.reader.clone().expect("reader");
    let mut rconn = tls_connection(&state.ca_file, reader.port, None, &token)
        .await
        .expect("reader");
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query_async(&mut rconn)
        .await
        .expect("INFO");
    assert!(info.contains("role:slave"), "{info}");

    // Cluster mode: one shard fails over, the others keep their primaries.
    let paperwurks = &sandbox
        .with_roles("sandbox-dev", find(&before.caches, "paperwurks").clone())
        .await;
    let shard2_replica = paperwurks.shards[1]
        .replicas()
        .next()
        .expect("replica")
        .id
        .clone();
    plane
        .test_failover("paperwurks", "0002")
        .await
        .expect("cluster failover");
    let shard2_primary = paperwurks.shards[1]
        .primary()
        .expect("shard 2 primary")
        .id
        .clone();
    sandbox
        .wait_for_event(
            "sandbox-dev",
            &format!("Finished recovery for cache nodes {shard2_primary}"),
            Duration::from_secs(30),
        )
        .await;
    let after = plane.discover().await.expect("discover");
    let paperwurks_after = &sandbox
        .with_roles("sandbox-dev", find(&after.caches, "paperwurks").clone())
        .await;
    assert_eq!(
        paperwurks_after.shards[1].primary().map(|n| n.id.clone()),
        Some(shard2_replica)
    );
    assert_eq!(
        paperwurks_after.shards[0].primary().map(|n| &n.id),
        paperwurks.shards[0].primary().map(|n| &n.id)
    );

    // No TestFailover for serverless, and why.
    match plane.test_failover("storefront", "0001").await {
        Err(ControlPlaneError::Unsupported { why, .. }) => {
            assert!(
                why.contains("serverless caches have no nodes to fail over"),
                "{why}"
            )
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }

    // Quota: 15 node groups per rolling 24 h, counted from the events (2 used above).
    for _ in 0..13 {
        events::append(
            &sandbox.dir(),
            "sandbox-dev",
            "orders",
            "replication-group",
            &events::test_failover_called("0001"),
        )
        .expect("append");
    }
    match plane.test_failover("orders", "0001").await {
        Err(ControlPlaneError::QuotaExceeded { detail, .. }) => {
            assert!(detail.contains("15"), "{detail}")
        }
        other => panic!("expected QuotaExceeded on the 16th, got {other:?}"),
    }
}
