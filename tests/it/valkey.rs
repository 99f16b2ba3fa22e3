//! The Valkey data plane against real valkey-server processes: logging in (ACL user, wrong
//! password, missing AUTH), each connection layer's failure, TLS through a terminating proxy,
//! live stats under load, a node going down while another keeps updating, hostile key names.

#![allow(clippy::expect_used)]

pub(crate) mod tls_proxy;

use crate::harness::valkey::{ServerSpec, ValkeyServer, server, start};
use cachedeck::domain::Endpoint;
use cachedeck::valkey::connect::{Auth, ConnectOptions, Connector, Layer, NodeConnection};
use cachedeck::valkey::stats::{
    NodeKey, PollTarget, Poller, PollerConfig, StatsBook, StatsEvent, fetch_slowlog,
};
use secrecy::SecretString;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tls_proxy::{TlsProxy, free_port};

fn options() -> ConnectOptions {
    ConnectOptions {
        connect_timeout: Duration::from_secs(3),
        command_timeout: Duration::from_secs(3),
    }
}

fn connector(user: Option<&str>, password: Option<&str>) -> Connector {
    let auth = Auth::new(
        user.map(str::to_string),
        password.map(|p| SecretString::from(p.to_string())),
    );
    Connector::new(auth, false, None, options()).expect("plain connector")
}

fn local(port: u16) -> Endpoint {
    Endpoint::new("127.0.0.1", port, false)
}

async fn admin(server: &ValkeyServer, password: Option<&str>) -> NodeConnection {
    connector(None, password)
        .connect(&local(server.port()))
        .await
        .expect("admin connection")
}

/// ACL user `app` (password `app-s3cret-pw`) with every command and key.
async fn add_app_user(adm: &mut NodeConnection) {
    let _: () = adm
        .query(
            redis::cmd("ACL").arg(&["SETUSER", "app", "on", ">app-s3cret-pw", "~*", "+@all"][..]),
        )
        .await
        .expect("acl setuser");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_user_logs_in_and_a_wrong_password_is_an_auth_error_without_the_password() {
    let server = start(ServerSpec::new().config_line("requirepass admin-pw-1234"));
    let mut adm = admin(&server, Some("admin-pw-1234")).await;
    add_app_user(&mut adm).await;

    let mut app = connector(Some("app"), Some("app-s3cret-pw"))
        .connect(&local(server.port()))
        .await
        .expect("ACL user logs in");
    let (info, _) = app.info().await.expect("INFO as the ACL user");
    assert_eq!(info.server.engine, "valkey");
    let whoami: String = app
        .query(redis::cmd("ACL").arg("WHOAMI"))
        .await
        .expect("whoami");
    assert_eq!(whoami, "app");

    let err = connector(Some("app"), Some("wrong-Pa55word-xyz"))
        .connect(&local(server.port()))
        .await
        .err()
        .expect("wrong password must fail");
    assert_eq!(err.layer, Layer::Auth, "{err}");
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains("wrong-Pa55word-xyz"),
        "password leaked: {shown}"
    );
    assert!(
        err.likely_cause
            .as_deref()
            .is_some_and(|c| c.contains("password"))
    );

    let err = connector(None, None)
        .connect(&local(server.port()))
        .await
        .err()
        .expect("no password must fail");
    assert_eq!(err.layer, Layer::Auth, "{err}");
    assert!(err.to_string().contains("requires AUTH"), "{err}");
}

#[tokio::test]
async fn a_refused_port_is_a_tcp_error_and_a_bad_name_a_dns_error() {
    let port = free_port();
    let err = connector(None, None)
        .connect(&local(port))
        .await
        .err()
        .expect("nothing listens");
    assert_eq!(err.layer, Layer::Tcp, "{err}");
    assert!(err.to_string().contains("nothing listens"), "{err}");

    let err = connector(None, None)
        .connect(&Endpoint::new("no-such-host.invalid", 6379, false))
        .await
        .err()
        .expect("no such host");
    assert!(matches!(err.layer, Layer::Dns | Layer::Timeout), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_through_a_terminating_proxy_and_each_mismatch_named() {
    let server = server();
    let proxy = TlsProxy::start(server.port()).await;
    let ca = proxy.ca_file.to_str().expect("utf-8 path");

    // Trusted CA, SNI = localhost: works end to end.
    let tls = Connector::new(Auth::default(), true, Some(ca), options()).expect("connector");
    let mut steps = Vec::new();
    let mut conn = tls
        .connect_traced(&Endpoint::new("localhost", proxy.port, true), &mut |s| {
            steps.push(s)
        })
        .await
        .expect("tls connection with the cache's CA");
    let layers: Vec<Layer> = steps.iter().map(|s| s.layer).collect();
    assert_eq!(layers, [Layer::Dns, Layer::Tcp, Layer::Tls, Layer::Auth]);
    assert!(steps[2].detail.starts_with("TLSv1_3"), "{:?}", steps[2]);
    assert!(conn.info().await.is_ok());

    // Same endpoint without the CA: unknown issuer, with what to do about it.
    let untrusted = Connector::new(Auth::default(), true, None, options()).expect("connector");
    let err = untrusted
        .connect(&Endpoint::new("localhost", proxy.port, true))
        .await
        .err()
        .expect("unknown CA");
    assert_eq!(err.layer, Layer::Tls, "{err}");
    assert!(err.to_string().contains("ca_file"), "{err}");

    // TLS client against the plain server.
    let err = tls
        .connect(&Endpoint::new("localhost", server.port(), true))
        .await
        .err()
        .expect("plain server");
    assert!(matches!(err.layer, Layer::Tls | Layer::Timeout), "{err}");
    assert!(err.to_string().contains("does not speak TLS"), "{err}");

    // Plain client against the TLS endpoint.
    let err = connector(None, None)
        .connect(&local(proxy.port))
        .await
        .err()
        .expect("plain client on a TLS port");
    assert!(
        matches!(err.layer, Layer::Protocol | Layer::Timeout),
        "{err}"
    );
    assert!(err.to_string().contains("rediss://"), "{err}");
}

fn target(node: &str, port: u16) -> PollTarget {
    PollTarget {
        key: NodeKey {
            env: "it".into(),
            cache: "c".into(),
            node: node.into(),
        },
        endpoint: local(port),
        connector: Arc::new(connector(None, None)),
    }
}

/// Receives events into `book` until `done` holds or the deadline passes.
async fn until(
    rx: &mut tokio::sync::mpsc::Receiver<StatsEvent>,
    book: &mut StatsBook,
    within: Duration,
    done: impl Fn(&StatsBook, &StatsEvent) -> bool,
) -> bool {
    let deadline = Instant::now() + within;
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline.into(), rx.recv()).await {
        book.apply(ev.clone());
        if done(book, &ev) {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_per_second_rise_under_load() {
    let server = server();
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let config = PollerConfig {
        interval: Duration::from_millis(300),
        max_backoff: Duration::from_secs(1),
    };
    let _poller = Poller::spawn(vec![target("n1", server.port())], config, tx);
    let mut book = StatsBook::new(100);
    let key = target("n1", server.port()).key;
    // Idle: two samples, so the rate is a real delta.
    assert!(
        until(&mut rx, &mut book, Duration::from_secs(5), |b, _| {
            b.get(&key).is_some_and(|e| e.history.len() >= 2)
        })
        .await
    );
    let idle = book
        .get(&key)
        .and_then(|e| e.latest.as_ref()?.ops_per_sec)
        .expect("idle rate");
    assert!(idle < 100.0, "idle node at {idle} ops/s");

    let mut load = admin(&server, None).await;
    let loader = tokio::spawn(async move {
        for i in 0u64.. {
            let mut pipe = redis::pipe();
            for j in 0..100 {
                pipe.cmd("SET")
                    .arg(format!("load:{}", i * 100 + j))
                    .arg(j)
                    .ignore();
            }
            if pipe.query_async::<()>(load.raw()).await.is_err() {
                return;
            }
        }
    });
    let rose = until(&mut rx, &mut book, Duration::from_secs(10), |b, _| {
        b.get(&key)
            .and_then(|e| e.latest.as_ref()?.ops_per_sec)
            .is_some_and(|r| r > 1000.0)
    })
    .await;
    loader.abort();
    assert!(
        rose,
        "ops/s never passed 1000 under load: {:?}",
        book.get(&key).map(|e| &e.latest)
    );
    let entry = book.get(&key).expect("entry");
    assert!(entry.latest.as_ref().is_some_and(|s| s.keys > 0));
    assert!(
        entry
            .latest
            .as_ref()
            .and_then(|s| s.net_in_bytes_per_sec)
            .is_some_and(|v| v > 0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_is_down_with_the_reason_while_the_other_keeps_updating() {
    let mut doomed = server();
    let healthy = server();
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let interval = Duration::from_millis(300);
    let _poller = Poller::spawn(
        vec![
            target("doomed", doomed.port()),
            target("healthy", healthy.port()),
        ],
        PollerConfig {
            interval,
            max_backoff: Duration::from_secs(2),
        },
        tx,
    );
    let mut book = StatsBook::new(100);
    let doomed_key = target("doomed", doomed.port()).key;
    let healthy_key = target("healthy", healthy.port()).key;
    assert!(
        until(&mut rx, &mut book, Duration::from_secs(5), |b, _| {
            b.get(&doomed_key).is_some_and(|e| e.status.is_up())
                && b.get(&healthy_key).is_some_and(|e| e.status.is_up())
        })
        .await
    );

    doomed.kill();
    let killed_at = Instant::now();
    assert!(
        until(&mut rx, &mut book, Duration::from_secs(5), |b, _| {
            b.get(&doomed_key)
                .is_some_and(|e| e.status.label() == "down")
        })
        .await,
        "the killed node was never marked down"
    );
    assert!(
        killed_at.elapsed() <= interval * 2 + Duration::from_millis(500),
        "marked down after {:?}",
        killed_at.elapsed()
    );
    let reason = book
        .get(&doomed_key)
        .and_then(|e| e.status.reason())
        .unwrap_or_default()
        .to_string();
    assert!(
        reason.contains("tcp") || reason.contains("refused"),
        "{reason}"
    );

    // The healthy node keeps sending samples after the other went down.
    let before = book.get(&healthy_key).map_or(0, |e| e.history.len());
    assert!(
        until(&mut rx, &mut book, Duration::from_secs(3), |b, _| {
            b.get(&healthy_key)
                .is_some_and(|e| e.history.len() >= before + 2)
        })
        .await
    );
    assert!(book.get(&healthy_key).is_some_and(|e| e.status.is_up()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_key_names_in_the_slowlog_are_escaped() {
    let server = start(ServerSpec::new().args(["--slowlog-log-slower-than", "0"]));
    let mut conn = admin(&server, None).await;
    let hostile: &[u8] = b"evil\x1b[2J\x1b]0;owned\x07\xe2\x80\xaegpj.exe\r\n\xff";
    let _: () = conn
        .query(redis::cmd("SET").arg(hostile).arg("v"))
        .await
        .expect("set hostile key");
    let entries = fetch_slowlog(&mut conn, 10).await.expect("slowlog");
    let set = entries
        .iter()
        .find(|e| {
            e.args
                .first()
                .is_some_and(|a| a.eq_ignore_ascii_case(b"set"))
        })
        .expect("the SET is in the slowlog");
    let line = set.command_line(200);
    assert!(
        line.contains("evil\\x1b[2J\\x1b]0;owned\\x07\\u{202e}gpj.exe\\r\\n\\xff"),
        "{line}"
    );
    assert!(
        line.chars().all(|c| !cachedeck::escape::is_unsafe(c)),
        "{line:?}"
    );
    assert!(set.duration_micros < 10_000_000);
}

#[tokio::test]
async fn server_errors_carry_their_code_and_the_link_survives() {
    let server = server();
    let mut conn = admin(&server, None).await;
    let _: () = conn
        .query(redis::cmd("SET").arg("k").arg("v"))
        .await
        .expect("set");
    let err = conn
        .query::<i64>(redis::cmd("LPUSH").arg("k").arg("x"))
        .await
        .expect_err("wrong type");
    assert_eq!(err.layer, Layer::Server, "{err}");
    assert_eq!(err.code.as_deref(), Some("WRONGTYPE"), "{err:?}");
    // A server error is an answer: the same connection keeps working.
    assert!(conn.info().await.is_ok());
}

/// Write tracking on a replica names the keys its replication stream writes (and only keys
/// the sample can hold), once `written` has caught up with the node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_tracking_on_a_replica_names_replicated_writes() {
    use cachedeck::snapshot::manifest::key_hash;
    use cachedeck::snapshot::tracking::Tracker;
    let primary = server();
    let replica =
        start(ServerSpec::new().args(["--replicaof", "127.0.0.1", &primary.port().to_string()]));
    let c = connector(None, None);
    let mut p = c.connect(&local(primary.port())).await.expect("primary");
    let _: () = p
        .query(redis::cmd("SET").arg("before").arg("1"))
        .await
        .expect("SET");
    // Only keys whose hash is at most the cut-off are kept: pick one of each side.
    let keys: Vec<String> = (0..40).map(|i| format!("order:{i}:total")).collect();
    let cutoff = u64::MAX / 2;
    let kept: Vec<&String> = keys
        .iter()
        .filter(|k| key_hash(k.as_bytes()) <= cutoff)
        .collect();
    assert!(!kept.is_empty() && kept.len() < keys.len());
    let mut tracker = Tracker::start(&c, &local(replica.port()), cutoff)
        .await
        .expect("tracking on the replica");
    for k in &keys {
        let _: () = p
            .query(redis::cmd("SET").arg(k).arg("v"))
            .await
            .expect("SET");
    }
    let _: i64 = p
        .query(redis::cmd("WAIT").arg(1).arg(5000))
        .await
        .expect("WAIT");
    let written = tracker
        .written()
        .await
        .expect("written")
        .expect("known (no flush, no drop)");
    let mut got: Vec<String> = written
        .iter()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    got.sort();
    let mut want: Vec<String> = kept.iter().map(|k| k.to_string()).collect();
    want.sort();
    assert_eq!(got, want, "the kept keys written after tracking began");
    // A flush: every key may have changed, which `written` says by knowing nothing.
    let _: () = p.query(&redis::cmd("FLUSHALL")).await.expect("FLUSHALL");
    let _: i64 = p
        .query(redis::cmd("WAIT").arg(1).arg(5000))
        .await
        .expect("WAIT");
    assert_eq!(tracker.written().await.expect("written"), None);
}

/// The keyspace walk reads SCAN replies in place: through TLS and as an ACL user it returns
/// exactly the keys under the cut-off (binary and CRLF names included, each once), a wrong
/// password is an auth error without the password, and a peer that does not speak RESP is a
/// protocol error, not a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keyspace_walk_picks_exactly_the_keys_under_the_cutoff() {
    use cachedeck::snapshot::manifest::{key_hash, pick};
    let server = start(ServerSpec::new().config_line("requirepass admin-pw-1234"));
    let mut adm = admin(&server, Some("admin-pw-1234")).await;
    add_app_user(&mut adm).await;
    let mut keys: Vec<Vec<u8>> = (0..12_000)
        .map(|i| format!("order:{i}:total").into_bytes())
        .collect();
    keys.push(b"crlf\r\n*2\r\n$4\r\nkey".to_vec());
    keys.push(vec![0, 255, 13, 10, 36, 45, 49]);
    for chunk in keys.chunks(1000) {
        let mut p = redis::pipe();
        for k in chunk {
            p.cmd("SET").arg(k).arg("v").ignore();
        }
        let _: () = p.query_async(adm.raw()).await.expect("load the keys");
    }
    let _: () = adm
        .query(redis::cmd("SELECT").arg(3))
        .await
        .expect("SELECT 3");
    let _: () = adm
        .query(redis::cmd("SET").arg("elsewhere").arg("v"))
        .await
        .expect("a key in db 3");

    let proxy = TlsProxy::start(server.port()).await;
    let ca = proxy.ca_file.to_str().expect("utf-8 path");
    let auth = Auth::new(
        Some("app".into()),
        Some(SecretString::from("app-s3cret-pw".to_string())),
    );
    let tls = Connector::new(auth, true, Some(ca), options()).expect("connector");
    let endpoint = Endpoint::new("localhost", proxy.port, true);
    let mut walk = tls.connect_raw(&endpoint).await.expect("raw connection");
    let mut seen = 0usize;
    let mut all = pick(&mut walk, 0, u64::MAX, &mut |n| seen += n)
        .await
        .expect("walk everything");
    keys.sort();
    all.sort();
    assert_eq!(all, keys, "every key once, byte for byte");
    assert!(seen >= keys.len(), "progress counts every name: {seen}");
    let cutoff = u64::MAX / 16;
    let want: Vec<Vec<u8>> = keys
        .iter()
        .filter(|k| key_hash(k) <= cutoff)
        .cloned()
        .collect();
    assert!(
        want.len() > 100 && want.len() < keys.len() / 4,
        "{}",
        want.len()
    );
    let got = pick(&mut walk, 0, cutoff, &mut |_| {})
        .await
        .expect("walk with a cut-off");
    assert_eq!(got, want, "the keys under the cut-off, sorted");
    let other = pick(&mut walk, 3, u64::MAX, &mut |_| {})
        .await
        .expect("walk db 3");
    assert_eq!(other, vec![b"elsewhere".to_vec()]);

    let wrong = Auth::new(
        Some("app".into()),
        Some(SecretString::from("wrong-Pa55word-xyz".to_string())),
    );
    let err = Connector::new(wrong, true, Some(ca), options())
        .expect("connector")
        .connect_raw(&endpoint)
        .await
        .err()
        .expect("a wrong password fails");
    assert_eq!(err.layer, Layer::Auth, "{err}");
    assert!(
        !format!("{err} {err:?}").contains("wrong-Pa55word-xyz"),
        "{err}"
    );

    // Something that answers every line with text that is not RESP.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
    });
    let started = Instant::now();
    let err = connector(None, None)
        .connect_raw(&local(port))
        .await
        .err()
        .expect("not RESP");
    assert!(
        matches!(err.layer, Layer::Protocol | Layer::Timeout),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}
