//! Authentication changes in the sandbox, as ElastiCache makes them: ModifyReplicationGroup
//! `AuthToken` + `AuthTokenUpdateStrategy` (ROTATE keeps the newest two tokens, SET keeps
//! one, DELETE only when moving to RBAC) and ModifyUser `Passwords` (at most two), applied
//! for real as ACL passwords on every node (and each node's start-up config, so a restarted
//! node keeps them). The group or user reads `modifying` for a realistic moment afterwards
//! (`CACHEDECK_SANDBOX_MODIFY_MS`, default 3000), then `available`/`active`.
//!
//! The tokens the sandbox's own control plane knows are kept in `auth/<env>/<cache>.json`
//! (0600), the way AWS keeps them out of the customer's parameters: the sandbox's probes and
//! endpoint daemon log in with the newest one, whatever the application's secret says.

use super::client::{self, NodeAuth};
use super::plane::SandboxControlPlane;
use super::state::{CacheState, State};
use crate::controlplane::{AuthTokenStrategy, ControlPlaneError, GroupAuth, UserAuth};
use crate::domain::{AuthMode, CacheKind};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;
use time::OffsetDateTime;

/// Overrides how long a group or user stays `modifying` after a change (milliseconds).
pub const MODIFY_MS_ENV: &str = "CACHEDECK_SANDBOX_MODIFY_MS";
const DEFAULT_MODIFY: Duration = Duration::from_millis(3000);
const NODE_TIMEOUT: Duration = Duration::from_secs(3);

/// What the sandbox's control plane knows of one cache's authentication.
#[derive(Serialize, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct AuthRecord {
    /// AUTH tokens (token mode) or the RBAC/ACL user's passwords, oldest first (at most two).
    pub secrets: Vec<String>,
    /// ROTATE on a group that had no token: unauthenticated clients are still let in.
    #[serde(default)]
    pub open: bool,
    /// The change in progress and when it ends.
    #[serde(default)]
    pub pending: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub pending_until: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_modified: Option<OffsetDateTime>,
}

impl std::fmt::Debug for AuthRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthRecord")
            .field("secrets", &self.secrets.len())
            .field("open", &self.open)
            .field("pending", &self.pending)
            .finish()
    }
}

impl AuthRecord {
    /// The change still running at `now`, if any.
    pub fn pending_at(&self, now: OffsetDateTime) -> Option<&str> {
        match (&self.pending, self.pending_until) {
            (Some(p), Some(until)) if now < until => Some(p),
            _ => None,
        }
    }

    pub fn newest(&self) -> Option<SecretString> {
        self.secrets.last().map(|s| SecretString::from(s.clone()))
    }
}

fn file(dir: &Path, env: &str, cache: &str) -> PathBuf {
    dir.join("auth").join(env).join(format!("{cache}.json"))
}

/// The record of a cache; `None` when the sandbox never changed its authentication.
pub fn load(dir: &Path, env: &str, cache: &str) -> Option<AuthRecord> {
    let text = std::fs::read_to_string(file(dir, env, cache)).ok()?;
    serde_json::from_str(&text).ok()
}

fn save(dir: &Path, env: &str, cache: &str, record: &AuthRecord) -> Result<(), ControlPlaneError> {
    let path = file(dir, env, cache);
    let fail = |e: std::io::Error| ControlPlaneError::Service {
        operation: "record sandbox auth".into(),
        detail: format!("{}: {e}", path.display()),
    };
    if let Some(parent) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(fail)?;
    }
    let text = serde_json::to_string(record).map_err(|e| fail(std::io::Error::other(e)))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(fail)?;
    f.write_all(text.as_bytes()).map_err(fail)?;
    f.sync_all().map_err(fail)?;
    std::fs::rename(&tmp, &path).map_err(fail)
}

/// Records the secret a cache was built with (`sandbox up`).
pub fn init(
    dir: &Path,
    env: &str,
    cache: &str,
    secret: &SecretString,
) -> Result<(), ControlPlaneError> {
    save(
        dir,
        env,
        cache,
        &AuthRecord {
            secrets: vec![secret.expose_secret().to_string()],
            ..AuthRecord::default()
        },
    )
}

fn modify_duration() -> Duration {
    std::env::var(MODIFY_MS_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_MODIFY)
}

fn invalid_param(operation: &str, detail: impl Into<String>) -> ControlPlaneError {
    ControlPlaneError::InvalidState {
        operation: operation.into(),
        detail: format!("InvalidParameterValue: {}", detail.into()),
    }
}

/// AWS's AUTH token rules: 16–128 printable ASCII characters, symbols only `!&#$^<>-`.
pub fn check_token(operation: &str, token: &str) -> Result<(), ControlPlaneError> {
    crate::controlplane::names::check_auth_token(token).map_err(|why| invalid_param(operation, why))
}

/// RBAC passwords: 16–128 printable ASCII characters, none of `,"/@` and no space.
pub fn check_password(operation: &str, password: &str) -> Result<(), ControlPlaneError> {
    let len = password.chars().count();
    if !(16..=128).contains(&len) {
        return Err(invalid_param(
            operation,
            format!("passwords must be 16 to 128 characters long (one has {len})"),
        ));
    }
    if !password
        .chars()
        .all(|c| c.is_ascii_graphic() && !",\"/@".contains(c))
    {
        return Err(invalid_param(
            operation,
            "passwords must be printable ASCII without spaces or the characters , \" / @",
        ));
    }
    Ok(())
}

impl SandboxControlPlane {
    fn auth_record(&self, c: &CacheState) -> AuthRecord {
        load(&self.dir, &c.env, &c.name).unwrap_or_else(|| {
            let secret = NodeAuth::from_parameter(
                c.username.as_deref(),
                c.password_parameter.as_deref(),
                &self.params,
            )
            .password;
            AuthRecord {
                secrets: secret
                    .map(|s| vec![s.expose_secret().to_string()])
                    .unwrap_or_default(),
                ..AuthRecord::default()
            }
        })
    }

    fn group(&self, state: &State, id: &str) -> Result<CacheState, ControlPlaneError> {
        let c = self.find(state, id)?;
        if c.kind != CacheKind::ReplicationGroup {
            return Err(ControlPlaneError::NotFound {
                what: format!("replication group {id} (it is a {})", c.kind),
            });
        }
        Ok(c)
    }

    fn group_auth(&self, c: &CacheState, record: &AuthRecord) -> GroupAuth {
        let pending = record
            .pending_at(OffsetDateTime::now_utc())
            .map(str::to_string);
        GroupAuth {
            status: if pending.is_some() {
                "modifying"
            } else {
                "available"
            }
            .into(),
            auth_token_enabled: c.auth == AuthMode::Token && !record.secrets.is_empty(),
            transit_encryption: c.tls,
            pending_auth_token_status: pending,
            auth_token_last_modified: record.last_modified,
            user_groups: Vec::new(),
        }
    }

    pub(super) async fn sandbox_group_auth(
        &self,
        id: &str,
    ) -> Result<GroupAuth, ControlPlaneError> {
        let state = self.state()?;
        let c = self.group(&state, id)?;
        Ok(self.group_auth(&c, &self.auth_record(&c)))
    }

    pub(super) async fn sandbox_modify_auth_token(
        &self,
        id: &str,
        token: Option<&SecretString>,
        strategy: AuthTokenStrategy,
    ) -> Result<GroupAuth, ControlPlaneError> {
        const OP: &str = "ModifyReplicationGroup";
        let state = self.state()?;
        let c = self.group(&state, id)?;
        let mut record = self.auth_record(&c);
        let now = OffsetDateTime::now_utc();
        if record.pending_at(now).is_some() {
            return Err(ControlPlaneError::InvalidState {
                operation: OP.into(),
                detail: format!(
                    "InvalidReplicationGroupState: replication group {id} is not in available state (modifying)"
                ),
            });
        }
        if !c.tls {
            return Err(ControlPlaneError::InvalidState {
                operation: OP.into(),
                detail: format!(
                    "InvalidParameterCombination: the AUTH token can be modified only on a group with in-transit encryption enabled; {id} has it off"
                ),
            });
        }
        if c.auth == AuthMode::Rbac || c.auth == AuthMode::Acl {
            return Err(ControlPlaneError::InvalidState {
                operation: OP.into(),
                detail: format!(
                    "InvalidParameterCombination: {id} uses RBAC user groups; change the users' passwords instead"
                ),
            });
        }
        let had_token = c.auth == AuthMode::Token && !record.secrets.is_empty() && !record.open;
        match (strategy, token) {
            (AuthTokenStrategy::Delete, _) => {
                return Err(ControlPlaneError::InvalidState {
                    operation: OP.into(),
                    detail: "InvalidParameterCombination: AuthTokenUpdateStrategy DELETE is allowed only when moving the group to RBAC user groups".into(),
                });
            }
            (_, None) => {
                return Err(ControlPlaneError::InvalidState {
                    operation: OP.into(),
                    detail: "InvalidParameterCombination: AuthTokenUpdateStrategy needs AuthToken"
                        .into(),
                });
            }
            (AuthTokenStrategy::Set, Some(t)) => {
                check_token(OP, t.expose_secret())?;
                if !had_token && !record.open {
                    return Err(ControlPlaneError::InvalidState {
                        operation: OP.into(),
                        detail: "InvalidParameterCombination: AuthTokenUpdateStrategy SET is allowed only after ROTATE on a group without a token".into(),
                    });
                }
                record.secrets = vec![t.expose_secret().to_string()];
                record.open = false;
                record.pending = Some("SETTING".into());
            }
            (AuthTokenStrategy::Rotate, Some(t)) => {
                check_token(OP, t.expose_secret())?;
                let t = t.expose_secret().to_string();
                if !had_token {
                    record.open = true;
                }
                record.secrets.retain(|s| s != &t);
                record.secrets.push(t);
                while record.secrets.len() > 2 {
                    record.secrets.remove(0);
                }
                record.pending = Some("ROTATING".into());
            }
        }
        let previous = NodeAuth::of(&c, &self.params);
        apply_token(&c, &record, &previous)
            .await
            .map_err(|e| ControlPlaneError::Service {
                operation: OP.into(),
                detail: e,
            })?;
        record.pending_until = Some(now + modify_duration());
        record.last_modified = Some(now);
        save(&self.dir, &c.env, &c.name, &record)?;
        let message = match strategy {
            AuthTokenStrategy::Set => format!("Auth token set for replication group {id}"),
            _ => format!("Auth token rotated for replication group {id}"),
        };
        self.event(id, "replication-group", &message)?;
        Ok(self.group_auth(&c, &record))
    }

    fn user_cache(&self, state: &State, user_id: &str) -> Result<CacheState, ControlPlaneError> {
        state
            .caches
            .iter()
            .find(|c| {
                c.env == self.env.name
                    && matches!(c.auth, AuthMode::Rbac)
                    && c.username.as_deref() == Some(user_id)
            })
            .cloned()
            .ok_or_else(|| ControlPlaneError::NotFound {
                what: format!("user {user_id}"),
            })
    }

    fn user_auth(&self, user_id: &str, record: &AuthRecord) -> UserAuth {
        let modifying = record.pending_at(OffsetDateTime::now_utc()).is_some();
        UserAuth {
            user_id: user_id.into(),
            user_name: user_id.into(),
            status: if modifying { "modifying" } else { "active" }.into(),
            authentication_type: if record.secrets.is_empty() {
                "no-password"
            } else {
                "password"
            }
            .into(),
            password_count: record.secrets.len() as i32,
        }
    }

    pub(super) async fn sandbox_describe_user(
        &self,
        user_id: &str,
    ) -> Result<UserAuth, ControlPlaneError> {
        let state = self.state()?;
        let c = self.user_cache(&state, user_id)?;
        Ok(self.user_auth(user_id, &self.auth_record(&c)))
    }

    pub(super) async fn sandbox_modify_user(
        &self,
        user_id: &str,
        passwords: &[SecretString],
    ) -> Result<UserAuth, ControlPlaneError> {
        const OP: &str = "ModifyUser";
        let state = self.state()?;
        let c = self.user_cache(&state, user_id)?;
        let mut record = self.auth_record(&c);
        let now = OffsetDateTime::now_utc();
        if record.pending_at(now).is_some() {
            return Err(ControlPlaneError::InvalidState {
                operation: OP.into(),
                detail: format!(
                    "InvalidUserState: user {user_id} is not in active state (modifying)"
                ),
            });
        }
        if passwords.is_empty() || passwords.len() > 2 {
            return Err(invalid_param(
                OP,
                format!(
                    "a user has one or two passwords; {} were given",
                    passwords.len()
                ),
            ));
        }
        for p in passwords {
            check_password(OP, p.expose_secret())?;
        }
        let previous = NodeAuth::of(&c, &self.params);
        record.secrets = passwords
            .iter()
            .map(|p| p.expose_secret().to_string())
            .collect();
        record.pending = Some("modifying".into());
        apply_user(&c, &record, &previous)
            .await
            .map_err(|e| ControlPlaneError::Service {
                operation: OP.into(),
                detail: e,
            })?;
        record.pending_until = Some(now + modify_duration());
        record.last_modified = Some(now);
        save(&self.dir, &c.env, &c.name, &record)?;
        self.event(
            user_id,
            "user",
            &format!("User {user_id} has been modified"),
        )?;
        Ok(self.user_auth(user_id, &record))
    }
}

/// ACL rule for a list of secrets: `>a >b` (`nopass` too while unauthenticated access is
/// still allowed after a ROTATE on a group without a token).
fn password_rules(record: &AuthRecord) -> Vec<String> {
    let mut rules = vec!["on".to_string(), "resetpass".to_string()];
    if record.open {
        rules.push("nopass".into());
    }
    rules.extend(record.secrets.iter().map(|s| format!(">{s}")));
    rules
}

/// Applies the token list to every node: the `default` user's passwords, `masterauth` (the
/// newest token, so replicas keep syncing), and the node's start-up config.
async fn apply_token(c: &CacheState, record: &AuthRecord, login: &NodeAuth) -> Result<(), String> {
    let newest = record.secrets.last().cloned().unwrap_or_default();
    for node in c.shards.iter().flat_map(|s| &s.nodes) {
        let mut conn = client::connect(node.port, login, NODE_TIMEOUT)
            .await
            .map_err(|e| format!("node {}: {e}", node.id))?;
        let mut acl = redis::cmd("ACL");
        acl.arg("SETUSER").arg("default");
        for r in password_rules(record) {
            acl.arg(r);
        }
        client::command(&mut conn, &acl, NODE_TIMEOUT)
            .await
            .map_err(|e| format!("node {}: ACL SETUSER: {e}", node.id))?;
        client::command(
            &mut conn,
            redis::cmd("CONFIG")
                .arg("SET")
                .arg("masterauth")
                .arg(&newest),
            NODE_TIMEOUT,
        )
        .await
        .map_err(|e| format!("node {}: CONFIG SET masterauth: {e}", node.id))?;
        let mut lines = vec![format!(
            "user default {} ~* &* +@all",
            password_rules(record).join(" ")
        )];
        lines.push(format!("masterauth {newest}"));
        rewrite_conf(
            &node.dir,
            &lines,
            &["requirepass ", "masterauth ", "user default "],
        )
        .map_err(|e| format!("node {}: {e}", node.id))?;
    }
    Ok(())
}

/// Applies an RBAC user's passwords to every node and its start-up config.
async fn apply_user(c: &CacheState, record: &AuthRecord, login: &NodeAuth) -> Result<(), String> {
    let user = c.username.clone().unwrap_or_default();
    for node in c.shards.iter().flat_map(|s| &s.nodes) {
        let mut conn = client::connect(node.port, login, NODE_TIMEOUT)
            .await
            .map_err(|e| format!("node {}: {e}", node.id))?;
        let mut acl = redis::cmd("ACL");
        acl.arg("SETUSER").arg(&user);
        for r in password_rules(record) {
            acl.arg(r);
        }
        client::command(&mut conn, &acl, NODE_TIMEOUT)
            .await
            .map_err(|e| format!("node {}: ACL SETUSER: {e}", node.id))?;
        let line = format!(
            "user {user} {} ~* &* +@all",
            password_rules(record).join(" ")
        );
        rewrite_conf(&node.dir, &[line], &[&format!("user {user} ")])
            .map_err(|e| format!("node {}: {e}", node.id))?;
    }
    Ok(())
}

/// Replaces the config lines starting with any of `prefixes` by `lines` (0600, atomically).
fn rewrite_conf(dir: &Path, lines: &[String], prefixes: &[&str]) -> Result<(), String> {
    let path = dir.join("cachedeck.conf");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("read {}: {e}", path.display())),
    };
    let mut out: Vec<String> = text
        .lines()
        .filter(|l| !prefixes.iter().any(|p| l.starts_with(p)))
        .map(str::to_string)
        .collect();
    out.extend(lines.iter().cloned());
    let tmp = path.with_extension("conf.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| format!("write {}: {e}", tmp.display()))?;
    f.write_all((out.join("\n") + "\n").as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &path).map_err(|e| format!("write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_rules_follow_aws() {
        assert!(check_token("M", "abcdefghijklmnop").is_ok());
        assert!(check_token("M", "short").is_err());
        assert!(check_token("M", &"a".repeat(129)).is_err());
        assert!(check_token("M", "abcdefghijklmno!&#$^<>-").is_ok());
        assert!(check_token("M", "abcdefghijklmnop@").is_err());
        assert!(check_token("M", "abcdefghijklmnop%").is_err());
        assert!(check_password("U", "abcdefghijklmnop!%").is_ok());
        assert!(check_password("U", "abcdefghijklmnop,").is_err());
        assert!(check_password("U", "abcdefghijklm nop").is_err());
    }

    #[test]
    fn pending_ends_on_time_and_records_hide_secrets() {
        let now = OffsetDateTime::now_utc();
        let r = AuthRecord {
            secrets: vec!["hunter2hunter2hunter2".into()],
            pending: Some("ROTATING".into()),
            pending_until: Some(now + time::Duration::seconds(2)),
            ..AuthRecord::default()
        };
        assert_eq!(r.pending_at(now), Some("ROTATING"));
        assert_eq!(r.pending_at(now + time::Duration::seconds(3)), None);
        assert!(!format!("{r:?}").contains("hunter2"));
    }
}
