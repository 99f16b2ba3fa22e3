//! Per-cache run locks held outside the cache: a control-plane parameter (SSM on AWS, the
//! sandbox's parameter store) created with overwrite=false, so two operators on two hosts
//! cannot run mutating runbooks on one cache at once.
//!
//! A lock is named by what identifies the cache in AWS — account, region, cache id — never
//! by the local environment name, so two operators who call the same account "prod" and
//! "pw-prod" meet at the same lock. Its value is the holder record (user, host, pid, run
//! id, start, heartbeat); a live run renews the heartbeat every [`HEARTBEAT_EVERY`]. A lock
//! whose holder died stays until `cachedeck runs unlock` (which shows the holder and asks)
//! or `runs resume` of the same run takes it back.
//!
//! Taking a lock is atomic (PutParameter with Overwrite=false). SSM has no conditional
//! overwrite or delete (no expected-version), so renewing, releasing and `runs unlock` read
//! the holder, compare the run id, then write or delete. The remaining window is that one
//! round trip: only if, inside it, the lock is broken by `runs unlock` *and* taken by a new
//! run could the old holder's renewal overwrite, or its release delete, the new run's
//! lock. Breaking a live lock is what `runs unlock` warns against (a fresh heartbeat).

use crate::controlplane::{
    ControlPlane, ControlPlaneError, ParameterType, ParameterValue, PutParameter,
};
use crate::domain::{Cache, Environment};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// Where locks live in the parameter store.
pub const LOCK_PREFIX: &str = "/cachedeck/locks";

/// How often a live run renews its lock's heartbeat.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(30);

/// A heartbeat older than this says the holder is probably gone (three missed renewals).
pub const STALE_AFTER: time::Duration = time::Duration::seconds(90);

/// Who holds a lock (the parameter's JSON value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    /// The user name of the operator.
    pub holder: String,
    pub host: String,
    /// The process holding it (0 when unknown: a lock written by an older version).
    #[serde(default)]
    pub pid: u32,
    pub run_id: String,
    #[serde(default)]
    pub runbook: String,
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// The last renewal by the live run (`since` for a lock never renewed).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub heartbeat: Option<OffsetDateTime>,
}

impl LockHolder {
    /// This process, for `run_id`.
    pub fn me(run_id: &str, runbook: &str) -> LockHolder {
        let now = OffsetDateTime::now_utc();
        LockHolder {
            holder: current_user(),
            host: current_host(),
            pid: std::process::id(),
            run_id: run_id.to_string(),
            runbook: runbook.to_string(),
            since: now,
            heartbeat: Some(now),
        }
    }

    /// When the holder last showed it was alive.
    pub fn last_seen(&self) -> OffsetDateTime {
        self.heartbeat.unwrap_or(self.since).max(self.since)
    }

    /// Whether the heartbeat is older than [`STALE_AFTER`] at `now`.
    pub fn is_stale(&self, now: OffsetDateTime) -> bool {
        now - self.last_seen() > STALE_AFTER
    }

    /// Whether the holding process is known to be gone: it ran on this host and its pid no
    /// longer runs (a holder killed with SIGKILL, before its heartbeat has aged). A pid reused
    /// since reads as alive, so this never calls a live holder dead.
    pub fn process_gone(&self) -> bool {
        self.pid != 0
            && self.host == current_host()
            && !crate::valkey::server::pid_alive(self.pid as i32)
    }

    /// Why the holder looks dead, if it does: its process is gone, or its heartbeat is old.
    pub fn looks_dead(&self, now: OffsetDateTime) -> Option<&'static str> {
        if self.process_gone() {
            Some("stale: its process is gone from this host")
        } else if self.is_stale(now) {
            Some("stale: the holder looks dead")
        } else {
            None
        }
    }

    /// One line naming the holder (escaped: the record is text from the store).
    pub fn describe(&self) -> String {
        let fmt = |t: OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        };
        let age = (OffsetDateTime::now_utc() - self.last_seen()).whole_seconds();
        crate::escape::escape_capped(
            format!(
                "{}@{} pid {} (run {}, {} since {}, heartbeat {age}s ago{})",
                self.holder,
                self.host,
                self.pid,
                self.run_id,
                self.runbook,
                fmt(self.since),
                self.looks_dead(OffsetDateTime::now_utc())
                    .map(|why| format!(", {why}"))
                    .unwrap_or_default()
            ),
            400,
        )
    }
}

pub fn current_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

pub fn current_host() -> String {
    hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// Why a lock could not be taken or given back.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "take the lock {name}: held by {}; wait for that run, or if it is dead: `cachedeck runs unlock` (shows the holder and asks)",
        holder.describe()
    )]
    Held { name: String, holder: LockHolder },
    #[error("force-unlock {name}: it is held by run {held_by}, not {given}; give the exact run id")]
    WrongId {
        name: String,
        held_by: String,
        given: String,
    },
    #[error("use the lock {name}: {source}")]
    ControlPlane {
        name: String,
        source: ControlPlaneError,
    },
}

/// Characters SSM does not allow in a name segment become `_`; an empty one is `_`.
fn clean(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() { "_".into() } else { out }
}

/// The account and region a cache lives in: from its ARN
/// (`arn:aws:elasticache:REGION:ACCOUNT:…`), else from the environment's resolved account
/// and region; `None` when neither says (a cache known only by URL).
pub fn cache_place(env: &Environment, cache: &Cache) -> Option<(String, String)> {
    if let Some(arn) = &cache.arn {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        if parts.len() == 6 && !parts[3].is_empty() && !parts[4].is_empty() {
            return Some((parts[4].to_string(), parts[3].to_string()));
        }
    }
    let account = env.account.as_ref().map(|a| a.id.clone())?;
    Some((account, env.region.clone().unwrap_or_else(|| "_".into())))
}

/// The parameter name of the lock of `cache`: `/cachedeck/locks/ACCOUNT/REGION/CACHE`, the
/// same for every operator whatever they call the environment. A cache with no account
/// (known only by URL) is locked under its environment's name:
/// `/cachedeck/locks/env/ENV/CACHE`.
pub fn lock_name_for(env: &Environment, cache: &Cache) -> String {
    match cache_place(env, cache) {
        Some((account, region)) => format!(
            "{LOCK_PREFIX}/{}/{}/{}",
            clean(&account),
            clean(&region),
            clean(&cache.name)
        ),
        None => lock_name(&env.name, &cache.name),
    }
}

/// The lock name of a cache that has no account: keyed by environment name.
pub fn lock_name(env: &str, cache: &str) -> String {
    format!("{LOCK_PREFIX}/env/{}/{}", clean(env), clean(cache))
}

/// Reads who holds the lock, if anyone.
pub async fn holder(plane: &dyn ControlPlane, name: &str) -> Result<Option<LockHolder>, LockError> {
    Ok(holder_at(plane, name).await?.map(|(h, _)| h))
}

/// Who holds the lock and the parameter version that says so.
pub async fn holder_at(
    plane: &dyn ControlPlane,
    name: &str,
) -> Result<Option<(LockHolder, i64)>, LockError> {
    let cp = |source| LockError::ControlPlane {
        name: name.to_string(),
        source,
    };
    let Some(param) = plane.get_parameter(name).await.map_err(cp)? else {
        return Ok(None);
    };
    // A value that is not ours still means "taken": show it as an unknown holder.
    let holder = serde_json::from_str(param.value.expose()).unwrap_or_else(|_| LockHolder {
        holder: "unknown".into(),
        host: "unknown".into(),
        pid: 0,
        run_id: "unknown".into(),
        runbook: String::new(),
        since: param.last_modified.unwrap_or(OffsetDateTime::UNIX_EPOCH),
        heartbeat: None,
    });
    Ok(Some((holder, param.version)))
}

/// Renews `me`'s heartbeat. `Ok(false)` when the lock is no longer `me`'s (broken by
/// `runs unlock`): it is then left alone.
pub async fn renew(
    plane: &dyn ControlPlane,
    name: &str,
    me: &LockHolder,
) -> Result<bool, LockError> {
    let cp = |source| LockError::ControlPlane {
        name: name.to_string(),
        source,
    };
    let Some((current, _)) = holder_at(plane, name).await? else {
        return Ok(false);
    };
    if current.run_id != me.run_id {
        return Ok(false);
    }
    let mut renewed = current;
    renewed.heartbeat = Some(OffsetDateTime::now_utc());
    renewed.pid = me.pid;
    renewed.host = me.host.clone();
    let value = serde_json::to_string(&renewed).map_err(|e| {
        cp(ControlPlaneError::Service {
            operation: "encode lock".into(),
            detail: e.to_string(),
        })
    })?;
    plane
        .put_parameter(PutParameter {
            name: name.to_string(),
            kind: ParameterType::String,
            value: ParameterValue::Plain(value),
            overwrite: true,
            description: Some("cachedeck run lock; see `cachedeck runs unlock`".into()),
        })
        .await
        .map_err(cp)?;
    Ok(true)
}

/// Renews the lock every [`HEARTBEAT_EVERY`] while it lives; dropping it stops renewing.
pub struct Heartbeat(tokio::task::JoinHandle<()>);

impl Heartbeat {
    pub fn start(plane: Arc<dyn ControlPlane>, name: String, me: LockHolder) -> Heartbeat {
        Heartbeat::every(plane, name, me, HEARTBEAT_EVERY)
    }

    /// The same with another interval (tests).
    pub fn every(
        plane: Arc<dyn ControlPlane>,
        name: String,
        me: LockHolder,
        every: Duration,
    ) -> Heartbeat {
        Heartbeat(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match renew(plane.as_ref(), &name, &me).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(lock = %name, run = %me.run_id, "lock taken away; no longer renewed");
                        return;
                    }
                    Err(e) => tracing::warn!(lock = %name, error = %e, "lock heartbeat failed"),
                }
            }
        }))
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Breaks the lock `name` held by `expected` (the run id shown to the operator): deleted
/// only if that run still holds it, so a lock that changed hands meanwhile is kept.
pub async fn unlock(
    plane: &dyn ControlPlane,
    name: &str,
    expected: &str,
) -> Result<bool, LockError> {
    match holder_at(plane, name).await? {
        Some((h, _)) if h.run_id == expected => match plane.delete_parameter(name).await {
            Ok(()) | Err(ControlPlaneError::NotFound { .. }) => {
                tracing::warn!(lock = name, run = expected, "lock broken on request");
                Ok(true)
            }
            Err(source) => Err(LockError::ControlPlane {
                name: name.to_string(),
                source,
            }),
        },
        _ => Ok(false),
    }
}

/// Takes the lock `name` for `me`. A lock already held by the same run id (a resumed run)
/// is kept; one held by `force_unlock` (exactly) is broken first.
pub async fn acquire(
    plane: &dyn ControlPlane,
    name: &str,
    me: &LockHolder,
    force_unlock: Option<&str>,
) -> Result<(), LockError> {
    let cp = |source| LockError::ControlPlane {
        name: name.to_string(),
        source,
    };
    let value = serde_json::to_string(me).map_err(|e| {
        cp(ControlPlaneError::Service {
            operation: "encode lock".into(),
            detail: e.to_string(),
        })
    })?;
    for _ in 0..2 {
        let put = PutParameter {
            name: name.to_string(),
            kind: ParameterType::String,
            value: ParameterValue::Plain(value.clone()),
            overwrite: false,
            description: Some("cachedeck run lock; see `cachedeck runs list`".into()),
        };
        match plane.put_parameter(put).await {
            Ok(_) => return Ok(()),
            Err(ControlPlaneError::AlreadyExists { .. }) => {}
            Err(e) => return Err(cp(e)),
        }
        let Some(current) = holder(plane, name).await? else {
            continue; // released in between: try again
        };
        if current.run_id == me.run_id {
            return Ok(());
        }
        match force_unlock {
            // The same check-and-break as `runs unlock`; a lock that changed hands
            // meanwhile is looked at again on the next pass.
            Some(id) if id == current.run_id => {
                unlock(plane, name, id).await?;
            }
            Some(id) => {
                return Err(LockError::WrongId {
                    name: name.to_string(),
                    held_by: current.run_id,
                    given: id.to_string(),
                });
            }
            None => {
                return Err(LockError::Held {
                    name: name.to_string(),
                    holder: current,
                });
            }
        }
    }
    Err(cp(ControlPlaneError::InvalidState {
        operation: "take the lock".into(),
        detail: "it changed hands while being taken; try again".into(),
    }))
}

/// Gives the lock back if `run_id` holds it (read and compare the run id, then delete:
/// see the module doc for the window SSM leaves).
pub async fn release(plane: &dyn ControlPlane, name: &str, run_id: &str) -> Result<(), LockError> {
    match holder(plane, name).await? {
        Some(h) if h.run_id == run_id => match plane.delete_parameter(name).await {
            Ok(()) | Err(ControlPlaneError::NotFound { .. }) => Ok(()),
            Err(source) => Err(LockError::ControlPlane {
                name: name.to_string(),
                source,
            }),
        },
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EnvConfig;
    use crate::domain::{Account, Protection, ProviderKind};
    use crate::estate::LocalControlPlane;

    fn env(name: &str, account: Option<&str>) -> Environment {
        let mut env =
            EnvConfig::implied(ProviderKind::Aws, Protection::Open).environment(name, "t");
        env.region = Some("eu-west-1".into());
        env.account = account.map(|id| Account {
            id: id.into(),
            caller_arn: String::new(),
        });
        env
    }

    fn cache(name: &str, arn: Option<&str>) -> Cache {
        let mut c: Cache = serde_json::from_value(serde_json::json!({
            "name": name, "env": "x", "kind": "replication-group", "engine": "valkey",
            "engine_version": "8", "status": "available", "cluster_mode": false,
            "auth": "none", "tls": false, "endpoint": null, "endpoints": {},
            "shards": [], "automatic_failover": false, "multi_az": false,
            "notes": [], "credentials": {},
        }))
        .expect("cache");
        c.arn = arn.map(str::to_string);
        c
    }

    #[test]
    fn locks_are_named_by_account_region_and_cache_not_by_environment() {
        let arn = "arn:aws:elasticache:eu-west-2:123456789012:replicationgroup:orders";
        let a = lock_name_for(&env("prod", None), &cache("orders", Some(arn)));
        let b = lock_name_for(&env("pw-prod", None), &cache("orders", Some(arn)));
        assert_eq!(a, "/cachedeck/locks/123456789012/eu-west-2/orders");
        assert_eq!(a, b);
        assert_eq!(
            lock_name_for(&env("prod", Some("111111111111")), &cache("svc", None)),
            "/cachedeck/locks/111111111111/eu-west-1/svc"
        );
        assert_eq!(
            lock_name_for(&env("bastion", None), &cache("legacy", None)),
            "/cachedeck/locks/env/bastion/legacy"
        );
    }

    #[tokio::test]
    async fn a_live_run_renews_its_heartbeat_and_a_broken_lock_is_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = EnvConfig::implied(ProviderKind::Static, Protection::Open);
        let plane: Arc<dyn ControlPlane> = Arc::new(LocalControlPlane::at(dir.path(), "t", &cfg));
        let name = "/cachedeck/locks/env/t/orders";
        let mut me = LockHolder::me("run-1", "marker");
        me.since -= time::Duration::minutes(5);
        me.heartbeat = Some(me.since);
        acquire(plane.as_ref(), name, &me, None)
            .await
            .expect("taken");
        let first = holder(plane.as_ref(), name)
            .await
            .expect("read")
            .expect("held");
        assert!(first.is_stale(OffsetDateTime::now_utc()));
        let beat = Heartbeat::every(
            plane.clone(),
            name.into(),
            me.clone(),
            Duration::from_millis(20),
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let renewed = holder(plane.as_ref(), name)
            .await
            .expect("read")
            .expect("held");
        assert!(renewed.heartbeat > first.heartbeat, "{renewed:?}");
        assert!(!renewed.is_stale(OffsetDateTime::now_utc()));
        assert_eq!(renewed.since, first.since);
        // Broken and taken by another run: the old heartbeat stops and never overwrites.
        assert!(unlock(plane.as_ref(), name, "run-1").await.expect("unlock"));
        let other = LockHolder::me("run-2", "marker");
        acquire(plane.as_ref(), name, &other, None)
            .await
            .expect("taken by run-2");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = holder(plane.as_ref(), name)
            .await
            .expect("read")
            .expect("held");
        assert_eq!(now.run_id, "run-2");
        drop(beat);
        // Neither a wrong id nor the old run's release breaks run-2's lock.
        assert!(!unlock(plane.as_ref(), name, "run-1").await.expect("unlock"));
        release(plane.as_ref(), name, "run-1")
            .await
            .expect("release");
        assert!(holder(plane.as_ref(), name).await.expect("read").is_some());
        release(plane.as_ref(), name, "run-2")
            .await
            .expect("release");
        assert!(holder(plane.as_ref(), name).await.expect("read").is_none());
    }
}
