//! `parameter-put` and `parameter-get`: the environment's parameter store (SSM on AWS, the
//! sandbox's store). SecureString values travel as secrets and never reach the journal.

use crate::controlplane::{ParameterType, ParameterValue, PutParameter};
use crate::runbook::action::{
    Action, ActionContext, ActionError, InputSpec, Inputs, Observation, OutputSpec, PlanContext,
    PlannedCall, WrittenInputProblem,
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
        "store as SecureString; the value must then come from a secret source",
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

/// Why a SecureString cannot take a plain value, and what to write instead.
const SECURE_NEEDS_SECRET: &str = "a SecureString (`secure = true`) takes its value only from a secret source: a plain value (literal or `params.*`) is written to the run's journal, and a `--param` is on the command line for every local user to see";
const SECURE_FIX: &str = "set `value = \"{{ steps.<id>.outputs.<secret output> }}\"` (e.g. the `value` of a `parameter-get` of a SecureString), or drop `secure` for a non-secret value";

fn put_value(inputs: &Inputs) -> Result<(ParameterValue, bool), ActionError> {
    let secure = inputs.bool("secure")?;
    match inputs.get("value") {
        Some(Value::Secret(s)) => Ok((ParameterValue::Secret(s.expose().to_string().into()), true)),
        Some(Value::Json(_)) if secure => Err(ActionError::Input {
            name: "value".into(),
            problem: format!("{SECURE_NEEDS_SECRET}; {SECURE_FIX}"),
        }),
        Some(Value::Json(serde_json::Value::String(s))) => {
            Ok((ParameterValue::Plain(s.clone()), false))
        }
        Some(Value::Json(other)) => Ok((ParameterValue::Plain(other.to_string()), false)),
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
    fn check_written_inputs(
        &self,
        inputs: &std::collections::BTreeMap<String, serde_json::Value>,
    ) -> Result<(), WrittenInputProblem> {
        if inputs.get("secure") != Some(&serde_json::Value::Bool(true)) {
            return Ok(());
        }
        // Only a step's output can be a secret; a literal or a runbook parameter never is.
        let from_step = inputs
            .get("value")
            .and_then(serde_json::Value::as_str)
            .map(str::trim)
            .and_then(|v| v.strip_prefix("{{"))
            .and_then(|v| v.strip_suffix("}}"))
            .is_some_and(|inner| !inner.contains("{{") && inner.trim().starts_with("steps."));
        if from_step {
            Ok(())
        } else {
            Err(WrittenInputProblem {
                input: "value",
                problem: SECURE_NEEDS_SECRET.into(),
                fix: SECURE_FIX.into(),
            })
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runbook::value::SecretValue;
    use std::collections::BTreeMap;

    fn inputs(value: Value, secure: bool) -> Inputs {
        let v = Values::new()
            .with("name", Value::str("/app/token"))
            .with("value", value)
            .with("overwrite", Value::bool(true));
        let v = v.with("secure", Value::bool(secure));
        Inputs(v)
    }

    #[test]
    fn a_secure_value_comes_only_from_a_secret() {
        let err = put_value(&inputs(Value::str("plain-s3cret"), true)).expect_err("refused");
        let text = err.to_string();
        assert!(text.contains("only from a secret source"), "{text}");
        assert!(!text.contains("plain-s3cret"), "{text}");
        let (v, secure) =
            put_value(&inputs(Value::Secret(SecretValue::new("tok")), true)).expect("secret");
        assert!(secure && matches!(v, ParameterValue::Secret(_)));
        let (v, secure) = put_value(&inputs(Value::str("blue"), false)).expect("plain");
        assert!(!secure && matches!(v, ParameterValue::Plain(_)));
    }

    #[test]
    fn written_secure_inputs_must_name_a_step_output() {
        let check = |value: &str, secure: serde_json::Value| {
            let mut m = BTreeMap::new();
            m.insert("value".to_string(), serde_json::Value::String(value.into()));
            m.insert("secure".to_string(), secure);
            ParameterPut.check_written_inputs(&m)
        };
        let t = serde_json::Value::Bool(true);
        assert!(check("{{ steps.read.outputs.value }}", t.clone()).is_ok());
        assert!(check("{{ params.token }}", t.clone()).is_err());
        assert!(check("hunter2", t.clone()).is_err());
        assert!(check("x{{ steps.a.outputs.b }}", t.clone()).is_err());
        assert!(check("{{ params.token }}", serde_json::Value::Bool(false)).is_ok());
    }
}
