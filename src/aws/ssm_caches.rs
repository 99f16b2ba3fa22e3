//! Caches named by SSM parameters (seeds 001 and 002): read the endpoint/port or the whole
//! `rediss://:token@host:port` URL, keep only where the secret lives, and either attach that
//! to the discovered cache at the same host or add an `endpoint` cache.

use super::AwsControlPlane;
use crate::config::{SsmCache, expand_template};
use crate::controlplane::{ControlPlaneError, ParameterType};
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

/// What an endpoint parameter holds: a host, `host:port`, `[v6]:port`, or a whole
/// `redis://` / `rediss://` URL (some stacks publish the URL under the endpoint name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointValue {
    pub host: String,
    pub port: Option<u16>,
    /// Set when a URL's scheme says (rediss:// → TLS).
    pub tls: Option<bool>,
    pub username: Option<String>,
    /// A URL with a password: the parameter holds a secret, read it as the URL parameter.
    pub has_password: bool,
}

/// Parses an endpoint parameter's value. The error never echoes the value (a URL may hold
/// a token).
pub fn parse_endpoint_value(text: &str) -> Result<EndpointValue, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty".into());
    }
    if text.contains("://") {
        let parts = parse_cache_url(text)?;
        return Ok(EndpointValue {
            host: parts.host,
            port: Some(parts.port),
            tls: Some(parts.tls),
            username: parts.username,
            has_password: parts.has_password,
        });
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or("an IPv6 address without its closing `]`")?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err("text after the IPv6 address is not `:port`".into()),
        };
        (host.to_string(), port)
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h.to_string(), Some(p)),
            _ => (text.to_string(), None),
        }
    };
    let port = match port {
        Some(p) => Some(
            p.parse::<u16>()
                .map_err(|_| "the part after `:` is not a port number".to_string())?,
        ),
        None => None,
    };
    if host.is_empty()
        || host
            .chars()
            .any(|c| c.is_whitespace() || c == '/' || c == '@')
    {
        return Err("not a host name, host:port or redis:// URL".into());
    }
    Ok(EndpointValue {
        host,
        port,
        tls: None,
        username: None,
        has_password: false,
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
            let Some(parsed) = self.ssm_endpoint(&name, true).await? else {
                warnings.push(format!("ssm {name}: not found (cache `{}`)", ssm.name));
                return Ok(None);
            };
            let parts = match parsed {
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
                endpoint: Endpoint::new(
                    parts.host,
                    parts.port.unwrap_or(6379),
                    parts.tls.unwrap_or(true),
                ),
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
        let Some(parsed) = self.ssm_endpoint(&endpoint_name, false).await? else {
            warnings.push(format!(
                "ssm {endpoint_name}: not found (cache `{}`)",
                ssm.name
            ));
            return Ok(None);
        };
        // A host, "host:port", or a whole URL: some stacks publish the URL here.
        let value = match parsed {
            Ok(v) => v,
            Err(why) => {
                warnings.push(format!("ssm {endpoint_name}: {why} (cache `{}`)", ssm.name));
                return Ok(None);
            }
        };
        let inline_port = value.port;
        let host = value.host;
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
        let username = value.username.or(username);
        Ok(Some(SsmTarget {
            name: ssm.name.clone(),
            endpoint: Endpoint::new(host, port, value.tls.unwrap_or(ssm.tls)),
            auth: auth_mode(
                value.has_password || password.is_some(),
                username.as_deref(),
            ),
            credentials: Credentials {
                username,
                password,
                // A URL with a password: its parameter is where the secret is read from.
                url_parameter: value.has_password.then(|| endpoint_name.clone()),
                ca_file: None,
            },
            note: if value.tls.is_some() {
                format!("URL in SSM endpoint parameter {endpoint_name}")
            } else {
                format!("endpoint from SSM {endpoint_name}")
            },
        }))
    }
}

impl AwsControlPlane {
    /// What a parameter naming a cache says (host, port, TLS, user; never the secret):
    /// a URL (`url`) or an endpoint value. A SecureString is decrypted only when its version
    /// changed since the last discovery; its plain text is dropped as soon as it is parsed.
    async fn ssm_endpoint(
        &self,
        name: &str,
        url: bool,
    ) -> Result<Option<Result<EndpointValue, String>>, ControlPlaneError> {
        let parse = |text: &str| {
            if url {
                parse_cache_url(text).map(EndpointValue::from)
            } else {
                parse_endpoint_value(text)
            }
        };
        let Some(head) = self.ssm_get_as(name, false).await? else {
            return Ok(None);
        };
        if head.kind != ParameterType::SecureString {
            return Ok(Some(parse(head.value.expose())));
        }
        let key = format!("{}{name}", if url { "url:" } else { "endpoint:" });
        if let Some(parsed) = self.memo.secure(&key, head.version) {
            return Ok(Some(parsed));
        }
        let Some(full) = self.ssm_get(name).await? else {
            return Ok(None);
        };
        let parsed = parse(full.value.expose());
        self.memo.keep_secure(&key, full.version, parsed.clone());
        Ok(Some(parsed))
    }
}

impl From<UrlParts> for EndpointValue {
    fn from(parts: UrlParts) -> EndpointValue {
        EndpointValue {
            host: parts.host,
            port: Some(parts.port),
            tls: Some(parts.tls),
            username: parts.username,
            has_password: parts.has_password,
        }
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
    fn endpoint_parameters_hold_hosts_host_ports_or_urls() {
        let v =
            parse_endpoint_value("rediss://app:s3cr3t@sf.cache.amazonaws.com:6380").expect("a URL");
        assert_eq!(
            (v.host.as_str(), v.port, v.tls, v.has_password),
            ("sf.cache.amazonaws.com", Some(6380), Some(true), true)
        );
        assert_eq!(v.username.as_deref(), Some("app"));
        let v = parse_endpoint_value("redis://10.0.0.5").expect("plain URL");
        assert_eq!((v.port, v.tls), (Some(6379), Some(false)));
        let v = parse_endpoint_value(" master.x.cache.amazonaws.com:6380\n").expect("host:port");
        assert_eq!(
            (v.host.as_str(), v.port, v.tls),
            ("master.x.cache.amazonaws.com", Some(6380), None)
        );
        let v = parse_endpoint_value("[fd00::5]:7000").expect("v6");
        assert_eq!((v.host.as_str(), v.port), ("fd00::5", Some(7000)));
        assert_eq!(
            parse_endpoint_value("fd00::5").expect("bare v6").host,
            "fd00::5"
        );
        let err = parse_endpoint_value("host:s3cr3t").expect_err("not a port");
        assert!(!err.contains("s3cr3t"), "{err}");
        assert!(parse_endpoint_value("http://:s3cr3t@h:1").is_err());
        assert!(parse_endpoint_value("a host with spaces").is_err());
        assert!(parse_endpoint_value("  ").is_err());
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
