//! `failover-test` end to end through the binary against an isolated sandbox: a real
//! promotion measured by the probes, and SIGKILL of the runner at each step boundary
//! followed by `runs resume`, which finishes without a second TestFailover.

use crate::harness::sandbox::Sandbox;
use cachedeck::controlplane::{ControlPlane, EventQuery, EventSourceType};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn step<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no step {id} in {report}"))
}

/// How many TestFailover calls the sandbox saw for `orders` since `since`.
async fn triggers(sandbox: &Sandbox, since: OffsetDateTime) -> usize {
    sandbox
        .plane("sandbox-dev")
        .describe_events(EventQuery::of(
            "orders",
            EventSourceType::ReplicationGroup,
            since,
        ))
        .await
        .expect("events")
        .iter()
        .filter(|e| {
            e.message
                .starts_with("Test Failover API called for node group")
        })
        .count()
}

async fn primary_of_orders(sandbox: &Sandbox) -> String {
    let found = sandbox
        .plane("sandbox-dev")
        .discover()
        .await
        .expect("discover");
    let orders = found
        .caches
        .iter()
        .find(|c| c.name == "orders")
        .expect("orders");
    orders.shards[0].primary().expect("a primary").id.clone()
}

fn run_args() -> Vec<&'static str> {
    vec![
        "run",
        "failover-test",
        "--env",
        "sandbox-dev",
        "--cache",
        "orders",
        "--yes",
        "--output",
        "json",
        "--param",
        "event_poll=200ms",
    ]
}

fn check_report(report: &serde_json::Value, old: &str, new: &str) {
    assert_eq!(report["state"], "succeeded", "{report}");
    let out = &step(report, "failover")["outputs"];
    assert_eq!(out["acked_writes_lost"], 0, "{out}");
    let shards = out["shards"].as_array().expect("shards");
    assert_eq!(shards.len(), 1);
    assert_eq!(shards[0]["id"], "0001");
    assert_eq!(shards[0]["old_primary"], old);
    assert_eq!(shards[0]["new_primary"], new);
    assert_ne!(old, new);
    let messages: Vec<&str> = out["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert_eq!(messages.len(), 4, "{messages:?}");
    assert!(messages[0].starts_with("Test Failover API called for node group 0001"));
    assert!(messages[3].starts_with("Finished recovery for cache nodes"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_test_promotes_a_replica_and_measures_the_window() {
    let sandbox = Sandbox::up(200);
    let old = primary_of_orders(&sandbox).await;
    let since = OffsetDateTime::now_utc();
    let out = sandbox.cachedeck().args(run_args()).output().expect("run");
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    let new = primary_of_orders(&sandbox).await;
    check_report(&report, &old, &new);
    let out_f = &step(&report, "failover")["outputs"];
    // Probes every 5 ms: the window is measured to well under 10 ms of resolution, and the
    // sandbox's coordinated FAILOVER keeps it short.
    let window = out_f["write_unavailable_ms"].as_f64().expect("window");
    assert!(window > 0.0 && window < 10_000.0, "window {window}");
    assert!(
        out_f["writes_acked"].as_i64().expect("acked") > 100,
        "{out_f}"
    );
    let writer = &out_f["writer"];
    assert_eq!(writer["server_before"], old.as_str(), "{writer}");
    assert_eq!(writer["server_after"], new.as_str(), "{writer}");
    assert!(out_f["endpoint_follow_ms"].as_f64().is_some(), "{out_f}");
    assert!(out_f["lag_before"][0]["replicas_online"].as_u64() >= Some(1));
    assert!(out_f["reader"]["acked"].as_u64() > Some(0), "{out_f}");
    let pre = &step(&report, "preflight")["outputs"];
    assert_eq!(pre["shards"], serde_json::json!(["0001"]));
    assert_eq!(triggers(&sandbox, since).await, 1);

    // Serverless: the preflight says why there is nothing to fail over.
    let out = sandbox
        .cachedeck()
        .args([
            "run",
            "failover-test",
            "--env",
            "sandbox-dev",
            "--cache",
            "storefront",
            "--yes",
            "--output",
            "json",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    let error = report["error"].as_str().expect("error");
    assert!(
        error.contains("serverless caches have no nodes to fail over"),
        "{error}"
    );
    assert_eq!(step(&report, "preflight")["state"], "failed");

    // Cluster mode, one shard of three: the writer's key lives in that shard's slots, so
    // the writer sees exactly that shard's primary change (following MOVED).
    let before = sandbox
        .plane("sandbox-dev")
        .discover()
        .await
        .expect("discover");
    let paperwurks = &sandbox
        .with_roles(
            "sandbox-dev",
            before
                .caches
                .iter()
                .find(|c| c.name == "paperwurks")
                .expect("paperwurks")
                .clone(),
        )
        .await;
    let old2 = paperwurks.shards[1].primary().expect("primary").id.clone();
    let old1 = paperwurks.shards[0].primary().expect("primary").id.clone();
    let mut args = run_args();
    args[5] = "paperwurks";
    args.extend(["--param", "shards=0002"]);
    let out = sandbox.cachedeck().args(&args).output().expect("run");
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    let out_f = &step(&report, "failover")["outputs"];
    assert_eq!(out_f["acked_writes_lost"], 0, "{out_f}");
    let shards = out_f["shards"].as_array().expect("shards");
    assert_eq!(shards.len(), 1, "{out_f}");
    assert_eq!(shards[0]["id"], "0002");
    assert_eq!(shards[0]["old_primary"], old2.as_str());
    assert_eq!(out_f["writer"]["server_before"], old2.as_str(), "{out_f}");
    assert_eq!(
        out_f["writer"]["server_after"], shards[0]["new_primary"],
        "{out_f}"
    );
    let after = sandbox
        .plane("sandbox-dev")
        .discover()
        .await
        .expect("discover");
    let paperwurks = &sandbox
        .with_roles(
            "sandbox-dev",
            after
                .caches
                .iter()
                .find(|c| c.name == "paperwurks")
                .expect("paperwurks")
                .clone(),
        )
        .await;
    assert_eq!(
        paperwurks.shards[0].primary().map(|n| n.id.clone()),
        Some(old1),
        "shard 0001 was not failed over"
    );

    // The dry run names the exact TestFailover calls and executes nothing.
    let triggered = triggers(&sandbox, since).await;
    let out = sandbox
        .cachedeck()
        .args([
            "run",
            "failover-test",
            "--env",
            "sandbox-dev",
            "--cache",
            "orders",
            "--dry-run",
        ])
        .output()
        .expect("dry run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("elasticache:TestFailover replication_group_id=orders node_group_id=0001"),
        "{text}"
    );
    assert_eq!(triggers(&sandbox, since).await, triggered);
}

/// The runner as a std process (so it can be killed), pointed at the sandbox.
fn spawn_runner(sandbox: &Sandbox) -> std::process::Child {
    let home = sandbox.home();
    std::process::Command::new(assert_cmd::cargo::cargo_bin("cachedeck"))
        .env("CACHEDECK_SANDBOX_DIR", home.join("sandbox"))
        .env("CACHEDECK_STATE_DIR", home.join("state"))
        .env("CACHEDECK_CONFIG_DIR", home.join("config"))
        .env("AWS_CONFIG_FILE", home.join("aws-config"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .args(run_args())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("runner")
}

fn journals(home: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(home.join("state").join("runs"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Polls the journals (excluding `seen`) until a record matches; returns run id and path.
fn wait_record(
    home: &Path,
    seen: &[PathBuf],
    pred: impl Fn(&serde_json::Value) -> bool,
) -> (String, PathBuf) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        for path in journals(home).into_iter().filter(|p| !seen.contains(p)) {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for line in text.lines() {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
                    && pred(&v)
                {
                    return (v["run_id"].as_str().expect("run id").to_string(), path);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("no matching journal record within 60s");
}

/// Cuts the journal right after the first record matching `pred`, as if the runner had
/// died exactly there.
fn cut_after(path: &Path, pred: impl Fn(&serde_json::Value) -> bool) {
    let text = std::fs::read_to_string(path).expect("journal");
    let mut kept = String::new();
    for line in text.lines() {
        kept.push_str(line);
        kept.push('\n');
        let v: serde_json::Value = serde_json::from_str(line).expect("json line");
        if pred(&v) {
            std::fs::write(path, kept).expect("cut journal");
            return;
        }
    }
    panic!("no record to cut after in {}", path.display());
}

fn is(record: &'static str, step: &'static str) -> impl Fn(&serde_json::Value) -> bool {
    move |v| v["record"] == record && (step.is_empty() || v["step"] == step)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_each_step_boundary_then_resume_never_fails_over_twice() {
    let sandbox = Sandbox::up(100);
    // (record to kill at, record to cut the journal after, or none)
    let boundaries: [(&str, &str); 4] = [
        ("run-started", ""),
        ("step-done", "preflight"),
        ("intent", "failover"),
        ("step-done", "failover"),
    ];
    for (record, at_step) in boundaries {
        let old = primary_of_orders(&sandbox).await;
        let since = OffsetDateTime::now_utc();
        let seen = journals(sandbox.home());
        let mut runner = spawn_runner(&sandbox);
        let (run_id, path) = wait_record(sandbox.home(), &seen, is(record, at_step));
        runner.kill().expect("SIGKILL");
        let _ = runner.wait();
        // Where the kill could land a little late, put the journal back at the boundary
        // (the steps after it are read-only or have not called TestFailover yet).
        if record == "step-done" && at_step == "failover" {
            cut_after(&path, is(record, at_step));
        }
        let before_resume = triggers(&sandbox, since).await;
        assert!(
            before_resume <= 1,
            "{record} {at_step}: {before_resume} triggers"
        );

        let out = sandbox
            .cachedeck()
            .args(["runs", "resume", &run_id, "--yes", "--output", "json"])
            .output()
            .expect("resume");
        let report = json(&out);
        assert_eq!(
            out.status.code(),
            Some(0),
            "boundary {record} {at_step}: {report}"
        );
        let new = primary_of_orders(&sandbox).await;
        check_report(&report, &old, &new);
        assert_eq!(
            triggers(&sandbox, since).await,
            1,
            "boundary {record} {at_step}: exactly one TestFailover"
        );
        if at_step == "failover" && record == "step-done" {
            assert_eq!(step(&report, "failover")["state"], "already-done");
        }
    }

    // Killed inside the failover step after TestFailover took effect (the sandbox finished
    // the promotion; the probes were still settling): resume observes the event and does
    // not trigger again. The probes died with the runner, so the lost-writes verdict
    // cannot hold and says so.
    let old = primary_of_orders(&sandbox).await;
    let since = OffsetDateTime::now_utc();
    let seen = journals(sandbox.home());
    let mut runner = spawn_runner(&sandbox);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let events = sandbox
            .plane("sandbox-dev")
            .describe_events(EventQuery::all(since))
            .await
            .expect("events");
        if events
            .iter()
            .any(|e| e.message.starts_with("Finished recovery"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery event");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    runner.kill().expect("SIGKILL");
    let _ = runner.wait();
    let (run_id, _) = wait_record(sandbox.home(), &seen, is("intent", "failover"));
    let out = sandbox
        .cachedeck()
        .args(["runs", "resume", &run_id, "--yes", "--output", "json"])
        .output()
        .expect("resume");
    let report = json(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert_eq!(
        step(&report, "failover")["state"],
        "already-done",
        "{report}"
    );
    let outputs = &step(&report, "failover")["outputs"];
    assert!(outputs["acked_writes_lost"].is_null(), "{outputs}");
    assert_eq!(outputs["shards"][0]["old_primary"], old.as_str());
    assert_eq!(
        outputs["shards"][0]["new_primary"],
        primary_of_orders(&sandbox).await.as_str()
    );
    assert_eq!(step(&report, "verdict")["state"], "failed");
    assert!(
        report["error"]
            .as_str()
            .unwrap_or_default()
            .contains("not measured"),
        "{report}"
    );
    assert_eq!(triggers(&sandbox, since).await, 1, "no second TestFailover");
}
