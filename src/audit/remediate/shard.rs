//! One shard's remediation: passes over its primary (SCAN MATCH → PTTL → EXPIRE NX, one
//! pipeline each, in rate-limited chunks, paused by the latency guard), restarted from
//! cursor 0 on another server or after MOVED/READONLY, continued from the cursor otherwise.

use super::reply::{int, redirected, scan_reply, server_error, version};
use super::{RemediateOptions, ShardProgress};
use crate::audit::gentle::{self, GuardState, RateLimiter};
use crate::audit::topology::{self, Shard};
use crate::domain::Endpoint;
use crate::valkey::connect::{Connector, NodeConnection};
use crate::valkey::info::Info;
use rand::Rng;
use redis::Value;
use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Why a pass stopped.
enum PassError {
    /// A restart may help (lost connection, failover, MOVED); `from_zero` when the cursor
    /// cannot be trusted any more.
    Retry { why: String, from_zero: bool },
    /// It will fail the same way again (old server, a replica behind the endpoint).
    Fatal(String),
}

pub(super) struct ShardJob {
    pub key: String,
    pub connector: Connector,
    pub seed: Endpoint,
    pub node_tls: bool,
    pub shard: Shard,
    /// The logical database (SELECT), 0 in cluster mode.
    pub db: u32,
    /// Keys de-duplicated per pass (SCAN may return a key twice while a table shrinks);
    /// past this the set is dropped: a repeat only skews counts (EXPIRE NX is harmless).
    pub dedup_max: usize,
    pub opts: RemediateOptions,
    pub limiter: Arc<RateLimiter>,
    pub scan_limiter: Option<Arc<RateLimiter>>,
    /// TTLs this run may still set (max_keys less what is set), shared by every shard.
    pub budget: Arc<AtomicU64>,
    pub progress: Option<ShardProgress>,
    pub updates: mpsc::UnboundedSender<(String, ShardProgress)>,
    pub cancel: CancellationToken,
}

impl ShardJob {
    pub async fn run(mut self) -> ShardProgress {
        let mut p = self.progress.take().unwrap_or_default();
        if p.done && p.incomplete.is_none() {
            return p; // finished before the run was interrupted
        }
        p.done = false;
        p.incomplete = None;
        // Failures in a row: a pass that moved its cursor on resets the count, so a blip an
        // hour into a long, gentle run does not use up the restarts of a real failover.
        let mut failures = 0u32;
        let mut restarts_here = 0u32;
        loop {
            let before = (p.server_run_id.clone(), p.cursor);
            let result = self.pass(&mut p).await;
            if (p.server_run_id.clone(), p.cursor) != before && p.cursor != 0 {
                failures = 0;
            }
            match result {
                Ok(()) => return p,
                Err(PassError::Fatal(why)) => {
                    p.incomplete = Some(why);
                    return p;
                }
                Err(PassError::Retry { why, from_zero }) => {
                    if from_zero {
                        // Forget the server: the next pass starts again from cursor 0.
                        p.server_run_id.clear();
                    }
                    // ... but a shard that keeps moving (a long slot migration) stops somewhere.
                    let too_many = restarts_here >= 10 * (self.opts.shard_retries + 1);
                    if failures >= self.opts.shard_retries || too_many || self.cancel.is_cancelled()
                    {
                        p.incomplete = Some(format!(
                            "{why} (after {restarts_here} restarts; `cachedeck runs resume` continues from the last checkpoint)"
                        ));
                        return p;
                    }
                    failures += 1;
                    restarts_here += 1;
                    p.restarts += 1;
                    tracing::warn!(shard = %self.key, error = %why, "ttl-remediate: restarting a shard");
                    let _ = self.updates.send((self.key.clone(), p.clone()));
                    // Give a failover time to settle, then find the shard's primary again.
                    tokio::select! {
                        _ = self.cancel.cancelled() => {}
                        _ = tokio::time::sleep(Duration::from_millis(500 * u64::from(failures))) => {}
                    }
                    if let Some(s) = topology::rediscover(
                        &self.connector,
                        &self.shard,
                        &self.seed,
                        self.node_tls,
                    )
                    .await
                    {
                        self.shard = s;
                    }
                }
            }
        }
    }

    /// Connects to the shard's primary and checks it can take `EXPIRE … NX`.
    async fn open(&self) -> Result<(NodeConnection, Info), PassError> {
        let target = self.shard.primary.clone();
        let retry = |e: crate::valkey::connect::ConnectError| PassError::Retry {
            why: e.to_string(),
            from_zero: false,
        };
        let mut conn = self.connector.connect(&target).await.map_err(retry)?;
        let text: Vec<u8> = conn.query(&redis::cmd("INFO")).await.map_err(retry)?;
        let info = Info::parse(&String::from_utf8_lossy(&text));
        if let Some(role) = info.get("role")
            && role != "master"
        {
            return Err(PassError::Retry {
                why: format!(
                    "{} answers as a {role}, not the primary; writes go to primaries (give the primary or configuration endpoint)",
                    target.address()
                ),
                from_zero: true,
            });
        }
        let v = info.get("redis_version").and_then(version);
        if self.opts.apply && v.is_some_and(|v| v < (7, 0)) {
            return Err(PassError::Fatal(format!(
                "{} runs Redis {}; EXPIRE … NX needs Redis 7.0 or Valkey (upgrade, or set TTLs another way)",
                target.address(),
                info.get("redis_version").unwrap_or("?")
            )));
        }
        if self.db != 0 {
            let _: String = conn
                .query(redis::cmd("SELECT").arg(self.db))
                .await
                .map_err(|e| PassError::Fatal(format!("select database {}: {e}", self.db)))?;
        }
        Ok((conn, info))
    }

    /// One pass from `p.cursor` to the end of the keyspace (or until stopped).
    async fn pass(&self, p: &mut ShardProgress) -> Result<(), PassError> {
        let (mut conn, info) = self.open().await?;
        let node = conn.endpoint().address();
        let run_id = info.get("run_id").unwrap_or("").to_string();
        if run_id.is_empty() || p.server_run_id != run_id || p.node != node {
            p.restart(node.clone(), run_id);
        }
        let probe =
            self.connector
                .connect(conn.endpoint())
                .await
                .map_err(|e| PassError::Retry {
                    why: e.to_string(),
                    from_zero: false,
                })?;
        let guard = Arc::new(GuardState::default());
        let stop = self.cancel.child_token();
        let guard_task = tokio::spawn(gentle::run_guard(
            probe,
            self.opts.guard,
            guard.clone(),
            stop.clone(),
        ));
        let result = self.walk(&mut conn, p, &guard).await;
        stop.cancel();
        let _ = guard_task.await;
        result
    }

    async fn walk(
        &self,
        conn: &mut NodeConnection,
        p: &mut ShardProgress,
        guard: &GuardState,
    ) -> Result<(), PassError> {
        let hasher = RandomState::new();
        let mut seen: Option<HashSet<u64>> = Some(HashSet::new());
        let chunk = self.limiter.batch_hint().max(1) as usize;
        loop {
            if self.cancel.is_cancelled() {
                p.incomplete = Some("interrupted".into());
                return Ok(());
            }
            if let Some(l) = &self.scan_limiter {
                l.take(u64::from(self.opts.count.max(1)), &self.cancel)
                    .await;
            }
            let mut scan = redis::cmd("SCAN");
            scan.arg(p.cursor)
                .arg("MATCH")
                .arg(self.opts.matcher.server_glob())
                .arg("COUNT")
                .arg(self.opts.count.max(1));
            let reply: Value = self.query(conn, &scan).await?;
            let (next, keys) = scan_reply(reply).map_err(|why| PassError::Retry {
                why,
                from_zero: true,
            })?;
            crate::valkey::caps::check_scan_batch(&keys).map_err(PassError::Fatal)?;
            let mut matching = Vec::with_capacity(keys.len());
            for k in keys {
                if !self.opts.matcher.matches(&k) {
                    continue;
                }
                if let Some(set) = seen.as_mut() {
                    if !set.insert(hasher.hash_one(&k)) {
                        continue;
                    }
                    if set.len() > self.dedup_max {
                        seen = None;
                    }
                }
                matching.push(k);
            }
            let snapshot = p.clone();
            for part in matching.chunks(chunk) {
                let go_on = if !self.wait_guard(guard, p).await {
                    Ok(false)
                } else {
                    self.limiter.take(part.len() as u64, &self.cancel).await;
                    if self.cancel.is_cancelled() {
                        p.incomplete = Some("interrupted".into());
                        Ok(false)
                    } else {
                        self.handle(conn, p, part).await
                    }
                };
                if !matches!(go_on, Ok(true)) {
                    // The cursor stays before this batch: it will be scanned again.
                    p.rollback_batch(&snapshot);
                    return go_on.map(|_| ());
                }
            }
            // Everything the cursor covered is handled: only now does it move on, so a
            // checkpoint never claims keys that were not dealt with.
            p.cursor = next;
            p.done = next == 0;
            let _ = self.updates.send((self.key.clone(), p.clone()));
            if p.done {
                return Ok(());
            }
        }
    }

    /// Waits while the latency guard pauses; `false` (with the reason recorded) when it
    /// aborted or the run was cancelled.
    async fn wait_guard(&self, guard: &GuardState, p: &mut ShardProgress) -> bool {
        while guard.paused.load(Ordering::Relaxed) {
            if guard.aborted.load(Ordering::Relaxed) {
                p.incomplete = Some(format!(
                    "latency guard: PING p99 on {} stayed over {:?}; stopped (resume when the server is calmer)",
                    p.node, self.opts.guard.p99_threshold
                ));
                return false;
            }
            tokio::select! {
                _ = self.cancel.cancelled() => {
                    p.incomplete = Some("interrupted".into());
                    return false;
                }
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
        true
    }

    /// PTTL of `keys`, then (applying) EXPIRE NX on those without TTL. `false` when the
    /// max_keys budget ran out (recorded as the reason).
    async fn handle(
        &self,
        conn: &mut NodeConnection,
        p: &mut ShardProgress,
        keys: &[Vec<u8>],
    ) -> Result<bool, PassError> {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for k in keys {
            pipe.cmd("PTTL").arg(k);
        }
        let replies = self.pipeline(conn, &pipe, keys.len()).await?;
        let mut bare = Vec::new();
        for (k, r) in keys.iter().zip(&replies) {
            if redirected(r) {
                return Err(PassError::Retry {
                    why: format!("PTTL answered {}", server_error(r).unwrap_or_default()),
                    from_zero: true,
                });
            }
            p.matched += 1;
            p.key_bytes += k.len() as u64;
            match int(r) {
                Some(-1) => {
                    p.no_ttl += 1;
                    if p.examples.len() < self.opts.examples {
                        p.examples.push(crate::escape::escape_capped(k, 120));
                    }
                    bare.push(k);
                }
                Some(-2) => p.vanished += 1,
                Some(_) => p.with_ttl += 1,
                None => {
                    return Err(PassError::Retry {
                        why: format!(
                            "PTTL failed: {}",
                            server_error(r).unwrap_or_else(|| "unexpected reply".into())
                        ),
                        from_zero: false,
                    });
                }
            }
        }
        if !self.opts.apply || bare.is_empty() {
            return Ok(true);
        }
        let want = bare.len() as u64;
        let granted = self
            .budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| {
                Some(b.saturating_sub(want))
            })
            .map_or(0, |before| before.min(want)) as usize;
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for k in &bare[..granted] {
            pipe.cmd("EXPIRE").arg(*k).arg(self.secs()).arg("NX");
        }
        if granted > 0 {
            let replies = self.pipeline(conn, &pipe, granted).await?;
            for r in &replies {
                match int(r) {
                    Some(1) => p.updated += 1,
                    Some(_) => p.raced += 1,
                    None if redirected(r) => {
                        return Err(PassError::Retry {
                            why: format!("EXPIRE answered {}", server_error(r).unwrap_or_default()),
                            from_zero: true,
                        });
                    }
                    None => {
                        return Err(PassError::Fatal(format!(
                            "EXPIRE … NX failed on {}: {} (EXPIRE NX needs Redis 7.0 or Valkey)",
                            p.node,
                            server_error(r).unwrap_or_else(|| "unexpected reply".into())
                        )));
                    }
                }
            }
        }
        if granted < bare.len() {
            p.incomplete = Some(format!(
                "max_keys {} reached: more keys without TTL than the run may change; raise max_keys and run again",
                self.opts.max_keys
            ));
            return Ok(false);
        }
        Ok(true)
    }

    /// The TTL for one key, in seconds, spread by the jitter.
    fn secs(&self) -> u64 {
        let base = self.opts.ttl.as_secs().max(1) as f64;
        let j = f64::from(self.opts.jitter_pct.min(90)) / 100.0;
        let spread = if j > 0.0 {
            rand::rng().random_range(-j..=j)
        } else {
            0.0
        };
        (base * (1.0 + spread)).round().max(1.0) as u64
    }

    async fn query(&self, conn: &mut NodeConnection, cmd: &redis::Cmd) -> Result<Value, PassError> {
        let mut link = conn.raw().clone();
        match tokio::time::timeout(self.opts.batch_timeout, cmd.query_async::<Value>(&mut link))
            .await
        {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(PassError::Retry {
                why: format!(
                    "{}: {}",
                    conn.endpoint().address(),
                    crate::escape::escape_capped(e.to_string(), 200)
                ),
                // The next pass compares the server's run_id: a different server restarts
                // from cursor 0, the same one continues.
                from_zero: false,
            }),
            Err(_) => Err(PassError::Retry {
                why: format!(
                    "{}: no reply within {:?}",
                    conn.endpoint().address(),
                    self.opts.batch_timeout
                ),
                from_zero: false,
            }),
        }
    }

    async fn pipeline(
        &self,
        conn: &mut NodeConnection,
        pipe: &redis::Pipeline,
        want: usize,
    ) -> Result<Vec<Value>, PassError> {
        let mut link = conn.raw().clone();
        let replies: Vec<Value> = match tokio::time::timeout(
            self.opts.batch_timeout,
            pipe.query_async(&mut link),
        )
        .await
        {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                return Err(PassError::Retry {
                    why: format!(
                        "{}: {}",
                        conn.endpoint().address(),
                        crate::escape::escape_capped(e.to_string(), 200)
                    ),
                    from_zero: false,
                });
            }
            Err(_) => {
                return Err(PassError::Retry {
                    why: format!(
                        "{}: no reply to a batch within {:?}",
                        conn.endpoint().address(),
                        self.opts.batch_timeout
                    ),
                    from_zero: false,
                });
            }
        };
        if replies.len() != want {
            return Err(PassError::Retry {
                why: format!("expected {want} replies to a batch, got {}", replies.len()),
                from_zero: false,
            });
        }
        Ok(replies)
    }
}
