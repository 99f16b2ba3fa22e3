//! The real binary in a real terminal (tmux) against an isolated sandbox: navigate env →
//! cache, watch ops/s rise under load, run `health-check` from the runbook picker, kill a
//! replica and see it marked down within two poll intervals while the UI keeps answering keys.

use cachedeck::config::Settings;
use cachedeck::controlplane::ControlPlane;
use cachedeck::domain::{Cache, NodeRole};
use cachedeck::sandbox::SandboxControlPlane;
use cachedeck::valkey::connect::{ConnectOptions, Connector};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// One tmux session running a command; killed on drop.
pub struct Tmux {
    name: String,
}

impl Tmux {
    /// Starts `program` in a detached `width`×`height` session with `envs` set. When it
    /// exits, its exit code and the terminal modes (`stty -a`) go to `report`.
    pub fn start(
        program: &Path,
        envs: &[(&str, &str)],
        width: u16,
        height: u16,
        report: &Path,
    ) -> Tmux {
        let name = format!(
            "cachedeck-e2e-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        );
        let mut line = String::from("env");
        for (k, v) in envs {
            line.push_str(&format!(" {k}='{v}'"));
        }
        line.push_str(&format!(
            " '{}'; echo \"exit=$?\" > '{r}'; stty -a >> '{r}'; sleep 30",
            program.display(),
            r = report.display()
        ));
        let status = Command::new("tmux")
            .args(["new-session", "-d", "-s", &name])
            .args(["-x", &width.to_string(), "-y", &height.to_string()])
            .arg(line)
            .status()
            .expect("tmux runs (apt-get install tmux)");
        assert!(status.success(), "tmux new-session failed");
        Tmux { name }
    }

    pub fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Sends tmux key names (`Enter`, `Escape`, `j`, …).
    pub fn keys(&self, keys: &[&str]) {
        let status = Command::new("tmux")
            .args(["send-keys", "-t", &self.name])
            .args(keys)
            .status()
            .expect("tmux send-keys");
        assert!(status.success());
    }

    /// Polls the screen until `pred` holds; returns it and how long it took.
    pub fn wait_for(
        &self,
        what: &str,
        within: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> (String, Duration) {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if pred(&screen) {
                return (screen, start.elapsed());
            }
            assert!(
                start.elapsed() < within,
                "waited {within:?} for {what}; the screen is:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .status();
    }
}

/// An isolated sandbox in a temp dir, taken down on drop.
struct Sandbox {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Sandbox {
    fn up(bin: &Path) -> Sandbox {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = Command::new(bin)
            .args(["sandbox", "up", "--keys", "2000"])
            .env("CACHEDECK_SANDBOX_DIR", dir.path())
            .env("CACHEDECK_STATE_DIR", dir.path())
            .env_remove("CACHEDECK_CONFIG")
            .output()
            .expect("run cachedeck sandbox up");
        assert!(
            out.status.success(),
            "sandbox up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Sandbox {
            dir,
            bin: bin.to_path_buf(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = Command::new(&self.bin)
            .args(["sandbox", "down"])
            .env("CACHEDECK_SANDBOX_DIR", self.dir.path())
            .env("CACHEDECK_STATE_DIR", self.dir.path())
            .output();
    }
}

/// The figure after `label ` on the screen (`ops/s 1.2k` → 1200).
fn figure(screen: &str, label: &str) -> Option<f64> {
    let at = screen.find(label)? + label.len();
    let word: String = screen[at..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == 'k' || *c == 'M')
        .collect();
    let (num, mult) = match word.chars().last()? {
        'k' => (&word[..word.len() - 1], 1e3),
        'M' => (&word[..word.len() - 1], 1e6),
        _ => (word.as_str(), 1.0),
    };
    num.parse::<f64>().ok().map(|v| v * mult)
}

/// The line of the nodes table showing `node`.
fn node_line<'a>(screen: &'a str, node: &str) -> Option<&'a str> {
    screen
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(node))
}

async fn orders(dir: &Path) -> (std::sync::Arc<dyn ControlPlane>, Cache) {
    let envs = cachedeck::sandbox::environments_in(dir);
    let cfg = envs.get("sandbox-dev").expect("sandbox-dev is up");
    let plane = SandboxControlPlane::open_at(dir, "sandbox-dev", cfg, &Settings::default())
        .expect("sandbox control plane");
    let plane: std::sync::Arc<dyn ControlPlane> = std::sync::Arc::new(plane);
    let found = plane.discover().await.expect("discover sandbox-dev");
    let cache = found
        .caches
        .into_iter()
        .find(|c| c.name == "orders")
        .expect("orders in sandbox-dev");
    (plane, cache)
}

/// Writes as fast as one pipelined connection allows until `stop` is set.
async fn load(
    plane: std::sync::Arc<dyn ControlPlane>,
    cache: Cache,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let connector = Connector::for_cache(&cache, Some(plane.as_ref()), ConnectOptions::default())
        .await
        .expect("connector for orders");
    // Through the primary endpoint (TLS, following the primary), as applications write.
    let endpoint = cache
        .endpoint
        .clone()
        .expect("orders has a primary endpoint");
    let mut conn = connector
        .connect(&endpoint)
        .await
        .expect("connect to the primary endpoint");
    let mut i = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let mut pipe = redis::pipe();
        for _ in 0..200 {
            i += 1;
            pipe.set(format!("e2e:load:{}", i % 1000), i).ignore();
        }
        let _ = pipe.query_async::<()>(conn.raw()).await;
    }
}

#[test]
fn tui_e2e_navigates_sees_load_and_a_replica_going_down() {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_cachedeck"));
    let sandbox = Sandbox::up(&bin);
    let dir = sandbox.path().display().to_string();
    let home = tempfile::tempdir().expect("home");
    let home_s = home.path().display().to_string();
    let report = home.path().join("after-exit");
    let tmux = Tmux::start(
        &bin,
        &[
            ("CACHEDECK_SANDBOX_DIR", &dir),
            ("CACHEDECK_STATE_DIR", &dir),
            ("CACHEDECK_CONFIG_DIR", &home_s),
            ("HOME", &home_s),
            ("AWS_CONFIG_FILE", "/nonexistent"),
            ("TERM", "xterm-256color"),
        ],
        100,
        30,
        &report,
    );

    // environments → sandbox-dev
    let (screen, _) = tmux.wait_for("the environments", Duration::from_secs(20), |s| {
        s.contains("sandbox-dev") && s.contains("sandbox-prod")
    });
    let rows: Vec<&str> = screen.lines().filter(|l| l.contains("sandbox-")).collect();
    if rows.first().is_some_and(|l| l.contains("sandbox-prod")) {
        tmux.keys(&["j"]);
    }
    tmux.keys(&[":"]);
    tmux.keys(&["caches sandbox-dev", "Enter"]);
    tmux.wait_for("the caches of sandbox-dev", Duration::from_secs(20), |s| {
        s.contains("caches of sandbox-dev") && s.contains("orders")
    });
    // / filter, then Enter on the only row left.
    tmux.keys(&["/", "orders", "Enter", "Enter"]);
    let (screen, _) = tmux.wait_for(
        "the orders cache with live figures",
        Duration::from_secs(20),
        |s| s.contains("sandbox-dev › orders") && figure(s, "ops/s").is_some(),
    );
    let idle = figure(&screen, "ops/s").expect("ops/s shown");

    // Load → ops/s rises.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (plane, cache) = rt.block_on(orders(sandbox.path()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loader = rt.spawn(load(plane, cache.clone(), stop.clone()));
    let (busy, took) = tmux.wait_for("ops/s to rise under load", Duration::from_secs(10), |s| {
        figure(s, "ops/s").is_some_and(|v| v > idle + 1000.0)
    });
    eprintln!(
        "ops/s idle {idle}, under load {:?} after {took:?}",
        figure(&busy, "ops/s")
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = rt.block_on(loader);

    // x → picker → health-check → its form → Enter runs it through the engine to the end.
    tmux.keys(&["x"]);
    let (screen, _) = tmux.wait_for("the runbook picker", Duration::from_secs(10), |s| {
        s.contains("run a runbook on orders") && s.contains("health-check")
    });
    let rows: Vec<&str> = screen
        .lines()
        .skip_while(|l| !l.contains("RUNBOOK"))
        .skip(1)
        .collect();
    let index = rows
        .iter()
        .position(|l| l.contains("health-check"))
        .expect("health-check in the picker");
    for _ in 0..index {
        tmux.keys(&["j"]);
    }
    tmux.keys(&["Enter"]);
    tmux.wait_for("the health-check form", Duration::from_secs(5), |s| {
        s.contains("health-check on orders") && s.contains("max_latency_ms")
    });
    let started = Instant::now();
    tmux.keys(&["Enter"]);
    let (screen, _) = tmux.wait_for("the run to succeed", Duration::from_secs(30), |s| {
        s.contains("run succeeded")
    });
    eprintln!("health-check ran in the TUI in {:?}", started.elapsed());
    for step in ["ping", "info", "verdict"] {
        assert!(
            screen
                .lines()
                .any(|l| l.contains(" ok ") && l.contains(step)),
            "step {step} not ok:\n{screen}"
        );
    }
    tmux.keys(&["Escape"]);
    tmux.wait_for("the cache view again", Duration::from_secs(5), |s| {
        !s.contains("run succeeded") && figure(s, "ops/s").is_some()
    });

    // Kill a replica → marked down within two poll intervals (1 s each).
    let replica = cache
        .nodes()
        .find(|n| n.role == NodeRole::Replica)
        .expect("orders has a replica")
        .clone();
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(sandbox.path().join("state.json")).expect("sandbox state"),
    )
    .expect("state json");
    let pid = state["caches"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["shards"].as_array().into_iter().flatten())
        .flat_map(|s| s["nodes"].as_array().into_iter().flatten())
        .find(|n| n["id"] == replica.id.as_str())
        .and_then(|n| n["pid"].as_i64())
        .expect("the replica's pid in the state file");
    let killed = Instant::now();
    let status = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let (screen, _) = tmux.wait_for("the replica marked down", Duration::from_secs(5), |s| {
        node_line(s, &replica.id).is_some_and(|l| l.contains("down"))
    });
    let seen = killed.elapsed();
    eprintln!("replica {} marked down {seen:?} after the kill", replica.id);
    assert!(
        seen <= Duration::from_millis(2 * 1000 + 500),
        "took {seen:?}, more than two poll intervals:\n{screen}"
    );

    // The UI still answers keys.
    let asked = Instant::now();
    tmux.keys(&["?"]);
    tmux.wait_for("the help overlay", Duration::from_secs(2), |s| {
        s.contains("keys — Esc or ? to close")
    });
    tmux.keys(&["Escape"]);
    tmux.wait_for("help closed", Duration::from_secs(2), |s| {
        !s.contains("keys — Esc or ? to close")
    });
    eprintln!("help answered in {:?}", asked.elapsed());

    // SIGHUP (the SSH link dropped) ends the TUI and gives the terminal back: cooked mode,
    // echo on, main screen.
    let shell = Command::new("tmux")
        .args(["list-panes", "-t", &tmux.name, "-F", "#{pane_pid}"])
        .output()
        .expect("tmux list-panes");
    let shell = String::from_utf8_lossy(&shell.stdout).trim().to_string();
    let child = Command::new("pgrep")
        .args(["-P", &shell])
        .output()
        .expect("pgrep");
    let child = String::from_utf8_lossy(&child.stdout).trim().to_string();
    assert!(
        !child.is_empty(),
        "the TUI runs under the pane's shell {shell}"
    );
    let status = Command::new("kill")
        .args(["-HUP", &child])
        .status()
        .expect("kill -HUP");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    let after = loop {
        if let Some(text) = std::fs::read_to_string(&report)
            .ok()
            .filter(|t| t.contains("speed"))
        {
            break text;
        }
        assert!(Instant::now() < deadline, "the TUI did not exit on SIGHUP");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(after.starts_with("exit=0"), "{after}");
    assert!(
        after.contains(" icanon") && after.contains(" echo"),
        "terminal left in raw mode: {after}"
    );
    let (screen, _) = tmux.wait_for("the main screen back", Duration::from_secs(2), |s| {
        !s.contains("cachedeck │")
    });
    assert!(!screen.contains("orders"), "{screen}");
}

/// An environment whose AWS endpoint never answers (a black-holed VPC endpoint, a dead
/// proxy): the TUI draws its first frame at once, says what it waits for, and `q` leaves
/// without waiting out the call deadline; the terminal is given back.
#[test]
fn tui_draws_at_once_and_quits_while_an_environment_hangs() {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_cachedeck"));
    let home = tempfile::tempdir().expect("temp dir");
    // Accepts connections and never answers.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let config = home.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[settings]\ncall_timeout = \"60s\"\n\n[environments.slow]\nprovider = \"aws\"\nregion = \"eu-west-1\"\nendpoint_url = \"http://127.0.0.1:{}\"\n",
            hung.local_addr().expect("addr").port()
        ),
    )
    .expect("write config");
    let report = home.path().join("report");
    let dir = home.path().display().to_string();
    let cfg = config.display().to_string();
    let tmux = Tmux::start(
        &bin,
        &[
            ("CACHEDECK_CONFIG", cfg.as_str()),
            ("CACHEDECK_STATE_DIR", dir.as_str()),
            ("CACHEDECK_SANDBOX_DIR", dir.as_str()),
            ("AWS_ACCESS_KEY_ID", "AKIDLOADING"),
            ("AWS_SECRET_ACCESS_KEY", "not-a-secret"),
        ],
        100,
        30,
        &report,
    );
    let (_, took) = tmux.wait_for("the loading frame", Duration::from_secs(10), |s| {
        s.contains("cachedeck") && s.contains("loading environments")
    });
    eprintln!("loading frame after {took:?}");
    let asked = Instant::now();
    tmux.keys(&["q"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !report.exists() {
        assert!(
            Instant::now() < deadline,
            "q did not leave while loading; the screen is:\n{}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    let text = std::fs::read_to_string(&report).expect("report");
    assert!(text.starts_with("exit=0"), "{text}");
    assert!(text.contains(" icanon") && text.contains(" echo"), "{text}");
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "left after {:?}, not at once",
        asked.elapsed()
    );
    drop(hung);
}
