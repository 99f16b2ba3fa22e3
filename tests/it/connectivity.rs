//! The connectivity check: success through the sandbox's TLS endpoint with its local CA (the
//! runbook, through the binary), and each failure layer from the plain check function —
//! refused port, TLS against a plain server, plain against a TLS endpoint, wrong password,
//! an untrusted certificate — each naming the layer and the likely cause.

use crate::harness::sandbox::Sandbox;
use crate::harness::valkey::{ServerSpec, server, start};
use cachedeck::connectivity::{self, ConnectivityReport};
use cachedeck::controlplane::ControlPlane;
use cachedeck::domain::{Cache, Endpoint};
use cachedeck::valkey::connect::{Auth, ConnectOptions, Connector};
use secrecy::SecretString;
use std::time::Duration;

fn options() -> ConnectOptions {
    ConnectOptions {
        connect_timeout: Duration::from_millis(1500),
        command_timeout: Duration::from_millis(1500),
    }
}

fn connector(password: Option<&str>, tls: bool, ca: Option<&str>) -> Connector {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    Connector::new(
        Auth::new(None, password.map(|p| SecretString::from(p.to_string()))),
        tls,
        ca,
        options(),
    )
    .expect("connector")
}

fn failed(report: &ConnectivityReport, layer: &str, cause: &str) {
    assert!(!report.ok, "{report:?}");
    let f = report.failure.as_ref().expect("a failure");
    assert_eq!(f.layer, layer, "{report:?}");
    let likely = f.likely_cause.as_deref().unwrap_or_default();
    assert!(likely.contains(cause), "cause {likely:?} lacks {cause:?}");
    let last = report.stages.last().expect("stages");
    assert!(!last.ok && last.layer == layer, "{report:?}");
}

#[tokio::test]
async fn plain_server_layers_refused_tls_mismatch_and_wrong_password() {
    // Refused: a port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let refused = connectivity::check(
        &connector(None, false, None),
        &Endpoint::new("127.0.0.1", port, false),
        5,
    )
    .await;
    failed(&refused, "tcp", "nothing listens on that port");
    assert_eq!(refused.stages[0].layer, "dns");
    assert!(refused.stages[0].ok);

    // TLS against a plain server: the handshake never gets an answer.
    let plain = server();
    let tls_vs_plain = connectivity::check(
        &connector(None, true, None),
        &Endpoint::new("127.0.0.1", plain.port(), true),
        5,
    )
    .await;
    failed(&tls_vs_plain, "tls", "does not speak TLS");

    // Wrong password, and it never shows in the report.
    let locked = start(ServerSpec::new().args(["--requirepass", "right-horse-battery"]));
    let wrong = connectivity::check(
        &connector(Some("wrong-staple-9f3"), false, None),
        &Endpoint::new("127.0.0.1", locked.port(), false),
        5,
    )
    .await;
    failed(&wrong, "auth", "wrong user or password");
    let json = serde_json::to_string(&wrong).expect("json");
    assert!(
        !json.contains("wrong-staple-9f3") && !json.contains("right-horse"),
        "{json}"
    );

    // The same server with the right password: every layer, latency and role.
    let ok = connectivity::check(
        &connector(Some("right-horse-battery"), false, None),
        &Endpoint::new("127.0.0.1", locked.port(), false),
        50,
    )
    .await;
    assert!(ok.ok, "{ok:?}");
    let latency = ok.latency.as_ref().expect("latency");
    assert_eq!(latency.count, 50);
    assert!(
        latency.p50_ms > 0.0 && latency.p50_ms <= latency.p99_ms,
        "{latency:?}"
    );
    assert_eq!(ok.role.as_deref(), Some("primary"));
    assert_eq!(ok.user.as_deref(), Some("default"));
    // The report reads back from JSON (it will come back from an ECS task that way).
    let back: ConnectivityReport =
        serde_json::from_str(&serde_json::to_string(&ok).expect("json")).expect("parse");
    assert_eq!(back, ok);
}

fn orders(caches: &[Cache]) -> &Cache {
    caches.iter().find(|c| c.name == "orders").expect("orders")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_sandbox_tls_endpoint() {
    let sandbox = Sandbox::up(50);
    let out = sandbox
        .cachedeck()
        .args([
            "run",
            "connectivity-check",
            "--env",
            "sandbox-dev",
            "--cache",
            "orders",
            "--output",
            "json",
            "--param",
            "pings=30",
        ])
        .output()
        .expect("run");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(out.status.code(), Some(0), "{report}");
    let check = &report["steps"][0]["outputs"];
    assert_eq!(check["role"], "primary", "{check}");
    assert!(check["p99_ms"].as_f64().is_some(), "{check}");
    let layers: Vec<&str> = check["report"]["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .filter(|s| s["ok"] == true)
        .filter_map(|s| s["layer"].as_str())
        .collect();
    assert_eq!(
        layers,
        ["dns", "tcp", "tls", "auth", "ping", "latency", "role"]
    );
    assert_eq!(check["report"]["tls"], true);

    // Plain against the TLS endpoint, a wrong token, and no CA: each its own layer.
    let state = sandbox.state();
    let ca = state.ca_file.display().to_string();
    let found = sandbox
        .plane("sandbox-dev")
        .discover()
        .await
        .expect("discover");
    let endpoint = orders(&found.caches).endpoint.clone().expect("endpoint");
    let token = sandbox
        .params()
        .get("/orders/dev/redis/auth-token")
        .expect("read")
        .expect("token")
        .value
        .expose()
        .to_string();
    let plain = Endpoint {
        tls: false,
        ..endpoint.clone()
    };
    let r = connectivity::check(&connector(Some(&token), false, None), &plain, 5).await;
    assert!(!r.ok, "{r:?}");
    let cause = r
        .failure
        .as_ref()
        .and_then(|f| f.likely_cause.clone())
        .unwrap_or_default();
    assert!(cause.contains("rediss://"), "{r:?}");
    assert!(!serde_json::to_string(&r).expect("json").contains(&token));

    let r = connectivity::check(
        &connector(Some("not-the-token"), true, Some(&ca)),
        &endpoint,
        5,
    )
    .await;
    failed(&r, "auth", "wrong user or password");
    assert!(r.stages.iter().any(|s| s.layer == "tcp" && s.ok));

    let r = connectivity::check(&connector(Some(&token), true, None), &endpoint, 5).await;
    failed(&r, "tls", "CA cachedeck does not trust");
}
