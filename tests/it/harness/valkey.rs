//! Real valkey-server processes for tests: random free loopback ports, killed on drop.

#![allow(dead_code, clippy::expect_used)]

pub use cachedeck::valkey::server::{ServerSpec, ValkeyServer};

/// Starts a plain server, or fails the test saying how to install one.
pub fn server() -> ValkeyServer {
    start(ServerSpec::new())
}

/// Starts a server from `spec`, or fails the test saying why.
pub fn start(spec: ServerSpec) -> ValkeyServer {
    match ValkeyServer::start(spec) {
        Ok(server) => server,
        Err(e) => panic!("failed to start valkey-server: {e}"),
    }
}

/// Sends one command over a raw connection and returns the raw RESP reply (small replies).
pub fn raw_command(port: u16, args: &[&str]) -> String {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to test server");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(3)))
        .expect("timeout");
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    stream.write_all(req.as_bytes()).expect("write");
    let mut buf = vec![0u8; 65536];
    let n = stream.read(&mut buf).expect("read");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// A one-shard Valkey cluster: a primary owning every slot and its replica, synced.
pub async fn cluster_pair() -> (ValkeyServer, ValkeyServer) {
    use cachedeck::sandbox::client::NodeAuth;
    use cachedeck::sandbox::cluster::{ShardPlan, form};
    use std::time::{Duration, Instant};
    let primary = start(ServerSpec::new().cluster());
    let replica = start(ServerSpec::new().cluster());
    form(
        &[ShardPlan {
            primary: primary.port(),
            replicas: vec![replica.port()],
        }],
        &NodeAuth::default(),
        Duration::from_secs(30),
    )
    .await
    .expect("form the cluster");
    let (p, r) = (primary.port(), replica.port());
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !raw_command(r, &["INFO", "replication"]).contains("master_link_status:up")
            || !raw_command(p, &["INFO", "replication"]).contains("state=online")
        {
            assert!(Instant::now() < deadline, "replica never synced");
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .expect("sync");
    (primary, replica)
}
