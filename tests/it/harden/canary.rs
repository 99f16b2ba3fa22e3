//! Canary secrets: the sandbox's AUTH tokens, ACL passwords and the passwords inside its
//! URL parameters are recognisable strings; none may appear in anything cachedeck writes or
//! shows — stdout, stderr, trace logs, journals, dry-run plans, the TUI's screen — nor in
//! the argv of cachedeck or any process it started (`/proc/<pid>/cmdline`).

use super::kill::{as_run, hooked};
use super::summary;
use crate::harness::sandbox::Sandbox;
use crate::tui_e2e::Tmux;
use cachedeck::controlplane::ParameterType;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The secrets of one sandbox and what was found.
pub struct Canary {
    secrets: Vec<String>,
    hits: Vec<String>,
    scanned: u64,
    home: PathBuf,
    pids: Vec<i32>,
}

impl Canary {
    /// Every secret of the sandbox: SecureString parameters and passwords inside URLs.
    pub fn of(sb: &Sandbox) -> Canary {
        let mut secrets = Vec::new();
        for p in sb.params().by_path("/").expect("read the parameter store") {
            if p.name.starts_with("/cachedeck/") {
                continue;
            }
            let value = p.value.expose().to_string();
            if let Ok(url) = url::Url::parse(&value)
                && let Some(pw) = url.password()
            {
                secrets.push(pw.to_string());
                if let Ok(decoded) = urlencoding_decode(pw) {
                    secrets.push(decoded);
                }
            }
            if p.kind == ParameterType::SecureString {
                secrets.push(value);
            }
        }
        secrets.retain(|s| s.len() >= 8);
        secrets.sort();
        secrets.dedup();
        assert!(
            !secrets.is_empty(),
            "the sandbox holds no secret to look for; the canary would prove nothing"
        );
        let state = sb.state();
        let mut pids: Vec<i32> = state
            .caches
            .iter()
            .flat_map(|c| c.shards.iter().flat_map(|s| s.nodes.iter().map(|n| n.pid)))
            .collect();
        pids.extend(state.daemon.as_ref().map(|d| d.pid));
        Canary {
            secrets,
            hits: Vec::new(),
            scanned: 0,
            home: sb.home().to_path_buf(),
            pids,
        }
    }

    /// Looks for every secret in `bytes`.
    pub fn scan_bytes(&mut self, what: &str, bytes: &[u8]) {
        self.scanned += 1;
        for s in &self.secrets {
            if bytes.windows(s.len()).any(|w| w == s.as_bytes()) {
                self.hits
                    .push(format!("{what} holds a secret ({} chars)", s.len()));
            }
        }
    }

    /// The argv of `pid` and of every process below it.
    pub fn scan_proc(&mut self, pid: u32) {
        let mut stack = vec![pid];
        while let Some(p) = stack.pop() {
            if let Ok(argv) = std::fs::read(format!("/proc/{p}/cmdline")) {
                self.scan_bytes(&format!("argv of process {p}"), &argv);
            }
            if let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) {
                for t in tasks.flatten() {
                    let children =
                        std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
                    stack.extend(
                        children
                            .split_whitespace()
                            .filter_map(|c| c.parse::<u32>().ok()),
                    );
                }
            }
        }
    }

    /// A finished run's stdout (`out`) and stderr (`out` with extension `err`).
    pub fn scan_run(&mut self, _sb: &Sandbox, out: &Path) {
        for path in [out.to_path_buf(), out.with_extension("err")] {
            let bytes = std::fs::read(&path).unwrap_or_default();
            self.scan_bytes(&path.display().to_string(), &bytes);
        }
    }

    /// Scans the files cachedeck wrote (logs, journals, the endpoint daemon's log) and the
    /// argv of the sandbox's processes, then fails on any hit. Returns the outputs scanned.
    pub fn finish(&mut self, what: &str) -> u64 {
        let mut files = Vec::new();
        walk(&self.home.join("state"), &mut files);
        files.push(self.home.join("sandbox").join("daemon.log"));
        for f in files {
            if let Ok(bytes) = std::fs::read(&f) {
                self.scan_bytes(&f.display().to_string(), &bytes);
            }
        }
        for pid in self.pids.clone() {
            self.scan_proc(pid as u32);
        }
        assert!(
            self.hits.is_empty(),
            "{what}: secrets leaked: {:#?}",
            self.hits
        );
        std::mem::take(&mut self.scanned)
    }
}

/// Percent-decoding of a URL's password.
fn urlencoding_decode(s: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Every runbook of the catalog on every cache holding a secret (AUTH token over TLS, ACL
/// user, URL parameter), as a dry-run plan in each format and for real at trace level; the
/// listing commands and `stats`; the TUI on the cache in tmux. Nothing holds a secret.
#[test]
fn no_secret_reaches_any_output() {
    let sb = Sandbox::up(200);
    let mut canary = Canary::of(&sb);
    // The scanner sees a secret where there is one.
    let planted = format!("log line auth={} end", canary.secrets[0]);
    canary.scan_bytes("planted", planted.as_bytes());
    assert_eq!(
        canary.hits.len(),
        1,
        "the canary scanner missed a planted secret"
    );
    canary.hits.clear();
    let caches = ["orders", "paperwurks", "storefront"];
    let mut flows = 0u64;
    let run = |canary: &mut Canary, args: &[String]| {
        let out = sb
            .cachedeck()
            .env("CACHEDECK_LOG", "trace")
            .args(args)
            .timeout(Duration::from_secs(300))
            .output()
            .expect("cachedeck runs");
        let what = args.join(" ");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.code().is_some() && !err.contains("panicked"),
            "{what}: {err}"
        );
        canary.scan_bytes(&format!("stdout of `{what}`"), &out.stdout);
        canary.scan_bytes(&format!("stderr of `{what}`"), &out.stderr);
    };
    for (rb, hook) in hooked() {
        for cache in caches {
            let mut args: Vec<String> = [
                "run",
                &rb.name,
                "--env",
                "sandbox-dev",
                "--cache",
                cache,
                "--yes",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            for p in (hook.params)(0) {
                args.extend(["--param".into(), p]);
            }
            for format in ["text", "json"] {
                let mut dry = args.clone();
                dry.extend(["--dry-run".into(), "--output".into(), format.into()]);
                run(&mut canary, &dry);
                flows += 1;
            }
            // For real where that changes nothing but its own marker; the mutating ones run
            // for real in the kill sweep, which scans the same outputs.
            if !as_run(&rb, &hook, 0).mutates() || rb.name == "marker-roundtrip" {
                let mut real = args.clone();
                real.extend(["--output".into(), "json".into()]);
                run(&mut canary, &real);
                flows += 1;
            }
        }
    }
    for args in [
        vec!["envs", "--output", "json"],
        vec!["caches", "--output", "json"],
        vec!["caches"],
        vec![
            "stats",
            "orders",
            "--env",
            "sandbox-dev",
            "--once",
            "--output",
            "json",
        ],
        vec!["stats", "storefront", "--env", "sandbox-dev", "--once"],
        vec!["stats", "paperwurks", "--env", "sandbox-dev", "--once"],
        vec!["runs", "list", "--output", "json"],
    ] {
        let args: Vec<String> = args.into_iter().map(String::from).collect();
        run(&mut canary, &args);
        flows += 1;
    }

    // The TUI on each cache: its screen, and its argv and its children's while it runs.
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_cachedeck"));
    let home = sb.home().display().to_string();
    let sandbox_dir = sb.dir().display().to_string();
    let state = sb.home().join("state").display().to_string();
    let config = sb.home().join("config").display().to_string();
    let report = sb.home().join("tui-exit");
    let tmux = Tmux::start(
        &bin,
        &[
            ("CACHEDECK_SANDBOX_DIR", &sandbox_dir),
            ("CACHEDECK_STATE_DIR", &state),
            ("CACHEDECK_CONFIG_DIR", &config),
            ("CACHEDECK_LOG", "trace"),
            ("HOME", &home),
            ("AWS_CONFIG_FILE", "/nonexistent"),
            ("TERM", "xterm-256color"),
        ],
        160,
        45,
        &report,
    );
    tmux.wait_for("the environments", Duration::from_secs(30), |s| {
        s.contains("sandbox-dev")
    });
    tmux.keys(&[":"]);
    tmux.keys(&["caches sandbox-dev", "Enter"]);
    let (screen, _) = tmux.wait_for("the caches", Duration::from_secs(30), |s| {
        s.contains("caches of sandbox-dev") && s.contains("storefront")
    });
    canary.scan_bytes("TUI caches screen", screen.as_bytes());
    for cache in caches {
        tmux.keys(&["/", cache, "Enter", "Enter"]);
        let (screen, _) = tmux.wait_for(cache, Duration::from_secs(30), |s| {
            s.contains(&format!("sandbox-dev › {cache}"))
        });
        canary.scan_bytes(&format!("TUI screen of {cache}"), screen.as_bytes());
        std::thread::sleep(Duration::from_millis(1500));
        canary.scan_bytes(
            &format!("TUI screen of {cache} after a poll"),
            tmux.screen().as_bytes(),
        );
        for pid in tui_pids(&bin) {
            canary.scan_proc(pid);
        }
        tmux.keys(&["Escape"]);
        // Back on the list before the next `/`: an Escape and a `/` read together are one
        // Alt-/ key to the terminal.
        tmux.wait_for("the caches again", Duration::from_secs(30), |s| {
            s.contains("caches of sandbox-dev")
        });
        flows += 1;
    }
    tmux.keys(&["q"]);
    drop(tmux);
    let scanned = canary.finish("canary sweep");
    summary::add("canary.outputs_scanned", scanned);
    summary::add("canary.flows", flows);
    summary::add("canary.hits", 0);
}

/// Processes running `bin` (the TUI under tmux).
fn tui_pids(bin: &Path) -> Vec<u32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if std::fs::read_link(e.path().join("exe")).is_ok_and(|exe| exe == bin) {
            pids.push(pid);
        }
    }
    pids
}
