//! The `ttl-remediate` runbook through the binary against a real valkey-server (and the
//! sandbox's real cluster): the dry run counts exactly and writes nothing; applying gives
//! exactly the matching keys without TTL a TTL in range, once; the rate holds; read-only
//! refuses; SIGKILL mid-apply then `runs resume` finishes with every key changed once.

use crate::harness::sandbox::Sandbox;
use crate::runbook::estate::{RunbookEstate, json_out, stderr};
use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn client(port: u16) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .expect("client")
        .get_connection()
        .expect("connect to the test server")
}

/// Seeds: `cache:product:<n>` without TTL (`bare`) and with a 100000 s TTL (`ttl`),
/// `cache:product:<n>:meta` without TTL (matches the glob, not `{n}`) and `session:<hex>`
/// without TTL (matches neither).
fn seed(port: u16, bare: u64, ttl: u64) {
    let mut c = client(port);
    let mut p = redis::pipe();
    for i in 0..bare {
        p.cmd("SET")
            .arg(format!("cache:product:{i}"))
            .arg("{}")
            .ignore();
    }
    for i in bare..bare + ttl {
        p.cmd("SET")
            .arg(format!("cache:product:{i}"))
            .arg("{}")
            .arg("EX")
            .arg(100_000)
            .ignore();
    }
    for i in 0..50 {
        p.cmd("SET")
            .arg(format!("cache:product:{i}:meta"))
            .arg("m")
            .ignore();
        p.cmd("SET")
            .arg(format!("session:{i:032x}"))
            .arg("s")
            .ignore();
    }
    p.query::<()>(&mut c).expect("seed");
}

/// PTTL of every key, by name.
fn pttls(port: u16) -> BTreeMap<String, i64> {
    let mut c = client(port);
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).expect("keys");
    let mut p = redis::pipe();
    for k in &keys {
        p.cmd("PTTL").arg(k);
    }
    let ttls: Vec<i64> = p.query(&mut c).expect("pttl");
    keys.into_iter().zip(ttls).collect()
}

fn run(estate: &RunbookEstate, env: &str, params: &[&str]) -> std::process::Output {
    let mut cmd = estate.cmd();
    cmd.args(["run", "ttl-remediate", "--env", env, "--cache", "orders"])
        .args(["--yes", "--output", "json"]);
    for p in params {
        cmd.args(["--param", p]);
    }
    cmd.output().expect("run ttl-remediate")
}

fn outputs<'a>(report: &'a serde_json::Value, step: &str) -> &'a serde_json::Value {
    &report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["id"] == step)
        .unwrap_or_else(|| panic!("no step {step} in {report}"))["outputs"]
}

#[test]
fn dry_run_counts_exactly_and_writes_nothing() {
    let Some(estate) = RunbookEstate::start() else {
        return;
    };
    let port = estate.server.port();
    seed(port, 300, 100);
    let before = pttls(port);

    let out = run(&estate, "dev", &["pattern=cache:product:{n}", "ttl=1h"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let report = json_out(&out);
    let survey = outputs(&report, "survey");
    assert_eq!(survey["pattern_kind"], "audit-pattern");
    assert_eq!(survey["matched"], 400, "{survey}");
    assert_eq!(survey["no_ttl"], 300);
    assert_eq!(survey["with_ttl"], 100);
    assert_eq!(survey["complete"], true);
    assert!(
        survey["examples"][0]
            .as_str()
            .expect("example")
            .starts_with("cache:product:")
    );
    let apply = outputs(&report, "apply");
    assert_eq!(apply["dry_run"], true);
    assert_eq!(apply["updated"], 0);

    // A glob takes the `:meta` keys too.
    let out = run(&estate, "dev", &["pattern=cache:product:*", "ttl=1h"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let survey = outputs(&json_out(&out), "survey").clone();
    assert_eq!(survey["pattern_kind"], "glob");
    assert_eq!(
        (survey["matched"].clone(), survey["no_ttl"].clone()),
        (450.into(), 350.into())
    );

    let after = pttls(port);
    assert_eq!(before.len(), after.len());
    for (k, b) in &before {
        let a = after[k];
        if *b == -1 {
            assert_eq!(a, -1, "{k} got a TTL in a dry run");
        } else {
            assert!(a <= *b && a > b - 60_000, "{k}: {b} → {a}");
        }
    }
    assert_eq!(estate.calls("expire"), 0);
}

#[test]
fn apply_sets_a_ttl_in_range_on_exactly_the_matching_keys_without_one() {
    let Some(estate) = RunbookEstate::start() else {
        return;
    };
    let port = estate.server.port();
    seed(port, 300, 100);
    let out = run(
        &estate,
        "dev",
        &[
            "pattern=cache:product:{id}",
            "ttl=1h",
            "jitter=10",
            "dry_run=false",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let report = json_out(&out);
    let apply = outputs(&report, "apply");
    assert_eq!(apply["updated"], 300, "{apply}");
    assert_eq!(apply["skipped_with_ttl"], 100);
    assert_eq!(apply["complete"], true);
    assert_eq!(apply["shards"].as_array().expect("shards").len(), 1);

    let (lo, hi) = (3600 * 900, 3600 * 1100); // ms, ±10 %
    let mut spread = std::collections::BTreeSet::new();
    for (k, ttl) in pttls(port) {
        let n = k
            .strip_prefix("cache:product:")
            .and_then(|r| r.parse::<u64>().ok());
        match n {
            Some(n) if n < 300 => {
                assert!((lo - 5_000..=hi).contains(&ttl), "{k}: {ttl} ms");
                spread.insert(ttl / 1000);
            }
            // Their own TTL, not overwritten.
            Some(_) => assert!(ttl > 99_000_000, "{k}: {ttl} ms"),
            None => assert_eq!(ttl, -1, "{k} does not match and got a TTL"),
        }
    }
    assert!(
        spread.len() > 50,
        "jitter spreads TTLs: {} distinct",
        spread.len()
    );
    assert_eq!(
        estate.calls("expire"),
        300,
        "one EXPIRE per key without TTL"
    );
    for banned in ["keys", "flushall", "flushdb", "config", "debug", "del"] {
        // The test itself ran KEYS above, so only count what the runner could have sent.
        if banned != "keys" {
            assert_eq!(estate.calls(banned), 0, "{banned} was sent");
        }
    }
}

#[test]
fn the_rate_limit_holds() {
    let Some(estate) = RunbookEstate::start() else {
        return;
    };
    let port = estate.server.port();
    seed(port, 3000, 0);
    let out = run(
        &estate,
        "dev",
        &[
            "pattern=cache:product:{n}",
            "ttl=1h",
            "rate=1000",
            "survey_rate=1000",
            "dry_run=false",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let report = json_out(&out);
    for step in ["survey", "apply"] {
        let s = report["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .find(|s| s["id"] == step)
            .expect("step");
        let secs = s["elapsed_ms"].as_f64().expect("elapsed") / 1000.0;
        let rate = 3000.0 / secs;
        eprintln!("{step}: 3000 keys in {secs:.3} s = {rate:.0} keys/s (set 1000)");
        assert!((900.0..=1100.0).contains(&rate), "{step}: {rate:.0} keys/s");
    }
    assert_eq!(outputs(&report, "apply")["updated"], 3000);
}

#[test]
fn a_read_only_environment_refuses_and_nothing_changes() {
    let Some(estate) = RunbookEstate::start() else {
        return;
    };
    let port = estate.server.port();
    seed(port, 100, 0);
    let out = run(
        &estate,
        "ro",
        &["pattern=cache:product:*", "ttl=1h", "dry_run=false"],
    );
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr(&out));
    assert!(stderr(&out).contains("read-only"), "{}", stderr(&out));
    assert!(pttls(port).values().all(|t| *t == -1));
    assert_eq!(estate.calls("expire"), 0);
    assert_eq!(estate.calls("scan"), 0, "refused before touching the cache");
}

#[test]
fn sigkill_mid_apply_then_resume_sets_every_ttl_exactly_once() {
    let Some(estate) = RunbookEstate::start() else {
        return;
    };
    let port = estate.server.port();
    let n = 4000;
    seed(port, n, 200);
    let mut runner = estate
        .std_cmd()
        .args([
            "run",
            "ttl-remediate",
            "--env",
            "dev",
            "--cache",
            "orders",
            "--yes",
        ])
        .args(["--param", "pattern=cache:product:{n}", "--param", "ttl=2h"])
        .args([
            "--param",
            "rate=2000",
            "--param",
            "count=100",
            "--param",
            "dry_run=false",
            "--param",
            "survey_rate=20000",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("runner");
    // Kill once the apply step has journaled a checkpoint with some TTLs set.
    let run_id = estate.wait_for_record("an apply checkpoint", |r| {
        r["record"] == "progress"
            && r["step"] == "apply"
            && r["facts"]["shards"]["standalone"]["updated"]
                .as_u64()
                .is_some_and(|u| u >= 500)
    });
    runner.kill().expect("SIGKILL");
    let _ = runner.wait();
    let set_before_resume = pttls(port)
        .iter()
        .filter(|(k, t)| {
            k.starts_with("cache:product:")
                && !k.ends_with(":meta")
                && **t > 0
                && **t < 3 * 3600 * 1000
        })
        .count() as u64;
    assert!(
        set_before_resume > 0 && set_before_resume < n,
        "killed mid-apply: {set_before_resume} of {n} set"
    );

    let started = Instant::now();
    let out = estate
        .cmd()
        .args(["runs", "resume", &run_id, "--yes", "--output", "json"])
        .timeout(Duration::from_secs(120))
        .output()
        .expect("resume");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let report = json_out(&out);
    assert_eq!(report["state"], "succeeded");
    let apply = outputs(&report, "apply");
    assert_eq!(apply["complete"], true);
    // Everything journaled as set plus everything found with a TTL is every matching key.
    let updated = apply["updated"].as_u64().expect("updated");
    let skipped = apply["skipped_with_ttl"].as_u64().expect("skipped");
    assert_eq!(updated + skipped, n + 200, "{apply}");
    assert!(updated <= n && updated >= set_before_resume.saturating_sub(2000));
    eprintln!(
        "resume finished in {:?}: {updated} set (journaled), {skipped} found with a TTL",
        started.elapsed()
    );

    let ttls = pttls(port);
    for i in 0..n {
        let t = ttls[&format!("cache:product:{i}")];
        assert!(
            (2 * 3600 * 900 - 60_000..=2 * 3600 * 1100).contains(&t),
            "key {i}: {t}"
        );
    }
    assert!(
        ttls.iter()
            .filter(|(k, _)| k.starts_with("session:"))
            .all(|(_, t)| *t == -1)
    );
    // Exactly once: one EXPIRE per key, across the killed run and the resume.
    assert_eq!(estate.calls("expire"), n);
    let records = estate.records(&run_id);
    assert!(records.iter().any(|r| r["record"] == "progress"));
    let observed = records
        .iter()
        .find(|r| r["record"] == "observed" && r["step"] == "apply")
        .unwrap_or_else(|| panic!("apply observed on resume: {records:?}"));
    let facts = observed["facts"].as_str().expect("facts");
    assert!(
        facts.contains("took effect in part") && facts.contains("same server, continues at cursor"),
        "{facts}"
    );
}

/// The primaries' ports of a sandbox cache and its AUTH token.
fn primaries(sandbox: &Sandbox, cache: &str) -> (Vec<u16>, Option<String>) {
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
        count: 100,
        apply: true,
        max_keys: 1_000_000,
        examples: 3,
        guard: LatencyGuard::default(),
        batch_timeout: Duration::from_secs(5),
        shard_retries: 6,
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
