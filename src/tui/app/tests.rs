use super::*;
use crate::domain::{Protection, ProviderKind};

fn env(name: &str) -> Environment {
    Environment {
        name: name.into(),
        provider: ProviderKind::Sandbox,
        protection: Protection::Open,
        profile: None,
        region: None,
        endpoint_url: None,
        source: "test".into(),
        account: None,
    }
}

#[test]
fn esc_closes_help_then_prompt_then_filter_then_goes_up() {
    let mut app = App::new(vec![env("dev")], OffsetDateTime::UNIX_EPOCH);
    app.update(Action::Goto(Route::Caches { env: "dev".into() }));
    app.filter = "x".into();
    app.help = true;
    app.mode = Mode::Command("ca".into());
    app.update(Action::Back);
    assert!(!app.help);
    app.update(Action::Back);
    assert_eq!(app.mode, Mode::Normal);
    app.update(Action::Back);
    assert!(app.filter.is_empty());
    assert_eq!(app.route, Route::Caches { env: "dev".into() });
    app.update(Action::Back);
    assert_eq!(app.route, Route::Envs);
}

#[test]
fn refresh_rediscovers_the_current_environment_and_polls_now() {
    let mut app = App::new(vec![env("dev"), env("prod")], OffsetDateTime::UNIX_EPOCH);
    app.update(Action::Goto(Route::Caches { env: "prod".into() }));
    let effects = app.update(Action::Refresh);
    assert!(effects.contains(&Effect::Discover(Some("prod".into()))));
    assert!(effects.contains(&Effect::PollNow));
}

#[test]
fn a_failed_refresh_keeps_the_caches_already_shown() {
    let mut app = App::new(vec![env("dev")], OffsetDateTime::UNIX_EPOCH);
    let ok = Discovery::default();
    app.update(Action::Discovered {
        env: "dev".into(),
        result: Ok(ok),
    });
    app.update(Action::Discovered {
        env: "dev".into(),
        result: Err("throttled".into()),
    });
    assert!(app.envs[0].discovery.ready().is_some());
    assert!(app.message.as_ref().is_some_and(|m| m.error));
}
