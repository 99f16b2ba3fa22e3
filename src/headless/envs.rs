//! `cachedeck envs`: every environment, its provider and protection, and how many caches
//! discovery finds there (or the one line saying why it could not look).

use super::Format;
use super::{Table, code, report_env_errors};
use crate::estate::Estate;
use serde::Serialize;
use std::process::ExitCode;

#[derive(Serialize)]
struct EnvRow<'a> {
    name: &'a str,
    provider: &'a str,
    protection: &'a str,
    profile: Option<&'a str>,
    region: Option<&'a str>,
    endpoint_url: Option<&'a str>,
    source: &'a str,
    /// The account its credentials resolve to (STS GetCallerIdentity), and who they are.
    account_id: Option<String>,
    caller_arn: Option<String>,
    /// The account the config pins it to, if any.
    pinned_account_id: Option<&'a str>,
    caches: Option<usize>,
    nodes_down: Option<usize>,
    error: Option<String>,
}

pub async fn run(estate: &Estate, output: Format) -> anyhow::Result<ExitCode> {
    let found = estate.discover_all(None).await;
    // Resolved when the estate was loaded; text from AWS is escaped for either output.
    let account = |env: &str, field: fn(&crate::domain::Account) -> String| {
        estate
            .env(env)
            .ok()
            .and_then(|h| h.env.account.as_ref())
            .map(|a| crate::escape::escape_capped(field(a), 200))
    };
    let rows: Vec<EnvRow> = found
        .iter()
        .map(|d| {
            let (caches, nodes_down, error) = match &d.result {
                Ok(discovery) => (
                    Some(discovery.caches.len()),
                    Some(discovery.caches.iter().map(|c| c.nodes_down()).sum()),
                    None,
                ),
                Err(e) => (None, None, Some(e.to_string())),
            };
            EnvRow {
                name: &d.env.name,
                provider: d.env.provider.as_str(),
                protection: d.env.protection.as_str(),
                profile: d.env.profile.as_deref(),
                region: d.env.region.as_deref(),
                endpoint_url: d.env.endpoint_url.as_deref(),
                source: &d.env.source,
                account_id: account(&d.env.name, |a| a.id.clone()),
                caller_arn: account(&d.env.name, |a| a.caller_arn.clone()),
                pinned_account_id: estate
                    .env(&d.env.name)
                    .ok()
                    .and_then(|h| h.config.account_id.as_deref()),
                caches,
                nodes_down,
                error,
            }
        })
        .collect();
    match output {
        Format::Json => super::print_json(&serde_json::to_string_pretty(
            &serde_json::json!({ "environments": rows }),
        )?),
        _ => {
            if rows.is_empty() {
                eprintln!(
                    "no environments: run `cachedeck sandbox up`, or write a config file (see assets/config.example.toml)"
                );
            }
            let mut table = Table::new([
                "NAME",
                "PROVIDER",
                "PROFILE/REGION",
                "PROTECTION",
                "ACCOUNT",
                "CALLER",
                "CACHES",
                "HEALTH",
            ]);
            for r in &rows {
                let place = match (r.profile, r.region) {
                    (Some(p), Some(reg)) => format!("{p}/{reg}"),
                    (Some(p), None) => p.to_string(),
                    (None, Some(reg)) => reg.to_string(),
                    (None, None) => "-".into(),
                };
                let health = match (&r.error, r.nodes_down) {
                    (Some(_), _) => "error".to_string(),
                    (None, Some(0)) => "ok".to_string(),
                    (None, Some(n)) => format!("{n} node(s) down"),
                    (None, None) => "-".to_string(),
                };
                table.row([
                    r.name.to_string(),
                    r.provider.to_string(),
                    place,
                    r.protection.to_string(),
                    match (&r.account_id, r.pinned_account_id) {
                        (Some(id), Some(_)) => format!("{id} (pinned)"),
                        (Some(id), None) => id.clone(),
                        (None, Some(pinned)) => format!("? (pinned {pinned})"),
                        (None, None) => "-".into(),
                    },
                    r.caller_arn.clone().unwrap_or_else(|| "-".into()),
                    r.caches.map_or("-".into(), |n| n.to_string()),
                    health,
                ]);
            }
            print!("{}", table.render());
        }
    }
    Ok(code(report_env_errors(&found)))
}
