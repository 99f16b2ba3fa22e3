//! The tabs of the cache view: live stats charts of the selected node, its keyspace, the
//! cache's slowlog (arguments escaped) and its control-plane events.

use super::{fmt, notice, panel};
use crate::escape::{escape, escape_capped};
use crate::tui::app::{App, Load, NodeRow};
use crate::tui::theme::Theme;
use crate::valkey::stats::{HistoryPoint, NodeEntry};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Sparkline, Table};

/// Which figure of a history point a chart plots.
type Pick = fn(&HistoryPoint) -> Option<f64>;

/// Charts and figures of the selected node.
pub fn stats(app: &App, theme: &Theme, frame: &mut Frame, area: Rect, row: Option<&NodeRow<'_>>) {
    let Some(row) = row else {
        notice(frame, area, "no node selected", theme.muted);
        return;
    };
    let Some(entry) = row.live.filter(|e| e.latest.is_some()) else {
        let (state, reason) = row.state();
        let text = match reason {
            Some(r) => format!("{}: {state}: {r}", row.node.id),
            None => format!("{}: waiting for the first sample…", row.node.id),
        };
        notice(
            frame,
            area,
            &text,
            if state == "down" {
                theme.bad
            } else {
                theme.muted
            },
        );
        return;
    };
    let Some(s) = entry.latest.as_ref() else {
        return;
    };
    let [charts, text] = Layout::vertical([Constraint::Min(4), Constraint::Length(3)]).areas(area);
    let [top, bottom] = Layout::vertical([Constraint::Fill(1), Constraint::Fill(1)]).areas(charts);
    let cols = || Layout::horizontal([Constraint::Fill(1); 3]);
    let [a, b, c] = cols().areas(top);
    let [d, e, f] = cols().areas(bottom);

    let mem_title = format!(
        "mem {}/{} frag {}",
        fmt::opt(s.used_memory, fmt::bytes),
        match s.maxmemory {
            Some(0) | None => "∞".to_string(),
            Some(m) => fmt::bytes(m),
        },
        fmt::opt(s.mem_fragmentation_ratio, |r| format!("{r:.2}"))
    );
    let charts: [(Rect, String, f64, Pick, Option<u64>); 6] = [
        (
            a,
            format!("ops/s {}", fmt::opt(s.ops_per_sec, fmt::count)),
            1.0,
            |p| p.ops_per_sec,
            None,
        ),
        (
            b,
            format!("hit rate {}", fmt::opt(s.hit_rate, fmt::percent)),
            100.0,
            |p| p.hit_rate,
            Some(100),
        ),
        (
            c,
            mem_title,
            1.0,
            |p| p.used_memory.map(|v| v as f64),
            s.maxmemory.filter(|m| *m > 0),
        ),
        (
            d,
            format!(
                "clients {} blocked {}",
                fmt::opt(s.connected_clients, |v| v.to_string()),
                fmt::opt(s.blocked_clients, |v| v.to_string())
            ),
            1.0,
            |p| p.connected_clients.map(|v| v as f64),
            None,
        ),
        (
            e,
            format!(
                "evicted {}/s expired {}/s",
                fmt::opt(s.evicted_per_sec, fmt::count),
                fmt::opt(s.expired_per_sec, fmt::count)
            ),
            1.0,
            |p| Some(p.evicted_per_sec.unwrap_or(0.0) + p.expired_per_sec.unwrap_or(0.0)),
            None,
        ),
        (
            f,
            format!(
                "net in {}/s out {}/s",
                fmt::opt(s.net_in_bytes_per_sec.map(|v| v as u64), fmt::bytes),
                fmt::opt(s.net_out_bytes_per_sec.map(|v| v as u64), fmt::bytes)
            ),
            1.0,
            |p| p.net_out_bytes_per_sec,
            None,
        ),
    ];
    for (area, title, scale, pick, max) in charts {
        chart(entry, theme, frame, area, title, scale, pick, max);
    }

    let mut repl = vec![Span::styled(" replication ", theme.header)];
    repl.push(Span::styled(
        format!(
            "{} offset {}",
            s.role.as_str(),
            fmt::opt(s.repl_offset, |o| o.to_string())
        ),
        theme.text,
    ));
    if let Some(link) = &s.master_link_status {
        let style = if link == "up" { theme.good } else { theme.bad };
        repl.push(Span::styled(format!(" · link {}", escape(link)), style));
    }
    for r in &s.replicas {
        repl.push(Span::styled(
            format!(
                " · {} {} lag {}",
                escape(&r.address),
                escape(r.state.as_deref().unwrap_or("?")),
                fmt::opt(r.lag_bytes, fmt::bytes)
            ),
            theme.text,
        ));
    }
    let save_ok = s.rdb_last_bgsave_status.as_deref() != Some("err");
    let persistence = vec![
        Span::styled(" persistence ", theme.header),
        Span::styled(
            format!(
                "rdb {}",
                escape(s.rdb_last_bgsave_status.as_deref().unwrap_or("?"))
            ),
            if save_ok { theme.text } else { theme.bad },
        ),
        Span::styled(
            format!(
                " · last save {} · {} changes since · aof {}",
                s.rdb_last_save_time
                    .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t as i64).ok())
                    .map(|t| {
                        let ago = (app.now - t).whole_seconds().max(0) as u64;
                        format!("{} ({} ago)", fmt::clock(t), fmt::duration(ago))
                    })
                    .unwrap_or_else(|| "never".into()),
                fmt::opt(s.rdb_changes_since_last_save, |v| v.to_string()),
                match s.aof_enabled {
                    Some(true) => "on",
                    Some(false) => "off",
                    None => "?",
                }
            ),
            theme.text,
        ),
    ];
    let mut lines = vec![Line::from(repl), Line::from(persistence)];
    let (state, reason) = row.state();
    if let Some(reason) = reason {
        lines.insert(
            0,
            Line::styled(
                format!(" {state}: {reason} · last known figures"),
                theme.bad,
            ),
        );
    } else {
        lines.push(Line::styled(
            format!(
                " {} · uptime {} · INFO in {:.1} ms",
                s.version.as_deref().map(escape).unwrap_or_default(),
                fmt::opt(s.uptime_seconds, fmt::duration),
                s.latency_ms
            ),
            theme.muted,
        ));
    }
    frame.render_widget(Paragraph::new(lines), text);
}

#[allow(clippy::too_many_arguments)]
fn chart(
    entry: &NodeEntry,
    theme: &Theme,
    frame: &mut Frame,
    area: Rect,
    title: String,
    scale: f64,
    pick: Pick,
    max: Option<u64>,
) {
    let block = panel(Line::styled(format!(" {title} "), theme.text), theme);
    let width = block.inner(area).width as usize;
    let data = entry.history.sparkline(width, scale, pick);
    let mut spark = Sparkline::default()
        .block(block)
        .data(&data)
        .style(theme.chart);
    if let Some(max) = max {
        spark = spark.max(max);
    }
    frame.render_widget(spark, area);
}

/// Keys per database of the selected node, with expiry figures.
pub fn keyspace(
    app: &App,
    theme: &Theme,
    frame: &mut Frame,
    area: Rect,
    row: Option<&NodeRow<'_>>,
) {
    let block = panel(Line::styled(" keyspace ", theme.title), theme);
    let Some(s) = row.and_then(|r| r.live?.latest.as_ref()) else {
        let inner = block.inner(area);
        frame.render_widget(block, area);
        notice(frame, inner, "waiting for the first sample…", theme.muted);
        return;
    };
    let rows = s.keyspace.iter().map(|db| {
        let share = if db.keys > 0 {
            fmt::percent(db.expires as f64 / db.keys as f64)
        } else {
            "-".into()
        };
        Row::new(vec![
            Cell::from(format!("db{}", db.db)),
            Cell::from(db.keys.to_string()),
            Cell::from(db.expires.to_string()),
            Cell::from(share),
            Cell::from(if db.avg_ttl_ms > 0 {
                fmt::duration(db.avg_ttl_ms / 1000)
            } else {
                "-".into()
            }),
        ])
    });
    let title = format!(
        " keyspace of {} · {} keys, {} with TTL ",
        row.map(|r| escape(&r.node.id)).unwrap_or_default(),
        s.keys,
        s.expires,
    );
    let queues = app
        .current_cache()
        .and_then(|c| app.queue_caches.get(&c.name))
        .copied();
    let note = format!(
        " maxmemory-policy {} · {}",
        escape(s.maxmemory_policy.as_deref().unwrap_or("?")),
        match queues {
            Some(true) => "holds job queues (Sidekiq/Celery): only noeviction keeps them safe",
            Some(false) => "no job queues seen",
            None => "looking for job queues…",
        }
    );
    let block = panel(Line::styled(title, theme.title), theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [table_area, note_area] =
        Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(inner);
    frame.render_widget(Paragraph::new(note).style(theme.muted), note_area);
    let table = Table::new(
        rows,
        [
            Constraint::Length(6),
            Constraint::Length(12),
            Constraint::Length(12),
            Constraint::Length(8),
            Constraint::Fill(1),
        ],
    )
    .header(Row::new(["DB", "KEYS", "EXPIRES", "WITH TTL", "AVG TTL"]).style(theme.header));
    frame.render_widget(table, table_area);
}

/// The slowest recent commands of every node of the cache, newest first. Arguments are key
/// names and values: untrusted, so every one goes through the escape function.
pub fn slowlog(app: &App, theme: &Theme, frame: &mut Frame, area: Rect) {
    let block = panel(Line::styled(" slowlog (newest first) ", theme.title), theme);
    let mut entries = Vec::new();
    let mut failures = Vec::new();
    for (node, load) in &app.slowlog {
        match load {
            Load::Ready(list) => entries.extend(
                list.iter()
                    .filter(|e| app.matches(&e.command_line(200)))
                    .map(|e| (node.as_str(), e)),
            ),
            Load::Failed(e) => failures.push(format!("{}: {e}", escape(node))),
            Load::Loading => {}
        }
    }
    entries.sort_by_key(|(_, e)| std::cmp::Reverse((e.timestamp, e.id)));
    if entries.is_empty() {
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let text = if app.slowlog.is_empty() {
            "fetching the slowlog…".to_string()
        } else if !failures.is_empty() {
            failures.join("; ")
        } else {
            "no slow commands logged".to_string()
        };
        notice(frame, inner, &text, theme.muted);
        return;
    }
    let rows = entries.iter().skip(app.scroll).map(|(node, e)| {
        let at = time::OffsetDateTime::from_unix_timestamp(e.timestamp)
            .map(fmt::clock)
            .unwrap_or_else(|_| "?".into());
        Row::new(vec![
            Cell::from(at),
            Cell::from(escape_capped(node, 14)),
            Cell::from(fmt::micros(e.duration_micros)),
            Cell::from(e.command_line(48)),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(8),
            Constraint::Length(14),
            Constraint::Length(8),
            Constraint::Fill(1),
        ],
    )
    .header(Row::new(["TIME", "NODE", "TOOK", "COMMAND"]).style(theme.header))
    .block(block);
    frame.render_widget(table, area);
}

/// Recent control-plane events about the cache (ElastiCache DescribeEvents, or the
/// sandbox's), newest first.
pub fn events(app: &App, theme: &Theme, frame: &mut Frame, area: Rect) {
    let block = panel(Line::styled(" events (newest first) ", theme.title), theme);
    let inner = block.inner(area);
    let list = match &app.events {
        Load::Loading => {
            frame.render_widget(block, area);
            notice(frame, inner, "fetching events…", theme.muted);
            return;
        }
        Load::Failed(e) => {
            frame.render_widget(block, area);
            notice(
                frame,
                inner,
                &format!("events unavailable: {}", escape(e)),
                theme.warn,
            );
            return;
        }
        Load::Ready(list) if list.is_empty() => {
            frame.render_widget(block, area);
            notice(frame, inner, "no events in the last 24 hours", theme.muted);
            return;
        }
        Load::Ready(list) => list,
    };
    let rows = list
        .iter()
        .rev()
        .filter(|e| app.matches(&e.message))
        .skip(app.scroll)
        .map(|e| {
            Row::new(vec![
                Cell::from(fmt::clock(e.time)),
                Cell::from(escape(&e.source)),
                Cell::from(escape(&e.message)),
            ])
        });
    let table = Table::new(
        rows,
        [
            Constraint::Length(8),
            Constraint::Length(16),
            Constraint::Fill(1),
        ],
    )
    .header(Row::new(["TIME", "SOURCE", "MESSAGE"]).style(theme.header))
    .block(block);
    frame.render_widget(table, area);
}

/// A panel's list; when there is none to show, the panel is drawn with what to say instead
/// (`[loading, what, empty]` words for a list still loading, one that failed ("<what>
/// unavailable: …", escaped) and an empty one) and the answer is `None`.
fn listed<'a, T>(
    frame: &mut Frame,
    block: &Block<'_>,
    area: Rect,
    load: &'a Load<Vec<T>>,
    [loading, what, empty]: [&str; 3],
    theme: &Theme,
) -> Option<&'a Vec<T>> {
    let (text, style) = match load {
        Load::Loading => (loading.to_string(), theme.muted),
        Load::Failed(e) => (format!("{what} unavailable: {}", escape(e)), theme.warn),
        Load::Ready(list) if list.is_empty() => (empty.to_string(), theme.muted),
        Load::Ready(list) => return Some(list),
    };
    panel_notice(frame, block, area, &text, style);
    None
}

/// A panel with only a notice in it.
fn panel_notice(
    frame: &mut Frame,
    block: &Block<'_>,
    area: Rect,
    text: &str,
    style: ratatui::style::Style,
) {
    frame.render_widget(block.clone(), area);
    notice(frame, block.inner(area), text, style);
}

/// The cache's snapshots, newest first: name, status, source (manual/automated), created,
/// size where AWS says it, shard count. Names and statuses come from AWS: escaped.
pub fn snapshots(app: &App, theme: &Theme, frame: &mut Frame, area: Rect) {
    let block = panel(
        Line::styled(" snapshots (newest first) ", theme.title),
        theme,
    );
    let applies = app
        .current_cache()
        .is_some_and(|c| crate::watch::snapshot_query(c).is_some());
    if !applies {
        panel_notice(
            frame,
            &block,
            area,
            "AWS keeps snapshots of replication groups and serverless caches; for Valkey on ECS run the `snapshot` runbook (BGSAVE, `download`)",
            theme.muted,
        );
        return;
    }
    let Some(list) = listed(
        frame,
        &block,
        area,
        &app.snapshots,
        [
            "fetching snapshots…",
            "snapshots",
            "no snapshots; `x` → snapshot takes one with a manifest",
        ],
        theme,
    ) else {
        return;
    };
    let rows = list
        .iter()
        .filter(|s| app.matches(&s.name))
        .skip(app.scroll)
        .map(|s| {
            let status_style = match s.status.as_str() {
                "available" => theme.good,
                "failed" => theme.bad,
                _ => theme.warn,
            };
            Row::new(vec![
                Cell::from(escape_capped(&s.name, 60)),
                Cell::from(escape_capped(&s.status, 12)).style(status_style),
                Cell::from(escape_capped(&s.source, 10)),
                Cell::from(s.created.map(fmt::date_time).unwrap_or_else(|| "—".into())),
                // AWS gives a size for some snapshots only (serverless, node-level).
                Cell::from(s.size_bytes.map(fmt::bytes).unwrap_or_else(|| "—".into())),
                Cell::from(
                    s.shard_count
                        .map(|n| n.to_string())
                        .unwrap_or_else(|| "—".into()),
                ),
            ])
        });
    let table = Table::new(
        rows,
        [
            Constraint::Fill(1),
            Constraint::Length(10),
            Constraint::Length(10),
            Constraint::Length(17),
            Constraint::Length(9),
            Constraint::Length(6),
        ],
    )
    .header(
        Row::new([
            "NAME",
            "STATUS",
            "SOURCE",
            "CREATED (UTC)",
            "SIZE",
            "SHARDS",
        ])
        .style(theme.header),
    )
    .block(block);
    frame.render_widget(table, area);
}

/// The ECS services that use the cache: service, running tasks, the container and the
/// variables that point at the cache; the selected one is where `e` opens a shell.
pub fn consumers(app: &App, theme: &Theme, frame: &mut Frame, area: Rect) {
    let block = panel(
        Line::styled(" consumers (e: shell in a task) ", theme.title),
        theme,
    );
    let Some(list) = listed(
        frame,
        &block,
        area,
        &app.consumers,
        [
            "reading task definitions…",
            "consumers",
            "no ECS task definition names this cache (name consumers in the config)",
        ],
        theme,
    ) else {
        return;
    };
    let selected = app.scroll.min(list.len().saturating_sub(1));
    let rows = list.iter().enumerate().map(|(i, c)| {
        let row = Row::new(vec![
            Cell::from(escape(&c.service)),
            Cell::from(c.running.map_or_else(|| "?".to_string(), |n| n.to_string())),
            Cell::from(escape(c.container.as_deref().unwrap_or("-"))),
            Cell::from(escape(c.variables.join(", "))),
            Cell::from(escape(&c.cluster)),
        ]);
        if i == selected {
            row.style(theme.selected)
        } else {
            row
        }
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(22),
            Constraint::Length(5),
            Constraint::Length(12),
            Constraint::Fill(1),
            Constraint::Length(14),
        ],
    )
    .header(Row::new(["SERVICE", "TASKS", "CONTAINER", "VARIABLES", "CLUSTER"]).style(theme.header))
    .block(block);
    frame.render_widget(table, area);
}
