//! `auth-rotate` end to end through the binary on one isolated sandbox: the replication
//! group's AUTH token (ROTATE → publish → SET on every real node), the serverless cache's
//! RBAC user, the 3-shard cluster with a TLS front per node (every node of every shard, the
//! URL parameter, the Celery-like consumer reconnecting to every primary), the dry run, a
//! SIGKILL in the middle of the ROTATE wait followed by `runs resume` (no second ROTATE),
//! and the canary: the whole rotation at trace level, then every output, log and journal
//! searched for the old and the new token.

use crate::harness::sandbox::Sandbox;
use cachedeck::controlplane::{ControlPlane, EventQuery};
use cachedeck::domain::Endpoint;
use cachedeck::valkey::connect::{Auth, ConnectOptions, Connector};
use secrecy::SecretString;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

const MODIFY_MS: &str = "1500";

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn args(cache: &str) -> Vec<String> {
    [
        "run",
        "auth-rotate",
        "--env",
        "sandbox-dev",
        "--cache",
        cache,
        "--yes",
        "--output",
        "json",
        "--param",
        "poll=200ms",
        "--param",
        "drain_timeout=20s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn secret(sandbox: &Sandbox, name: &str) -> Option<String> {
    sandbox
        .params()
        .get(name)
        .expect("read parameter")
        .map(|p| p.value.expose().to_string())
}

/// Logs in to a plain sandbox node; `Ok` when the password is accepted.
async fn login(port: u16, user: Option<&str>, password: &str) -> Result<(), String> {
    let mut settings = redis::RedisConnectionInfo::default().set_password(password);
    if let Some(u) = user {
        settings = settings.set_username(u);
    }
    let info = redis::IntoConnectionInfo::into_connection_info(redis::ConnectionAddr::Tcp(
        "127.0.0.1".into(),
        port,
    ))
    .expect("info")
    .set_redis_settings(settings);
    let client = redis::Client::open(info).map_err(|e| e.to_string())?;
    let mut conn = tokio::time::timeout(
        Duration::from_secs(3),
        client.get_multiplexed_async_connection(),
    )
    .await
    .map_err(|_| "timeout".to_string())?
    .map_err(|e| e.to_string())?;
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Logs in through a TLS endpoint trusting only the sandbox CA; `Ok` when accepted.
async fn login_tls(ca: &str, endpoint: &Endpoint, password: &str) -> Result<(), String> {
    let connector = Connector::new(
        Auth::new(None, Some(SecretString::from(password.to_string()))),
        true,
        Some(ca),
        ConnectOptions {
            connect_timeout: Duration::from_secs(3),
            command_timeout: Duration::from_secs(3),
        },
    )
    .map_err(|e| e.to_string())?;
    let mut conn = connector
        .connect(endpoint)
        .await
        .map_err(|e| e.to_string())?;
    conn.query::<redis::Value>(&redis::cmd("PING"))
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The node endpoints discovery gives for a cluster-mode TLS group: each node's TLS front.
async fn cluster_fronts(sandbox: &Sandbox, cache: &str) -> Vec<Endpoint> {
    let dev = sandbox
        .plane("sandbox-dev")
        .discover()
        .await
        .expect("discover");
    let c = dev.caches.iter().find(|c| c.name == cache).expect("cache");
    assert!(c.cluster_mode && c.tls);
    let fronts: Vec<Endpoint> = c.nodes().map(|n| n.endpoint()).collect();
    assert!(
        fronts
            .iter()
            .all(|e| e.tls && e.host == cachedeck::sandbox::tls::CLUSTER_FRONT_HOST),
        "{fronts:?}"
    );
    fronts
}

fn ports(sandbox: &Sandbox, cache: &str) -> Vec<u16> {
    sandbox
        .state()
        .cache("sandbox-dev", cache)
        .expect("cache")
        .shards
        .iter()
        .flat_map(|s| s.nodes.iter().map(|n| n.port))
        .collect()
}

/// Every file under `dir`, recursively, as text.
fn files_under(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.push((
                    p.display().to_string(),
                    String::from_utf8_lossy(&bytes).into_owned(),
                ));
            }
        }
    }
    out
}

async fn rotations(sandbox: &Sandbox, since: OffsetDateTime) -> usize {
    rotations_of(sandbox, "orders", since).await
}

async fn rotations_of(sandbox: &Sandbox, cache: &str, since: OffsetDateTime) -> usize {
    sandbox
        .plane("sandbox-dev")
        .describe_events(EventQuery {
            source: Some(cache.into()),
            source_type: None,
            since,
        })
        .await
        .expect("events")
        .iter()
        .filter(|e| e.message.starts_with("Auth token rotated"))
        .count()
}

fn spawn_runner(sandbox: &Sandbox) -> std::process::Child {
    let home = sandbox.home();
    std::process::Command::new(assert_cmd::cargo::cargo_bin("cachedeck"))
        .env("CACHEDECK_SANDBOX_DIR", home.join("sandbox"))
        .env("CACHEDECK_STATE_DIR", home.join("state"))
        .env("CACHEDECK_CONFIG_DIR", home.join("config"))
        .env("AWS_CONFIG_FILE", home.join("aws-config"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("CACHEDECK_SANDBOX_MODIFY_MS", MODIFY_MS)
        .args(args("orders"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("runner")
}

fn journals(home: &Path) -> Vec<String> {
    files_under(&home.join("state").join("runs"))
        .into_iter()
        .map(|(p, _)| p)
        .collect()
}

/// Waits until a journal not in `seen` has a record matching `pred`; returns its run id.
fn wait_record(home: &Path, seen: &[String], pred: impl Fn(&serde_json::Value) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        for (path, text) in files_under(&home.join("state").join("runs"))
            .into_iter()
            .filter(|(p, _)| !seen.contains(p))
        {
            for line in text.lines() {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
                    && pred(&v)
                {
                    let id = Path::new(&path)
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    return id;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no matching journal record within 60 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_rotate_moves_cache_secret_and_nodes_together() {
    let sandbox = Sandbox::up(100);
    let token_param = "/orders/dev/redis/auth-token";
    let old = secret(&sandbox, token_param).expect("old token");

    // The dry run names the calls and no token.
    let out = sandbox
        .cachedeck()
        .args([
            "run",
            "auth-rotate",
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
    assert!(text.contains("AuthTokenUpdateStrategy=ROTATE"), "{text}");
    assert!(text.contains("AuthTokenUpdateStrategy=SET"), "{text}");
    assert!(!text.contains(&old), "dry run shows the token");
    assert!(secret(&sandbox, "/cachedeck/rotation/orders/pending").is_none());

    // The whole rotation at trace level: the canary run.
    let since = OffsetDateTime::now_utc();
    let out = sandbox
        .cachedeck()
        .env("CACHEDECK_LOG", "trace")
        .env("CACHEDECK_SANDBOX_MODIFY_MS", MODIFY_MS)
        .args(args("orders"))
        .output()
        .expect("run");
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    let new = secret(&sandbox, token_param).expect("new token");
    assert_ne!(new, old);
    assert_eq!(new.len(), 64);
    assert!(new.chars().all(|c| c.is_ascii_alphanumeric()));
    for port in ports(&sandbox, "orders") {
        assert_eq!(
            login(port, None, &new).await,
            Ok(()),
            "node {port}: new token"
        );
        let refused = login(port, None, &old)
            .await
            .expect_err("old token refused");
        assert!(
            refused.contains("WRONGPASS") || refused.contains("AuthenticationFailed"),
            "{refused}"
        );
    }
    assert!(secret(&sandbox, "/cachedeck/rotation/orders/pending").is_none());
    assert!(secret(&sandbox, "/cachedeck/rotation/orders/previous").is_none());
    // The published version is labelled current and with the run; the one it replaced,
    // previous.
    let run_id = report["run_id"].as_str().expect("run id");
    let history = sandbox
        .plane("sandbox-dev")
        .get_parameter_history(token_param)
        .await
        .expect("history");
    let newest = history.last().expect("versions");
    assert!(newest.version >= 2, "{history:?}");
    assert!(
        newest.labels.contains(&"cachedeck-current".to_string())
            && newest.labels.contains(&format!("run-{run_id}")),
        "{history:?}"
    );
    assert_eq!(
        history[history.len() - 2].labels,
        ["cachedeck-previous".to_string()],
        "{history:?}"
    );
    let auth = sandbox
        .plane("sandbox-dev")
        .replication_group_auth("orders")
        .await
        .expect("group auth");
    assert!(auth.auth_token_enabled);
    assert_eq!(rotations(&sandbox, since).await, 1);
    // The TLS primary endpoint (the daemon reconnects with the new token) still serves.
    let out = sandbox
        .cachedeck()
        .args([
            "run",
            "health-check",
            "--env",
            "sandbox-dev",
            "--cache",
            "orders",
            "--yes",
        ])
        .output()
        .expect("health");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The consumer was rolled: its new task connected with the new token, and no client
    // error was logged by either task.
    let consumer_log = sandbox
        .dir()
        .join("consumers/sandbox-dev/orders-sidekiq/consumer.log");
    let log = std::fs::read_to_string(&consumer_log).expect("consumer log");
    assert!(log.contains("orders-sidekiq-001 SIGTERM"), "{log}");
    assert!(
        log.contains("orders-sidekiq-002 connection 0 opened"),
        "{log}"
    );
    assert!(!log.contains("error:"), "{log}");
    let rolled = &report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["id"] == "roll")
        .expect("roll step")["outputs"]["rolled"];
    assert_eq!(rolled, &serde_json::json!(["sandbox-dev/orders-sidekiq"]));
    let listed = &report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["id"] == "preflight")
        .expect("preflight step")["outputs"]["consumers"];
    assert_eq!(listed, rolled, "the preflight lists the consumers it rolls");

    let mut places = vec![
        ("consumer log".to_string(), log.clone()),
        (
            "stdout".to_string(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ),
        (
            "stderr".to_string(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ),
        ("report".to_string(), report.to_string()),
    ];
    places.extend(files_under(&sandbox.home().join("state")));
    let logs: Vec<_> = places.iter().filter(|(p, _)| p.contains("logs")).collect();
    assert!(!logs.is_empty(), "no log file was written");
    assert!(
        logs.iter()
            .any(|(_, t)| t.contains("TRACE") || t.contains("trace")),
        "the log is not at trace level"
    );
    for (place, text) in &places {
        assert!(!text.contains(&new), "the new token is in {place}");
        assert!(!text.contains(&old), "the old token is in {place}");
    }

    // The serverless cache's RBAC user: ModifyUser [old, new], then [new].
    let user_param = "/storefront-dev/redis/password";
    let old_pw = secret(&sandbox, user_param).expect("password");
    let out = sandbox
        .cachedeck()
        .env("CACHEDECK_SANDBOX_MODIFY_MS", MODIFY_MS)
        .args(args("storefront"))
        .output()
        .expect("run");
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    let new_pw = secret(&sandbox, user_param).expect("password");
    assert_ne!(new_pw, old_pw);
    let user = sandbox
        .plane("sandbox-dev")
        .describe_user("storefront-app")
        .await
        .expect("user");
    assert_eq!(user.password_count, 1);
    assert_eq!(user.status, "active");
    for port in ports(&sandbox, "storefront") {
        assert_eq!(login(port, Some("storefront-app"), &new_pw).await, Ok(()));
        assert!(login(port, Some("storefront-app"), &old_pw).await.is_err());
    }
    let log = std::fs::read_to_string(
        sandbox
            .dir()
            .join("consumers/sandbox-dev/storefront-web/consumer.log"),
    )
    .expect("consumer log");
    assert!(
        log.contains("storefront-web-002 connection 0 opened"),
        "{log}"
    );
    assert!(!log.contains("error:"), "{log}");

    // The 3-shard cluster with in-transit encryption (TLS per node through the fronts its
    // nodes announce): ROTATE then SET on every node of every shard; the URL parameter keeps
    // everything but the password; the Celery-like consumer reconnects to every primary.
    let url_param = "/paperwurks/dev/redis/url";
    let paper_token_param = "/paperwurks/dev/redis/auth-token";
    let old_url = secret(&sandbox, url_param).expect("url");
    let old_token = secret(&sandbox, paper_token_param).expect("token");
    let since = OffsetDateTime::now_utc();
    let out = sandbox
        .cachedeck()
        .env("CACHEDECK_SANDBOX_MODIFY_MS", MODIFY_MS)
        .args(args("paperwurks"))
        .output()
        .expect("run");
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    let new_token = secret(&sandbox, paper_token_param).expect("token");
    assert_ne!(new_token, old_token);
    let new_url = secret(&sandbox, url_param).expect("url");
    assert_eq!(
        new_url,
        old_url.replace(&old_token, &new_token),
        "only the password of the URL changes"
    );
    assert!(new_url.starts_with("rediss://:"), "the URL names TLS");
    let ca = sandbox.state().ca_file.display().to_string();
    let fronts = cluster_fronts(&sandbox, "paperwurks").await;
    assert_eq!(fronts.len(), 6);
    for port in ports(&sandbox, "paperwurks") {
        assert_eq!(login(port, None, &new_token).await, Ok(()), "node {port}");
        assert!(login(port, None, &old_token).await.is_err(), "node {port}");
    }
    for front in &fronts {
        assert_eq!(
            login_tls(&ca, front, &new_token).await,
            Ok(()),
            "{front:?}: the new token over TLS"
        );
        let refused = login_tls(&ca, front, &old_token)
            .await
            .expect_err("old token refused over TLS");
        assert!(
            refused.contains("WRONGPASS") || refused.contains("AuthenticationFailed"),
            "{front:?}: {refused}"
        );
    }
    assert_eq!(rotations_of(&sandbox, "paperwurks", since).await, 1);
    assert!(secret(&sandbox, "/cachedeck/rotation/paperwurks/pending").is_none());
    let log = std::fs::read_to_string(
        sandbox
            .dir()
            .join("consumers/sandbox-dev/paperwurks-celery/consumer.log"),
    )
    .expect("consumer log");
    assert!(log.contains("paperwurks-celery-001 SIGTERM"), "{log}");
    let spread = log
        .lines()
        .find(|l| l.contains("paperwurks-celery-002 cluster: connections spread over 3 primaries"))
        .unwrap_or_else(|| panic!("the new task learned no primaries: {log}"));
    assert!(
        spread
            .matches(cachedeck::sandbox::tls::CLUSTER_FRONT_HOST)
            .count()
            == 3,
        "the primaries are named by their TLS fronts: {spread}"
    );
    for i in 0..3 {
        assert!(
            log.contains(&format!("paperwurks-celery-002 connection {i} opened")),
            "{log}"
        );
    }
    assert!(!log.contains("error:"), "{log}");

    // SIGKILL in the middle of the ROTATE wait, then `runs resume`: one ROTATE only, and
    // the published token works on every node.
    let since = OffsetDateTime::now_utc();
    let before = secret(&sandbox, token_param).expect("token");
    let seen = journals(sandbox.home());
    let mut child = spawn_runner(&sandbox);
    let run_id = wait_record(sandbox.home(), &seen, |v| {
        v["record"] == "intent" && v["step"] == "rotate"
    });
    // ModifyReplicationGroup has landed once the group reads `modifying`.
    let plane = sandbox.plane("sandbox-dev");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let auth = plane.replication_group_auth("orders").await.expect("auth");
        if auth.status == "modifying" {
            break;
        }
        assert!(Instant::now() < deadline, "the group never read modifying");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    // The token was staged, and labelled with the run, before ModifyReplicationGroup.
    let staged = plane
        .get_parameter_history("/cachedeck/rotation/orders/pending")
        .await
        .expect("staging history");
    assert_eq!(staged.len(), 1);
    assert_eq!(staged[0].labels, [format!("run-{run_id}")]);
    let out = sandbox
        .cachedeck()
        .env("CACHEDECK_SANDBOX_MODIFY_MS", MODIFY_MS)
        .args(["runs", "resume", &run_id, "--yes", "--output", "json"])
        .output()
        .expect("resume");
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(
        rotations(&sandbox, since).await,
        1,
        "a second ROTATE was sent"
    );
    let after = secret(&sandbox, token_param).expect("token");
    assert_ne!(after, before);
    for port in ports(&sandbox, "orders") {
        assert_eq!(login(port, None, &after).await, Ok(()));
        assert!(login(port, None, &before).await.is_err());
    }
}
