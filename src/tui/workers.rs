//! Background work the app asks for ([`Effect`]s): discovery, stats polling, slowlog and
//! events, and runbook runs (see [`runs`]). Each runs as tokio tasks that report back as actions on one channel, tagged with
//! the watch id so the app can drop results of a view it has left. Starting a watch aborts
//! the one it replaces (which drops its pollers and connections).

mod runbook;

use super::action::Action;
use super::app::Effect;
use crate::controlplane::ControlPlane;
use crate::domain::{Cache, Endpoint, Node, NodeRole};
use crate::estate::Estate;
use crate::runbook::engine::Engine;
use crate::runbook::session;
use crate::valkey::connect::{ConnectOptions, Connector, NodeConnection};
use crate::valkey::stats::{NodeKey, PollTarget, Poller, PollerConfig, fetch_slowlog};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often the cache view re-reads SLOWLOG.
const SLOWLOG_INTERVAL: Duration = Duration::from_secs(5);
/// How many slowlog entries per node.
const SLOWLOG_COUNT: usize = 32;
/// How far back events are fetched.
const EVENTS_WINDOW: time::Duration = time::Duration::hours(24);
/// Keys whose presence marks a cache as holding job queues (Sidekiq, Celery/kombu).
const QUEUE_MARKERS: &[&str] = &[
    "queues",
    "schedule",
    "celery",
    "unacked",
    "_kombu.binding.celery",
];

struct Running {
    task: JoinHandle<()>,
    poke: Arc<Notify>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The running background work of one TUI session.
pub struct Workers {
    estate: Arc<Estate>,
    tx: mpsc::Sender<Action>,
    stats: Option<Running>,
    detail: Option<Running>,
    engine: Engine,
    /// Cancellation of every run started, by run id. Runs are never aborted: dropping a
    /// run's task half-way would leave its lock and an unfinished journal behind.
    runs: HashMap<u64, CancellationToken>,
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
                let poke = Arc::new(Notify::new());
                let task = tokio::spawn(watch_stats(
                    id,
                    self.plane(&env),
                    caches,
                    self.options(),
                    self.estate.settings.stats_interval,
                    self.tx.clone(),
                    poke.clone(),
                ));
                self.stats = Some(Running { task, poke });
            }
            Effect::StopStats => self.stats = None,
            Effect::WatchDetail { id, env, cache } => {
                let poke = Arc::new(Notify::new());
                let task = tokio::spawn(watch_detail(
                    id,
                    self.plane(&env),
                    *cache,
                    self.options(),
                    self.estate.settings.control_plane_interval,
                    self.tx.clone(),
                    poke.clone(),
                ));
                self.detail = Some(Running { task, poke });
            }
            Effect::StopDetail => self.detail = None,
            Effect::PollNow => {
                for running in [&self.stats, &self.detail].into_iter().flatten() {
                    running.poke.notify_waiters();
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
                    cache,
                    runbook,
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
        }
    }

    fn plane(&self, env: &str) -> Option<Arc<dyn ControlPlane>> {
        self.estate.plane(env).ok()
    }

    fn options(&self) -> ConnectOptions {
        let t = self.estate.settings.valkey_timeout;
        ConnectOptions {
            connect_timeout: t,
            command_timeout: t,
        }
    }
}

/// The endpoint to poll for each node of `cache`: the node's own address, with TLS when the
/// node speaks it.
fn node_endpoints(cache: &Cache) -> Vec<(Node, Endpoint)> {
    cache.nodes().map(|n| (n.clone(), n.endpoint())).collect()
}

async fn connector(
    cache: &Cache,
    plane: Option<&Arc<dyn ControlPlane>>,
    options: ConnectOptions,
) -> Result<Arc<Connector>, String> {
    Connector::for_cache(cache, plane.map(|p| p.as_ref()), options)
        .await
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

/// Polls INFO of every node of `caches` until aborted, forwarding results as actions.
async fn watch_stats(
    id: u64,
    plane: Option<Arc<dyn ControlPlane>>,
    caches: Vec<Cache>,
    options: ConnectOptions,
    interval: Duration,
    tx: mpsc::Sender<Action>,
    poke: Arc<Notify>,
) {
    // Credentials of every cache are resolved concurrently: one slow SSM call must not hold
    // up the others' first figures.
    let prepared = futures::future::join_all(caches.iter().map(|cache| {
        let plane = plane.clone();
        async move { (cache, connector(cache, plane.as_ref(), options).await) }
    }))
    .await;
    let mut targets = Vec::new();
    for (cache, connector) in prepared {
        let connector = match connector {
            Ok(c) => c,
            Err(reason) => {
                let action = Action::WatchFailed {
                    watch: id,
                    cache: cache.name.clone(),
                    reason,
                };
                if tx.send(action).await.is_err() {
                    return;
                }
                continue;
            }
        };
        let endpoints = node_endpoints(cache);
        tokio::spawn(detect_queues(
            id,
            cache.clone(),
            connector.clone(),
            tx.clone(),
        ));
        for (node, endpoint) in endpoints {
            targets.push(PollTarget {
                key: NodeKey {
                    env: cache.env.clone(),
                    cache: cache.name.clone(),
                    node: node.id.clone(),
                },
                endpoint,
                connector: connector.clone(),
            });
        }
    }
    let (stats_tx, mut stats_rx) = mpsc::channel(256);
    let config = PollerConfig {
        interval,
        ..PollerConfig::default()
    };
    let poller = Poller::spawn(targets, config, stats_tx);
    loop {
        tokio::select! {
            event = stats_rx.recv() => {
                let Some(event) = event else { return };
                let action = Action::Stats { watch: id, event: Box::new(event) };
                if tx.send(action).await.is_err() {
                    return;
                }
            }
            _ = poke.notified() => poller.refresh(),
        }
    }
}

/// Looks for Sidekiq/Celery keys on the cache's primaries and reports the answer.
async fn detect_queues(id: u64, cache: Cache, connector: Arc<Connector>, tx: mpsc::Sender<Action>) {
    let queues = has_queue_markers(cache.clone(), &connector).await;
    let _ = tx
        .send(Action::QueueCache {
            watch: id,
            cache: cache.name,
            queues,
        })
        .await;
}

/// Whether a primary of `cache` holds a Sidekiq/Celery marker key. Roles the control plane
/// does not give (cluster mode on AWS) are learned from the nodes first. Each key is asked
/// on its own: in cluster mode a node only answers for its own slots, and errors there just
/// mean "not here".
pub async fn has_queue_markers(mut cache: Cache, connector: &Connector) -> bool {
    if crate::valkey::roles::needs_learning(&cache) {
        crate::valkey::roles::learn(&mut cache, connector).await;
    }
    for node in cache.nodes().filter(|n| n.role == NodeRole::Primary) {
        let Ok(mut conn) = connector.connect(&node.endpoint()).await else {
            continue;
        };
        for key in QUEUE_MARKERS {
            if let Ok(1) = conn.query::<i64>(redis::cmd("EXISTS").arg(*key)).await {
                return true;
            }
        }
    }
    false
}

/// Polls the slowlog of every node and the control plane's events of one cache.
async fn watch_detail(
    id: u64,
    plane: Option<Arc<dyn ControlPlane>>,
    cache: Cache,
    options: ConnectOptions,
    events_interval: Duration,
    tx: mpsc::Sender<Action>,
    poke: Arc<Notify>,
) {
    let connector = connector(&cache, plane.as_ref(), options).await;
    let endpoints = match &connector {
        Ok(_) => node_endpoints(&cache),
        Err(_) => Vec::new(),
    };
    let mut conns: Vec<Option<NodeConnection>> = endpoints.iter().map(|_| None).collect();
    let mut events_due = tokio::time::Instant::now();
    loop {
        if let Some(plane) = plane
            .as_ref()
            .filter(|_| tokio::time::Instant::now() >= events_due)
        {
            events_due = tokio::time::Instant::now() + events_interval;
            let since = time::OffsetDateTime::now_utc() - EVENTS_WINDOW;
            let result = crate::controlplane::events::for_cache(plane.as_ref(), &cache, since)
                .await
                .map_err(|e| e.to_string());
            if tx.send(Action::Events { watch: id, result }).await.is_err() {
                return;
            }
        }
        match &connector {
            Ok(connector) => {
                let fetches =
                    endpoints
                        .iter()
                        .zip(conns.iter_mut())
                        .map(|((node, endpoint), slot)| {
                            let connector = connector.clone();
                            async move {
                                let result = slowlog_of(&connector, endpoint, slot).await;
                                (node.id.clone(), result)
                            }
                        });
                for (node, result) in futures::future::join_all(fetches).await {
                    if tx
                        .send(Action::Slowlog {
                            watch: id,
                            node,
                            result,
                        })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
            Err(reason) => {
                let action = Action::Slowlog {
                    watch: id,
                    node: cache.name.clone(),
                    result: Err(reason.clone()),
                };
                if tx.send(action).await.is_err() {
                    return;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(SLOWLOG_INTERVAL) => {}
            _ = poke.notified() => events_due = tokio::time::Instant::now(),
        }
    }
}

async fn slowlog_of(
    connector: &Connector,
    endpoint: &Endpoint,
    slot: &mut Option<NodeConnection>,
) -> Result<Vec<crate::valkey::stats::SlowlogEntry>, String> {
    if slot.is_none() {
        *slot = Some(
            connector
                .connect(endpoint)
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    let Some(conn) = slot.as_mut() else {
        return Err("no connection".into());
    };
    let result = fetch_slowlog(conn, SLOWLOG_COUNT).await;
    if result.is_err() {
        // Reconnect next time: the link may be the problem.
        *slot = None;
    }
    result.map_err(|e| e.to_string())
}
