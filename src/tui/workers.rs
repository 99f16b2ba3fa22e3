//! Background work the app asks for ([`Effect`]s): discovery, the watches of the watch
//! service ([`crate::watch`]: live stats, queue checks, slowlog and events), and runbook runs
//! (see [`runbook`]). Everything reports back as actions on one channel, a watch's tagged
//! with its id so the app can drop results of a view it has left. Starting a watch drops the
//! one it replaces (which stops its pollers and connections). Nothing here talks to Valkey
//! or the control plane itself.

mod runbook;

use super::action::Action;
use super::app::Effect;
use crate::controlplane::ControlPlane;
use crate::estate::Estate;
use crate::runbook::engine::Engine;
use crate::runbook::session;
use crate::valkey::connect::ConnectOptions;
use crate::valkey::stats::PollerConfig;
use crate::watch::{self, DetailConfig, Sink, StatsConfig, Update, Watch};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The running background work of one TUI session.
pub struct Workers {
    estate: Arc<Estate>,
    tx: mpsc::Sender<Action>,
    stats: Option<Watch>,
    detail: Option<Watch>,
    engine: Engine,
    /// Cancellation of every run started, by run id. Runs are never aborted: dropping a
    /// run's task half-way would leave its lock and an unfinished journal behind.
    runs: HashMap<u64, CancellationToken>,
}

/// A watch's updates as the app's actions, tagged with the watch id.
fn action(watch: u64, update: Update) -> Action {
    match update {
        Update::Stats(event) => Action::Stats {
            watch,
            event: Box::new(event),
        },
        Update::Failed { cache, error } => Action::WatchFailed {
            watch,
            cache,
            reason: error.to_string(),
        },
        Update::Queues { cache, queues } => Action::QueueCache {
            watch,
            cache,
            queues,
        },
        Update::Slowlog { node, result } => Action::Slowlog {
            watch,
            node,
            result,
        },
        Update::Events(result) => Action::Events { watch, result },
        Update::Snapshots(result) => Action::Snapshots { watch, result },
    }
}

impl Workers {
    pub fn new(estate: Arc<Estate>, tx: mpsc::Sender<Action>) -> Workers {
        Workers {
            engine: session::engine(&estate),
            estate,
            tx,
            stats: None,
            detail: None,
            runs: HashMap::new(),
        }
    }

    /// Journals runs into `dir` instead of the state directory (tests).
    pub fn with_journal_dir(mut self, dir: PathBuf) -> Workers {
        self.engine.journal_dir = dir;
        self
    }

    /// Starts or stops what `effect` asks for. Never waits on the network.
    pub fn run(&mut self, effect: Effect) {
        match effect {
            Effect::Discover(only) => {
                let estate = self.estate.clone();
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    for found in estate.discover_all(only.as_deref()).await {
                        let action = Action::Discovered {
                            env: found.env.name,
                            result: found.result.map_err(|e| e.to_string()),
                        };
                        if tx.send(action).await.is_err() {
                            return;
                        }
                    }
                });
            }
            Effect::WatchStats { id, env, caches } => {
                let config = StatsConfig {
                    options: ConnectOptions::from_settings(&self.estate.settings),
                    poller: PollerConfig {
                        interval: self.estate.settings.stats_interval,
                        ..PollerConfig::default()
                    },
                    queues: true,
                };
                self.stats = Some(watch::stats(
                    self.plane(&env),
                    caches,
                    config,
                    self.sink(id),
                ));
            }
            Effect::StopStats => self.stats = None,
            Effect::WatchDetail { id, env, cache } => {
                let config = DetailConfig::new(
                    ConnectOptions::from_settings(&self.estate.settings),
                    self.estate.settings.control_plane_interval,
                );
                self.detail = Some(watch::detail(
                    self.plane(&env),
                    *cache,
                    config,
                    self.sink(id),
                ));
            }
            Effect::StopDetail => self.detail = None,
            Effect::PollNow => {
                for running in [&self.stats, &self.detail].into_iter().flatten() {
                    running.poll_now();
                }
            }
            Effect::LoadRunbooks { env, cache } => {
                tokio::spawn(runbook::load_runbooks(env, *cache, self.tx.clone()));
            }
            Effect::StartRun {
                run,
                env,
                cache,
                runbook,
                params,
                dry_run,
            } => {
                let cancel = CancellationToken::new();
                self.runs.insert(run, cancel.clone());
                let start = runbook::Start {
                    run,
                    env,
                    cache: *cache,
                    runbook: *runbook,
                    params,
                    dry_run,
                };
                tokio::spawn(runbook::run(
                    self.estate.clone(),
                    self.engine.clone(),
                    start,
                    cancel,
                    self.tx.clone(),
                ));
            }
            Effect::CancelRun(run) => {
                if let Some(cancel) = self.runs.get(&run) {
                    cancel.cancel();
                }
            }
            // The consumers service (`crate::consumers`) finds them; no control-plane call here.
            Effect::LoadConsumers { id, env, cache } => {
                let plane = self.plane(&env);
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    let result = match plane {
                        Some(plane) => crate::consumers::discover(plane.as_ref(), &cache)
                            .await
                            .map_err(|e| e.to_string()),
                        None => Err(format!("environment {env} is not usable")),
                    };
                    let _ = tx.send(Action::Consumers { watch: id, result }).await;
                });
            }
            // Needs the terminal: the runtime handles it before effects reach the workers.
            Effect::ExecShell { .. } => {}
        }
    }

    fn plane(&self, env: &str) -> Option<Arc<dyn ControlPlane>> {
        self.estate.plane(env).ok()
    }

    fn sink(&self, watch: u64) -> Sink<Action> {
        Sink::new(self.tx.clone(), move |update| action(watch, update))
    }
}
