//! The runner screens drawn from `App` state (no workers: effects are returned, not run).

use super::session::FakePlane;
use super::{environment, render};
use cachedeck::controlplane::Discovery;
use cachedeck::domain::{AuthMode, Cache, CacheKind, Credentials, Endpoint, Endpoints, Protection};
use cachedeck::runbook::engine::{Engine, Target};
use cachedeck::runbook::events::{Event, StepInfo};
use cachedeck::runbook::{actions, catalog, validate};
use cachedeck::tui::action::{Action, Route};
use cachedeck::tui::app::{App, Effect, Mode, RunScreen};
use cachedeck::valkey::connect::ConnectOptions;
use std::sync::Arc;
use time::macros::datetime;

macro_rules! snap {
    ($name:expr, $screen:expr) => {
        insta::with_settings!({snapshot_path => "../../snapshots", prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!($name, $screen);
        });
    };
}

/// The cache of the snapshots: a plain endpoint at a fixed address.
fn orders(env: &str) -> Cache {
    Cache {
        name: "orders".into(),
        env: env.into(),
        kind: CacheKind::Endpoint,
        engine: "valkey".into(),
        engine_version: "8.1".into(),
        status: "available".into(),
        cluster_mode: false,
        auth: AuthMode::None,
        tls: false,
        endpoint: Some(Endpoint::new("127.0.0.1", 6390, false)),
        endpoints: Endpoints::default(),
        shards: vec![],
        automatic_failover: false,
        multi_az: false,
        arn: None,
        description: None,
        notes: vec![],
        credentials: Credentials::default(),
        ecs: None,
    }
}

/// An app on `dev/orders` with discovery done (no workers: effects are returned, not run).
pub(super) fn app_on_orders(protection: Protection) -> App {
    let mut app = App::new(
        vec![environment("dev", protection)],
        datetime!(2026-11-23 21:00:00 UTC),
    );
    app.size = (100, 26);
    app.update(Action::Discovered {
        env: "dev".into(),
        result: Ok(Discovery {
            caches: vec![orders("dev")],
            warnings: vec![],
        }),
    });
    app.update(Action::Goto(Route::Cache {
        env: "dev".into(),
        cache: "orders".into(),
    }));
    app
}

/// The shipped runbooks that apply to an endpoint, as the picker's worker lists them.
fn builtin_runbooks() -> Vec<validate::Runbook> {
    // Only the shipped ones (source `builtin:…`): the tester's own runbooks stay out of the
    // snapshots.
    let mut found: Vec<validate::Runbook> = catalog::all(&actions::builtin())
        .into_iter()
        .flatten()
        .filter(|r| r.source.starts_with("builtin") && r.applies_to.contains(&CacheKind::Endpoint))
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}

/// Opens `runbook`'s form on orders and starts it with its defaults; returns the run's id.
pub(super) fn start_with_defaults(app: &mut App, runbook: &str) -> u64 {
    app.update(Action::OpenRunbooks(Some(runbook.into())));
    app.update(Action::Runbooks {
        env: "dev".into(),
        cache: "orders".into(),
        result: Ok(builtin_runbooks()),
    });
    let effects = app.update(Action::PromptSubmit);
    effects
        .iter()
        .find_map(|e| match e {
            Effect::StartRun { run, .. } => Some(*run),
            _ => None,
        })
        .expect("the run starts")
}

/// Opens the picker and feeds it the shipped runbooks that apply to an endpoint.
fn picker(app: &mut App) {
    let effects = app.update(Action::OpenRunbooks(None));
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::LoadRunbooks { cache, .. } if cache.name == "orders")),
        "{effects:?}"
    );
    app.update(Action::Runbooks {
        env: "dev".into(),
        cache: "orders".into(),
        result: Ok(builtin_runbooks()),
    });
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        app.update(Action::PromptInput(c));
    }
}

#[test]
fn tui_runner_picker_lists_applicable_runbooks_with_a_mutation_mark() {
    let mut app = app_on_orders(Protection::Open);
    picker(&mut app);
    let screen = render(&app);
    assert!(screen.contains("health-check"), "{screen}");
    assert!(screen.contains("mutates"), "{screen}");
    // Dry run by default: changes the cache only when asked to.
    assert!(
        screen
            .lines()
            .any(|l| l.contains("ttl-remediate") && l.contains("if asked")),
        "{screen}"
    );
    // failover-test does not apply to a plain endpoint.
    assert!(!screen.contains("failover-test"), "{screen}");
    snap!("runner_picker", screen);
}

#[test]
fn tui_runner_x_on_the_caches_list_opens_the_selected_cache_and_its_picker() {
    let mut app = app_on_orders(Protection::Open);
    app.update(Action::Goto(Route::Caches { env: "dev".into() }));
    let effects = app.update(Action::OpenRunbooks(None));
    assert_eq!(
        app.route,
        Route::Cache {
            env: "dev".into(),
            cache: "orders".into()
        }
    );
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::LoadRunbooks { cache, .. } if cache.name == "orders")),
        "{effects:?}"
    );
    assert!(matches!(app.run_screen(), Some(RunScreen::Picker { .. })));
}

#[test]
fn tui_runner_form_shows_a_bad_value_on_its_field_and_starts_nothing() {
    let mut app = app_on_orders(Protection::Open);
    app.update(Action::OpenRunbooks(Some("health-check".into())));
    app.update(Action::Runbooks {
        env: "dev".into(),
        cache: "orders".into(),
        result: Ok(builtin_runbooks()),
    });
    assert!(matches!(app.run_screen(), Some(RunScreen::Form(_))));
    assert_eq!(app.mode, Mode::Input, "the form takes text");
    for _ in 0..3 {
        app.update(Action::PromptBackspace);
    }
    type_text(&mut app, "fast");
    let effects = app.update(Action::PromptSubmit);
    assert!(
        !effects.iter().any(|e| matches!(e, Effect::StartRun { .. })),
        "{effects:?}"
    );
    let Some(RunScreen::Form(form)) = app.run_screen() else {
        panic!("the form stays open");
    };
    assert_eq!(
        form.fields[0].error.as_deref(),
        Some("`fast` is not an integer")
    );
    let screen = render(&app);
    assert!(screen.contains("`fast` is not an integer"), "{screen}");
    snap!("runner_form_error", screen);

    // Fixed, it starts (q is text in a form, not quit).
    for _ in 0..4 {
        app.update(Action::PromptBackspace);
    }
    type_text(&mut app, "100");
    let effects = app.update(Action::PromptSubmit);
    assert!(!app.quit);
    assert!(
        effects.iter().any(
            |e| matches!(e, Effect::StartRun { params, dry_run: false, .. }
            if params == &[("max_latency_ms".to_string(), "100".to_string())])
        ),
        "{effects:?}"
    );
}

#[test]
fn tui_runner_dry_run_shows_the_plan() {
    let mut app = app_on_orders(Protection::Open);
    app.update(Action::OpenRunbooks(Some("marker-roundtrip".into())));
    app.update(Action::Runbooks {
        env: "dev".into(),
        cache: "orders".into(),
        result: Ok(builtin_runbooks()),
    });
    // The dry-run toggle is the last row: Up from the first field wraps to it.
    app.update(Action::Up);
    app.update(Action::PromptInput(' '));
    let effects = app.update(Action::PromptSubmit);
    let Some(Effect::StartRun { run, dry_run, .. }) = effects
        .iter()
        .find(|e| matches!(e, Effect::StartRun { .. }))
    else {
        panic!("no start: {effects:?}");
    };
    assert!(dry_run);
    let runbook = catalog::find("marker-roundtrip", &actions::builtin()).expect("runbook");
    let params = validate::bind_params(&runbook, &[]).expect("defaults");
    let target = Target {
        env: environment("dev", Protection::Open),
        cache: orders("dev"),
        plane: Arc::new(FakePlane::new(environment("dev", Protection::Open))),
    };
    let engine = Engine::new(
        actions::builtin(),
        std::env::temp_dir(),
        ConnectOptions::default(),
    );
    let plan = engine.plan(&runbook, &params, &target);
    let run = *run;
    app.update(Action::RunPlanned {
        run,
        result: Ok(Box::new(plan)),
    });
    app.update(Action::RunEnded { run, error: None });
    let screen = render(&app);
    assert!(screen.contains("PutParameter"), "{screen}");
    assert!(screen.contains("(mutates)"), "{screen}");
    snap!("runner_dry_run_plan", screen);
}

#[test]
fn tui_runner_a_run_left_keeps_going_in_the_header_and_x_returns_to_it() {
    let mut app = app_on_orders(Protection::Confirm);
    let run = start_with_defaults(&mut app, "health-check");
    app.update(Action::RunEvent {
        run,
        event: Box::new(Event::RunStarted {
            run_id: "20261123-210000-ab12".into(),
            runbook: "health-check".into(),
            env: "dev".into(),
            cache: "orders".into(),
            steps: ["ping", "info", "verdict"]
                .iter()
                .map(|s| StepInfo {
                    id: s.to_string(),
                    title: format!("{s} step"),
                    action: s.to_string(),
                    dangerous: false,
                })
                .collect(),
            resumed: false,
        }),
    });
    app.update(Action::RunEvent {
        run,
        event: Box::new(Event::StepStarted {
            step: "ping".into(),
            attempt: 1,
        }),
    });
    // Esc leaves the view; the run goes on and the header says so on every screen.
    app.update(Action::Back);
    assert!(app.run_screen().is_none());
    app.update(Action::Back);
    let screen = render(&app);
    assert!(
        screen.contains("▶ health-check on orders: running"),
        "{screen}"
    );
    snap!("runner_left_running", screen);
    // `c` outside the run view cancels nothing.
    let effects = app.update(Action::CancelRun);
    assert!(!effects.iter().any(|e| matches!(e, Effect::CancelRun(_))));
    // Ctrl-C there would quit: with a run going it stops the run first.
    let effects = app.update(Action::Interrupt);
    assert!(!app.quit);
    assert!(effects.contains(&Effect::CancelRun(run)), "{effects:?}");
    app.update(Action::Enter);
    assert_eq!(
        app.route,
        Route::Cache {
            env: "dev".into(),
            cache: "orders".into()
        }
    );
    // One run per cache: `x` shows the running one instead of a picker.
    let effects = app.update(Action::OpenRunbooks(None));
    assert!(effects.is_empty(), "{effects:?}");
    assert!(matches!(app.run_screen(), Some(RunScreen::Run { .. })));
    let effects = app.update(Action::CancelRun);
    assert!(effects.contains(&Effect::CancelRun(run)), "{effects:?}");
    // Quit asked twice while the run still has not stopped: the second one quits at once.
    app.update(Action::Quit);
    assert!(app.quit);
}

#[test]
fn tui_runner_a_tall_form_scrolls_to_the_focused_row() {
    let mut app = app_on_orders(Protection::Open);
    app.update(Action::OpenRunbooks(Some("ttl-remediate".into())));
    app.update(Action::Runbooks {
        env: "dev".into(),
        cache: "orders".into(),
        result: Ok(builtin_runbooks()),
    });
    let Some(RunScreen::Form(form)) = app.run_screen() else {
        panic!("the ttl-remediate form");
    };
    assert!(form.fields.len() > 6, "a form taller than the screen");
    // Look-only with its defaults (dry_run = true): not marked as changing the cache.
    assert!(!form.mutates());
    let first = format!("› {}", form.fields[0].name);
    let screen = render(&app);
    assert!(screen.contains(&first), "{screen}");
    assert!(!screen.contains("[ ] plan only"), "{screen}");
    // Up from the first row wraps to the plan-only toggle at the bottom: it scrolls in.
    app.update(Action::Up);
    let screen = render(&app);
    assert!(screen.contains("› [ ] plan only"), "{screen}");
    // Turning the runbook's own dry run off makes it a run that changes the cache.
    let Some(RunScreen::Form(form)) = app.run_screen() else {
        panic!("form");
    };
    let dry_run = form
        .fields
        .iter()
        .position(|f| f.name == "dry_run")
        .expect("dry_run parameter");
    let up = form.fields.len() - dry_run;
    for _ in 0..up {
        app.update(Action::Up);
    }
    for _ in 0.."true".len() {
        app.update(Action::PromptBackspace);
    }
    type_text(&mut app, "false");
    let Some(RunScreen::Form(form)) = app.run_screen() else {
        panic!("form");
    };
    assert!(form.mutates());
    assert!(render(&app).contains("(changes the cache)"));
}
