//! The watch service: everything that talks to Valkey or the control plane on a timer for a
//! live view — live stats of every node of some caches (INFO through a
//! [`Poller`](crate::valkey::stats::Poller)), whether a cache holds job queues, and the detail
//! watch of one cache (SLOWLOG of every node, the control plane's events). It knows no front
//! end: a watch reports [`Update`]s through a [`Sink`], which turns each into whatever its
//! consumer's channel carries (the TUI's `Action`s tagged with the watch id, or the updates
//! themselves for `cachedeck stats`).
//!
//! A watch runs as one tokio task until its [`Watch`] handle is dropped (which aborts it and,
//! with it, its pollers and connections) or its consumer's channel closes. It never waits on
//! a node: one that stops answering is reported and the others keep their pace.

mod detail;
mod stats;

pub use detail::{DetailConfig, detail, snapshot_query};
pub use stats::{QUEUE_MARKERS, StatsConfig, has_queue_markers, stats};

use crate::controlplane::CacheEvent;
use crate::valkey::connect::ConnectError;
use crate::valkey::stats::{SlowlogEntry, StatsEvent};
use std::sync::Arc;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

/// What a watch reports.
#[derive(Debug)]
pub enum Update {
    /// A stats sample or failure of one node.
    Stats(StatsEvent),
    /// The watch could not start for one cache (e.g. its password is not readable); its
    /// nodes are not polled.
    Failed { cache: String, error: ConnectError },
    /// Whether a cache holds job queues (Sidekiq, Celery), so eviction would lose jobs.
    Queues { cache: String, queues: bool },
    /// SLOWLOG GET of one node of the watched cache (or, when the cache could not be
    /// connected to at all, the cache's name with the reason).
    Slowlog {
        node: String,
        result: Result<Vec<SlowlogEntry>, String>,
    },
    /// Recent control-plane events of the watched cache.
    Events(Result<Vec<CacheEvent>, String>),
    /// The snapshots of the watched cache (DescribeSnapshots / DescribeServerlessCacheSnapshots);
    /// only for replication groups and serverless caches.
    Snapshots(Result<Vec<crate::controlplane::Snapshot>, String>),
}

/// Where a watch sends its updates: a channel of the consumer's own type and the function
/// that makes an update into it.
pub struct Sink<T> {
    tx: mpsc::Sender<T>,
    wrap: Arc<dyn Fn(Update) -> T + Send + Sync>,
}

impl<T> Clone for Sink<T> {
    fn clone(&self) -> Self {
        Sink {
            tx: self.tx.clone(),
            wrap: self.wrap.clone(),
        }
    }
}

impl<T: Send + 'static> Sink<T> {
    pub fn new(tx: mpsc::Sender<T>, wrap: impl Fn(Update) -> T + Send + Sync + 'static) -> Self {
        Sink {
            tx,
            wrap: Arc::new(wrap),
        }
    }

    /// Sends one update; false when the consumer is gone (the watch then ends).
    pub async fn send(&self, update: Update) -> bool {
        self.tx.send((self.wrap)(update)).await.is_ok()
    }
}

impl Sink<Update> {
    /// A sink that passes the updates on as they are.
    pub fn plain(tx: mpsc::Sender<Update>) -> Self {
        Sink::new(tx, |u| u)
    }
}

/// A running watch. Dropping it stops the watch.
pub struct Watch {
    task: JoinHandle<()>,
    poke: Arc<Notify>,
}

impl Watch {
    fn spawn<F>(work: impl FnOnce(Arc<Notify>) -> F) -> Watch
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let poke = Arc::new(Notify::new());
        let task = tokio::spawn(work(poke.clone()));
        Watch { task, poke }
    }

    /// Polls now instead of at the next interval (the operator asked for fresh figures).
    pub fn poll_now(&self) {
        self.poke.notify_waiters();
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}
