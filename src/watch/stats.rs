//! The stats watch: one [`Poller`] over every node of some caches (a cache that lists no
//! nodes, such as a serverless one, is polled through its endpoint), and a look for job
//! queues on each cache's primaries.

use super::{Sink, Update, Watch};
use crate::controlplane::ControlPlane;
use crate::domain::{Cache, NodeRole};
use crate::valkey::connect::{ConnectOptions, Connector};
use crate::valkey::roles;
use crate::valkey::stats::{PollTarget, Poller, PollerConfig, poll_nodes};
use std::sync::Arc;
use tokio::sync::{Notify, mpsc};

/// Keys whose presence marks a cache as holding job queues (Sidekiq, Celery/kombu).
pub const QUEUE_MARKERS: &[&str] = &[
    "queues",
    "schedule",
    "celery",
    "unacked",
    "_kombu.binding.celery",
];

/// How a stats watch polls.
#[derive(Debug, Clone, Copy)]
pub struct StatsConfig {
    pub options: ConnectOptions,
    pub poller: PollerConfig,
    /// Also look for job queues on each cache's primaries ([`Update::Queues`]).
    pub queues: bool,
}

/// Starts polling INFO of every node of `caches`. Credentials of every cache are resolved
/// concurrently (one slow parameter-store call must not hold up the others' first figures);
/// a cache whose credentials cannot be resolved is one [`Update::Failed`].
pub fn stats<T: Send + 'static>(
    plane: Option<Arc<dyn ControlPlane>>,
    caches: Vec<Cache>,
    config: StatsConfig,
    sink: Sink<T>,
) -> Watch {
    Watch::spawn(move |poke| run(plane, caches, config, sink, poke))
}

async fn run<T: Send + 'static>(
    plane: Option<Arc<dyn ControlPlane>>,
    caches: Vec<Cache>,
    config: StatsConfig,
    sink: Sink<T>,
    poke: Arc<Notify>,
) {
    let prepared = futures::future::join_all(caches.iter().map(|cache| {
        let plane = plane.clone();
        async move {
            let connector = Connector::for_cache(cache, plane.as_deref(), config.options).await;
            (cache, connector.map(Arc::new))
        }
    }))
    .await;
    let mut targets = Vec::new();
    for (cache, connector) in prepared {
        let connector = match connector {
            Ok(c) => c,
            Err(error) => {
                let failed = Update::Failed {
                    cache: cache.name.clone(),
                    error,
                };
                if !sink.send(failed).await {
                    return;
                }
                continue;
            }
        };
        if config.queues {
            tokio::spawn(detect_queues(
                cache.clone(),
                connector.clone(),
                sink.clone(),
            ));
        }
        targets.extend(PollTarget::for_cache(cache, &connector));
    }
    let (stats_tx, mut stats_rx) = mpsc::channel(256);
    let poller = Poller::spawn(targets, config.poller, stats_tx);
    loop {
        tokio::select! {
            event = stats_rx.recv() => {
                let Some(event) = event else { return };
                if !sink.send(Update::Stats(event)).await {
                    return;
                }
            }
            _ = poke.notified() => poller.refresh(),
        }
    }
}

/// Looks for job queues on the cache and reports the answer.
async fn detect_queues<T: Send + 'static>(cache: Cache, connector: Arc<Connector>, sink: Sink<T>) {
    let queues = has_queue_markers(cache.clone(), &connector).await;
    let _ = sink
        .send(Update::Queues {
            cache: cache.name,
            queues,
        })
        .await;
}

/// Whether a primary of `cache` holds a Sidekiq/Celery marker key. Roles the control plane
/// does not give (cluster mode on AWS) are learned from the nodes first; a node whose role
/// is still unknown (a cache that lists no nodes is asked through its endpoint) is asked
/// too. Each key is asked on its own: in cluster mode a node only answers for its own
/// slots, and errors there just mean "not here".
pub async fn has_queue_markers(mut cache: Cache, connector: &Connector) -> bool {
    if roles::needs_learning(&cache) {
        roles::learn(&mut cache, connector).await;
    }
    for node in poll_nodes(&cache)
        .iter()
        .filter(|n| n.role != NodeRole::Replica)
    {
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
