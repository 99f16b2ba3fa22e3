//! The runbook picker: the runbooks that apply to the cache's kind, with a mark on those
//! that change the cache (they take its lock and ask before their dangerous steps), and
//! on those a read-only environment refuses.

use super::{notice, panel};
use crate::escape::escape;
use crate::runbook::validate::Runbook;
use crate::runbook::value::Value;
use crate::tui::app::Load;
use crate::tui::theme::Theme;
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Cell, Row, Table, TableState};

/// Whether a run with the default parameters changes the cache (a step's `dangerous_unless`
/// flag can make it look-only), as protection will judge it.
fn mutates_by_default(r: &Runbook) -> bool {
    r.clone()
        .for_params(|n| match r.param(n)?.default.as_ref()? {
            Value::Json(v) => v.as_bool(),
            Value::Secret(_) => None,
        })
        .mutates()
}

pub fn draw(
    cache: &str,
    read_only: bool,
    runbooks: &Load<Vec<Runbook>>,
    selected: usize,
    theme: &Theme,
    frame: &mut Frame,
    area: Rect,
) {
    let block = panel(
        Line::styled(format!(" run a runbook on {} ", escape(cache)), theme.title),
        theme,
    );
    let inner = block.inner(area);
    let list = match runbooks {
        Load::Loading => {
            frame.render_widget(block, area);
            notice(frame, inner, "reading runbooks…", theme.muted);
            return;
        }
        Load::Failed(e) => {
            frame.render_widget(block, area);
            notice(frame, inner, &escape(e), theme.bad);
            return;
        }
        Load::Ready(list) if list.is_empty() => {
            frame.render_widget(block, area);
            notice(
                frame,
                inner,
                "no runbook applies to this kind of cache",
                theme.muted,
            );
            return;
        }
        Load::Ready(list) => list,
    };
    let rows = list.iter().map(|r| {
        let (mark, style) = if mutates_by_default(r) && read_only {
            // The engine would refuse it here: say so before the operator fills a form.
            ("refused", theme.bad)
        } else if mutates_by_default(r) {
            ("mutates", theme.warn)
        } else if r.mutates() {
            // Look-only unless a parameter says otherwise (e.g. a dry run by default).
            ("if asked", theme.warn)
        } else {
            ("look only", theme.muted)
        };
        Row::new(vec![
            Cell::from(escape(&r.name)),
            Cell::from(mark).style(style),
            Cell::from(escape(&r.title)),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(20),
            Constraint::Length(10),
            Constraint::Fill(1),
        ],
    )
    .header(Row::new(["RUNBOOK", "CHANGES", "WHAT IT DOES"]).style(theme.header))
    .row_highlight_style(theme.selected)
    .block(block);
    let mut state = TableState::default().with_selected(Some(selected));
    frame.render_stateful_widget(table, area, &mut state);
}
