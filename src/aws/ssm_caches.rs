//! Caches named by SSM parameters (seeds 001 and 002): read the endpoint/port or the whole
//! `rediss://:token@host:port` URL, keep only where the secret lives, and either attach that
//! to the discovered cache at the same host or add an `endpoint` cache.

use super::AwsControlPlane;
use crate::config::{SsmCache, expand_template};
use crate::controlplane::ControlPlaneError;
use crate::domain::{
    AuthMode, Cache, CacheKind, Credentials, Endpoint, Endpoints, Node, NodeHealth, NodeRole,
    RoleSource, SecretRef, Shard,
};
use std::collections::BTreeMap;

/// What a `redis://` / `rediss://` URL says, minus the password itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParts {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    pub username: Option<String>,
    pub has_password: bool,
}

/// Parses a cache URL. The error text never contains the URL: it may hold a token.
pub fn parse_cache_url(text: &str) -> Result<UrlParts, String> {
    let url = url::Url::parse(text.trim()).map_err(|e| format!("not a valid URL ({e})"))?;
    let tls = match url.scheme() {
        "rediss" | "valkeys" => true,
        "redis" | "valkey" => false,
        other => return Err(format!("scheme `{other}` is not redis:// or rediss://")),
    };
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| "the URL has no host".to_string())?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let username = Some(url.username())
        .filter(|u| !u.is_empty())
        .map(str::to_string);
    Ok(UrlParts {
        host,
        port: url.port().unwrap_or(6379),
        tls,
        username,
        has_password: url.password().is_some_and(|p| !p.is_empty()),
    })
}

/// Where an SSM-named cache lives and how to log in, with no secret inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsmTarget {
    pub name: String,
    pub endpoint: Endpoint,
    pub auth: AuthMode,
    pub credentials: Credentials,
    /// "endpoint from SSM /storefront-dev/redis/endpoint" and the like.
    pub note: String,
}

/// Attaches `target` to the cache already discovered at the same host, or (when
/// `add_endpoints`) adds it as an `endpoint` cache. Returns whether it attached.
pub fn merge(env: &str, caches: &mut Vec<Cache>, target: SsmTarget, add_endpoints: bool) -> bool {
    let host = target.endpoint.host.to_ascii_lowercase();
    let same_host = |c: &Cache| {
        [
            c.endpoint.as_ref(),
            c.endpoints.primary.as_ref(),
            c.endpoints.reader.as_ref(),
            c.endpoints.configuration.as_ref(),
        ]
        .into_iter()
        .flatten()
        .any(|e| e.host.eq_ignore_ascii_case(&host))
    };
    if let Some(cache) = caches.iter_mut().find(|c| same_host(c)) {
        let creds = &mut cache.credentials;
        if creds.username.is_none() {
            creds.username = target.credentials.username;
        }
        if creds.password.is_none() {
            creds.password = target.credentials.password;
        }
        if creds.url_parameter.is_none() {
            creds.url_parameter = target.credentials.url_parameter;
        }
        cache
            .notes
            .push(format!("{} (configured as `{}`)", target.note, target.name));
        return true;
    }
    if add_endpoints {
        caches.push(endpoint_cache(env, target));
    }
    false
}

fn endpoint_cache(env: &str, target: SsmTarget) -> Cache {
    let node = Node {
        id: target.endpoint.host.clone(),
        role: NodeRole::Unknown,
        host: target.endpoint.host.clone(),
        port: target.endpoint.port,
        availability_zone: None,
        status: "unknown".to_string(),
        health: NodeHealth::Unknown,
        tls: target.endpoint.tls,
        role_source: RoleSource::Unknown("known only by its address; not asked yet".into()),
    };
    Cache {
        name: target.name,
        env: env.to_string(),
        kind: CacheKind::Endpoint,
        engine: "unknown".to_string(),
        engine_version: "unknown".to_string(),
        status: "unknown".to_string(),
        cluster_mode: false,
        auth: target.auth,
        tls: target.endpoint.tls,
        endpoint: Some(target.endpoint.clone()),
        endpoints: Endpoints {
            primary: Some(target.endpoint),
            ..Endpoints::default()
        },
        shards: vec![Shard {
            id: "0001".to_string(),
            slots: None,
            nodes: vec![node],
        }],
        automatic_failover: false,
        multi_az: false,
        arn: None,
        description: None,
        notes: vec![target.note],
        credentials: target.credentials,
        ecs: None,
    }
}

impl AwsControlPlane {
    /// Reads the parameters of one SSM-named cache. `Ok(None)` with warnings when a
    /// parameter is missing or unusable; `Err` only for failures of the store itself.
    pub(super) async fn resolve_ssm(
        &self,
        ssm: &SsmCache,
        vars: &BTreeMap<String, String>,
        warnings: &mut Vec<String>,
    ) -> Result<Option<SsmTarget>, ControlPlaneError> {
        let expand = |t: &String| expand_template(t, vars).unwrap_or_else(|_| t.clone());
        let username = ssm.username.clone();
        let password = ssm.auth.as_ref().map(|a| SecretRef::Ssm(expand(a)));

        if let Some(url_template) = &ssm.url {
            let name = expand(url_template);
            let Some(param) = self.ssm_get(&name).await? else {
                warnings.push(format!("ssm {name}: not found (cache `{}`)", ssm.name));
                return Ok(None);
            };
            // The parsed parts carry no password; `param` (and its secret) drops here.
            let parts = match parse_cache_url(param.value.expose()) {
                Ok(parts) => parts,
                Err(why) => {
                    warnings.push(format!("ssm {name}: {why} (cache `{}`)", ssm.name));
                    return Ok(None);
                }
            };
            let username = parts.username.clone().or(username);
            let auth = auth_mode(
                parts.has_password || password.is_some(),
                username.as_deref(),
            );
            return Ok(Some(SsmTarget {
                name: ssm.name.clone(),
                endpoint: Endpoint::new(parts.host, parts.port, parts.tls),
                auth,
                credentials: Credentials {
                    username,
                    password,
                    url_parameter: Some(name.clone()),
                    ca_file: None,
                },
                note: format!("URL in SSM {name}"),
            }));
        }

        let Some(endpoint_template) = &ssm.endpoint else {
            return Ok(None);
        };
        let endpoint_name = expand(endpoint_template);
        let Some(host) = self.ssm_get(&endpoint_name).await? else {
            warnings.push(format!(
                "ssm {endpoint_name}: not found (cache `{}`)",
                ssm.name
            ));
            return Ok(None);
        };
        let host = host.value.expose().trim().to_string();
        // Some stacks store "host:port" in the endpoint parameter.
        let (host, inline_port) = match host.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h.to_string(), p.parse::<u16>().ok()),
            _ => (host, None),
        };
        let mut port = inline_port.unwrap_or(6379);
        if let Some(port_template) = &ssm.port {
            let port_name = expand(port_template);
            match self.ssm_get(&port_name).await? {
                Some(p) => match p.value.expose().trim().parse::<u16>() {
                    Ok(parsed) => port = parsed,
                    Err(_) => warnings.push(format!(
                        "ssm {port_name}: not a port number; using {port} (cache `{}`)",
                        ssm.name
                    )),
                },
                None => warnings.push(format!(
                    "ssm {port_name}: not found; using port {port} (cache `{}`)",
                    ssm.name
                )),
            }
        }
        if host.is_empty() {
            warnings.push(format!("ssm {endpoint_name}: empty (cache `{}`)", ssm.name));
            return Ok(None);
        }
        Ok(Some(SsmTarget {
            name: ssm.name.clone(),
            endpoint: Endpoint::new(host, port, ssm.tls),
            auth: auth_mode(password.is_some(), username.as_deref()),
            credentials: Credentials {
                username,
                password,
                url_parameter: None,
                ca_file: None,
            },
            note: format!("endpoint from SSM {endpoint_name}"),
        }))
    }
}

fn auth_mode(has_password: bool, username: Option<&str>) -> AuthMode {
    match (has_password, username) {
        (false, _) => AuthMode::None,
        (true, None | Some("default")) => AuthMode::Token,
        (true, Some(_)) => AuthMode::Acl,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_url_gives_host_port_tls_and_no_secret() {
        let parts = parse_cache_url("rediss://:s3cr3t-T0ken@master.pw.cache.amazonaws.com:6380/0")
            .expect("valid url");
        assert_eq!(parts.host, "master.pw.cache.amazonaws.com");
        assert_eq!(parts.port, 6380);
        assert!(parts.tls && parts.has_password);
        assert_eq!(parts.username, None);
        assert!(!format!("{parts:?}").contains("s3cr3t"));
    }

    #[test]
    fn bad_urls_do_not_echo_their_text() {
        let err = parse_cache_url("http://:s3cr3t@h:1").expect_err("wrong scheme");
        assert!(!err.contains("s3cr3t"), "{err}");
        let err = parse_cache_url("rediss://:s3cr3t@").expect_err("no host");
        assert!(!err.contains("s3cr3t"), "{err}");
    }

    #[test]
    fn plain_url_defaults_port_and_user_means_acl() {
        let parts = parse_cache_url("redis://app:pw@10.0.0.5").expect("valid");
        assert_eq!((parts.port, parts.tls), (6379, false));
        assert_eq!(
            auth_mode(parts.has_password, parts.username.as_deref()),
            AuthMode::Acl
        );
        assert_eq!(auth_mode(false, None), AuthMode::None);
    }

    fn target(host: &str) -> SsmTarget {
        SsmTarget {
            name: "paperwurks".into(),
            endpoint: Endpoint::new(host, 6379, true),
            auth: AuthMode::Token,
            credentials: Credentials {
                url_parameter: Some("/paperwurks/dev/redis/url".into()),
                ..Credentials::default()
            },
            note: "URL in SSM /paperwurks/dev/redis/url".into(),
        }
    }

    #[test]
    fn same_host_attaches_instead_of_duplicating() {
        let mut caches = Vec::new();
        assert!(!merge("dev", &mut caches, target("Master.PW"), true));
        assert_eq!(caches.len(), 1);
        assert_eq!(caches[0].kind, CacheKind::Endpoint);
        assert!(merge("dev", &mut caches, target("master.pw"), true));
        assert_eq!(caches.len(), 1);
        assert_eq!(
            caches[0].credentials.url_parameter.as_deref(),
            Some("/paperwurks/dev/redis/url")
        );
        assert_eq!(caches[0].notes.len(), 2);
    }

    #[test]
    fn endpoints_are_not_added_when_the_kind_is_filtered_out() {
        let mut caches = Vec::new();
        assert!(!merge("dev", &mut caches, target("h"), false));
        assert!(caches.is_empty());
    }
}
