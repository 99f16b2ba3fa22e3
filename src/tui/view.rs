//! Rendering: `view(&App, &Theme, &mut Frame)` draws one frame from the state. It reads the
//! state and nothing else — no I/O, no clock, no mutation — so a frame is a pure function of
//! the state and snapshot tests pin it down.

mod audit;
mod cache;
mod caches;
mod columns;
mod envs;
pub mod fmt;
mod form;
mod help;
mod panels;
mod picker;
mod plan;
pub mod run_view;
mod runbook;

use super::action::Route;
use super::app::{App, Mode};
use super::theme::Theme;
use crate::domain::Protection;
use crate::escape::escape_capped;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Paragraph};

/// The first frame, while the environments load (the config, each environment's
/// credentials and account): cachedeck's header and what it is waiting for.
pub fn loading(theme: &Theme, frame: &mut Frame) {
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(" cachedeck ", theme.title),
            Span::styled("│ ", theme.muted),
            Span::styled("environments", theme.text),
        ])),
        header,
    );
    frame.render_widget(
        Paragraph::new(Line::styled(
            " loading environments: config, credentials, accounts …",
            theme.muted,
        ))
        .block(
            Block::default()
                .borders(Borders::TOP)
                .border_type(BorderType::Plain)
                .border_style(theme.muted),
        ),
        body,
    );
    frame.render_widget(Paragraph::new(Line::styled(" q quit", theme.muted)), footer);
}

/// Draws the whole screen.
pub fn view(app: &App, theme: &Theme, frame: &mut Frame) {
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    draw_header(app, theme, frame, header);
    match &app.route {
        Route::Envs => envs::draw(app, theme, frame, body),
        Route::Caches { env } => caches::draw(app, theme, frame, body, env),
        Route::Cache { .. } => match app.run_screen() {
            Some(screen) => runbook::draw(app, screen, theme, frame, body),
            None => cache::draw(app, theme, frame, body),
        },
    }
    draw_footer(app, theme, frame, footer);
    if app.help {
        // The whole screen: every key and command fits in 24 rows.
        help::draw(theme, frame, frame.area());
    }
}

fn draw_header(app: &App, theme: &Theme, frame: &mut Frame, area: Rect) {
    let mut left = vec![Span::styled(" cachedeck ", theme.title)];
    // Environment and cache names come from AWS and config files: untrusted text.
    let crumbs: Vec<String> = match &app.route {
        Route::Envs => vec!["environments".into()],
        Route::Caches { env } => vec![escape_capped(env, 100)],
        Route::Cache { env, cache } => vec![escape_capped(env, 100), escape_capped(cache, 200)],
    };
    for (i, crumb) in crumbs.into_iter().enumerate() {
        left.push(Span::styled(if i == 0 { "│ " } else { " › " }, theme.muted));
        left.push(Span::styled(crumb, theme.text));
    }
    let mut right = Vec::new();
    // Runs keep going when their view is left: say so on every screen.
    for run in app.active_runs() {
        right.push(Span::styled(
            format!(
                "▶ {} on {}: {} ",
                escape_capped(&run.runbook, 60),
                escape_capped(&run.cache, 100),
                run.status()
            ),
            theme.warn,
        ));
    }
    if let Some(entry) = app.current_env() {
        // Which account this environment really reaches (STS), beside its protection.
        if let Some(account) = &entry.env.account {
            right.push(Span::styled(
                format!("account {} ", crate::escape::escape_capped(&account.id, 20)),
                theme.muted,
            ));
        }
        let (label, style) = protection_badge(entry.env.protection, theme);
        right.push(Span::styled(label, style));
        right.push(Span::raw(" "));
    }
    right.push(Span::styled("?", theme.title));
    right.push(Span::styled(" help ", theme.muted));
    let right_width = right.iter().map(Span::width).sum::<usize>() as u16;
    let [l, r] =
        Layout::horizontal([Constraint::Min(1), Constraint::Length(right_width)]).areas(area);
    frame.render_widget(Line::from(left), l);
    frame.render_widget(Line::from(right), r);
}

/// The badge of a protection level: read-only stands out, the others are quiet.
pub fn protection_badge(p: Protection, theme: &Theme) -> (&'static str, Style) {
    match p {
        Protection::ReadOnly => (" READ-ONLY ", theme.read_only),
        Protection::Confirm => ("[confirm]", theme.confirm),
        Protection::Open => ("[open]", theme.open),
    }
}

fn draw_footer(app: &App, theme: &Theme, frame: &mut Frame, area: Rect) {
    let line = match &app.mode {
        Mode::Command(text) => Line::from(vec![
            Span::styled(":", theme.title),
            Span::styled(text.as_str(), theme.text),
            Span::styled("█", theme.muted),
        ]),
        Mode::Filter(text) => Line::from(vec![
            Span::styled("/", theme.title),
            Span::styled(text.as_str(), theme.text),
            Span::styled("█", theme.muted),
        ]),
        Mode::Normal | Mode::Input => match &app.message {
            Some(m) => Line::from(Span::styled(
                format!(" {}", m.text),
                if m.error { theme.bad } else { theme.muted },
            )),
            None => {
                let mut spans = Vec::new();
                if !app.filter.is_empty() {
                    spans.push(Span::styled(format!(" /{} ", app.filter), theme.warn));
                }
                for (key, what) in hints(app) {
                    spans.push(Span::styled(format!(" {key}"), theme.title));
                    spans.push(Span::styled(format!(" {what}"), theme.muted));
                }
                Line::from(spans)
            }
        },
    };
    frame.render_widget(Paragraph::new(line), area);
}

fn hints(app: &App) -> &'static [(&'static str, &'static str)] {
    if let Some(screen) = app.run_screen() {
        return runbook::hints(app, screen);
    }
    match app.route {
        Route::Envs => &[
            ("⏎", "open"),
            ("/", "filter"),
            (":", "cmd"),
            ("r", "refresh"),
            ("q", "quit"),
        ],
        Route::Caches { .. } => &[
            ("⏎", "open"),
            ("esc", "back"),
            ("/", "filter"),
            (":", "cmd"),
            ("r", "refresh"),
        ],
        Route::Cache { .. } => &[
            ("tab", "panel"),
            ("j/k", "node"),
            ("x", "run"),
            ("esc", "back"),
            (":", "cmd"),
            ("r", "refresh"),
        ],
    }
}

/// The frame every panel sits in.
pub fn panel<'a>(title: impl Into<Line<'a>>, theme: &Theme) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Rounded)
        .border_style(theme.border)
        .title(title)
}

/// A centred message in an area (loading, failed, empty).
pub fn notice(frame: &mut Frame, area: Rect, text: &str, style: Style) {
    let [_, mid, _] = Layout::vertical([
        Constraint::Fill(1),
        Constraint::Length(1),
        Constraint::Fill(1),
    ])
    .areas(area);
    frame.render_widget(
        Paragraph::new(text.to_string())
            .style(style)
            .alignment(ratatui::layout::Alignment::Center),
        mid,
    );
}
