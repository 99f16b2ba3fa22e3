//! Two operators: two processes start the same mutating runbook on one cache at once;
//! exactly one proceeds, the other exits 4 naming the holder (user, host, run id, since). A
//! holder killed with SIGKILL leaves its lock in place: the next run is refused with the dead
//! run's id and the lock reported stale (its process is gone from this host; later its
//! heartbeat is old), never silently stolen; the killed run itself resumes, and
//! `cachedeck runs unlock` shows the holder and breaks the lock only when told to. The TUI and
//! the headless runner meet the same lock: each is refused with the other's holder details.

use super::summary;
use crate::harness::sandbox::Sandbox;
use cachedeck::controlplane::{ParameterType, ParameterValue, PutParameter};
use cachedeck::tui::action::{Action, Route};
use cachedeck::tui::app::{App, RunScreen};
use cachedeck::tui::workers::Workers;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn runner(sb: &Sandbox, pause: &str) -> Command {
    let home = sb.home();
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("cachedeck"));
    cmd.env("CACHEDECK_SANDBOX_DIR", home.join("sandbox"))
        .env("CACHEDECK_STATE_DIR", home.join("state"))
        .env("CACHEDECK_CONFIG_DIR", home.join("config"))
        .env("AWS_CONFIG_FILE", home.join("aws-config"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .args([
            "run",
            "marker-roundtrip",
            "--env",
            "sandbox-dev",
            "--cache",
            "valkey-ecs",
        ])
        .args(["--yes", "--param", &format!("pause={pause}")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

#[test]
fn one_operator_at_a_time_and_a_dead_holder_is_not_robbed() {
    let sb = Sandbox::up(100);
    let lock_params = || sb.params().by_path("/cachedeck/locks").expect("locks");

    // Both at once.
    let a = runner(&sb, "2s").spawn().expect("first");
    let b = runner(&sb, "2s").spawn().expect("second");
    let (a, b) = (
        a.wait_with_output().expect("first ends"),
        b.wait_with_output().expect("second ends"),
    );
    let mut codes = [a.status.code(), b.status.code()];
    codes.sort();
    assert_eq!(
        codes,
        [Some(0), Some(4)],
        "exactly one proceeds: {}\n{}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    let (won, lost) = if a.status.code() == Some(0) {
        (&a, &b)
    } else {
        (&b, &a)
    };
    let refused = String::from_utf8_lossy(&lost.stderr);
    let won_out = String::from_utf8_lossy(&won.stdout);
    let holder_run = won_out
        .split_whitespace()
        .find(|w| w.len() > 20 && w.contains('T') && w.contains('Z') && w.contains('-'))
        .unwrap_or_default()
        .to_string();
    assert!(
        !holder_run.is_empty() && refused.contains(&holder_run),
        "the refusal names the holder's run {holder_run:?}: {refused}"
    );
    let user = cachedeck::runbook::lock::current_user();
    let host = cachedeck::runbook::lock::current_host();
    assert!(
        refused.contains(&user) && refused.contains(&host),
        "the refusal names user {user} and host {host}: {refused}"
    );
    assert!(lock_params().is_empty(), "released at the end");

    // A holder killed with SIGKILL keeps its lock; the next operator is told who holds it.
    let mut dead = runner(&sb, "6s").spawn().expect("holder");
    let deadline = Instant::now() + Duration::from_secs(30);
    while lock_params().is_empty() {
        assert!(Instant::now() < deadline, "the lock was never taken");
        std::thread::sleep(Duration::from_millis(10));
    }
    let held: serde_json::Value =
        serde_json::from_str(lock_params()[0].value.expose()).expect("lock JSON");
    let dead_run = held["run_id"].as_str().expect("run id").to_string();
    dead.kill().expect("SIGKILL");
    let _ = dead.wait();
    let next = runner(&sb, "0s").output().expect("next operator");
    let said = String::from_utf8_lossy(&next.stderr);
    assert_eq!(next.status.code(), Some(4), "{said}");
    assert!(
        said.contains(&dead_run) && said.contains("stale: its process is gone from this host"),
        "names the dead holder {dead_run}, stale at once: {said}"
    );
    assert_eq!(lock_params().len(), 1, "not stolen");
    // The killed run resumes under its own lock, and then the lock is gone.
    let out = sb
        .cachedeck()
        .args(["runs", "resume", &dead_run, "--yes"])
        .output()
        .expect("resume");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(lock_params().is_empty(), "released after the resume");

    // A live holder: `runs unlock` shows it, warns that it looks alive, and (asked on no
    // terminal, without --yes) breaks nothing.
    let mut live = runner(&sb, "4s").spawn().expect("holder");
    let live_run = wait_for_lock(&sb);
    let out = sb
        .cachedeck()
        .args(["runs", "unlock", "sandbox-dev", "valkey-ecs"])
        .output()
        .expect("unlock");
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{said}");
    assert!(
        said.contains(&live_run) && said.contains("heartbeat is recent"),
        "{said}"
    );
    assert_eq!(lock_params().len(), 1, "a live lock is not broken");
    assert!(live.wait().expect("holder ends").success());
    assert!(lock_params().is_empty(), "released by its run");

    // A stale lock: its holder killed minutes ago (heartbeat aged past 90 s). Reported as
    // stale, not taken; `runs unlock` breaks it only with --yes, and says how to resume.
    let mut dead = runner(&sb, "6s").spawn().expect("holder");
    let dead_run = wait_for_lock(&sb);
    dead.kill().expect("SIGKILL");
    let _ = dead.wait();
    age_lock(&sb, time::Duration::minutes(5));
    let next = runner(&sb, "0s").output().expect("next operator");
    let said = String::from_utf8_lossy(&next.stderr);
    assert_eq!(next.status.code(), Some(4), "{said}");
    assert!(
        said.contains(&dead_run) && said.contains("stale"),
        "names the stale holder: {said}"
    );
    let out = sb
        .cachedeck()
        .args(["runs", "unlock", "sandbox-dev", "valkey-ecs"])
        .output()
        .expect("unlock");
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "not broken without --yes: {said}"
    );
    assert!(
        said.contains(&dead_run) && said.contains("stale") && !said.contains("recent"),
        "{said}"
    );
    assert_eq!(lock_params().len(), 1);
    let out = sb
        .cachedeck()
        .args(["runs", "unlock", "sandbox-dev", "valkey-ecs", "--yes"])
        .output()
        .expect("unlock --yes");
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains("lock broken") && said.contains(&format!("runs resume {dead_run}")),
        "{said}"
    );
    assert!(lock_params().is_empty(), "broken");
    let next = runner(&sb, "0s").output().expect("next operator");
    assert_eq!(
        next.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&next.stderr)
    );

    // `run --force-unlock` with the wrong run id breaks nothing; with the exact one it breaks
    // the dead holder's lock and runs.
    let mut dead = runner(&sb, "6s").spawn().expect("holder");
    let dead_run = wait_for_lock(&sb);
    dead.kill().expect("SIGKILL");
    let _ = dead.wait();
    let wrong = runner(&sb, "0s")
        .args(["--force-unlock", "not-that-run"])
        .output()
        .expect("wrong id");
    assert_ne!(wrong.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains(&dead_run),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    assert_eq!(lock_params().len(), 1);
    let forced = runner(&sb, "0s")
        .args(["--force-unlock", &dead_run])
        .output()
        .expect("forced");
    assert_eq!(
        forced.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    assert!(lock_params().is_empty());

    tui_and_headless_meet_the_same_lock(&sb);
    summary::add("operators.cases", 9);
}

/// Waits until a run holds the cache's lock; returns its run id.
fn wait_for_lock(sb: &Sandbox) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let held = sb.params().by_path("/cachedeck/locks").expect("locks");
        if let Some(p) = held.first() {
            let v: serde_json::Value = serde_json::from_str(p.value.expose()).expect("lock JSON");
            return v["run_id"].as_str().expect("run id").to_string();
        }
        assert!(Instant::now() < deadline, "the lock was never taken");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Moves the lock's start and heartbeat `by` into the past, as if its holder died that long
/// ago (the parameter store keeps no clock of its own).
fn age_lock(sb: &Sandbox, by: time::Duration) {
    let params = sb.params();
    let lock = params.by_path("/cachedeck/locks").expect("locks")[0].clone();
    let mut v: serde_json::Value = serde_json::from_str(lock.value.expose()).expect("lock JSON");
    let then = (time::OffsetDateTime::now_utc() - by)
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    v["since"] = then.clone().into();
    v["heartbeat"] = then.into();
    params
        .put(&PutParameter {
            name: lock.name.clone(),
            kind: ParameterType::String,
            value: ParameterValue::Plain(v.to_string()),
            overwrite: true,
            description: None,
        })
        .expect("rewrite the lock");
}

/// The TUI (App and its real workers, in this process, on the same sandbox) against the
/// headless runner, both ways.
fn tui_and_headless_meet_the_same_lock(sb: &Sandbox) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut tui = Tui::start(sb).await;
        let user = cachedeck::runbook::lock::current_user();
        let host = cachedeck::runbook::lock::current_host();

        // The headless runner holds it: the TUI's run is refused with the holder's details.
        let mut holder: Child = runner(sb, "5s").spawn().expect("headless holder");
        let headless_run = wait_for_lock(sb);
        tui.start_marker("0s").await;
        tui.until("the refusal", |app| {
            app.runs.first().is_some_and(|r| !r.active())
        })
        .await;
        let refused = tui.app.runs[0].ended.clone().flatten().expect("refused");
        assert!(
            refused.contains(&headless_run)
                && refused.contains(&format!("{user}@{host}"))
                && refused.contains("since"),
            "the TUI names the headless holder: {refused}"
        );
        assert!(tui.app.runs[0].view.steps.is_empty(), "nothing ran");
        assert!(holder.wait().expect("holder ends").success());

        // The TUI holds it: the headless runner exits 4 naming the TUI's run.
        tui.act(Action::Back);
        tui.start_marker("4s").await;
        let tui_run = wait_for_lock(sb);
        let out = runner(sb, "0s").output().expect("headless");
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{said}");
        assert!(
            said.contains(&tui_run) && said.contains(&format!("{user}@{host}")),
            "the headless runner names the TUI's run: {said}"
        );
        // Its dangerous step asks first (Enter agrees in an open environment).
        loop {
            tui.until("the TUI's run to ask or end", |app| {
                app.runs
                    .first()
                    .is_some_and(|r| !r.active() || r.view.confirm.is_some())
            })
            .await;
            if !tui.app.runs[0].active() {
                break;
            }
            let expect = tui.app.runs[0]
                .view
                .confirm
                .as_ref()
                .and_then(|c| c.expect.clone());
            for c in expect.unwrap_or_default().chars() {
                tui.act(Action::PromptInput(c));
            }
            tui.act(Action::PromptSubmit);
        }
        assert_eq!(tui.app.runs[0].ended, Some(None), "the TUI's run succeeded");
        assert!(
            sb.params()
                .by_path("/cachedeck/locks")
                .expect("locks")
                .is_empty(),
            "released by the TUI's run"
        );
    });
}

/// A TUI session in this process: the app, its workers, and the actions they send back.
struct Tui {
    app: App,
    workers: Workers,
    rx: tokio::sync::mpsc::Receiver<Action>,
    _home: tempfile::TempDir,
}

impl Tui {
    async fn start(sb: &Sandbox) -> Tui {
        use cachedeck::config::{EnvConfig, Settings};
        use cachedeck::controlplane::ControlPlane;
        use cachedeck::estate::{Estate, PlaneFactory};
        use cachedeck::sandbox::SandboxControlPlane;
        let home = tempfile::tempdir().expect("tempdir");
        let config = home.path().join("config.toml");
        std::fs::write(
            &config,
            "[environments.sandbox-dev]\nprovider = \"sandbox\"\nprotection = \"open\"\n",
        )
        .expect("config");
        let dir = sb.home().join("sandbox");
        let factory: PlaneFactory = Arc::new(move |name: String, cfg: EnvConfig, s: Settings| {
            let dir = dir.clone();
            Box::pin(async move {
                let plane: Arc<dyn ControlPlane> =
                    Arc::new(SandboxControlPlane::open_at(&dir, &name, &cfg, &s)?);
                Ok(plane)
            })
        });
        let estate = Estate::load_with(Some(config), Default::default(), factory)
            .await
            .expect("estate");
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        let app = App::new(
            estate.envs.iter().map(|h| h.env.clone()).collect(),
            time::OffsetDateTime::now_utc(),
        );
        let workers = Workers::new(Arc::new(estate), tx).with_journal_dir(home.path().join("runs"));
        let mut tui = Tui {
            app,
            workers,
            rx,
            _home: home,
        };
        for effect in tui.app.start() {
            tui.workers.run(effect);
        }
        tui.until("discovery", |app| {
            app.caches_of("sandbox-dev")
                .is_some_and(|c| c.iter().any(|c| c.name == "valkey-ecs"))
        })
        .await;
        tui.act(Action::Goto(Route::Cache {
            env: "sandbox-dev".into(),
            cache: "valkey-ecs".into(),
        }));
        tui
    }

    fn act(&mut self, action: Action) {
        for effect in self.app.update(action) {
            self.workers.run(effect);
        }
    }

    async fn until(&mut self, what: &str, done: impl Fn(&App) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !done(&self.app) {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(action)) => self.act(action),
                Ok(None) => panic!("action channel closed waiting for {what}"),
                Err(_) => panic!("timed out waiting for {what}"),
            }
        }
    }

    /// `:run marker-roundtrip` with `pause`, started from its form.
    async fn start_marker(&mut self, pause: &str) {
        self.act(Action::StartCommand);
        for c in "run marker-roundtrip".chars() {
            self.act(Action::PromptInput(c));
        }
        self.act(Action::PromptSubmit);
        self.until("the form", |app| {
            matches!(app.run_screen, Some(RunScreen::Form(_)))
        })
        .await;
        if let Some(RunScreen::Form(form)) = &mut self.app.run_screen {
            let field = form
                .fields
                .iter_mut()
                .find(|f| f.name == "pause")
                .expect("a pause field");
            field.text = pause.to_string();
        }
        self.act(Action::PromptSubmit);
        assert!(
            matches!(self.app.run_screen, Some(RunScreen::Run { .. })),
            "the run started"
        );
    }
}
