//! `cachedeck caches`: every cache of every environment (or of one), with its shape,
//! security and nodes; JSON carries the full domain model of each cache.

use super::Format;
use super::{Table, code, exit, report_env_errors};
use crate::domain::Cache;
use crate::estate::Estate;
use serde::Serialize;
use std::process::ExitCode;

#[derive(Serialize)]
struct EnvError<'a> {
    env: &'a str,
    error: String,
}

#[derive(Serialize)]
struct EnvWarning<'a> {
    env: &'a str,
    warning: &'a str,
}

pub async fn run(estate: &Estate, env: Option<&str>, output: Format) -> anyhow::Result<ExitCode> {
    if let Some(name) = env
        && let Err(e) = estate.env(name)
    {
        super::print_error(e);
        return Ok(ExitCode::from(exit::BAD_INPUT));
    }
    let found = estate.discover_all(env).await;
    let caches: Vec<&Cache> = found
        .iter()
        .filter_map(|d| d.result.as_ref().ok())
        .flat_map(|d| d.caches.iter())
        .collect();
    match output {
        Format::Json => {
            let errors: Vec<EnvError> = found
                .iter()
                .filter_map(|d| {
                    d.result.as_ref().err().map(|e| EnvError {
                        env: &d.env.name,
                        error: e.to_string(),
                    })
                })
                .collect();
            let warnings: Vec<EnvWarning> = found
                .iter()
                .filter_map(|d| d.result.as_ref().ok().map(|r| (&d.env.name, r)))
                .flat_map(|(env, r)| {
                    r.warnings
                        .iter()
                        .map(move |w| EnvWarning { env, warning: w })
                })
                .collect();
            super::print_json(&serde_json::to_string_pretty(&serde_json::json!({
                "caches": caches,
                "errors": errors,
                "warnings": warnings,
            }))?);
        }
        _ => print!("{}", table(&caches).render()),
    }
    Ok(code(report_env_errors(&found)))
}

fn table(caches: &[&Cache]) -> Table {
    let mut table = Table::new([
        "ENV", "NAME", "KIND", "ENGINE", "STATUS", "SHAPE", "TLS", "AUTH", "ENDPOINT", "NODES",
    ]);
    for c in caches {
        let total = c.nodes().count();
        let down = c.nodes_down();
        let nodes = if down == 0 {
            format!("{total}")
        } else {
            format!("{total} ({down} down)")
        };
        table.row([
            c.env.clone(),
            c.name.clone(),
            c.kind.to_string(),
            format!("{} {}", c.engine, c.engine_version)
                .trim()
                .to_string(),
            c.status.clone(),
            if c.cluster_mode {
                format!("{} cluster", c.shape())
            } else {
                c.shape()
            },
            if c.tls { "yes" } else { "no" }.to_string(),
            c.auth.to_string(),
            c.endpoint.as_ref().map_or("-".into(), |e| e.address()),
            nodes,
        ]);
    }
    table
}
