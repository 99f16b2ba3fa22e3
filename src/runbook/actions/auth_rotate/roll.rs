//! `auth-rotate-roll`: a new deployment (ECS UpdateService `forceNewDeployment`) of every
//! consumer service of the cache — the services whose task definitions read its secret — so
//! their new tasks read the newly published secret; each followed until its rollout is
//! COMPLETED. Which services: `services` when given, else the control plane's list.

use crate::controlplane::{ConsumerService, ControlPlaneError};
use crate::runbook::action::{
    Action, ActionContext, ActionError, InputSpec, Inputs, Observation, OutputSpec, PlanContext,
    PlannedCall,
};
use crate::runbook::value::{Value, ValueKind, Values};
use async_trait::async_trait;

pub struct AuthRoll;

const INPUTS: &[InputSpec] = &[
    InputSpec::optional(
        "services",
        ValueKind::List,
        Some("[]"),
        "ECS services to roll, `cluster/service` (empty: the cache's consumers as the control plane lists them)",
    ),
    InputSpec::optional(
        "timeout",
        ValueKind::Duration,
        Some("\"15m\""),
        "how long each rollout may take",
    ),
];
const OUTPUTS: &[OutputSpec] = &[OutputSpec {
    name: "rolled",
    kind: ValueKind::List,
    doc: "the services rolled, `cluster/service`",
}];

async fn services(
    ctx: &ActionContext,
    inputs: &Inputs,
) -> Result<Vec<ConsumerService>, ActionError> {
    let named = inputs.list("services")?;
    if !named.is_empty() {
        return named
            .iter()
            .map(|s| {
                let (cluster, service) = s.split_once('/').ok_or_else(|| ActionError::Input {
                    name: "services".into(),
                    problem: format!("`{s}` is not `cluster/service`"),
                })?;
                Ok(ConsumerService {
                    cluster: cluster.into(),
                    service: service.into(),
                    variables: Vec::new(),
                    container: None,
                    running: None,
                    found_by: "input".into(),
                })
            })
            .collect();
    }
    match ctx.plane.consumer_services(&ctx.cache).await {
        Ok(list) => Ok(list),
        Err(ControlPlaneError::Unsupported { .. }) => {
            ctx.output("this control plane cannot list the cache's consumers; pass --param services=cluster/service,… to roll them (the drain check still catches any left)");
            Ok(Vec::new())
        }
        Err(e) => Err(e.into()),
    }
}

fn rolled(list: &[ConsumerService]) -> Values {
    Values::new().with(
        "rolled",
        Value::Json(serde_json::Value::from(
            list.iter()
                .map(|s| format!("{}/{}", s.cluster, s.service))
                .collect::<Vec<_>>(),
        )),
    )
}

#[async_trait]
impl Action for AuthRoll {
    fn name(&self) -> &'static str {
        "auth-rotate-roll"
    }
    fn summary(&self) -> &'static str {
        "Roll the cache's consumer services (forceNewDeployment) so they read the new secret"
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
    fn plan(&self, _ctx: &PlanContext<'_>, inputs: &Inputs) -> Vec<PlannedCall> {
        vec![PlannedCall::control_plane(
            format!(
                "ecs:UpdateService forceNewDeployment=true for each consumer ({}); DescribeServices until the rollout is COMPLETED",
                match inputs.list("services") {
                    Ok(l) if !l.is_empty() => l.join(", "),
                    _ => "as listed by the control plane".into(),
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
        let Some(since) = ctx.intent_at else {
            return Ok(Observation::NotDone);
        };
        let list = services(ctx, inputs).await?;
        for s in &list {
            let state = ctx.plane.describe_service(&s.cluster, &s.service).await?;
            let fresh = state.primary().is_some_and(|d| {
                d.created.is_some_and(|c| c >= since)
                    && d.rollout_state.as_deref() == Some("COMPLETED")
            });
            if !fresh {
                return Ok(Observation::NotDone);
            }
        }
        Ok(Observation::Done(rolled(&list)))
    }
    async fn run(&self, ctx: &ActionContext, inputs: &Inputs) -> Result<Values, ActionError> {
        let list = services(ctx, inputs).await?;
        for s in &list {
            ctx.output(format!(
                "UpdateService {}/{} forceNewDeployment (reads {})",
                s.cluster,
                s.service,
                s.variables.join(", ")
            ));
            ctx.plane
                .force_new_deployment(&s.cluster, &s.service)
                .await?;
            let started = std::time::Instant::now();
            ctx.poll(
                &format!("the rollout of {} to complete", s.service),
                std::time::Duration::from_secs(1),
                inputs.duration("timeout")?,
                || async {
                    let state = ctx.plane.describe_service(&s.cluster, &s.service).await?;
                    let rollout = state
                        .primary()
                        .and_then(|d| d.rollout_state.clone())
                        .unwrap_or_default();
                    ctx.waiting(
                started,
                format!("{}: {rollout}", s.service),
                    );
                    match rollout.as_str() {
                        "COMPLETED" => Ok(Some(())),
                        "FAILED" => Err(ActionError::failed(format!(
                            "roll {}: the deployment FAILED; the old token still works, nothing was dropped",
                            s.service
                        ))),
                        _ => Ok(None),
                    }
                },
            )
            .await?;
        }
        if list.is_empty() {
            ctx.output("no consumer service to roll");
        }
        Ok(rolled(&list))
    }
}
