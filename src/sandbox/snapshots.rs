//! The sandbox's snapshot store: CreateSnapshot / CreateServerlessCacheSnapshot as a real
//! BGSAVE on the chosen node of each shard, the RDB copied into
//! `<sandbox>/snapshots/<env>/<name>/` with AWS-shaped metadata. A snapshot is `creating`
//! until every shard's BGSAVE finished (checked lazily by whoever describes it, so it works
//! across processes), then `available`, or `failed` with AWS's event text. Manual snapshots
//! count against the daily limits (20 per node, 24 per serverless cache, per 24 hours).

use super::client::{self, NodeAuth};
use super::plane::SandboxControlPlane;
use super::state::{CacheState, State};
use crate::controlplane::names::check_snapshot_name as check_name;
use crate::controlplane::{ControlPlaneError, Snapshot, SnapshotQuery, SnapshotTarget};
use crate::domain::{AuthMode, CacheKind, NodeRole};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;
use time::OffsetDateTime;

/// Manual snapshots per node (cluster mode off) or per group, per rolling 24 hours.
pub const NODE_DAILY_LIMIT: usize = 20;
/// Manual snapshots per serverless cache per rolling 24 hours.
pub const SERVERLESS_DAILY_LIMIT: usize = 24;
/// The node type the sandbox reports for its nodes.
pub const NODE_TYPE: &str = "cache.sandbox.local";

const STEP: Duration = Duration::from_secs(3);

/// One shard's part of a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShardPart {
    pub shard: String,
    pub slots: Option<String>,
    pub node: String,
    pub port: u16,
    pub dir: PathBuf,
    /// `rdb_saves` before our BGSAVE: the save is ours once the counter moved.
    pub saves_before: u64,
    /// The copied RDB, once the save finished.
    pub file: Option<PathBuf>,
}

/// A snapshot's metadata file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SnapshotMeta {
    pub name: String,
    pub env: String,
    pub cache: String,
    pub kind: CacheKind,
    pub cluster_mode: bool,
    pub cache_cluster_id: Option<String>,
    pub status: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    pub engine: String,
    pub engine_version: String,
    /// Replicas per shard of the source at snapshot time.
    pub replicas: usize,
    pub auth: AuthMode,
    pub tls: bool,
    pub username: Option<String>,
    pub password_parameter: Option<String>,
    pub size: Option<u64>,
    pub parts: Vec<ShardPart>,
}

impl SnapshotMeta {
    pub fn serverless(&self) -> bool {
        self.kind == CacheKind::Serverless
    }

    fn to_api(&self) -> Snapshot {
        Snapshot {
            name: self.name.clone(),
            status: self.status.clone(),
            source: "manual".into(),
            cache: Some(self.cache.clone()),
            cache_cluster_id: self.cache_cluster_id.clone(),
            serverless: self.serverless(),
            created: Some(self.created),
            size_bytes: self.size,
            shard_count: Some(self.parts.len() as u32),
            engine: Some(self.engine.clone()),
            engine_version: Some(self.engine_version.clone()),
            node_type: (!self.serverless()).then(|| NODE_TYPE.to_string()),
            arn: Some(arn(self.serverless(), &self.name)),
        }
    }
}

/// The ARN the sandbox gives a snapshot.
pub fn arn(serverless: bool, name: &str) -> String {
    let kind = if serverless {
        "serverlesscachesnapshot"
    } else {
        "snapshot"
    };
    format!("arn:aws:elasticache:local:000000000000:{kind}:{name}")
}

fn store(dir: &Path, env: &str) -> PathBuf {
    dir.join("snapshots").join(env)
}

fn io(operation: &str, path: &Path, e: impl std::fmt::Display) -> ControlPlaneError {
    ControlPlaneError::Service {
        operation: operation.into(),
        detail: format!("{}: {e}", path.display()),
    }
}

fn invalid(operation: &str, code: &str, message: String) -> ControlPlaneError {
    ControlPlaneError::Service {
        operation: operation.into(),
        detail: format!("{code}: {message}"),
    }
}

/// Every snapshot of an environment, as stored (no state advanced).
pub fn load_all(dir: &Path, env: &str) -> Result<Vec<SnapshotMeta>, ControlPlaneError> {
    let root = store(dir, env);
    let entries = match std::fs::read_dir(&root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("DescribeSnapshots", &root, e)),
    };
    let mut all = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path().join("meta.json");
        if let Ok(text) = std::fs::read_to_string(&path)
            && let Ok(meta) = serde_json::from_str::<SnapshotMeta>(&text)
        {
            all.push(meta);
        }
    }
    all.sort_by_key(|m| m.created);
    Ok(all)
}

/// One snapshot by name, as stored.
pub fn load(dir: &Path, env: &str, name: &str) -> Option<SnapshotMeta> {
    let path = store(dir, env).join(name).join("meta.json");
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn save(dir: &Path, meta: &SnapshotMeta) -> Result<(), ControlPlaneError> {
    let folder = store(dir, &meta.env).join(&meta.name);
    std::fs::create_dir_all(&folder).map_err(|e| io("CreateSnapshot", &folder, e))?;
    let path = folder.join("meta.json");
    let tmp = folder.join(format!(".meta.{}", std::process::id()));
    let text = serde_json::to_string_pretty(meta).map_err(|e| io("CreateSnapshot", &path, e))?;
    std::fs::write(&tmp, text).map_err(|e| io("CreateSnapshot", &tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io("CreateSnapshot", &path, e))
}

fn info_field(info: &str, field: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
}

async fn persistence(port: u16, auth: &NodeAuth) -> Result<String, String> {
    let mut conn = client::connect(port, auth, STEP).await?;
    let info = client::command(&mut conn, redis::cmd("INFO").arg("persistence"), STEP).await?;
    Ok(client::text_of(&info))
}

/// CreateSnapshot / CreateServerlessCacheSnapshot.
pub async fn create(
    plane: &SandboxControlPlane,
    name: &str,
    target: SnapshotTarget,
) -> Result<Snapshot, ControlPlaneError> {
    let op = match target {
        SnapshotTarget::Serverless(_) => "CreateServerlessCacheSnapshot",
        _ => "CreateSnapshot",
    };
    let name = check_name(name).map_err(|why| {
        invalid(
            op,
            "InvalidParameterValue",
            format!("snapshot name {name} {why}"),
        )
    })?;
    let dir = plane.dir().to_path_buf();
    let env = plane.env.name.clone();
    let state: State = plane.state()?;
    let (cache, node_id) = match &target {
        SnapshotTarget::Node(id) => {
            let cache = state
                .caches
                .iter()
                .filter(|c| c.env == env && c.kind == CacheKind::ReplicationGroup)
                .find(|c| c.shards.iter().any(|s| s.nodes.iter().any(|n| &n.id == id)))
                .cloned()
                .ok_or_else(|| ControlPlaneError::NotFound {
                    what: format!("cache cluster {id} (CacheClusterNotFound)"),
                })?;
            if cache.cluster_mode {
                return Err(invalid(
                    op,
                    "InvalidParameterCombination",
                    "Cannot snapshot a cache cluster of a cluster mode enabled replication group; use ReplicationGroupId".into(),
                ));
            }
            (cache, Some(id.clone()))
        }
        SnapshotTarget::Group(id) => {
            let cache = state
                .cache(&env, id)
                .filter(|c| c.kind == CacheKind::ReplicationGroup)
                .cloned()
                .ok_or_else(|| ControlPlaneError::NotFound {
                    what: format!("replication group {id} (ReplicationGroupNotFoundFault)"),
                })?;
            (cache, None)
        }
        SnapshotTarget::Serverless(id) => {
            let cache = state
                .cache(&env, id)
                .filter(|c| c.kind == CacheKind::Serverless)
                .cloned()
                .ok_or_else(|| ControlPlaneError::NotFound {
                    what: format!("serverless cache {id} (ServerlessCacheNotFoundFault)"),
                })?;
            (cache, None)
        }
    };
    let existing = load_all(&dir, &env)?;
    if existing.iter().any(|m| m.name == name) {
        return Err(ControlPlaneError::AlreadyExists {
            what: format!("snapshot {name} (SnapshotAlreadyExistsFault)"),
        });
    }
    let mine: Vec<&SnapshotMeta> = existing.iter().filter(|m| m.cache == cache.name).collect();
    if mine.iter().any(|m| m.status == "creating") {
        let (code, what) = if cache.kind == CacheKind::Serverless {
            ("InvalidServerlessCacheStateFault", "serverless cache")
        } else {
            ("InvalidReplicationGroupState", "replication group")
        };
        return Err(ControlPlaneError::InvalidState {
            operation: op.into(),
            detail: format!(
                "{code}: {what} {} is not in available state: a snapshot is in progress",
                cache.name
            ),
        });
    }
    let day_ago = OffsetDateTime::now_utc() - time::Duration::hours(24);
    let recent = mine
        .iter()
        .filter(|m| m.created > day_ago)
        .filter(|m| {
            node_id.is_none() || m.cache_cluster_id == node_id || m.cache_cluster_id.is_none()
        })
        .count();
    let limit = if cache.kind == CacheKind::Serverless {
        SERVERLESS_DAILY_LIMIT
    } else {
        NODE_DAILY_LIMIT
    };
    if recent >= limit {
        return Err(ControlPlaneError::QuotaExceeded {
            operation: op.into(),
            detail: format!(
                "SnapshotQuotaExceededFault: {recent} manual snapshots of {} in the last 24 hours (limit {limit})",
                cache.name
            ),
        });
    }
    let auth = NodeAuth::of(&cache, &plane.params);
    let mut parts = Vec::new();
    for shard in &cache.shards {
        let node = match &node_id {
            Some(id) => shard.nodes.iter().find(|n| &n.id == id),
            None => pick_node(shard, &auth).await,
        };
        let Some(node) = node else {
            continue;
        };
        let before =
            persistence(node.port, &auth)
                .await
                .map_err(|e| ControlPlaneError::InvalidState {
                    operation: op.into(),
                    detail: format!(
                        "InvalidCacheClusterState: node {} does not answer ({e})",
                        node.id
                    ),
                })?;
        let saves_before = info_field(&before, "rdb_saves")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        parts.push(ShardPart {
            shard: shard.id.clone(),
            slots: shard.slots.clone(),
            node: node.id.clone(),
            port: node.port,
            dir: node.dir.clone(),
            saves_before,
            file: None,
        });
    }
    let meta = SnapshotMeta {
        name: name.clone(),
        env: env.clone(),
        cache: cache.name.clone(),
        kind: cache.kind,
        cluster_mode: cache.cluster_mode,
        cache_cluster_id: node_id.clone(),
        status: "creating".into(),
        created: OffsetDateTime::now_utc(),
        engine: state.engine.clone(),
        engine_version: state.engine_version.clone(),
        replicas: cache
            .shards
            .first()
            .map(|s| s.nodes.len().saturating_sub(1))
            .unwrap_or(0),
        auth: cache.auth,
        tls: cache.tls,
        username: cache.username.clone(),
        password_parameter: cache.password_parameter.clone(),
        size: None,
        parts,
    };
    // Recorded before any BGSAVE, so a describe after a crash still finds it.
    save(&dir, &meta)?;
    for part in &meta.parts {
        let started = async {
            let mut conn = client::connect(part.port, &auth, STEP).await?;
            client::command(&mut conn, redis::cmd("BGSAVE").arg("SCHEDULE"), STEP).await
        }
        .await;
        if let Err(e) = started {
            return Err(fail(
                plane,
                meta.clone(),
                &format!("BGSAVE on {}: {e}", part.node),
            ));
        }
    }
    Ok(meta.to_api())
}

/// A replica that answers (BGSAVE on a replica spares the primary), else the primary.
async fn pick_node<'a>(
    shard: &'a super::state::ShardState,
    auth: &NodeAuth,
) -> Option<&'a super::state::NodeState> {
    let mut primary = None;
    for node in &shard.nodes {
        match client::role(node.port, auth, STEP).await {
            Ok(NodeRole::Replica) => return Some(node),
            Ok(NodeRole::Primary) => primary = Some(node),
            _ => {}
        }
    }
    primary.or(shard.nodes.first())
}

fn source_words(meta: &SnapshotMeta) -> String {
    match (&meta.cache_cluster_id, meta.serverless()) {
        (_, true) => format!("serverless cache with ID '{}'", meta.cache),
        (Some(node), false) => format!("cache cluster with ID '{node}'"),
        (None, false) => format!("replication group with ID '{}'", meta.cache),
    }
}

fn source_type(meta: &SnapshotMeta) -> &'static str {
    match (&meta.cache_cluster_id, meta.serverless()) {
        (_, true) => "serverless-cache",
        (Some(_), false) => "cache-cluster",
        (None, false) => "replication-group",
    }
}

fn event_source(meta: &SnapshotMeta) -> String {
    meta.cache_cluster_id
        .clone()
        .unwrap_or_else(|| meta.cache.clone())
}

/// Marks a snapshot failed with AWS's event text; returns the error for the caller.
fn fail(plane: &SandboxControlPlane, mut meta: SnapshotMeta, why: &str) -> ControlPlaneError {
    tracing::warn!(snapshot = %meta.name, why, "sandbox snapshot failed");
    meta.status = "failed".into();
    let message = format!(
        "Snapshot failed for snapshot with ID '{}' of {}",
        meta.name,
        source_words(&meta)
    );
    let _ = save(plane.dir(), &meta);
    let _ = plane.event(&event_source(&meta), source_type(&meta), &message);
    ControlPlaneError::Service {
        operation: "CreateSnapshot".into(),
        detail: message,
    }
}

/// Moves a `creating` snapshot on: copies each finished shard's RDB; `available` when all are.
async fn advance(plane: &SandboxControlPlane, mut meta: SnapshotMeta) -> SnapshotMeta {
    if meta.status != "creating" {
        return meta;
    }
    let Ok(state) = plane.state() else {
        return meta;
    };
    let auth = match state.cache(&meta.env, &meta.cache) {
        Some(c) => NodeAuth::of(c, &plane.params),
        None => {
            let _ = fail(plane, meta.clone(), "the cache is gone");
            meta.status = "failed".into();
            return meta;
        }
    };
    let folder = store(plane.dir(), &meta.env).join(&meta.name);
    let mut changed = false;
    for i in 0..meta.parts.len() {
        if meta.parts[i].file.is_some() {
            continue;
        }
        let part = meta.parts[i].clone();
        let info = match persistence(part.port, &auth).await {
            Ok(info) => info,
            Err(e) => {
                let _ = fail(plane, meta.clone(), &format!("node {}: {e}", part.node));
                meta.status = "failed".into();
                return meta;
            }
        };
        let saves: u64 = info_field(&info, "rdb_saves")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let running = info_field(&info, "rdb_bgsave_in_progress").as_deref() == Some("1");
        if running {
            continue;
        }
        if saves <= part.saves_before {
            // Accepted but no save yet: the caller may have died between recording the
            // request and sending BGSAVE. ElastiCache finishes a snapshot it accepted, so
            // the save is asked for (again); a second one only costs a save.
            let _ = async {
                let mut conn = client::connect(part.port, &auth, STEP).await?;
                client::command(&mut conn, redis::cmd("BGSAVE").arg("SCHEDULE"), STEP).await
            }
            .await;
            continue;
        }
        if info_field(&info, "rdb_last_bgsave_status").as_deref() != Some("ok") {
            let _ = fail(plane, meta.clone(), "rdb_last_bgsave_status is not ok");
            meta.status = "failed".into();
            return meta;
        }
        let target = folder.join(format!("{}.rdb", part.shard));
        // The node's RDB as it is now, kept apart from its later saves (each replaces the
        // file by a rename, so a hard link stays this save's bytes).
        let copied = super::restore::link_or_copy(&part.dir.join("dump.rdb"), &target);
        if let Err(e) = copied {
            let _ = fail(plane, meta.clone(), &format!("copy the RDB: {e}"));
            meta.status = "failed".into();
            return meta;
        }
        meta.parts[i].file = Some(target);
        changed = true;
    }
    if meta.parts.iter().all(|p| p.file.is_some()) {
        meta.status = "available".into();
        meta.size = Some(
            meta.parts
                .iter()
                .filter_map(|p| p.file.as_ref())
                .filter_map(|f| std::fs::metadata(f).ok())
                .map(|m| m.len())
                .sum(),
        );
        changed = true;
        let message = format!(
            "Snapshot succeeded for snapshot with ID '{}' of {}",
            meta.name,
            source_words(&meta)
        );
        let _ = plane.event(&event_source(&meta), source_type(&meta), &message);
    }
    if changed {
        let _ = save(plane.dir(), &meta);
    }
    meta
}

/// DescribeSnapshots / DescribeServerlessCacheSnapshots.
pub async fn describe(
    plane: &SandboxControlPlane,
    query: SnapshotQuery,
) -> Result<Vec<Snapshot>, ControlPlaneError> {
    let env = plane.env.name.clone();
    let mut out = Vec::new();
    for meta in load_all(plane.dir(), &env)? {
        if meta.serverless() != query.serverless
            || query.cache.as_ref().is_some_and(|c| c != &meta.cache)
            || query
                .name
                .as_ref()
                .is_some_and(|n| !n.eq_ignore_ascii_case(&meta.name))
        {
            continue;
        }
        out.push(advance(plane, meta).await.to_api());
    }
    if let Some(name) = &query.name
        && out.is_empty()
    {
        return Err(ControlPlaneError::NotFound {
            what: format!("snapshot {name} (SnapshotNotFoundFault)"),
        });
    }
    Ok(out)
}

/// DeleteSnapshot / DeleteServerlessCacheSnapshot.
pub fn delete(
    plane: &SandboxControlPlane,
    name: &str,
    serverless: bool,
) -> Result<(), ControlPlaneError> {
    let env = &plane.env.name;
    let meta = load(plane.dir(), env, name)
        .filter(|m| m.serverless() == serverless)
        .ok_or_else(|| ControlPlaneError::NotFound {
            what: format!("snapshot {name} (SnapshotNotFoundFault)"),
        })?;
    if meta.status == "creating" {
        return Err(ControlPlaneError::InvalidState {
            operation: "DeleteSnapshot".into(),
            detail: format!("InvalidSnapshotState: snapshot {name} is creating"),
        });
    }
    let folder = store(plane.dir(), env).join(&meta.name);
    std::fs::remove_dir_all(&folder).map_err(|e| io("DeleteSnapshot", &folder, e))
}

/// The source cache's state as recorded in the snapshot (for a restore).
pub fn source_of(state: &State, meta: &SnapshotMeta) -> Option<CacheState> {
    state.cache(&meta.env, &meta.cache).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_aws_rules_and_are_lowercased() {
        assert_eq!(
            check_name("Orders-Before-Deploy").as_deref(),
            Ok("orders-before-deploy")
        );
        assert!(check_name("1abc").is_err());
        assert!(check_name("a--b").is_err());
        assert!(check_name("ab-").is_err());
        assert!(check_name("a_b").is_err());
        assert!(check_name("").is_err());
    }

    #[test]
    fn info_fields_are_read_by_name() {
        let info = "# Persistence\r\nrdb_saves:3\r\nrdb_bgsave_in_progress:0\r\n";
        assert_eq!(info_field(info, "rdb_saves").as_deref(), Some("3"));
        assert_eq!(
            info_field(info, "rdb_bgsave_in_progress").as_deref(),
            Some("0")
        );
        assert_eq!(info_field(info, "missing"), None);
    }
}
