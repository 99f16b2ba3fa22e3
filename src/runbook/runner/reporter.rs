//! Reporters of run events for the headless runner: progress lines on stderr, answers to
//! confirmation questions from the command-line approval, and the final report on stdout.

use super::Format;
use crate::escape::escape_capped;
use crate::runbook::engine::{Plan, RunReport};
use crate::runbook::events::{Event, StepState};
use crate::runbook::protect::{self, Approval};
use tokio::sync::mpsc::UnboundedReceiver;

/// Prints events on stderr until the run's sender is dropped.
pub async fn stderr(mut rx: UnboundedReceiver<Event>, approval: Approval) {
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
                eprintln!(
                    "{verb} {runbook} on {env}/{cache} (run {run_id}, {} steps)",
                    steps.len()
                );
            }
            Event::StepPlanned { .. } => {}
            Event::StepStarted { step, attempt } => {
                let again = if attempt > 1 {
                    format!(" (attempt {attempt})")
                } else {
                    String::new()
                };
                eprintln!("> {step}{again}");
            }
            Event::StepProgress {
                step,
                done,
                total,
                message,
            } => match total {
                Some(t) if t > 0 => eprintln!(
                    "  {step}: {}% {}",
                    done.saturating_mul(100) / t,
                    escape_capped(&message, 80)
                ),
                _ => eprintln!("  {step}: {done} {}", escape_capped(&message, 80)),
            },
            Event::StepOutput { step, line } => {
                eprintln!("  {step}: {}", escape_capped(&line, 400))
            }
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
                eprintln!("? {prompt}: {how}");
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
                eprintln!("< {step} {mark} in {} ms{why}", elapsed.as_millis());
            }
            Event::RunFinished { run_id, state, .. } => {
                eprintln!("run {run_id} {}", state.as_str());
            }
        }
    }
}

/// Prints the final report on stdout.
pub fn print_report(report: &RunReport, format: Format) {
    match format {
        Format::Json => match serde_json::to_string_pretty(report) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: failed to encode the report: {e}"),
        },
        Format::Text => {
            println!(
                "run {} of {} on {}/{}: {}",
                report.run_id,
                report.runbook,
                report.env,
                report.cache,
                report.state.as_str()
            );
            for s in &report.steps {
                let outputs = serde_json::Value::Object(s.outputs.clone().into_iter().collect());
                println!(
                    "  {:<20} {:<14} {:>7} ms  {}",
                    s.id,
                    format!("{:?}", s.state).to_lowercase(),
                    s.elapsed_ms,
                    escape_capped(outputs.to_string(), 200)
                );
                if let Some(e) = &s.error {
                    println!("  {:<20} error: {e}", "");
                }
            }
            if let Some(e) = &report.error {
                println!("error: {e}");
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
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: failed to encode the plan: {e}"),
        },
        Format::Text => {
            println!(
                "dry run of {} on {}/{}: nothing is executed",
                plan.runbook, plan.env, plan.cache
            );
            for call in &plan.lock {
                println!("  [lock] control-plane {}", call.call);
            }
            for s in &plan.steps {
                let tags = match (s.dangerous, s.confirm) {
                    (true, _) => " [dangerous]",
                    (false, true) => " [confirm]",
                    _ => "",
                };
                println!("  {} ({}){tags}: {}", s.id, s.action, s.title);
                for c in &s.calls {
                    let via = match &c.via {
                        crate::runbook::action::Via::ControlPlane => "control-plane".to_string(),
                        crate::runbook::action::Via::Valkey(t) => format!("valkey {t}"),
                        crate::runbook::action::Via::Local => "local".to_string(),
                    };
                    let m = if c.mutates { " (mutates)" } else { "" };
                    println!("      {via}: {}{m}", c.call);
                }
            }
        }
    }
}
