//! `auth-rotate-publish`: the staged token written into every parameter the applications
//! read (a URL keeps everything but its password), as a new version. Idempotent: a
//! parameter that already holds the new value is left alone, so its version and time —
//! the publish time the drain check measures client ages against — stay those of the first
//! write.
//!
//! Labels: the new version carries `cachedeck-current` and `run-<run id>`, the version it
//! replaced `cachedeck-previous` (the labels move there from older versions), so a rollback
//! knows which version to put back. A label that cannot be attached is a warning.

use super::{
    CURRENT_LABEL, PREVIOUS_LABEL, Published, fingerprint, has_labels, label_version, password_in,
    published, put_secret, read_secret, run_label, staged, with_password,
};
use crate::runbook::action::{
    Action, ActionContext, ActionError, InputSpec, Inputs, Observation, OutputSpec, PlanContext,
    PlannedCall,
};
use crate::runbook::value::{Value, ValueKind, Values};
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;

pub struct AuthPublish;

const OUTPUTS: &[OutputSpec] = &[
    OutputSpec {
        name: "parameters",
        kind: ValueKind::List,
        doc: "the parameters holding the new token",
    },
    OutputSpec {
        name: "versions",
        kind: ValueKind::Any,
        doc: "their versions after publishing",
    },
    OutputSpec {
        name: "published_at",
        kind: ValueKind::String,
        doc: "when the new token was published (RFC 3339)",
    },
    OutputSpec {
        name: "fingerprint",
        kind: ValueKind::String,
        doc: "fingerprint of the published token",
    },
    OutputSpec {
        name: "labels",
        kind: ValueKind::List,
        doc: "the labels on the published versions",
    },
];

/// The labels of the version that holds the new token.
fn new_labels(ctx: &ActionContext) -> Vec<String> {
    vec![CURRENT_LABEL.to_string(), run_label(ctx)]
}

/// Labels the published version `version` and the one it replaced; returns the labels
/// now on the published version.
async fn label_published(ctx: &ActionContext, name: &str, version: i64) -> Vec<String> {
    let attached = label_version(ctx, name, version, &new_labels(ctx)).await;
    if version > 1 {
        label_version(ctx, name, version - 1, &[PREVIOUS_LABEL.to_string()]).await;
    }
    if !attached.is_empty() {
        ctx.output(format!(
            "{name}: version {version} labelled {}",
            attached.join(", ")
        ));
    }
    attached
}

/// Whether parameter `p` already carries `token`; with its version and time.
async fn state_of(
    ctx: &ActionContext,
    p: &Published,
    token: &SecretString,
) -> Result<(bool, i64, Option<OffsetDateTime>, Option<SecretString>), ActionError> {
    let Some(param) = ctx.plane.get_parameter(&p.name).await? else {
        return Err(ActionError::failed(format!(
            "publish the new token: parameter {} does not exist",
            p.name
        )));
    };
    let value = SecretString::from(param.value.expose().to_string());
    let holds = password_in(p, value.expose_secret())?
        .is_some_and(|current| current.expose_secret() == token.expose_secret());
    Ok((holds, param.version, param.last_modified, Some(value)))
}

fn values(
    params: &[Published],
    versions: serde_json::Map<String, serde_json::Value>,
    at: OffsetDateTime,
    token: &SecretString,
    labels: Vec<String>,
) -> Values {
    Values::new()
        .with("labels", Value::Json(serde_json::Value::from(labels)))
        .with(
            "parameters",
            Value::Json(serde_json::Value::from(
                params.iter().map(|p| p.name.clone()).collect::<Vec<_>>(),
            )),
        )
        .with("versions", Value::Json(serde_json::Value::Object(versions)))
        .with(
            "published_at",
            Value::str(
                at.format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
            ),
        )
        .with(
            "fingerprint",
            Value::str(fingerprint(token.expose_secret())),
        )
}

#[async_trait]
impl Action for AuthPublish {
    fn name(&self) -> &'static str {
        "auth-rotate-publish"
    }
    fn summary(&self) -> &'static str {
        "Write the staged token into the secret the applications read (a new parameter version)"
    }
    fn inputs(&self) -> &'static [InputSpec] {
        &[]
    }
    fn outputs(&self) -> &'static [OutputSpec] {
        OUTPUTS
    }
    fn dangerous(&self) -> bool {
        true
    }
    fn plan(&self, ctx: &PlanContext<'_>, _inputs: &Inputs) -> Vec<PlannedCall> {
        match published(ctx.cache) {
            Ok(params) => params
                .iter()
                .map(|p| {
                    PlannedCall::control_plane(
                        format!(
                            "PutParameter name={} type=SecureString overwrite=true value={}",
                            p.name,
                            if p.url {
                                "[same URL, new password]"
                            } else {
                                "[new token]"
                            }
                        ),
                        true,
                    )
                })
                .flat_map(|p| {
                    [
                        p,
                        PlannedCall::control_plane(
                            format!(
                                "LabelParameterVersion new version: {CURRENT_LABEL}, run-<run id>; replaced version: {PREVIOUS_LABEL}"
                            ),
                            true,
                        ),
                    ]
                })
                .collect(),
            Err(e) => vec![PlannedCall::local(format!("refused: {e}"))],
        }
    }
    async fn observe(
        &self,
        ctx: &ActionContext,
        _inputs: &Inputs,
    ) -> Result<Observation, ActionError> {
        let params = published(&ctx.cache)?;
        let token = match read_secret(ctx, &super::pending_name(&ctx.cache)).await? {
            Some(t) => t,
            None => return Ok(Observation::Unknown("the staged token is gone".into())),
        };
        let mut versions = serde_json::Map::new();
        let mut at = None::<OffsetDateTime>;
        let labels = new_labels(ctx);
        for p in &params {
            let (holds, version, modified, _) = state_of(ctx, p, &token).await?;
            if !holds {
                return Ok(Observation::NotDone);
            }
            if !has_labels(ctx, &p.name, version, &labels).await? {
                return Ok(Observation::Partial(format!(
                    "{} holds the new token (version {version}) but is not labelled yet",
                    p.name
                )));
            }
            versions.insert(p.name.clone(), version.into());
            at = at.max(modified);
        }
        Ok(Observation::Done(values(
            &params,
            versions,
            at.unwrap_or_else(OffsetDateTime::now_utc),
            &token,
            labels,
        )))
    }
    async fn run(&self, ctx: &ActionContext, _inputs: &Inputs) -> Result<Values, ActionError> {
        let params = published(&ctx.cache)?;
        if params.is_empty() {
            return Err(ActionError::failed(format!(
                "publish the new token: cache `{}` names no parameter holding its password",
                ctx.cache.name
            )));
        }
        let token = staged(ctx).await?;
        let mut versions = serde_json::Map::new();
        let mut at = None::<OffsetDateTime>;
        let mut labels: Vec<String> = Vec::new();
        for p in &params {
            let (holds, version, modified, current) = state_of(ctx, p, &token).await?;
            if holds {
                ctx.output(format!(
                    "{}: already holds the new token (version {version})",
                    p.name
                ));
                versions.insert(p.name.clone(), version.into());
                at = at.max(modified);
                for l in label_published(ctx, &p.name, version).await {
                    if !labels.contains(&l) {
                        labels.push(l);
                    }
                }
                continue;
            }
            let current = current.unwrap_or_else(|| SecretString::from(String::new()));
            let value = with_password(p, current.expose_secret(), token.expose_secret())?;
            let version = put_secret(
                ctx,
                &p.name,
                &value,
                true,
                &format!("auth token rotated by cachedeck run {}", ctx.run_id),
            )
            .await?;
            let written = ctx
                .plane
                .get_parameter(&p.name)
                .await?
                .and_then(|w| w.last_modified)
                .unwrap_or_else(OffsetDateTime::now_utc);
            ctx.output(format!("{}: version {version} holds the new token", p.name));
            versions.insert(p.name.clone(), version.into());
            at = at.max(Some(written));
            for l in label_published(ctx, &p.name, version).await {
                if !labels.contains(&l) {
                    labels.push(l);
                }
            }
        }
        Ok(values(
            &params,
            versions,
            at.unwrap_or_else(OffsetDateTime::now_utc),
            &token,
            labels,
        ))
    }
}
