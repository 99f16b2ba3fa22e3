//! `auth-rotate-drain-check`: waits until no client connection older than the publish time
//! is left on any node (CLIENT LIST ages), so no application still holds a connection it
//! opened with the old token when the old token is dropped. Replication links, this check's
//! own connection and connections named `cachedeck…` are not applications. On timeout the
//! stragglers are listed (node, address, name, age) and the run stops before SET.

use super::{app_user, connector_for, node_endpoints, staged};
use crate::escape::escape_capped;
use crate::runbook::action::{
    Action, ActionContext, ActionError, InputSpec, Inputs, OutputSpec, PlanContext, PlannedCall,
};
use crate::runbook::value::{Value, ValueKind, Values};
use async_trait::async_trait;
use time::OffsetDateTime;

pub struct AuthDrainCheck;

const INPUTS: &[InputSpec] = &[
    InputSpec::required(
        "published_at",
        ValueKind::String,
        "when the new token was published (RFC 3339)",
    ),
    InputSpec::optional(
        "timeout",
        ValueKind::Duration,
        Some("\"10m\""),
        "how long to wait for old connections to go",
    ),
    InputSpec::optional(
        "poll",
        ValueKind::Duration,
        Some("\"2s\""),
        "time between CLIENT LIST rounds",
    ),
];
const OUTPUTS: &[OutputSpec] = &[
    OutputSpec {
        name: "clients",
        kind: ValueKind::Int,
        doc: "application connections on the nodes at the end (all newer than the publish)",
    },
    OutputSpec {
        name: "waited_secs",
        kind: ValueKind::Int,
        doc: "seconds spent waiting for old connections to go",
    },
];

/// One connection in a CLIENT LIST reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub id: u64,
    pub addr: String,
    pub name: String,
    pub age: u64,
    pub flags: String,
}

/// Parses a CLIENT LIST reply (one `k=v k=v …` line per connection).
pub fn parse_client_list(text: &str) -> Vec<Client> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut c = Client {
                id: 0,
                addr: String::new(),
                name: String::new(),
                age: 0,
                flags: String::new(),
            };
            for field in line.split(' ') {
                let Some((k, v)) = field.split_once('=') else {
                    continue;
                };
                match k {
                    "id" => c.id = v.parse().unwrap_or(0),
                    "addr" => c.addr = v.to_string(),
                    "name" => c.name = v.to_string(),
                    "age" => c.age = v.parse().unwrap_or(0),
                    "flags" => c.flags = v.to_string(),
                    _ => {}
                }
            }
            c
        })
        .collect()
}

/// Whether a connection belongs to an application (not replication, not cachedeck).
pub fn is_application(c: &Client, own_id: u64) -> bool {
    c.id != own_id
        && !c.flags.contains('S')
        && !c.flags.contains('M')
        && !c.name.starts_with("cachedeck")
}

fn parse_time(text: &str) -> Result<OffsetDateTime, ActionError> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).map_err(|_| {
        ActionError::Input {
            name: "published_at".into(),
            problem: format!("`{}` is not an RFC 3339 time", escape_capped(text, 64)),
        }
    })
}

#[async_trait]
impl Action for AuthDrainCheck {
    fn name(&self) -> &'static str {
        "auth-rotate-drain-check"
    }
    fn summary(&self) -> &'static str {
        "Wait until no client connection older than the publish time is left on any node"
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
        node_endpoints(ctx.cache)
            .into_iter()
            .map(|(_, ep)| PlannedCall::valkey(ep.address(), "CLIENT ID; CLIENT LIST", false))
            .collect()
    }
    async fn run(&self, ctx: &ActionContext, inputs: &Inputs) -> Result<Values, ActionError> {
        let published_at = parse_time(inputs.str("published_at")?)?;
        let token = match staged(ctx).await {
            Ok(t) => Some(t),
            Err(_) => super::current_password(ctx).await?,
        };
        let user = app_user(&ctx.cache);
        let connector = connector_for(ctx, user.as_deref(), token.as_ref())?;
        let targets = node_endpoints(&ctx.cache);
        let started = std::time::Instant::now();
        let last = std::sync::Mutex::new(Vec::<String>::new());
        let apps = std::sync::atomic::AtomicU64::new(0);
        let outcome = ctx
            .poll(
                "old client connections to go",
                inputs.duration("poll")?,
                inputs.duration("timeout")?,
                || {
                    let connector = connector.clone();
                    let targets = targets.clone();
                    let (last, apps) = (&last, &apps);
                    async move {
                        let limit = (OffsetDateTime::now_utc() - published_at).whole_seconds();
                        let mut stragglers = Vec::new();
                        let mut count = 0u64;
                        for (id, ep) in &targets {
                            let mut conn = connector.connect(ep).await?;
                            let own: u64 = conn.query(redis::cmd("CLIENT").arg("ID")).await?;
                            let text: String = conn.query(redis::cmd("CLIENT").arg("LIST")).await?;
                            for c in parse_client_list(&text)
                                .iter()
                                .filter(|c| is_application(c, own))
                            {
                                count += 1;
                                // One second of slack: ages are whole seconds.
                                if (c.age as i64) > limit + 1 {
                                    stragglers.push(format!(
                                        "{id} {} name={} age={}s",
                                        escape_capped(&c.addr, 64),
                                        escape_capped(&c.name, 64),
                                        c.age
                                    ));
                                }
                            }
                        }
                        ctx.waiting(
                            started,
                            format!(
                                "{} connection(s) older than the publish ({}s ago)",
                                stragglers.len(),
                                limit
                            ),
                        );
                        apps.store(count, std::sync::atomic::Ordering::Relaxed);
                        let done = stragglers.is_empty();
                        if let Ok(mut slot) = last.lock() {
                            *slot = stragglers;
                        }
                        Ok(done.then_some(()))
                    }
                },
            )
            .await;
        let apps = apps.load(std::sync::atomic::Ordering::Relaxed);
        let last = last.into_inner().unwrap_or_default();
        match outcome {
            Ok(()) => {
                ctx.output(format!(
                    "no connection older than the publish is left ({apps} application connection(s), all newer)"
                ));
                Ok(Values::new().with("clients", Value::int(apps as i64)).with(
                    "waited_secs",
                    Value::int(started.elapsed().as_secs() as i64),
                ))
            }
            Err(ActionError::Timeout { after, .. }) => Err(ActionError::failed(format!(
                "wait for old connections to go: after {after:?}, {} connection(s) opened before the new token was published remain: {}. Roll or restart those clients, then `cachedeck runs resume`; the old token still works until then",
                last.len(),
                last.join("; ")
            ))),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_list_is_parsed_and_replication_is_not_an_application() {
        let text = "id=3 addr=127.0.0.1:5000 laddr=127.0.0.1:6379 fd=8 name=sidekiq age=120 idle=0 flags=N db=0\n\
                    id=4 addr=127.0.0.1:5001 laddr=127.0.0.1:6379 fd=9 name= age=300 idle=1 flags=S db=0\n\
                    id=5 addr=127.0.0.1:5002 laddr=127.0.0.1:6379 fd=10 name=cachedeck-sandbox-endpoint age=900 idle=0 flags=N db=0\n\
                    id=6 addr=127.0.0.1:5003 laddr=127.0.0.1:6379 fd=11 name= age=0 idle=0 flags=N db=0\n";
        let clients = parse_client_list(text);
        assert_eq!(clients.len(), 4);
        assert_eq!(clients[0].name, "sidekiq");
        assert_eq!(clients[0].age, 120);
        let apps: Vec<u64> = clients
            .iter()
            .filter(|c| is_application(c, 6))
            .map(|c| c.id)
            .collect();
        assert_eq!(apps, vec![3]);
    }
}
