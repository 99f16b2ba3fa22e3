//! The parameter form: each parameter with its type, value (default filled in), description
//! and, after a refused Enter, its error on the same row; then the dry-run toggle.

use super::panel;
use crate::escape::escape;
use crate::tui::app::Form;
use crate::tui::theme::Theme;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

pub fn draw(form: &Form, theme: &Theme, frame: &mut Frame, area: Rect) {
    let mut lines = Vec::new();
    for text in form.runbook.description.trim().lines() {
        lines.push(Line::styled(format!(" {}", escape(text)), theme.muted));
    }
    if !lines.is_empty() {
        lines.push(Line::from(""));
    }
    // The line of the focused row, to keep it on screen when the form is taller.
    let mut focus_line = 0;
    if form.fields.is_empty() {
        lines.push(Line::styled(" (no parameters)", theme.muted));
    }
    for (i, field) in form.fields.iter().enumerate() {
        let focused = i == form.focus;
        if focused {
            focus_line = lines.len();
        }
        let cursor = if focused { "█" } else { "" };
        let style = if focused { theme.selected } else { theme.text };
        lines.push(Line::from(vec![
            Span::styled(if focused { " › " } else { "   " }, theme.title),
            Span::styled(format!("{:<16}", field.name), theme.title),
            Span::styled(format!("{:<9}", field.kind), theme.muted),
            Span::styled(format!("{}{cursor}", escape(&field.text)), style),
        ]));
        let default = field
            .default
            .as_ref()
            .map(|d| format!(" (default {})", escape(d)))
            .unwrap_or_default();
        lines.push(Line::styled(
            format!("{:28}{}{default}", "", escape(&field.description)),
            theme.muted,
        ));
        if let Some(e) = &field.error {
            lines.push(Line::styled(format!("{:28}✗ {}", "", escape(e)), theme.bad));
        }
    }
    lines.push(Line::from(""));
    let focused = form.focus == form.fields.len();
    if focused {
        focus_line = lines.len();
    }
    lines.push(Line::from(vec![
        Span::styled(if focused { " › " } else { "   " }, theme.title),
        Span::styled(
            format!("[{}] plan only", if form.dry_run { "x" } else { " " }),
            if focused { theme.selected } else { theme.text },
        ),
        Span::styled(
            "  like --dry-run: show the exact calls, execute nothing (Space)",
            theme.muted,
        ),
    ]));
    if let Some(e) = &form.error {
        lines.push(Line::styled(format!(" ✗ {}", escape(e)), theme.bad));
    }
    let mark = if form.mutates() {
        " (changes the cache)"
    } else {
        ""
    };
    let title = format!(
        " {} on {}{mark} — Enter starts, Esc back ",
        form.runbook.name, form.cache
    );
    // Scroll so the focused row and the two lines under it (description, error) show.
    let inner = area.height.saturating_sub(2) as usize;
    let scroll = (focus_line + 3).saturating_sub(inner) as u16;
    frame.render_widget(
        Paragraph::new(lines)
            .scroll((scroll, 0))
            .block(panel(Line::styled(title, theme.title), theme)),
        area,
    );
}
