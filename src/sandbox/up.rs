//! `cachedeck sandbox up` and `down`: start every process of the layout (recording each in
//! the state file as soon as it runs, so `down` can clean up after a failed `up`), form the
//! cluster, start the endpoint daemon, publish parameters, seed data; and stop it all again.

use super::client::NodeAuth;
use super::layout;
use super::params::{ParamStore, put_value};
use super::seed::{self, Target};
use super::setup::{SandboxError, UpOptions, lock, make_private_dir};
use super::state::{EnvState, State};
use super::tls;
use crate::domain::{AuthMode, NodeRole};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What `up` did.
#[derive(Debug, Clone)]
pub struct UpReport {
    pub already_up: bool,
    /// Processes that were dead and were started again.
    pub repaired: Vec<String>,
    pub processes: usize,
    pub seeded_keys: u64,
    pub elapsed: Duration,
    pub dir: PathBuf,
}

/// Starts the sandbox (idempotent: an intact running sandbox is left as it is).
pub async fn up(opts: &UpOptions) -> Result<UpReport, SandboxError> {
    let started = Instant::now();
    let dir = opts.dir.clone();
    let _lock = lock(&dir).await?;
    if let Some(state) = State::load(&dir)? {
        let down: Vec<String> = super::status::processes(&state)
            .into_iter()
            .filter(|p| !p.alive)
            .map(|p| format!("{} {}", p.cache, p.node))
            .collect();
        let mut state = state;
        let repaired = if down.is_empty() {
            Vec::new()
        } else {
            super::repair::repair(opts, &mut state).await?
        };
        // A restarted replica resyncs: return once it has caught up.
        steady(&dir, &state).await?;
        return Ok(UpReport {
            already_up: true,
            repaired,
            processes: super::status::processes(&state).len(),
            seeded_keys: state.seeded_keys,
            elapsed: started.elapsed(),
            dir,
        });
    }
    let result = build(opts, started).await;
    if result.is_err() {
        // Leave nothing half-started behind.
        let _ = super::down::down_locked(&dir).await;
    }
    result
}

async fn build(opts: &UpOptions, started: Instant) -> Result<UpReport, SandboxError> {
    let dir = &opts.dir;
    make_private_dir(dir)?;
    let binary = crate::valkey::binary::find()?;
    let ca_file = tls::generate(&dir.join("tls"))?;
    let params = ParamStore::new(dir);
    let mut state = State {
        created: time::OffsetDateTime::now_utc(),
        ca_file: ca_file.clone(),
        engine: binary.engine.clone(),
        engine_version: binary.version.clone(),
        environments: layout::environments()
            .iter()
            .map(|(name, protection)| EnvState {
                name: name.to_string(),
                protection: *protection,
            })
            .collect(),
        caches: Vec::new(),
        daemon: None,
        proxies: Vec::new(),
        seeded_keys: 0,
        consumers: Vec::new(),
    };
    state.save(dir)?;

    for plan in layout::caches() {
        let cache = super::nodes::start_cache(dir, &plan, &params, &mut state).await?;
        state.caches.push(cache);
        state.save(dir)?;
    }
    // Endpoint ports are picked free but bound later by the daemon; if another process took
    // one meanwhile, pick again.
    let mut attempt = 0;
    loop {
        super::daemon::assign_endpoints(&mut state)?;
        match super::daemon::spawn_daemon(opts, &mut state).await {
            Ok(()) => break,
            Err(e) if attempt < 2 => {
                tracing::warn!(error = %e, "endpoint daemon did not start; trying other ports");
                super::daemon::stop_failed(&mut state);
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
    publish_parameters(&params, &mut state)?;
    state.save(dir)?;

    // Caches are seeded concurrently: each is its own server(s), so they do not contend.
    let mut jobs = Vec::new();
    for (i, plan) in layout::caches().into_iter().enumerate() {
        let Some(cache) = state.cache(plan.env, plan.name) else {
            continue;
        };
        let keys = opts.keys * plan.weight / 100;
        let targets: Vec<Target> = cache
            .shards
            .iter()
            .filter_map(|s| {
                let primary = s
                    .nodes
                    .iter()
                    .find(|n| n.initial_role == NodeRole::Primary)?;
                Some(Target {
                    port: primary.port,
                    slots: s.slots.as_deref().and_then(parse_range),
                })
            })
            .collect();
        let auth = NodeAuth::of(cache, &params);
        jobs.push(async move {
            seed::seed(&targets, &auth, plan.profile, keys, 2026 + i as u64)
                .await
                .map_err(|detail| SandboxError::Setup {
                    cache: format!("{}/{}", plan.env, plan.name),
                    detail: format!("seeding failed: {detail}"),
                    dir: dir.clone(),
                })
        });
    }
    let seeded: u64 = futures::future::try_join_all(jobs).await?.into_iter().sum();
    state.seeded_keys = seeded;
    state.save(dir)?;
    steady(dir, &state).await?;
    // The applications start last, on seeded, steady caches, as their tasks would.
    for mut c in super::consumer::plans(&state) {
        super::consumer::start_task(dir, &opts.exe, &params, &mut c)?;
        state.consumers.push(c);
        state.save(dir)?;
    }
    Ok(UpReport {
        already_up: false,
        repaired: Vec::new(),
        processes: super::status::processes(&state).len(),
        seeded_keys: seeded,
        elapsed: started.elapsed(),
        dir: dir.clone(),
    })
}

/// Waits until every replica is online and caught up with its primary (the seed data, or a
/// restarted node's resync), so what runs next meets a steady estate.
async fn steady(dir: &std::path::Path, state: &State) -> Result<(), SandboxError> {
    let params = ParamStore::new(dir);
    super::steady::wait(state, &params, super::steady::STEADY_DEADLINE)
        .await
        .map_err(|detail| SandboxError::Setup {
            cache: "replication".into(),
            detail,
            dir: dir.to_path_buf(),
        })
}

fn parse_range(text: &str) -> Option<(u16, u16)> {
    let (a, b) = text.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Seed-style parameters: endpoints (plain) and URLs (SecureString).
fn publish_parameters(params: &ParamStore, state: &mut State) -> Result<(), SandboxError> {
    for cache in &mut state.caches {
        let Some(endpoint) = &cache.endpoint else {
            continue;
        };
        if cache.kind == crate::domain::CacheKind::Serverless {
            put_value(
                params,
                &layout::parameter(&cache.env, &cache.name, "endpoint"),
                &endpoint.host,
                false,
            )?;
            put_value(
                params,
                &layout::parameter(&cache.env, &cache.name, "port"),
                &endpoint.port.to_string(),
                false,
            )?;
        }
        if cache.auth == AuthMode::Token && cache.cluster_mode {
            let token = cache
                .password_parameter
                .as_deref()
                .and_then(|n| params.get(n).ok().flatten());
            if let Some(token) = token {
                let scheme = if cache.tls { "rediss" } else { "redis" };
                let url = format!(
                    "{scheme}://:{}@{}:{}/0",
                    token.value.expose(),
                    endpoint.host,
                    endpoint.port
                );
                let name = layout::parameter(&cache.env, &cache.name, "url");
                put_value(params, &name, &url, true)?;
                cache.url_parameter = Some(name);
            }
        }
    }
    Ok(())
}
