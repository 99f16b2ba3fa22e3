//! The detail watch of one cache: SLOWLOG of every node every few seconds (one connection
//! per node, made again after a failure), and the control plane's events and snapshots of
//! the cache.

use super::{Sink, Update, Watch};
use crate::controlplane::ControlPlane;
use crate::domain::{Cache, Endpoint};
use crate::valkey::connect::{ConnectOptions, Connector, NodeConnection};
use crate::valkey::stats::{SlowlogEntry, fetch_slowlog};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How a detail watch polls.
#[derive(Debug, Clone, Copy)]
pub struct DetailConfig {
    pub options: ConnectOptions,
    /// How often SLOWLOG is read.
    pub slowlog_interval: Duration,
    /// Entries read per node.
    pub slowlog_count: usize,
    /// How often the control plane's events are read.
    pub events_interval: Duration,
    /// How far back events are read.
    pub events_window: time::Duration,
}

impl DetailConfig {
    /// SLOWLOG every 5 s (32 entries), events of the last 24 h every `events_interval`.
    pub fn new(options: ConnectOptions, events_interval: Duration) -> DetailConfig {
        DetailConfig {
            options,
            slowlog_interval: Duration::from_secs(5),
            slowlog_count: 32,
            events_interval,
            events_window: time::Duration::hours(24),
        }
    }
}

/// Starts the detail watch of `cache`. Without a control plane (a cache named by URL in the
/// config) there are no events; a cache that cannot be connected to reports one
/// [`Update::Slowlog`] failure under its own name each round.
pub fn detail<T: Send + 'static>(
    plane: Option<Arc<dyn ControlPlane>>,
    cache: Cache,
    config: DetailConfig,
    sink: Sink<T>,
) -> Watch {
    Watch::spawn(move |poke| run(plane, cache, config, sink, poke))
}

async fn run<T: Send + 'static>(
    plane: Option<Arc<dyn ControlPlane>>,
    cache: Cache,
    config: DetailConfig,
    sink: Sink<T>,
    poke: Arc<Notify>,
) {
    let connector = Connector::for_cache(&cache, plane.as_deref(), config.options)
        .await
        .map_err(|e| e.to_string());
    let endpoints: Vec<(String, Endpoint)> = match &connector {
        Ok(_) => cache
            .nodes()
            .map(|n| (n.id.clone(), n.endpoint()))
            .collect(),
        Err(_) => Vec::new(),
    };
    let mut conns: Vec<Option<NodeConnection>> = endpoints.iter().map(|_| None).collect();
    let mut events_due = tokio::time::Instant::now();
    loop {
        if let Some(plane) = plane
            .as_ref()
            .filter(|_| tokio::time::Instant::now() >= events_due)
        {
            events_due = tokio::time::Instant::now() + config.events_interval;
            // Each kind's own source type, and a group's member clusters' node events.
            let since = time::OffsetDateTime::now_utc() - config.events_window;
            let result = crate::controlplane::events::for_cache(plane.as_ref(), &cache, since)
                .await
                .map_err(|e| e.to_string());
            if !sink.send(Update::Events(result)).await {
                return;
            }
            if let Some(query) = snapshot_query(&cache) {
                let result = plane
                    .describe_snapshots(query)
                    .await
                    .map_err(|e| e.to_string());
                if !sink.send(Update::Snapshots(result)).await {
                    return;
                }
            }
        }
        match &connector {
            Ok(connector) => {
                let fetches = endpoints.iter().zip(conns.iter_mut()).map(
                    |((node, endpoint), slot)| async move {
                        let result =
                            slowlog_of(connector, endpoint, slot, config.slowlog_count).await;
                        (node.clone(), result)
                    },
                );
                for (node, result) in futures::future::join_all(fetches).await {
                    if !sink.send(Update::Slowlog { node, result }).await {
                        return;
                    }
                }
            }
            Err(reason) => {
                let failed = Update::Slowlog {
                    node: cache.name.clone(),
                    result: Err(reason.clone()),
                };
                if !sink.send(failed).await {
                    return;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(config.slowlog_interval) => {}
            _ = poke.notified() => events_due = tokio::time::Instant::now(),
        }
    }
}

/// Which snapshots belong to `cache`: AWS keeps them for replication groups and serverless
/// caches only.
pub fn snapshot_query(cache: &Cache) -> Option<crate::controlplane::SnapshotQuery> {
    use crate::domain::CacheKind;
    let serverless = match cache.kind {
        CacheKind::ReplicationGroup => false,
        CacheKind::Serverless => true,
        _ => return None,
    };
    Some(crate::controlplane::SnapshotQuery {
        cache: Some(cache.name.clone()),
        name: None,
        serverless,
    })
}

async fn slowlog_of(
    connector: &Connector,
    endpoint: &Endpoint,
    slot: &mut Option<NodeConnection>,
    count: usize,
) -> Result<Vec<SlowlogEntry>, String> {
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
    let result = fetch_slowlog(conn, count).await;
    if result.is_err() {
        // Reconnect next time: the link may be the problem.
        *slot = None;
    }
    result.map_err(|e| e.to_string())
}
