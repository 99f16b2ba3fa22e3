//! Per-cache run locks held outside the cache: a control-plane parameter (SSM on AWS, the
//! sandbox's parameter store) created with overwrite=false, so two operators on two hosts
//! cannot run mutating runbooks on one cache at once. The value says who holds it.

use crate::controlplane::{
    ControlPlane, ControlPlaneError, ParameterType, ParameterValue, PutParameter,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Where locks live in the parameter store.
pub const LOCK_PREFIX: &str = "/cachedeck/locks";

/// Who holds a lock (the parameter's JSON value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    /// The user name of the operator.
    pub holder: String,
    pub host: String,
    pub run_id: String,
    #[serde(default)]
    pub runbook: String,
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
}

impl LockHolder {
    /// This process, for `run_id`.
    pub fn me(run_id: &str, runbook: &str) -> LockHolder {
        LockHolder {
            holder: current_user(),
            host: current_host(),
            run_id: run_id.to_string(),
            runbook: runbook.to_string(),
            since: OffsetDateTime::now_utc(),
        }
    }

    pub fn describe(&self) -> String {
        let since = self
            .since
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        format!(
            "{}@{} (run {}, {} since {since})",
            self.holder, self.host, self.run_id, self.runbook
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
        "take the lock {name}: held by {}; wait for that run, or if it is dead: --force-unlock {}",
        holder.describe(),
        holder.run_id
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

/// The parameter name of the lock of one cache. Characters SSM does not allow become `_`.
pub fn lock_name(env: &str, cache: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!("{LOCK_PREFIX}/{}/{}", clean(env), clean(cache))
}

/// Reads who holds the lock, if anyone.
pub async fn holder(plane: &dyn ControlPlane, name: &str) -> Result<Option<LockHolder>, LockError> {
    let cp = |source| LockError::ControlPlane {
        name: name.to_string(),
        source,
    };
    let Some(param) = plane.get_parameter(name).await.map_err(cp)? else {
        return Ok(None);
    };
    // A value that is not ours still means "taken": show it as an unknown holder.
    Ok(Some(
        serde_json::from_str(param.value.expose()).unwrap_or_else(|_| LockHolder {
            holder: "unknown".into(),
            host: "unknown".into(),
            run_id: "unknown".into(),
            runbook: String::new(),
            since: param.last_modified.unwrap_or(OffsetDateTime::UNIX_EPOCH),
        }),
    ))
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
            Some(id) if id == current.run_id => {
                tracing::warn!(lock = name, run = id, "breaking lock on request");
                match plane.delete_parameter(name).await {
                    Ok(()) | Err(ControlPlaneError::NotFound { .. }) => {}
                    Err(e) => return Err(cp(e)),
                }
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

/// Gives the lock back if `run_id` holds it.
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
