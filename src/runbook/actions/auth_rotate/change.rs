//! `auth-rotate-rotate` (the cache accepts the old and the new token) and
//! `auth-rotate-finalize` (only the new one), for each mechanism. Both look before they
//! change anything, so a retry or `runs resume` never sends a second ROTATE: a group that is
//! still `modifying` is waited for, and a token the nodes already accept is not sent again.

use super::{
    Login, Mechanism, app_user, expect_login, fingerprint, node_endpoints, pending_name,
    previous_name, read_secret, staged, try_login,
};
use crate::controlplane::{AuthTokenStrategy, ControlPlaneError};
use crate::runbook::action::{
    Action, ActionContext, ActionError, InputSpec, Inputs, Observation, OutputSpec, PlanContext,
    PlannedCall,
};
use crate::runbook::value::{Value, ValueKind, Values};
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

const INPUTS: &[InputSpec] = &[
    InputSpec::optional(
        "timeout",
        ValueKind::Duration,
        Some("\"30m\""),
        "how long the cache may stay `modifying`",
    ),
    InputSpec::optional(
        "poll",
        ValueKind::Duration,
        Some("\"5s\""),
        "time between status reads while waiting",
    ),
    InputSpec::optional(
        "allow_enable",
        ValueKind::Bool,
        Some("false"),
        "allow ROTATE on a group without a token (unauthenticated access stays allowed until SET)",
    ),
    InputSpec::optional(
        "user_id",
        ValueKind::String,
        Some("\"\""),
        "RBAC user id (default: the cache's user name)",
    ),
    InputSpec::optional(
        "persist",
        ValueKind::Bool,
        Some("false"),
        "self-managed: write the change into each node's ACL file (ACL SAVE) or config file (CONFIG REWRITE)",
    ),
];
const OUTPUTS: &[OutputSpec] = &[
    OutputSpec {
        name: "mechanism",
        kind: ValueKind::String,
        doc: "token, rbac or acl",
    },
    OutputSpec {
        name: "fingerprint",
        kind: ValueKind::String,
        doc: "fingerprint of the token now accepted",
    },
    OutputSpec {
        name: "sent",
        kind: ValueKind::Bool,
        doc: "whether this attempt sent the change (false: it was already in place)",
    },
];

fn user_id(ctx: &ActionContext, inputs: &Inputs) -> Result<String, ActionError> {
    match inputs.opt_str("user_id")? {
        Some(u) if !u.is_empty() => Ok(u.to_string()),
        _ => app_user(&ctx.cache).ok_or_else(|| {
            ActionError::failed(format!(
                "find the RBAC user of `{}`: the cache has no user name; pass --param user_id=",
                ctx.cache.name
            ))
        }),
    }
}

fn outputs(mechanism: Mechanism, token: &SecretString, sent: bool) -> Values {
    Values::new()
        .with("mechanism", Value::str(mechanism.as_str()))
        .with(
            "fingerprint",
            Value::str(fingerprint(token.expose_secret())),
        )
        .with("sent", Value::bool(sent))
}

/// Waits until the group is `available` with no auth-token change pending.
async fn wait_group(ctx: &ActionContext, inputs: &Inputs) -> Result<(), ActionError> {
    let id = ctx.cache.name.clone();
    let started = std::time::Instant::now();
    ctx.poll(
        &format!("replication group {id} to be available again"),
        inputs.duration("poll")?,
        inputs.duration("timeout")?,
        || async {
            let auth = ctx.plane.replication_group_auth(&id).await?;
            ctx.waiting(
                started,
                format!(
                    "{id}: {}{}",
                    auth.status,
                    auth.pending_auth_token_status
                        .as_deref()
                        .map(|s| format!(" (AuthTokenStatus {s})"))
                        .unwrap_or_default()
                ),
            );
            Ok(auth.settled().then_some(()))
        },
    )
    .await
}

/// Waits until the RBAC user is `active`.
async fn wait_user(ctx: &ActionContext, inputs: &Inputs, user: &str) -> Result<(), ActionError> {
    let started = std::time::Instant::now();
    ctx.poll(
        &format!("user {user} to be active again"),
        inputs.duration("poll")?,
        inputs.duration("timeout")?,
        || async {
            let u = ctx.plane.describe_user(user).await?;
            ctx.waiting(
                started,
                format!(
                    "user {user}: {} ({} password(s))",
                    u.status, u.password_count
                ),
            );
            Ok((u.status == "active").then_some(()))
        },
    )
    .await
}

async fn all_accept(
    ctx: &ActionContext,
    user: Option<&str>,
    token: &SecretString,
) -> Result<bool, ActionError> {
    Ok(try_login(ctx, user, Some(token))
        .await?
        .iter()
        .all(|(_, r)| *r == Login::Accepted))
}

async fn previous(ctx: &ActionContext) -> Result<Option<SecretString>, ActionError> {
    Ok(read_secret(ctx, &previous_name(&ctx.cache))
        .await?
        .filter(|p| !p.expose_secret().is_empty()))
}

/// `ACL SETUSER <user> <rules…>` on every node.
async fn acl_everywhere(
    ctx: &ActionContext,
    login: &SecretString,
    user: &str,
    rule: &str,
) -> Result<(), ActionError> {
    let connector = super::connector_for(ctx, Some(user), Some(login))?;
    for (id, ep) in node_endpoints(&ctx.cache) {
        let mut conn = connector.connect(&ep).await?;
        conn.query::<redis::Value>(redis::cmd("ACL").arg("SETUSER").arg(user).arg(rule))
            .await
            .map_err(|e| ActionError::failed(format!("ACL SETUSER on {id}: {e}")))?;
    }
    Ok(())
}

/// Where a self-managed node reads its users from when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupSource {
    /// `aclfile`: users come from this ACL file (ACL SAVE writes it).
    AclFile(String),
    /// Users in the config file the server was started with (CONFIG REWRITE writes it).
    ConfigFile(String),
    /// No file: its command line (an ECS task definition) decides.
    CommandLine,
}

/// A node's start-up source from its `INFO server` `config_file` and `CONFIG GET aclfile`.
pub fn startup_source(info_server: &str, aclfile: &str) -> StartupSource {
    let config_file = info_server
        .lines()
        .find_map(|l| l.trim_end().strip_prefix("config_file:"))
        .unwrap_or_default()
        .trim();
    if !aclfile.trim().is_empty() {
        StartupSource::AclFile(aclfile.trim().to_string())
    } else if !config_file.is_empty() {
        StartupSource::ConfigFile(config_file.to_string())
    } else {
        StartupSource::CommandLine
    }
}

/// Asks a node where it reads its users at start-up (`INFO server`, `CONFIG GET aclfile`).
pub async fn read_startup_source(
    conn: &mut crate::valkey::connect::NodeConnection,
) -> Result<StartupSource, String> {
    let info: String = conn
        .query(redis::cmd("INFO").arg("server"))
        .await
        .map_err(|e| format!("INFO server: {e}"))?;
    let aclfile = conn
        .query::<Vec<String>>(redis::cmd("CONFIG").arg("GET").arg("aclfile"))
        .await
        .map_err(|e| format!("CONFIG GET aclfile: {e}"))?
        .get(1)
        .cloned()
        .unwrap_or_default();
    Ok(startup_source(&info, &aclfile))
}

/// What the plan says about the start-up files of self-managed nodes.
fn persist_plan(inputs: &Inputs) -> &'static str {
    if inputs.bool("persist").unwrap_or(false) {
        "ACL SAVE (ACL file) or CONFIG REWRITE (config file)"
    } else {
        "INFO server + CONFIG GET aclfile: warn where a restart would bring the old password back"
    }
}

/// After `ACL SETUSER` on a self-managed cache: where each node would take the user from on
/// restart. With `persist`, the change is written there (ACL SAVE / CONFIG REWRITE);
/// otherwise — or where that fails, or where only the command line decides — a warning
/// says that a restart brings the old password back. Returns the warnings.
async fn restart_check(
    ctx: &ActionContext,
    login: &SecretString,
    user: &str,
    persist: bool,
) -> Result<Vec<String>, ActionError> {
    let connector = super::connector_for(ctx, Some(user), Some(login))?;
    let mut warnings = Vec::new();
    for (id, ep) in node_endpoints(&ctx.cache) {
        let mut conn = connector.connect(&ep).await?;
        let source = match read_startup_source(&mut conn).await {
            Ok(source) => source,
            Err(e) => {
                warnings.push(format!(
                    "node {id}: cannot tell where it reads its users at start-up ({e}); make sure a restart does not bring the old password back"
                ));
                continue;
            }
        };
        let (file, command) = match &source {
            StartupSource::AclFile(f) => (f.clone(), ["ACL", "SAVE"]),
            StartupSource::ConfigFile(f) => (f.clone(), ["CONFIG", "REWRITE"]),
            StartupSource::CommandLine => {
                warnings.push(format!(
                    "node {id}: started without a config or ACL file, so a restart takes user {user} from its command line (task definition), which still has the old password unless it reads the published secret"
                ));
                continue;
            }
        };
        let file = crate::escape::escape(&file);
        if !persist {
            warnings.push(format!(
                "node {id}: a restart reloads user {user} from {file}, which still has the old password: run {} there (or pass --param persist=true)",
                command.join(" ")
            ));
            continue;
        }
        match conn
            .query::<redis::Value>(redis::cmd(command[0]).arg(command[1]))
            .await
        {
            Ok(_) => ctx.output(format!("node {id}: {} wrote {file}", command.join(" "))),
            Err(e) => warnings.push(format!(
                "node {id}: {} failed ({e}): a restart reloads user {user} from {file} with the old password",
                command.join(" ")
            )),
        }
    }
    for w in &warnings {
        ctx.output(format!("warning: {w}"));
    }
    Ok(warnings)
}

pub struct AuthRotate;

#[async_trait]
impl Action for AuthRotate {
    fn name(&self) -> &'static str {
        "auth-rotate-rotate"
    }
    fn summary(&self) -> &'static str {
        "Make the cache accept the staged token beside the current one (ROTATE / two passwords)"
    }
    fn inputs(&self) -> &'static [InputSpec] {
        INPUTS
    }
    fn outputs(&self) -> &'static [OutputSpec] {
        OUTPUTS
    }
    fn dangerous(&self) -> bool {
        true
    }
    fn plan(&self, ctx: &PlanContext<'_>, inputs: &Inputs) -> Vec<PlannedCall> {
        let staged = pending_name(ctx.cache);
        match Mechanism::of(ctx.cache) {
            Mechanism::Token => vec![PlannedCall::control_plane(
                format!(
                    "ModifyReplicationGroup ReplicationGroupId={} AuthToken=[{staged}] AuthTokenUpdateStrategy=ROTATE ApplyImmediately=true; wait until available",
                    ctx.cache.name
                ),
                true,
            )],
            Mechanism::Rbac => vec![PlannedCall::control_plane(
                format!(
                    "ModifyUser UserId={} Passwords=[previous, {staged}]; wait until active",
                    ctx.cache
                        .credentials
                        .username
                        .as_deref()
                        .unwrap_or("<user_id>")
                ),
                true,
            )],
            Mechanism::Acl => node_endpoints(ctx.cache)
                .into_iter()
                .map(|(_, ep)| {
                    PlannedCall::valkey(
                        ep.address(),
                        format!(
                            "ACL SETUSER {} >[{staged}]; {}",
                            ctx.cache
                                .credentials
                                .username
                                .as_deref()
                                .unwrap_or("default"),
                            persist_plan(inputs)
                        ),
                        true,
                    )
                })
                .collect(),
        }
    }
    async fn observe(
        &self,
        ctx: &ActionContext,
        inputs: &Inputs,
    ) -> Result<Observation, ActionError> {
        let mechanism = Mechanism::of(&ctx.cache);
        let token = staged(ctx).await?;
        let user = app_user(&ctx.cache);
        match mechanism {
            Mechanism::Token => {
                let auth = ctx.plane.replication_group_auth(&ctx.cache.name).await?;
                if !auth.settled() {
                    return Ok(Observation::Partial(format!(
                        "the group is {} (AuthTokenStatus {}); waiting, not sending again",
                        auth.status,
                        auth.pending_auth_token_status.as_deref().unwrap_or("-")
                    )));
                }
            }
            Mechanism::Rbac => {
                let u = ctx.plane.describe_user(&user_id(ctx, inputs)?).await?;
                if u.status != "active" {
                    return Ok(Observation::Partial(format!("user is {}", u.status)));
                }
            }
            Mechanism::Acl => {}
        }
        Ok(if all_accept(ctx, user.as_deref(), &token).await? {
            Observation::Done(outputs(mechanism, &token, false))
        } else {
            Observation::NotDone
        })
    }
    async fn run(&self, ctx: &ActionContext, inputs: &Inputs) -> Result<Values, ActionError> {
        let mechanism = Mechanism::of(&ctx.cache);
        let token = staged(ctx).await?;
        let user = app_user(&ctx.cache);
        let mut sent = false;
        match mechanism {
            Mechanism::Token => {
                let id = ctx.cache.name.clone();
                let auth = ctx.plane.replication_group_auth(&id).await?;
                if !auth.settled() {
                    ctx.output(format!(
                        "{id} is {}; waiting for the change under way instead of sending another",
                        auth.status
                    ));
                    wait_group(ctx, inputs).await?;
                }
                if !all_accept(ctx, user.as_deref(), &token).await? {
                    if !auth.auth_token_enabled && !inputs.bool("allow_enable")? {
                        return Err(ActionError::failed(format!(
                            "rotate the token of {id}: the group has no AUTH token; ROTATE would leave unauthenticated access allowed until SET. Pass --param allow_enable=true to go ahead"
                        )));
                    }
                    sent = send_token(ctx, &id, &token, AuthTokenStrategy::Rotate).await?;
                }
                wait_group(ctx, inputs).await?;
            }
            Mechanism::Rbac => {
                let uid = user_id(ctx, inputs)?;
                let u = ctx.plane.describe_user(&uid).await?;
                if u.status != "active" {
                    wait_user(ctx, inputs, &uid).await?;
                }
                if !all_accept(ctx, user.as_deref(), &token).await? {
                    let old = previous(ctx).await?.ok_or_else(|| {
                        ActionError::failed(format!(
                            "add the new password to user {uid}: the current one is not staged in {}",
                            previous_name(&ctx.cache)
                        ))
                    })?;
                    ctx.output(format!(
                        "ModifyUser {uid} Passwords=[current, new {}]",
                        fingerprint(token.expose_secret())
                    ));
                    ctx.plane
                        .modify_user_passwords(&uid, &[old, token.clone()])
                        .await?;
                    sent = true;
                }
                wait_user(ctx, inputs, &uid).await?;
            }
            Mechanism::Acl => {
                if !all_accept(ctx, user.as_deref(), &token).await? {
                    let old = previous(ctx).await?.ok_or_else(|| {
                        ActionError::failed("add the new password: the current one is not staged")
                    })?;
                    let name = user.clone().unwrap_or_else(|| "default".into());
                    let rule = format!(">{}", token.expose_secret());
                    acl_everywhere(ctx, &old, &name, &rule).await?;
                    sent = true;
                }
                let name = user.clone().unwrap_or_else(|| "default".into());
                restart_check(ctx, &token, &name, inputs.bool("persist")?).await?;
            }
        }
        expect_login(ctx, user.as_deref(), Some(&token), "the new token", true).await?;
        Ok(outputs(mechanism, &token, sent))
    }
}

pub struct AuthFinalize;

const FINAL_OUTPUTS: &[OutputSpec] = &[
    OutputSpec {
        name: "mechanism",
        kind: ValueKind::String,
        doc: "token, rbac or acl",
    },
    OutputSpec {
        name: "fingerprint",
        kind: ValueKind::String,
        doc: "fingerprint of the only token now accepted",
    },
    OutputSpec {
        name: "sent",
        kind: ValueKind::Bool,
        doc: "whether this attempt sent the change",
    },
];

/// The new token: staged, or (once the staging parameter is gone) the published one.
async fn new_token(ctx: &ActionContext) -> Result<SecretString, ActionError> {
    match read_secret(ctx, &pending_name(&ctx.cache)).await? {
        Some(t) => Ok(t),
        None => super::current_password(ctx)
            .await?
            .ok_or_else(|| ActionError::failed("find the new token: neither staged nor published")),
    }
}

async fn remove_staging(ctx: &ActionContext) -> Result<(), ActionError> {
    for name in [pending_name(&ctx.cache), previous_name(&ctx.cache)] {
        match ctx.plane.delete_parameter(&name).await {
            Ok(()) | Err(ControlPlaneError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    ctx.output("staging parameters deleted");
    Ok(())
}

#[async_trait]
impl Action for AuthFinalize {
    fn name(&self) -> &'static str {
        "auth-rotate-finalize"
    }
    fn summary(&self) -> &'static str {
        "Drop the old token (SET / one password / ACL <old), check it is refused, delete staging"
    }
    fn inputs(&self) -> &'static [InputSpec] {
        INPUTS
    }
    fn outputs(&self) -> &'static [OutputSpec] {
        FINAL_OUTPUTS
    }
    fn dangerous(&self) -> bool {
        true
    }
    fn plan(&self, ctx: &PlanContext<'_>, inputs: &Inputs) -> Vec<PlannedCall> {
        let staged = pending_name(ctx.cache);
        let mut calls = match Mechanism::of(ctx.cache) {
            Mechanism::Token => vec![PlannedCall::control_plane(
                format!(
                    "ModifyReplicationGroup ReplicationGroupId={} AuthToken=[{staged}] AuthTokenUpdateStrategy=SET ApplyImmediately=true; wait until available",
                    ctx.cache.name
                ),
                true,
            )],
            Mechanism::Rbac => vec![PlannedCall::control_plane(
                format!(
                    "ModifyUser UserId={} Passwords=[{staged}]; wait until active",
                    ctx.cache
                        .credentials
                        .username
                        .as_deref()
                        .unwrap_or("<user_id>")
                ),
                true,
            )],
            Mechanism::Acl => node_endpoints(ctx.cache)
                .into_iter()
                .map(|(_, ep)| {
                    PlannedCall::valkey(
                        ep.address(),
                        format!(
                            "ACL SETUSER {} <[previous]; {}",
                            ctx.cache
                                .credentials
                                .username
                                .as_deref()
                                .unwrap_or("default"),
                            persist_plan(inputs)
                        ),
                        true,
                    )
                })
                .collect(),
        };
        calls.push(PlannedCall::local(
            "check: old token refused (WRONGPASS), new token accepted, on every node",
        ));
        calls.push(PlannedCall::control_plane(
            format!(
                "DeleteParameter {staged}; DeleteParameter {}",
                previous_name(ctx.cache)
            ),
            true,
        ));
        calls
    }
    async fn observe(
        &self,
        ctx: &ActionContext,
        inputs: &Inputs,
    ) -> Result<Observation, ActionError> {
        let mechanism = Mechanism::of(&ctx.cache);
        let token = new_token(ctx).await?;
        let user = app_user(&ctx.cache);
        if mechanism == Mechanism::Token {
            let auth = ctx.plane.replication_group_auth(&ctx.cache.name).await?;
            if !auth.settled() {
                return Ok(Observation::Partial(format!(
                    "the group is {}",
                    auth.status
                )));
            }
        }
        if mechanism == Mechanism::Rbac {
            let u = ctx.plane.describe_user(&user_id(ctx, inputs)?).await?;
            if u.status != "active" {
                return Ok(Observation::Partial(format!("user is {}", u.status)));
            }
        }
        let staging_left = read_secret(ctx, &pending_name(&ctx.cache)).await?.is_some()
            || read_secret(ctx, &previous_name(&ctx.cache))
                .await?
                .is_some();
        Ok(
            if !staging_left && all_accept(ctx, user.as_deref(), &token).await? {
                Observation::Done(outputs(mechanism, &token, false))
            } else {
                Observation::Partial("the staging parameters are still there".into())
            },
        )
    }
    async fn run(&self, ctx: &ActionContext, inputs: &Inputs) -> Result<Values, ActionError> {
        let mechanism = Mechanism::of(&ctx.cache);
        let token = new_token(ctx).await?;
        let old = previous(ctx).await?;
        let user = app_user(&ctx.cache);
        // Never drop the old token unless the new one works everywhere.
        expect_login(ctx, user.as_deref(), Some(&token), "the new token", true).await?;
        let old_refused = |old: &Option<SecretString>| {
            let old = old.clone();
            let user = user.clone();
            async move {
                match &old {
                    Some(o) => Ok::<bool, ActionError>(
                        try_login(ctx, user.as_deref(), Some(o))
                            .await?
                            .iter()
                            .all(|(_, r)| *r == Login::Refused),
                    ),
                    None => Ok(false),
                }
            }
        };
        let mut sent = false;
        match mechanism {
            Mechanism::Token => {
                let id = ctx.cache.name.clone();
                let auth = ctx.plane.replication_group_auth(&id).await?;
                if !auth.settled() {
                    wait_group(ctx, inputs).await?;
                }
                if !old_refused(&old).await? {
                    sent = send_token(ctx, &id, &token, AuthTokenStrategy::Set).await?;
                    wait_group(ctx, inputs).await?;
                }
            }
            Mechanism::Rbac => {
                let uid = user_id(ctx, inputs)?;
                let u = ctx.plane.describe_user(&uid).await?;
                if u.status != "active" {
                    wait_user(ctx, inputs, &uid).await?;
                }
                if u.password_count != 1 || !old_refused(&old).await? {
                    ctx.output(format!(
                        "ModifyUser {uid} Passwords=[new {}]",
                        fingerprint(token.expose_secret())
                    ));
                    ctx.plane
                        .modify_user_passwords(&uid, std::slice::from_ref(&token))
                        .await?;
                    sent = true;
                    wait_user(ctx, inputs, &uid).await?;
                }
            }
            Mechanism::Acl => {
                if let Some(o) = &old
                    && !old_refused(&old).await?
                {
                    let name = user.clone().unwrap_or_else(|| "default".into());
                    acl_everywhere(ctx, &token, &name, &format!("<{}", o.expose_secret())).await?;
                    sent = true;
                }
                let name = user.clone().unwrap_or_else(|| "default".into());
                restart_check(ctx, &token, &name, inputs.bool("persist")?).await?;
            }
        }
        expect_login(ctx, user.as_deref(), Some(&token), "the new token", true).await?;
        match &old {
            Some(o) => {
                expect_login(ctx, user.as_deref(), Some(o), "the old token", false).await?;
            }
            None => ctx.output(
                "the old token is not staged any more (an earlier attempt cleaned up); not re-checked",
            ),
        }
        remove_staging(ctx).await?;
        Ok(outputs(mechanism, &token, sent))
    }
}

pub struct AuthVerifyBoth;

const VERIFY_OUTPUTS: &[OutputSpec] = &[OutputSpec {
    name: "nodes",
    kind: ValueKind::Int,
    doc: "nodes on which both tokens were accepted",
}];

#[async_trait]
impl Action for AuthVerifyBoth {
    fn name(&self) -> &'static str {
        "auth-rotate-verify-both"
    }
    fn summary(&self) -> &'static str {
        "Check that the old and the new token are each accepted on every node"
    }
    fn inputs(&self) -> &'static [InputSpec] {
        &[]
    }
    fn outputs(&self) -> &'static [OutputSpec] {
        VERIFY_OUTPUTS
    }
    fn dangerous(&self) -> bool {
        false
    }
    fn plan(&self, ctx: &PlanContext<'_>, _inputs: &Inputs) -> Vec<PlannedCall> {
        node_endpoints(ctx.cache)
            .into_iter()
            .map(|(_, ep)| {
                PlannedCall::valkey(ep.address(), "AUTH [old token]; AUTH [new token]", false)
            })
            .collect()
    }
    async fn run(&self, ctx: &ActionContext, _inputs: &Inputs) -> Result<Values, ActionError> {
        let token = staged(ctx).await?;
        let user = app_user(&ctx.cache);
        let nodes = expect_login(ctx, user.as_deref(), Some(&token), "the new token", true).await?;
        match previous(ctx).await? {
            Some(old) => {
                expect_login(ctx, user.as_deref(), Some(&old), "the old token", true).await?;
            }
            None => ctx.output("the group had no token before: unauthenticated access stays allowed until finalize"),
        }
        Ok(Values::new().with("nodes", Value::int(nodes as i64)))
    }
}

/// ModifyReplicationGroup with `token` and `strategy` (ROTATE or SET); `true` when this call
/// was taken. A group still applying another attempt's call answers
/// InvalidReplicationGroupState: that is waited for by the caller, not sent again.
async fn send_token(
    ctx: &ActionContext,
    id: &str,
    token: &SecretString,
    strategy: AuthTokenStrategy,
) -> Result<bool, ActionError> {
    ctx.output(format!(
        "ModifyReplicationGroup {id} AuthTokenUpdateStrategy={} (token {})",
        strategy.as_str(),
        fingerprint(token.expose_secret())
    ));
    match ctx.plane.modify_auth_token(id, Some(token), strategy).await {
        Ok(_) => Ok(true),
        Err(ControlPlaneError::InvalidState { detail, .. })
            if detail.contains("InvalidReplicationGroupState") =>
        {
            ctx.output(format!("{id} is busy ({detail}); waiting"));
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_source_prefers_the_acl_file() {
        let info = "# Server\r\nvalkey_version:8.0.1\r\nconfig_file:/data/valkey.conf\r\n";
        assert_eq!(
            startup_source(info, "/data/users.acl"),
            StartupSource::AclFile("/data/users.acl".into())
        );
        assert_eq!(
            startup_source(info, ""),
            StartupSource::ConfigFile("/data/valkey.conf".into())
        );
        assert_eq!(
            startup_source("# Server\r\nconfig_file:\r\n", ""),
            StartupSource::CommandLine
        );
    }
}
