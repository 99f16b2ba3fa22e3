//! The connection matrix: each way a connection goes wrong gives a distinct one-line error
//! naming its layer and its cause, within the configured deadlines, and nothing hangs. Real
//! valkey-server processes for the protocol cases (NOAUTH, WRONGPASS, TLS to a plain port), a
//! TLS front (rustls, a certificate for 127.0.0.1 and localhost from a local CA) relaying to a
//! real server for plain-to-TLS, the wrong CA and the wrong host name, and a tiny loopback fake
//! server for what no real server does: accept and never answer, reset the connection in the
//! middle of a reply, answer with a 1 GB bulk string.
//! (An unknown host name is not tried: resolving it would send a query beyond loopback. A
//! TLS handshake nobody answers reads as TLS to a plain port: a plain server stays silent.
//! The 1 GB reply is refused after 1 MiB: the replies to a login and a PING are a few bytes.)

use super::summary;
use crate::harness::valkey::{ServerSpec, server, start};
use cachedeck::connectivity;
use cachedeck::domain::Endpoint;
use cachedeck::valkey::connect::{Auth, ConnectOptions, Connector};
use secrecy::SecretString;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const DEADLINE: Duration = Duration::from_millis(1500);

fn connector(password: Option<&str>, tls: bool) -> Connector {
    connector_ca(password, tls, None)
}

fn connector_ca(password: Option<&str>, tls: bool, ca: Option<&str>) -> Connector {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    Connector::new(
        Auth::new(None, password.map(|p| SecretString::from(p.to_string()))),
        tls,
        ca,
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

/// A TLS front on `host` (a loopback address) relaying to the plain server on `backend`, with
/// a certificate for 127.0.0.1 and localhost from a CA made in `dir`. Returns the port and
/// the CA file.
async fn tls_front(dir: &std::path::Path, host: &str, backend: u16) -> (u16, String) {
    let ca = cachedeck::sandbox::tls::generate(dir).expect("certificates");
    let acceptor = cachedeck::sandbox::tls::acceptor(dir).expect("acceptor");
    let listener = TcpListener::bind((host, 0)).await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let Ok(mut plain) = tokio::net::TcpStream::connect(("127.0.0.1", backend)).await
                else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (port, ca.display().to_string())
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
    let certs = tempfile::tempdir().expect("tempdir");
    let (tls_port, ca) = tls_front(&certs.path().join("a"), "127.0.0.1", plain.port()).await;
    // The same certificate served on another loopback address it does not name.
    let (other_port, other_ca) =
        tls_front(&certs.path().join("b"), "127.0.0.2", plain.port()).await;

    // The TLS front works for a client that trusts its CA, so its failures below are real.
    let fine = connectivity::check(
        &connector_ca(None, true, Some(&ca)),
        &Endpoint::new("127.0.0.1", tls_port, true),
        1,
    )
    .await;
    assert!(fine.ok, "{fine:?}");

    // (case, connector, host, port, tls, the layer, what its line must say)
    #[allow(clippy::type_complexity)]
    let cases: Vec<(&str, Connector, &str, u16, bool, &str, &[&str])> = vec![
        (
            "port nobody listens on",
            connector(None, false),
            "127.0.0.1",
            closed,
            false,
            "tcp",
            &["Connection refused", "nothing listens on that port"],
        ),
        (
            "TLS to a plain port",
            connector(None, true),
            "127.0.0.1",
            plain.port(),
            true,
            "tls",
            &[
                "no answer within 1.5 s during the tls handshake",
                "does not speak TLS",
            ],
        ),
        (
            "plain to a TLS port",
            connector(None, false),
            "127.0.0.1",
            tls_port,
            false,
            "auth",
            &["the endpoint answered with TLS: use rediss://"],
        ),
        (
            "a CA cachedeck does not trust",
            connector(None, true),
            "127.0.0.1",
            tls_port,
            true,
            "tls",
            &["UnknownIssuer", "set credentials.ca_file"],
        ),
        (
            "a certificate for another host",
            connector_ca(None, true, Some(&other_ca)),
            "127.0.0.2",
            other_port,
            true,
            "tls",
            &["certificate not valid for name", "does not name this host"],
        ),
        (
            "NOAUTH",
            connector(None, false),
            "127.0.0.1",
            locked.port(),
            false,
            "auth",
            &["NOAUTH", "the server requires AUTH"],
        ),
        (
            "WRONGPASS",
            connector(Some("matrix-wrong-pw-2b8"), false),
            "127.0.0.1",
            locked.port(),
            false,
            "auth",
            &["wrong user or password"],
        ),
        (
            "accepts, never answers",
            connector(None, false),
            "127.0.0.1",
            silent,
            false,
            "auth",
            &["no answer within 1.5 s during login", "sent nothing"],
        ),
        (
            "reset mid-reply",
            connector(None, false),
            "127.0.0.1",
            reset,
            false,
            "auth",
            &[
                "reset by peer (os error 104) after 17 bytes of a reply",
                "dropped the connection in the middle of a reply",
            ],
        ),
        (
            "a 1 GB bulk reply",
            connector(None, false),
            "127.0.0.1",
            huge,
            false,
            "auth",
            &[
                "more than 1 MiB came back in answer to the login and PING",
                "something other than Valkey/Redis",
            ],
        ),
    ];
    let mut seen: Vec<(String, String)> = Vec::new();
    for (case, connector, host, port, tls, layer, says) in &cases {
        let start = Instant::now();
        let report = tokio::time::timeout(
            Duration::from_secs(30),
            connectivity::check(connector, &Endpoint::new(*host, *port, *tls), 3),
        )
        .await
        .unwrap_or_else(|_| panic!("{case}: the check hung for 30 s"));
        let took = start.elapsed();
        assert!(!report.ok, "{case}: {report:?}");
        let failure = report.failure.as_ref().expect("a failure");
        let line = failure.to_string();
        assert_eq!(failure.layer, *layer, "{case}: {line}");
        for said in *says {
            assert!(line.contains(said), "{case}: {said:?} not in {line}");
        }
        if *case != "plain to a TLS port" {
            assert!(
                !line.contains("rediss://") || *case == "accepts, never answers",
                "{case}: no TLS mismatch here: {line}"
            );
        }
        assert!(
            !line.contains('\n') && !line.trim().is_empty(),
            "{case}: {line:?}"
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
