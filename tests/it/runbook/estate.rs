//! A small estate for runbook tests: one real valkey-server reachable as cache `orders` in
//! environments `dev` (open), `prod` (confirm) and `ro` (read-only), whose control plane is
//! the AWS one pointed at a moto server (SSM holds the run locks).

use crate::harness::moto::Moto;
use crate::harness::valkey::{raw_command, server};
use assert_cmd::Command;
use cachedeck::valkey::server::ValkeyServer;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The headless run most tests make: the marker round trip on `dev/orders`, agreed to.
pub const MARKER_RUN: [&str; 7] = [
    "run",
    "marker-roundtrip",
    "--env",
    "dev",
    "--cache",
    "orders",
    "--yes",
];

pub struct RunbookEstate {
    pub home: tempfile::TempDir,
    pub server: ValkeyServer,
    /// The control plane's AWS endpoint (SSM holds the locks).
    pub moto: Moto,
    pub config: PathBuf,
}

impl RunbookEstate {
    /// `None` (the test is skipped, loudly) when moto is not installed outside CI.
    pub fn start() -> Option<RunbookEstate> {
        let moto = Moto::start()?;
        let server = server();
        let home = tempfile::tempdir().expect("tempdir");
        let mut text = String::new();
        for (env, protection) in [("dev", "open"), ("prod", "confirm"), ("ro", "read-only")] {
            text.push_str(&format!(
                r#"
[environments.{env}]
provider = "aws"
region = "eu-west-1"
endpoint_url = "{endpoint}"
protection = "{protection}"

[environments.{env}.discovery]
kinds = ["endpoint"]

[[environments.{env}.caches]]
name = "orders"
url = "redis://127.0.0.1:{port}"

[[environments.{env}.caches]]
name = "gone"
url = "redis://127.0.0.1:{closed}"
"#,
                endpoint = moto.endpoint,
                port = server.port(),
                closed = closed_port(),
            ));
        }
        let config = home.path().join("config.toml");
        std::fs::write(&config, text).expect("write config");
        Some(RunbookEstate {
            home,
            server,
            moto,
            config,
        })
    }

    pub fn state_dir(&self) -> PathBuf {
        self.home.path().join("state")
    }

    pub fn runs_dir(&self) -> PathBuf {
        self.state_dir().join("runs")
    }

    /// The binary with this estate's config, private dirs and moto credentials.
    /// `cachedeck` with this estate's config, state and environment.
    pub fn cmd(&self) -> Command {
        let mut cmd = Command::cargo_bin("cachedeck").expect("binary");
        self.configure(&mut cmd);
        cmd
    }

    /// The same as a std command (for runs the test kills).
    pub fn std_cmd(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("cachedeck"));
        cmd.env_clear();
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        cmd.arg("--config").arg(&self.config);
        cmd
    }

    fn env(&self) -> Vec<(&'static str, std::ffi::OsString)> {
        let home = self.home.path();
        vec![
            ("PATH", std::env::var_os("PATH").unwrap_or_default()),
            ("HOME", home.into()),
            ("USER", "oncall-tester".into()),
            ("CACHEDECK_CONFIG_DIR", home.join("config").into()),
            ("CACHEDECK_STATE_DIR", self.state_dir().into()),
            ("CACHEDECK_SANDBOX_DIR", home.join("sandbox").into()),
            ("AWS_CONFIG_FILE", home.join("aws-config").into()),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                home.join("aws-credentials").into(),
            ),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    fn configure(&self, cmd: &mut Command) {
        cmd.env_clear();
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        cmd.arg("--config")
            .arg(&self.config)
            .timeout(Duration::from_secs(120));
    }

    /// How many times the server executed `command` (INFO commandstats).
    pub fn calls(&self, command: &str) -> u64 {
        let stats = raw_command(self.server.port(), &["INFO", "commandstats"]);
        let prefix = format!("cmdstat_{command}:calls=");
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// Journal files present.
    pub fn journals(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.runs_dir())
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    }

    /// Polls until a journal line satisfies `pred`; returns the run id.
    pub fn wait_for_record(&self, what: &str, pred: impl Fn(&serde_json::Value) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            for path in self.journals() {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                for line in text.lines() {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
                        && pred(&v)
                    {
                        return v["run_id"].as_str().expect("run id").to_string();
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no journal record {what} within 60s");
    }

    /// Every record of a run.
    pub fn records(&self, run_id: &str) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.runs_dir().join(format!("{run_id}.jsonl")))
            .expect("journal exists");
        text.lines()
            .map(|l| serde_json::from_str(l).expect("journal line is JSON"))
            .collect()
    }
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Runs boto3 (moto's venv) against moto's SSM: `call` is the Python after `ssm.`.
pub fn ssm(moto: &Moto, call: &str) -> String {
    let script = format!(
        "import boto3,sys,json\nssm=boto3.client('ssm',endpoint_url=sys.argv[1],region_name='eu-west-1',aws_access_key_id='testing',aws_secret_access_key='testing')\nprint(json.dumps(ssm.{call},default=str))"
    );
    let out = std::process::Command::new(Moto::python())
        .arg("-c")
        .arg(script)
        .arg(&moto.endpoint)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "boto3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// stdout of a finished command as JSON, with stderr in the panic message.
pub fn json_out(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
