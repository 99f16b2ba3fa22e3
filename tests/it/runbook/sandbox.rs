//! Runbooks on the sandbox estate through the binary: its control plane (parameter store
//! locks), TLS + AUTH token behind the primary endpoint proxy, replicas, cluster mode, and
//! the confirm-protected `sandbox-prod`.

use super::estate::{json_out, stderr};
use crate::harness::sandbox::Sandbox;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn run(sandbox: &Sandbox, args: &[&str]) -> std::process::Output {
    sandbox
        .cachedeck()
        .arg("run")
        .args(args)
        .output()
        .expect("run")
}

#[test]
fn marker_roundtrip_and_locks_on_the_sandbox() {
    let sandbox = Sandbox::up(1000);

    // Replication group: TLS + token through the primary endpoint proxy. (The sandbox's
    // nodes behind a TLS endpoint speak plain text, so node-by-node reads are exercised on
    // the plain cluster-mode cache below.)
    let out = run(
        &sandbox,
        &[
            "marker-roundtrip",
            "--env",
            "sandbox-dev",
            "--cache",
            "orders",
            "--yes",
            "--output",
            "json",
            "--param",
            "nodes=endpoint",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let report = json_out(&out);
    assert_eq!(
        report["steps"][3]["outputs"]["nodes_checked"], 1,
        "{report}"
    );

    // Cluster mode: the write follows MOVED from the configuration endpoint; the read is
    // answered by the owning shard's primary and replica.
    let out = run(
        &sandbox,
        &[
            "marker-roundtrip",
            "--env",
            "sandbox-dev",
            "--cache",
            "paperwurks",
            "--yes",
            "--output",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(json_out(&out)["steps"][3]["outputs"]["nodes_checked"], 2);

    // A read-only runbook on every kind of cache.
    for cache in ["paperwurks", "valkey-ecs"] {
        let out = run(
            &sandbox,
            &["health-check", "--env", "sandbox-dev", "--cache", cache],
        );
        assert_eq!(out.status.code(), Some(0), "{cache}: {}", stderr(&out));
    }

    // sandbox-prod asks for the cache name.
    let out = run(
        &sandbox,
        &[
            "marker-roundtrip",
            "--env",
            "sandbox-prod",
            "--cache",
            "orders",
            "--yes",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr(&out));

    // The lock lives in the sandbox's parameter store while a run holds it, names the
    // holder, and stops a second runner (exit 4).
    let mut first = std::process::Command::new(assert_cmd::cargo::cargo_bin("cachedeck"))
        .env("CACHEDECK_SANDBOX_DIR", sandbox.home().join("sandbox"))
        .env("CACHEDECK_STATE_DIR", sandbox.home().join("state"))
        .env("CACHEDECK_CONFIG_DIR", sandbox.home().join("config"))
        .env("AWS_CONFIG_FILE", sandbox.home().join("aws-config"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .args([
            "run",
            "marker-roundtrip",
            "--env",
            "sandbox-prod",
            "--cache",
            "orders",
        ])
        .args([
            "--yes",
            "--confirm-cache",
            "orders",
            "--param",
            "pause=3s",
            "--param",
            "nodes=endpoint",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("first runner");
    let lock = "/cachedeck/locks/000000000000/local/orders";
    let deadline = Instant::now() + Duration::from_secs(60);
    let holder = loop {
        if let Some(p) = sandbox.params().get(lock).expect("read lock") {
            break serde_json::from_str::<serde_json::Value>(p.value.expose()).expect("lock JSON");
        }
        assert!(Instant::now() < deadline, "lock never taken");
        std::thread::sleep(Duration::from_millis(20));
    };
    for field in ["holder", "host", "pid", "run_id", "since", "heartbeat"] {
        assert!(
            holder.get(field).is_some(),
            "lock value has {field}: {holder}"
        );
    }
    let out = run(
        &sandbox,
        &[
            "marker-roundtrip",
            "--env",
            "sandbox-prod",
            "--cache",
            "orders",
            "--yes",
            "--confirm-cache",
            "orders",
        ],
    );
    assert_eq!(out.status.code(), Some(4), "stderr: {}", stderr(&out));
    assert!(stderr(&out).contains(holder["run_id"].as_str().expect("run id")));
    assert_eq!(first.wait().expect("first ends").code(), Some(0));
    assert!(
        sandbox.params().get(lock).expect("read lock").is_none(),
        "released at the end"
    );
}
