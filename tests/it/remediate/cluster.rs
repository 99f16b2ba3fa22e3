//! `ttl-remediate` on more than one node: the sandbox's cluster-mode cache through the binary
//! (every shard's primary remediated), a cluster failover mid-apply (that shard restarts on
//! its new primary), and a failover behind the sandbox's primary endpoint mid-apply.

use super::{client, outputs};
use crate::harness::sandbox::Sandbox;
use crate::runbook::estate::{json_out, stderr};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The primaries' ports of a sandbox cache and its AUTH token.
pub(crate) fn primaries(sandbox: &Sandbox, cache: &str) -> (Vec<u16>, Option<String>) {
    let state = sandbox.state();
    let c = state
        .caches
        .iter()
        .find(|c| c.env == "sandbox-dev" && c.name == cache)
        .expect("cache in the sandbox state");
    let password = c.password_parameter.as_ref().map(|name| {
        sandbox
            .params()
            .get(name)
            .expect("read parameter")
            .expect("token parameter")
            .value
            .expose()
            .to_string()
    });
    let ports = c
        .shards
        .iter()
        .flat_map(|s| &s.nodes)
        .filter(|n| n.initial_role == cachedeck::domain::NodeRole::Primary)
        .map(|n| n.port)
        .collect();
    (ports, password)
}

/// (keys matching `glob`, of those without TTL) on one node.
fn count_on(port: u16, password: Option<&str>, glob: &str) -> (u64, u64) {
    let mut c = client(port);
    if let Some(p) = password {
        redis::cmd("AUTH").arg(p).query::<()>(&mut c).expect("auth");
    }
    let mut cursor = 0u64;
    let (mut all, mut bare) = (0, 0);
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(glob)
            .arg("COUNT")
            .arg(1000)
            .query(&mut c)
            .expect("scan");
        for k in keys {
            all += 1;
            let t: i64 = redis::cmd("PTTL").arg(&k).query(&mut c).expect("pttl");
            bare += u64::from(t == -1);
        }
        if next == 0 {
            return (all, bare);
        }
        cursor = next;
    }
}

#[test]
fn cluster_mode_sandbox_cache_every_shard_remediated() {
    let sandbox = Sandbox::up(3000);
    let (ports, password) = primaries(&sandbox, "paperwurks");
    let password = password.as_deref();
    assert_eq!(ports.len(), 3, "three shards");
    let before: Vec<(u64, u64)> = ports
        .iter()
        .map(|p| count_on(*p, password, "tmp:export:*"))
        .collect();
    let bare: u64 = before.iter().map(|b| b.1).sum();
    assert!(
        bare > 0,
        "the sandbox seeds forgotten tmp:export keys: {before:?}"
    );

    let out = sandbox
        .cachedeck()
        .args([
            "run",
            "ttl-remediate",
            "--env",
            "sandbox-dev",
            "--cache",
            "paperwurks",
        ])
        .args([
            "--yes",
            "--output",
            "json",
            "--param",
            "pattern=tmp:export:*",
        ])
        .args(["--param", "ttl=1d", "--param", "dry_run=false"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let report = json_out(&out);
    assert_eq!(outputs(&report, "survey")["no_ttl"], bare);
    assert_eq!(
        outputs(&report, "survey")["matched"],
        before.iter().map(|b| b.0).sum::<u64>()
    );
    let apply = outputs(&report, "apply");
    assert_eq!(apply["updated"], bare, "{apply}");
    let shards = apply["shards"].as_array().expect("shards");
    assert_eq!(shards.len(), 3);
    assert!(
        shards
            .iter()
            .all(|s| s["complete"] == true && s["updated"].as_u64() > Some(0))
    );
    for p in &ports {
        let (all, left) = count_on(*p, password, "tmp:export:*");
        assert!(all > 0);
        assert_eq!(left, 0, "node {p} still has tmp:export keys without TTL");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_mid_apply_restarts_that_shard_and_every_key_gets_its_ttl() {
    use crate::audit::{cluster, cluster_keys, conn, connector, load_cluster, local};
    use cachedeck::audit::gentle::LatencyGuard;
    use cachedeck::audit::matcher::KeyMatcher;
    use cachedeck::audit::remediate::{self, RemediateOptions};
    use tokio_util::sync::CancellationToken;

    let cl = cluster().await;
    // 10,000 `cache:item:{n}` keys, a quarter of them with a TTL already.
    load_cluster(&cl, &cluster_keys(30_000)).await;
    let opts = RemediateOptions {
        matcher: KeyMatcher::parse("cache:item:*").expect("glob"),
        ttl: Duration::from_secs(3600),
        jitter_pct: 0,
        rate: 4000,
        scan_rate: 0,
        count: 100,
        apply: true,
        max_keys: 1_000_000,
        examples: 3,
        guard: LatencyGuard::default(),
        batch_timeout: Duration::from_secs(5),
        shard_retries: 6,
        db: None,
    };
    let seed = local(cl.primaries[0].port());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        remediate::run(
            &connector(),
            &seed,
            false,
            &opts,
            None,
            tx,
            CancellationToken::new(),
        )
        .await
    });
    // Fail shard 1 over once its scan is under way.
    while let Some((_, p)) = rx.recv().await {
        if p.node == local(cl.primaries[1].port()).address() && p.updated > 200 {
            break;
        }
    }
    let _: String = conn(cl.replicas[1].port())
        .await
        .query(redis::cmd("CLUSTER").arg("FAILOVER"))
        .await
        .expect("CLUSTER FAILOVER");
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let done = task.await.expect("task").expect("remediation runs");
    let t = done.totals();
    assert!(t.complete, "{done:#?}");
    assert_eq!(t.matched, 10_000, "{done:#?}");
    assert_eq!(t.updated + t.with_ttl, 10_000, "{t:?}");
    assert!((7_400..=7_500).contains(&t.updated), "{t:?}");
    let moved = done
        .shards
        .values()
        .find(|s| s.restarts > 0)
        .unwrap_or_else(|| panic!("a shard restarted: {done:#?}"));
    assert_eq!(
        moved.node,
        local(cl.replicas[1].port()).address(),
        "now on the new primary"
    );

    // Every `cache:item` key now has a TTL, on whichever node is primary.
    let mut checked = 0;
    for s in cl.primaries.iter().chain(&cl.replicas) {
        let mut c = conn(s.port()).await;
        let info: String = c
            .query(redis::cmd("INFO").arg("replication"))
            .await
            .expect("info");
        if !info.contains("role:master") {
            continue;
        }
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = c
                .query(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg("cache:item:*")
                        .arg("COUNT")
                        .arg(1000),
                )
                .await
                .expect("scan");
            for k in keys {
                let ttl: i64 = c.query(redis::cmd("PTTL").arg(&k)).await.expect("pttl");
                assert!(ttl > 0, "{k} has no TTL");
                checked += 1;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    assert_eq!(checked, 10_000);
}

/// Polls the sandbox's journals until a record matches.
fn wait_journal(home: &std::path::Path, pred: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let dir = home.join("state").join("runs");
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            if text
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .any(|v| pred(&v))
            {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("no matching journal record within 60s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_of_the_primary_endpoint_mid_apply_restarts_from_the_new_primary() {
    use cachedeck::controlplane::ControlPlane;
    let sandbox = Sandbox::up(20_000);
    let plane = sandbox.plane("sandbox-dev");
    let (_, token) = primaries(&sandbox, "orders");
    let home = sandbox.home().to_path_buf();
    let runner = std::process::Command::new(assert_cmd::cargo::cargo_bin("cachedeck"))
        .env("CACHEDECK_SANDBOX_DIR", home.join("sandbox"))
        .env("CACHEDECK_STATE_DIR", home.join("state"))
        .env("CACHEDECK_CONFIG_DIR", home.join("config"))
        .env("AWS_CONFIG_FILE", home.join("aws-config"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .args([
            "run",
            "ttl-remediate",
            "--env",
            "sandbox-dev",
            "--cache",
            "orders",
        ])
        .args(["--yes", "--output", "json", "--param", "pattern=user:{n}"])
        .args([
            "--param", "ttl=30d", "--param", "rate=300", "--param", "count=50",
        ])
        .args(["--param", "dry_run=false"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runner");
    let waiter = home.clone();
    tokio::task::spawn_blocking(move || {
        wait_journal(&waiter, |r| {
            r["record"] == "progress"
                && r["facts"]["shards"]["standalone"]["updated"]
                    .as_u64()
                    .is_some_and(|u| u >= 100)
        })
    })
    .await
    .expect("journal watch");
    plane
        .test_failover("orders", "0001")
        .await
        .expect("test failover");
    let out = tokio::task::spawn_blocking(move || runner.wait_with_output())
        .await
        .expect("join")
        .expect("runner ends");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let report = json_out(&out);
    let apply = outputs(&report, "apply");
    assert_eq!(apply["complete"], true, "{apply}");
    let shard = &apply["shards"][0];
    assert!(shard["restarts"].as_u64() >= Some(1), "{apply}");
    let survey = outputs(&report, "survey");
    assert_eq!(
        apply["updated"].as_u64().expect("updated")
            + apply["skipped_with_ttl"].as_u64().expect("skipped"),
        survey["matched"].as_u64().expect("matched"),
        "{apply}"
    );

    // On the new primary, every `user:{n}` hash has its TTL.
    let after = plane.discover().await.expect("discover");
    let orders = after
        .caches
        .iter()
        .find(|c| c.name == "orders")
        .expect("orders");
    let primary = orders.shards[0].primary().expect("a primary").clone();
    assert_eq!(
        shard["node"].as_str(),
        orders.endpoint.as_ref().map(|e| e.address()).as_deref()
    );
    let (all, left) = count_on(primary.port, token.as_deref(), "user:*");
    assert!(all > 100, "{all} user keys");
    assert_eq!(left, 0, "user keys without TTL remain on {}", primary.port);
}
