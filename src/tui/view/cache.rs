//! One cache: a summary line, its shards and nodes (role, AZ, endpoint, up/down, live
//! figures), and a tabbed panel of stats charts, keyspace, slowlog and events.

use super::caches::kind_label;
use super::columns::{self, Col};
use super::{fmt, notice, panels};
use crate::domain::NodeRole;
use crate::escape::{escape, escape_capped};
use crate::tui::action::{Route, Tab};
use crate::tui::app::{App, Load, NodeRow};
use crate::tui::theme::Theme;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, TableState, Tabs};

pub fn draw(app: &App, theme: &Theme, frame: &mut Frame, area: Rect) {
    let Route::Cache { env, cache: name } = &app.route else {
        return;
    };
    let Some(cache) = app.current_cache() else {
        let text = match app.env_entry(env).map(|e| &e.discovery) {
            Some(Load::Loading) => "discovering…".to_string(),
            Some(Load::Failed(e)) => format!("discovery failed: {}", escape(e)),
            _ => format!("no cache `{}` in {}", escape(name), escape(env)),
        };
        notice(frame, area, &text, theme.muted);
        return;
    };
    let rows = app.node_rows();
    let nodes_height = (rows.len() as u16 + 2).clamp(3, 10);
    let [summary, nodes, tabs, body] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(nodes_height),
        Constraint::Length(1),
        Constraint::Min(4),
    ])
    .areas(area);

    let policy = rows
        .iter()
        .filter_map(|r| r.live?.latest.as_ref()?.maxmemory_policy.clone())
        .next();
    let endpoint = cache
        .endpoint
        .as_ref()
        .map(|e| e.address())
        .unwrap_or_else(|| "-".into());
    let mut spans = vec![
        Span::styled(format!(" {} ", kind_label(cache.kind)), theme.title),
        Span::styled(
            format!(
                "{} {} · {} · {}/{} · {}",
                escape_capped(&cache.engine, 40),
                super::caches::engine_version(app, cache),
                escape(&cache.status),
                if cache.tls { "tls" } else { "tcp" },
                cache.auth,
                escape_capped(endpoint, 200)
            ),
            theme.text,
        ),
    ];
    if let Some(p) = policy {
        spans.push(Span::styled(format!(" · {}", escape(&p)), theme.muted));
    }
    let alerts = app.alerts(cache);
    if !alerts.is_empty() {
        let text = alerts
            .iter()
            .map(|a| a.text())
            .collect::<Vec<_>>()
            .join(", ");
        spans.push(Span::styled(format!("  ⚠ {text}"), theme.bad));
    }
    frame.render_widget(Line::from(spans), summary);

    draw_nodes(app, theme, frame, nodes, &rows);

    let titles = Tab::ALL
        .iter()
        .enumerate()
        .map(|(i, t)| format!("{} {}", i + 1, t.title()));
    frame.render_widget(
        Tabs::new(titles)
            .select(app.tab.index())
            .style(theme.muted)
            .highlight_style(theme.selected)
            .divider("│"),
        tabs,
    );
    let selected = rows.get(app.selected[2]);
    match app.tab {
        Tab::Stats => panels::stats(app, theme, frame, body, selected),
        Tab::Keyspace => panels::keyspace(app, theme, frame, body, selected),
        Tab::Slowlog => panels::slowlog(app, theme, frame, body),
        Tab::Events => panels::events(app, theme, frame, body),
        Tab::Snapshots => panels::snapshots(app, theme, frame, body),
        Tab::Consumers => panels::consumers(app, theme, frame, body),
    }
}

fn draw_nodes(app: &App, theme: &Theme, frame: &mut Frame, area: Rect, rows: &[NodeRow<'_>]) {
    // Node ids and endpoints as wide as they are while the row fits; cut in the middle
    // (keeping the tail that tells nodes apart) only when the terminal is too narrow.
    let ids: Vec<String> = rows.iter().map(|r| escape(&r.node.id)).collect();
    let endpoints: Vec<String> = rows
        .iter()
        .map(|r| escape(format!("{}:{}", r.node.host, r.node.port)))
        .collect();
    // At 80 columns a long node id leaves no room for the endpoint: shorten the role.
    let narrow = area.width < 90;
    let role_width = if narrow { 4 } else { 7 };
    let want = [
        5,
        columns::content_width("NODE", ids.iter().map(String::as_str), 4),
        role_width,
        7,
        columns::content_width("ENDPOINT", endpoints.iter().map(String::as_str), 8),
        5,
        5,
        5,
        5,
        4,
    ];
    let cols = [
        Col::FIXED,
        Col::shrink(8),
        Col::FIXED,
        Col::FIXED,
        Col::shrink(10),
        Col::FIXED,
        Col::FIXED,
        Col::FIXED,
        Col::FIXED,
        Col::message(4),
    ];
    let widths = columns::fit(&want, &cols, area.width, 1);
    let table_rows = rows.iter().enumerate().map(|(i, r)| {
        let stats = r.live.and_then(|e| e.latest.as_ref());
        let (state, reason) = r.state();
        let state_style = match state {
            "up" => theme.good,
            "down" => theme.bad,
            "stale" => theme.warn,
            _ => theme.muted,
        };
        let lag = match (r.role(), stats) {
            (NodeRole::Primary, Some(s)) => s.max_replica_lag_bytes().map(fmt::bytes),
            (NodeRole::Replica, Some(_)) => replica_lag(app, r),
            _ => None,
        };
        let live = state == "up" || state == "stale";
        Row::new(vec![
            Cell::from(escape(r.shard)),
            Cell::from(columns::cut_middle(&ids[i], widths[1])),
            Cell::from(if narrow {
                &r.role().as_str()[..3]
            } else {
                r.role().as_str()
            })
            .style(if r.role() == NodeRole::Primary {
                theme.title
            } else {
                theme.text
            }),
            Cell::from(
                r.node
                    .availability_zone
                    .as_deref()
                    .map_or_else(|| "-".into(), |az| escape_capped(az, 40)),
            ),
            Cell::from(columns::cut_middle(&endpoints[i], widths[4])),
            Cell::from(state).style(state_style),
            Cell::from(if live {
                fmt::opt(stats.and_then(|s| s.ops_per_sec), fmt::count)
            } else {
                "-".into()
            }),
            Cell::from(if live {
                fmt::opt(stats.and_then(|s| s.used_memory), fmt::bytes)
            } else {
                "-".into()
            }),
            Cell::from(lag.unwrap_or_else(|| "-".into())),
            Cell::from(reason.unwrap_or_default()).style(theme.bad),
        ])
    });
    let table = Table::new(table_rows, columns::constraints(&widths))
        .header(
            Row::new([
                "SHARD", "NODE", "ROLE", "AZ", "ENDPOINT", "STATE", "OPS/S", "MEM", "LAG", "NOTE",
            ])
            .style(theme.header),
        )
        .row_highlight_style(theme.selected)
        .block(
            Block::default()
                .borders(Borders::TOP)
                .border_style(theme.border)
                .title(Line::styled(
                    format!(" nodes ({}) ", rows.len()),
                    theme.title,
                )),
        );
    let mut state = TableState::default().with_selected(Some(app.selected[2]));
    frame.render_stateful_widget(table, area, &mut state);
    if rows.is_empty() {
        let inner = Rect {
            y: area.y.saturating_add(2),
            height: area.height.saturating_sub(2),
            ..area
        };
        frame.render_widget(Paragraph::new(" no nodes match").style(theme.muted), inner);
    }
}

/// A replica's lag: its primary's offset minus its own, from the book.
fn replica_lag(app: &App, r: &NodeRow<'_>) -> Option<String> {
    let Route::Cache { env, cache } = &app.route else {
        return None;
    };
    app.book
        .repl_lag_bytes(&crate::valkey::stats::NodeKey {
            env: env.clone(),
            cache: cache.clone(),
            node: r.node.id.clone(),
        })
        .map(fmt::bytes)
}
