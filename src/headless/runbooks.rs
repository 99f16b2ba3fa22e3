//! `cachedeck runbooks list|validate`.

use super::run::fail;
use super::{Format, Table, exit};
use crate::runbook::{actions, catalog};
use serde::Serialize;
use std::path::Path;

#[derive(Serialize)]
struct RunbookRow {
    name: String,
    title: String,
    applies_to: Vec<String>,
    mutates: bool,
    source: String,
    params: Vec<String>,
}

/// `cachedeck runbooks list`: exit 0, or 1 when a user runbook is invalid (shown on stderr).
pub fn list(format: Format) -> u8 {
    let registry = actions::builtin();
    let mut rows = Vec::new();
    let mut bad = false;
    for entry in catalog::all(&registry) {
        match entry {
            Ok(rb) => rows.push(RunbookRow {
                applies_to: rb.applies_to.iter().map(|k| k.to_string()).collect(),
                mutates: rb.mutates(),
                params: rb.params.iter().map(|p| p.name.clone()).collect(),
                name: rb.name,
                title: rb.title,
                source: rb.source,
            }),
            Err(e) => {
                bad = true;
                eprintln!(
                    "error: {}",
                    crate::escape::escape_lines_capped(&e.to_string(), 2000)
                );
            }
        }
    }
    match format {
        Format::Json => match serde_json::to_string_pretty(&rows) {
            Ok(s) => println!("{}", crate::escape::json_for_terminal(&s)),
            Err(e) => return fail(exit::FAILED, format!("encode the list: {e}")),
        },
        Format::Text | Format::Csv | Format::Markdown => {
            let mut t = Table::new(["NAME", "MUTATES", "APPLIES TO", "SOURCE", "TITLE"]);
            for r in &rows {
                t.row([
                    r.name.clone(),
                    if r.mutates { "yes".into() } else { "no".into() },
                    r.applies_to.join(","),
                    r.source.clone(),
                    r.title.clone(),
                ]);
            }
            print!("{}", t.render());
        }
    }
    if bad { exit::FAILED } else { exit::OK }
}

/// `cachedeck runbooks validate FILE`: exit 0 when valid, 2 with file:line:col when not.
pub fn validate(file: &Path) -> u8 {
    match catalog::load_file(file, &actions::builtin()) {
        Ok(rb) => {
            println!(
                "{}: ok (runbook `{}`, {} steps, {})",
                crate::escape::escape(file.as_os_str().as_encoded_bytes()),
                crate::escape::escape(&rb.name),
                rb.steps.len() + rb.rollback.len(),
                if rb.mutates() { "mutates" } else { "read-only" }
            );
            exit::OK
        }
        Err(e) => {
            eprintln!(
                "error: {}",
                crate::escape::escape_lines_capped(&e.to_string(), 2000)
            );
            exit::BAD_INPUT
        }
    }
}
