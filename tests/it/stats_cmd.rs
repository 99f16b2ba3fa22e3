//! `cachedeck stats` through the real binary against real servers named in a config file:
//! per-node JSON with real rates, an ACL password from an env var, a down node reported as a
//! row (exit 0), an unknown cache (exit 1) or environment (exit 2), `--watch` printing one
//! object per interval, and a TLS cache trusted through its own CA file.

#![allow(clippy::expect_used)]

use crate::harness::valkey::{ServerSpec, server, start};
use assert_cmd::Command;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn config(dir: &tempfile::TempDir, caches: &str) -> std::path::PathBuf {
    let path = dir.path().join("config.toml");
    let text = format!(
        "[settings]\ncall_timeout = \"2s\"\nvalkey_timeout = \"2s\"\nstats_interval = \"300ms\"\n\n\
         [environments.it]\nprovider = \"aws\"\nregion = \"us-east-1\"\n\
         endpoint_url = \"http://127.0.0.1:9\"\n\n{caches}"
    );
    std::fs::write(&path, text).expect("write config");
    path
}

fn cachedeck(dir: &tempfile::TempDir) -> Command {
    let mut cmd = Command::cargo_bin("cachedeck").expect("binary");
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("CACHEDECK_STATE_DIR", dir.path().join("state"))
        .env("AWS_CONFIG_FILE", dir.path().join("aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.path().join("aws-credentials"),
        )
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .timeout(Duration::from_secs(60));
    cmd
}

#[test]
fn once_reports_each_node_with_real_rates_and_a_down_node_as_a_row() {
    let up = start(ServerSpec::new().config_line("user app on >stats-pw-42 ~* +@all"));
    let down_port = cachedeck::valkey::server::free_port(false).expect("free port");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(
        &dir,
        &format!(
            "[[environments.it.caches]]\nname = \"orders\"\nurl = \"redis://127.0.0.1:{}\"\n\
             username = \"app\"\npassword = {{ env = \"ORDERS_PW\" }}\n\n\
             [[environments.it.caches]]\nname = \"gone\"\nurl = \"redis://127.0.0.1:{down_port}\"\n",
            up.port()
        ),
    );
    let out = cachedeck(&dir)
        .env("ORDERS_PW", "stats-pw-42")
        .args(["--config", cfg.to_str().expect("utf-8")])
        .args([
            "stats",
            "orders",
            "--env",
            "it",
            "--once",
            "--output",
            "json",
            "--interval",
            "300ms",
        ])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    assert!(
        !stderr.contains("stats-pw-42")
            && !String::from_utf8_lossy(&out.stdout).contains("stats-pw-42")
    );
    let json: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["cache"], "orders");
    assert_eq!(json["env"], "it");
    let node = &json["nodes"][0];
    assert_eq!(node["up"], true, "{json:#}");
    assert_eq!(node["role"], "primary");
    assert!(node["error"].is_null());
    assert!(
        node["ops_per_sec"].as_f64().is_some_and(|v| v >= 0.0),
        "{node}"
    );
    assert!(node["used_memory"].as_u64().is_some_and(|v| v > 0));
    assert!(
        node["net_in_bytes_per_sec"].is_number(),
        "a second sample gives rates: {node}"
    );
    assert_eq!(node["rdb_last_bgsave_status"], "ok");
    for field in [
        "hit_rate",
        "maxmemory",
        "mem_fragmentation_ratio",
        "connected_clients",
        "blocked_clients",
        "evicted_keys",
        "expired_keys",
        "repl_lag_bytes",
        "keys",
    ] {
        assert!(node.get(field).is_some(), "missing {field}");
    }

    let out = cachedeck(&dir)
        .args(["--config", cfg.to_str().expect("utf-8")])
        .args(["stats", "gone", "--env", "it", "--output", "json"])
        .output()
        .expect("run");
    assert!(out.status.success(), "a down node is not a failed command");
    let json: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["nodes"][0]["up"], false);
    let error = json["nodes"][0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("tcp") && error.contains("nothing listens"),
        "{error}"
    );

    let out = cachedeck(&dir)
        .args(["--config", cfg.to_str().expect("utf-8")])
        .args(["stats", "nope", "--env", "it"])
        .output()
        .expect("run");
    // The environment's control plane is unreachable and no configured cache has the name.
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`nope`") && stderr.contains("environment `it`"),
        "{stderr}"
    );

    let out = cachedeck(&dir)
        .args(["--config", cfg.to_str().expect("utf-8")])
        .args(["stats", "orders", "--env", "nowhere"])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown environment is bad input"
    );
}

#[test]
fn table_output_names_the_node_and_its_figures() {
    let up = server();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(
        &dir,
        &format!(
            "[[environments.it.caches]]\nname = \"sessions\"\nurl = \"redis://127.0.0.1:{}\"\n",
            up.port()
        ),
    );
    let out = cachedeck(&dir)
        .args(["--config", cfg.to_str().expect("utf-8")])
        .args(["stats", "sessions", "--env", "it", "--interval", "200ms"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    assert!(
        lines
            .next()
            .is_some_and(|h| h.starts_with("NODE") && h.contains("OPS/S")),
        "{text}"
    );
    assert!(
        lines
            .next()
            .is_some_and(|r| r.starts_with("sessions") && r.contains(" up ")),
        "{text}"
    );
}

#[test]
fn watch_prints_one_json_object_per_interval() {
    let up = server();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(
        &dir,
        &format!(
            "[[environments.it.caches]]\nname = \"queue\"\nurl = \"redis://127.0.0.1:{}\"\n",
            up.port()
        ),
    );
    let bin = assert_cmd::cargo::cargo_bin("cachedeck");
    let mut child = std::process::Command::new(bin)
        .env("HOME", dir.path())
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", dir.path().join("aws-config"))
        .args(["--config", cfg.to_str().expect("utf-8")])
        .args([
            "stats",
            "queue",
            "--env",
            "it",
            "--watch",
            "--output",
            "json",
            "--interval",
            "200ms",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let started = Instant::now();
    let mut objects = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        objects.push(serde_json::from_str::<Value>(&line).expect("one JSON object a line"));
        if objects.len() == 3 || started.elapsed() > Duration::from_secs(20) {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(objects.len(), 3);
    assert!(objects.iter().all(|o| o["cache"] == "queue"));
    assert_eq!(objects[2]["nodes"][0]["up"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cache_with_its_own_ca_is_polled_over_tls() {
    let backend = server();
    let proxy = crate::valkey::tls_proxy::TlsProxy::start(backend.port()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(
        &dir,
        &format!(
            "[[environments.it.caches]]\nname = \"secure\"\nurl = \"rediss://localhost:{}\"\nca_file = \"{}\"\n",
            proxy.port,
            proxy.ca_file.display()
        ),
    );
    let mut cmd = cachedeck(&dir);
    cmd.args(["--config", cfg.to_str().expect("utf-8")]).args([
        "stats",
        "secure",
        "--env",
        "it",
        "--output",
        "json",
        "--interval",
        "200ms",
    ]);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run");
    assert!(out.status.success());
    let json: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["nodes"][0]["up"], true, "{json:#}");
    assert_eq!(
        json["nodes"][0]["address"],
        format!("localhost:{}", proxy.port)
    );
}
