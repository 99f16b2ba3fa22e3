//! `set-marker` and `get-marker`: write a marker key through the client endpoint, read it
//! back from the endpoint or from every node (replicas catch up within `within`). The pair
//! proves writes land and replicate; "survives restart" and failover runbooks use them.

use crate::domain::NodeRole;
use crate::runbook::action::{
    Action, ActionContext, ActionError, InputSpec, Inputs, Observation, OutputSpec, PlanContext,
    PlannedCall,
};
use crate::runbook::actions::nodes;
use crate::runbook::value::{Value, ValueKind, Values};
use async_trait::async_trait;

pub struct SetMarker;

fn endpoint(ctx: &ActionContext) -> Result<crate::domain::Endpoint, ActionError> {
    ctx.cache.endpoint.clone().ok_or_else(|| {
        ActionError::failed(format!(
            "reach cache `{}`: it has no endpoint yet (status {})",
            ctx.cache.name, ctx.cache.status
        ))
    })
}

const SET_INPUTS: &[InputSpec] = &[
    InputSpec::optional(
        "key",
        ValueKind::String,
        Some("\"cachedeck:marker:{{ run.id }}\""),
        "the marker key",
    ),
    InputSpec::optional(
        "value",
        ValueKind::String,
        Some("\"{{ run.id }}\""),
        "the value written (deterministic, so resume can observe it)",
    ),
    InputSpec::optional(
        "ttl",
        ValueKind::Duration,
        Some("\"1h\""),
        "expiry of the marker (markers never live forever)",
    ),
];
const SET_OUTPUTS: &[OutputSpec] = &[
    OutputSpec {
        name: "key",
        kind: ValueKind::String,
        doc: "the key written",
    },
    OutputSpec {
        name: "value",
        kind: ValueKind::String,
        doc: "the value written",
    },
];

fn outputs(key: &str, value: &str) -> Values {
    Values::new()
        .with("key", Value::str(key))
        .with("value", Value::str(value))
}

#[async_trait]
impl Action for SetMarker {
    fn name(&self) -> &'static str {
        "set-marker"
    }
    fn summary(&self) -> &'static str {
        "Write a marker key through the client endpoint"
    }
    fn inputs(&self) -> &'static [InputSpec] {
        SET_INPUTS
    }
    fn outputs(&self) -> &'static [OutputSpec] {
        SET_OUTPUTS
    }
    fn dangerous(&self) -> bool {
        true
    }
    fn plan(&self, ctx: &PlanContext<'_>, inputs: &Inputs) -> Vec<PlannedCall> {
        let ttl = inputs
            .duration("ttl")
            .map(|d| d.as_secs().max(1))
            .unwrap_or(3600);
        nodes::describe(ctx.cache, "endpoint")
            .into_iter()
            .map(|t| {
                PlannedCall::valkey(
                    t,
                    format!(
                        "SET {} {} EX {ttl}",
                        inputs.show("key"),
                        inputs.show("value")
                    ),
                    true,
                )
            })
            .collect()
    }
    async fn observe(
        &self,
        ctx: &ActionContext,
        inputs: &Inputs,
    ) -> Result<Observation, ActionError> {
        let (key, value) = (inputs.str("key")?, inputs.str("value")?);
        let now: Option<String> =
            nodes::query_routed(ctx, &endpoint(ctx)?, redis::cmd("GET").arg(key)).await?;
        Ok(if now.as_deref() == Some(value) {
            Observation::Done(outputs(key, value))
        } else {
            Observation::NotDone
        })
    }
    async fn run(&self, ctx: &ActionContext, inputs: &Inputs) -> Result<Values, ActionError> {
        let (key, value) = (inputs.str("key")?, inputs.str("value")?);
        let ttl = inputs.duration("ttl")?.as_secs().max(1);
        let _: () = nodes::query_routed(
            ctx,
            &endpoint(ctx)?,
            redis::cmd("SET").arg(key).arg(value).arg("EX").arg(ttl),
        )
        .await?;
        ctx.output(format!(
            "SET {} ({} s)",
            crate::escape::escape_capped(key, 120),
            ttl
        ));
        Ok(outputs(key, value))
    }
}

pub struct GetMarker;

const GET_INPUTS: &[InputSpec] = &[
    InputSpec::required("key", ValueKind::String, "the marker key"),
    InputSpec::optional(
        "expect",
        ValueKind::String,
        None,
        "fail unless every node returns this value",
    ),
    InputSpec::optional(
        "node",
        ValueKind::String,
        Some("\"endpoint\""),
        nodes::NODE_DOC,
    ),
    InputSpec::optional(
        "within",
        ValueKind::Duration,
        Some("\"5s\""),
        "how long replicas may take to catch up",
    ),
];
const GET_OUTPUTS: &[OutputSpec] = &[
    OutputSpec {
        name: "value",
        kind: ValueKind::Any,
        doc: "the value read (null when absent)",
    },
    OutputSpec {
        name: "nodes_checked",
        kind: ValueKind::Int,
        doc: "nodes that returned the value",
    },
];

#[async_trait]
impl Action for GetMarker {
    fn name(&self) -> &'static str {
        "get-marker"
    }
    fn summary(&self) -> &'static str {
        "Read a marker key back from the endpoint or every node"
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
    fn plan(&self, ctx: &PlanContext<'_>, inputs: &Inputs) -> Vec<PlannedCall> {
        nodes::plan_each(ctx.cache, inputs, &format!("GET {}", inputs.show("key")))
    }
    async fn run(&self, ctx: &ActionContext, inputs: &Inputs) -> Result<Values, ActionError> {
        let key = inputs.str("key")?;
        let expect = inputs.opt_str("expect")?;
        let within = inputs.duration("within")?;
        let targets = nodes::select(&ctx.cache, inputs.str("node")?)?;
        let mut last: Option<String> = None;
        let mut checked = 0i64;
        for (i, t) in targets.iter().enumerate() {
            let what = format!(
                "read the expected marker from {} ({})",
                t.label,
                t.endpoint.address()
            );
            let every = std::time::Duration::from_millis(100);
            let got = ctx
                .poll(&what, every, within, || async {
                    let read = read_one(ctx, t, key).await?;
                    Ok(match read {
                        Read::Value(v) if expect.is_some() && v.as_deref() != expect => None,
                        other => Some(other),
                    })
                })
                .await?;
            if let Read::Value(v) = got {
                checked += 1;
                ctx.output(format!(
                    "{}: {}",
                    t.label,
                    v.as_deref()
                        .map(|s| crate::escape::escape_capped(s, 120))
                        .unwrap_or_else(|| "(absent)".into())
                ));
                last = v;
            }
            ctx.progress(i as u64 + 1, Some(targets.len() as u64), t.label.clone());
        }
        if checked == 0 {
            return Err(ActionError::failed(format!(
                "read marker `{}`: no selected node holds its slot",
                crate::escape::escape_capped(key, 120)
            )));
        }
        Ok(Values::new()
            .with(
                "value",
                last.map(Value::str)
                    .unwrap_or(Value::Json(serde_json::Value::Null)),
            )
            .with("nodes_checked", Value::int(checked)))
    }
}

/// What one node said about a key.
enum Read {
    Value(Option<String>),
    /// A cluster node of another shard (it answered MOVED).
    NotOwner,
}

async fn read_one(
    ctx: &ActionContext,
    t: &nodes::NodeTarget,
    key: &str,
) -> Result<Read, ActionError> {
    let get = redis::cmd("GET").arg(key).clone();
    if t.label == "endpoint" {
        return Ok(Read::Value(
            nodes::query_routed(ctx, &t.endpoint, &get).await?,
        ));
    }
    let mut conn = ctx.connector().await?.connect(&t.endpoint).await?;
    if ctx.cache.cluster_mode && t.role == NodeRole::Replica {
        // Cluster replicas serve reads only after READONLY.
        let _: Result<(), _> = conn.query(&redis::cmd("READONLY")).await;
    }
    match conn.query::<Option<String>>(&get).await {
        Err(e) if e.moved_to().is_some() => Ok(Read::NotOwner),
        Err(e) => Err(e.into()),
        Ok(v) => Ok(Read::Value(v)),
    }
}
