//! The estate: every environment the user has, each with its control plane, and discovery of
//! all of them at once. The one place that turns config into live control planes.
//!
//! Environments come from the config file, or — with none — from the user's AWS profiles;
//! the sandbox's environments join while it is up. Discovery runs every environment
//! concurrently under its own deadline, so one broken profile never hides the others.

mod local;
mod planes;
mod statics;

pub use local::LocalControlPlane;

pub use planes::default_factory;

pub use statics::static_caches;

use crate::config::{self, Config, ConfigError, EnvConfig, Settings};
use crate::controlplane::{ControlPlane, ControlPlaneError, Discovery};
use crate::domain::{Cache, Environment};
use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Builds the control plane of one environment.
pub type PlaneFactory = Arc<
    dyn Fn(
            String,
            EnvConfig,
            Settings,
        ) -> BoxFuture<'static, Result<Arc<dyn ControlPlane>, ControlPlaneError>>
        + Send
        + Sync,
>;

/// Why the estate (or a part of it the user named) could not be had.
#[derive(Debug, thiserror::Error)]
pub enum EstateError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "config file {0} does not exist; create it (see assets/config.example.toml) or drop --config/CACHEDECK_CONFIG"
    )]
    MissingConfig(PathBuf),
    #[error("unknown environment `{name}`; known: {known}")]
    UnknownEnv { name: String, known: String },
    #[error("environment `{env}`: {source}")]
    Plane {
        env: String,
        source: ControlPlaneError,
    },
    #[error("no cache `{cache}` in environment `{env}`; it has: {known}")]
    UnknownCache {
        env: String,
        cache: String,
        known: String,
    },
}

/// One environment with its control plane (or the reason it has none).
pub struct EnvHandle {
    pub env: Environment,
    pub config: EnvConfig,
    pub plane: Result<Arc<dyn ControlPlane>, ControlPlaneError>,
}

/// What discovery found in one environment.
pub struct EnvDiscovery {
    pub env: Environment,
    pub result: Result<Discovery, ControlPlaneError>,
}

/// Every environment the user has.
pub struct Estate {
    pub settings: Settings,
    pub envs: Vec<EnvHandle>,
}

impl Estate {
    /// The user's estate with the real control planes.
    pub async fn load(config_flag: Option<PathBuf>) -> Result<Estate, EstateError> {
        Estate::load_with(
            config_flag,
            crate::sandbox::environments(),
            default_factory(),
        )
        .await
    }

    /// Reads the config (or implies environments), then builds each control plane with
    /// `factory`, concurrently. `sandbox_envs` are the sandbox's environments while it is up.
    pub async fn load_with(
        config_flag: Option<PathBuf>,
        sandbox_envs: BTreeMap<String, EnvConfig>,
        factory: PlaneFactory,
    ) -> Result<Estate, EstateError> {
        let (path, named) = config::config_path(config_flag);
        let (settings, configs, source) = if path.exists() {
            let config = Config::load(&path)?;
            let mut envs = config.environments;
            for (name, env) in sandbox_envs {
                envs.entry(name).or_insert(env);
            }
            (config.settings, envs, path.display().to_string())
        } else if named {
            return Err(EstateError::MissingConfig(path));
        } else {
            let envs = config::implied_environments(sandbox_envs).await;
            (Settings::default(), envs, "implied".to_string())
        };
        let builds = configs.into_iter().map(|(name, cfg)| {
            let factory = factory.clone();
            let settings = settings.clone();
            let source = implied_source(&cfg, &source);
            async move {
                let mut env = cfg.environment(&name, &source);
                let deadline = settings.call_timeout;
                let plane = crate::controlplane::with_timeout(
                    "loading AWS configuration",
                    deadline,
                    factory(name, cfg.clone(), settings),
                )
                .await;
                let plane = match plane {
                    Ok(plane) => pin_account(&mut env, &cfg, plane, deadline).await,
                    Err(e) => Err(e),
                };
                EnvHandle {
                    env,
                    config: cfg,
                    plane,
                }
            }
        });
        let envs = futures::future::join_all(builds).await;
        Ok(Estate { settings, envs })
    }

    /// The named environment, or an error listing the known ones.
    pub fn env(&self, name: &str) -> Result<&EnvHandle, EstateError> {
        self.envs
            .iter()
            .find(|e| e.env.name == name)
            .ok_or_else(|| EstateError::UnknownEnv {
                name: name.to_string(),
                known: self.known_envs(),
            })
    }

    fn known_envs(&self) -> String {
        if self.envs.is_empty() {
            return "none (run `cachedeck sandbox up`, or write a config file)".into();
        }
        self.envs
            .iter()
            .map(|e| e.env.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The named environment's control plane.
    pub fn plane(&self, env: &str) -> Result<Arc<dyn ControlPlane>, EstateError> {
        let handle = self.env(env)?;
        handle.plane.clone().map_err(|source| EstateError::Plane {
            env: env.to_string(),
            source,
        })
    }

    /// The control plane for a cache of `env`: the environment's own, or — for a static
    /// cache of an environment whose AWS side is unusable (but not refused for the wrong
    /// account) — one that makes no AWS call.
    fn plane_for(
        &self,
        handle: &EnvHandle,
        cache: &Cache,
    ) -> Result<Arc<dyn ControlPlane>, EstateError> {
        match &handle.plane {
            Ok(plane) => Ok(plane.clone()),
            Err(e)
                if cache.kind == crate::domain::CacheKind::Endpoint
                    && usable_without_aws(e)
                    && handle.config.caches.iter().any(|c| c.name == cache.name) =>
            {
                Ok(Arc::new(LocalControlPlane::new(
                    &handle.env.name,
                    &handle.config,
                    &self.settings,
                )))
            }
            Err(source) => Err(EstateError::Plane {
                env: handle.env.name.clone(),
                source: source.clone(),
            }),
        }
    }

    /// Discovers every environment concurrently (or only `only`), each under its own
    /// deadline; environments come back in name order.
    pub async fn discover_all(&self, only: Option<&str>) -> Vec<EnvDiscovery> {
        let deadline = self.discovery_deadline();
        let runs = self
            .envs
            .iter()
            .filter(|h| only.is_none_or(|name| h.env.name == name))
            .map(|handle| async move {
                EnvDiscovery {
                    env: handle.env.clone(),
                    result: discover_one(handle, deadline).await,
                }
            });
        futures::future::join_all(runs).await
    }

    /// One cache by environment and name.
    pub async fn find_cache(
        &self,
        env: &str,
        cache: &str,
    ) -> Result<(Arc<dyn ControlPlane>, Cache), EstateError> {
        let handle = self.env(env)?;
        let (discovery, failure) = discover_one_detailed(handle, self.discovery_deadline())
            .await
            .map_err(|source| EstateError::Plane {
                env: env.to_string(),
                source,
            })?;
        if let Some(source) = failure
            && !discovery.caches.iter().any(|c| c.name == cache)
        {
            // The cache may well exist in AWS: say why it could not be looked for.
            return Err(EstateError::Plane {
                env: env.to_string(),
                source,
            });
        }
        let known = discovery
            .caches
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let found = discovery
            .caches
            .into_iter()
            .find(|c| c.name == cache)
            .ok_or_else(|| EstateError::UnknownCache {
                env: env.to_string(),
                cache: cache.to_string(),
                known: if known.is_empty() {
                    "no caches".into()
                } else {
                    known
                },
            })?;
        let plane = self.plane_for(handle, &found)?;
        Ok((plane, found))
    }

    /// A discovery pass makes several paginated calls; give it a few call deadlines.
    fn discovery_deadline(&self) -> Duration {
        self.settings.call_timeout * 3
    }
}

fn implied_source(cfg: &EnvConfig, source: &str) -> String {
    match (cfg.provider, source) {
        (crate::domain::ProviderKind::Sandbox, _) => "sandbox".into(),
        (_, "implied") => "aws config".into(),
        (_, file) => file.into(),
    }
}

/// Resolves who the environment's credentials are (recorded in `env.account`) and, when
/// the config pins `account_id`, refuses the whole environment unless they match: the
/// plane becomes the one-line error every call of the environment then reports.
async fn pin_account(
    env: &mut Environment,
    cfg: &EnvConfig,
    plane: Arc<dyn ControlPlane>,
    deadline: Duration,
) -> Result<Arc<dyn ControlPlane>, ControlPlaneError> {
    if env.region.is_none() {
        // The region the plane resolved (e.g. the profile's): part of what names locks.
        env.region = plane.environment().region.clone();
    }
    if cfg.provider == crate::domain::ProviderKind::Static {
        return Ok(plane);
    }
    let identity =
        crate::controlplane::with_timeout("GetCallerIdentity", deadline, plane.caller_identity())
            .await;
    match (identity, &cfg.account_id) {
        (Ok(account), Some(pinned)) if &account.id != pinned => {
            let actual = account.id.clone();
            env.account = Some(account);
            Err(ControlPlaneError::AccountMismatch {
                credentials: match &cfg.profile {
                    Some(p) => format!("profile {p}"),
                    None => match cfg.provider {
                        crate::domain::ProviderKind::Sandbox => "the sandbox".to_string(),
                        _ => "the default credentials".to_string(),
                    },
                },
                actual,
                pinned: pinned.clone(),
            })
        }
        (Ok(account), _) => {
            env.account = Some(account);
            Ok(plane)
        }
        // A pinned environment whose account cannot be told is not used.
        (Err(e), Some(_)) => Err(e),
        (Err(e), None) => {
            tracing::debug!(env = %env.name, error = %e, "caller identity unknown");
            Ok(plane)
        }
    }
}

/// Whether an environment that failed this way may still use its static caches (they need
/// no AWS): not when it was refused for resolving to the wrong account.
fn usable_without_aws(e: &ControlPlaneError) -> bool {
    !matches!(e, ControlPlaneError::AccountMismatch { .. })
}

async fn discover_one(
    handle: &EnvHandle,
    deadline: Duration,
) -> Result<Discovery, ControlPlaneError> {
    discover_one_detailed(handle, deadline)
        .await
        .map(|(d, _)| d)
}

/// Discovery of one environment, with the control plane's failure when only the static
/// caches could be listed (so a cache that is not among them is reported as that failure,
/// not as "no such cache").
async fn discover_one_detailed(
    handle: &EnvHandle,
    deadline: Duration,
) -> Result<(Discovery, Option<ControlPlaneError>), ControlPlaneError> {
    let statics = static_caches(&handle.env, &handle.config);
    let found = match handle.plane.clone() {
        Ok(plane) => {
            crate::controlplane::with_timeout("discovery", deadline, plane.discover()).await
        }
        Err(e) => Err(e),
    };
    let (mut discovery, failure) = match found {
        Ok(d) => (d, None),
        // Caches known by URL need no AWS: they stay usable, the error is shown beside them.
        Err(e) if !statics.is_empty() && usable_without_aws(&e) => (
            Discovery {
                caches: Vec::new(),
                warnings: vec![format!(
                    "discovery failed: {e}; showing the static caches only"
                )],
            },
            Some(e),
        ),
        Err(e) => return Err(e),
    };
    discovery.caches.extend(statics);
    discovery.caches.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((discovery, failure))
}
