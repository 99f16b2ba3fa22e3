//! A dry run's plan: the lock calls and, per step, the exact calls it would make. Nothing
//! of it has executed.

use super::panel;
use crate::escape::escape;
use crate::runbook::action::Via;
use crate::runbook::engine::Plan;
use crate::tui::theme::Theme;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

pub fn draw(plan: &Plan, scroll: u16, theme: &Theme, frame: &mut Frame, area: Rect) {
    let mut lines = vec![Line::styled(
        " nothing was executed; a real run would make these calls:",
        theme.muted,
    )];
    for call in &plan.lock {
        lines.push(Line::from(vec![
            Span::styled("   [lock] control-plane ", theme.muted),
            Span::styled(escape(&call.call), theme.text),
        ]));
    }
    for s in &plan.steps {
        let tag = match (s.dangerous, s.confirm) {
            (true, _) => Span::styled("  dangerous", theme.warn),
            (false, true) => Span::styled("  confirm", theme.warn),
            _ => Span::raw(""),
        };
        lines.push(Line::from(vec![
            Span::styled(format!(" {:<12}", s.id), theme.title),
            Span::styled(format!("{:<16}", s.action), theme.muted),
            Span::styled(escape(&s.title), theme.text),
            tag,
        ]));
        for c in &s.calls {
            let via = match &c.via {
                Via::ControlPlane => "control-plane".to_string(),
                Via::Valkey(t) => format!("valkey {t}"),
                Via::Local => "local".to_string(),
            };
            let style = if c.mutates { theme.warn } else { theme.text };
            lines.push(Line::from(vec![
                Span::styled(format!("     {via}: "), theme.muted),
                Span::styled(escape(&c.call), style),
                Span::styled(if c.mutates { " (mutates)" } else { "" }, theme.warn),
            ]));
        }
    }
    let title = format!(" dry run of {} on {} ", plan.runbook, plan.cache);
    // Never past the last screenful.
    let fits = area.height.saturating_sub(2) as usize;
    let scroll = scroll.min(lines.len().saturating_sub(fits) as u16);
    frame.render_widget(
        Paragraph::new(lines)
            .scroll((scroll, 0))
            .block(panel(Line::styled(title, theme.title), theme)),
        area,
    );
}
