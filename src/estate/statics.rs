//! Caches the config names by URL: no control plane knows them, so they are built here,
//! the same way for every provider.

use crate::config::{EnvConfig, PasswordRef, StaticCache};
use crate::domain::{
    AuthMode, Cache, CacheKind, Credentials, Endpoint, Endpoints, Environment, Node, NodeHealth,
    NodeRole, RoleSource, SecretRef, Shard,
};

/// The environment's static caches as domain caches (URLs were validated at load time;
/// one that still fails to parse is skipped rather than guessed at).
pub fn static_caches(env: &Environment, cfg: &EnvConfig) -> Vec<Cache> {
    cfg.caches
        .iter()
        .filter_map(|c| static_cache(env, c))
        .collect()
}

fn static_cache(env: &Environment, cfg: &StaticCache) -> Option<Cache> {
    let url = url::Url::parse(&cfg.url).ok()?;
    let tls = matches!(url.scheme(), "rediss" | "valkeys");
    let host = url.host_str()?.trim_matches(|c| c == '[' || c == ']');
    let port = url.port().unwrap_or(6379);
    let endpoint = Endpoint::new(host, port, tls);
    let username = Some(cfg.username.clone())
        .flatten()
        .or_else(|| Some(url.username().to_string()).filter(|u| !u.is_empty()));
    let auth = match (&username, &cfg.password) {
        (Some(_), Some(_)) => AuthMode::Acl,
        (None, Some(_)) => AuthMode::Token,
        _ => AuthMode::None,
    };
    Some(Cache {
        name: cfg.name.clone(),
        env: env.name.clone(),
        kind: CacheKind::Endpoint,
        engine: "valkey".into(),
        engine_version: String::new(),
        status: "configured".into(),
        cluster_mode: false,
        auth,
        tls,
        endpoint: Some(endpoint.clone()),
        endpoints: Endpoints {
            primary: Some(endpoint),
            ..Endpoints::default()
        },
        shards: vec![Shard {
            id: "0001".into(),
            slots: None,
            nodes: vec![Node {
                id: cfg.name.clone(),
                role: NodeRole::Unknown,
                host: host.to_string(),
                port,
                availability_zone: None,
                status: "configured".into(),
                health: NodeHealth::Unknown,
                tls,
                role_source: RoleSource::Unknown("known only by its URL; not asked yet".into()),
            }],
        }],
        automatic_failover: false,
        multi_az: false,
        arn: None,
        description: None,
        notes: vec![format!(
            "static cache from the config file ({})",
            env.source
        )],
        credentials: Credentials {
            username,
            password: cfg.password.as_ref().map(|p| match p {
                PasswordRef::Env(var) => SecretRef::Env(var.clone()),
                PasswordRef::Ssm(name) => SecretRef::Ssm(name.clone()),
            }),
            url_parameter: None,
            ca_file: cfg.ca_file.as_ref().map(|p| p.display().to_string()),
        },
        ecs: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Protection, ProviderKind};

    #[test]
    fn rediss_url_becomes_a_tls_endpoint_with_referenced_password() {
        let env = Environment {
            name: "legacy".into(),
            provider: ProviderKind::Aws,
            protection: Protection::ReadOnly,
            profile: None,
            region: None,
            endpoint_url: None,
            source: "cfg.toml".into(),
            account: None,
        };
        let mut cfg = EnvConfig::implied(ProviderKind::Aws, Protection::ReadOnly);
        cfg.caches.push(StaticCache {
            name: "old-sessions".into(),
            url: "rediss://app@10.1.2.3:6380".into(),
            username: None,
            password: Some(PasswordRef::Env("OLD_SESSIONS_PASSWORD".into())),
            ca_file: None,
        });
        let caches = static_caches(&env, &cfg);
        assert_eq!(caches.len(), 1);
        let c = &caches[0];
        assert!(c.tls);
        assert_eq!(c.auth, AuthMode::Acl);
        assert_eq!(c.endpoint.as_ref().map(|e| e.port), Some(6380));
        assert_eq!(c.credentials.username.as_deref(), Some("app"));
        assert_eq!(
            c.credentials.password,
            Some(SecretRef::Env("OLD_SESSIONS_PASSWORD".into()))
        );
    }
}
