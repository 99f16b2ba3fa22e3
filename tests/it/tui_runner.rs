//! Runbooks from the TUI. Snapshots (tests/snapshots) of the picker, a form with an inline
//! error, a dry run's plan and a run left running (`screens`); then `App` driven through
//! actions with the real `Workers` and the real engine against a real valkey-server
//! (`engine`, on the `session` harness): a health check to the end, a confirmation answered
//! by typing the cache name, one declined, one cancelled with Ctrl-C, a read-only refusal,
//! and quitting while a run is going; a finished ttl-audit run's report screen (`audit`).

mod audit;
mod engine;
mod screens;
mod session;

use cachedeck::domain::{Environment, Protection, ProviderKind};
use cachedeck::tui::app::App;
use cachedeck::tui::theme::Theme;
use cachedeck::tui::view::view;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

pub fn render(app: &App) -> String {
    render_at(app, 100, 26)
}

pub fn render_at(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    terminal
        .draw(|f| view(app, &Theme::monochrome(), f))
        .expect("draw");
    terminal.backend().to_string()
}

pub fn environment(name: &str, protection: Protection) -> Environment {
    Environment {
        name: name.into(),
        provider: ProviderKind::Aws,
        protection,
        profile: None,
        region: Some("eu-west-1".into()),
        endpoint_url: None,
        source: "test".into(),
        account: None,
    }
}
