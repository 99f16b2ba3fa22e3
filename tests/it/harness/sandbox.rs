//! An isolated sandbox for one test: its own temp dir (CACHEDECK_SANDBOX_DIR), started with
//! the real `cachedeck sandbox up`, taken down (and checked gone) on drop.

#![allow(dead_code, clippy::expect_used)]

use cachedeck::config::{EnvConfig, Settings};
use cachedeck::domain::{Cache, Protection, ProviderKind};
use cachedeck::sandbox::SandboxControlPlane;
use cachedeck::sandbox::params::ParamStore;
use cachedeck::sandbox::state::State;
use cachedeck::valkey::connect::{ConnectOptions, Connector};
use std::path::{Path, PathBuf};

/// A running sandbox in a temp dir.
pub struct Sandbox {
    home: tempfile::TempDir,
    pub stdout: String,
}

/// `cachedeck` with every directory inside `home` and nothing reaching beyond loopback.
pub fn cachedeck(home: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("cachedeck").expect("cachedeck binary");
    cmd.env("CACHEDECK_SANDBOX_DIR", home.join("sandbox"))
        .env("CACHEDECK_STATE_DIR", home.join("state"))
        .env("CACHEDECK_CONFIG_DIR", home.join("config"))
        .env("AWS_CONFIG_FILE", home.join("aws-config"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .timeout(std::time::Duration::from_secs(120));
    cmd
}

impl Sandbox {
    /// Runs `cachedeck sandbox up --keys <keys>` and fails the test if it fails.
    pub fn up(keys: u64) -> Sandbox {
        let home = tempfile::tempdir().expect("tempdir");
        let out = cachedeck(home.path())
            .args(["sandbox", "up", "--keys", &keys.to_string()])
            .output()
            .expect("run sandbox up");
        let sandbox = Sandbox {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            home,
        };
        assert!(
            out.status.success(),
            "sandbox up failed: {}{}",
            sandbox.stdout,
            String::from_utf8_lossy(&out.stderr)
        );
        sandbox
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    pub fn dir(&self) -> PathBuf {
        self.home.path().join("sandbox")
    }

    pub fn state(&self) -> State {
        State::load(&self.dir())
            .expect("read state")
            .expect("sandbox is up")
    }

    pub fn params(&self) -> ParamStore {
        ParamStore::new(&self.dir())
    }

    /// The control plane of `env` (`sandbox-dev` or `sandbox-prod`).
    pub fn plane(&self, env: &str) -> SandboxControlPlane {
        let protection = if env == "sandbox-dev" {
            Protection::Open
        } else {
            Protection::Confirm
        };
        SandboxControlPlane::open_at(
            &self.dir(),
            env,
            &EnvConfig::implied(ProviderKind::Sandbox, protection),
            &Settings::default(),
        )
        .expect("open sandbox control plane")
    }

    /// `cache` of `env` with the roles the control plane does not report (cluster mode)
    /// learned from its nodes, as every runbook step and view gets it.
    pub async fn with_roles(&self, env: &str, mut cache: Cache) -> Cache {
        let plane = self.plane(env);
        let connector = Connector::for_cache(&cache, Some(&plane), ConnectOptions::default())
            .await
            .expect("connector");
        cachedeck::valkey::roles::learn(&mut cache, &connector).await;
        cache
    }

    /// Waits until `env`'s event log has an event whose message contains `text` (a
    /// TestFailover is carried out after the call returns, as on ElastiCache).
    pub async fn wait_for_event(&self, env: &str, text: &str, timeout: std::time::Duration) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let events = cachedeck::sandbox::events::read(&self.dir(), env).expect("events");
            if events.iter().any(|e| e.message.contains(text)) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no event `{text}` in {env} within {timeout:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// `cachedeck` pointed at this sandbox.
    pub fn cachedeck(&self) -> assert_cmd::Command {
        cachedeck(self.home())
    }

    /// Runs `cachedeck sandbox down`; returns its stdout.
    pub fn down(&self) -> String {
        let out = self
            .cachedeck()
            .args(["sandbox", "down"])
            .output()
            .expect("run sandbox down");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if !self.dir().join("state.json").exists() {
            return;
        }
        // The library's own `down`, on a thread with its own runtime (Drop may run inside a
        // test's runtime), so cleanup never depends on the binary.
        let dir = self.dir();
        let stopped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime for sandbox down");
            runtime.block_on(cachedeck::sandbox::down(&dir))
        })
        .join();
        if !matches!(stopped, Ok(Ok(_))) && !std::thread::panicking() {
            panic!(
                "sandbox down failed in {}: {stopped:?}",
                self.dir().display()
            );
        }
    }
}
