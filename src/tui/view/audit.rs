//! The audit report screen: totals against DBSIZE with a complete/incomplete banner, the
//! findings ranked by impact, the sortable pattern table, and for the selected pattern its
//! TTL histogram, types and example keys, beside the biggest keys. Key names were escaped
//! by the audit; they are escaped again here, which leaves escaped text unchanged.

use super::fmt::{bytes, percent};
use super::panel;
use crate::escape::escape_capped;
use crate::tui::audit::{AuditView, SortBy};
use crate::tui::theme::Theme;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{BarChart, Cell, Paragraph, Row, Table, TableState, Wrap};

/// Findings listed above the table (the rest are in the JSON/Markdown report).
const FINDINGS_SHOWN: usize = 3;

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

pub fn draw(v: &AuditView, cache: &str, theme: &Theme, frame: &mut Frame, area: Rect) {
    let r = &v.report;
    let findings = r.findings.len().min(FINDINGS_SHOWN) as u16;
    let banner = 2 + u16::from(!r.complete) * r.incomplete_reasons.len().clamp(1, 2) as u16;
    let [top, table, bottom] = Layout::vertical([
        Constraint::Length(banner + findings + 2),
        Constraint::Fill(1),
        Constraint::Length(11),
    ])
    .areas(area);
    summary(v, cache, theme, frame, top);
    patterns(v, theme, frame, table);
    let [hist, details] =
        Layout::horizontal([Constraint::Length(46), Constraint::Fill(1)]).areas(bottom);
    histogram(v, theme, frame, hist);
    selected(v, theme, frame, details);
}

fn summary(v: &AuditView, cache: &str, theme: &Theme, frame: &mut Frame, area: Rect) {
    let r = &v.report;
    let block = panel(
        Line::styled(
            format!(" ttl-audit report · {} ", escape_capped(cache, 60)),
            theme.title,
        ),
        theme,
    );
    let mut lines = vec![Line::from(vec![
        Span::styled(format!("{} keys", r.total_keys), theme.text),
        Span::styled(format!(" (DBSIZE {})", r.dbsize_end), theme.muted),
        Span::styled(" · ", theme.muted),
        Span::styled(
            format!(
                "{} without TTL ({})",
                r.keys_without_ttl,
                percent(share(r.keys_without_ttl, r.total_keys))
            ),
            if r.keys_without_ttl > 0 {
                theme.warn
            } else {
                theme.good
            },
        ),
        Span::styled(
            format!(
                " · {} patterns · {} ms{}",
                r.patterns.len(),
                r.duration_ms,
                r.memory_bytes
                    .map(|m| format!(" · {} sampled", bytes(m)))
                    .unwrap_or_default()
            ),
            theme.muted,
        ),
    ])];
    if r.complete {
        let dedup = if r.dedup == "exact" {
            "every key counted once"
        } else {
            "keys counted without exact de-duplication"
        };
        lines.push(Line::styled(format!("complete: {dedup}"), theme.good));
    } else {
        lines.push(Line::styled(
            "INCOMPLETE: some keys were not counted — rerun the audit",
            theme.bad,
        ));
        for reason in r.incomplete_reasons.iter().take(2) {
            lines.push(Line::styled(
                format!("  {}", escape_capped(reason, 200)),
                theme.bad,
            ));
        }
    }
    for f in r.findings.iter().take(FINDINGS_SHOWN) {
        lines.push(Line::styled(
            format!("• {}", escape_capped(&f.message, 240)),
            theme.warn,
        ));
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn patterns(v: &AuditView, theme: &Theme, frame: &mut Frame, area: Rect) {
    let arrow = if v.descending { "▼" } else { "▲" };
    let title = format!(
        " patterns — by {} {arrow} (s: sort, S: reverse) ",
        v.sort.label()
    );
    let block = panel(Line::styled(title, theme.title), theme);
    let multi_db = v.multi_db();
    let head = |label: &'static str, col: Option<SortBy>| {
        let mark = if col == Some(v.sort) { arrow } else { "" };
        Cell::from(format!("{label}{mark}"))
    };
    let mut header = vec![head("PATTERN", Some(SortBy::Pattern))];
    if multi_db {
        header.push(head("DB", None));
    }
    header.extend([
        head("FAMILY", None),
        head("KEYS", Some(SortBy::Keys)),
        head("NO TTL", Some(SortBy::NoTtl)),
        head("%", None),
        head("MEMORY", Some(SortBy::Memory)),
    ]);
    let rows = v.rows().map(|p| {
        let leak =
            p.no_ttl > 0 && p.expectation == Some(crate::audit::family::Expectation::TtlExpected);
        let mut cells = vec![Cell::from(escape_capped(&p.pattern, 120))];
        if multi_db {
            cells.push(Cell::from(p.db.to_string()));
        }
        cells.extend([
            Cell::from(escape_capped(p.family.as_deref().unwrap_or(""), 24)),
            Cell::from(p.keys.to_string()),
            Cell::from(p.no_ttl.to_string()).style(if leak { theme.bad } else { theme.text }),
            Cell::from(percent(share(p.no_ttl, p.keys))),
            Cell::from(p.memory_bytes.map(bytes).unwrap_or_else(|| "—".into())),
        ]);
        Row::new(cells)
    });
    let mut widths = vec![Constraint::Fill(1)];
    if multi_db {
        widths.push(Constraint::Length(3));
    }
    widths.extend([
        Constraint::Length(16),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(6),
        Constraint::Length(9),
    ]);
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(theme.header))
        .row_highlight_style(theme.selected)
        .block(block);
    let mut state = TableState::default().with_selected(Some(v.selected));
    frame.render_stateful_widget(table, area, &mut state);
}

fn histogram(v: &AuditView, theme: &Theme, frame: &mut Frame, area: Rect) {
    let Some(p) = v.selected_pattern() else {
        frame.render_widget(panel(" TTLs ", theme), area);
        return;
    };
    let block = panel(
        Line::styled(" TTLs of the selected pattern ", theme.title),
        theme,
    );
    let buckets = p.ttl_histogram.buckets();
    let chart = BarChart::default()
        .block(block)
        .data(&buckets[..])
        .bar_width(5)
        .bar_gap(1)
        .bar_style(theme.chart)
        .value_style(theme.text)
        .label_style(theme.muted);
    frame.render_widget(chart, area);
}

fn selected(v: &AuditView, theme: &Theme, frame: &mut Frame, area: Rect) {
    let block = panel(
        Line::styled(" selected pattern · biggest keys ", theme.title),
        theme,
    );
    let mut lines = Vec::new();
    if let Some(p) = v.selected_pattern() {
        lines.push(Line::styled(escape_capped(&p.pattern, 200), theme.text));
        let types: Vec<String> = p.types.iter().map(|(t, n)| format!("{t} {n}")).collect();
        let expect = match p.expectation {
            Some(crate::audit::family::Expectation::TtlExpected) => " — should expire",
            Some(crate::audit::family::Expectation::NoTtlNormal) => " — no TTL is normal",
            _ => "",
        };
        lines.push(Line::styled(
            format!(
                "types: {} · family: {}{expect}",
                types.join(", "),
                p.family.as_deref().unwrap_or("unknown")
            ),
            theme.muted,
        ));
        for e in &p.examples {
            lines.push(Line::styled(
                format!("  {}", escape_capped(e, 200)),
                theme.text,
            ));
        }
    }
    if !v.report.top_keys.is_empty() {
        lines.push(Line::styled("biggest keys:", theme.header));
        for k in v.report.top_keys.iter().take(5) {
            lines.push(Line::styled(
                format!(
                    "  {:>9}  {}",
                    bytes(k.memory_bytes),
                    escape_capped(&k.key, 120)
                ),
                theme.text,
            ));
        }
    } else if v.report.memory_bytes.is_none() {
        lines.push(Line::styled(
            "memory not sampled (run with memory_samples > 0 for sizes and biggest keys)",
            theme.muted,
        ));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        area,
    );
}
