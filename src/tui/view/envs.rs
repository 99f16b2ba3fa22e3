//! The environments list: name, provider, profile/region, protection, cache count, health.

use super::columns::{self, Col};
use super::{notice, panel, protection_badge};
use crate::escape::escape;
use crate::tui::app::{App, Health, Load};
use crate::tui::theme::Theme;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState, Wrap};

pub fn draw(app: &App, theme: &Theme, frame: &mut Frame, area: Rect) {
    let envs = app.visible_envs();
    let title = format!(" environments ({}) ", envs.len());
    let block = panel(Line::styled(title, theme.title), theme);
    if app.envs.is_empty() {
        let inner = block.inner(area);
        frame.render_widget(block, area);
        notice(
            frame,
            inner,
            "no environments: run `cachedeck sandbox up`, or write a config file",
            theme.warn,
        );
        return;
    }
    let cells: Vec<([String; 6], Style, Style)> = envs
        .iter()
        .map(|entry| {
            let env = &entry.env;
            let place = match (&env.profile, &env.region) {
                (Some(p), Some(r)) => format!("{p} / {r}"),
                (Some(p), None) => p.clone(),
                (None, Some(r)) => r.clone(),
                (None, None) => env.source.clone(),
            };
            let (badge, badge_style) = protection_badge(env.protection, theme);
            let caches = match &entry.discovery {
                Load::Ready(d) => d.caches.len().to_string(),
                Load::Loading => "…".into(),
                Load::Failed(_) => "-".into(),
            };
            let (health, h) = app.env_health(entry);
            (
                [
                    escape(&env.name),
                    env.provider.as_str().to_string(),
                    escape(&place),
                    badge.trim().to_string(),
                    caches,
                    escape(&health),
                ],
                badge_style,
                health_style(h, theme),
            )
        })
        .collect();
    const HEADER: [&str; 6] = [
        "NAME",
        "PROVIDER",
        "PROFILE/REGION",
        "PROTECTION",
        "CACHES",
        "HEALTH",
    ];
    const COLS: [Col; 6] = [
        Col::shrink(10),
        Col::FIXED,
        Col::shrink(10),
        Col::FIXED,
        Col::FIXED,
        Col::message(12),
    ];
    let want: Vec<u16> = (0..HEADER.len())
        .map(|i| columns::content_width(HEADER[i], cells.iter().map(|r| r.0[i].as_str()), 0))
        .collect();
    let widths = columns::fit(&want, &COLS, block.inner(area).width, 1);
    let rows = cells.into_iter().map(|(row, badge_style, health_style)| {
        Row::new(row.into_iter().enumerate().map(|(i, text)| match i {
            3 => Cell::from(text).style(badge_style),
            5 => Cell::from(text).style(health_style),
            _ => Cell::from(columns::cut_middle(&text, widths[i])),
        }))
    });
    let table = Table::new(rows, columns::constraints(&widths))
        .header(Row::new(HEADER).style(theme.header))
        .row_highlight_style(theme.selected)
        .block(block);
    // The selected environment's problems in full: a table cell cannot hold an SSO hint.
    let problems: Vec<String> = match envs.get(app.selected[0]).map(|e| &e.discovery) {
        Some(Load::Failed(e)) => vec![format!("discovery failed: {}", escape(e))],
        Some(Load::Ready(d)) => d.warnings.iter().map(escape).collect(),
        _ => Vec::new(),
    };
    let [list, detail] = Layout::vertical([
        Constraint::Fill(1),
        Constraint::Length(if problems.is_empty() { 0 } else { 4 }),
    ])
    .areas(area);
    let mut state = TableState::default().with_selected(Some(app.selected[0]));
    frame.render_stateful_widget(table, list, &mut state);
    if !problems.is_empty() {
        frame.render_widget(
            Paragraph::new(problems.join("\n"))
                .style(theme.warn)
                .wrap(Wrap { trim: true })
                .block(panel(Line::styled(" problems ", theme.title), theme)),
            detail,
        );
    }
}

pub fn health_style(h: Health, theme: &Theme) -> Style {
    match h {
        Health::Good => theme.good,
        Health::Warn => theme.warn,
        Health::Bad => theme.bad,
        Health::Unknown => theme.muted,
    }
}
