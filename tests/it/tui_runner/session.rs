//! The harness of the engine tests: an estate on a real server, `App` and the real
//! `Workers`, and a loop that feeds background results back as actions.

use crate::harness::valkey::{raw_command, server};
use async_trait::async_trait;
use cachedeck::config::{EnvConfig, Settings};
use cachedeck::controlplane::{
    CacheEvent, ControlPlane, ControlPlaneError, Discovery, EventQuery, Parameter, PutParameter,
};
use cachedeck::domain::Environment;
use cachedeck::estate::{Estate, PlaneFactory};
use cachedeck::sandbox::params::ParamStore;
use cachedeck::tui::action::{Action, Route};
use cachedeck::tui::app::{App, RunScreen, RunSession};
use cachedeck::tui::run_view::StepPhase;
use cachedeck::tui::workers::Workers;
use cachedeck::valkey::server::ValkeyServer;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// A control plane with nothing to discover (the cache comes from the config's URL) and a
/// real create-only parameter store for the run locks.
pub struct FakePlane {
    env: Environment,
    params: ParamStore,
    _dir: tempfile::TempDir,
}

impl FakePlane {
    pub fn new(env: Environment) -> FakePlane {
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
pub struct Session {
    pub app: App,
    workers: Workers,
    rx: mpsc::Receiver<Action>,
    pub server: ValkeyServer,
    runs_dir: std::path::PathBuf,
    _home: tempfile::TempDir,
}

impl Session {
    pub async fn start(env: &str) -> Session {
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

    pub fn act(&mut self, action: Action) {
        for effect in self.app.update(action) {
            self.workers.run(effect);
        }
    }

    pub fn type_text(&mut self, text: &str) {
        for c in text.chars() {
            self.act(Action::PromptInput(c));
        }
    }

    /// Applies background results until `done` holds (30 s at most).
    pub async fn until(&mut self, what: &str, done: impl Fn(&App) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !done(&self.app) {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(action)) => self.act(action),
                Ok(None) => panic!("action channel closed waiting for {what}"),
                Err(_) => panic!("timed out waiting for {what}; runs: {:?}", self.app.runs),
            }
        }
    }

    pub fn run(&self) -> &RunSession {
        self.app.runs.first().expect("a run")
    }

    /// `:run NAME`, then Enter on its form with the defaults.
    pub async fn start_run(&mut self, name: &str) {
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

    pub fn journal_states(&self) -> Vec<String> {
        let id = &self.run().view.run_id;
        let text =
            std::fs::read_to_string(self.runs_dir.join(format!("{id}.jsonl"))).expect("journal");
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|r| r["state"].as_str().map(str::to_string))
            .collect()
    }

    pub fn markers(&self) -> String {
        raw_command(self.server.port(), &["KEYS", "cachedeck:marker:*"])
    }
}

pub fn phases(run: &RunSession) -> Vec<(String, StepPhase)> {
    run.view
        .steps
        .iter()
        .map(|s| (s.id.clone(), s.phase.clone()))
        .collect()
}
