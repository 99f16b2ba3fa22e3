//! The keymap: terminal key events → actions, and the table the help overlay prints. Both
//! come from here so the help can never list a key that does not work.

use super::action::{Action, Tab};
use super::app::Mode;
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// Every key in normal mode, as the help overlay shows it.
pub const HELP: &[(&str, &str)] = &[
    ("j ↓ / k ↑", "move down / up"),
    ("g Home / G End", "first / last row"),
    ("Ctrl-d PgDn / Ctrl-u PgUp", "page down / up"),
    ("Enter l →", "open the selected row"),
    ("Esc h ←", "back (or close help/prompt, clear filter)"),
    (":", "command (see below)"),
    ("/", "filter the list (Enter keeps, Esc clears)"),
    ("Tab / Shift-Tab", "next / previous panel of a cache"),
    ("1 … 6", "panels: stats … snapshots, consumers"),
    ("e", "shell in a consumer's task (ECS Exec)"),
    ("r", "refresh now"),
    (
        "x  :run [NAME]",
        "run a runbook on this cache: pick, fill, ⏎",
    ),
    (
        "c Ctrl-c · Esc in a run",
        "cancel it cleanly · leave it running",
    ),
    ("⏎ · s / S  ttl-audit", "open its report · sort · reverse"),
    ("?", "this help"),
    ("q Ctrl-c", "quit (cancels a running run first)"),
];

/// Whether `key` leaves the TUI while the environments are still loading (`q`, Esc,
/// Ctrl-C): nothing else can be done yet.
pub fn quits_while_loading(key: KeyEvent) -> bool {
    if key.kind == KeyEventKind::Release {
        return false;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    matches!(
        (key.code, ctrl),
        (KeyCode::Char('c'), true) | (KeyCode::Char('q'), false) | (KeyCode::Esc, _)
    )
}

/// The action for a key, given what the keyboard is typing into.
pub fn action_for(key: KeyEvent, mode: &Mode) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && key.code == KeyCode::Char('c') {
        return Some(Action::Interrupt);
    }
    if *mode == Mode::Input {
        // The runner's form or confirmation: text, with Tab/arrows moving between fields.
        return match key.code {
            KeyCode::Enter => Some(Action::PromptSubmit),
            KeyCode::Esc => Some(Action::Back),
            KeyCode::Backspace => Some(Action::PromptBackspace),
            KeyCode::Tab | KeyCode::Down => Some(Action::Down),
            KeyCode::BackTab | KeyCode::Up => Some(Action::Up),
            KeyCode::Char(c) if !ctrl && !c.is_control() => Some(Action::PromptInput(c)),
            _ => None,
        };
    }
    if !matches!(mode, Mode::Normal) {
        return match key.code {
            KeyCode::Enter => Some(Action::PromptSubmit),
            KeyCode::Esc => Some(Action::Back),
            KeyCode::Backspace => Some(Action::PromptBackspace),
            KeyCode::Char(c) if !ctrl && !c.is_control() => Some(Action::PromptInput(c)),
            _ => None,
        };
    }
    let action = match key.code {
        KeyCode::Char('d') if ctrl => Action::PageDown,
        KeyCode::Char('u') if ctrl => Action::PageUp,
        _ if ctrl => return None,
        KeyCode::Char('q') => Action::Quit,
        KeyCode::Char('j') | KeyCode::Down => Action::Down,
        KeyCode::Char('k') | KeyCode::Up => Action::Up,
        KeyCode::Char('g') | KeyCode::Home => Action::Top,
        KeyCode::Char('G') | KeyCode::End => Action::Bottom,
        KeyCode::PageDown => Action::PageDown,
        KeyCode::PageUp => Action::PageUp,
        KeyCode::Enter | KeyCode::Char('l') | KeyCode::Right => Action::Enter,
        KeyCode::Esc | KeyCode::Char('h') | KeyCode::Left | KeyCode::Backspace => Action::Back,
        KeyCode::Char(':') => Action::StartCommand,
        KeyCode::Char('/') => Action::StartFilter,
        KeyCode::Char('?') => Action::ToggleHelp,
        KeyCode::Char('r') => Action::Refresh,
        KeyCode::Char('x') => Action::OpenRunbooks(None),
        KeyCode::Char('c') => Action::CancelRun,
        KeyCode::Char('e') => Action::Exec,
        KeyCode::Char('s') => Action::Sort,
        KeyCode::Char('S') => Action::ReverseSort,
        KeyCode::Tab => Action::NextTab,
        KeyCode::BackTab => Action::PrevTab,
        KeyCode::Char(c @ '1'..='6') => {
            let i = usize::from(c as u8 - b'1');
            Action::SelectTab(Tab::ALL.get(i).copied().unwrap_or_default())
        }
        _ => return None,
    };
    Some(action)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn letters_are_text_in_a_prompt_and_keys_outside_it() {
        let typing = Mode::Filter(String::new());
        assert!(matches!(
            action_for(key(KeyCode::Char('q')), &typing),
            Some(Action::PromptInput('q'))
        ));
        assert!(matches!(
            action_for(key(KeyCode::Char('q')), &Mode::Normal),
            Some(Action::Quit)
        ));
        assert!(matches!(
            action_for(key(KeyCode::Char('3')), &Mode::Normal),
            Some(Action::SelectTab(Tab::Slowlog))
        ));
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert!(matches!(
            action_for(ctrl_c, &typing),
            Some(Action::Interrupt)
        ));
        assert!(matches!(
            action_for(key(KeyCode::Char('x')), &Mode::Input),
            Some(Action::PromptInput('x'))
        ));
        assert!(matches!(
            action_for(key(KeyCode::Tab), &Mode::Input),
            Some(Action::Down)
        ));
    }
}
