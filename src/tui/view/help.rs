//! The `?` overlay: every key and every `:` command, from the same tables the keymap and the
//! command parser use.

use super::panel;
use crate::tui::app::command_table;
use crate::tui::keys::HELP;
use crate::tui::theme::Theme;
use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};

pub fn draw(theme: &Theme, frame: &mut Frame, area: Rect) {
    let commands = command_table();
    let height = (HELP.len() + commands.len() + 4) as u16;
    let [row] = Layout::vertical([Constraint::Length(height)])
        .flex(Flex::Center)
        .areas(area);
    let [area] = Layout::horizontal([Constraint::Length(72)])
        .flex(Flex::Center)
        .areas(row);
    let mut lines: Vec<Line> = HELP
        .iter()
        .map(|(keys, what)| {
            Line::from(vec![
                Span::styled(format!(" {keys:<26}"), theme.title),
                Span::styled(*what, theme.text),
            ])
        })
        .collect();
    lines.push(Line::from(""));
    lines.extend(commands.iter().map(|(cmd, what)| {
        Line::from(vec![
            Span::styled(format!(" {cmd:<26}"), theme.title),
            Span::styled(*what, theme.text),
        ])
    }));
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines).block(panel(
            Line::styled(" keys — Esc or ? to close ", theme.title),
            theme,
        )),
        area,
    );
}
