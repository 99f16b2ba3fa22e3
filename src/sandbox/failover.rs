//! TestFailover in the sandbox: a real promotion (Valkey FAILOVER on the primary, or CLUSTER
//! FAILOVER on a replica in cluster mode), the quota counted from the events as AWS counts
//! it, and the events ElastiCache writes, in its words.

use super::client::{self, NodeAuth};
use super::events;
use super::params::ParamStore;
use super::plane::{FAILOVER_DEADLINE, FAILOVER_QUOTA, PROBE_TIMEOUT, SandboxControlPlane};
use super::state::NodeState;
use crate::controlplane::ControlPlaneError;
use crate::domain::{CacheKind, NodeRole};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Fails over one node group for real and records the events; see the module docs.
pub(super) async fn test_failover(
    plane: &SandboxControlPlane,
    replication_group: &str,
    node_group: &str,
) -> Result<(), ControlPlaneError> {
    let op = "TestFailover";
    let state = plane.state()?;
    let c = plane.find(&state, replication_group)?;
    match c.kind {
        CacheKind::ReplicationGroup => {}
        CacheKind::Serverless => {
            return Err(ControlPlaneError::Unsupported {
                operation: op.into(),
                target: replication_group.into(),
                why: "serverless caches have no nodes to fail over; AWS offers no TestFailover for them".into(),
            });
        }
        other => {
            return Err(ControlPlaneError::Unsupported {
                operation: op.into(),
                target: replication_group.into(),
                why: format!("it is a {other}, not a replication group"),
            });
        }
    }
    if !c.automatic_failover {
        return Err(ControlPlaneError::InvalidState {
            operation: op.into(),
            detail: format!("{replication_group} has automatic failover disabled"),
        });
    }
    let shard = c
        .shards
        .iter()
        .find(|s| s.id == node_group)
        .ok_or_else(|| ControlPlaneError::NotFound {
            what: format!(
                "node group {node_group} in {replication_group} (it has: {})",
                c.shards
                    .iter()
                    .map(|s| s.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })?;
    let history = events::read(&plane.dir, &plane.env.name)?;
    let used = events::failovers_in_last_day(&history, time::OffsetDateTime::now_utc());
    if used >= FAILOVER_QUOTA {
        return Err(ControlPlaneError::QuotaExceeded {
            operation: op.into(),
            detail: format!(
                "{used} node groups were test-failed-over in the last 24 hours; AWS allows {FAILOVER_QUOTA}"
            ),
        });
    }
    let auth = NodeAuth::of(&c, &plane.params);
    let probes = shard.nodes.iter().map(|n| {
        let auth = auth.clone();
        async move { client::role(n.port, &auth, PROBE_TIMEOUT).await }
    });
    let roles: Vec<_> = futures::future::join_all(probes).await;
    let primary = shard
        .nodes
        .iter()
        .zip(&roles)
        .find(|(_, r)| matches!(r, Ok(NodeRole::Primary)))
        .map(|(n, _)| n.clone());
    let replicas: Vec<_> = shard
        .nodes
        .iter()
        .zip(&roles)
        .filter(|(_, r)| matches!(r, Ok(NodeRole::Replica)))
        .map(|(n, _)| n.clone())
        .collect();
    let (Some(old), false) = (primary, replicas.is_empty()) else {
        return Err(ControlPlaneError::InvalidState {
            operation: op.into(),
            detail: format!(
                "node group {node_group} of {replication_group} needs a live primary and a live replica"
            ),
        });
    };
    // The "Test Failover API called" event is written by whoever carries the failover out,
    // once it is queued: a caller killed between the two then leaves neither an event
    // without a failover nor a failover without its event.
    let accepted = Accepted {
        env: plane.env.name.clone(),
        group: replication_group.to_string(),
        node_group: node_group.to_string(),
        old,
        replicas,
    };
    // ElastiCache answers once it accepted the request and carries the failover out on its
    // own: a caller killed right after the call still gets its failover. The endpoint
    // daemon plays that part; without a live daemon it is done here.
    let daemon_alive = state
        .daemon
        .as_ref()
        .is_some_and(|d| crate::valkey::server::pid_alive(d.pid));
    if daemon_alive && enqueue(&plane.dir, &accepted).is_ok() {
        return Ok(());
    }
    carry_out(&plane.dir, &plane.params, &accepted).await
}

/// A TestFailover accepted and not yet carried out.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Accepted {
    env: String,
    group: String,
    #[serde(default)]
    node_group: String,
    old: NodeState,
    replicas: Vec<NodeState>,
}

/// Where accepted failovers wait for the endpoint daemon.
const QUEUE: &str = "failovers";

fn enqueue(dir: &Path, accepted: &Accepted) -> std::io::Result<()> {
    super::queue::put(dir, QUEUE, accepted)
}

/// The endpoint daemon's part: carries out every accepted failover, each once (a request is
/// claimed by renaming it before the work starts).
pub(super) async fn serve_queue(dir: PathBuf) {
    let params = ParamStore::new(&dir);
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        for request in super::queue::take_all::<Accepted>(&dir, QUEUE) {
            let dir = dir.clone();
            let params = params.clone();
            tokio::spawn(async move {
                if let Err(e) = carry_out(&dir, &params, &request).await {
                    tracing::warn!(group = %request.group, error = %e, "failover did not finish");
                }
            });
        }
    }
}

/// Promotes a replica of an accepted failover, re-points the other replicas, waits for the
/// old primary to sync as a replica, and writes ElastiCache's events on the way.
async fn carry_out(
    dir: &Path,
    params: &ParamStore,
    accepted: &Accepted,
) -> Result<(), ControlPlaneError> {
    let op = "TestFailover";
    let event = |source: &str, source_type: &str, message: &str| {
        events::append(dir, &accepted.env, source, source_type, message).map(|_| ())
    };
    event(
        &accepted.group,
        "replication-group",
        &events::test_failover_called(&accepted.node_group),
    )?;
    let state = super::plane::load_state(dir)?;
    let c = state
        .cache(&accepted.env, &accepted.group)
        .cloned()
        .ok_or_else(|| ControlPlaneError::NotFound {
            what: format!("replication group {} in {}", accepted.group, accepted.env),
        })?;
    let auth = NodeAuth::of(&c, params);
    let replication_group = accepted.group.as_str();
    let old = accepted.old.clone();
    let replicas = accepted.replicas.clone();
    let svc = |detail: String| ControlPlaneError::Service {
        operation: op.into(),
        detail,
    };
    let until = Instant::now() + FAILOVER_DEADLINE;
    let step = Duration::from_secs(3);
    if c.cluster_mode {
        let target = &replicas[0];
        let mut conn = client::connect(target.port, &auth, step)
            .await
            .map_err(svc)?;
        client::command(&mut conn, redis::cmd("CLUSTER").arg("FAILOVER"), step)
            .await
            .map_err(|e| svc(format!("CLUSTER FAILOVER on {}: {e}", target.id)))?;
    } else {
        let mut conn = client::connect(old.port, &auth, step).await.map_err(svc)?;
        client::command(
            &mut conn,
            redis::cmd("FAILOVER").arg("TIMEOUT").arg(10_000),
            step,
        )
        .await
        .map_err(|e| svc(format!("FAILOVER on {}: {e}", old.id)))?;
    }
    // The new primary: whichever former replica now answers as primary.
    let promoted = std::sync::Mutex::new(None);
    let promoted_ref = &promoted;
    super::cluster::wait(until, "a replica to be promoted", || {
        let replicas = replicas.clone();
        let auth = auth.clone();
        async move {
            for r in &replicas {
                if let Ok(NodeRole::Primary) = client::role(r.port, &auth, PROBE_TIMEOUT).await {
                    if let Ok(mut slot) = promoted_ref.lock() {
                        *slot = Some(r.clone());
                    }
                    return Ok(true);
                }
            }
            Ok(false)
        }
    })
    .await
    .map_err(svc)?;
    let new = promoted.lock().ok().and_then(|mut slot| slot.take());
    let Some(new) = new else {
        return Err(svc("no replica was promoted".into()));
    };
    event(
        replication_group,
        "replication-group",
        &format!(
            "Failover from primary node {} to replica node {} completed",
            old.id, new.id
        ),
    )?;
    event(
        &old.id,
        "cache-cluster",
        &format!("Recovering cache nodes {}", old.id),
    )?;
    if !c.cluster_mode {
        // FAILOVER leaves other replicas on the old primary; point them at the new one,
        // as ElastiCache does.
        for r in replicas.iter().filter(|r| r.port != new.port) {
            let mut conn = client::connect(r.port, &auth, step).await.map_err(svc)?;
            client::command(
                &mut conn,
                redis::cmd("REPLICAOF")
                    .arg(crate::valkey::server::HOST)
                    .arg(new.port),
                step,
            )
            .await
            .map_err(|e| svc(format!("REPLICAOF on {}: {e}", r.id)))?;
        }
    }
    super::cluster::wait(until, "the old primary to sync as a replica", || {
        let auth = auth.clone();
        let port = old.port;
        async move {
            let mut conn = client::connect(port, &auth, PROBE_TIMEOUT).await?;
            let info = client::command(
                &mut conn,
                redis::cmd("INFO").arg("replication"),
                PROBE_TIMEOUT,
            )
            .await?;
            let text = client::text_of(&info);
            Ok(text.contains("role:slave") && text.contains("master_link_status:up"))
        }
    })
    .await
    .map_err(svc)?;
    event(
        &old.id,
        "cache-cluster",
        &format!("Finished recovery for cache nodes {}", old.id),
    )?;
    Ok(())
}
