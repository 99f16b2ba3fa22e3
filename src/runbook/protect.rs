//! Protection levels applied to a whole run before anything executes: a read-only
//! environment refuses dangerous steps; a confirm environment needs the cache name typed
//! (TUI) or `--yes --confirm-cache NAME` (headless); an open one needs `--yes` headless.

use crate::domain::Protection;
use crate::runbook::validate::Runbook;

/// What the operator has already agreed to (headless flags, or a TUI dialog's answers).
#[derive(Debug, Clone, Default)]
pub struct Approval {
    /// `--yes`: dangerous and `confirm` steps may run without asking.
    pub yes: bool,
    /// `--confirm-cache NAME`: must equal the cache name in a confirm environment.
    pub confirm_cache: Option<String>,
    /// Someone can answer questions as they come (the TUI); headless runs cannot.
    pub interactive: bool,
}

/// Why a run was refused before it started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "run `{runbook}` on `{cache}`: environment `{env}` is read-only and step(s) {steps} would change it; run it in an environment whose protection allows changes"
    )]
    ReadOnly {
        runbook: String,
        env: String,
        cache: String,
        steps: String,
    },
    #[error(
        "run `{runbook}`: step(s) {steps} change `{cache}`; add --yes to agree{}",
        if *needs_name { format!(" and --confirm-cache {cache} (environment `{env}` asks for the cache name)") } else { String::new() }
    )]
    NeedsApproval {
        runbook: String,
        env: String,
        cache: String,
        steps: String,
        needs_name: bool,
    },
    #[error(
        "run `{runbook}`: --confirm-cache `{given}` is not the target cache `{cache}`; type the exact cache name"
    )]
    WrongCacheName {
        runbook: String,
        cache: String,
        given: String,
    },
    #[error("run step `{step}`: the operator declined it")]
    Declined { step: String },
}

/// Checks a run up front. `Ok` means every confirmation can be answered from `approval`
/// (headless) or will be asked (interactive).
pub fn check(
    protection: Protection,
    runbook: &Runbook,
    env: &str,
    cache: &str,
    approval: &Approval,
) -> Result<(), Refusal> {
    let dangerous: Vec<&str> = runbook
        .steps
        .iter()
        .chain(&runbook.rollback)
        .filter(|s| s.dangerous)
        .map(|s| s.id.as_str())
        .collect();
    let confirm: Vec<&str> = runbook
        .steps
        .iter()
        .filter(|s| s.confirm || s.dangerous)
        .map(|s| s.id.as_str())
        .collect();
    let list = |ids: &[&str]| {
        ids.iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if protection == Protection::ReadOnly && !dangerous.is_empty() {
        return Err(Refusal::ReadOnly {
            runbook: runbook.name.clone(),
            env: env.to_string(),
            cache: cache.to_string(),
            steps: list(&dangerous),
        });
    }
    if approval.interactive || confirm.is_empty() {
        return Ok(());
    }
    let needs_name = protection == Protection::Confirm && !dangerous.is_empty();
    if !approval.yes || (needs_name && approval.confirm_cache.is_none()) {
        return Err(Refusal::NeedsApproval {
            runbook: runbook.name.clone(),
            env: env.to_string(),
            cache: cache.to_string(),
            steps: list(&confirm),
            needs_name,
        });
    }
    if needs_name
        && let Some(given) = &approval.confirm_cache
        && given != cache
    {
        return Err(Refusal::WrongCacheName {
            runbook: runbook.name.clone(),
            cache: cache.to_string(),
            given: given.clone(),
        });
    }
    Ok(())
}

/// The name the operator must type before a step, if any.
pub fn expected_name(protection: Protection, dangerous: bool, cache: &str) -> Option<String> {
    (protection == Protection::Confirm && dangerous).then(|| cache.to_string())
}

/// How a headless run answers a confirmation question.
pub fn answer(approval: &Approval, expect: Option<&str>) -> bool {
    approval.yes
        && match expect {
            Some(name) => approval.confirm_cache.as_deref() == Some(name),
            None => true,
        }
}
