//! The caches of one environment: name, kind, engine/version, status, shards×replicas,
//! TLS/auth, memory used, live ops/s and alerts.

use super::envs::health_style;
use super::{fmt, notice, panel};
use crate::domain::CacheKind;
use crate::escape::escape;
use crate::tui::app::{App, Health, Load};
use crate::tui::theme::Theme;
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Cell, Row, Table, TableState};

pub fn draw(app: &App, theme: &Theme, frame: &mut Frame, area: Rect, env: &str) {
    let Some(entry) = app.env_entry(env) else {
        notice(frame, area, &format!("no environment `{env}`"), theme.bad);
        return;
    };
    let caches = app.visible_caches();
    let title = format!(" caches of {env} ({}) ", caches.len());
    let block = panel(Line::styled(title, theme.title), theme);
    let inner = block.inner(area);
    match &entry.discovery {
        Load::Loading => {
            frame.render_widget(block, area);
            notice(frame, inner, "discovering caches…", theme.muted);
            return;
        }
        Load::Failed(e) => {
            frame.render_widget(block, area);
            notice(
                frame,
                inner,
                &format!("discovery failed: {}", escape(e)),
                theme.bad,
            );
            return;
        }
        Load::Ready(d) if d.caches.is_empty() => {
            frame.render_widget(block, area);
            notice(
                frame,
                inner,
                "no caches found in this environment",
                theme.muted,
            );
            return;
        }
        Load::Ready(_) => {}
    }
    let rows = caches.iter().map(|c| {
        let ops = app.book.cache_ops_per_sec(&c.env, &c.name);
        let mem = app.book.cache_used_memory(&c.env, &c.name);
        let alerts = app.alerts(c);
        // Alerts take the place of the status: at 80 columns there is room for one of them,
        // and a cache with an alert matters more than its "available".
        let (status, style) = if alerts.is_empty() {
            let style = if matches!(c.status.as_str(), "available" | "running" | "ACTIVE") {
                theme.text
            } else {
                theme.warn
            };
            (escape(&c.status), style)
        } else {
            let text = alerts
                .iter()
                .map(|a| a.short())
                .collect::<Vec<_>>()
                .join(", ");
            (format!("⚠ {text}"), health_style(Health::Bad, theme))
        };
        Row::new(vec![
            Cell::from(escape(&c.name)),
            Cell::from(kind_label(c.kind)),
            Cell::from(format!("{} {}", c.engine, engine_version(app, c))),
            Cell::from(c.shape()),
            Cell::from(format!("{}/{}", if c.tls { "tls" } else { "tcp" }, c.auth)),
            Cell::from(fmt::opt(mem, fmt::bytes)),
            Cell::from(fmt::opt(ops, fmt::count)),
            Cell::from(status).style(style),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(12),
            Constraint::Length(10),
            Constraint::Length(10),
            Constraint::Length(5),
            Constraint::Length(9),
            Constraint::Length(5),
            Constraint::Length(5),
            Constraint::Fill(1),
        ],
    )
    .header(
        Row::new([
            "NAME", "KIND", "ENGINE", "SHAPE", "TLS/AUTH", "MEM", "OPS/S", "STATUS",
        ])
        .style(theme.header),
    )
    .row_highlight_style(theme.selected)
    .block(block);
    let mut state = TableState::default().with_selected(Some(app.selected[1]));
    frame.render_stateful_widget(table, area, &mut state);
}

/// The version discovery found, else the one the nodes report in INFO.
pub fn engine_version(app: &App, c: &crate::domain::Cache) -> String {
    if !c.engine_version.is_empty() {
        return c.engine_version.clone();
    }
    app.book
        .cache_nodes(&c.env, &c.name)
        .find_map(|(_, e)| e.latest.as_ref()?.version.clone())
        .map(|v| escape(&v))
        .unwrap_or_default()
}

/// Kinds short enough for a narrow column.
pub fn kind_label(kind: CacheKind) -> &'static str {
    match kind {
        CacheKind::ReplicationGroup => "repl-group",
        CacheKind::Serverless => "serverless",
        CacheKind::CacheCluster => "cluster",
        CacheKind::EcsService => "ecs",
        CacheKind::Endpoint => "endpoint",
    }
}
