//! `restart-prepare`, `ecs-restart` and `restart-verify`: the "survives restart" check of a
//! self-managed Valkey on ECS, measured. Prepare writes a marker, BGSAVEs and waits for it,
//! records DBSIZE and a sample; restart keeps a writer of sequence numbers going while it
//! forces a new deployment (UpdateService `forceNewDeployment`) or kills the task
//! (`stop=crash`: StopTask), follows DescribeServices until the rollout completed and finds
//! the new task; verify reads the new task: the marker, DBSIZE, the sample, and the data-loss
//! window — the last sequence number that survived against the last acknowledged.

use crate::domain::{Cache, CacheKind, Endpoint};
use crate::runbook::action::{
    Action, ActionContext, ActionError, InputSpec, Inputs, Observation, OutputSpec, PlanContext,
    PlannedCall,
};
use crate::runbook::value::{Value, ValueKind, Values};
use crate::snapshot::manifest::{self, SampleKey, TtlState};
use async_trait::async_trait;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

const fn out(name: &'static str, kind: ValueKind, doc: &'static str) -> OutputSpec {
    OutputSpec { name, kind, doc }
}

fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn ecs_of(cache: &Cache) -> Result<(String, String), ActionError> {
    match (&cache.ecs, cache.kind) {
        (Some(e), CacheKind::EcsService) => Ok((e.cluster.clone(), e.service.clone())),
        _ => Err(ActionError::failed(format!(
            "survives-restart: `{}` is not a Valkey ECS service (it is a {})",
            cache.name,
            cache.kind.as_str()
        ))),
    }
}

/// The service's one task: (task id, address).
fn task_of(cache: &Cache) -> Result<(String, Endpoint), ActionError> {
    let node = cache
        .nodes()
        .next()
        .ok_or_else(|| ActionError::failed(format!("`{}` has no running task", cache.name)))?;
    Ok((node.id.clone(), node.endpoint()))
}

async fn rediscover(ctx: &ActionContext) -> Result<Cache, ActionError> {
    let found = ctx.plane.discover().await?;
    found
        .caches
        .into_iter()
        .find(|c| c.name == ctx.cache.name)
        .ok_or_else(|| ActionError::failed(format!("`{}` is no longer discovered", ctx.cache.name)))
}

fn info_field(info: &str, field: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
}

/// BGSAVE and wait until it finished: `rdb_bgsave_in_progress:0`, the save counter (or
/// `rdb_last_save_time`) moved, `rdb_last_bgsave_status:ok`. Returns when it finished (ms).
pub async fn bgsave(
    ctx: &ActionContext,
    conn: &mut crate::valkey::connect::NodeConnection,
    deadline: Duration,
) -> Result<i64, ActionError> {
    let read = |text: &str| {
        (
            info_field(text, "rdb_saves").and_then(|v| v.parse::<u64>().ok()),
            info_field(text, "rdb_last_save_time").and_then(|v| v.parse::<i64>().ok()),
        )
    };
    // A save already running (a killed run's, or the server's own `save` schedule) is
    // waited out first: BGSAVE answers "already in progress" while an RDB child runs
    // (SCHEDULE only queues behind other kinds of child), and only a save that starts after
    // our marker counts.
    let started = Instant::now();
    let (saves0, last0) = loop {
        let before: String = conn.query(redis::cmd("INFO").arg("persistence")).await?;
        if info_field(&before, "rdb_bgsave_in_progress").as_deref() != Some("1") {
            let counters = read(&before);
            match conn
                .query::<redis::Value>(redis::cmd("BGSAVE").arg("SCHEDULE"))
                .await
            {
                Ok(_) => break counters,
                Err(e) if e.to_string().contains("already in progress") => {}
                Err(e) => return Err(e.into()),
            }
        }
        if started.elapsed() > deadline {
            return Err(ActionError::Timeout {
                what: "wait for the save already running to finish".into(),
                after: deadline,
            });
        }
        ctx.waiting(started, "waiting for a BGSAVE already running");
        ctx.sleep(Duration::from_millis(50)).await?;
    };
    loop {
        let text: String = conn.query(redis::cmd("INFO").arg("persistence")).await?;
        let (saves, last) = read(&text);
        let running = info_field(&text, "rdb_bgsave_in_progress").as_deref() == Some("1");
        let moved = match (saves0, saves) {
            (Some(a), Some(b)) => b > a,
            _ => last > last0,
        };
        if !running && moved {
            if info_field(&text, "rdb_last_bgsave_status").as_deref() != Some("ok") {
                return Err(ActionError::failed(
                    "BGSAVE failed: rdb_last_bgsave_status is not ok (see the server log: disk full, permissions?)",
                ));
            }
            return Ok(now_ms());
        }
        if started.elapsed() > deadline {
            return Err(ActionError::Timeout {
                what: "see BGSAVE finish".into(),
                after: deadline,
            });
        }
        ctx.waiting(started, "BGSAVE in progress");
        ctx.sleep(Duration::from_millis(50)).await?;
    }
}

// ---- restart-prepare --------------------------------------------------------------------

pub struct RestartPrepare;

const PREP_INPUTS: &[InputSpec] = &[
    InputSpec::optional(
        "marker_key",
        ValueKind::String,
        Some("\"cachedeck:survives-restart:{{ run.id }}\""),
        "the marker key",
    ),
    InputSpec::optional(
        "sample",
        ValueKind::Int,
        Some("500"),
        "keys in the sample read before the restart",
    ),
    InputSpec::optional(
        "save_timeout",
        ValueKind::Duration,
        Some("\"10m\""),
        "how long the BGSAVE may take",
    ),
];
const PREP_OUTPUTS: &[OutputSpec] = &[
    out("marker_key", ValueKind::String, "the marker key"),
    out("marker_value", ValueKind::String, "its value"),
    out("task", ValueKind::String, "the task before the restart"),
    out("address", ValueKind::String, "its address"),
    out("dbsize", ValueKind::Int, "keys after the save"),
    out(
        "saved_at_ms",
        ValueKind::Int,
        "when the BGSAVE finished (unix ms)",
    ),
    out(
        "sample",
        ValueKind::Any,
        "the sampled keys with their digests",
    ),
];

#[async_trait]
impl Action for RestartPrepare {
    fn name(&self) -> &'static str {
        "restart-prepare"
    }
    fn summary(&self) -> &'static str {
        "Write a marker, BGSAVE and wait for it, record DBSIZE and a sample"
    }
    fn inputs(&self) -> &'static [InputSpec] {
        PREP_INPUTS
    }
    fn outputs(&self) -> &'static [OutputSpec] {
        PREP_OUTPUTS
    }
    fn dangerous(&self) -> bool {
        true
    }
    fn plan(&self, ctx: &PlanContext<'_>, inputs: &Inputs) -> Vec<PlannedCall> {
        let target = ctx
            .cache
            .endpoint
            .as_ref()
            .map(|e| e.address())
            .unwrap_or_default();
        vec![
            PlannedCall::valkey(
                target.clone(),
                format!("SET {} <run id> EX 86400", inputs.show("marker_key")),
                true,
            ),
            PlannedCall::valkey(
                target.clone(),
                "BGSAVE SCHEDULE; INFO persistence until done",
                true,
            ),
            PlannedCall::valkey(target, "INFO keyspace; SCAN + reads of the sample", false),
        ]
    }
    async fn observe(
        &self,
        _ctx: &ActionContext,
        _inputs: &Inputs,
    ) -> Result<Observation, ActionError> {
        // The same marker value and another BGSAVE: running again is harmless.
        Ok(Observation::NotDone)
    }
    async fn run(&self, ctx: &ActionContext, inputs: &Inputs) -> Result<Values, ActionError> {
        ecs_of(&ctx.cache)?;
        let (task, endpoint) = task_of(&ctx.cache)?;
        let key = inputs.str("marker_key")?;
        let value = ctx.run_id.clone();
        let mut conn = ctx.connector().await?.connect(&endpoint).await?;
        let _: () = conn
            .query(redis::cmd("SET").arg(key).arg(&value).arg("EX").arg(86_400))
            .await?;
        let saved_at = bgsave(ctx, &mut conn, inputs.duration("save_timeout")?).await?;
        let (keys, _) = manifest::keyspace(&mut conn)
            .await
            .map_err(ActionError::Failed)?;
        let total: u64 = keys.values().sum();
        let cutoff = manifest::cutoff(inputs.int("sample")?.max(0) as u64, total);
        let mut sample = Vec::new();
        let mut walk = ctx.connector().await?.connect_raw(&endpoint).await?;
        for &db in keys.keys() {
            let chosen = manifest::pick(&mut walk, db, cutoff, &mut |_| {})
                .await
                .map_err(ActionError::Failed)?;
            let reads = manifest::read_keys(&mut conn, db, &chosen)
                .await
                .map_err(ActionError::Failed)?;
            for (k, r) in chosen.into_iter().zip(reads) {
                if let Some(r) = r {
                    sample.push(SampleKey {
                        key_hex: manifest::to_hex(&k),
                        db,
                        shard: "0001".into(),
                        kind: r.kind,
                        ttl: r.ttl,
                        digest: r.digest,
                        changed: false,
                    });
                }
            }
        }
        ctx.output(format!(
            "task {task} at {}: marker set, BGSAVE done, {total} keys, sample of {}",
            endpoint.address(),
            sample.len()
        ));
        Ok(Values::new()
            .with("marker_key", Value::str(key))
            .with("marker_value", Value::str(value))
            .with("task", Value::str(task))
            .with("address", Value::str(endpoint.address()))
            .with("dbsize", Value::int(total as i64))
            .with("saved_at_ms", Value::int(saved_at))
            .with(
                "sample",
                Value::Json(serde_json::to_value(&sample).unwrap_or_default()),
            ))
    }
}

// ---- ecs-restart ------------------------------------------------------------------------

pub struct EcsRestart;

const RESTART_INPUTS: &[InputSpec] = &[
    InputSpec::required(
        "task_before",
        ValueKind::String,
        "the task before the restart",
    ),
    InputSpec::optional(
        "stop",
        ValueKind::String,
        Some("\"deploy\""),
        "`deploy` (UpdateService forceNewDeployment: SIGTERM, the final save) or `crash` (StopTask on the SIGKILL path: only what the save schedule kept)",
    ),
    InputSpec::optional(
        "seq_key",
        ValueKind::String,
        Some("\"cachedeck:survives-restart:{{ run.id }}:seq\""),
        "the key the writer sets to 1, 2, 3, …",
    ),
    InputSpec::optional(
        "write_interval",
        ValueKind::Duration,
        Some("\"5ms\""),
        "time between sequence writes",
    ),
    InputSpec::optional(
        "poll",
        ValueKind::Duration,
        Some("\"2s\""),
        "time between DescribeServices calls",
    ),
    InputSpec::optional(
        "timeout",
        ValueKind::Duration,
        Some("\"15m\""),
        "how long the rollout may take",
    ),
];
const RESTART_OUTPUTS: &[OutputSpec] = &[
    out("stop", ValueKind::String, "how the task was stopped"),
    out("old_task", ValueKind::String, "the task before"),
    out("new_task", ValueKind::String, "the task after"),
    out("new_address", ValueKind::String, "the new task's address"),
    out(
        "deployment",
        ValueKind::Any,
        "the PRIMARY deployment's id (deploy)",
    ),
    out("seq_key", ValueKind::String, "the sequence key"),
    out(
        "last_acked",
        ValueKind::Any,
        "the last sequence number acknowledged before the task went away (null: not measured)",
    ),
    out(
        "ack_ms",
        ValueKind::Any,
        "acknowledgement time of each sequence number (unix ms)",
    ),
    out(
        "restart_ms",
        ValueKind::Int,
        "trigger to the new task serving, ms",
    ),
];

/// Sequence writes until told to stop or the server goes away; returns each ack's time.
async fn writer(
    mut conn: crate::valkey::connect::NodeConnection,
    key: String,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> Vec<i64> {
    let mut acks = Vec::new();
    let mut n: i64 = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        match conn
            .query::<()>(redis::cmd("SET").arg(&key).arg(n).arg("EX").arg(86_400))
            .await
        {
            Ok(()) => acks.push(now_ms()),
            Err(_) => break,
        }
        tokio::time::sleep(every).await;
    }
    acks
}

#[async_trait]
impl Action for EcsRestart {
    fn name(&self) -> &'static str {
        "ecs-restart"
    }
    fn summary(&self) -> &'static str {
        "Force a new ECS deployment (or kill the task) under sequence writes; follow the rollout"
    }
    fn inputs(&self) -> &'static [InputSpec] {
        RESTART_INPUTS
    }
    fn outputs(&self) -> &'static [OutputSpec] {
        RESTART_OUTPUTS
    }
    fn dangerous(&self) -> bool {
        true
    }
    fn plan(&self, ctx: &PlanContext<'_>, inputs: &Inputs) -> Vec<PlannedCall> {
        let (cluster, service) = ecs_of(ctx.cache).unwrap_or_default();
        let call = if inputs.opt_str("stop").ok().flatten() == Some("crash") {
            format!(
                "ecs:StopTask cluster={cluster} task={}",
                inputs.show("task_before")
            )
        } else {
            format!("ecs:UpdateService cluster={cluster} service={service} forceNewDeployment=true")
        };
        vec![
            PlannedCall::valkey(
                ctx.cache
                    .endpoint
                    .as_ref()
                    .map(|e| e.address())
                    .unwrap_or_default(),
                format!(
                    "SET {} 1, 2, 3, … every {}",
                    inputs.show("seq_key"),
                    inputs.show("write_interval")
                ),
                true,
            ),
            PlannedCall::control_plane(call, true),
            PlannedCall::control_plane(
                format!(
                    "ecs:DescribeServices cluster={cluster} services={service} every {} until COMPLETED",
                    inputs.show("poll")
                ),
                false,
            ),
        ]
    }
    async fn observe(
        &self,
        ctx: &ActionContext,
        inputs: &Inputs,
    ) -> Result<Observation, ActionError> {
        let now = rediscover(ctx).await?;
        let (task, _) = task_of(&now)?;
        Ok(if task != inputs.str("task_before")? {
            Observation::Partial(format!(
                "the task was already replaced ({task}); following the rollout, no second restart"
            ))
        } else {
            Observation::NotDone
        })
    }
    async fn run(&self, ctx: &ActionContext, inputs: &Inputs) -> Result<Values, ActionError> {
        let (cluster, service) = ecs_of(&ctx.cache)?;
        let before = inputs.str("task_before")?;
        let stop_mode = inputs.str("stop")?;
        if !matches!(stop_mode, "deploy" | "crash") {
            return Err(ActionError::failed(format!(
                "survives-restart: stop must be `deploy` or `crash`, not `{}`",
                crate::escape::escape_capped(stop_mode, 40)
            )));
        }
        let key = inputs.str("seq_key")?.to_string();
        let current = rediscover(ctx).await?;
        let (task_now, endpoint) = task_of(&current)?;
        let started = Instant::now();
        let mut acks: Option<Vec<i64>> = None;
        if task_now != before {
            ctx.output(format!(
                "task {before} was already replaced by {task_now}; following the rollout"
            ));
        } else {
            let conn = ctx.connector().await?.connect(&endpoint).await?;
            let stop = Arc::new(AtomicBool::new(false));
            let handle = tokio::spawn(writer(
                conn,
                key.clone(),
                inputs.duration("write_interval")?,
                stop.clone(),
            ));
            ctx.sleep(Duration::from_millis(300)).await?;
            let triggered = if stop_mode == "crash" {
                ctx.output(format!("StopTask {before} (SIGKILL path)"));
                ctx.plane
                    .stop_task(&cluster, before, "cachedeck survives-restart stop=crash")
                    .await
            } else {
                ctx.output(format!("UpdateService {service} forceNewDeployment"));
                ctx.plane.force_new_deployment(&cluster, &service).await
            };
            stop.store(true, Ordering::Relaxed);
            let written = handle.await.unwrap_or_default();
            triggered?;
            acks = Some(written);
        }
        let every = inputs.duration("poll")?;
        let deadline = inputs.duration("timeout")?;
        let deployment = ctx
            .poll(
                &format!("see service {service}'s rollout complete"),
                every,
                deadline,
                || async {
                    let s = ctx.plane.describe_service(&cluster, &service).await?;
                    let primary = s.primary().cloned();
                    let done = s.running == s.desired
                        && s.deployments.len() == 1
                        && primary.as_ref().is_some_and(|p| {
                            p.rollout_state.as_deref().unwrap_or("COMPLETED") == "COMPLETED"
                        });
                    Ok(done.then_some(primary.map(|p| p.id)))
                },
            )
            .await?;
        let after = rediscover(ctx).await?;
        let (new_task, new_endpoint) = task_of(&after)?;
        if new_task == before {
            return Err(ActionError::failed(format!(
                "the rollout completed but task {before} is still the one running"
            )));
        }
        let took = started.elapsed();
        ctx.output(format!(
            "new task {new_task} at {} after {:.1} s (was {before} at {})",
            new_endpoint.address(),
            took.as_secs_f64(),
            endpoint.address()
        ));
        let last_acked = acks.as_ref().map(|a| a.len() as i64);
        Ok(Values::new()
            .with("stop", Value::str(stop_mode))
            .with("old_task", Value::str(before))
            .with("new_task", Value::str(new_task))
            .with("new_address", Value::str(new_endpoint.address()))
            .with(
                "deployment",
                Value::Json(deployment.map(serde_json::Value::from).unwrap_or_default()),
            )
            .with("seq_key", Value::str(key))
            .with(
                "last_acked",
                Value::Json(last_acked.map(serde_json::Value::from).unwrap_or_default()),
            )
            .with(
                "ack_ms",
                Value::Json(serde_json::to_value(acks.unwrap_or_default()).unwrap_or_default()),
            )
            .with("restart_ms", Value::int(took.as_millis() as i64)))
    }
}

// ---- restart-verify ---------------------------------------------------------------------

pub struct RestartVerify;

const VERIFY_INPUTS: &[InputSpec] = &[
    InputSpec::required("marker_key", ValueKind::String, "the marker key"),
    InputSpec::required("marker_value", ValueKind::String, "its value"),
    InputSpec::required("dbsize", ValueKind::Int, "keys after the save"),
    InputSpec::required("sample", ValueKind::Any, "the sample from restart-prepare"),
    InputSpec::required("saved_at_ms", ValueKind::Int, "when the BGSAVE finished"),
    InputSpec::required("seq_key", ValueKind::String, "the sequence key"),
    InputSpec::required(
        "last_acked",
        ValueKind::Any,
        "the last acknowledged sequence number",
    ),
    InputSpec::required("ack_ms", ValueKind::Any, "ack times"),
    InputSpec::optional(
        "max_lost_writes",
        ValueKind::Int,
        Some("-1"),
        "fail when more acknowledged writes were lost (-1: report only)",
    ),
];
const VERIFY_OUTPUTS: &[OutputSpec] = &[
    out("marker_ok", ValueKind::Bool, "the marker survived"),
    out(
        "dbsize_before",
        ValueKind::Int,
        "keys after the save, before the restart",
    ),
    out("dbsize_after", ValueKind::Int, "keys on the new task"),
    out(
        "sample_missing",
        ValueKind::Int,
        "sampled keys gone (not by TTL)",
    ),
    out(
        "sample_different",
        ValueKind::Int,
        "sampled keys with another value",
    ),
    out(
        "last_acked",
        ValueKind::Any,
        "the last acknowledged sequence number",
    ),
    out(
        "last_survived",
        ValueKind::Int,
        "the sequence number the new task holds (0: none)",
    ),
    out(
        "lost_writes",
        ValueKind::Any,
        "acknowledged writes lost (null: not measured)",
    ),
    out(
        "loss_window_ms",
        ValueKind::Any,
        "time between the last surviving write (or the save) and the last acknowledged one",
    ),
];

#[async_trait]
impl Action for RestartVerify {
    fn name(&self) -> &'static str {
        "restart-verify"
    }
    fn summary(&self) -> &'static str {
        "Read the new task: marker, DBSIZE, sample, and the data-loss window"
    }
    fn inputs(&self) -> &'static [InputSpec] {
        VERIFY_INPUTS
    }
    fn outputs(&self) -> &'static [OutputSpec] {
        VERIFY_OUTPUTS
    }
    fn dangerous(&self) -> bool {
        false
    }
    fn plan(&self, _ctx: &PlanContext<'_>, inputs: &Inputs) -> Vec<PlannedCall> {
        vec![PlannedCall::valkey(
            "the new task",
            format!(
                "GET {}; DBSIZE; reads of the sample; GET {}",
                inputs.show("marker_key"),
                inputs.show("seq_key")
            ),
            false,
        )]
    }
    async fn run(&self, ctx: &ActionContext, inputs: &Inputs) -> Result<Values, ActionError> {
        let cache = rediscover(ctx).await?;
        let (task, endpoint) = task_of(&cache)?;
        let mut conn = ctx.connector().await?.connect(&endpoint).await?;
        let marker: Option<String> = conn
            .query(redis::cmd("GET").arg(inputs.str("marker_key")?))
            .await?;
        let marker_ok = marker.as_deref() == Some(inputs.str("marker_value")?);
        let (keys, _) = manifest::keyspace(&mut conn)
            .await
            .map_err(ActionError::Failed)?;
        let dbsize_after: u64 = keys.values().sum();
        let sample: Vec<SampleKey> = inputs
            .get("sample")
            .and_then(|v| match v {
                Value::Json(j) => serde_json::from_value(j.clone()).ok(),
                Value::Secret(_) => None,
            })
            .unwrap_or_default();
        let (mut missing, mut different) = (0, 0);
        let mut by_db: std::collections::BTreeMap<u32, Vec<&SampleKey>> = Default::default();
        for k in &sample {
            by_db.entry(k.db).or_default().push(k);
        }
        let now = now_ms();
        for (db, ks) in by_db {
            let raw: Vec<Vec<u8>> = ks.iter().map(|k| k.key()).collect();
            let reads = manifest::read_keys(&mut conn, db, &raw)
                .await
                .map_err(ActionError::Failed)?;
            for (want, got) in ks.iter().zip(reads) {
                match got {
                    None if matches!(want.ttl, TtlState::Expires { at_ms } if at_ms <= now) => {}
                    None => missing += 1,
                    Some(g) if g.digest != want.digest || g.kind != want.kind => different += 1,
                    Some(_) => {}
                }
            }
        }
        let _: () = conn.query(redis::cmd("SELECT").arg(0)).await.unwrap_or(());
        let survived: Option<i64> = conn
            .query(redis::cmd("GET").arg(inputs.str("seq_key")?))
            .await?;
        let survived = survived.unwrap_or(0);
        let last_acked = inputs.opt_int("last_acked")?;
        let acks: Vec<i64> = match inputs.get("ack_ms") {
            Some(Value::Json(j)) => serde_json::from_value(j.clone()).unwrap_or_default(),
            _ => Vec::new(),
        };
        let lost = last_acked.map(|a| (a - survived).max(0));
        let window = last_acked.filter(|a| *a > 0).map(|a| {
            let last = acks.get(a as usize - 1).copied().unwrap_or(0);
            let kept = if survived > 0 {
                acks.get(survived as usize - 1).copied().unwrap_or(last)
            } else {
                inputs.int("saved_at_ms").unwrap_or(last)
            };
            (last - kept).max(0)
        });
        ctx.output(format!(
            "task {task}: marker {}, DBSIZE {} → {dbsize_after}, sample {} missing / {} different; sequence {} acknowledged, {survived} survived{}",
            if marker_ok { "present" } else { "MISSING" },
            inputs.int("dbsize")?,
            missing,
            different,
            last_acked.map(|a| a.to_string()).unwrap_or_else(|| "?".into()),
            window.map(|w| format!(" (loss window {w} ms)")).unwrap_or_default()
        ));
        if !marker_ok {
            return Err(ActionError::failed(
                "the marker written and saved before the restart is gone: the data did not survive",
            ));
        }
        if missing > 0 || different > 0 {
            return Err(ActionError::failed(format!(
                "{missing} sampled keys missing and {different} different after the restart"
            )));
        }
        let max_lost = inputs.int("max_lost_writes")?;
        if max_lost >= 0
            && let Some(l) = lost
            && l > max_lost
        {
            return Err(ActionError::failed(format!(
                "{l} acknowledged writes were lost in the restart (allowed: {max_lost})"
            )));
        }
        Ok(Values::new()
            .with("marker_ok", Value::bool(marker_ok))
            .with("dbsize_before", Value::int(inputs.int("dbsize")?))
            .with("dbsize_after", Value::int(dbsize_after as i64))
            .with("sample_missing", Value::int(missing))
            .with("sample_different", Value::int(different))
            .with(
                "last_acked",
                Value::Json(last_acked.map(serde_json::Value::from).unwrap_or_default()),
            )
            .with("last_survived", Value::int(survived))
            .with(
                "lost_writes",
                Value::Json(lost.map(serde_json::Value::from).unwrap_or_default()),
            )
            .with(
                "loss_window_ms",
                Value::Json(window.map(serde_json::Value::from).unwrap_or_default()),
            ))
    }
}
