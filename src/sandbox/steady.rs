//! Waiting until the sandbox is steady: in every shard, the node that answers ROLE as the
//! primary lists every other node of its shard as an online replica whose offset is within
//! [`CAUGHT_UP_BYTES`] of its own. `sandbox up` returns only then, so a failover test run
//! right after it does not meet replicas still syncing the seed data.

use super::client::{self, NodeAuth};
use super::params::ParamStore;
use super::state::{CacheState, State};
use crate::domain::NodeRole;
use crate::valkey::info::Info;
use std::time::{Duration, Instant};

/// A replica this close to its primary's offset has caught up (the failover preflight's
/// default limit is 1 MiB).
pub const CAUGHT_UP_BYTES: u64 = 16 * 1024;
/// How long `sandbox up` waits for the estate to become steady.
pub const STEADY_DEADLINE: Duration = Duration::from_secs(60);
const PROBE: Duration = Duration::from_millis(500);
const POLL: Duration = Duration::from_millis(100);

/// Why one shard is not steady yet, in words; `None` when it is.
async fn shard_unsteady(cache: &CacheState, shard: usize, auth: &NodeAuth) -> Option<String> {
    let s = &cache.shards[shard];
    if s.nodes.len() < 2 {
        return None;
    }
    let name = format!("{}/{} shard {}", cache.env, cache.name, s.id);
    let mut primary = None;
    for n in &s.nodes {
        match client::role(n.port, auth, PROBE).await {
            Ok(NodeRole::Primary) => primary = Some(n),
            Ok(_) => {}
            Err(e) => return Some(format!("{name}: node {} does not answer: {e}", n.id)),
        }
    }
    let Some(primary) = primary else {
        return Some(format!("{name}: no primary yet"));
    };
    let mut conn = match client::connect(primary.port, auth, PROBE).await {
        Ok(c) => c,
        Err(e) => return Some(format!("{name}: {e}")),
    };
    let info = match client::command(&mut conn, redis::cmd("INFO").arg("replication"), PROBE).await
    {
        Ok(v) => Info::parse(&client::text_of(&v)),
        Err(e) => return Some(format!("{name}: {e}")),
    };
    let r = &info.replication;
    let head = r.master_repl_offset.unwrap_or(0);
    let online: Vec<_> = r
        .replicas
        .iter()
        .filter(|l| l.state.as_deref() == Some("online"))
        .collect();
    let want = s.nodes.len() - 1;
    if online.len() < want {
        return Some(format!(
            "{name}: {} of {want} replica(s) online",
            online.len()
        ));
    }
    let lag = online
        .iter()
        .map(|l| head.saturating_sub(l.offset.unwrap_or(0)))
        .max()
        .unwrap_or(0);
    (lag > CAUGHT_UP_BYTES).then(|| format!("{name}: a replica lags {lag} bytes"))
}

/// What is not steady yet, everywhere (empty: steady).
pub async fn unsteady(state: &State, params: &ParamStore) -> Vec<String> {
    let mut checks = Vec::new();
    for cache in &state.caches {
        let auth = NodeAuth::of(cache, params);
        for shard in 0..cache.shards.len() {
            let auth = auth.clone();
            checks.push(async move { shard_unsteady(cache, shard, &auth).await });
        }
    }
    futures::future::join_all(checks)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Waits up to `deadline` for every replica to be online and caught up; returns what was
/// still not steady when the deadline passed.
pub async fn wait(state: &State, params: &ParamStore, deadline: Duration) -> Result<(), String> {
    let until = Instant::now() + deadline;
    loop {
        let left = unsteady(state, params).await;
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() >= until {
            return Err(format!(
                "not steady after {}: {}",
                humantime::format_duration(deadline),
                left.join("; ")
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}
