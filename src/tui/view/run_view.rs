//! The runner view: each step with its state and timing, a progress bar for the running
//! step, live output (escaped when it was folded in), the final report, and the
//! confirmation dialog the engine is waiting on. Pure: it draws a [`RunView`] and nothing else.

use super::panel;
use crate::runbook::events::RunState;
use crate::tui::run_view::{RunView, StepPhase};
use crate::tui::theme::Theme;
use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Gauge, Paragraph};

/// Draws a run into `area`.
pub fn draw(run: &RunView, theme: &Theme, frame: &mut Frame, area: Rect) {
    let running = run
        .steps
        .iter()
        .find(|s| matches!(s.phase, StepPhase::Running { .. }) && s.progress.is_some());
    let with_outputs = run.steps.iter().filter(|s| !s.outputs.is_empty()).count() as u16;
    let resumable = matches!(
        run.finished,
        Some((RunState::Failed | RunState::Interrupted, _))
    );
    let [steps, gauge, output, report] = Layout::vertical([
        Constraint::Length(run.steps.len() as u16 + 2),
        Constraint::Length(if running.is_some() { 3 } else { 0 }),
        Constraint::Min(3),
        Constraint::Length(if run.finished.is_some() {
            3 + with_outputs + u16::from(resumable)
        } else {
            0
        }),
    ])
    .areas(area);
    let title = format!(" run {} on {} ", run.runbook, run.cache);
    let rows: Vec<Line> = run
        .steps
        .iter()
        .map(|s| {
            let style = match s.phase {
                StepPhase::Ok => theme.good,
                StepPhase::Failed | StepPhase::Interrupted => theme.bad,
                StepPhase::Running { .. } => theme.warn,
                StepPhase::Pending | StepPhase::Skipped => theme.muted,
            };
            let time = match (s.elapsed, &s.phase, s.started, run.now) {
                (Some(d), ..) => format!("{:.1} s", d.as_secs_f64()),
                // Still going: its age so far, so a long wait visibly moves.
                (None, StepPhase::Running { .. }, Some(from), Some(now)) => {
                    format!("{} s…", (now - from).whole_seconds().max(0))
                }
                _ => String::new(),
            };
            let mut spans = vec![
                Span::styled(format!(" {:<12}", s.phase.label()), style),
                Span::styled(format!("{:<20}", s.id), theme.title),
                Span::styled(format!("{:>8}  ", time), theme.text),
                Span::styled(s.title.clone(), theme.text),
            ];
            if s.dangerous {
                spans.push(Span::styled("  dangerous", theme.warn));
            }
            if let Some(e) = &s.error {
                spans.push(Span::styled(format!("  {e}"), theme.bad));
            }
            Line::from(spans)
        })
        .collect();
    frame.render_widget(Paragraph::new(rows).block(panel(title, theme)), steps);
    if let Some(step) = running
        && let Some((done, total)) = step.progress
    {
        let ratio = total
            .filter(|t| *t > 0)
            .map(|t| (done as f64 / t as f64).clamp(0.0, 1.0))
            .unwrap_or(0.0);
        let label = match total {
            Some(t) => format!("{done}/{t} {}", step.progress_message),
            None if done == 0 => step.progress_message.clone(),
            None => format!("{done} {}", step.progress_message),
        };
        frame.render_widget(
            Gauge::default()
                .block(panel(format!(" {} ", step.id), theme))
                .gauge_style(theme.chart)
                .ratio(ratio)
                .label(label),
            gauge,
        );
    }
    // Newest lines at the bottom: show the tail that fits, or an earlier stretch (k/j).
    let fits = output.height.saturating_sub(2) as usize;
    let back = run.scroll_back.min(run.output.len().saturating_sub(fits));
    let lines: Vec<Line> = run
        .output
        .iter()
        .skip(run.output.len().saturating_sub(fits + back))
        .take(fits)
        .map(|l| Line::styled(l.clone(), theme.text))
        .collect();
    let title = if back > 0 {
        format!(" output · {back} lines back (j: newer, G: follow) ")
    } else {
        " output ".to_string()
    };
    frame.render_widget(
        Paragraph::new(lines).block(panel(Line::styled(title, theme.title), theme)),
        output,
    );
    if let Some((state, error)) = &run.finished {
        let style = match state {
            RunState::Succeeded => theme.good,
            _ => theme.bad,
        };
        let mut spans = vec![Span::styled(format!(" run {} ", state.as_str()), style)];
        spans.push(Span::styled(format!("({}) ", run.run_id), theme.muted));
        if let Some(e) = error {
            spans.push(Span::styled(e.clone(), theme.bad));
        }
        let mut lines = vec![Line::from(spans)];
        // What each step found: the figures the operator ran the runbook for.
        for s in run.steps.iter().filter(|s| !s.outputs.is_empty()) {
            lines.push(Line::from(vec![
                Span::styled(format!(" {:<20}", s.id), theme.title),
                Span::styled(s.outputs.clone(), theme.text),
            ]));
        }
        if resumable {
            lines.push(Line::styled(
                format!(" resume it with `cachedeck runs resume {}`", run.run_id),
                theme.muted,
            ));
        }
        frame.render_widget(
            Paragraph::new(lines).block(panel(" report ", theme)),
            report,
        );
    }
    if let Some(confirm) = &run.confirm {
        draw_confirm(confirm, theme, frame, area);
    }
}

fn draw_confirm(
    confirm: &crate::tui::run_view::PendingConfirm,
    theme: &Theme,
    frame: &mut Frame,
    area: Rect,
) {
    let [row] = Layout::vertical([Constraint::Length(7)])
        .flex(Flex::Center)
        .areas(area);
    let [area] = Layout::horizontal([Constraint::Length(64)])
        .flex(Flex::Center)
        .areas(row);
    let mut lines = vec![
        Line::styled(
            format!(" step {}: {}", confirm.step, confirm.prompt),
            theme.text,
        ),
        Line::from(""),
    ];
    match &confirm.expect {
        Some(name) => {
            lines.push(Line::styled(
                format!(" type the cache name `{name}` to go on:"),
                theme.confirm,
            ));
            lines.push(Line::styled(format!(" > {}", confirm.typed), theme.title));
        }
        None => lines.push(Line::styled(" Enter to go on", theme.confirm)),
    }
    lines.push(Line::styled(
        " Esc declines (the run records the refusal)",
        theme.muted,
    ));
    frame.render_widget(Clear, area);
    frame.render_widget(Paragraph::new(lines).block(panel(" confirm ", theme)), area);
}
