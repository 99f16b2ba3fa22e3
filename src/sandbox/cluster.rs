//! Forming a real Valkey cluster from fresh cluster-enabled nodes, from Rust: slots with
//! CLUSTER ADDSLOTSRANGE, the handshake with CLUSTER MEET, replicas with CLUSTER REPLICATE,
//! then waiting for `cluster_state:ok` everywhere.

use super::client::{self, NodeAuth};
use std::time::{Duration, Instant};

const STEP: Duration = Duration::from_secs(3);

/// One shard to form: its primary and replica ports.
#[derive(Debug, Clone)]
pub struct ShardPlan {
    pub primary: u16,
    pub replicas: Vec<u16>,
}

/// Slot ranges of `n` equal shards: `[(0, 5460), (5461, 10922), (10923, 16383)]` for 3.
pub fn slot_ranges(n: usize) -> Vec<(u16, u16)> {
    let n = n.max(1) as u32;
    (0..n)
        .map(|i| {
            let start = i * 16384 / n;
            let end = (i + 1) * 16384 / n - 1;
            (start as u16, end as u16)
        })
        .collect()
}

async fn run(port: u16, auth: &NodeAuth, cmd: &redis::Cmd) -> Result<redis::Value, String> {
    let mut conn = client::connect(port, auth, STEP).await?;
    client::command(&mut conn, cmd, STEP)
        .await
        .map_err(|e| format!("node {port}: {e}"))
}

/// Forms the cluster and waits (up to `deadline`) until it is healthy.
pub async fn form(shards: &[ShardPlan], auth: &NodeAuth, deadline: Duration) -> Result<(), String> {
    let until = Instant::now() + deadline;
    if shards.is_empty() {
        return Err("a cluster needs at least one node".into());
    }
    for (shard, (start, end)) in shards.iter().zip(slot_ranges(shards.len())) {
        run(
            shard.primary,
            auth,
            redis::cmd("CLUSTER")
                .arg("ADDSLOTSRANGE")
                .arg(start)
                .arg(end),
        )
        .await?;
    }
    join(shards, auth, until).await
}

/// The slots a node owns, from the `myself` line of its CLUSTER NODES.
pub async fn owned_slots(port: u16, auth: &NodeAuth) -> Result<Vec<(u16, u16)>, String> {
    let nodes = client::text_of(&run(port, auth, redis::cmd("CLUSTER").arg("NODES")).await?);
    let Some(line) = nodes.lines().find(|l| l.contains("myself")) else {
        return Ok(Vec::new());
    };
    Ok(line
        .split_whitespace()
        .skip(8)
        .filter(|f| !f.starts_with('['))
        .filter_map(|f| match f.split_once('-') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => f.parse().ok().map(|s| (s, s)),
        })
        .collect())
}

/// Gives each primary the slots of `ranges[i]` it does not own yet (a node started from an
/// RDB takes the slots of the keys it loaded by itself), then joins the cluster.
pub async fn complete(
    shards: &[ShardPlan],
    ranges: &[(u16, u16)],
    auth: &NodeAuth,
    deadline: Duration,
) -> Result<(), String> {
    let until = Instant::now() + deadline;
    for (shard, &(start, end)) in shards.iter().zip(ranges) {
        let owned = owned_slots(shard.primary, auth).await?;
        let mut slot = start as u32;
        while slot <= end as u32 {
            if owned
                .iter()
                .any(|&(a, b)| (a as u32..=b as u32).contains(&slot))
            {
                slot += 1;
                continue;
            }
            let mut last = slot;
            while last < end as u32
                && !owned
                    .iter()
                    .any(|&(a, b)| (a as u32..=b as u32).contains(&(last + 1)))
            {
                last += 1;
            }
            run(
                shard.primary,
                auth,
                redis::cmd("CLUSTER")
                    .arg("ADDSLOTSRANGE")
                    .arg(slot)
                    .arg(last),
            )
            .await?;
            slot = last + 1;
        }
    }
    join(shards, auth, until).await
}

/// MEET, REPLICATE, and the wait for a healthy cluster.
async fn join(shards: &[ShardPlan], auth: &NodeAuth, until: Instant) -> Result<(), String> {
    let all: Vec<u16> = shards
        .iter()
        .flat_map(|s| std::iter::once(s.primary).chain(s.replicas.iter().copied()))
        .collect();
    let Some(&first) = all.first() else {
        return Err("a cluster needs at least one node".into());
    };
    for &port in &all[1..] {
        run(
            first,
            auth,
            redis::cmd("CLUSTER")
                .arg("MEET")
                .arg(crate::valkey::server::HOST)
                .arg(port),
        )
        .await?;
    }
    // Every node must know every other before REPLICATE can name its primary.
    wait(until, "every node to learn the others", || async {
        for &port in &all {
            let nodes =
                client::text_of(&run(port, auth, redis::cmd("CLUSTER").arg("NODES")).await?);
            let known = nodes.lines().filter(|l| !l.contains("handshake")).count();
            if known < all.len() {
                return Ok(false);
            }
        }
        Ok(true)
    })
    .await?;
    for shard in shards {
        let id =
            client::text_of(&run(shard.primary, auth, redis::cmd("CLUSTER").arg("MYID")).await?);
        for &replica in &shard.replicas {
            run(
                replica,
                auth,
                redis::cmd("CLUSTER").arg("REPLICATE").arg(id.trim()),
            )
            .await?;
        }
    }
    wait(until, "cluster_state:ok on every node", || async {
        for &port in &all {
            let info = client::text_of(&run(port, auth, redis::cmd("CLUSTER").arg("INFO")).await?);
            if !info.contains("cluster_state:ok") {
                return Ok(false);
            }
        }
        for shard in shards {
            for &replica in &shard.replicas {
                let info = client::text_of(
                    &run(replica, auth, redis::cmd("INFO").arg("replication")).await?,
                );
                if !info.contains("master_link_status:up") {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    })
    .await
}

/// Polls `check` every 50 ms until it says yes or `until` passes.
pub async fn wait<F, Fut>(until: Instant, what: &str, mut check: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, String>>,
{
    let mut last_error = None;
    loop {
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_error = Some(e),
        }
        if Instant::now() > until {
            return Err(match last_error {
                Some(e) => format!("timed out waiting for {what} (last error: {e})"),
                None => format!("timed out waiting for {what}"),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_shards_cover_every_slot_once() {
        assert_eq!(
            slot_ranges(3),
            vec![(0, 5460), (5461, 10921), (10922, 16383)]
        );
        let ranges = slot_ranges(5);
        assert_eq!(ranges[0].0, 0);
        assert_eq!(ranges[4].1, 16383);
        for w in ranges.windows(2) {
            assert_eq!(w[0].1 + 1, w[1].0);
        }
    }
}
