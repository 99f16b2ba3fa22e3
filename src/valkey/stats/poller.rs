//! The poller: one tokio task per node, INFO every interval under a deadline, results sent as
//! [`StatsEvent`] messages. A failing node backs off (interval × 2ⁿ up to a cap) and reports
//! each failure with its reason, while every other node keeps its own pace.

use super::{NodeKey, NodeSample, NodeStats};
use crate::domain::{Cache, Endpoint, Node, NodeHealth, NodeRole, RoleSource};
use crate::valkey::connect::{ConnectError, Connector, NodeConnection};
use crate::valkey::info::Info;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

/// How often and how patiently to poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollerConfig {
    pub interval: Duration,
    /// Longest wait between attempts on a failing node.
    pub max_backoff: Duration,
}

impl Default for PollerConfig {
    fn default() -> Self {
        PollerConfig {
            interval: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// One node to poll.
#[derive(Debug, Clone)]
pub struct PollTarget {
    pub key: NodeKey,
    pub endpoint: Endpoint,
    pub connector: Arc<Connector>,
}

impl PollTarget {
    /// One target per node of `cache`; a cache that lists no nodes (serverless) is polled
    /// through its endpoint, as a node named after the cache.
    pub fn for_cache(cache: &Cache, connector: &Arc<Connector>) -> Vec<PollTarget> {
        poll_nodes(cache)
            .iter()
            .map(|n| PollTarget {
                key: NodeKey {
                    env: cache.env.clone(),
                    cache: cache.name.clone(),
                    node: n.id.clone(),
                },
                endpoint: n.endpoint(),
                connector: connector.clone(),
            })
            .collect()
    }
}

/// The nodes stats are polled from: every node of every shard, or the cache's endpoint as
/// one node when the control plane lists none.
pub fn poll_nodes(cache: &Cache) -> Vec<Node> {
    let nodes: Vec<Node> = cache.nodes().cloned().collect();
    if !nodes.is_empty() {
        return nodes;
    }
    cache
        .endpoint
        .iter()
        .map(|e| Node {
            id: cache.name.clone(),
            role: NodeRole::Unknown,
            host: e.host.clone(),
            port: e.port,
            availability_zone: None,
            status: cache.status.clone(),
            health: NodeHealth::Unknown,
            tls: e.tls,
            role_source: RoleSource::Unknown("known only by its endpoint".into()),
        })
        .collect()
}

/// What a poller reports.
#[derive(Debug, Clone)]
pub enum StatsEvent {
    /// A fresh sample, with figures derived against the node's previous sample.
    Sample {
        key: NodeKey,
        stats: Box<NodeStats>,
        info: Arc<Info>,
    },
    /// The node could not be reached or queried; `consecutive` counts failures in a row.
    Failed {
        key: NodeKey,
        error: ConnectError,
        consecutive: u32,
        retry_in: Duration,
    },
}

impl StatsEvent {
    pub fn key(&self) -> &NodeKey {
        match self {
            StatsEvent::Sample { key, .. } | StatsEvent::Failed { key, .. } => key,
        }
    }
}

/// The running pollers; dropping it stops them all.
pub struct Poller {
    tasks: Vec<JoinHandle<()>>,
    wake: Arc<Notify>,
}

impl Poller {
    /// Starts one task per target; each sends its first sample at once.
    pub fn spawn(
        targets: Vec<PollTarget>,
        config: PollerConfig,
        tx: mpsc::Sender<StatsEvent>,
    ) -> Poller {
        let wake = Arc::new(Notify::new());
        let tasks = targets
            .into_iter()
            .map(|t| tokio::spawn(poll_node(t, config, tx.clone(), wake.clone())))
            .collect();
        Poller { tasks, wake }
    }

    /// Polls every node now (the TUI's `r`), including ones waiting out a backoff.
    pub fn refresh(&self) {
        self.wake.notify_waiters();
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn poll_node(
    target: PollTarget,
    config: PollerConfig,
    tx: mpsc::Sender<StatsEvent>,
    wake: Arc<Notify>,
) {
    let mut conn: Option<NodeConnection> = None;
    let mut previous: Option<NodeSample> = None;
    let mut failures: u32 = 0;
    loop {
        let next = match sample_node(&target, &mut conn).await {
            Ok(sample) => {
                failures = 0;
                let stats = NodeStats::derive(&sample, previous.as_ref());
                let event = StatsEvent::Sample {
                    key: target.key.clone(),
                    stats: Box::new(stats),
                    info: sample.info.clone(),
                };
                previous = Some(sample);
                if tx.send(event).await.is_err() {
                    return;
                }
                config.interval
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                let retry_in = backoff(config, failures);
                tracing::debug!(node = %target.key.node, %error, "stats poll failed");
                let event = StatsEvent::Failed {
                    key: target.key.clone(),
                    error,
                    consecutive: failures,
                    retry_in,
                };
                if tx.send(event).await.is_err() {
                    return;
                }
                retry_in
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(next) => {}
            _ = wake.notified() => {}
        }
    }
}

/// One INFO from the node, (re)connecting as needed. A connection that broke since the last
/// poll gets one immediate reconnect, so a node that went away is reported as refused
/// (down) at once instead of after another interval.
pub async fn sample_node(
    target: &PollTarget,
    conn: &mut Option<NodeConnection>,
) -> Result<NodeSample, ConnectError> {
    if let Some(c) = conn.as_mut() {
        match c.info().await {
            Ok((info, took)) => return Ok(NodeSample::new(info, took)),
            Err(e) if !e.is_transient() => return Err(e),
            Err(_) => *conn = None,
        }
    }
    let mut fresh = target.connector.connect(&target.endpoint).await?;
    let (info, took) = fresh.info().await?;
    *conn = Some(fresh);
    Ok(NodeSample::new(info, took))
}

/// interval × 2^(n-1), capped; never shorter than the interval.
fn backoff(config: PollerConfig, failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    config
        .interval
        .saturating_mul(factor)
        .min(config.max_backoff.max(config.interval))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let c = PollerConfig {
            interval: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
        };
        let waits: Vec<u64> = (1..=6).map(|n| backoff(c, n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 10, 10]);
        assert_eq!(backoff(c, u32::MAX), Duration::from_secs(10));
    }
}
