//! A moto server on a random 127.0.0.1 port, killed on drop; AWS itself is never reachable.
//!
//! `CACHEDECK_MOTO_SERVER` overrides the binary (default `.tools/venv/bin/moto_server`).
//! Without the binary the test is skipped with a loud message, unless `CI` is set: there,
//! absence is a failure.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long moto may take to start answering (it imports every service's models).
const STARTUP: Duration = Duration::from_secs(60);

pub struct Moto {
    child: Child,
    pub endpoint: String,
    pub port: u16,
}

impl Moto {
    /// Starts moto, or returns `None` (after saying so on stderr) when it is not installed.
    pub fn start() -> Option<Moto> {
        let binary = binary();
        if !binary.exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "moto_server not found at {} and CI is set; run scripts/setup-tools.sh",
                binary.display()
            );
            eprintln!(
                "\n!!! SKIPPING: moto_server not found at {} (set CACHEDECK_MOTO_SERVER or run scripts/setup-tools.sh)\n",
                binary.display()
            );
            return None;
        }
        let port = free_port();
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let mut moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
        };
        moto.wait_ready();
        Some(moto)
    }

    /// Polls until moto answers HTTP on its port. The child must still be running then:
    /// otherwise whatever answered is not our moto (the port was taken meanwhile).
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + STARTUP;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "moto_server exited during startup on port {}: {status}",
                    self.port
                );
            }
            if answers_http(self.port) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "moto_server did not answer on port {} within {STARTUP:?}",
            self.port
        );
    }

    /// The Python of moto's venv (has boto3), for fixture scripts.
    pub fn python() -> PathBuf {
        binary().with_file_name("python")
    }

    /// Runs a fixture script under tests/fixtures/aws with the endpoint as its argument and
    /// returns its stdout (JSON by convention).
    pub fn run_fixture(&self, script: &str) -> serde_json::Value {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/aws")
            .join(script);
        let out = Command::new(Self::python())
            .arg(&path)
            .arg(&self.endpoint)
            .output()
            .expect("fixture script runs");
        assert!(
            out.status.success(),
            "fixture {script} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("fixture prints JSON")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> PathBuf {
    match std::env::var_os("CACHEDECK_MOTO_SERVER") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/venv/bin/moto_server"),
    }
}

/// Whether an HTTP server answers a GET on the port with a status line.
fn answers_http(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request =
        format!("GET /moto-api/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}
