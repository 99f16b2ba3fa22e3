//! Preparing a run for any reporter (the headless runner, the TUI): find the runbook, bind
//! parameters, look the target up, apply protection and `applies_to` — all before anything
//! executes — and list the runbooks that apply to a cache.
//!
//! The TUI's flow: [`applicable`] for the picker, [`prepare`] with the runbook the picker
//! checked, the cache the TUI holds and `Approval { interactive: true, .. }` once parameters
//! are filled (nothing is read again: only protection and `applies_to` are checked), then
//! [`Engine::start`](crate::runbook::engine::Engine::start) with an event channel, answering
//! `Event::NeedsConfirmation` by asking the operator to type `expect` (the cache name) when
//! it is set.

use crate::domain::Cache;
use crate::estate::{Estate, EstateError};
use crate::runbook::action::Registry;
use crate::runbook::catalog::{self, CatalogError};
use crate::runbook::engine::{Engine, RunRequest, Target};
use crate::runbook::protect::{self, Approval, Refusal};
use crate::runbook::validate::{self, Runbook};
use crate::runbook::{ErrorKind, actions, journal};
use crate::valkey::connect::ConnectOptions;

/// Why a run could not be prepared; nothing has executed.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("load the runbook: {0}")]
    Runbook(#[from] CatalogError),
    #[error("bind parameters: {0}")]
    Params(String),
    #[error("find the target: {0}")]
    Estate(#[from] EstateError),
    #[error("{0}")]
    Refused(#[from] Refusal),
    #[error("run `{runbook}` on `{cache}`: it is a {kind} and the runbook applies to {applies}")]
    NotApplicable {
        runbook: String,
        cache: String,
        kind: String,
        applies: String,
    },
}

impl PrepareError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            PrepareError::Refused(_) => ErrorKind::Refused,
            PrepareError::Estate(EstateError::Plane { .. }) => ErrorKind::Failed,
            _ => ErrorKind::BadInput,
        }
    }
}

/// The engine as configured by the estate's settings (journal in the state dir).
pub fn engine(estate: &Estate) -> Engine {
    Engine::new(
        actions::builtin(),
        journal::runs_dir(),
        ConnectOptions::from_settings(&estate.settings),
    )
}

/// Valid runbooks whose `applies_to` includes the cache's kind, by name.
pub fn applicable(registry: &Registry, cache: &Cache) -> Vec<Runbook> {
    let mut found: Vec<Runbook> = catalog::all(registry)
        .into_iter()
        .flatten()
        .filter(|r| r.applies_to.contains(&cache.kind))
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}

/// Looks the target up and applies protection (before discovery: a refused run does not
/// even touch the estate) and `applies_to`.
pub async fn target(
    estate: &Estate,
    runbook: &Runbook,
    env: &str,
    cache: &str,
    approval: &Approval,
) -> Result<Target, PrepareError> {
    let handle = estate.env(env)?;
    protect::check(handle.env.protection, runbook, env, cache, approval)?;
    let (plane, found) = estate.find_cache(env, cache).await?;
    applies(runbook, &found)?;
    Ok(Target {
        env: handle.env.clone(),
        cache: found,
        plane,
    })
}

/// Refuses a runbook whose `applies_to` leaves out the cache's kind.
fn applies(runbook: &Runbook, cache: &Cache) -> Result<(), PrepareError> {
    if runbook.applies_to.contains(&cache.kind) {
        return Ok(());
    }
    let applies: Vec<String> = runbook.applies_to.iter().map(|k| k.to_string()).collect();
    Err(PrepareError::NotApplicable {
        runbook: runbook.name.clone(),
        cache: cache.name.clone(),
        kind: cache.kind.to_string(),
        applies: applies.join(", "),
    })
}

/// Everything checked; the request is ready for `Engine::start` (or `Engine::plan`). The
/// runbook (already validated) and the cache (already discovered) are the caller's: nothing
/// is read again. Parameters are bound, then protection and `applies_to` are checked.
pub fn prepare(
    estate: &Estate,
    env: &str,
    runbook: Runbook,
    cache: Cache,
    params: &[(String, String)],
    approval: &Approval,
) -> Result<RunRequest, PrepareError> {
    let params = validate::bind_params(&runbook, params).map_err(PrepareError::Params)?;
    let runbook = runbook.for_params(|name| params.flag(name));
    let handle = estate.env(env)?;
    protect::check(handle.env.protection, &runbook, env, &cache.name, approval)?;
    applies(&runbook, &cache)?;
    let plane = estate.plane(env)?;
    Ok(RunRequest {
        runbook,
        params,
        target: Target {
            env: handle.env.clone(),
            cache,
            plane,
        },
        force_unlock: None,
    })
}
