//! `cutover` and `rollback`: point the SSM parameters a cache is published under at a
//! restored cache, and put them back.
//!
//! The record of a cutover lives in the parameter store itself, as labels, so a rollback
//! works from any host: the version that was current before is labelled
//! `cachedeck-before-<restored>`, the version the cutover wrote `cachedeck-cutover-<restored>`
//! and the version a rollback writes `cachedeck-rollback-<restored>`. The journal and the
//! step's outputs hold names, types and versions only: never a value (a URL parameter holds
//! the cache's password).
//!
//! Each write is journaled (a checkpoint) before it is made, and every write is idempotent
//! when made again: a parameter already holding the value it should is only labelled, so a
//! run killed anywhere and resumed writes each parameter once.

use crate::controlplane::{ParameterSelector, ParameterType, ParameterValue, PutParameter};
use crate::domain::{Cache, Endpoint};
use crate::escape::escape_capped;
use crate::runbook::action::{
    Action, ActionContext, ActionError, InputSpec, Inputs, Observation, OutputSpec, PlanContext,
    PlannedCall,
};
use crate::runbook::value::{Value, ValueKind, Values};
use async_trait::async_trait;
use serde_json::json;

const INPUTS: &[InputSpec] = &[
    InputSpec::required(
        "restored",
        ValueKind::String,
        "the restored cache the parameters point at after the cutover",
    ),
    InputSpec::optional(
        "endpoint_parameter",
        ValueKind::String,
        Some("\"\""),
        "parameter holding the host (or host:port, or a redis:// URL), e.g. /storefront-dev/redis/endpoint",
    ),
    InputSpec::optional(
        "port_parameter",
        ValueKind::String,
        Some("\"\""),
        "parameter holding the port, e.g. /storefront-dev/redis/port",
    ),
    InputSpec::optional(
        "url_parameter",
        ValueKind::String,
        Some("\"\""),
        "SecureString holding the whole URL (default: the URL parameter discovery found for the cache)",
    ),
];

const OUTPUTS: &[OutputSpec] = &[
    OutputSpec {
        name: "parameters",
        kind: ValueKind::Any,
        doc: "per parameter: name, type, the version before, the version written (no values)",
    },
    OutputSpec {
        name: "written",
        kind: ValueKind::Int,
        doc: "parameters written by this run (the others already held their value)",
    },
    OutputSpec {
        name: "endpoint",
        kind: ValueKind::String,
        doc: "host:port the parameters point at now",
    },
];

/// What a parameter holds, and so how its new value is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Endpoint,
    Port,
    Url,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Endpoint => "endpoint",
            Role::Port => "port",
            Role::Url => "url",
        }
    }
}

fn label(kind: &str, restored: &str) -> String {
    format!("cachedeck-{kind}-{restored}")
}

/// The parameters the inputs name; the URL parameter defaults to the one discovery found.
fn parameters(cache: &Cache, inputs: &Inputs) -> Result<Vec<(String, Role)>, ActionError> {
    let mut out = Vec::new();
    for (input, role) in [
        ("endpoint_parameter", Role::Endpoint),
        ("port_parameter", Role::Port),
        ("url_parameter", Role::Url),
    ] {
        let name = inputs.opt_str(input)?.unwrap_or("").trim();
        if !name.is_empty() {
            out.push((name.to_string(), role));
        }
    }
    if !out.iter().any(|(_, r)| *r == Role::Url)
        && let Some(url) = &cache.credentials.url_parameter
        && !out.iter().any(|(n, _)| n == url)
    {
        out.push((url.clone(), Role::Url));
    }
    if out.is_empty() {
        return Err(ActionError::failed(format!(
            "find the parameters cache `{}` is published under: discovery found no URL \
             parameter; name them with --param endpoint_parameter=… (and port_parameter=…) \
             or --param url_parameter=…",
            cache.name
        )));
    }
    Ok(out)
}

/// The new value of a parameter holding `old`, pointing at `to`. Errors never echo `old`
/// (a URL holds a password).
fn rewrite(role: Role, old: &str, to: &Endpoint) -> Result<String, String> {
    let host = if to.host.contains(':') {
        format!("[{}]", to.host)
    } else {
        to.host.clone()
    };
    match role {
        Role::Port => {
            old.trim()
                .parse::<u16>()
                .map_err(|_| "it does not hold a port number".to_string())?;
            Ok(to.port.to_string())
        }
        Role::Endpoint if !old.contains("://") => {
            let parsed = crate::aws::ssm_caches::parse_endpoint_value(old)?;
            Ok(match parsed.port {
                Some(_) => format!("{host}:{}", to.port),
                None => host,
            })
        }
        Role::Endpoint | Role::Url => {
            let mut url = url::Url::parse(old.trim())
                .map_err(|e| format!("it does not hold a valid URL ({e})"))?;
            if !matches!(url.scheme(), "redis" | "rediss" | "valkey" | "valkeys") {
                return Err("its URL is not redis:// or rediss://".into());
            }
            url.set_host(Some(&host))
                .map_err(|e| format!("the new host does not fit its URL ({e})"))?;
            url.set_port(Some(to.port))
                .map_err(|()| "the new port does not fit its URL".to_string())?;
            Ok(url.to_string())
        }
    }
}

/// The restored cache, available, with the endpoint clients use.
async fn restored(ctx: &ActionContext, inputs: &Inputs) -> Result<(Cache, Endpoint), ActionError> {
    let name = inputs.str("restored")?;
    if name == ctx.cache.name {
        return Err(ActionError::failed(
            "cut over: `restored` names the source cache itself; name the restored cache",
        ));
    }
    crate::controlplane::names::check_cache_id(name).map_err(|why| {
        ActionError::failed(format!(
            "cut over: restored cache `{}` {why}",
            escape_capped(name, 80)
        ))
    })?;
    let found = ctx.plane.discover().await?;
    let Some(cache) = found.caches.into_iter().find(|c| c.name == name) else {
        return Err(ActionError::failed(format!(
            "cut over: no cache `{name}` in environment `{}` (restore it first)",
            ctx.env.name
        )));
    };
    if !matches!(cache.status.as_str(), "available" | "active") {
        return Err(ActionError::failed(format!(
            "cut over: cache `{name}` is {}, not available",
            escape_capped(&cache.status, 40)
        )));
    }
    let endpoint = cache
        .endpoint
        .clone()
        .ok_or_else(|| ActionError::failed(format!("cut over: cache `{name}` has no endpoint")))?;
    Ok((cache, endpoint))
}

/// One parameter as the cutover finds it.
struct Found {
    name: String,
    role: Role,
    kind: ParameterType,
    version: i64,
    /// The value it should hold, pointing at the restored cache.
    target: ParameterValue,
    /// It holds `target` already.
    done: bool,
    /// The version labelled `cachedeck-before-<restored>`, if any.
    before: Option<i64>,
    /// That version holds the target value too: the label is left from an earlier cutover
    /// of a parameter this one does not change (same host), so it belongs on the current one.
    before_same: bool,
    /// The version labelled `cachedeck-cutover-<restored>`, if any.
    cut: Option<i64>,
}

async fn inspect(
    ctx: &ActionContext,
    params: &[(String, Role)],
    restored: &str,
    to: &Endpoint,
) -> Result<Vec<Found>, ActionError> {
    let mut out = Vec::new();
    for (name, role) in params {
        let Some(current) = ctx.plane.get_parameter(name).await? else {
            return Err(ActionError::failed(format!(
                "cut over: parameter {name} does not exist; a cutover only re-points parameters the application already reads"
            )));
        };
        let new = rewrite(*role, current.value.expose(), to).map_err(|why| {
            ActionError::failed(format!(
                "cut over: parameter {name} ({}): {why}",
                role.as_str()
            ))
        })?;
        let done = current.value.expose() == new;
        let target = match current.kind {
            ParameterType::SecureString => ParameterValue::Secret(new.into()),
            _ => ParameterValue::Plain(new),
        };
        let at = |kind: &str| ParameterSelector::Label(label(kind, restored));
        let before_param = ctx.plane.get_parameter_at(name, &at("before")).await?;
        let before_same = before_param
            .as_ref()
            .is_some_and(|p| p.value.expose() == target.expose());
        let before = before_param.map(|p| p.version);
        let cut = ctx
            .plane
            .get_parameter_at(name, &at("cutover"))
            .await?
            .map(|p| p.version);
        out.push(Found {
            name: name.clone(),
            role: *role,
            kind: current.kind,
            version: current.version,
            target,
            done,
            before,
            before_same,
            cut,
        });
    }
    Ok(out)
}

fn kind_name(kind: ParameterType) -> &'static str {
    match kind {
        ParameterType::String => "String",
        ParameterType::SecureString => "SecureString",
        ParameterType::StringList => "StringList",
    }
}

/// Journals the write about to be made (names and versions only), then labels.
async fn label_with_intent(
    ctx: &ActionContext,
    name: &str,
    version: i64,
    label: &str,
) -> Result<(), ActionError> {
    ctx.checkpoint(
        json!({ "intent": "label", "parameter": name, "version": version, "label": label }),
    )
    .await?;
    let outcome = ctx
        .plane
        .label_parameter_version(name, Some(version), &[label.to_string()])
        .await?;
    if !outcome.invalid_labels.is_empty() {
        return Err(ActionError::failed(format!(
            "label {name}: SSM refused the label {}",
            escape_capped(outcome.invalid_labels.join(", "), 200)
        )));
    }
    Ok(())
}

/// Journals the write about to be made, then puts `value` over version `from`.
async fn put_with_intent(
    ctx: &ActionContext,
    name: &str,
    from: i64,
    kind: ParameterType,
    value: ParameterValue,
    why: &str,
) -> Result<i64, ActionError> {
    ctx.checkpoint(json!({ "intent": "put", "parameter": name, "over_version": from, "why": why }))
        .await?;
    Ok(ctx
        .plane
        .put_parameter(PutParameter {
            name: name.to_string(),
            kind,
            value,
            overwrite: true,
            description: None,
        })
        .await?)
}

/// The source's credentials work on the restored cache (what the applications will send).
async fn check_credentials(
    ctx: &ActionContext,
    restored: &Cache,
    to: &Endpoint,
) -> Result<(), ActionError> {
    let mut probe = restored.clone();
    let ca_file = probe.credentials.ca_file.take();
    probe.credentials = ctx.cache.credentials.clone();
    if probe.credentials.ca_file.is_none() {
        probe.credentials.ca_file = ca_file;
    }
    let failed = |why: String| {
        ActionError::failed(format!(
            "cut over: cache `{}` does not accept the credentials of `{}` ({why}); the \
             applications would fail to log in. Restore with the source's token \
             (--param auth_token_parameter=<the source's token parameter>) or user group",
            restored.name, ctx.cache.name
        ))
    };
    let connector = crate::valkey::connect::Connector::for_cache(
        &probe,
        Some(ctx.plane.as_ref()),
        ctx.connect_options,
    )
    .await
    .map_err(|e| failed(e.to_string()))?;
    let mut conn = connector
        .connect(to)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let _: String = conn
        .query(&redis::cmd("PING"))
        .await
        .map_err(|e| failed(e.to_string()))?;
    Ok(())
}

fn rows(found: &[Found], written: &[(String, i64)]) -> serde_json::Value {
    serde_json::Value::Array(
        found
            .iter()
            .map(|f| {
                let version = written
                    .iter()
                    .find(|(n, _)| n == &f.name)
                    .map(|(_, v)| *v)
                    .or(f.cut)
                    .unwrap_or(f.version);
                json!({
                    "name": f.name,
                    "holds": f.role.as_str(),
                    "type": kind_name(f.kind),
                    "previous_version": f.before,
                    "version": version,
                })
            })
            .collect(),
    )
}

fn planned(ctx: &PlanContext<'_>, inputs: &Inputs, put_what: &str) -> Vec<PlannedCall> {
    let restored = inputs.show("restored");
    let names = parameters(ctx.cache, inputs)
        .map(|p| p.into_iter().map(|(n, _)| n).collect::<Vec<_>>())
        .unwrap_or_else(|_| vec!["<no parameter named>".into()]);
    let mut calls = vec![PlannedCall::control_plane(
        "discover (find the restored cache and its endpoint)",
        false,
    )];
    for name in names {
        calls.push(PlannedCall::control_plane(
            format!("ssm:GetParameter name={name} (and :cachedeck-before-{restored}, :cachedeck-cutover-{restored})"),
            false,
        ));
        calls.push(PlannedCall::control_plane(
            format!("ssm:PutParameter name={name} overwrite=true ({put_what}, same type)"),
            true,
        ));
        calls.push(PlannedCall::control_plane(
            format!("ssm:LabelParameterVersion name={name}"),
            true,
        ));
    }
    calls
}

// ---- cutover ------------------------------------------------------------------------------

pub struct Cutover;

#[async_trait]
impl Action for Cutover {
    fn name(&self) -> &'static str {
        "cutover"
    }
    fn summary(&self) -> &'static str {
        "point the cache's SSM parameters at a restored cache (previous versions labelled)"
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
        let mut calls = planned(ctx, inputs, "the restored cache's host/port");
        calls.insert(
            1,
            PlannedCall::valkey(
                format!("<endpoint of {}>", inputs.show("restored")),
                "PING (with the source's credentials)",
                false,
            ),
        );
        calls
    }
    async fn observe(
        &self,
        ctx: &ActionContext,
        inputs: &Inputs,
    ) -> Result<Observation, ActionError> {
        let params = parameters(&ctx.cache, inputs)?;
        let (_, to) = restored(ctx, inputs).await?;
        let restored_name = inputs.str("restored")?;
        let found = inspect(ctx, &params, restored_name, &to).await?;
        let finished = |f: &Found| {
            f.done
                && f.cut == Some(f.version)
                && f.before.is_some()
                && (!f.before_same || f.before == Some(f.version))
        };
        if found.iter().all(finished) {
            return Ok(Observation::Done(
                Values::new()
                    .with("parameters", Value::Json(rows(&found, &[])))
                    .with("written", Value::int(0))
                    .with("endpoint", Value::str(to.address())),
            ));
        }
        if found.iter().any(|f| f.done || f.before == Some(f.version)) {
            return Ok(Observation::Partial(format!(
                "{} of {} parameters already point at `{restored_name}`; the rest are written, none twice",
                found.iter().filter(|f| f.done).count(),
                found.len()
            )));
        }
        Ok(Observation::NotDone)
    }
    async fn run(&self, ctx: &ActionContext, inputs: &Inputs) -> Result<Values, ActionError> {
        let params = parameters(&ctx.cache, inputs)?;
        let restored_name = inputs.str("restored")?.to_string();
        let (restored_cache, to) = restored(ctx, inputs).await?;
        // Everything is checked before the first write: every parameter exists and can be
        // rewritten, and the restored cache accepts the applications' credentials.
        let found = inspect(ctx, &params, &restored_name, &to).await?;
        check_credentials(ctx, &restored_cache, &to).await?;
        let before = label("before", &restored_name);
        let cutover = label("cutover", &restored_name);
        let mut written = Vec::new();
        for f in &found {
            let version = if f.done {
                ctx.output(format!("{}: already points at {}", f.name, to.address()));
                // Unchanged by the cutover (same host): its current version is also the
                // one to go back to. On resume after the write, `before` is already set.
                if f.before != Some(f.version) && (f.before.is_none() || f.before_same) {
                    label_with_intent(ctx, &f.name, f.version, &before).await?;
                }
                f.version
            } else {
                label_with_intent(ctx, &f.name, f.version, &before).await?;
                let v =
                    put_with_intent(ctx, &f.name, f.version, f.kind, f.target.clone(), "cutover")
                        .await?;
                ctx.output(format!(
                    "{}: version {} → {v} ({}), now {}",
                    f.name,
                    f.version,
                    f.role.as_str(),
                    if f.kind == ParameterType::SecureString {
                        "the URL with the new host, same credentials".to_string()
                    } else {
                        to.address()
                    }
                ));
                written.push((f.name.clone(), v));
                v
            };
            if f.cut != Some(version) {
                label_with_intent(ctx, &f.name, version, &cutover).await?;
            }
        }
        let mut rows_now = rows(&found, &written);
        // A parameter labelled "before" by this run: its previous version is the one it had.
        if let serde_json::Value::Array(items) = &mut rows_now {
            for (item, f) in items.iter_mut().zip(&found) {
                if !f.done || f.before.is_none() || f.before_same {
                    item["previous_version"] = json!(f.version);
                }
            }
        }
        Ok(Values::new()
            .with("parameters", Value::Json(rows_now))
            .with("written", Value::int(written.len() as i64))
            .with("endpoint", Value::str(to.address())))
    }
}

// ---- rollback -----------------------------------------------------------------------------

pub struct Rollback;

const ROLLBACK_OUTPUTS: &[OutputSpec] = &[
    OutputSpec {
        name: "parameters",
        kind: ValueKind::Any,
        doc: "per parameter: name, type, the version put back, the version written (no values)",
    },
    OutputSpec {
        name: "written",
        kind: ValueKind::Int,
        doc: "parameters written by this run (the others already held their old value)",
    },
];

/// One parameter as the rollback finds it.
struct Back {
    name: String,
    /// The version labelled `cachedeck-before-<restored>`, whose value and type go back.
    before: crate::controlplane::Parameter,
    current: crate::controlplane::Parameter,
    cut: Option<i64>,
}

impl Back {
    fn done(&self) -> bool {
        self.current.kind == self.before.kind
            && self.current.value.expose() == self.before.value.expose()
    }
}

async fn inspect_back(
    ctx: &ActionContext,
    params: &[(String, Role)],
    restored: &str,
) -> Result<Vec<Back>, ActionError> {
    let mut out = Vec::new();
    for (name, _) in params {
        let before_label = label("before", restored);
        let Some(before) = ctx
            .plane
            .get_parameter_at(name, &ParameterSelector::Label(before_label.clone()))
            .await?
        else {
            return Err(ActionError::failed(format!(
                "roll back: no version of {name} carries the label {before_label}: no cutover to `{restored}` was recorded on it"
            )));
        };
        let Some(current) = ctx.plane.get_parameter(name).await? else {
            return Err(ActionError::failed(format!(
                "roll back: parameter {name} no longer exists"
            )));
        };
        let cut = ctx
            .plane
            .get_parameter_at(name, &ParameterSelector::Label(label("cutover", restored)))
            .await?
            .map(|p| p.version);
        let back = Back {
            name: name.clone(),
            before,
            current,
            cut,
        };
        if !back.done() && back.cut != Some(back.current.version) {
            return Err(ActionError::failed(match back.cut {
                Some(cut) => format!(
                    "roll back: {name} changed after the cutover (it is at version {}, the cutover wrote version {cut}); putting version {} back would undo that change: check it and put it back by hand",
                    back.current.version, back.before.version
                ),
                None => format!(
                    "roll back: {name} has no version labelled {}: the cutover did not finish on it; resume the cutover run first (`cachedeck runs resume`), then roll back",
                    label("cutover", restored)
                ),
            }));
        }
        out.push(back);
    }
    Ok(out)
}

#[async_trait]
impl Action for Rollback {
    fn name(&self) -> &'static str {
        "rollback"
    }
    fn summary(&self) -> &'static str {
        "put back the parameter versions a cutover replaced (same type, same value)"
    }
    fn inputs(&self) -> &'static [InputSpec] {
        INPUTS
    }
    fn outputs(&self) -> &'static [OutputSpec] {
        ROLLBACK_OUTPUTS
    }
    fn dangerous(&self) -> bool {
        true
    }
    fn plan(&self, ctx: &PlanContext<'_>, inputs: &Inputs) -> Vec<PlannedCall> {
        let mut calls = planned(
            ctx,
            inputs,
            &format!(
                "the value and type of the version labelled cachedeck-before-{}",
                inputs.show("restored")
            ),
        );
        calls.remove(0);
        calls
    }
    async fn observe(
        &self,
        ctx: &ActionContext,
        inputs: &Inputs,
    ) -> Result<Observation, ActionError> {
        let params = parameters(&ctx.cache, inputs)?;
        let restored_name = inputs.str("restored")?;
        let found = inspect_back(ctx, &params, restored_name).await?;
        let rolled = label("rollback", restored_name);
        let mut finished = true;
        for b in &found {
            let labelled = ctx
                .plane
                .get_parameter_at(&b.name, &ParameterSelector::Label(rolled.clone()))
                .await?
                .map(|p| p.version);
            finished &= b.done() && labelled == Some(b.current.version);
        }
        if finished {
            return Ok(Observation::Done(
                Values::new()
                    .with("parameters", Value::Json(back_rows(&found, &[])))
                    .with("written", Value::int(0)),
            ));
        }
        if found.iter().any(Back::done) {
            return Ok(Observation::Partial(format!(
                "{} of {} parameters are back already; the rest are written, none twice",
                found.iter().filter(|b| b.done()).count(),
                found.len()
            )));
        }
        Ok(Observation::NotDone)
    }
    async fn run(&self, ctx: &ActionContext, inputs: &Inputs) -> Result<Values, ActionError> {
        let params = parameters(&ctx.cache, inputs)?;
        let restored_name = inputs.str("restored")?.to_string();
        // Every parameter checked before the first write.
        let found = inspect_back(ctx, &params, &restored_name).await?;
        let rolled = label("rollback", &restored_name);
        let mut written = Vec::new();
        for b in &found {
            let version = if b.done() {
                ctx.output(format!(
                    "{}: already holds version {}'s value",
                    b.name, b.before.version
                ));
                b.current.version
            } else {
                let v = put_with_intent(
                    ctx,
                    &b.name,
                    b.current.version,
                    b.before.kind,
                    b.before.value.clone(),
                    "rollback",
                )
                .await?;
                ctx.output(format!(
                    "{}: version {}'s value put back as version {v}",
                    b.name, b.before.version
                ));
                written.push((b.name.clone(), v));
                v
            };
            if version != b.before.version {
                label_with_intent(ctx, &b.name, version, &rolled).await?;
            }
        }
        Ok(Values::new()
            .with("parameters", Value::Json(back_rows(&found, &written)))
            .with("written", Value::int(written.len() as i64)))
    }
}

fn back_rows(found: &[Back], written: &[(String, i64)]) -> serde_json::Value {
    serde_json::Value::Array(
        found
            .iter()
            .map(|b| {
                let version = written
                    .iter()
                    .find(|(n, _)| n == &b.name)
                    .map(|(_, v)| *v)
                    .unwrap_or(b.current.version);
                json!({
                    "name": b.name,
                    "type": kind_name(b.before.kind),
                    "restored_version": b.before.version,
                    "cutover_version": b.cut,
                    "version": version,
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to() -> Endpoint {
        Endpoint::new("new.cache.local", 6390, true)
    }

    #[test]
    fn values_keep_their_shape_with_the_new_host() {
        assert_eq!(
            rewrite(Role::Endpoint, "old.cache.local", &to()).as_deref(),
            Ok("new.cache.local")
        );
        assert_eq!(
            rewrite(Role::Endpoint, "old.cache.local:6379", &to()).as_deref(),
            Ok("new.cache.local:6390")
        );
        assert_eq!(rewrite(Role::Port, " 6379\n", &to()).as_deref(), Ok("6390"));
        let v6 = Endpoint::new("fd00::7", 7000, false);
        assert_eq!(
            rewrite(Role::Endpoint, "[fd00::5]:6379", &v6).as_deref(),
            Ok("[fd00::7]:7000")
        );
    }

    #[test]
    fn urls_keep_credentials_user_db_and_query() {
        let old = "rediss://app:s3cr3t%2Fx@old.cache.local:6379/2?ssl_cert_reqs=required";
        let new = rewrite(Role::Url, old, &to()).expect("rewritten");
        assert_eq!(
            new,
            "rediss://app:s3cr3t%2Fx@new.cache.local:6390/2?ssl_cert_reqs=required"
        );
        let token_only = rewrite(Role::Url, "rediss://:tok@old:6379/0", &to()).expect("url");
        assert_eq!(token_only, "rediss://:tok@new.cache.local:6390/0");
        // An endpoint parameter that holds a URL is rebuilt the same way.
        let in_endpoint = rewrite(Role::Endpoint, "redis://old:6379", &to()).expect("url");
        assert_eq!(in_endpoint, "redis://new.cache.local:6390");
    }

    #[test]
    fn errors_never_echo_the_value() {
        for (role, bad) in [
            (Role::Url, "http://:s3cr3t@h:1"),
            (Role::Url, "s3cr3t"),
            (Role::Port, "s3cr3t"),
            (Role::Endpoint, "a s3cr3t host"),
        ] {
            let err = rewrite(role, bad, &to()).expect_err(bad);
            assert!(!err.contains("s3cr3t"), "{err}");
        }
    }

    #[test]
    fn labels_from_cache_ids_are_valid() {
        for id in ["a", "storefront-copy", &"x".repeat(40)] {
            for kind in ["before", "cutover", "rollback"] {
                assert_eq!(crate::controlplane::label_problem(&label(kind, id)), None);
            }
        }
    }
}
