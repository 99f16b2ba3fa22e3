//! The key TTL audit: scans a whole keyspace (every shard, in parallel, preferring replicas),
//! gently (rate limit, latency guard), and reports per key-name pattern how many keys have no
//! TTL, how their TTLs spread and how much memory they hold. Outside cluster mode every
//! logical database that holds keys is scanned (patterns are kept per database). Read-only:
//! it sends SCAN, PTTL, TYPE, MEMORY USAGE, DBSIZE, INFO keyspace, SELECT, CLUSTER NODES,
//! READONLY and PING — never KEYS, FLUSH*, CONFIG or DEBUG.
//!
//! A shard whose scan fails (failover, cursor error, lost connection) is rescanned from the
//! start against the shard's current topology, up to `shard_retries` times; after that the
//! report says `complete: false` with the reason — never silently short.

pub mod aggregate;
pub mod cost;
pub mod family;
pub mod gentle;
pub mod matcher;
pub mod pattern;
pub mod remediate;
pub mod report;
pub mod scan;
pub mod topology;

use crate::domain::Endpoint;
use crate::valkey::connect::{ConnectError, Connector, NodeConnection};
use aggregate::{Aggregate, AggregateLimits};
use gentle::{GuardState, LatencyGuard, RateLimiter};
use report::{AuditReport, ShardSummary};
use scan::{NodeScan, Progress, ScanSettings};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use topology::Shard;

/// How to audit.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// SCAN COUNT.
    pub count: u32,
    /// Keys per second over the whole cache (None: as fast as one pipeline per batch goes).
    pub rate_limit: Option<u64>,
    /// Send MEMORY USAGE … SAMPLES n per key.
    pub memory_samples: Option<u32>,
    pub max_patterns: usize,
    pub user_patterns: Vec<String>,
    pub top_n: usize,
    pub examples: usize,
    /// Keys per node deduplicated exactly (see [`scan`] for the trade-off).
    pub dedup_max_keys: usize,
    pub prefer_replicas: bool,
    pub shard_retries: u32,
    pub guard: LatencyGuard,
    pub batch_timeout: Duration,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            count: 1000,
            rate_limit: None,
            memory_samples: None,
            max_patterns: 1000,
            user_patterns: Vec::new(),
            top_n: 10,
            examples: 3,
            dedup_max_keys: 1_000_000,
            prefer_replicas: true,
            shard_retries: 2,
            guard: LatencyGuard::default(),
            batch_timeout: Duration::from_secs(10),
        }
    }
}

/// Why the audit could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("find the shards of {0}: CLUSTER NODES lists no shard with slots")]
    NoShards(String),
}

/// Audits the cache reachable at `seed`. `node_tls`: whether cluster nodes speak TLS.
pub async fn run(
    connector: &Connector,
    seed: &Endpoint,
    node_tls: bool,
    opts: &AuditOptions,
    progress: Option<mpsc::Sender<Progress>>,
    cancel: CancellationToken,
) -> Result<AuditReport, AuditError> {
    let started = Instant::now();
    let mut conn = connector.connect(seed).await?;
    let shards = topology::discover(&mut conn, node_tls).await?;
    drop(conn);
    if shards.is_empty() {
        return Err(AuditError::NoShards(seed.address()));
    }
    let cluster = shards.iter().any(|s| s.first_slot.is_some());
    let limiter = opts.rate_limit.map(RateLimiter::new);
    let settings = ScanSettings {
        count: opts.count,
        memory_samples: opts.memory_samples,
        dedup_max_keys: opts.dedup_max_keys,
        batch_timeout: opts.batch_timeout,
        limits: limits(opts),
    };
    let mut tasks = Vec::new();
    for shard in shards {
        let job = ShardJob {
            connector: connector.clone(),
            seed: seed.clone(),
            node_tls,
            cluster,
            shard,
            opts: opts.clone(),
            settings: settings.clone(),
            limiter: limiter.clone(),
            progress: progress.clone(),
            cancel: cancel.clone(),
        };
        tasks.push(tokio::spawn(job.run()));
    }
    let mut merged = Aggregate::new(limits(opts));
    let mut summaries = Vec::new();
    let mut reasons = Vec::new();
    let mut duplicates_possible = false;
    for t in tasks {
        match t.await {
            Ok((summary, Some(scan))) => {
                duplicates_possible |= scan.duplicates_possible;
                merged.merge(scan.aggregate);
                summaries.push(summary);
            }
            Ok((summary, None)) => summaries.push(summary),
            Err(e) => reasons.push(format!("a shard scanner stopped: {e}")),
        }
    }
    merged.fold_numeric_into_hex();
    Ok(AuditReport::build(
        &merged,
        summaries,
        reasons,
        duplicates_possible,
        opts.memory_samples.is_some(),
        started.elapsed().as_millis() as u64,
    ))
}

/// The logical databases holding keys on a node (INFO keyspace), 0 when none does: caches
/// outside cluster mode may spread an application's keys over several (`SELECT n`).
/// Where INFO is not allowed (a restricted ACL user), only database 0 is scanned.
pub(crate) async fn databases(conn: &mut NodeConnection) -> Vec<u32> {
    let text: String = match conn.query(redis::cmd("INFO").arg("keyspace")).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "audit: INFO keyspace refused; scanning database 0 only");
            return vec![0];
        }
    };
    let mut dbs: Vec<u32> = crate::valkey::info::Info::parse(&text)
        .keyspace
        .iter()
        .filter(|d| d.keys > 0)
        .map(|d| d.db)
        .collect();
    if dbs.is_empty() {
        dbs.push(0);
    }
    dbs
}

fn limits(opts: &AuditOptions) -> AggregateLimits {
    AggregateLimits {
        max_patterns: opts.max_patterns.max(1),
        examples: opts.examples,
        top_n: opts.top_n,
        user_patterns: opts.user_patterns.clone(),
    }
}

/// One shard's scan with its restarts.
struct ShardJob {
    connector: Connector,
    seed: Endpoint,
    node_tls: bool,
    cluster: bool,
    shard: Shard,
    opts: AuditOptions,
    settings: ScanSettings,
    limiter: Option<Arc<RateLimiter>>,
    progress: Option<mpsc::Sender<Progress>>,
    cancel: CancellationToken,
}

impl ShardJob {
    async fn run(mut self) -> (ShardSummary, Option<NodeScan>) {
        let mut restarts = 0u32;
        loop {
            let (target, replica) = self.shard.target(self.opts.prefer_replicas && self.cluster);
            let guard = Arc::new(GuardState::default());
            let result = self.attempt(&target, replica, guard.clone()).await;
            let worst = guard.worst_p99_us.load(Ordering::Relaxed) as f64 / 1000.0;
            let summary = |scan: Option<&NodeScan>, reason: Option<String>| ShardSummary {
                node: target.address(),
                replica,
                keys: scan.map_or(0, |s| s.aggregate.keys),
                dbsize_start: scan.map_or(0, |s| s.dbsize_start),
                dbsize: scan.map_or(0, |s| s.dbsize_end),
                restarts,
                complete: reason.is_none(),
                incomplete_reason: reason,
                dedup: if scan.is_some_and(|s| s.dedup_exact) {
                    "exact".into()
                } else {
                    "detect".into()
                },
                duplicates_skipped: scan.map_or(0, |s| s.duplicates_skipped),
                worst_probe_p99_ms: worst,
            };
            match result {
                Ok(scan) => {
                    let s = summary(Some(&scan), scan.incomplete.clone());
                    return (s, Some(scan));
                }
                Err(e) if restarts < self.opts.shard_retries && !self.cancel.is_cancelled() => {
                    tracing::warn!(error = %e, "audit: restarting the scan of a shard");
                    restarts += 1;
                    // Give a failover time to settle, then find the shard again.
                    tokio::select! {
                        _ = self.cancel.cancelled() => {}
                        _ = tokio::time::sleep(Duration::from_millis(500 * u64::from(restarts))) => {}
                    }
                    if self.cluster {
                        self.rediscover().await;
                    }
                }
                Err(e) => {
                    let reason = format!("{e} (after {restarts} restarts; rerun the audit)");
                    return (summary(None, Some(reason)), None);
                }
            }
        }
    }

    async fn attempt(
        &self,
        target: &Endpoint,
        replica: bool,
        guard: Arc<GuardState>,
    ) -> Result<NodeScan, String> {
        // One connection for the PTTL/TYPE pipelines and one for SCAN running ahead of them.
        let mut conn = self
            .connector
            .connect(target)
            .await
            .map_err(|e| e.to_string())?;
        let mut scan_link = self
            .connector
            .connect(target)
            .await
            .map_err(|e| e.to_string())?;
        if replica {
            for c in [&mut conn, &mut scan_link] {
                let _: String = c
                    .query(&redis::cmd("READONLY"))
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        let probe = self
            .connector
            .connect(target)
            .await
            .map_err(|e| e.to_string())?;
        let dbs = if self.cluster {
            vec![0]
        } else {
            databases(&mut conn).await
        };
        let stop = self.cancel.child_token();
        let guard_task = tokio::spawn(gentle::run_guard(
            probe,
            self.opts.guard,
            guard.clone(),
            stop.clone(),
        ));
        let mut result: Result<NodeScan, scan::ScanError> = Err(scan::ScanError::Node {
            node: target.address(),
            detail: "no database to scan".into(),
        });
        for db in dbs {
            if db != 0 {
                for c in [&mut conn, &mut scan_link] {
                    if let Err(e) = c.query::<String>(redis::cmd("SELECT").arg(db)).await {
                        stop.cancel();
                        let _ = guard_task.await;
                        return Err(format!("select database {db}: {e}"));
                    }
                }
            }
            let links = scan::Links {
                work: &mut conn,
                scan: &mut scan_link,
                db,
            };
            let scanned = scan::scan_node(
                links,
                &self.settings,
                self.limiter.as_deref(),
                &guard,
                self.progress.as_ref(),
                &self.cancel,
            )
            .await;
            result = match (result, scanned) {
                (Ok(mut all), Ok(one)) => {
                    all.merge(one);
                    Ok(all)
                }
                (_, scanned) => scanned,
            };
            if result.as_ref().is_ok_and(|r| r.incomplete.is_some()) || result.is_err() {
                break;
            }
        }
        stop.cancel();
        let _ = guard_task.await;
        result.map_err(|e| e.to_string())
    }

    /// Reads the topology again (from the shard's nodes, then the seed) and picks up the
    /// shard that now serves the same first slot.
    async fn rediscover(&mut self) {
        if let Some(s) =
            topology::rediscover(&self.connector, &self.shard, &self.seed, self.node_tls).await
        {
            self.shard = s;
        }
    }
}
