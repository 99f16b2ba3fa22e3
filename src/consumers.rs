//! Which ECS services use a cache ("consumers"), found the way a person would: read every
//! service's task definition and keep the containers whose `environment` names the cache's
//! endpoint (a host, `host:port` or a URL holding it) or one of its parameters, or whose
//! `secrets` take a value from a parameter the cache is published under (`valueFrom` by name
//! or ARN); plus the services the config names. Used by `cachedeck exec --cache`, the
//! connectivity check from a consumer, the TUI's cache screen and auth-rotate's roll.
//!
//! Only variable names leave this module: values may hold credentials.

use crate::controlplane::{
    ConsumerService, ContainerDefinition, ControlPlane, ControlPlaneError, EcsServiceDefinition,
};
use crate::domain::Cache;

/// What a task definition may name to point at a cache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct References {
    /// Addresses (lowercase host, port).
    pub addresses: Vec<(String, u16)>,
    /// Parameter names, without a leading `/`.
    pub parameters: Vec<String>,
}

fn param_key(name: &str) -> String {
    name.trim_start_matches('/').to_string()
}

/// The name of a parameter from a `valueFrom` (a name, or an SSM parameter ARN); `None` for
/// anything else (a Secrets Manager ARN).
pub fn parameter_of(value_from: &str) -> Option<String> {
    if let Some(rest) = value_from.strip_prefix("arn:") {
        let (_, name) = rest.split_once(":parameter")?;
        return Some(param_key(name));
    }
    Some(param_key(value_from))
}

/// Everything that points at `cache`: its endpoints and nodes, its secret and URL
/// parameters, and the parameter its endpoint was read from (discovery's note).
pub fn references(cache: &Cache) -> References {
    let mut r = References::default();
    let mut add = |host: &str, port: u16| {
        let h = host.to_ascii_lowercase();
        if !h.is_empty() && !r.addresses.contains(&(h.clone(), port)) {
            r.addresses.push((h, port));
        }
    };
    for e in [
        cache.endpoint.as_ref(),
        cache.endpoints.primary.as_ref(),
        cache.endpoints.reader.as_ref(),
        cache.endpoints.configuration.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        add(&e.host, e.port);
    }
    for n in cache.nodes() {
        add(&n.host, n.port);
    }
    if let Some(crate::domain::SecretRef::Ssm(p)) = &cache.credentials.password {
        r.parameters.push(param_key(p));
    }
    if let Some(p) = &cache.credentials.url_parameter {
        r.parameters.push(param_key(p));
    }
    for note in &cache.notes {
        for marker in ["from SSM ", "SSM endpoint parameter "] {
            if let Some(at) = note.find(marker) {
                let name = note[at + marker.len()..]
                    .split_whitespace()
                    .next()
                    .unwrap_or("");
                if !name.is_empty() {
                    r.parameters.push(param_key(name));
                }
            }
        }
    }
    r.parameters.sort();
    r.parameters.dedup();
    r
}

fn is_host_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'.' || c == b'-'
}

/// Whether `value` names `host` at `port`: `host:port` exactly, or the host alone when the
/// port is the default 6379 or another variable of the container holds the port.
fn names_address(value: &str, host: &str, port: u16, port_elsewhere: bool) -> bool {
    let v = value.to_ascii_lowercase();
    let bytes = v.as_bytes();
    let mut from = 0;
    while let Some(i) = v[from..].find(host) {
        let at = from + i;
        let end = at + host.len();
        from = at + 1;
        if at > 0 && is_host_char(bytes[at - 1]) {
            continue;
        }
        if end < bytes.len() && is_host_char(bytes[end]) {
            continue;
        }
        if bytes.get(end) == Some(&b':') {
            let digits: String = v[end + 1..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if !digits.is_empty() {
                if digits.parse::<u16>().ok() == Some(port) {
                    return true;
                }
                continue;
            }
        }
        if port == 6379 || port_elsewhere {
            return true;
        }
    }
    false
}

/// The variables of one container that point at the cache (names only, in order).
pub fn matching_variables(container: &ContainerDefinition, refs: &References) -> Vec<String> {
    let mut out = Vec::new();
    for (name, value) in &container.environment {
        let by_address = refs.addresses.iter().any(|(h, p)| {
            let port_elsewhere = container
                .environment
                .iter()
                .any(|(n, v)| n != name && v.trim() == p.to_string());
            names_address(value, h, *p, port_elsewhere)
        });
        let by_parameter = parameter_of(value.trim())
            .is_some_and(|p| value.contains('/') && refs.parameters.contains(&p));
        if by_address || by_parameter {
            out.push(name.clone());
        }
    }
    for (name, from) in &container.secrets {
        if parameter_of(from).is_some_and(|p| refs.parameters.contains(&p)) {
            out.push(name.clone());
        }
    }
    // Companions: the user name or port beside a matched variable (`REDIS_USERNAME` next
    // to `REDIS_URL`), which the app reads with it.
    let prefix = |n: &str| n.split('_').next().unwrap_or(n).to_string();
    let prefixes: Vec<String> = out.iter().map(|n| prefix(n)).collect();
    for (name, _) in container.environment.iter().chain(container.secrets.iter()) {
        if !out.contains(name)
            && (name.contains("USER") || name.contains("PORT"))
            && prefixes.contains(&prefix(name))
        {
            out.push(name.clone());
        }
    }
    out
}

/// The consumers of `cache` among `services`: per service, the container with the most
/// variables pointing at the cache.
pub fn find(cache: &Cache, services: &[EcsServiceDefinition]) -> Vec<ConsumerService> {
    let refs = references(cache);
    let mut out = Vec::new();
    for s in services {
        let best = s
            .containers
            .iter()
            .map(|c| (c, matching_variables(c, &refs)))
            .filter(|(_, v)| !v.is_empty())
            .max_by_key(|(_, v)| v.len());
        if let Some((c, variables)) = best {
            out.push(ConsumerService {
                cluster: s.cluster.clone(),
                service: s.service.clone(),
                variables,
                container: Some(c.name.clone()),
                running: Some(s.running),
                found_by: "task-definition".into(),
            });
        }
    }
    out
}

/// Consumers from the config, then those found in task definitions (a service in both
/// keeps the config's entry with what the task definition adds).
pub fn merge(
    configured: Vec<ConsumerService>,
    found: Vec<ConsumerService>,
) -> Vec<ConsumerService> {
    let mut out = configured;
    for f in found {
        match out.iter_mut().find(|c| {
            c.service == f.service && c.cluster.rsplit('/').next() == f.cluster.rsplit('/').next()
        }) {
            Some(c) => {
                c.variables = f.variables;
                c.running = c.running.or(f.running);
                c.container = c.container.clone().or(f.container);
            }
            None => out.push(f),
        }
    }
    out
}

/// The consumers of `cache` through the control plane: the config's, and every ECS service
/// whose task definition points at the cache. A plane without ECS answers `Unsupported`
/// unless the config names some.
pub async fn discover<P: ControlPlane + ?Sized>(
    plane: &P,
    cache: &Cache,
) -> Result<Vec<ConsumerService>, ControlPlaneError> {
    let configured = plane.configured_consumers(cache);
    let services = match plane.ecs_service_definitions().await {
        Ok(s) => s,
        Err(ControlPlaneError::Unsupported { .. }) if !configured.is_empty() => Vec::new(),
        Err(e) => return Err(e),
    };
    Ok(merge(configured, find(cache, &services)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Endpoint, SecretRef};

    fn cache() -> Cache {
        let mut c: Cache = serde_json::from_value(serde_json::json!({
            "name": "orders", "env": "dev", "kind": "replication-group", "engine": "valkey",
            "engine_version": "8.0", "status": "available", "cluster_mode": false,
            "auth": "token", "tls": true, "endpoint": null,
            "endpoints": {}, "shards": []
        }))
        .expect("cache json");
        c.endpoint = Some(Endpoint::new(
            "master.orders-prod.abc123.euw1.cache.amazonaws.com",
            6379,
            true,
        ));
        c.credentials.password = Some(SecretRef::Ssm("/orders/prod/redis/auth".into()));
        c.notes
            .push("endpoint from SSM /orders/prod/redis/endpoint".into());
        c
    }

    fn container(env: &[(&str, &str)], secrets: &[(&str, &str)]) -> ContainerDefinition {
        let pairs = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        ContainerDefinition {
            name: "app".into(),
            environment: pairs(env),
            secrets: pairs(secrets),
        }
    }

    #[test]
    fn urls_hosts_and_secret_arns_name_the_cache() {
        let refs = references(&cache());
        let c = container(
            &[
                (
                    "SIDEKIQ_REDIS_URL",
                    "rediss://master.orders-prod.abc123.euw1.cache.amazonaws.com:6379/0",
                ),
                (
                    "OTHER_URL",
                    "rediss://master.orders-prod2.abc123.euw1.cache.amazonaws.com:6379",
                ),
                ("ENDPOINT_PARAM", "/orders/prod/redis/endpoint"),
                ("RAILS_ENV", "production"),
            ],
            &[
                (
                    "REDIS_PASSWORD",
                    "arn:aws:ssm:eu-west-1:123456789012:parameter/orders/prod/redis/auth",
                ),
                (
                    "DB_PASSWORD",
                    "arn:aws:ssm:eu-west-1:123456789012:parameter/orders/prod/db",
                ),
            ],
        );
        assert_eq!(
            matching_variables(&c, &refs),
            ["SIDEKIQ_REDIS_URL", "ENDPOINT_PARAM", "REDIS_PASSWORD"]
        );
    }

    #[test]
    fn a_port_must_agree_and_a_bare_host_needs_the_default_or_a_port_variable() {
        let mut c = cache();
        c.endpoint = Some(Endpoint::new("127.0.0.1", 41234, true));
        c.credentials = Default::default();
        c.notes.clear();
        let refs = references(&c);
        let wrong_port = container(&[("REDIS_URL", "redis://127.0.0.1:41235/0")], &[]);
        assert!(matching_variables(&wrong_port, &refs).is_empty());
        let bare = container(&[("REDIS_HOST", "127.0.0.1")], &[]);
        assert!(matching_variables(&bare, &refs).is_empty());
        let with_port = container(&[("REDIS_HOST", "127.0.0.1"), ("REDIS_PORT", "41234")], &[]);
        assert_eq!(
            matching_variables(&with_port, &refs),
            ["REDIS_HOST", "REDIS_PORT"]
        );
        let longer_ip = container(&[("REDIS_URL", "redis://127.0.0.12:41234")], &[]);
        assert!(matching_variables(&longer_ip, &refs).is_empty());
    }

    #[test]
    fn config_entries_come_first_and_take_what_discovery_adds() {
        let configured = vec![ConsumerService {
            cluster: "prod".into(),
            service: "web".into(),
            variables: vec![],
            container: None,
            running: None,
            found_by: "config".into(),
        }];
        let found = vec![
            ConsumerService {
                cluster: "arn:aws:ecs:eu-west-1:1:cluster/prod".into(),
                service: "web".into(),
                variables: vec!["REDIS_URL".into()],
                container: Some("app".into()),
                running: Some(2),
                found_by: "task-definition".into(),
            },
            ConsumerService {
                cluster: "prod".into(),
                service: "worker".into(),
                variables: vec!["REDIS_URL".into()],
                container: Some("app".into()),
                running: Some(1),
                found_by: "task-definition".into(),
            },
        ];
        let all = merge(configured, found);
        assert_eq!(all.len(), 2);
        assert_eq!(
            (
                all[0].found_by.as_str(),
                all[0].running,
                all[0].variables.len()
            ),
            ("config", Some(2), 1)
        );
        assert_eq!(all[1].service, "worker");
    }

    #[test]
    fn debug_prints_variable_names_never_values() {
        let c = container(&[("REDIS_URL", "rediss://:hunter2@h:6379")], &[]);
        let text = format!("{c:?}");
        assert!(
            text.contains("REDIS_URL") && !text.contains("hunter2"),
            "{text}"
        );
    }
}
