//! The `auth-rotate` actions: a cache's password changed in two phases, with the cache, the
//! secret store and the applications moving together (see docs/runbook-auth-rotate.md).
//!
//! No step passes a token to another as an output (outputs are journaled, secrets cannot be,
//! and `runs resume` would lose them): the new token lives in the staging SecureString
//! `/cachedeck/rotation/<cache>/pending` from the moment it is generated, the old one in
//! `…/previous`, and every step reads them from there. The journal sees only fingerprints.
//!
//! Mechanisms: `token` (a replication group's AUTH token: ModifyReplicationGroup ROTATE then
//! SET), `rbac` (an RBAC user: ModifyUser `[old, new]` then `[new]`), `acl` (self-managed
//! Valkey: `ACL SETUSER u >new` then `<old` on every node).

mod change;
mod drain;
mod preflight;
mod publish;
mod roll;
mod stage;

pub use change::{AuthFinalize, AuthRotate, AuthVerifyBoth, StartupSource, read_startup_source};
pub use drain::AuthDrainCheck;
pub use preflight::AuthPreflight;
pub use publish::AuthPublish;
pub use roll::AuthRoll;
pub use stage::AuthGenerate;

use crate::controlplane::{ParameterType, ParameterValue, PutParameter};
use crate::domain::{AuthMode, Cache, CacheKind, Endpoint, SecretRef};
use crate::runbook::action::{ActionContext, ActionError};
use crate::valkey::connect::{Auth, ConnectError, Connector, Layer};
use secrecy::{ExposeSecret, SecretString};
use sha2::Digest;

/// Which way the cache's password is changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Token,
    Rbac,
    Acl,
}

impl Mechanism {
    pub fn of(cache: &Cache) -> Mechanism {
        match (cache.kind, cache.auth) {
            (CacheKind::Serverless, _) | (CacheKind::ReplicationGroup, AuthMode::Rbac) => {
                Mechanism::Rbac
            }
            (CacheKind::ReplicationGroup, _) => Mechanism::Token,
            _ => Mechanism::Acl,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mechanism::Token => "token",
            Mechanism::Rbac => "rbac",
            Mechanism::Acl => "acl",
        }
    }
}

/// The staging parameter holding the new token until the rotation is finished.
pub fn pending_name(cache: &Cache) -> String {
    format!("/cachedeck/rotation/{}/pending", cache.name)
}

/// The staging parameter holding the token being replaced (for verification and rollback).
pub fn previous_name(cache: &Cache) -> String {
    format!("/cachedeck/rotation/{}/previous", cache.name)
}

/// The label on the version of the applications' secret that holds the newest token.
pub const CURRENT_LABEL: &str = "cachedeck-current";
/// The label on the version it replaced (what a rollback puts back).
pub const PREVIOUS_LABEL: &str = "cachedeck-previous";

/// The label naming the run on every parameter version it writes (labels may not start
/// with a digit, as run ids do).
pub fn run_label(ctx: &ActionContext) -> String {
    format!("run-{}", ctx.run_id)
}

/// Attaches `labels` to `version` of `name`. A label that cannot be attached (a control
/// plane without labels, the 10-per-version limit, a missing permission) is said as a
/// warning and never fails the step: the secret is what the rotation is about. Returns the
/// labels attached.
pub async fn label_version(
    ctx: &ActionContext,
    name: &str,
    version: i64,
    labels: &[String],
) -> Vec<String> {
    match ctx
        .plane
        .label_parameter_version(name, Some(version), labels)
        .await
    {
        Ok(out) => {
            if !out.invalid_labels.is_empty() {
                ctx.output(format!(
                    "warning: {name} version {version}: labels refused as invalid: {}",
                    crate::escape::escape(out.invalid_labels.join(", "))
                ));
            }
            labels
                .iter()
                .filter(|l| !out.invalid_labels.contains(l))
                .cloned()
                .collect()
        }
        Err(e) => {
            ctx.output(format!(
                "warning: {name} version {version} not labelled {}: {e}",
                labels.join(", ")
            ));
            Vec::new()
        }
    }
}

/// Whether `version` of `name` carries every one of `labels`; `true` when the control
/// plane keeps no labels (nothing to wait for there).
pub async fn has_labels(
    ctx: &ActionContext,
    name: &str,
    version: i64,
    labels: &[String],
) -> Result<bool, ActionError> {
    match ctx.plane.get_parameter_history(name).await {
        Ok(history) => Ok(history
            .iter()
            .find(|v| v.version == version)
            .is_some_and(|v| labels.iter().all(|l| v.labels.contains(l)))),
        Err(crate::controlplane::ControlPlaneError::Unsupported { .. }) => Ok(true),
        Err(e) => Err(e.into()),
    }
}

/// A short SHA-256 fingerprint of a secret: enough to tell two tokens apart in a journal,
/// useless for guessing one.
pub fn fingerprint(secret: &str) -> String {
    let digest = sha2::Sha256::digest(secret.as_bytes());
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// One parameter the applications read the password from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub name: String,
    /// The whole `redis[s]://user:pass@host:port/db` URL, or the bare password.
    pub url: bool,
}

/// Where the applications read the cache's password: its URL parameter and its password
/// parameter. A password from an environment variable cannot be published: refused.
pub fn published(cache: &Cache) -> Result<Vec<Published>, ActionError> {
    let mut out = Vec::new();
    if let Some(name) = &cache.credentials.url_parameter {
        out.push(Published {
            name: name.clone(),
            url: true,
        });
    }
    match &cache.credentials.password {
        Some(SecretRef::Ssm(name)) => out.push(Published {
            name: name.clone(),
            url: false,
        }),
        Some(SecretRef::Env(var)) => {
            return Err(ActionError::failed(format!(
                "rotate the password of `{}`: it is read from the environment variable {var}, which cachedeck cannot update; keep it in an SSM SecureString (`password = {{ ssm = \"/path\" }}`)",
                cache.name
            )));
        }
        None => {}
    }
    Ok(out)
}

/// Reads a parameter's value as a secret; `None` when absent.
pub async fn read_secret(
    ctx: &ActionContext,
    name: &str,
) -> Result<Option<SecretString>, ActionError> {
    Ok(ctx
        .plane
        .get_parameter(name)
        .await?
        .map(|p| SecretString::from(p.value.expose().to_string())))
}

/// The token staged for this rotation; an error when there is none.
pub async fn staged(ctx: &ActionContext) -> Result<SecretString, ActionError> {
    let name = pending_name(&ctx.cache);
    read_secret(ctx, &name).await?.ok_or_else(|| {
        ActionError::failed(format!(
            "read the staged token: {name} does not exist; the rotation was not prepared (run from the start) or was already finished"
        ))
    })
}

/// The password inside a published value (the URL's, or the value itself).
pub fn password_in(p: &Published, value: &str) -> Result<Option<SecretString>, ActionError> {
    if !p.url {
        return Ok(Some(SecretString::from(value.to_string())));
    }
    crate::valkey::connect::password_from_url(&p.name, value)
        .map_err(|e| ActionError::failed(e.to_string()))
}

/// The value to publish: the new password, or the same URL with only the password replaced
/// (percent-encoded; user, host, port, database and query kept).
pub fn with_password(
    p: &Published,
    current: &str,
    password: &str,
) -> Result<SecretString, ActionError> {
    if !p.url {
        return Ok(SecretString::from(password.to_string()));
    }
    let bad = || {
        ActionError::failed(format!(
            "update the URL in {}: its value is not a redis:// or rediss:// URL",
            p.name
        ))
    };
    let mut url = url::Url::parse(current.trim()).map_err(|_| bad())?;
    url.set_password(Some(password)).map_err(|_| bad())?;
    Ok(SecretString::from(url.to_string()))
}

/// Writes a SecureString (the staging parameters and the published secret).
pub async fn put_secret(
    ctx: &ActionContext,
    name: &str,
    value: &SecretString,
    overwrite: bool,
    description: &str,
) -> Result<i64, ActionError> {
    Ok(ctx
        .plane
        .put_parameter(PutParameter {
            name: name.to_string(),
            kind: ParameterType::SecureString,
            value: ParameterValue::Secret(value.clone()),
            overwrite,
            description: Some(description.to_string()),
        })
        .await?)
}

/// Every node of the cache (primaries, replicas, every shard), or its endpoint when it has
/// no nodes of its own (serverless).
pub fn node_endpoints(cache: &Cache) -> Vec<(String, Endpoint)> {
    let nodes: Vec<(String, Endpoint)> = cache
        .nodes()
        .map(|n| (n.id.clone(), n.endpoint()))
        .collect();
    if !nodes.is_empty() && cache.kind != CacheKind::Serverless {
        return nodes;
    }
    cache
        .endpoint
        .clone()
        .map(|e| vec![("endpoint".to_string(), e)])
        .unwrap_or(nodes)
}

/// How a login with one password went on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    Accepted,
    /// WRONGPASS / invalid password: the server refused it.
    Refused,
    /// Anything else (unreachable, TLS, timeout): the answer is unknown.
    Failed(String),
}

/// A connector for `password` (the cache's user, its TLS settings).
pub fn connector_for(
    ctx: &ActionContext,
    user: Option<&str>,
    password: Option<&SecretString>,
) -> Result<Connector, ActionError> {
    Ok(Connector::new(
        Auth::new(user.map(str::to_string), password.cloned()),
        ctx.cache.tls,
        ctx.cache.credentials.ca_file.as_deref(),
        ctx.connect_options,
    )?)
}

fn classify(e: &ConnectError) -> Login {
    if e.layer == Layer::Auth {
        Login::Refused
    } else {
        Login::Failed(e.to_string())
    }
}

/// Tries `password` on every node; one result per node, in node order.
pub async fn try_login(
    ctx: &ActionContext,
    user: Option<&str>,
    password: Option<&SecretString>,
) -> Result<Vec<(String, Login)>, ActionError> {
    let connector = connector_for(ctx, user, password)?;
    let targets = node_endpoints(&ctx.cache);
    let attempts = targets.iter().map(|(id, ep)| {
        let connector = connector.clone();
        async move {
            let result = match connector.connect(ep).await {
                Ok(mut conn) => {
                    // A login without a password "succeeds" on an open server only if a
                    // command then works.
                    match conn.query::<redis::Value>(&redis::cmd("PING")).await {
                        Ok(_) => Login::Accepted,
                        Err(e) if e.to_string().contains("NOAUTH") => Login::Refused,
                        Err(e) => classify(&e),
                    }
                }
                Err(e) => classify(&e),
            };
            (id.clone(), result)
        }
    });
    Ok(futures::future::join_all(attempts).await)
}

/// Checks that `password` is accepted (`want = true`) or refused everywhere; the error
/// names each node that answered otherwise.
pub async fn expect_login(
    ctx: &ActionContext,
    user: Option<&str>,
    password: Option<&SecretString>,
    what: &str,
    want_accepted: bool,
) -> Result<usize, ActionError> {
    let results = try_login(ctx, user, password).await?;
    let wrong: Vec<String> = results
        .iter()
        .filter(|(_, r)| {
            !matches!(
                (want_accepted, r),
                (true, Login::Accepted) | (false, Login::Refused)
            )
        })
        .map(|(id, r)| match r {
            Login::Accepted => format!("{id}: accepted"),
            Login::Refused => format!("{id}: refused"),
            Login::Failed(e) => format!("{id}: {e}"),
        })
        .collect();
    if wrong.is_empty() {
        ctx.output(format!(
            "{what}: {} on all {} node(s)",
            if want_accepted { "accepted" } else { "refused" },
            results.len()
        ));
        Ok(results.len())
    } else {
        Err(ActionError::failed(format!(
            "check that {what} is {} on every node: {}",
            if want_accepted { "accepted" } else { "refused" },
            wrong.join("; ")
        )))
    }
}

/// The ACL/RBAC user the applications log in as (`None`: the `default` user / AUTH token).
pub fn app_user(cache: &Cache) -> Option<String> {
    cache.credentials.username.clone()
}

/// The current published password, read from the first published parameter.
pub async fn current_password(ctx: &ActionContext) -> Result<Option<SecretString>, ActionError> {
    for p in published(&ctx.cache)? {
        if let Some(v) = read_secret(ctx, &p.name).await? {
            return password_in(&p, v.expose_secret());
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_everything_but_the_password() {
        let p = Published {
            name: "/p/url".into(),
            url: true,
        };
        let out =
            with_password(&p, "rediss://app:old@h.example:6380/2?x=1", "n&w!pass<>").expect("url");
        let out = out.expose_secret();
        assert!(out.starts_with("rediss://app:"), "{out}");
        assert!(out.ends_with("@h.example:6380/2?x=1"), "{out}");
        let back = password_in(&p, out).expect("parse").expect("password");
        assert_eq!(back.expose_secret(), "n&w!pass<>");
        let bare = Published {
            name: "/p/token".into(),
            url: false,
        };
        assert_eq!(
            with_password(&bare, "old", "new")
                .expect("bare")
                .expose_secret(),
            "new"
        );
    }

    #[test]
    fn fingerprints_are_short_and_stable() {
        assert_eq!(fingerprint("abc"), fingerprint("abc"));
        assert_ne!(fingerprint("abc"), fingerprint("abd"));
        assert_eq!(fingerprint("abc").len(), 12);
    }
}
