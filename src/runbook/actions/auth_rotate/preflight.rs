//! `auth-rotate-preflight`: everything that must hold before a token is generated — the
//! cache `available` with no pending change, TLS on, an engine that supports the change, the
//! current secret accepted on every node, the secret's parameters present and SecureString —
//! and the plan, said in words (what happens, where rollback stops being possible).

use super::stage::token_spec;
use super::{
    Mechanism, StartupSource, app_user, current_password, expect_login, pending_name, published,
};
use crate::controlplane::ParameterType;
use crate::runbook::action::{
    Action, ActionContext, ActionError, InputSpec, Inputs, OutputSpec, PlanContext, PlannedCall,
};
use crate::runbook::value::{Value, ValueKind, Values};
use async_trait::async_trait;

pub struct AuthPreflight;

const INPUTS: &[InputSpec] = &[
    InputSpec::optional(
        "length",
        ValueKind::Int,
        Some("64"),
        "characters in the new token",
    ),
    InputSpec::optional(
        "alphabet",
        ValueKind::String,
        Some("\"\""),
        "characters to draw from; empty: letters and digits",
    ),
    InputSpec::optional(
        "allow_enable",
        ValueKind::Bool,
        Some("false"),
        "allow turning a token on for a group that has none",
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
        "self-managed: the change will be written into each node's ACL or config file",
    ),
];
const OUTPUTS: &[OutputSpec] = &[
    OutputSpec {
        name: "mechanism",
        kind: ValueKind::String,
        doc: "token, rbac or acl",
    },
    OutputSpec {
        name: "parameters",
        kind: ValueKind::List,
        doc: "the parameters the applications read the password from",
    },
    OutputSpec {
        name: "nodes",
        kind: ValueKind::Int,
        doc: "nodes the current secret was checked on",
    },
    OutputSpec {
        name: "resuming",
        kind: ValueKind::Bool,
        doc: "a token staged by an earlier, unfinished rotation will be reused",
    },
    OutputSpec {
        name: "consumers",
        kind: ValueKind::List,
        doc: "the ECS services found reading the cache's secret (`cluster/service`)",
    },
];

/// Whether an engine version supports AUTH token rotation (Valkey 7.2+, Redis 5.0.6+).
pub fn engine_supports_rotation(engine: &str, version: &str) -> bool {
    let nums: Vec<u32> = version
        .split('.')
        .map(|p| {
            p.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .map(|p| p.parse().unwrap_or(0))
        .collect();
    let v = |i: usize| nums.get(i).copied().unwrap_or(0);
    if engine.eq_ignore_ascii_case("valkey") {
        (v(0), v(1)) >= (7, 2)
    } else {
        (v(0), v(1), v(2)) >= (5, 0, 6)
    }
}

/// Refuses a cache without in-transit encryption, and says why.
pub fn refuse_without_tls(cache: &crate::domain::Cache) -> Result<(), ActionError> {
    if cache.tls {
        return Ok(());
    }
    Err(ActionError::failed(format!(
        "rotate the password of `{}`: in-transit encryption (TLS) is off; the token would cross the network in clear, and ElastiCache changes AUTH tokens only on encrypted groups",
        cache.name
    )))
}

#[async_trait]
impl Action for AuthPreflight {
    fn name(&self) -> &'static str {
        "auth-rotate-preflight"
    }
    fn summary(&self) -> &'static str {
        "Check the cache, its secret and its nodes before a token rotation, and say the plan"
    }
    fn inputs(&self) -> &'static [InputSpec] {
        INPUTS
    }
    fn outputs(&self) -> &'static [OutputSpec] {
        OUTPUTS
    }
    fn dangerous(&self) -> bool {
        false
    }
    fn plan(&self, ctx: &PlanContext<'_>, _inputs: &Inputs) -> Vec<PlannedCall> {
        let mut calls = Vec::new();
        if Mechanism::of(ctx.cache) == Mechanism::Token {
            calls.push(PlannedCall::control_plane(
                format!("DescribeReplicationGroups {}", ctx.cache.name),
                false,
            ));
        }
        calls.push(PlannedCall::local(
            "AUTH with the current secret on every node; GetParameter of each secret parameter; list the consumer services reading the secret",
        ));
        calls.push(PlannedCall::local(
            "rollback is possible until finalize (both tokens work); after finalize it is not",
        ));
        calls
    }
    async fn run(&self, ctx: &ActionContext, inputs: &Inputs) -> Result<Values, ActionError> {
        let cache = &ctx.cache;
        let mechanism = Mechanism::of(cache);
        token_spec(mechanism, inputs)?;
        ctx.output(format!(
            "{}: {} ({})",
            cache.name,
            match mechanism {
                Mechanism::Token =>
                    "AUTH token: ModifyReplicationGroup ROTATE, publish, roll, then SET",
                Mechanism::Rbac => "RBAC user: ModifyUser [old, new], publish, roll, then [new]",
                Mechanism::Acl => "ACL user: ACL SETUSER >new, publish, roll, then <old",
            },
            mechanism.as_str()
        ));
        refuse_without_tls(cache)?;
        match mechanism {
            Mechanism::Token => {
                if !engine_supports_rotation(&cache.engine, &cache.engine_version) {
                    return Err(ActionError::failed(format!(
                        "rotate the token of `{}`: {} {} cannot change its AUTH token in place (Valkey 7.2+ or Redis 5.0.6+ is needed); upgrade first",
                        cache.name, cache.engine, cache.engine_version
                    )));
                }
                let auth = ctx.plane.replication_group_auth(&cache.name).await?;
                if !auth.settled() {
                    return Err(ActionError::failed(format!(
                        "rotate the token of `{}`: the group is {}{}; wait until it is available with no pending change",
                        cache.name,
                        auth.status,
                        auth.pending_auth_token_status
                            .as_deref()
                            .map(|s| format!(" (AuthTokenStatus {s})"))
                            .unwrap_or_default()
                    )));
                }
                if !auth.transit_encryption {
                    return Err(ActionError::failed(format!(
                        "rotate the token of `{}`: TransitEncryptionEnabled is false",
                        cache.name
                    )));
                }
                if !auth.auth_token_enabled {
                    let allowed = inputs.bool("allow_enable")?;
                    ctx.output(
                        "the group has no AUTH token: ROTATE leaves unauthenticated access allowed until SET",
                    );
                    if !allowed {
                        return Err(ActionError::failed(format!(
                            "rotate the token of `{}`: it has none yet; pass --param allow_enable=true to turn one on (unauthenticated clients keep working until finalize)",
                            cache.name
                        )));
                    }
                }
                if !auth.user_groups.is_empty() {
                    ctx.output(format!(
                        "note: RBAC user groups are attached ({}); their users' passwords are not changed by this run",
                        auth.user_groups.join(", ")
                    ));
                }
            }
            Mechanism::Rbac => {
                let uid = match inputs.opt_str("user_id")? {
                    Some(u) if !u.is_empty() => u.to_string(),
                    _ => app_user(cache).ok_or_else(|| {
                        ActionError::failed(format!(
                            "find the RBAC user of `{}`: no user name is configured; pass --param user_id=",
                            cache.name
                        ))
                    })?,
                };
                let u = ctx.plane.describe_user(&uid).await?;
                if u.status != "active" {
                    return Err(ActionError::failed(format!(
                        "rotate the password of user {uid}: it is {}, not active",
                        u.status
                    )));
                }
                ctx.output(format!(
                    "user {uid}: {} authentication, {} password(s)",
                    u.authentication_type, u.password_count
                ));
            }
            Mechanism::Acl => {}
        }
        let params = published(cache)?;
        if params.is_empty() {
            return Err(ActionError::failed(format!(
                "rotate the password of `{}`: no parameter holding it is known (config: `password = {{ ssm = \"/path\" }}` or `url_parameter`)",
                cache.name
            )));
        }
        for p in &params {
            let found = ctx.plane.get_parameter(&p.name).await?.ok_or_else(|| {
                ActionError::failed(format!(
                    "read the secret parameter {}: it does not exist",
                    p.name
                ))
            })?;
            if found.kind != ParameterType::SecureString {
                return Err(ActionError::failed(format!(
                    "publish to {}: it is a plain {:?} parameter; a password belongs in a SecureString",
                    p.name, found.kind
                )));
            }
            ctx.output(format!(
                "{}: SecureString version {} ({})",
                p.name,
                found.version,
                if p.url { "URL" } else { "token" }
            ));
        }
        let resuming = ctx
            .plane
            .get_parameter(&pending_name(cache))
            .await?
            .is_some();
        if resuming {
            ctx.output(format!(
                "{} exists: an earlier rotation did not finish; its token is reused, never replaced",
                pending_name(cache)
            ));
        }
        let current = current_password(ctx).await?;
        let nodes = expect_login(
            ctx,
            app_user(cache).as_deref(),
            current.as_ref(),
            "the current secret",
            true,
        )
        .await?;
        let consumers = match ctx.plane.consumer_services(cache).await {
            Ok(list) => {
                for c in &list {
                    ctx.output(format!(
                        "consumer {}/{} ({})",
                        c.cluster,
                        c.service,
                        if c.variables.is_empty() {
                            "named".to_string()
                        } else {
                            c.variables.join(", ")
                        }
                    ));
                }
                if list.is_empty() {
                    ctx.output("no consumer service found reading the secret; the drain check still catches any client left");
                }
                list.iter()
                    .map(|c| format!("{}/{}", c.cluster, c.service))
                    .collect::<Vec<_>>()
            }
            Err(crate::controlplane::ControlPlaneError::Unsupported { .. }) => {
                ctx.output("this control plane cannot list the cache's consumers; name them with --param services=cluster/service,…");
                Vec::new()
            }
            Err(e) => return Err(e.into()),
        };
        if mechanism == Mechanism::Acl {
            startup_report(ctx, current.as_ref(), inputs.bool("persist")?).await?;
        }
        ctx.output("rollback: safe until finalize (both tokens work: re-publish the previous version and roll the consumers); after finalize the old token is gone");
        Ok(Values::new()
            .with("mechanism", Value::str(mechanism.as_str()))
            .with(
                "parameters",
                Value::Json(serde_json::Value::from(
                    params.iter().map(|p| p.name.clone()).collect::<Vec<_>>(),
                )),
            )
            .with("nodes", Value::int(nodes as i64))
            .with("resuming", Value::bool(resuming))
            .with("consumers", Value::Json(serde_json::Value::from(consumers))))
    }
}

/// Self-managed: where each node reads its users at start-up, said before anything
/// changes (the change is made in memory; see `persist`).
async fn startup_report(
    ctx: &ActionContext,
    current: Option<&secrecy::SecretString>,
    persist: bool,
) -> Result<(), ActionError> {
    let user = app_user(&ctx.cache).unwrap_or_else(|| "default".into());
    let connector = super::connector_for(ctx, Some(&user), current)?;
    for (id, ep) in super::node_endpoints(&ctx.cache) {
        let mut conn = connector.connect(&ep).await?;
        let said = match super::read_startup_source(&mut conn).await {
            Ok(StartupSource::AclFile(f)) => format!(
                "users from the ACL file {}; {}",
                crate::escape::escape(&f),
                if persist {
                    "ACL SAVE will write the change there"
                } else {
                    "a restart would bring the old password back unless it is saved (--param persist=true runs ACL SAVE)"
                }
            ),
            Ok(StartupSource::ConfigFile(f)) => format!(
                "users from the config file {}; {}",
                crate::escape::escape(&f),
                if persist {
                    "CONFIG REWRITE will write the change there"
                } else {
                    "a restart would bring the old password back unless it is rewritten (--param persist=true runs CONFIG REWRITE)"
                }
            ),
            Ok(StartupSource::CommandLine) => "no config or ACL file: a restart takes the user from the command line (task definition), which must read the published secret or the old password comes back".to_string(),
            Err(e) => format!("cannot tell where it reads its users at start-up ({e})"),
        };
        ctx.output(format!("node {id}: {said}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_without_tls_is_refused_with_why() {
        let mut cache: crate::domain::Cache = serde_json::from_value(serde_json::json!({
            "name": "paperwurks", "env": "dev", "kind": "replication-group", "engine": "redis",
            "engine_version": "7.1", "status": "available", "cluster_mode": true,
            "auth": "token", "tls": false, "endpoint": null, "endpoints": {}, "shards": []
        }))
        .expect("cache json");
        let refused = refuse_without_tls(&cache).expect_err("refused").to_string();
        assert!(refused.contains("in-transit encryption"), "{refused}");
        assert!(refused.contains("`paperwurks`"), "{refused}");
        cache.tls = true;
        assert!(refuse_without_tls(&cache).is_ok());
    }

    #[test]
    fn engine_versions_follow_aws() {
        assert!(engine_supports_rotation("valkey", "8.0.1"));
        assert!(engine_supports_rotation("valkey", "7.2.4"));
        assert!(engine_supports_rotation("redis", "7.1.0"));
        assert!(engine_supports_rotation("redis", "5.0.6"));
        assert!(!engine_supports_rotation("redis", "5.0.5"));
        assert!(!engine_supports_rotation("redis", "4.0.10"));
    }
}
