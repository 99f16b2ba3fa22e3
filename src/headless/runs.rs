//! `cachedeck runs list|show|resume`: the journaled runs.

use super::run::fail;
use super::{Format, Table, exit};
use crate::runbook::journal;

pub use super::run::resume;

/// `cachedeck runs list`.
pub fn list(format: Format) -> u8 {
    let runs = match journal::list(&journal::runs_dir()) {
        Ok(r) => r,
        Err(e) => return fail(exit::FAILED, e),
    };
    match format {
        Format::Json => match serde_json::to_string_pretty(&runs) {
            Ok(s) => println!("{s}"),
            Err(e) => return fail(exit::FAILED, format!("encode the list: {e}")),
        },
        Format::Text | Format::Csv | Format::Markdown => {
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
pub fn show(run_id: &str, format: Format) -> u8 {
    let records = match journal::read(&journal::runs_dir(), run_id) {
        Ok(r) => r,
        Err(e) => return fail(exit::BAD_INPUT, e),
    };
    match format {
        Format::Json => match serde_json::to_string_pretty(&records) {
            Ok(s) => println!("{s}"),
            Err(e) => return fail(exit::FAILED, format!("encode the journal: {e}")),
        },
        Format::Text | Format::Csv | Format::Markdown => {
            if let Some(s) = journal::summarize(&records) {
                println!(
                    "run {} of {} on {}/{}: {}",
                    s.run_id, s.runbook, s.env, s.cache, s.state
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
