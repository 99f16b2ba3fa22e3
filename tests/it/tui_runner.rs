//! Runbooks from the TUI. Snapshots (tests/snapshots) of the picker, a form with an inline
//! error, a dry run's plan and a run left running; then `App` driven through actions with
//! the real `Workers` and the real engine against a real valkey-server: a health check to
//! the end, a confirmation answered by typing the cache name, one declined, one cancelled
//! with Ctrl-C, and quitting while a run is going.

use crate::harness::valkey::{raw_command, server};
use async_trait::async_trait;
use cachedeck::config::{EnvConfig, Settings};
use cachedeck::controlplane::{
    CacheEvent, ControlPlane, ControlPlaneError, Discovery, EventQuery, Parameter, PutParameter,
};
use cachedeck::domain::{
    AuthMode, Cache, CacheKind, Credentials, Endpoint, Endpoints, Environment, Protection,
    ProviderKind,
};
use cachedeck::estate::{Estate, PlaneFactory};
use cachedeck::runbook::engine::{Engine, Target};
use cachedeck::runbook::events::{Event, RunState, StepInfo};
use cachedeck::runbook::{actions, catalog, validate};
use cachedeck::sandbox::params::ParamStore;
use cachedeck::tui::action::{Action, Route};
use cachedeck::tui::app::{App, Effect, Mode, RunScreen, RunSession};
use cachedeck::tui::run::StepPhase;
use cachedeck::tui::theme::Theme;
use cachedeck::tui::view::view;
use cachedeck::tui::workers::Workers;
use cachedeck::valkey::connect::ConnectOptions;
use cachedeck::valkey::server::ValkeyServer;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use time::macros::datetime;
use tokio::sync::mpsc;

macro_rules! snap {
    ($name:expr, $screen:expr) => {
        insta::with_settings!({snapshot_path => "../snapshots", prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!($name, $screen);
        });
    };
}

fn render(app: &App) -> String {
    let mut terminal = Terminal::new(TestBackend::new(100, 26)).expect("test terminal");
    terminal
        .draw(|f| view(app, &Theme::monochrome(), f))
        .expect("draw");
    terminal.backend().to_string()
}

fn environment(name: &str, protection: Protection) -> Environment {
    Environment {
        name: name.into(),
        provider: ProviderKind::Aws,
        protection,
        profile: None,
        region: Some("eu-west-1".into()),
        endpoint_url: None,
        source: "test".into(),
    }
}

/// The cache of the snapshots: a plain endpoint at a fixed address.
fn orders(env: &str) -> Cache {
    Cache {
        name: "orders".into(),
        env: env.into(),
        kind: CacheKind::Endpoint,
        engine: "valkey".into(),
        engine_version: "8.1".into(),
        status: "available".into(),
        cluster_mode: false,
        auth: AuthMode::None,
        tls: false,
        endpoint: Some(Endpoint::new("127.0.0.1", 6390, false)),
        endpoints: Endpoints::default(),
        shards: vec![],
        automatic_failover: false,
        multi_az: false,
        arn: None,
        description: None,
        notes: vec![],
        credentials: Credentials::default(),
        ecs: None,
    }
}

/// An app on `dev/orders` with discovery done (no workers: effects are returned, not run).
fn app_on_orders(protection: Protection) -> App {
    let mut app = App::new(
        vec![environment("dev", protection)],
        datetime!(2026-11-23 21:00:00 UTC),
    );
    app.size = (100, 26);
    app.update(Action::Discovered {
        env: "dev".into(),
        result: Ok(Discovery {
            caches: vec![orders("dev")],
            warnings: vec![],
        }),
    });
    app.update(Action::Goto(Route::Cache {
        env: "dev".into(),
        cache: "orders".into(),
    }));
    app
}

/// The shipped runbooks that apply to an endpoint, as the picker's worker lists them.
fn builtin_runbooks() -> Vec<validate::Runbook> {
    let registry = actions::builtin();
    let mut found: Vec<validate::Runbook> = [
        "connectivity-check",
        "failover-test",
        "health-check",
        "marker-roundtrip",
        "ttl-audit",
    ]
    .iter()
    .map(|n| catalog::find(n, &registry).expect("shipped runbook"))
    .filter(|r| r.applies_to.contains(&CacheKind::Endpoint))
    .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}

/// Opens the picker and feeds it the shipped runbooks that apply to an endpoint.
fn picker(app: &mut App) {
    let effects = app.update(Action::OpenRunbooks(None));
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::LoadRunbooks { cache, .. } if cache.name == "orders")),
        "{effects:?}"
    );
    app.update(Action::Runbooks {
        env: "dev".into(),
        cache: "orders".into(),
        result: Ok(builtin_runbooks()),
    });
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        app.update(Action::PromptInput(c));
    }
}

#[test]
fn tui_runner_picker_lists_applicable_runbooks_with_a_mutation_mark() {
    let mut app = app_on_orders(Protection::Open);
    picker(&mut app);
    let screen = render(&app);
    assert!(screen.contains("health-check"), "{screen}");
    assert!(screen.contains("mutates"), "{screen}");
    // failover-test does not apply to a plain endpoint.
    assert!(!screen.contains("failover-test"), "{screen}");
    snap!("runner_picker", screen);
}

#[test]
fn tui_runner_form_shows_a_bad_value_on_its_field_and_starts_nothing() {
    let mut app = app_on_orders(Protection::Open);
    app.update(Action::OpenRunbooks(Some("health-check".into())));
    app.update(Action::Runbooks {
        env: "dev".into(),
        cache: "orders".into(),
        result: Ok(builtin_runbooks()),
    });
    assert!(matches!(app.run_screen(), Some(RunScreen::Form(_))));
    assert_eq!(app.mode, Mode::Input, "the form takes text");
    for _ in 0..3 {
        app.update(Action::PromptBackspace);
    }
    type_text(&mut app, "fast");
    let effects = app.update(Action::PromptSubmit);
    assert!(
        !effects.iter().any(|e| matches!(e, Effect::StartRun { .. })),
        "{effects:?}"
    );
    let Some(RunScreen::Form(form)) = app.run_screen() else {
        panic!("the form stays open");
    };
    assert_eq!(
        form.fields[0].error.as_deref(),
        Some("`fast` is not an integer")
    );
    let screen = render(&app);
    assert!(screen.contains("`fast` is not an integer"), "{screen}");
    snap!("runner_form_error", screen);

    // Fixed, it starts (q is text in a form, not quit).
    for _ in 0..4 {
        app.update(Action::PromptBackspace);
    }
    type_text(&mut app, "100");
    let effects = app.update(Action::PromptSubmit);
    assert!(!app.quit);
    assert!(
        effects.iter().any(
            |e| matches!(e, Effect::StartRun { params, dry_run: false, .. }
            if params == &[("max_latency_ms".to_string(), "100".to_string())])
        ),
        "{effects:?}"
    );
}

#[test]
fn tui_runner_dry_run_shows_the_plan() {
    let mut app = app_on_orders(Protection::Open);
    app.update(Action::OpenRunbooks(Some("marker-roundtrip".into())));
    app.update(Action::Runbooks {
        env: "dev".into(),
        cache: "orders".into(),
        result: Ok(builtin_runbooks()),
    });
    // The dry-run toggle is the last row: Up from the first field wraps to it.
    app.update(Action::Up);
    app.update(Action::PromptInput(' '));
    let effects = app.update(Action::PromptSubmit);
    let Some(Effect::StartRun { run, dry_run, .. }) = effects
        .iter()
        .find(|e| matches!(e, Effect::StartRun { .. }))
    else {
        panic!("no start: {effects:?}");
    };
    assert!(dry_run);
    let runbook = catalog::find("marker-roundtrip", &actions::builtin()).expect("runbook");
    let params = validate::bind_params(&runbook, &[]).expect("defaults");
    let target = Target {
        env: environment("dev", Protection::Open),
        cache: orders("dev"),
        plane: Arc::new(FakePlane::new(environment("dev", Protection::Open))),
    };
    let engine = Engine::new(
        actions::builtin(),
        std::env::temp_dir(),
        ConnectOptions::default(),
    );
    let plan = engine.plan(&runbook, &params, &target);
    let run = *run;
    app.update(Action::RunPlanned {
        run,
        result: Ok(Box::new(plan)),
    });
    app.update(Action::RunEnded { run, error: None });
    let screen = render(&app);
    assert!(screen.contains("PutParameter"), "{screen}");
    assert!(screen.contains("(mutates)"), "{screen}");
    snap!("runner_dry_run_plan", screen);
}

#[test]
fn tui_runner_a_run_left_keeps_going_in_the_header_and_x_returns_to_it() {
    let mut app = app_on_orders(Protection::Confirm);
    app.update(Action::OpenRunbooks(Some("health-check".into())));
    app.update(Action::Runbooks {
        env: "dev".into(),
        cache: "orders".into(),
        result: Ok(builtin_runbooks()),
    });
    let effects = app.update(Action::PromptSubmit);
    let run = effects
        .iter()
        .find_map(|e| match e {
            Effect::StartRun { run, .. } => Some(*run),
            _ => None,
        })
        .expect("started");
    app.update(Action::RunEvent {
        run,
        event: Box::new(Event::RunStarted {
            run_id: "20261123-210000-ab12".into(),
            runbook: "health-check".into(),
            env: "dev".into(),
            cache: "orders".into(),
            steps: ["ping", "info", "verdict"]
                .iter()
                .map(|s| StepInfo {
                    id: s.to_string(),
                    title: format!("{s} step"),
                    action: s.to_string(),
                    dangerous: false,
                })
                .collect(),
            resumed: false,
        }),
    });
    app.update(Action::RunEvent {
        run,
        event: Box::new(Event::StepStarted {
            step: "ping".into(),
            attempt: 1,
        }),
    });
    // Esc leaves the view; the run goes on and the header says so on every screen.
    app.update(Action::Back);
    assert!(app.run_screen().is_none());
    app.update(Action::Back);
    let screen = render(&app);
    assert!(
        screen.contains("▶ health-check on orders: running"),
        "{screen}"
    );
    snap!("runner_left_running", screen);
    // `c` outside the run view cancels nothing.
    let effects = app.update(Action::CancelRun);
    assert!(!effects.iter().any(|e| matches!(e, Effect::CancelRun(_))));
    // Ctrl-C there would quit: with a run going it stops the run first.
    let effects = app.update(Action::Interrupt);
    assert!(!app.quit);
    assert!(effects.contains(&Effect::CancelRun(run)), "{effects:?}");
    app.update(Action::Enter);
    assert_eq!(
        app.route,
        Route::Cache {
            env: "dev".into(),
            cache: "orders".into()
        }
    );
    // One run per cache: `x` shows the running one instead of a picker.
    let effects = app.update(Action::OpenRunbooks(None));
    assert!(effects.is_empty(), "{effects:?}");
    assert!(matches!(app.run_screen(), Some(RunScreen::Run { .. })));
    let effects = app.update(Action::CancelRun);
    assert!(effects.contains(&Effect::CancelRun(run)), "{effects:?}");
}

// ---- App + Workers + the real engine ----------------------------------------------------

/// A control plane with nothing to discover (the cache comes from the config's URL) and a
/// real create-only parameter store for the run locks.
struct FakePlane {
    env: Environment,
    params: ParamStore,
    _dir: tempfile::TempDir,
}

impl FakePlane {
    fn new(env: Environment) -> FakePlane {
        let dir = tempfile::tempdir().expect("tempdir");
        FakePlane {
            env,
            params: ParamStore::new(dir.path()),
            _dir: dir,
        }
    }
}

#[async_trait]
impl ControlPlane for FakePlane {
    fn environment(&self) -> &Environment {
        &self.env
    }

    async fn discover(&self) -> Result<Discovery, ControlPlaneError> {
        Ok(Discovery {
            caches: vec![],
            warnings: vec![],
        })
    }

    async fn get_parameter(&self, name: &str) -> Result<Option<Parameter>, ControlPlaneError> {
        self.params.get(name)
    }

    async fn get_parameters_by_path(
        &self,
        path: &str,
    ) -> Result<Vec<Parameter>, ControlPlaneError> {
        self.params.by_path(path)
    }

    async fn put_parameter(&self, put: PutParameter) -> Result<i64, ControlPlaneError> {
        self.params.put(&put)
    }

    async fn delete_parameter(&self, name: &str) -> Result<(), ControlPlaneError> {
        self.params.delete(name)
    }

    async fn describe_events(&self, _: EventQuery) -> Result<Vec<CacheEvent>, ControlPlaneError> {
        Ok(vec![])
    }

    async fn test_failover(&self, group: &str, _: &str) -> Result<(), ControlPlaneError> {
        Err(ControlPlaneError::Unsupported {
            operation: "TestFailover".into(),
            target: group.into(),
            why: "this test estate has no replication group".into(),
        })
    }
}

/// A TUI session on a real server: `dev` (open), `prod` (confirm) and `ro` (read-only),
/// each with cache `orders`.
struct Session {
    app: App,
    workers: Workers,
    rx: mpsc::Receiver<Action>,
    server: ValkeyServer,
    runs_dir: std::path::PathBuf,
    _home: tempfile::TempDir,
}

impl Session {
    async fn start(env: &str) -> Session {
        let server = server();
        let home = tempfile::tempdir().expect("tempdir");
        let mut text = String::new();
        for (name, protection) in [("dev", "open"), ("prod", "confirm"), ("ro", "read-only")] {
            text.push_str(&format!(
                r#"
[environments.{name}]
provider = "aws"
region = "eu-west-1"
protection = "{protection}"

[environments.{name}.discovery]
kinds = ["endpoint"]

[[environments.{name}.caches]]
name = "orders"
url = "redis://127.0.0.1:{port}"
"#,
                port = server.port(),
            ));
        }
        let config = home.path().join("config.toml");
        std::fs::write(&config, text).expect("write config");
        let factory: PlaneFactory = Arc::new(|name: String, cfg: EnvConfig, _: Settings| {
            Box::pin(async move {
                let plane: Arc<dyn ControlPlane> =
                    Arc::new(FakePlane::new(cfg.environment(&name, "test")));
                Ok(plane)
            })
        });
        let estate = Estate::load_with(Some(config), BTreeMap::new(), factory)
            .await
            .expect("estate");
        let (tx, rx) = mpsc::channel(1024);
        let app = App::new(
            estate.envs.iter().map(|h| h.env.clone()).collect(),
            time::OffsetDateTime::now_utc(),
        );
        let runs_dir = home.path().join("runs");
        let workers = Workers::new(Arc::new(estate), tx).with_journal_dir(runs_dir.clone());
        let mut session = Session {
            app,
            workers,
            rx,
            server,
            runs_dir,
            _home: home,
        };
        for effect in session.app.start() {
            session.workers.run(effect);
        }
        session
            .until("discovery", |app| app.caches_of(env).is_some())
            .await;
        session.act(Action::Goto(Route::Cache {
            env: env.into(),
            cache: "orders".into(),
        }));
        session
    }

    fn act(&mut self, action: Action) {
        for effect in self.app.update(action) {
            self.workers.run(effect);
        }
    }

    fn type_text(&mut self, text: &str) {
        for c in text.chars() {
            self.act(Action::PromptInput(c));
        }
    }

    /// Applies background results until `done` holds (30 s at most).
    async fn until(&mut self, what: &str, done: impl Fn(&App) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !done(&self.app) {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(action)) => self.act(action),
                Ok(None) => panic!("action channel closed waiting for {what}"),
                Err(_) => panic!("timed out waiting for {what}; runs: {:?}", self.app.runs),
            }
        }
    }

    fn run(&self) -> &RunSession {
        self.app.runs.first().expect("a run")
    }

    /// `:run NAME`, then Enter on its form with the defaults (plus `edits`).
    async fn start_run(&mut self, name: &str) {
        self.act(Action::StartCommand);
        self.type_text(&format!("run {name}"));
        self.act(Action::PromptSubmit);
        self.until("the form", |app| {
            matches!(app.run_screen(), Some(RunScreen::Form(_)))
        })
        .await;
        self.act(Action::PromptSubmit);
        assert!(
            matches!(self.app.run_screen(), Some(RunScreen::Run { .. })),
            "the run view opens"
        );
    }

    fn journal_states(&self) -> Vec<String> {
        let id = &self.run().view.run_id;
        let text =
            std::fs::read_to_string(self.runs_dir.join(format!("{id}.jsonl"))).expect("journal");
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|r| r["state"].as_str().map(str::to_string))
            .collect()
    }

    fn markers(&self) -> String {
        raw_command(self.server.port(), &["KEYS", "cachedeck:marker:*"])
    }
}

fn phases(run: &RunSession) -> Vec<(String, StepPhase)> {
    run.view
        .steps
        .iter()
        .map(|s| (s.id.clone(), s.phase.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tui_runner_health_check_runs_to_the_end_through_the_engine() {
    let mut s = Session::start("dev").await;
    s.act(Action::OpenRunbooks(None));
    s.until("the picker", |app| {
        matches!(app.run_screen(), Some(RunScreen::Picker { runbooks, .. }) if runbooks.ready().is_some())
    })
    .await;
    let Some(RunScreen::Picker { runbooks, .. }) = s.app.run_screen() else {
        panic!("picker");
    };
    let index = runbooks
        .ready()
        .and_then(|l| l.iter().position(|r| r.name == "health-check"))
        .expect("health-check applies to an endpoint");
    for _ in 0..index {
        s.act(Action::Down);
    }
    s.act(Action::Enter);
    assert!(matches!(s.app.run_screen(), Some(RunScreen::Form(_))));
    s.act(Action::PromptSubmit);
    s.until("the run to end", |app| {
        app.runs.first().is_some_and(|r| !r.active())
    })
    .await;
    let run = s.run();
    assert_eq!(run.ended, Some(None));
    assert_eq!(
        run.view.finished.as_ref().map(|f| f.0),
        Some(RunState::Succeeded),
        "{run:?}"
    );
    assert_eq!(
        phases(run),
        ["ping", "info", "verdict"].map(|id| (id.to_string(), StepPhase::Ok))
    );
    assert!(run.view.steps.iter().all(|s| s.elapsed.is_some()));
    let ping = &run.view.steps[0].outputs;
    assert!(ping.contains("max_latency_ms"), "{ping}");
    assert_eq!(
        s.journal_states().last().map(String::as_str),
        Some("succeeded")
    );
    let screen = render(&s.app);
    assert!(screen.contains("run succeeded"), "{screen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tui_runner_confirmation_answered_with_the_cache_name_runs_the_mutation() {
    let mut s = Session::start("prod").await;
    s.start_run("marker-roundtrip").await;
    s.until("the confirmation", |app| {
        app.runs.first().is_some_and(|r| r.view.confirm.is_some())
    })
    .await;
    assert_eq!(s.app.mode, Mode::Input);
    let confirm = s.run().view.confirm.as_ref().expect("confirm");
    assert_eq!(confirm.step, "write");
    assert_eq!(confirm.expect.as_deref(), Some("orders"));
    // A wrong name is not an answer: the question stays open, nothing is written.
    s.type_text("order");
    s.act(Action::PromptSubmit);
    assert!(s.run().view.confirm.is_some());
    assert!(s.app.message.as_ref().is_some_and(|m| m.error));
    s.type_text("s");
    s.act(Action::PromptSubmit);
    assert!(s.run().view.confirm.is_none());
    assert_eq!(s.app.mode, Mode::Normal);
    s.until("the run to end", |app| {
        app.runs.first().is_some_and(|r| !r.active())
    })
    .await;
    let run = s.run();
    assert_eq!(
        run.view.finished.as_ref().map(|f| f.0),
        Some(RunState::Succeeded),
        "{run:?}"
    );
    assert!(phases(run).iter().all(|(_, p)| *p == StepPhase::Ok));
    let key = format!("cachedeck:marker:{}", run.view.run_id);
    assert!(
        raw_command(s.server.port(), &["GET", &key]).contains(&run.view.run_id),
        "the marker was written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tui_runner_declined_confirmation_refuses_the_run_and_writes_nothing() {
    let mut s = Session::start("prod").await;
    s.start_run("marker-roundtrip").await;
    s.until("the confirmation", |app| {
        app.runs.first().is_some_and(|r| r.view.confirm.is_some())
    })
    .await;
    s.act(Action::Back);
    s.until("the run to end", |app| {
        app.runs.first().is_some_and(|r| !r.active())
    })
    .await;
    let run = s.run();
    let (state, error) = run.view.finished.clone().expect("finished");
    assert_eq!(state, RunState::Refused);
    assert!(error.is_some_and(|e| e.contains("declined")));
    assert_eq!(
        phases(run),
        [
            ("reachable".to_string(), StepPhase::Ok),
            ("write".to_string(), StepPhase::Failed),
            ("pause".to_string(), StepPhase::Skipped),
            ("read".to_string(), StepPhase::Skipped),
        ]
    );
    assert_eq!(s.markers(), "*0\r\n", "nothing was written");
    assert_eq!(
        s.journal_states().last().map(String::as_str),
        Some("refused")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tui_runner_ctrl_c_at_a_confirmation_interrupts_cleanly() {
    let mut s = Session::start("prod").await;
    s.start_run("marker-roundtrip").await;
    s.until("the confirmation", |app| {
        app.runs.first().is_some_and(|r| r.view.confirm.is_some())
    })
    .await;
    s.act(Action::Interrupt);
    assert!(!s.app.quit, "Ctrl-C in a run cancels the run, not the TUI");
    s.until("the run to end", |app| {
        app.runs.first().is_some_and(|r| !r.active())
    })
    .await;
    let run = s.run();
    assert_eq!(
        run.view.finished.as_ref().map(|f| f.0),
        Some(RunState::Interrupted),
        "{run:?}"
    );
    assert_eq!(run.view.steps[1].phase, StepPhase::Interrupted);
    assert_eq!(s.markers(), "*0\r\n", "nothing was written");
    assert_eq!(
        s.journal_states().last().map(String::as_str),
        Some("interrupted")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tui_runner_quit_during_a_run_cancels_it_first_then_quits() {
    let mut s = Session::start("dev").await;
    s.act(Action::StartCommand);
    s.type_text("run marker-roundtrip");
    s.act(Action::PromptSubmit);
    s.until("the form", |app| {
        matches!(app.run_screen(), Some(RunScreen::Form(_)))
    })
    .await;
    // Second field is `pause`: make it long enough to quit in the middle of it.
    s.act(Action::Down);
    for _ in 0..2 {
        s.act(Action::PromptBackspace);
    }
    s.type_text("60s");
    s.act(Action::PromptSubmit);
    // An open environment still asks before a dangerous step; Enter is the answer there.
    s.until("the confirmation", |app| {
        app.runs
            .first()
            .is_some_and(|r| r.view.confirm.as_ref().is_some_and(|c| c.expect.is_none()))
    })
    .await;
    s.act(Action::PromptSubmit);
    s.until("the pause step", |app| {
        app.runs.first().is_some_and(|r| {
            r.view
                .steps
                .iter()
                .any(|st| st.id == "pause" && matches!(st.phase, StepPhase::Running { .. }))
        })
    })
    .await;
    // Leave the run view, then quit: the run is cancelled cleanly before the TUI goes.
    s.act(Action::Back);
    s.act(Action::Quit);
    assert!(!s.app.quit, "quit waits for the run to stop");
    s.until("quit", |app| app.quit).await;
    let run = s.run();
    assert_eq!(
        run.view.finished.as_ref().map(|f| f.0),
        Some(RunState::Interrupted),
        "{run:?}"
    );
    assert_eq!(
        s.journal_states().last().map(String::as_str),
        Some("interrupted")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tui_runner_read_only_environment_refuses_a_mutating_runbook_before_it_starts() {
    let mut s = Session::start("ro").await;
    s.act(Action::OpenRunbooks(None));
    s.until("the picker", |app| {
        matches!(app.run_screen(), Some(RunScreen::Picker { runbooks, .. }) if runbooks.ready().is_some())
    })
    .await;
    assert!(render(&s.app).contains("refused"));
    s.act(Action::Back);
    s.start_run("marker-roundtrip").await;
    s.until("the refusal", |app| {
        app.runs.first().is_some_and(|r| !r.active())
    })
    .await;
    let run = s.run();
    let error = run.ended.clone().flatten().expect("refused");
    assert!(error.contains("read-only"), "{error}");
    assert!(run.view.steps.is_empty(), "nothing ran");
    assert_eq!(s.markers(), "*0\r\n");
    assert!(render(&s.app).contains("is read-only"));
}
