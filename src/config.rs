//! The environments file: serde types, where it lives (XDG), and errors that point at
//! file:line:col with a fix.
//!
//! With no file, environments are implied: the sandbox's while it is up, and one per profile
//! of the user's AWS config (see [`implied`]).

pub(crate) mod hint;
mod implied;
mod paths;

pub use implied::{aws_profile_environments, implied_environments};
pub use paths::{config_dir, config_path, data_dir, state_dir};

use crate::domain::{CacheKind, Environment, Protection, ProviderKind};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole config file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub settings: Settings,
    #[serde(default)]
    pub environments: BTreeMap<String, EnvConfig>,
}

/// Global knobs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Deadline of one control-plane call.
    #[serde(with = "humantime_serde")]
    pub call_timeout: Duration,
    /// Deadline of one Valkey connection attempt or command.
    #[serde(with = "humantime_serde")]
    pub valkey_timeout: Duration,
    /// How often live stats poll INFO.
    #[serde(with = "humantime_serde")]
    pub stats_interval: Duration,
    /// How often the control plane is polled for status and events.
    #[serde(with = "humantime_serde")]
    pub control_plane_interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            call_timeout: crate::controlplane::DEFAULT_CALL_TIMEOUT,
            valkey_timeout: Duration::from_secs(3),
            stats_interval: Duration::from_secs(1),
            control_plane_interval: Duration::from_secs(15),
        }
    }
}

/// One environment as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvConfig {
    pub provider: ProviderKind,
    /// AWS profile (provider `aws`); the default credential chain when absent.
    pub profile: Option<String>,
    pub region: Option<String>,
    /// Send AWS calls here instead of the real service (e.g. a local moto server).
    pub endpoint_url: Option<String>,
    /// The AWS account the credentials must resolve to (12 digits); every call of the
    /// environment is refused when they resolve to another.
    pub account_id: Option<String>,
    #[serde(default)]
    pub protection: Protection,
    /// Values for `{name}` placeholders in SSM path templates; `env` defaults to the
    /// environment's name.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    #[serde(default)]
    pub discovery: DiscoveryFilter,
    /// Caches named by SSM parameters.
    #[serde(default)]
    pub ssm: Vec<SsmCache>,
    /// Self-managed Valkey running as ECS services.
    #[serde(default)]
    pub ecs: Vec<EcsConfig>,
    /// Caches known only by URL.
    #[serde(default)]
    pub caches: Vec<StaticCache>,
    /// ECS services that use a cache, named by hand (besides those found from task
    /// definitions).
    #[serde(default)]
    pub consumers: Vec<ConsumerConfig>,
}

/// An ECS service that uses a cache.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerConfig {
    /// The cache it uses (as `cachedeck caches` names it).
    pub cache: String,
    pub cluster: String,
    pub service: String,
    /// The container to exec into; the only one when absent.
    pub container: Option<String>,
}

/// Which discovered caches an environment keeps.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryFilter {
    /// Keep caches whose id starts with one of these (all when empty).
    #[serde(default)]
    pub name_prefixes: Vec<String>,
    /// Keep caches carrying all of these tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Only look for these kinds (all when empty).
    #[serde(default)]
    pub kinds: Vec<CacheKind>,
}

impl DiscoveryFilter {
    /// Whether a cache id passes the name prefixes.
    pub fn keeps_name(&self, id: &str) -> bool {
        self.name_prefixes.is_empty() || self.name_prefixes.iter().any(|p| id.starts_with(p))
    }

    /// Whether discovery should look for this kind at all.
    pub fn wants(&self, kind: CacheKind) -> bool {
        self.kinds.is_empty() || self.kinds.contains(&kind)
    }
}

/// A cache whose address lives in SSM parameters, as the seeds keep them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsmCache {
    /// Display name of the cache.
    pub name: String,
    /// Parameter holding the host (e.g. `/storefront-{env}/redis/endpoint`).
    pub endpoint: Option<String>,
    /// Parameter holding the port; 6379 when absent.
    pub port: Option<String>,
    /// SecureString parameter holding a whole `redis://` / `rediss://` URL.
    pub url: Option<String>,
    /// SecureString parameter holding the AUTH token or ACL password.
    pub auth: Option<String>,
    /// ACL/RBAC user name.
    pub username: Option<String>,
    /// Whether the endpoint speaks TLS (a `url` parameter decides by its scheme).
    #[serde(default = "yes")]
    pub tls: bool,
}

fn yes() -> bool {
    true
}

/// ECS services running self-managed Valkey.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EcsConfig {
    pub cluster: String,
    /// Service names; every service of the cluster whose name contains "valkey" or "redis"
    /// when empty.
    #[serde(default)]
    pub services: Vec<String>,
    /// The container running valkey-server (for ECS Exec).
    pub container: Option<String>,
    /// The address clients use (service discovery name, e.g. `valkey.orders.local`).
    pub host: Option<String>,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default)]
    pub tls: bool,
}

fn default_port() -> u16 {
    6379
}

/// A cache given by URL; credentials are referenced, never inline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticCache {
    pub name: String,
    /// `redis://host:port` or `rediss://host:port`, with no password in it.
    pub url: String,
    pub username: Option<String>,
    /// Where the password lives: `{ env = "VAR" }` or `{ ssm = "/path" }`.
    pub password: Option<PasswordRef>,
    /// PEM file of CA certificates to trust.
    pub ca_file: Option<PathBuf>,
}

/// A reference to a password.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum PasswordRef {
    Env(String),
    Ssm(String),
}

/// A config file that could not be used, with where and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}\n  fix: {hint}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
        hint: String,
    },
}

impl Config {
    /// Loads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(path, &text)
    }

    /// Parses and validates config text; `path` is only used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            let message = e.message().trim().to_string();
            invalid(
                path,
                text,
                offset,
                hint::hint_for(&message, &HINTS),
                message,
            )
        })?;
        config.validate(path, text)?;
        Ok(config)
    }

    fn validate(&self, path: &Path, text: &str) -> Result<(), ConfigError> {
        for (name, env) in &self.environments {
            let at = locate(text, &format!("[environments.{name}"));
            if env.provider == ProviderKind::Sandbox
                && (env.profile.is_some() || env.endpoint_url.is_some())
            {
                return Err(invalid(
                    path,
                    text,
                    at,
                    "remove `profile`/`endpoint_url`, or set provider = \"aws\"".into(),
                    format!("environment `{name}` uses provider sandbox but sets AWS options"),
                ));
            }
            if let Some(id) = &env.account_id
                && (id.len() != 12 || !id.bytes().all(|b| b.is_ascii_digit()))
            {
                return Err(invalid(
                    path,
                    text,
                    locate_value(text, &at_env(text, name), "account_id"),
                    "write the 12-digit account id in quotes, e.g. account_id = \"123456789012\""
                        .into(),
                    format!(
                        "environment `{name}`: account_id `{id}` is not a 12-digit AWS account id"
                    ),
                ));
            }
            if env.provider == ProviderKind::Static {
                let aws_only = [
                    ("profile", env.profile.is_some()),
                    ("region", env.region.is_some()),
                    ("endpoint_url", env.endpoint_url.is_some()),
                    ("account_id", env.account_id.is_some()),
                    ("ssm", !env.ssm.is_empty()),
                    ("ecs", !env.ecs.is_empty()),
                ];
                if let Some((field, _)) = aws_only.iter().find(|(_, set)| *set) {
                    return Err(invalid(
                        path,
                        text,
                        locate_value(text, &at_env(text, name), field),
                        format!("remove `{field}`, or set provider = \"aws\""),
                        format!(
                            "environment `{name}` uses provider static (no AWS calls) but sets `{field}`"
                        ),
                    ));
                }
                if let Some(cache) = env
                    .caches
                    .iter()
                    .find(|c| matches!(c.password, Some(PasswordRef::Ssm(_))))
                {
                    return Err(invalid(
                        path,
                        text,
                        locate(text, &cache.name),
                        "use `password = { env = \"VAR\" }`, or set provider = \"aws\" for SSM"
                            .into(),
                        format!(
                            "cache `{}` in `{name}`: a static environment makes no AWS calls, so its password cannot come from SSM",
                            cache.name
                        ),
                    ));
                }
            }
            if let Some(url) = &env.endpoint_url
                && url::Url::parse(url).is_err()
            {
                return Err(invalid(
                    path,
                    text,
                    locate(text, url),
                    "write a full URL such as http://127.0.0.1:5000".into(),
                    format!("environment `{name}`: endpoint_url `{url}` is not a URL"),
                ));
            }
            for ssm in &env.ssm {
                if ssm.endpoint.is_none() && ssm.url.is_none() {
                    return Err(invalid(
                        path,
                        text,
                        locate(text, &ssm.name),
                        "add `endpoint = \"/app-{env}/redis/endpoint\"` or `url = \"/app/{env}/redis/url\"`".into(),
                        format!("ssm cache `{}` in `{name}` names neither an endpoint nor a url parameter", ssm.name),
                    ));
                }
                for template in [&ssm.endpoint, &ssm.port, &ssm.url, &ssm.auth]
                    .into_iter()
                    .flatten()
                {
                    if let Err(var) = expand_template(template, &env.template_vars(name)) {
                        return Err(invalid(
                            path,
                            text,
                            locate(text, template),
                            format!("add `{var} = \"...\"` under [environments.{name}.vars]"),
                            format!("unknown placeholder `{{{var}}}` in `{template}`"),
                        ));
                    }
                }
            }
            for cache in &env.caches {
                check_static_url(path, text, name, cache)?;
            }
        }
        Ok(())
    }

    /// The environments this file defines, in name order.
    pub fn environments(&self, source: &Path) -> Vec<Environment> {
        self.environments
            .iter()
            .map(|(name, env)| env.environment(name, &source.display().to_string()))
            .collect()
    }
}

impl EnvConfig {
    /// A bare environment config for `provider`, as implied environments use.
    pub fn implied(provider: ProviderKind, protection: Protection) -> EnvConfig {
        EnvConfig {
            provider,
            profile: None,
            region: None,
            endpoint_url: None,
            account_id: None,
            protection,
            vars: BTreeMap::new(),
            discovery: DiscoveryFilter::default(),
            ssm: Vec::new(),
            ecs: Vec::new(),
            caches: Vec::new(),
            consumers: Vec::new(),
        }
    }

    /// The domain view of this environment.
    pub fn environment(&self, name: &str, source: &str) -> Environment {
        Environment {
            name: name.to_string(),
            provider: self.provider,
            protection: self.protection,
            profile: self.profile.clone(),
            region: self.region.clone(),
            endpoint_url: self.endpoint_url.clone(),
            source: source.to_string(),
            account: None,
        }
    }

    /// Template variables with `env` defaulting to the environment name.
    pub fn template_vars(&self, env_name: &str) -> BTreeMap<String, String> {
        let mut vars = self.vars.clone();
        vars.entry("env".into())
            .or_insert_with(|| env_name.to_string());
        vars
    }
}

/// Expands `{var}` placeholders; `Err(var)` names the first unknown one.
pub fn expand_template(template: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err(after.to_string());
        };
        let var = &after[..close];
        match vars.get(var) {
            Some(value) => out.push_str(value),
            None => return Err(var.to_string()),
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn check_static_url(
    path: &Path,
    text: &str,
    env: &str,
    cache: &StaticCache,
) -> Result<(), ConfigError> {
    let at = locate(text, &cache.url);
    let parsed = url::Url::parse(&cache.url).map_err(|e| {
        invalid(
            path,
            text,
            at,
            "write it as redis://host:6379 or rediss://host:6379".into(),
            format!("cache `{}` in `{env}`: url is not valid ({e})", cache.name),
        )
    })?;
    if !matches!(parsed.scheme(), "redis" | "rediss" | "valkey" | "valkeys") {
        return Err(invalid(
            path,
            text,
            at,
            "use the redis:// (plain) or rediss:// (TLS) scheme".into(),
            format!(
                "cache `{}` in `{env}`: scheme `{}` is not a Valkey/Redis URL",
                cache.name,
                parsed.scheme()
            ),
        ));
    }
    if parsed.password().is_some() {
        // Never echo the URL here: it holds the secret.
        return Err(invalid(
            path,
            text,
            at,
            "remove the password from the URL and add `password = { env = \"VAR\" }` or `password = { ssm = \"/path\" }`".into(),
            format!("cache `{}` in `{env}`: the url has a password inline", cache.name),
        ));
    }
    if parsed.host_str().is_none() {
        return Err(invalid(
            path,
            text,
            at,
            "write it as redis://host:6379".into(),
            format!("cache `{}` in `{env}`: the url has no host", cache.name),
        ));
    }
    Ok(())
}

/// Byte offset of the first occurrence of `needle`, or 0.
fn locate(text: &str, needle: &str) -> usize {
    text.find(needle).unwrap_or(0)
}

/// Byte offset of environment `name`'s table header (or 0).
fn at_env(text: &str, name: &str) -> usize {
    let header = format!("[environments.{name}]");
    text.find(&header)
        .or_else(|| text.find(&format!("[environments.{name}")))
        .unwrap_or(0)
}

/// Byte offset of the value of `key = …` at or after `from` (or `from`).
fn locate_value(text: &str, from: &usize, key: &str) -> usize {
    let rest = text.get(*from..).unwrap_or_default();
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if let Some(after) = trimmed.strip_prefix(key)
            && after.trim_start().starts_with('=')
        {
            let indent = line.len() - trimmed.len();
            let eq = after.find('=').unwrap_or(0);
            let value = after[eq + 1..].len() - after[eq + 1..].trim_start().len();
            return from + offset + indent + key.len() + eq + 1 + value;
        }
        offset += line.len();
    }
    *from
}

fn invalid(path: &Path, text: &str, offset: usize, hint: String, message: String) -> ConfigError {
    let (line, column) = line_col(text, offset);
    ConfigError::Invalid {
        path: path.to_path_buf(),
        line,
        column,
        // Messages quote the file's text (e.g. an unknown variant): escaped, line by line.
        message: crate::escape::escape_lines(&message),
        hint: crate::escape::escape_lines(&hint),
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// The config file's hints (see [`hint::hint_for`]).
const HINTS: hint::Hints = hint::Hints {
    doc: "assets/config.example.toml",
    otherwise: "see assets/config.example.toml for a working file",
    special: &[
        (
            "expected a duration",
            "write a duration such as \"500ms\", \"20s\" or \"1m30s\"",
        ),
        (
            "missing field `provider`",
            "add `provider = \"aws\"` (with profile/region), `provider = \"static\"` (caches by URL only) or `provider = \"sandbox\"`",
        ),
    ],
};

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("cfg.toml"), text)
    }

    #[test]
    fn templates_expand_and_name_unknown_placeholders() {
        let mut vars = BTreeMap::new();
        vars.insert("env".to_string(), "dev".to_string());
        assert_eq!(
            expand_template("/storefront-{env}/redis/endpoint", &vars),
            Ok("/storefront-dev/redis/endpoint".to_string())
        );
        assert_eq!(
            expand_template("/{app}/{env}/redis/url", &vars),
            Err("app".to_string())
        );
    }

    #[test]
    fn unknown_field_points_at_line_and_column() {
        let err = parse("[environments.dev]\nprovider = \"aws\"\nregoin = \"us-east-1\"\n")
            .expect_err("must fail");
        let text = err.to_string();
        assert!(
            text.starts_with("cfg.toml:3:1: unknown field `regoin`"),
            "{text}"
        );
        assert!(text.contains("fix: remove the field"), "{text}");
    }

    #[test]
    fn inline_password_is_refused_without_echoing_it() {
        let err = parse(
            "[environments.dev]\nprovider = \"aws\"\n[[environments.dev.caches]]\nname = \"x\"\nurl = \"rediss://:s3cretTok3n@h:6379\"\n",
        )
        .expect_err("must fail");
        let text = err.to_string();
        assert!(text.contains("cfg.toml:5:8"), "{text}");
        assert!(text.contains("password inline"), "{text}");
        assert!(!text.contains("s3cretTok3n"), "{text}");
    }

    #[test]
    fn account_id_must_be_twelve_digits_and_points_at_its_value() {
        let err = parse(
            "[environments.staging]\nprovider = \"aws\"\nprofile = \"staging\"\naccount_id = \"1234\"\n",
        )
        .expect_err("must fail");
        let text = err.to_string();
        assert!(
            text.starts_with("cfg.toml:4:14: environment `staging`: account_id `1234` is not a 12-digit AWS account id"),
            "{text}"
        );
        let ok =
            parse("[environments.staging]\nprovider = \"aws\"\naccount_id = \"123456789012\"\n")
                .expect("valid");
        assert_eq!(
            ok.environments["staging"].account_id.as_deref(),
            Some("123456789012")
        );
    }

    #[test]
    fn static_environments_refuse_aws_settings() {
        let err = parse("[environments.bastion]\nprovider = \"static\"\nregion = \"eu-west-1\"\n")
            .expect_err("must fail");
        assert!(
            err.to_string()
                .starts_with("cfg.toml:3:10: environment `bastion` uses provider static (no AWS calls) but sets `region`"),
            "{err}"
        );
        let err = parse(
            "[environments.bastion]\nprovider = \"static\"\n[[environments.bastion.caches]]\nname = \"old\"\nurl = \"redis://10.0.0.5:6379\"\npassword = { ssm = \"/old/pw\" }\n",
        )
        .expect_err("must fail");
        assert!(err.to_string().contains("cannot come from SSM"), "{err}");
        let ok = parse(
            "[environments.bastion]\nprovider = \"static\"\n[[environments.bastion.caches]]\nname = \"old\"\nurl = \"redis://10.0.0.5:6379\"\npassword = { env = \"OLD_PW\" }\n",
        )
        .expect("valid");
        assert_eq!(ok.environments["bastion"].provider, ProviderKind::Static);
    }

    #[test]
    fn env_var_defaults_to_environment_name() {
        let config = parse(
            "[environments.storefront-dev]\nprovider = \"aws\"\nvars = { env = \"dev\" }\n[[environments.storefront-dev.ssm]]\nname = \"storefront\"\nendpoint = \"/storefront-{env}/redis/endpoint\"\n",
        )
        .expect("valid");
        let env = &config.environments["storefront-dev"];
        assert_eq!(env.template_vars("storefront-dev")["env"], "dev");
        assert_eq!(env.protection, Protection::Confirm);
    }
}
