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
            Ok(s) => println!("{}", crate::escape::json_for_terminal(&s)),
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
            Ok(s) => println!("{}", crate::escape::json_for_terminal(&s)),
            Err(e) => return fail(exit::FAILED, format!("encode the journal: {e}")),
        },
        Format::Text | Format::Csv | Format::Markdown => {
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

/// `cachedeck runs unlock ENV CACHE`: shows who holds the cache's lock and breaks it after
/// the operator types the holder's run id (or with `--yes`). Exit 0 when the cache is
/// unlocked at the end, 3 when declined, 4 when it changed hands meanwhile.
pub async fn unlock(estate: &crate::estate::Estate, env: &str, cache: &str, yes: bool) -> u8 {
    use crate::runbook::lock;
    use std::io::IsTerminal;
    let (plane, found) = match estate.find_cache(env, cache).await {
        Ok(x) => x,
        Err(e) => return fail(exit::BAD_INPUT, e),
    };
    let handle_env = match estate.env(env) {
        Ok(h) => h.env.clone(),
        Err(e) => return fail(exit::BAD_INPUT, e),
    };
    let name = lock::lock_name_for(&handle_env, &found);
    let holder = match lock::holder(plane.as_ref(), &name).await {
        Ok(Some(h)) => h,
        Ok(None) => {
            println!("{cache} in {env} is not locked ({name})");
            return exit::OK;
        }
        Err(e) => return fail(exit::FAILED, e),
    };
    println!("lock {name}");
    println!("held by {}", holder.describe());
    if holder.looks_dead(time::OffsetDateTime::now_utc()).is_none() {
        println!(
            "warning: its heartbeat is recent: the run looks alive; breaking it lets a second run start on this cache"
        );
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            return refuse(
                exit::REFUSED,
                "not broken: pass --yes to break it without asking",
            );
        }
        print!(
            "type the run id ({}) to break it: ",
            crate::escape::escape_capped(&holder.run_id, 80)
        );
        let _ = std::io::Write::flush(&mut std::io::stdout());
        let mut answer = String::new();
        if std::io::stdin().read_line(&mut answer).is_err() || answer.trim() != holder.run_id {
            return refuse(exit::REFUSED, "not broken: the run id was not typed");
        }
    }
    match lock::unlock(plane.as_ref(), &name, &holder.run_id).await {
        Ok(true) => {
            println!(
                "lock broken; `cachedeck runs resume {}` continues that run if it was half done",
                crate::escape::escape_capped(&holder.run_id, 80)
            );
            exit::OK
        }
        Ok(false) => refuse(
            exit::LOCK_HELD,
            "not broken: the lock changed hands meanwhile; look again",
        ),
        Err(e) => fail(exit::FAILED, e),
    }
}

fn refuse(code: u8, message: &str) -> u8 {
    eprintln!("error: {message}");
    code
}
