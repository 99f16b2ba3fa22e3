//! The caches of one environment: name, kind, engine/version, status, shards×replicas,
//! TLS/auth, memory used, live ops/s and alerts.

use super::columns::{self, Col};
use super::envs::health_style;
use super::{fmt, notice, panel};
use crate::domain::CacheKind;
use crate::escape::escape;
use crate::tui::app::{App, Health, Load};
use crate::tui::theme::Theme;
use ratatui::Frame;
use ratatui::layout::Rect;
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
    // Cells first, so every column can be sized from what it holds.
    let cells: Vec<([String; 8], ratatui::style::Style)> = caches
        .iter()
        .map(|c| {
            let ops = app.book.cache_ops_per_sec(&c.env, &c.name);
            let mem = app.book.cache_used_memory(&c.env, &c.name);
            let alerts = app.alerts(c);
            // Alerts take the place of the status: at 80 columns there is room for one of
            // them, and a cache with an alert matters more than its "available".
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
            (
                [
                    escape(&c.name),
                    kind_label(c.kind).to_string(),
                    escape(format!("{} {}", c.engine, engine_version(app, c))),
                    c.shape(),
                    format!("{}/{}", if c.tls { "tls" } else { "tcp" }, c.auth),
                    fmt::opt(mem, fmt::bytes),
                    fmt::opt(ops, fmt::count),
                    status,
                ],
                style,
            )
        })
        .collect();
    const HEADER: [&str; 8] = [
        "NAME", "KIND", "ENGINE", "SHAPE", "TLS/AUTH", "MEM", "OPS/S", "STATUS",
    ];
    // Figures change width as they update: MEM and OPS/S keep room for `12.3M`.
    const FLOOR: [u16; 8] = [0, 0, 0, 0, 0, 5, 5, 0];
    const COLS: [Col; 8] = [
        Col::shrink(10),
        Col::FIXED,
        Col::shrink(6),
        Col::FIXED,
        Col::shrink(7),
        Col::FIXED,
        Col::FIXED,
        Col::message(15),
    ];
    let want: Vec<u16> = (0..HEADER.len())
        .map(|i| {
            columns::content_width(
                HEADER[i],
                cells.iter().map(|(row, _)| row[i].as_str()),
                FLOOR[i],
            )
        })
        .collect();
    let widths = columns::fit(&want, &COLS, inner.width, 1);
    let rows = cells.into_iter().map(|(row, style)| {
        let last = row.len() - 1;
        Row::new(row.into_iter().enumerate().map(|(i, text)| {
            let cell = Cell::from(if i == last {
                text
            } else {
                columns::cut_middle(&text, widths[i])
            });
            if i == last { cell.style(style) } else { cell }
        }))
    });
    let table = Table::new(rows, columns::constraints(&widths))
        .header(Row::new(HEADER).style(theme.header))
        .row_highlight_style(theme.selected)
        .block(block);
    let mut state = TableState::default().with_selected(Some(app.selected[1]));
    frame.render_stateful_widget(table, area, &mut state);
}

/// The version discovery found, else the one the nodes report in INFO.
pub fn engine_version(app: &App, c: &crate::domain::Cache) -> String {
    if !c.engine_version.is_empty() {
        return escape(&c.engine_version);
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
