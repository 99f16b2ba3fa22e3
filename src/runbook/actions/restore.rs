//! `restore-preflight`, `restore-create` and `restore-verify`: a new cache from a snapshot
//! (never over the source), waited for until available, then checked against the snapshot's
//! manifest by reading the restored nodes directly.
//!
//! `restore-create` calls CreateReplicationGroup / CreateServerlessCache once per run: on a
//! retry or `runs resume` it finds the new cache by id and follows it instead.

use crate::controlplane::{
    ControlPlaneError, ParameterType, ParameterValue, PutParameter, RestoreRequest, Snapshot,
    SnapshotQuery,
};
use crate::domain::{AuthMode, Cache, CacheKind, SecretRef};
use crate::runbook::action::{
    Action, ActionContext, ActionError, InputSpec, Inputs, Observation, OutputSpec, PlanContext,
    PlannedCall,
};
use crate::runbook::value::{Value, ValueKind, Values};
use async_trait::async_trait;
use secrecy::SecretString;
use std::time::{Duration, Instant};

const fn out(name: &'static str, kind: ValueKind, doc: &'static str) -> OutputSpec {
    OutputSpec { name, kind, doc }
}

const SNAPSHOT_DOC: &str = "the snapshot to restore (taken of this cache)";
const TARGET_DOC: &str = "the new cache's id (a new replication group / serverless cache)";
const TOKEN_DOC: &str = "SSM SecureString holding the new group's AUTH token (created with a generated token when absent); needed when the source uses one";

fn serverless(cache: &Cache) -> bool {
    cache.kind == CacheKind::Serverless
}

async fn snapshot_of(ctx: &ActionContext, name: &str) -> Result<Snapshot, ActionError> {
    let found = match ctx
        .plane
        .describe_snapshots(SnapshotQuery {
            cache: None,
            name: Some(name.into()),
            serverless: serverless(&ctx.cache),
        })
        .await
    {
        Ok(found) => found,
        Err(ControlPlaneError::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let snap = found
        .into_iter()
        .find(|s| s.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            ActionError::failed(format!(
                "restore: snapshot `{}` not found (list them with `cachedeck snapshots`)",
                crate::escape::escape_capped(name, 120)
            ))
        })?;
    if snap.cache.as_deref() != Some(ctx.cache.name.as_str()) {
        return Err(ActionError::failed(format!(
            "restore: snapshot `{}` was taken of `{}`, not of `{}`",
            crate::escape::escape_capped(name, 120),
            crate::escape::escape_capped(snap.cache.as_deref().unwrap_or("?"), 80),
            ctx.cache.name
        )));
    }
    if snap.status != "available" {
        return Err(ActionError::failed(format!(
            "restore: snapshot `{}` is {}, not available",
            crate::escape::escape_capped(name, 120),
            snap.status
        )));
    }
    Ok(snap)
}

async fn find_target(ctx: &ActionContext, target: &str) -> Result<Option<Cache>, ActionError> {
    let found = ctx.plane.discover().await?;
    Ok(found.caches.into_iter().find(|c| c.name == target))
}

fn replicas_of(cache: &Cache) -> usize {
    cache
        .shards
        .first()
        .map(|s| s.nodes.len().saturating_sub(1))
        .unwrap_or(0)
}

/// What a restore will create, in words.
fn summary(ctx_cache: &Cache, snap: &Snapshot, target: &str) -> String {
    if serverless(ctx_cache) {
        return format!(
            "serverless cache {target} ({} {}) from snapshot {}, with the source's subnets, security groups and user group; data storage and ECPU limits as the source (none set: AWS defaults)",
            ctx_cache.engine, ctx_cache.engine_version, snap.name
        );
    }
    let shards = snap.shard_count.unwrap_or(1);
    let replicas = replicas_of(ctx_cache);
    format!(
        "replication group {target}: {} × {} nodes ({shards} shard{}, {replicas} replica{} each), {} {}, TLS {}, from snapshot {}",
        snap.node_type.as_deref().unwrap_or("?"),
        shards as usize * (replicas + 1),
        if shards == 1 { "" } else { "s" },
        if replicas == 1 { "" } else { "s" },
        ctx_cache.engine,
        ctx_cache.engine_version,
        if ctx_cache.tls { "on" } else { "off" },
        snap.name
    )
}

// ---- restore-preflight ------------------------------------------------------------------

pub struct RestorePreflight;

const PRE_INPUTS: &[InputSpec] = &[
    InputSpec::required("snapshot", ValueKind::String, SNAPSHOT_DOC),
    InputSpec::required("target", ValueKind::String, TARGET_DOC),
    InputSpec::optional(
        "auth_token_parameter",
        ValueKind::String,
        Some("\"\""),
        TOKEN_DOC,
    ),
];
const PRE_OUTPUTS: &[OutputSpec] = &[
    out("summary", ValueKind::String, "what will be created"),
    out(
        "shards",
        ValueKind::Int,
        "the snapshot's shard count (NumNodeGroups)",
    ),
    out(
        "has_manifest",
        ValueKind::Bool,
        "whether cachedeck recorded a manifest for the snapshot",
    ),
];

#[async_trait]
impl Action for RestorePreflight {
    fn name(&self) -> &'static str {
        "restore-preflight"
    }
    fn summary(&self) -> &'static str {
        "Check the snapshot, the new id and the manifest; say what a restore will create"
    }
    fn inputs(&self) -> &'static [InputSpec] {
        PRE_INPUTS
    }
    fn outputs(&self) -> &'static [OutputSpec] {
        PRE_OUTPUTS
    }
    fn dangerous(&self) -> bool {
        false
    }
    fn plan(&self, _ctx: &PlanContext<'_>, inputs: &Inputs) -> Vec<PlannedCall> {
        vec![PlannedCall::control_plane(
            format!(
                "elasticache:DescribeSnapshots SnapshotName={}",
                inputs.show("snapshot")
            ),
            false,
        )]
    }
    async fn run(&self, ctx: &ActionContext, inputs: &Inputs) -> Result<Values, ActionError> {
        let target = inputs.str("target")?;
        crate::controlplane::names::check_cache_id(target).map_err(|why| {
            ActionError::failed(format!(
                "restore: new id `{}` {why}",
                crate::escape::escape_capped(target, 80)
            ))
        })?;
        if target == ctx.cache.name {
            return Err(ActionError::failed(
                "restore: the target must be a new cache, never the source",
            ));
        }
        let snap = snapshot_of(ctx, inputs.str("snapshot")?).await?;
        // The new group's token is settled here, before the confirmation, not found missing
        // after it.
        if let Some(note) = check_token_parameter(ctx, inputs.str("auth_token_parameter")?).await? {
            ctx.output(note);
        }
        if find_target(ctx, target).await?.is_some() {
            return Err(ActionError::failed(format!(
                "restore: a cache named `{target}` already exists; choose a new id"
            )));
        }
        let manifest = crate::snapshot::store::load(
            &crate::config::state_dir(),
            &ctx.env.name,
            &ctx.cache.name,
            &snap.name,
        )
        .map_err(|e| ActionError::failed(format!("read the manifest: {e}")))?;
        let text = summary(&ctx.cache, &snap, target);
        ctx.output(format!("will create {text}"));
        if manifest.is_none() {
            ctx.output("no manifest for this snapshot: the restore can be checked by key counts only if you take one with the snapshot runbook");
        }
        Ok(Values::new()
            .with("summary", Value::str(text))
            .with(
                "shards",
                Value::int(i64::from(snap.shard_count.unwrap_or(1))),
            )
            .with("has_manifest", Value::bool(manifest.is_some())))
    }
}

// ---- restore-create ---------------------------------------------------------------------

pub struct RestoreCreate;

const CREATE_INPUTS: &[InputSpec] = &[
    InputSpec::required("snapshot", ValueKind::String, SNAPSHOT_DOC),
    InputSpec::required("target", ValueKind::String, TARGET_DOC),
    InputSpec::optional(
        "auth_token_parameter",
        ValueKind::String,
        Some("\"\""),
        TOKEN_DOC,
    ),
    InputSpec::optional(
        "poll",
        ValueKind::Duration,
        Some("\"15s\""),
        "time between status checks while the new cache is created",
    ),
    InputSpec::optional(
        "timeout",
        ValueKind::Duration,
        Some("\"2h\""),
        "how long the new cache may take to become available",
    ),
];
const CREATE_OUTPUTS: &[OutputSpec] = &[
    out("target", ValueKind::String, "the new cache"),
    out("endpoint", ValueKind::String, "its client endpoint"),
    out("nodes", ValueKind::Int, "its nodes"),
    out(
        "restore_ms",
        ValueKind::Int,
        "the create call to available, ms",
    ),
    out(
        "call_ms",
        ValueKind::Int,
        "the create call until it answered, ms (0 when a resumed run follows an earlier call)",
    ),
];

/// The message when a token source is restored without a token parameter.
fn token_needed(cache: &str) -> ActionError {
    ActionError::failed(format!(
        "restore: `{cache}` uses an AUTH token, so the new group needs one: pass --param auth_token_parameter=/path/in/ssm (an existing SecureString, or one cachedeck creates with a generated token)"
    ))
}

/// Preflight of the new group's token: a token source needs the parameter; one that exists
/// must be a SecureString holding a token AWS accepts. Returns what the restore will do.
async fn check_token_parameter(
    ctx: &ActionContext,
    parameter: &str,
) -> Result<Option<String>, ActionError> {
    if ctx.cache.auth != AuthMode::Token {
        return Ok(None);
    }
    if parameter.is_empty() {
        return Err(token_needed(&ctx.cache.name));
    }
    let shown = crate::escape::escape_capped(parameter, 120);
    let Some(p) = ctx.plane.get_parameter(parameter).await? else {
        return Ok(Some(format!(
            "the new group's AUTH token: generated and stored in {shown} (SecureString)"
        )));
    };
    if p.kind != ParameterType::SecureString {
        return Err(ActionError::failed(format!(
            "restore: {shown} is not a SecureString; an AUTH token belongs in one (name a new parameter and cachedeck creates it)"
        )));
    }
    crate::controlplane::names::check_auth_token(p.value.expose())
        .map_err(|why| ActionError::failed(format!("restore: {shown}: {why}")))?;
    Ok(Some(format!(
        "the new group's AUTH token: the one in {shown} (version {})",
        p.version
    )))
}

/// The new group's AUTH token: read from the parameter, or generated and stored there.
async fn auth_token(
    ctx: &ActionContext,
    parameter: &str,
) -> Result<Option<SecretString>, ActionError> {
    if ctx.cache.auth != AuthMode::Token {
        return Ok(None);
    }
    if parameter.is_empty() {
        return Err(token_needed(&ctx.cache.name));
    }
    if let Some(p) = ctx.plane.get_parameter(parameter).await? {
        return Ok(Some(SecretString::from(p.value.expose().to_string())));
    }
    let token = generate_token();
    let put = PutParameter {
        name: parameter.into(),
        kind: ParameterType::SecureString,
        value: ParameterValue::Secret(SecretString::from(token.clone())),
        overwrite: false,
        description: Some(format!("AUTH token of a restore of {}", ctx.cache.name)),
    };
    match ctx.plane.put_parameter(put).await {
        Ok(_) => {
            ctx.output(format!("generated a new AUTH token in {parameter}"));
            Ok(Some(SecretString::from(token)))
        }
        // Created meanwhile (a retried attempt): use what is there.
        Err(ControlPlaneError::AlreadyExists { .. }) => Ok(ctx
            .plane
            .get_parameter(parameter)
            .await?
            .map(|p| SecretString::from(p.value.expose().to_string()))),
        Err(e) => Err(e.into()),
    }
}

/// 40 letters and digits: within the AUTH token rules (16–128 printable characters).
fn generate_token() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..40)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

async fn wait_available(
    ctx: &ActionContext,
    target: &str,
    every: Duration,
    deadline: Duration,
) -> Result<Cache, ActionError> {
    let started = Instant::now();
    let last_status = std::sync::Mutex::new(String::new());
    ctx.poll(
        &format!("see cache {target} become available"),
        every,
        deadline,
        || async {
            let found = find_target(ctx, target).await?;
            let status = match &found {
                Some(c) => {
                    let nodes = c.nodes().count();
                    let up = c.nodes().filter(|n| n.health.is_up()).count();
                    format!("{target}: {} ({up} of {nodes} nodes available)", c.status)
                }
                None => format!("{target}: not visible yet"),
            };
            if let Ok(mut last) = last_status.lock()
                && *last != status
            {
                ctx.output(status.clone());
                *last = status.clone();
            }
            ctx.waiting(started, status);
            match found {
                Some(c) if FAILED.contains(&c.status.as_str()) => Ok(Some(Err(format!(
                    "restore: {target} is {}: {}",
                    c.status,
                    event_text(ctx, target).await
                )))),
                Some(c) if c.status == "available" && c.nodes().all(|n| n.health.is_up()) => {
                    Ok(Some(Ok(c)))
                }
                _ => Ok(None),
            }
        },
    )
    .await?
    .map_err(ActionError::Failed)
}

/// Statuses a cache being created does not come back from.
const FAILED: &[&str] = &["create-failed", "restore-failed", "incompatible-parameters"];

/// The newest event that names the new cache, escaped (or a note that there is none).
async fn event_text(ctx: &ActionContext, target: &str) -> String {
    let since = ctx.first_started_at - time::Duration::minutes(5);
    match ctx
        .plane
        .describe_events(crate::controlplane::EventQuery::all(since))
        .await
    {
        Ok(events) => events
            .iter()
            .rev()
            .find(|e| e.source == target || e.message.contains(target))
            .map(|e| crate::escape::escape_capped(&e.message, 300))
            .unwrap_or_else(|| "no event names it".into()),
        Err(e) => format!("events unreadable: {e}"),
    }
}

#[async_trait]
impl Action for RestoreCreate {
    fn name(&self) -> &'static str {
        "restore-create"
    }
    fn summary(&self) -> &'static str {
        "Create a new cache from a snapshot and wait until it is available"
    }
    fn inputs(&self) -> &'static [InputSpec] {
        CREATE_INPUTS
    }
    fn outputs(&self) -> &'static [OutputSpec] {
        CREATE_OUTPUTS
    }
    fn dangerous(&self) -> bool {
        true
    }
    fn plan(&self, ctx: &PlanContext<'_>, inputs: &Inputs) -> Vec<PlannedCall> {
        let mut calls = Vec::new();
        if ctx.cache.auth == AuthMode::Token {
            calls.push(PlannedCall::control_plane(
                format!(
                    "ssm:GetParameter name={} (PutParameter SecureString overwrite=false with a generated token when absent)",
                    inputs.show("auth_token_parameter")
                ),
                true,
            ));
        }
        let call = if serverless(ctx.cache) {
            format!(
                "elasticache:CreateServerlessCache ServerlessCacheName={} SnapshotArnsToRestore=[arn of {}] Engine={} MajorEngineVersion={} (subnets, security groups, user group of {})",
                inputs.show("target"),
                inputs.show("snapshot"),
                ctx.cache.engine,
                ctx.cache.engine_version.split('.').next().unwrap_or(""),
                ctx.cache.name
            )
        } else {
            format!(
                "elasticache:CreateReplicationGroup ReplicationGroupId={} SnapshotName={} Engine={} EngineVersion={} NumNodeGroups=<snapshot's> ReplicasPerNodeGroup={} TransitEncryptionEnabled={}{} (subnet group, security groups of {})",
                inputs.show("target"),
                inputs.show("snapshot"),
                ctx.cache.engine,
                ctx.cache.engine_version,
                replicas_of(ctx.cache),
                ctx.cache.tls,
                if ctx.cache.auth == AuthMode::Token {
                    " AuthToken=<from the parameter>"
                } else {
                    ""
                },
                ctx.cache.name
            )
        };
        calls.push(PlannedCall::control_plane(call, true));
        calls.push(PlannedCall::control_plane(
            format!(
                "describe {} every {} until available",
                inputs.show("target"),
                inputs.show("poll")
            ),
            false,
        ));
        calls
    }
    async fn observe(
        &self,
        ctx: &ActionContext,
        inputs: &Inputs,
    ) -> Result<Observation, ActionError> {
        let target = inputs.str("target")?;
        Ok(match find_target(ctx, target).await? {
            None => Observation::NotDone,
            Some(c) => Observation::Partial(format!(
                "cache {target} exists ({}); following it, no second create",
                c.status
            )),
        })
    }
    async fn run(&self, ctx: &ActionContext, inputs: &Inputs) -> Result<Values, ActionError> {
        let target = inputs.str("target")?;
        let every = inputs.duration("poll")?;
        let deadline = inputs.duration("timeout")?;
        let started = Instant::now();
        let mut call_took = Duration::ZERO;
        match find_target(ctx, target).await? {
            Some(_) if ctx.intent_at.is_some() || ctx.attempt > 1 => {
                ctx.output(format!(
                    "cache {target} was already created by this run; following it"
                ));
            }
            Some(_) => {
                return Err(ActionError::failed(format!(
                    "restore: a cache named `{target}` already exists and this run did not create it"
                )));
            }
            None => {
                let snap = snapshot_of(ctx, inputs.str("snapshot")?).await?;
                let token = auth_token(ctx, inputs.str("auth_token_parameter")?).await?;
                let request = RestoreRequest {
                    new_id: target.into(),
                    source: ctx.cache.name.clone(),
                    snapshot: snap.name.clone(),
                    snapshot_arn: snap.arn.clone(),
                    serverless: serverless(&ctx.cache),
                    description: format!(
                        "restored by cachedeck from snapshot {} of {}",
                        snap.name, ctx.cache.name
                    ),
                    engine: Some(ctx.cache.engine.clone()),
                    engine_version: Some(ctx.cache.engine_version.clone()),
                    node_type: snap.node_type.clone(),
                    shards: snap.shard_count,
                    replicas_per_shard: (!serverless(&ctx.cache))
                        .then(|| replicas_of(&ctx.cache) as u32),
                    tls: ctx.cache.tls,
                    auth_token: token,
                };
                ctx.output(format!("creating {}", summary(&ctx.cache, &snap, target)));
                let call = Instant::now();
                ctx.plane.restore_snapshot(request).await?;
                call_took = call.elapsed();
            }
        }
        let cache = wait_available(ctx, target, every, deadline).await?;
        let took = started.elapsed();
        let endpoint = cache
            .endpoint
            .as_ref()
            .map(|e| e.address())
            .unwrap_or_default();
        ctx.output(format!(
            "{target} available at {endpoint} ({} nodes) after {:.1} s",
            cache.nodes().count(),
            took.as_secs_f64()
        ));
        Ok(Values::new()
            .with("target", Value::str(target))
            .with("endpoint", Value::str(endpoint))
            .with("nodes", Value::int(cache.nodes().count() as i64))
            .with("restore_ms", Value::int(took.as_millis() as i64))
            .with("call_ms", Value::int(call_took.as_millis() as i64)))
    }
}

// ---- restore-verify ---------------------------------------------------------------------

pub struct RestoreVerify;

const VERIFY_INPUTS: &[InputSpec] = &[
    InputSpec::required("snapshot", ValueKind::String, SNAPSHOT_DOC),
    InputSpec::required("target", ValueKind::String, "the restored cache"),
    InputSpec::optional(
        "auth_token_parameter",
        ValueKind::String,
        Some("\"\""),
        TOKEN_DOC,
    ),
];
const VERIFY_OUTPUTS: &[OutputSpec] = &[
    out(
        "verified",
        ValueKind::Bool,
        "counts and every sampled key match",
    ),
    out(
        "keys_expected",
        ValueKind::Int,
        "keys in the snapshot (manifest)",
    ),
    out(
        "keys_restored",
        ValueKind::Int,
        "keys in the restored cache",
    ),
    out("sampled", ValueKind::Int, "keys in the sample"),
    out(
        "missing",
        ValueKind::Int,
        "sampled keys absent (not explained by a TTL)",
    ),
    out(
        "different",
        ValueKind::Int,
        "sampled keys with another type or value",
    ),
    out(
        "expired",
        ValueKind::Int,
        "sampled keys gone because their TTL passed",
    ),
    out(
        "changed_during_snapshot",
        ValueKind::Int,
        "sampled keys that changed while the snapshot was taken (not checked)",
    ),
    out(
        "counts",
        ValueKind::Any,
        "per shard and database: expected, restored, expired",
    ),
    out(
        "examples",
        ValueKind::Any,
        "a few missing/different keys, escaped",
    ),
    out(
        "endpoints",
        ValueKind::Any,
        "the restored cache's endpoints",
    ),
];

/// The restored cache with credentials to read it: the new token, or the source's user.
fn with_credentials(mut restored: Cache, source: &Cache, token_parameter: &str) -> Cache {
    if !token_parameter.is_empty() {
        restored.credentials.password = Some(SecretRef::Ssm(token_parameter.into()));
        restored.credentials.username = None;
    } else if restored.credentials.password.is_none()
        && restored.credentials.url_parameter.is_none()
    {
        restored.credentials.username = source.credentials.username.clone();
        restored.credentials.password = source.credentials.password.clone();
    }
    if restored.credentials.ca_file.is_none() {
        restored.credentials.ca_file = source.credentials.ca_file.clone();
    }
    restored
}

#[async_trait]
impl Action for RestoreVerify {
    fn name(&self) -> &'static str {
        "restore-verify"
    }
    fn summary(&self) -> &'static str {
        "Check a restored cache against the snapshot's manifest (counts and sampled keys)"
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
            inputs.show("target"),
            "INFO keyspace on each primary; TYPE/PTTL and GET/HGETALL/LRANGE/SMEMBERS/ZRANGE/XRANGE of the sampled keys",
            false,
        )]
    }
    async fn run(&self, ctx: &ActionContext, inputs: &Inputs) -> Result<Values, ActionError> {
        let snapshot = inputs.str("snapshot")?.to_ascii_lowercase();
        let target = inputs.str("target")?;
        let manifest = crate::snapshot::store::load(
            &crate::config::state_dir(),
            &ctx.env.name,
            &ctx.cache.name,
            &snapshot,
        )
        .map_err(|e| ActionError::failed(format!("read the manifest: {e}")))?
        .ok_or_else(|| {
            ActionError::failed(format!(
                "verify: no manifest for snapshot `{snapshot}` of `{}` (take snapshots with the snapshot runbook to have one)",
                ctx.cache.name
            ))
        })?;
        let restored = find_target(ctx, target)
            .await?
            .ok_or_else(|| ActionError::failed(format!("verify: cache `{target}` not found")))?;
        let restored = with_credentials(restored, &ctx.cache, inputs.str("auth_token_parameter")?);
        let connector = crate::valkey::connect::Connector::for_cache(
            &restored,
            Some(ctx.plane.as_ref()),
            ctx.connect_options,
        )
        .await?;
        let progress =
            |done: u64, total: u64| ctx.progress(done, Some(total), "sampled keys checked");
        let report = crate::snapshot::verify::verify(&manifest, &restored, &connector, &progress)
            .await
            .map_err(|e| ActionError::failed(format!("verify {target}: {e}")))?;
        let line = format!(
            "{}: {} of {} keys restored; sample {}: {} missing, {} different, {} expired, {} changed during the snapshot",
            if report.verified {
                "verified"
            } else {
                "NOT verified"
            },
            report.keys_restored,
            report.keys_expected,
            report.sampled,
            report.missing,
            report.different,
            report.expired,
            report.changed_during_snapshot
        );
        ctx.output(line.clone());
        for e in &report.examples {
            ctx.output(e.clone());
        }
        if !report.verified {
            return Err(ActionError::failed(line));
        }
        let endpoints = serde_json::to_value(&restored.endpoints).unwrap_or_default();
        Ok(Values::new()
            .with("verified", Value::bool(report.verified))
            .with("keys_expected", Value::int(report.keys_expected as i64))
            .with("keys_restored", Value::int(report.keys_restored as i64))
            .with("sampled", Value::int(report.sampled as i64))
            .with("missing", Value::int(report.missing as i64))
            .with("different", Value::int(report.different as i64))
            .with("expired", Value::int(report.expired as i64))
            .with(
                "changed_during_snapshot",
                Value::int(report.changed_during_snapshot as i64),
            )
            .with(
                "counts",
                Value::Json(serde_json::to_value(&report.counts).unwrap_or_default()),
            )
            .with(
                "examples",
                Value::Json(serde_json::to_value(&report.examples).unwrap_or_default()),
            )
            .with("endpoints", Value::Json(endpoints)))
    }
}
