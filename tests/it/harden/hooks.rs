//! What each runbook's state means, declared once per runbook. The suite enumerates the
//! catalog and fails for a runbook without an entry here, so nobody adds a runbook without
//! saying how to tell that a killed and resumed run did the same as an uninterrupted one.
//!
//! A hook names where the runbook runs on the sandbox and with which parameters. A mutating
//! runbook also says how to prepare one round, what the resulting state is (as JSON, equal
//! between an uninterrupted run and a killed-then-resumed one), how many mutating calls the
//! round issued (from the sandbox's event log or a node's commandstats), and points inside
//! its long steps where a kill is interesting.

use super::nodes;
use crate::harness::sandbox::Sandbox;
use cachedeck::sandbox::events::events_file;
use serde_json::{Value, json};
use time::OffsetDateTime;

/// One runbook's declaration.
pub struct Hook {
    pub runbook: &'static str,
    pub env: &'static str,
    pub cache: &'static str,
    /// `--param k=v` for round `round` (rounds are numbered across the sweep).
    pub params: fn(round: u32) -> Vec<String>,
    pub state: Kind,
}

/// Read-only with its parameters, or mutating with what its state means.
pub enum Kind {
    ReadOnly,
    Mutating(Mutating),
}

/// Whether a run has reached a point, judged from the sandbox.
pub type Reached = fn(&Sandbox, &Baseline) -> bool;

/// Taken before a round: what `state` and `mutations` compare against.
pub type Baseline = Value;

pub struct Mutating {
    /// Rounds one sandbox takes before a fresh one is needed (e.g. the TestFailover quota).
    pub rounds_per_sandbox: u32,
    /// Makes the sandbox ready for one round and returns its baseline.
    pub prepare: fn(&Sandbox, round: u32) -> Baseline,
    /// The state a finished round left, comparable across rounds.
    pub state: fn(&Sandbox, &Baseline, run_id: &str) -> Value,
    /// Mutating calls issued since the baseline.
    pub mutations: fn(&Sandbox, &Baseline) -> u64,
    /// Kill points inside long steps: the run is stopped once the predicate holds.
    pub inside: &'static [(&'static str, Reached)],
    /// Kill points the sandbox cannot honour yet, with why; the sweep lists them in its
    /// summary instead of running them.
    pub gaps: &'static [(&'static str, &'static str)],
    /// A resumed run may fail only with an error containing one of these (e.g. a verdict
    /// that cannot be measured once the probes died with the killed process).
    pub resume_may_fail_with: &'static [&'static str],
}

/// Every runbook's hook. Add yours here when you add a runbook to the catalog.
pub fn all() -> Vec<Hook> {
    vec![
        Hook {
            runbook: "health-check",
            env: "sandbox-dev",
            cache: "orders",
            params: |_| vec![],
            state: Kind::ReadOnly,
        },
        Hook {
            runbook: "connectivity-check",
            env: "sandbox-dev",
            cache: "storefront",
            params: |_| vec!["pings=5".into()],
            state: Kind::ReadOnly,
        },
        Hook {
            runbook: "ttl-audit",
            env: "sandbox-dev",
            cache: "paperwurks",
            params: |_| vec![],
            state: Kind::ReadOnly,
        },
        Hook {
            runbook: "marker-roundtrip",
            env: "sandbox-dev",
            cache: "valkey-ecs",
            params: |_| vec![],
            state: Kind::Mutating(Mutating {
                rounds_per_sandbox: u32::MAX,
                prepare: |sb, _| json!({ "sets": ecs_calls(sb, "set") }),
                state: |sb, _, run_id| {
                    let cache = nodes::cache(sb, "sandbox-dev", "valkey-ecs");
                    let mut c = nodes::connect(sb, &cache, nodes::ports(&cache)[0]);
                    let key = format!("cachedeck:marker:{run_id}");
                    let value: Option<String> =
                        redis::cmd("GET").arg(&key).query(&mut c).expect("GET");
                    let ttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut c).expect("PTTL");
                    json!({ "marker_is_run_id": value.as_deref() == Some(run_id), "marker_expires": ttl > 0 })
                },
                mutations: |sb, base| ecs_calls(sb, "set") - base["sets"].as_u64().unwrap_or(0),
                inside: &[],
                gaps: &[],
                resume_may_fail_with: &[],
            }),
        },
        Hook {
            runbook: "ttl-remediate",
            env: "sandbox-dev",
            cache: "valkey-ecs",
            params: |round| {
                vec![
                    format!("pattern=harden:r{round}:*"),
                    "ttl=1d".into(),
                    "dry_run=false".into(),
                    "rate=200".into(),
                    "count=20".into(),
                ]
            },
            state: Kind::Mutating(Mutating {
                rounds_per_sandbox: u32::MAX,
                prepare: |sb, round| {
                    let cache = nodes::cache(sb, "sandbox-dev", "valkey-ecs");
                    let mut c = nodes::connect(sb, &cache, nodes::ports(&cache)[0]);
                    let mut p = redis::pipe();
                    for i in 0..REMEDIATE_BARE {
                        p.cmd("SET")
                            .arg(format!("harden:r{round}:{i}"))
                            .arg("v")
                            .ignore();
                    }
                    for i in 0..REMEDIATE_KEEP {
                        p.cmd("SET")
                            .arg(format!("harden:r{round}:keep:{i}"))
                            .arg("v")
                            .arg("EX")
                            .arg(KEEP_TTL_S)
                            .ignore();
                    }
                    let () = p.query(&mut c).expect("seed keys");
                    json!({ "round": round, "expires": ecs_calls(sb, "expire") })
                },
                state: |sb, base, _| {
                    let round = base["round"].as_u64().unwrap_or(0);
                    let cache = nodes::cache(sb, "sandbox-dev", "valkey-ecs");
                    let mut c = nodes::connect(sb, &cache, nodes::ports(&cache)[0]);
                    let mut p = redis::pipe();
                    for i in 0..REMEDIATE_BARE {
                        p.cmd("PTTL").arg(format!("harden:r{round}:{i}"));
                    }
                    let bare: Vec<i64> = p.query(&mut c).expect("PTTL");
                    let mut p = redis::pipe();
                    for i in 0..REMEDIATE_KEEP {
                        p.cmd("PTTL").arg(format!("harden:r{round}:keep:{i}"));
                    }
                    let kept: Vec<i64> = p.query(&mut c).expect("PTTL");
                    let day = 86_400_000i64;
                    json!({
                        "without_ttl": bare.iter().filter(|t| **t == -1).count(),
                        "ttl_within_jitter": bare.iter().filter(|t| **t >= day * 89 / 100 && **t <= day * 111 / 100).count(),
                        "earlier_ttls_untouched": kept.iter().all(|t| *t > 0 && *t <= (KEEP_TTL_S as i64) * 1000),
                    })
                },
                mutations: |sb, base| {
                    ecs_calls(sb, "expire") - base["expires"].as_u64().unwrap_or(0)
                },
                inside: &[("half the TTLs set", half_the_ttls_set)],
                gaps: &[],
                resume_may_fail_with: &[],
            }),
        },
        Hook {
            runbook: "failover-test",
            env: "sandbox-dev",
            cache: "orders",
            params: |_| vec!["event_poll=200ms".into()],
            state: Kind::Mutating(Mutating {
                // TestFailover allows 15 node groups per rolling 24 hours.
                rounds_per_sandbox: 14,
                prepare: |sb, _| {
                    json!({
                        "since": OffsetDateTime::now_utc().unix_timestamp_nanos().to_string(),
                        "primary": nodes::primary(sb, "sandbox-dev", "orders"),
                    })
                },
                state: |sb, base, _| {
                    let now = nodes::primary(sb, "sandbox-dev", "orders");
                    json!({
                        "test_failover_calls": orders_events(sb, base, "Test Failover API called for node group 0001"),
                        "recoveries": orders_events(sb, base, "Finished recovery"),
                        "primary_changed": base["primary"].as_u64() != Some(u64::from(now)),
                    })
                },
                mutations: |sb, base| orders_events(sb, base, "Test Failover API called"),
                // Killed right after ElastiCache accepted the call: the failover finishes
                // without the caller, and resume follows its events.
                inside: &[
                    ("TestFailover accepted", failover_accepted),
                    ("recovery finished", recovery_finished),
                ],
                gaps: &[],
                resume_may_fail_with: &["not measured"],
            }),
        },
        Hook {
            runbook: "snapshot",
            env: "sandbox-dev",
            cache: "orders",
            params: |round| vec![format!("name=harden-r{round}"), "poll=200ms".into()],
            state: Kind::Mutating(Mutating {
                // 20 manual snapshots per node per 24 hours.
                rounds_per_sandbox: 15,
                prepare: |_, round| json!({ "since": now_ns(), "round": round }),
                state: |sb, base, _| {
                    let name = format!("'harden-r{}'", base["round"]);
                    json!({
                        "succeeded": dev_events(sb, base, "Snapshot succeeded", &name),
                        "failed": dev_events(sb, base, "Snapshot failed", &name),
                    })
                },
                mutations: |sb, base| {
                    dev_events(sb, base, "Snapshot succeeded", "")
                        + dev_events(sb, base, "Snapshot failed", "")
                },
                inside: &[],
                gaps: &[],
                resume_may_fail_with: &[],
            }),
        },
        Hook {
            runbook: "restore",
            env: "sandbox-dev",
            cache: "storefront",
            params: |round| {
                vec![
                    "snapshot=harden-src".into(),
                    format!("target=harden-r{round}"),
                    "poll=200ms".into(),
                ]
            },
            state: Kind::Mutating(Mutating {
                // Each round leaves a restored cache running.
                rounds_per_sandbox: 8,
                prepare: |sb, round| {
                    source_snapshot(sb, "storefront", "harden-src");
                    json!({ "since": now_ns(), "round": round })
                },
                state: |sb, base, _| {
                    let target = format!("harden-r{}", base["round"]);
                    let state = sb.state();
                    let restored: Vec<_> = state
                        .caches
                        .iter()
                        .filter(|c| c.env == "sandbox-dev" && c.name == target)
                        .collect();
                    json!({
                        "restored_caches": restored.len(),
                        "nodes": restored.iter().map(|c| nodes::ports(c).len()).sum::<usize>(),
                    })
                },
                mutations: |sb, base| {
                    let prefix = "harden-r";
                    let round = base["round"].as_u64().unwrap_or(0);
                    sb.state()
                        .caches
                        .iter()
                        .filter(|c| c.name == format!("{prefix}{round}"))
                        .count() as u64
                },
                // CreateReplicationGroup answered: the new cache is recorded (`creating`) and the
                // endpoint daemon builds it whether or not the caller lives on.
                inside: &[("CreateReplicationGroup answered", restore_accepted)],
                gaps: &[],
                resume_may_fail_with: &[],
            }),
        },
        Hook {
            runbook: "survives-restart",
            env: "sandbox-dev",
            cache: "valkey-ecs",
            params: |_| vec!["poll=200ms".into()],
            state: Kind::Mutating(Mutating {
                rounds_per_sandbox: u32::MAX,
                prepare: |sb, _| {
                    let cache = nodes::cache(sb, "sandbox-dev", "valkey-ecs");
                    json!({ "deployments": ecs_deployments(sb), "port": nodes::ports(&cache)[0] })
                },
                state: |sb, base, _| {
                    let cache = nodes::cache(sb, "sandbox-dev", "valkey-ecs");
                    json!({
                        "deployments": ecs_deployments(sb) - base["deployments"].as_u64().unwrap_or(0),
                        "new_task": base["port"].as_u64() != Some(u64::from(nodes::ports(&cache)[0])),
                    })
                },
                mutations: |sb, base| {
                    ecs_deployments(sb) - base["deployments"].as_u64().unwrap_or(0)
                },
                inside: &[],
                gaps: &[],
                resume_may_fail_with: &[],
            }),
        },
        Hook {
            runbook: "auth-rotate",
            env: "sandbox-dev",
            cache: "orders",
            params: |_| vec!["poll=200ms".into(), "drain_timeout=30s".into()],
            state: Kind::Mutating(Mutating {
                rounds_per_sandbox: u32::MAX,
                prepare: |sb, _| {
                    let cache = nodes::cache(sb, "sandbox-dev", "orders");
                    json!({ "since": now_ns(), "token": nodes::password(sb, &cache) })
                },
                state: |sb, base, _| {
                    let cache = nodes::cache(sb, "sandbox-dev", "orders");
                    let token = nodes::password(sb, &cache);
                    let old = base["token"].as_str().unwrap_or_default();
                    let port = nodes::primary(sb, "sandbox-dev", "orders");
                    let staging = sb
                        .params()
                        .by_path("/cachedeck/rotation")
                        .expect("read parameters")
                        .len();
                    json!({
                        "token_changed": token.as_deref() != Some(old),
                        "new_accepted": token.as_deref().is_some_and(|t| nodes::auth_ok(port, t)),
                        "old_refused": !nodes::auth_ok(port, old),
                        "staging_left": staging,
                    })
                },
                mutations: |sb, base| {
                    dev_events(
                        sb,
                        base,
                        "Auth token rotated for replication group orders",
                        "",
                    ) + dev_events(sb, base, "Auth token set for replication group orders", "")
                },
                inside: &[],
                gaps: &[],
                resume_may_fail_with: &[],
            }),
        },
        Hook {
            runbook: "auth-rotate",
            env: "sandbox-dev",
            cache: "paperwurks",
            params: |_| vec!["poll=200ms".into(), "drain_timeout=30s".into()],
            state: Kind::Mutating(Mutating {
                rounds_per_sandbox: u32::MAX,
                prepare: |sb, _| {
                    let cache = nodes::cache(sb, "sandbox-dev", "paperwurks");
                    json!({
                        "since": now_ns(),
                        "token": nodes::password(sb, &cache),
                        "url": param(sb, PAPER_URL),
                        "consumer_errors": paper_consumer_errors(sb),
                    })
                },
                state: |sb, base, _| {
                    let cache = nodes::cache(sb, "sandbox-dev", "paperwurks");
                    let token = nodes::password(sb, &cache).unwrap_or_default();
                    let old = base["token"].as_str().unwrap_or_default();
                    let ports = nodes::ports(&cache);
                    let staging = sb
                        .params()
                        .by_path("/cachedeck/rotation")
                        .expect("read parameters")
                        .len();
                    let url = param(sb, PAPER_URL);
                    let want_url = base["url"]
                        .as_str()
                        .unwrap_or_default()
                        .replace(old, &token);
                    json!({
                        "token_changed": token != old,
                        "nodes": ports.len(),
                        "new_accepted_everywhere": ports.iter().all(|&p| nodes::auth_ok(p, &token)),
                        "old_refused_everywhere": ports.iter().all(|&p| !nodes::auth_ok(p, old)),
                        "url_holds_only_the_new_token": url == want_url,
                        "staging_left": staging,
                        "consumer_on_every_primary_with_the_new_token": paper_consumer_connected(sb),
                        "consumer_errors": paper_consumer_errors(sb)
                            - base["consumer_errors"].as_u64().unwrap_or(0),
                    })
                },
                mutations: |sb, base| {
                    dev_events(
                        sb,
                        base,
                        "Auth token rotated for replication group paperwurks",
                        "",
                    ) + dev_events(
                        sb,
                        base,
                        "Auth token set for replication group paperwurks",
                        "",
                    )
                },
                // Once ModifyReplicationGroup has landed (the group reads `modifying` and
                // the call's event is written) and before the group is `available` again.
                inside: &[
                    ("the ROTATE wait (group modifying)", |sb, base| {
                        paper_pending(sb).as_deref() == Some("ROTATING")
                            && dev_events(
                                sb,
                                base,
                                "Auth token rotated for replication group paperwurks",
                                "",
                            ) > 0
                    }),
                    ("the SET wait (group modifying)", |sb, base| {
                        paper_pending(sb).as_deref() == Some("SETTING")
                            && dev_events(
                                sb,
                                base,
                                "Auth token set for replication group paperwurks",
                                "",
                            ) > 0
                    }),
                ],
                gaps: &[],
                resume_may_fail_with: &[],
            }),
        },
        Hook {
            runbook: "cutover",
            env: "sandbox-dev",
            cache: "storefront",
            params: |_| cutover_params(),
            state: Kind::Mutating(Mutating {
                rounds_per_sandbox: u32::MAX,
                prepare: |sb, _| {
                    restored_copy(sb);
                    // Back to the source's own endpoint: a round starts from a live source.
                    let source = nodes::cache(sb, "sandbox-dev", "storefront");
                    let ep = source.endpoint.expect("storefront has an endpoint");
                    put_plain(sb, SF_ENDPOINT, &ep.host);
                    put_plain(sb, SF_PORT, &ep.port.to_string());
                    put_url(sb, &ep);
                    json!({ "versions": sf_versions(sb) })
                },
                state: |sb, base, _| {
                    let copy = nodes::cache(sb, "sandbox-dev", SF_COPY);
                    let ep = copy.endpoint.expect("the copy has an endpoint");
                    json!({
                        "endpoint_is_copy": sf_value(sb, SF_ENDPOINT) == ep.host,
                        "port_is_copy": sf_value(sb, SF_PORT) == ep.port.to_string(),
                        "url_is_copy": sf_value(sb, SF_URL) == sf_url(sb, &ep),
                        "labels": sf_labels(sb, base),
                    })
                },
                mutations: sf_written,
                inside: &[("the first parameter written", first_parameter_written)],
                gaps: &[],
                resume_may_fail_with: &[],
            }),
        },
        Hook {
            runbook: "rollback",
            env: "sandbox-dev",
            cache: "storefront",
            params: |_| cutover_params(),
            state: Kind::Mutating(Mutating {
                rounds_per_sandbox: u32::MAX,
                prepare: |sb, _| {
                    restored_copy(sb);
                    // A finished cutover, made directly in the store as the cutover makes it.
                    let source = nodes::cache(sb, "sandbox-dev", "storefront");
                    let ep = source.endpoint.expect("storefront has an endpoint");
                    let copy = nodes::cache(sb, "sandbox-dev", SF_COPY);
                    let to = copy.endpoint.expect("the copy has an endpoint");
                    let store = sb.params();
                    for (name, old, new) in [
                        (SF_ENDPOINT, ep.host.clone(), to.host.clone()),
                        (SF_PORT, ep.port.to_string(), to.port.to_string()),
                    ] {
                        let v = put_plain(sb, name, &old);
                        store
                            .label(name, Some(v), &[format!("cachedeck-before-{SF_COPY}")])
                            .expect("label");
                        let v = put_plain(sb, name, &new);
                        store
                            .label(name, Some(v), &[format!("cachedeck-cutover-{SF_COPY}")])
                            .expect("label");
                    }
                    let v = put_url(sb, &ep);
                    store
                        .label(SF_URL, Some(v), &[format!("cachedeck-before-{SF_COPY}")])
                        .expect("label");
                    let v = put_url(sb, &to);
                    store
                        .label(SF_URL, Some(v), &[format!("cachedeck-cutover-{SF_COPY}")])
                        .expect("label");
                    json!({ "versions": sf_versions(sb), "host": ep.host, "port": ep.port.to_string() })
                },
                state: |sb, base, _| {
                    let source = nodes::cache(sb, "sandbox-dev", "storefront");
                    let url = sf_url(sb, &source.endpoint.expect("endpoint"));
                    json!({
                        "endpoint_is_source": sf_value(sb, SF_ENDPOINT) == base["host"].as_str().unwrap_or_default(),
                        "port_is_source": sf_value(sb, SF_PORT) == base["port"].as_str().unwrap_or_default(),
                        "url_is_source": sf_value(sb, SF_URL) == url,
                        "labels": sf_labels(sb, base),
                    })
                },
                mutations: sf_written,
                inside: &[("the first parameter written", first_parameter_written)],
                gaps: &[],
                resume_may_fail_with: &[],
            }),
        },
    ]
}

/// The restored copy of `storefront` the cutover and rollback rounds point at.
const SF_COPY: &str = "harden-sfcopy";
const SF_ENDPOINT: &str = "/storefront-dev/redis/endpoint";
const SF_PORT: &str = "/storefront-dev/redis/port";
/// A URL SecureString in seed 002's shape, holding storefront's password.
const SF_URL: &str = "/storefront-dev/redis/url";
const SF_PARAMS: [&str; 3] = [SF_ENDPOINT, SF_PORT, SF_URL];

/// storefront's URL pointing at `ep`, with its user and password.
fn sf_url(sb: &Sandbox, ep: &cachedeck::domain::Endpoint) -> String {
    let source = nodes::cache(sb, "sandbox-dev", "storefront");
    let password = nodes::password(sb, &source).expect("storefront has a password");
    let user = source.username.clone().unwrap_or_default();
    format!("rediss://{user}:{password}@{}:{}/0", ep.host, ep.port)
}

fn put_url(sb: &Sandbox, ep: &cachedeck::domain::Endpoint) -> i64 {
    cachedeck::sandbox::params::put_value(&sb.params(), SF_URL, &sf_url(sb, ep), true)
        .expect("put URL")
}

fn cutover_params() -> Vec<String> {
    vec![
        format!("restored={SF_COPY}"),
        format!("endpoint_parameter={SF_ENDPOINT}"),
        format!("port_parameter={SF_PORT}"),
        format!("url_parameter={SF_URL}"),
    ]
}

fn put_plain(sb: &Sandbox, name: &str, value: &str) -> i64 {
    cachedeck::sandbox::params::put_value(&sb.params(), name, value, false).expect("put parameter")
}

fn sf_value(sb: &Sandbox, name: &str) -> String {
    let p = sb.params().get(name).expect("read").expect("parameter");
    p.value.expose().to_string()
}

fn sf_versions(sb: &Sandbox) -> Value {
    let v = |name: &str| {
        sb.params()
            .get(name)
            .expect("read")
            .expect("parameter")
            .version
    };
    json!(SF_PARAMS.map(v))
}

/// Versions written since the baseline, over both parameters.
fn sf_written(sb: &Sandbox, base: &Baseline) -> u64 {
    let now = sf_versions(sb);
    (0..SF_PARAMS.len())
        .map(|i| now[i].as_i64().unwrap_or(0) - base["versions"][i].as_i64().unwrap_or(0))
        .sum::<i64>()
        .max(0) as u64
}

/// The port parameter is written (the endpoint's host does not change on the sandbox, where
/// every endpoint is 127.0.0.1); the URL is next.
fn first_parameter_written(sb: &Sandbox, base: &Baseline) -> bool {
    sf_versions(sb)[1].as_i64() > base["versions"][1].as_i64()
}

/// Where each label sits, as an offset from the baseline's version (so rounds compare).
fn sf_labels(sb: &Sandbox, base: &Baseline) -> Value {
    use cachedeck::controlplane::ParameterSelector;
    let mut out = Vec::new();
    for (i, name) in SF_PARAMS.into_iter().enumerate() {
        let base_v = base["versions"][i].as_i64().unwrap_or(0);
        for kind in ["before", "cutover", "rollback"] {
            let at = ParameterSelector::Label(format!("cachedeck-{kind}-{SF_COPY}"));
            let v = sb
                .params()
                .get_at(name, &at)
                .expect("read")
                .map(|p| p.version - base_v);
            out.push(json!({ "parameter": name, "label": kind, "at": v }));
        }
    }
    Value::Array(out)
}

/// Restores `storefront` into [`SF_COPY`] once per sandbox (through the binary).
fn restored_copy(sb: &Sandbox) {
    if sb.state().caches.iter().any(|c| c.name == SF_COPY) {
        return;
    }
    source_snapshot(sb, "storefront", "harden-src");
    let out = sb
        .cachedeck()
        .args([
            "run",
            "restore",
            "--env",
            "sandbox-dev",
            "--cache",
            "storefront",
            "--yes",
        ])
        .args([
            "--param",
            "snapshot=harden-src",
            "--param",
            &format!("target={SF_COPY}"),
        ])
        .args(["--param", "poll=200ms"])
        .output()
        .expect("run restore");
    assert!(
        out.status.success(),
        "restore for cutover: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const REMEDIATE_BARE: u64 = 400;
const REMEDIATE_KEEP: u64 = 20;
const KEEP_TTL_S: u64 = 100_000;

fn half_the_ttls_set(sb: &Sandbox, base: &Baseline) -> bool {
    ecs_calls(sb, "expire") - base["expires"].as_u64().unwrap_or(0) >= REMEDIATE_BARE / 2
}

fn restore_accepted(sb: &Sandbox, base: &Baseline) -> bool {
    let target = format!("harden-r{}", base["round"]);
    sb.state().cache("sandbox-dev", &target).is_some()
}

fn failover_accepted(sb: &Sandbox, base: &Baseline) -> bool {
    orders_events(sb, base, "Test Failover API called") > 0
}

fn recovery_finished(sb: &Sandbox, base: &Baseline) -> bool {
    orders_events(sb, base, "Finished recovery") > 0
}

/// Calls of `command` on the `valkey-ecs` node.
fn ecs_calls(sb: &Sandbox, command: &str) -> u64 {
    let cache = nodes::cache(sb, "sandbox-dev", "valkey-ecs");
    nodes::calls(
        sb,
        "sandbox-dev",
        "valkey-ecs",
        nodes::ports(&cache)[0],
        command,
    )
}

/// Events of `orders` in `sandbox-dev` since the baseline whose message starts with `prefix`,
/// read from the sandbox's event log.
fn orders_events(sb: &Sandbox, base: &Baseline, prefix: &str) -> u64 {
    let since: i128 = base["since"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let text = std::fs::read_to_string(events_file(&sb.dir(), "sandbox-dev")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| {
            e["source"]
                .as_str()
                .is_some_and(|s| s == "orders" || s.starts_with("orders-"))
        })
        .filter(|e| e["message"].as_str().is_some_and(|m| m.starts_with(prefix)))
        .filter(|e| {
            e["time"]
                .as_str()
                .and_then(|t| {
                    OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
                })
                .is_some_and(|t| t.unix_timestamp_nanos() >= since)
        })
        .count() as u64
}

fn now_ns() -> String {
    OffsetDateTime::now_utc().unix_timestamp_nanos().to_string()
}

/// Events of `sandbox-dev` since the baseline whose message starts with `prefix` and
/// contains `having`.
fn dev_events(sb: &Sandbox, base: &Baseline, prefix: &str, having: &str) -> u64 {
    let since: i128 = base["since"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let text = std::fs::read_to_string(events_file(&sb.dir(), "sandbox-dev")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(prefix) && m.contains(having))
        })
        .filter(|e| {
            e["time"]
                .as_str()
                .and_then(|t| {
                    OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
                })
                .is_some_and(|t| t.unix_timestamp_nanos() >= since)
        })
        .count() as u64
}

/// Deployments the sandbox's ECS service `valkey-ecs` has had (its deployment counter).
fn ecs_deployments(sb: &Sandbox) -> u64 {
    let path = sb
        .dir()
        .join("ecs")
        .join("sandbox-dev")
        .join("valkey-ecs.json");
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v["next"].as_u64())
        .unwrap_or(2)
}

/// Takes the snapshot `name` of `cache` once per sandbox (through the binary).
fn source_snapshot(sb: &Sandbox, cache: &str, name: &str) {
    let text = std::fs::read_to_string(events_file(&sb.dir(), "sandbox-dev")).unwrap_or_default();
    if text.contains(&format!("Snapshot succeeded for snapshot with ID '{name}'")) {
        return;
    }
    let out = sb
        .cachedeck()
        .args([
            "run",
            "snapshot",
            "--env",
            "sandbox-dev",
            "--cache",
            cache,
            "--yes",
        ])
        .args(["--param", &format!("name={name}"), "--param", "poll=200ms"])
        .output()
        .expect("run snapshot");
    assert!(
        out.status.success(),
        "source snapshot for restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The hooks of `runbook` (one per cache it is swept on).
pub fn of(runbook: &str) -> Vec<Hook> {
    all().into_iter().filter(|h| h.runbook == runbook).collect()
}

const PAPER_URL: &str = "/paperwurks/dev/redis/url";

fn param(sb: &Sandbox, name: &str) -> String {
    sb.params()
        .get(name)
        .expect("read parameter")
        .map(|p| p.value.expose().to_string())
        .unwrap_or_default()
}

/// The change `paperwurks` is in the middle of (the sandbox's record of its tokens).
fn paper_pending(sb: &Sandbox) -> Option<String> {
    cachedeck::sandbox::auth::load(&sb.dir(), "sandbox-dev", "paperwurks")?
        .pending_at(OffsetDateTime::now_utc())
        .map(str::to_string)
}

fn paper_consumer_log(sb: &Sandbox) -> String {
    std::fs::read_to_string(
        sb.dir()
            .join("consumers/sandbox-dev/paperwurks-celery/consumer.log"),
    )
    .unwrap_or_default()
}

/// Client errors the Celery-like consumer has logged (a refused secret would be one).
fn paper_consumer_errors(sb: &Sandbox) -> u64 {
    paper_consumer_log(sb)
        .lines()
        .filter(|l| l.contains(" error: "))
        .count() as u64
}

/// Whether the consumer's current task (started with the secret as it is now) has opened
/// its connections on every primary, through the TLS fronts CLUSTER SLOTS names; waits a
/// little for a task started just now.
fn paper_consumer_connected(sb: &Sandbox) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let task = sb
            .state()
            .consumers
            .iter()
            .find(|c| c.service == "paperwurks-celery")
            .map(|c| c.task.clone())
            .unwrap_or_default();
        let log = paper_consumer_log(sb);
        let spread = log.lines().any(|l| {
            l.contains(&format!(
                "{task} cluster: connections spread over 3 primaries"
            )) && l
                .matches(cachedeck::sandbox::tls::CLUSTER_FRONT_HOST)
                .count()
                == 3
        });
        let opened = (0..3).all(|i| log.contains(&format!("{task} connection {i} opened")));
        if !task.is_empty() && spread && opened {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
