//! `wait`: pause for a while, or poll an INFO field until it has a value, with a deadline.
//! A resumed wait only waits what is left of the original pause.

use crate::runbook::action::{
    Action, ActionContext, ActionError, InputSpec, Inputs, OutputSpec, PlanContext, PlannedCall,
};
use crate::runbook::actions::nodes;
use crate::runbook::value::{Value, ValueKind, Values};
use async_trait::async_trait;
use std::time::Duration;
use time::OffsetDateTime;

pub struct Wait;

const INPUTS: &[InputSpec] = &[
    InputSpec::optional(
        "for",
        ValueKind::Duration,
        None,
        "pause this long (counted from the step's first start, across resumes)",
    ),
    InputSpec::optional(
        "until_info",
        ValueKind::String,
        None,
        "poll until INFO field equals a value, e.g. `master_link_status=up`",
    ),
    InputSpec::optional(
        "node",
        ValueKind::String,
        Some("\"endpoint\""),
        nodes::NODE_DOC,
    ),
    InputSpec::optional(
        "every",
        ValueKind::Duration,
        Some("\"1s\""),
        "poll interval",
    ),
    InputSpec::optional(
        "deadline",
        ValueKind::Duration,
        Some("\"5m\""),
        "give up polling after this long",
    ),
];
const OUTPUTS: &[OutputSpec] = &[OutputSpec {
    name: "waited_ms",
    kind: ValueKind::Int,
    doc: "how long this attempt waited",
}];

fn split_condition(cond: &str) -> Result<(&str, &str), ActionError> {
    cond.split_once('=')
        .map(|(f, v)| (f.trim(), v.trim()))
        .filter(|(f, _)| !f.is_empty())
        .ok_or_else(|| ActionError::Input {
            name: "until_info".into(),
            problem: format!("`{cond}` is not FIELD=VALUE"),
        })
}

#[async_trait]
impl Action for Wait {
    fn name(&self) -> &'static str {
        "wait"
    }
    fn summary(&self) -> &'static str {
        "Wait for a time, or until an INFO field has a value"
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
    fn plan(&self, ctx: &PlanContext<'_>, inputs: &Inputs) -> Vec<PlannedCall> {
        let mut calls = Vec::new();
        if inputs.get("for").is_some() {
            calls.push(PlannedCall::local(format!("sleep {}", inputs.show("for"))));
        }
        if let Ok(Some(cond)) = inputs.opt_str("until_info") {
            let which = inputs.opt_str("node").ok().flatten().unwrap_or("endpoint");
            for target in nodes::describe(ctx.cache, which) {
                calls.push(PlannedCall::valkey(
                    target,
                    format!(
                        "INFO every {} until {cond} (deadline {})",
                        inputs.show("every"),
                        inputs.show("deadline")
                    ),
                    false,
                ));
            }
        }
        calls
    }
    async fn run(&self, ctx: &ActionContext, inputs: &Inputs) -> Result<Values, ActionError> {
        let started = std::time::Instant::now();
        if let Some(pause) = inputs.opt_duration("for")? {
            let elapsed = OffsetDateTime::now_utc() - ctx.first_started_at;
            let left = pause.saturating_sub(Duration::try_from(elapsed).unwrap_or_default());
            let mut slept = Duration::ZERO;
            let tick = Duration::from_secs(1).min(left.max(Duration::from_millis(1)));
            while slept < left {
                let d = tick.min(left - slept);
                ctx.sleep(d).await?;
                slept += d;
                ctx.progress(
                    slept.as_millis() as u64,
                    Some(left.as_millis() as u64),
                    "waiting",
                );
            }
        }
        if let Some(cond) = inputs.opt_str("until_info")? {
            let (field, want) = split_condition(cond)?;
            let which = inputs.str("node")?;
            let targets = nodes::select(&ctx.cache, which)?;
            let every = inputs.duration("every")?;
            let deadline = inputs.duration("deadline")?;
            for t in targets {
                let what = format!("see {field}={want} on {}", t.endpoint.address());
                ctx.poll(&what, every, deadline, || async {
                    let mut conn = match ctx.connector().await?.connect(&t.endpoint).await {
                        Ok(c) => c,
                        Err(_) => return Ok(None),
                    };
                    let (info, _) = match conn.info().await {
                        Ok(i) => i,
                        Err(_) => return Ok(None),
                    };
                    let now = info.get(field).unwrap_or("<absent>").to_string();
                    ctx.output(format!(
                        "{}: {field}={}",
                        t.label,
                        crate::escape::escape_capped(&now, 120)
                    ));
                    Ok((now == want).then_some(()))
                })
                .await?;
            }
        }
        Ok(Values::new().with(
            "waited_ms",
            Value::int(started.elapsed().as_millis() as i64),
        ))
    }
}
