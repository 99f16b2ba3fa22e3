//! `cachedeck runbooks list|validate` and `cachedeck runs list|show`.

use super::{Format, exit, fail};
use crate::headless::Table;
use crate::runbook::{actions, catalog, journal};
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
pub fn runbooks_list(format: Format) -> u8 {
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
                    crate::escape::escape_lines(&e.to_string(), 2000)
                );
            }
        }
    }
    match format {
        Format::Json => match serde_json::to_string_pretty(&rows) {
            Ok(s) => println!("{}", crate::escape::json_for_terminal(&s)),
            Err(e) => return fail(exit::FAILED, format!("encode the list: {e}")),
        },
        Format::Text => {
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
pub fn runbooks_validate(file: &Path) -> u8 {
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
                crate::escape::escape_lines(&e.to_string(), 2000)
            );
            exit::BAD_INPUT
        }
    }
}

/// `cachedeck runs list`.
pub fn runs_list(format: Format) -> u8 {
    let runs = match journal::list(&journal::runs_dir()) {
        Ok(r) => r,
        Err(e) => return fail(exit::FAILED, e),
    };
    match format {
        Format::Json => match serde_json::to_string_pretty(&runs) {
            Ok(s) => println!("{}", crate::escape::json_for_terminal(&s)),
            Err(e) => return fail(exit::FAILED, format!("encode the list: {e}")),
        },
        Format::Text => {
            let mut t = Table::new(["RUN", "RUNBOOK", "ENV", "CACHE", "STATE", "LAST STEP"]);
            for r in &runs {
                t.row([
                    r.run_id.clone(),
                    r.runbook.clone(),
                    r.env.clone(),
                    r.cache.clone(),
                    r.state.clone(),
                    r.last_step.clone().unwrap_or_default(),
                ]);
            }
            print!("{}", t.render());
        }
    }
    exit::OK
}

/// `cachedeck runs show ID`: the journal's records.
pub fn runs_show(run_id: &str, format: Format) -> u8 {
    let records = match journal::read(&journal::runs_dir(), run_id) {
        Ok(r) => r,
        Err(e) => return fail(exit::BAD_INPUT, e),
    };
    match format {
        Format::Json => match serde_json::to_string_pretty(&records) {
            Ok(s) => println!("{}", crate::escape::json_for_terminal(&s)),
            Err(e) => return fail(exit::FAILED, format!("encode the journal: {e}")),
        },
        Format::Text => {
            if let Some(s) = journal::summarize(&records) {
                println!(
                    "{}",
                    crate::escape::escape_capped(
                        format!(
                            "run {} of {} on {}/{}: {}",
                            s.run_id, s.runbook, s.env, s.cache, s.state
                        ),
                        600
                    )
                );
            }
            for r in &records {
                let at =
                    r.at.format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default();
                let mut v = serde_json::to_value(&r.kind).unwrap_or_default();
                let kind = v
                    .get("record")
                    .and_then(|k| k.as_str())
                    .unwrap_or("?")
                    .to_string();
                if let Some(m) = v.as_object_mut() {
                    m.remove("record");
                    m.remove("text");
                }
                println!(
                    "{at} {kind:<12} {}",
                    crate::escape::escape_capped(v.to_string(), 300)
                );
            }
        }
    }
    exit::OK
}
