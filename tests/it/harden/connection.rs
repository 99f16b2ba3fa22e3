//! The connection matrix: each way a connection goes wrong gives a distinct one-line error
//! naming its layer, within the configured deadlines, and nothing hangs. Real valkey-server
//! processes for the protocol cases (NOAUTH, WRONGPASS, TLS to a plain port), a tiny
//! loopback fake server for what no real server does: accept and never answer, reset the
//! connection in the middle of a reply, answer with a 1 GB bulk string.
//! (An unknown host name is not tried: resolving it would send a query beyond loopback. A
//! TLS handshake nobody answers reads as TLS to a plain port: a plain server stays silent.)

use super::summary;
use crate::harness::valkey::{ServerSpec, server, start};
use cachedeck::connectivity::{self, ConnectivityReport};
use cachedeck::domain::Endpoint;
use cachedeck::valkey::connect::{Auth, ConnectOptions, Connector};
use secrecy::SecretString;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const DEADLINE: Duration = Duration::from_millis(1500);

fn connector(password: Option<&str>, tls: bool) -> Connector {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    Connector::new(
        Auth::new(None, password.map(|p| SecretString::from(p.to_string()))),
        tls,
        None,
        ConnectOptions {
            connect_timeout: DEADLINE,
            command_timeout: DEADLINE,
        },
    )
    .expect("connector")
}

/// What the fake server does with each connection.
#[derive(Clone, Copy, Debug)]
enum Fake {
    /// Reads, never writes.
    Silent,
    /// Starts a reply, then resets the connection (RST).
    ResetMidReply,
    /// Answers every command with a 1 GB bulk string, sent as fast as it is read.
    GigabyteBulk,
}

/// A loopback fake server; returns its port.
async fn fake(kind: Fake) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                match kind {
                    Fake::Silent => {
                        while let Ok(n) = stream.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                        }
                    }
                    Fake::ResetMidReply => {
                        let _ = stream.read(&mut buf).await;
                        let _ = stream.write_all(b"$100\r\npartial-rep").await;
                        let _ = stream.flush().await;
                        // A zero linger makes the close a reset (and never blocks).
                        #[allow(deprecated)]
                        let _ = stream.set_linger(Some(Duration::ZERO));
                        drop(stream);
                    }
                    Fake::GigabyteBulk => {
                        let _ = stream.read(&mut buf).await;
                        let total: u64 = 1 << 30;
                        if stream
                            .write_all(format!("${total}\r\n").as_bytes())
                            .await
                            .is_err()
                        {
                            return;
                        }
                        let chunk = vec![b'x'; 1 << 20];
                        for _ in 0..(total >> 20) {
                            if stream.write_all(&chunk).await.is_err() {
                                return;
                            }
                        }
                        let _ = stream.write_all(b"\r\n").await;
                    }
                }
            });
        }
    });
    port
}

/// One case: the check's report and how long it took.
async fn check(connector: &Connector, port: u16, tls: bool) -> (ConnectivityReport, Duration) {
    let start = Instant::now();
    let report = tokio::time::timeout(
        Duration::from_secs(30),
        connectivity::check(connector, &Endpoint::new("127.0.0.1", port, tls), 3),
    )
    .await
    .expect("the check hung for 30 s");
    (report, start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_connection_failure_is_one_line_naming_its_layer_in_time() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let plain = server();
    let locked = start(ServerSpec::new().args(["--requirepass", "matrix-right-pw-7c1"]));
    let silent = fake(Fake::Silent).await;
    let reset = fake(Fake::ResetMidReply).await;
    let huge = fake(Fake::GigabyteBulk).await;

    // (case, connector, port, tls, the layer it must name)
    let cases: Vec<(&str, Connector, u16, bool, &[&str])> = vec![
        (
            "port nobody listens on",
            connector(None, false),
            closed,
            false,
            &["tcp"],
        ),
        (
            "TLS to a plain port",
            connector(None, true),
            plain.port(),
            true,
            &["tls"],
        ),
        (
            "NOAUTH",
            connector(None, false),
            locked.port(),
            false,
            &["auth"],
        ),
        (
            "WRONGPASS",
            connector(Some("matrix-wrong-pw-2b8"), false),
            locked.port(),
            false,
            &["auth"],
        ),
        (
            "accepts, never answers",
            connector(None, false),
            silent,
            false,
            &["auth", "ping"],
        ),
        (
            "reset mid-reply",
            connector(None, false),
            reset,
            false,
            &["auth", "ping"],
        ),
        (
            "a 1 GB bulk reply",
            connector(None, false),
            huge,
            false,
            &["auth", "ping"],
        ),
    ];
    let mut seen: Vec<(String, String)> = Vec::new();
    for (case, connector, port, tls, layers) in &cases {
        let (report, took) = check(connector, *port, *tls).await;
        assert!(!report.ok, "{case}: {report:?}");
        let failure = report.failure.as_ref().expect("a failure");
        let line = failure.to_string();
        assert!(
            layers.contains(&failure.layer.as_str()),
            "{case}: layer {} not one of {layers:?}: {line}",
            failure.layer
        );
        assert!(
            !line.contains('\n') && !line.trim().is_empty(),
            "{case}: {line:?}"
        );
        assert!(
            failure.likely_cause.is_some() || !failure.detail.is_empty(),
            "{case}: no cause: {line}"
        );
        assert!(
            !line.contains("matrix-wrong-pw") && !line.contains("matrix-right-pw"),
            "{case}: {line}"
        );
        // Within the deadlines: connect and one command per layer, and some slack.
        assert!(took < DEADLINE * 4, "{case}: took {took:?}: {line}");
        seen.push((case.to_string(), line));
    }
    // Distinct: no two cases read the same, so the reader can tell them apart.
    for (i, (a, la)) in seen.iter().enumerate() {
        for (b, lb) in &seen[i + 1..] {
            assert_ne!(la, lb, "{a} and {b} give the same error");
        }
    }
    eprintln!("connection matrix:");
    for (case, line) in &seen {
        eprintln!("  {case}: {line}");
    }
    summary::add("connection.cases", seen.len() as u64);
}
