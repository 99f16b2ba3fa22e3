//! The runner screens over the cache view: picker, form, and the run (live steps, a dry
//! run's plan, or why it could not start), with the footer hints for each.

use super::{audit, form, notice, panel, picker, plan, run_view};
use crate::domain::Protection;
use crate::escape::escape;
use crate::tui::app::{App, RunScreen};
use crate::tui::theme::Theme;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;

pub fn draw(app: &App, screen: &RunScreen, theme: &Theme, frame: &mut Frame, area: Rect) {
    match screen {
        RunScreen::Picker {
            env,
            cache,
            runbooks,
            selected,
            ..
        } => {
            let read_only = app
                .env_entry(env)
                .is_some_and(|e| e.env.protection == Protection::ReadOnly);
            picker::draw(cache, read_only, runbooks, *selected, theme, frame, area)
        }
        RunScreen::Form(f) => form::draw(f, theme, frame, area),
        RunScreen::Audit { cache, view, .. } => audit::draw(view, cache, theme, frame, area),
        RunScreen::Run { env, cache } => {
            let Some(session) = app.run_of(env, cache) else {
                notice(frame, area, "no run of this cache", theme.muted);
                return;
            };
            if let Some(p) = &session.plan {
                plan::draw(p, session.scroll, theme, frame, area);
            } else if session.view.steps.is_empty() {
                // Nothing from the engine yet: starting, or refused before it began.
                let block = panel(
                    Line::styled(
                        format!(" run {} on {} ", session.runbook, cache),
                        theme.title,
                    ),
                    theme,
                );
                let inner = block.inner(area);
                frame.render_widget(block, area);
                match &session.ended {
                    Some(Some(e)) => notice(frame, inner, &escape(e), theme.bad),
                    _ => notice(frame, inner, "preparing the run…", theme.muted),
                }
            } else {
                run_view::draw(&session.view, theme, frame, area);
            }
        }
    }
}

pub fn hints(app: &App, screen: &RunScreen) -> &'static [(&'static str, &'static str)] {
    match screen {
        RunScreen::Picker { .. } => &[("⏎", "choose"), ("j/k", "move"), ("esc", "back")],
        RunScreen::Audit { .. } => &[
            ("j/k", "select"),
            ("s", "sort"),
            ("S", "reverse"),
            ("esc", "back to the run"),
        ],
        RunScreen::Form(_) => &[
            ("tab ↑↓", "field"),
            ("space", "plan only"),
            ("⏎", "start"),
            ("esc", "back"),
        ],
        RunScreen::Run { env, cache } => match app.run_of(env, cache) {
            Some(r) if r.plan.is_some() => &[("j/k", "scroll"), ("x", "run"), ("esc", "back")],
            Some(r) if r.view.confirm.is_some() => &[
                ("type", "the cache name"),
                ("⏎", "go on"),
                ("esc", "decline"),
                ("ctrl-c", "cancel"),
            ],
            Some(r) if r.active() => &[
                ("c", "cancel run"),
                ("k/j", "scroll output"),
                ("esc", "leave (keeps running)"),
                ("?", "help"),
            ],
            Some(r) if r.view.audit.is_some() => &[
                ("⏎", "audit report"),
                ("k/j", "scroll output"),
                ("x", "run another"),
                ("esc", "back"),
            ],
            _ => &[
                ("k/j", "scroll output"),
                ("x", "run another"),
                ("esc", "back"),
            ],
        },
    }
}
