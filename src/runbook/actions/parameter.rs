//! `parameter-put` and `parameter-get`: the environment's parameter store (SSM on AWS, the
//! sandbox's store). SecureString values travel as secrets and never reach the journal.

use crate::controlplane::{ParameterType, ParameterValue, PutParameter};
use crate::runbook::action::{
    Action, ActionContext, ActionError, InputSpec, Inputs, Observation, OutputSpec, PlanContext,
    PlannedCall,
};
use crate::runbook::value::{SecretValue, Value, ValueKind, Values};
use async_trait::async_trait;

pub struct ParameterPut;

const PUT_INPUTS: &[InputSpec] = &[
    InputSpec::required(
        "name",
        ValueKind::String,
        "parameter name, e.g. /app/dev/redis/url",
    ),
    InputSpec::required(
        "value",
        ValueKind::Any,
        "text, or a secret output (stored as SecureString)",
    ),
    InputSpec::optional(
        "secure",
        ValueKind::Bool,
        Some("false"),
        "store as SecureString even for plain text",
    ),
    InputSpec::optional(
        "overwrite",
        ValueKind::Bool,
        Some("true"),
        "replace an existing parameter",
    ),
];
const PUT_OUTPUTS: &[OutputSpec] = &[
    OutputSpec {
        name: "name",
        kind: ValueKind::String,
        doc: "the parameter written",
    },
    OutputSpec {
        name: "version",
        kind: ValueKind::Int,
        doc: "its new version",
    },
];

fn put_value(inputs: &Inputs) -> Result<(ParameterValue, bool), ActionError> {
    let secure = inputs.bool("secure")?;
    match inputs.get("value") {
        Some(Value::Secret(s)) => Ok((ParameterValue::Secret(s.expose().to_string().into()), true)),
        Some(Value::Json(serde_json::Value::String(s))) if secure => {
            Ok((ParameterValue::Secret(s.clone().into()), true))
        }
        Some(Value::Json(serde_json::Value::String(s))) => {
            Ok((ParameterValue::Plain(s.clone()), false))
        }
        Some(Value::Json(other)) => Ok((ParameterValue::Plain(other.to_string()), secure)),
        None => Err(ActionError::Input {
            name: "value".into(),
            problem: "is missing".into(),
        }),
    }
}

#[async_trait]
impl Action for ParameterPut {
    fn name(&self) -> &'static str {
        "parameter-put"
    }
    fn summary(&self) -> &'static str {
        "Write a parameter to the environment's parameter store"
    }
    fn inputs(&self) -> &'static [InputSpec] {
        PUT_INPUTS
    }
    fn outputs(&self) -> &'static [OutputSpec] {
        PUT_OUTPUTS
    }
    fn dangerous(&self) -> bool {
        true
    }
    fn plan(&self, _ctx: &PlanContext<'_>, inputs: &Inputs) -> Vec<PlannedCall> {
        let secure = matches!(inputs.get("value"), Some(Value::Secret(_)))
            || inputs.bool("secure").unwrap_or(false);
        vec![PlannedCall::control_plane(
            format!(
                "PutParameter name={} type={} overwrite={} value={}",
                inputs.show("name"),
                if secure { "SecureString" } else { "String" },
                inputs.show("overwrite"),
                if secure {
                    "[secret]".to_string()
                } else {
                    inputs.show("value")
                }
            ),
            true,
        )]
    }
    async fn observe(
        &self,
        ctx: &ActionContext,
        inputs: &Inputs,
    ) -> Result<Observation, ActionError> {
        let name = inputs.str("name")?;
        let (want, _) = put_value(inputs)?;
        Ok(match ctx.plane.get_parameter(name).await? {
            Some(p) if p.value.expose() == want.expose() => Observation::Done(
                Values::new()
                    .with("name", Value::str(name))
                    .with("version", Value::int(p.version)),
            ),
            _ => Observation::NotDone,
        })
    }
    async fn run(&self, ctx: &ActionContext, inputs: &Inputs) -> Result<Values, ActionError> {
        let name = inputs.str("name")?;
        let (value, secure) = put_value(inputs)?;
        let version = ctx
            .plane
            .put_parameter(PutParameter {
                name: name.to_string(),
                kind: if secure {
                    ParameterType::SecureString
                } else {
                    ParameterType::String
                },
                value,
                overwrite: inputs.bool("overwrite")?,
                description: Some(format!("written by cachedeck run {}", ctx.run_id)),
            })
            .await?;
        ctx.output(format!("{name}: version {version}"));
        Ok(Values::new()
            .with("name", Value::str(name))
            .with("version", Value::int(version)))
    }
}

pub struct ParameterGet;

const GET_INPUTS: &[InputSpec] = &[
    InputSpec::required("name", ValueKind::String, "parameter name"),
    InputSpec::optional(
        "required",
        ValueKind::Bool,
        Some("true"),
        "fail when it does not exist",
    ),
];
const GET_OUTPUTS: &[OutputSpec] = &[
    OutputSpec {
        name: "value",
        kind: ValueKind::Any,
        doc: "the value (a secret for SecureString; null when absent)",
    },
    OutputSpec {
        name: "version",
        kind: ValueKind::Int,
        doc: "its version (0 when absent)",
    },
    OutputSpec {
        name: "exists",
        kind: ValueKind::Bool,
        doc: "whether it exists",
    },
];

#[async_trait]
impl Action for ParameterGet {
    fn name(&self) -> &'static str {
        "parameter-get"
    }
    fn summary(&self) -> &'static str {
        "Read a parameter from the environment's parameter store"
    }
    fn inputs(&self) -> &'static [InputSpec] {
        GET_INPUTS
    }
    fn outputs(&self) -> &'static [OutputSpec] {
        GET_OUTPUTS
    }
    fn dangerous(&self) -> bool {
        false
    }
    fn plan(&self, _ctx: &PlanContext<'_>, inputs: &Inputs) -> Vec<PlannedCall> {
        vec![PlannedCall::control_plane(
            format!(
                "GetParameter name={} WithDecryption=true",
                inputs.show("name")
            ),
            false,
        )]
    }
    async fn run(&self, ctx: &ActionContext, inputs: &Inputs) -> Result<Values, ActionError> {
        let name = inputs.str("name")?;
        match ctx.plane.get_parameter(name).await? {
            Some(p) => {
                let value = match (&p.kind, &p.value) {
                    (ParameterType::SecureString, v) | (_, v @ ParameterValue::Secret(_)) => {
                        Value::Secret(SecretValue::new(v.expose()))
                    }
                    (_, v) => Value::str(v.expose()),
                };
                ctx.output(format!("{name}: version {}", p.version));
                Ok(Values::new()
                    .with("value", value)
                    .with("version", Value::int(p.version))
                    .with("exists", Value::bool(true)))
            }
            None if inputs.bool("required")? => Err(ActionError::failed(format!(
                "read parameter {name}: it does not exist"
            ))),
            None => Ok(Values::new()
                .with("value", Value::Json(serde_json::Value::Null))
                .with("version", Value::int(0))
                .with("exists", Value::bool(false))),
        }
    }
}
