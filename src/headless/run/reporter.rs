//! Reporters of run events for the headless runner: progress lines on stderr, answers to
//! confirmation questions from the command-line approval, and the final report on stdout.

use super::progress::ProgressView;
use super::{Format, TABLE_ACTION};
use crate::audit::report::AuditReport;
use crate::escape::{escape_capped, escape_lines_capped, json_for_terminal};
use crate::runbook::engine::{Plan, RunReport};
use crate::runbook::events::{Event, StepState};
use crate::runbook::protect::{self, Approval};
use tokio::sync::mpsc::UnboundedReceiver;

/// Prints events on stderr until the run's sender is dropped.
pub async fn stderr(mut rx: UnboundedReceiver<Event>, approval: Approval) {
    let mut progress = ProgressView::new();
    while let Some(event) = rx.recv().await {
        match event {
            Event::RunStarted {
                run_id,
                runbook,
                env,
                cache,
                steps,
                resumed,
            } => {
                let verb = if resumed { "resuming" } else { "running" };
                progress.line(&format!(
                    "{verb} {runbook} on {env}/{cache} (run {run_id}, {} steps)",
                    steps.len()
                ));
            }
            Event::StepPlanned { .. } => {}
            Event::StepStarted { step, attempt } => {
                let again = if attempt > 1 {
                    format!(" (attempt {attempt})")
                } else {
                    String::new()
                };
                progress.line(&format!("> {step}{again}"));
            }
            Event::StepProgress {
                step,
                done,
                total,
                message,
            } => {
                progress.update(&step, done, total, &message);
            }
            // `line` holds outside text: `progress.line` escapes it.
            Event::StepOutput { step, line } => progress.line(&format!("  {step}: {line}")),
            Event::NeedsConfirmation {
                step,
                prompt,
                expect,
                reply,
            } => {
                let yes = protect::answer(&approval, expect.as_deref());
                let how = if yes {
                    "confirmed by --yes"
                } else {
                    "not confirmed (needs --yes, and --confirm-cache in a confirm environment)"
                };
                progress.line(&format!("? {prompt}: {how}"));
                let _ = reply.send(yes);
                let _ = step;
            }
            Event::StepFinished {
                step,
                state,
                elapsed,
                error,
                ..
            } => {
                let mark = match state {
                    StepState::Succeeded => "ok",
                    StepState::AlreadyDone => "already done",
                    StepState::Failed => "FAILED",
                    StepState::FailedContinued => "failed (continuing)",
                    StepState::Interrupted => "interrupted",
                };
                let why = error.map(|e| format!(": {e}")).unwrap_or_default();
                progress.finish(&step);
                progress.line(&format!(
                    "< {step} {mark} in {} ms{why}",
                    elapsed.as_millis()
                ));
            }
            Event::RunFinished { run_id, state, .. } => {
                progress.line(&format!("run {run_id} {}", state.as_str()));
            }
        }
    }
}

/// The audit report a `ttl-audit` step returned, if the run has one.
fn audit_of(report: &RunReport) -> Option<(usize, AuditReport)> {
    report.steps.iter().enumerate().find_map(|(i, s)| {
        let whole = s
            .outputs
            .get("report")
            .filter(|_| s.action == TABLE_ACTION)?;
        Some((i, serde_json::from_value(whole.clone()).ok()?))
    })
}

/// The run report as JSON; an audit's report fields join it at the top level (the run's own
/// fields win a clash), and its copy inside the step's outputs is dropped.
pub fn run_json(report: &RunReport) -> Result<serde_json::Value, serde_json::Error> {
    let mut v = serde_json::to_value(report)?;
    let Some((i, audit)) = audit_of(report) else {
        return Ok(v);
    };
    if let Some(outputs) = v["steps"][i]["outputs"].as_object_mut() {
        outputs.remove("report");
    }
    if let (Some(top), serde_json::Value::Object(fields)) =
        (v.as_object_mut(), serde_json::to_value(&audit)?)
    {
        for (k, field) in fields {
            top.entry(k).or_insert(field);
        }
    }
    Ok(v)
}

/// Prints the final report on stdout: the run (text, JSON) or its audit (CSV, Markdown).
pub fn print_report(report: &RunReport, format: Format) {
    match format {
        Format::Json => match run_json(report).and_then(|v| serde_json::to_string_pretty(&v)) {
            Ok(s) => println!("{}", json_for_terminal(&s)),
            Err(e) => eprintln!("error: failed to encode the report: {e}"),
        },
        Format::Csv | Format::Markdown => match audit_of(report) {
            Some((_, audit)) if format == Format::Csv => print!("{}", audit.to_csv()),
            Some((_, audit)) => print!("{}", audit.to_markdown()),
            None => eprintln!(
                "error: failed to print the audit report: run {} ended ({}) before its audit finished; see `cachedeck runs show {}`",
                report.run_id,
                report.state.as_str(),
                report.run_id
            ),
        },
        Format::Text => {
            println!(
                "run {} of {} on {}/{}: {}",
                report.run_id,
                escape_capped(&report.runbook, 200),
                escape_capped(&report.env, 200),
                escape_capped(&report.cache, 200),
                report.state.as_str()
            );
            for s in &report.steps {
                // The audit's whole report is for JSON, CSV and Markdown; text shows totals.
                let outputs = serde_json::Value::Object(
                    s.outputs
                        .iter()
                        .filter(|(k, _)| !(s.action == TABLE_ACTION && *k == "report"))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                );
                println!(
                    "  {:<20} {:<14} {:>7} ms  {}",
                    s.id,
                    format!("{:?}", s.state).to_lowercase(),
                    s.elapsed_ms,
                    escape_capped(outputs.to_string(), 200)
                );
                if let Some(e) = &s.error {
                    println!("  {:<20} error: {}", "", escape_lines_capped(e, 2000));
                }
            }
            if let Some(e) = &report.error {
                println!("error: {}", escape_lines_capped(e, 2000));
            }
            if report.state != crate::runbook::events::RunState::Succeeded {
                println!(
                    "journal: {} (resume with `cachedeck runs resume {}`)",
                    report.journal.display(),
                    report.run_id
                );
            }
        }
    }
}

/// Prints a dry run's plan on stdout.
pub fn print_plan(plan: &Plan, format: Format) {
    match format {
        Format::Json => match serde_json::to_string_pretty(plan) {
            Ok(s) => println!("{}", json_for_terminal(&s)),
            Err(e) => eprintln!("error: failed to encode the plan: {e}"),
        },
        Format::Text | Format::Csv | Format::Markdown => {
            println!(
                "dry run of {} on {}/{}: nothing is executed",
                plan.runbook, plan.env, plan.cache
            );
            for call in &plan.lock {
                println!("  [lock] control-plane {}", escape_capped(&call.call, 400));
            }
            for s in &plan.steps {
                let tags = match (s.dangerous, s.confirm) {
                    (true, _) => " [dangerous]",
                    (false, true) => " [confirm]",
                    _ => "",
                };
                println!(
                    "  {} ({}){tags}: {}",
                    s.id,
                    s.action,
                    escape_capped(&s.title, 200)
                );
                for c in &s.calls {
                    let via = match &c.via {
                        crate::runbook::action::Via::ControlPlane => "control-plane".to_string(),
                        crate::runbook::action::Via::Valkey(t) => format!("valkey {t}"),
                        crate::runbook::action::Via::Local => "local".to_string(),
                    };
                    let m = if c.mutates { " (mutates)" } else { "" };
                    println!(
                        "      {}: {}{m}",
                        escape_capped(&via, 200),
                        escape_capped(&c.call, 400)
                    );
                }
            }
        }
    }
}
