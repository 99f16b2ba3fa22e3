//! A finished `ttl-audit` run in the TUI: its report arrives as the step's `report` output,
//! Enter opens the report screen (totals, findings, the sortable pattern table, the selected
//! pattern's TTL histogram and examples), `s`/`S` reorder it, Esc goes back to the run.
//! Hostile key names reach the screen escaped.

use super::render_at;
use super::screens::{app_on_orders, start_with_defaults};
use cachedeck::domain::Protection;
use cachedeck::runbook::events::{Event, RunState, StepInfo, StepState};
use cachedeck::tui::action::Action;
use cachedeck::tui::app::{App, RunScreen};
use cachedeck::tui::audit::SortBy;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

macro_rules! snap {
    ($name:expr, $screen:expr) => {
        insta::with_settings!({snapshot_path => "../../snapshots", prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!($name, $screen);
        });
    };
}

fn histogram(lt_1m: u64, lt_1d: u64, none: u64) -> serde_json::Value {
    json!({"lt_1m": lt_1m, "lt_1h": 0, "lt_1d": lt_1d, "lt_7d": 0, "lt_30d": 0, "ge_30d": 0, "none": none})
}

/// A report as the `ttl-audit` action returns it; key names come from the cache, so one
/// pattern's examples carry raw ESC and BEL bytes.
fn report(complete: bool) -> serde_json::Value {
    json!({
        "total_keys": 9300, "keys_without_ttl": 5340, "dbsize_start": 9300, "dbsize_end": 9310,
        "complete": complete,
        "incomplete_reasons": if complete { json!([]) } else {
            json!(["scan node 10.0.1.7:6379: no reply to a batch within 10s (after 2 restarts; rerun the audit)"])
        },
        "dedup": "exact", "duplicates_possible": false, "duration_ms": 1234,
        "memory_sampled": true, "memory_bytes": 48_000_000, "overflow_keys": 0,
        "patterns": [
            {"pattern": "cache:product:{n}", "db": 0, "family": "cache", "expectation": "ttl-expected",
             "keys": 5000, "no_ttl": 5000, "memory_bytes": 40_000_000, "no_ttl_memory_bytes": 40_000_000,
             "ttl_histogram": histogram(0, 0, 5000), "types": {"string": 5000},
             "examples": ["cache:product:17", "cache:product:4242"]},
            {"pattern": "session:{hex}", "db": 0, "family": "session store", "expectation": "ttl-expected",
             "keys": 4000, "no_ttl": 300, "memory_bytes": 7_000_000, "no_ttl_memory_bytes": 600_000,
             "ttl_histogram": histogram(200, 3500, 300), "types": {"hash": 4000},
             "examples": ["session:9f86d081884c7d65"]},
            {"pattern": "evil:{bin}", "db": 0, "family": null, "expectation": null,
             "keys": 300, "no_ttl": 40, "memory_bytes": 1_000_000, "no_ttl_memory_bytes": 100_000,
             "ttl_histogram": histogram(0, 260, 40), "types": {"string": 300},
             "examples": ["evil:\u{1b}[2J\u{1b}]0;pwn\u{7}1"]}
        ],
        "top_keys": [
            {"memory_bytes": 65_600, "key": "big:\u{1b}[31mred", "db": 0, "pattern": "big:{bin}", "ttl_ms": -1, "type": "string"}
        ],
        "findings": [
            {"impact_pct": 83.3, "pattern": "cache:product:{n}",
             "message": "83 % of memory (40000000 bytes) is in `cache:product:{n}` keys without TTL (5000 keys); cache keys are expected to expire, so this is a leak"}
        ],
        "shards": []
    })
}

/// Runs `ttl-audit` from the form and feeds the app the engine's events of a finished run.
fn finished_audit(complete: bool) -> App {
    let mut app = app_on_orders(Protection::Open);
    let run = start_with_defaults(&mut app, "ttl-audit");
    let events = [
        Event::RunStarted {
            run_id: "20261124T001500Z-ab12cd34".into(),
            runbook: "ttl-audit".into(),
            env: "dev".into(),
            cache: "orders".into(),
            steps: vec![StepInfo {
                id: "audit".into(),
                title: "scan every key".into(),
                action: "ttl-audit".into(),
                dangerous: false,
            }],
            resumed: false,
        },
        Event::StepStarted {
            step: "audit".into(),
            attempt: 1,
        },
        Event::StepOutput {
            step: "audit".into(),
            line: "83 % of memory (40000000 bytes) is in `cache:product:{n}` keys without TTL"
                .into(),
        },
        Event::StepOutput {
            step: "audit".into(),
            line: "3 % of keys (300) are `session:{hex}` keys without TTL".into(),
        },
        Event::StepFinished {
            step: "audit".into(),
            state: StepState::Succeeded,
            elapsed: Duration::from_millis(1234),
            outputs: BTreeMap::from([
                ("total_keys".to_string(), json!(9300)),
                ("complete".to_string(), json!(complete)),
                ("report".to_string(), report(complete)),
            ]),
            error: None,
        },
        Event::RunFinished {
            run_id: "20261124T001500Z-ab12cd34".into(),
            state: RunState::Succeeded,
            error: None,
        },
    ];
    for event in events {
        app.update(Action::RunEvent {
            run,
            event: Box::new(event),
        });
    }
    app.update(Action::RunEnded { run, error: None });
    app
}

fn selected(app: &App) -> (SortBy, bool, String) {
    match app.run_screen() {
        Some(RunScreen::Audit { view, .. }) => (
            view.sort,
            view.descending,
            view.selected_pattern()
                .map(|p| p.pattern.clone())
                .unwrap_or_default(),
        ),
        other => panic!("not the audit screen: {other:?}"),
    }
}

#[test]
fn tui_audit_report_opens_from_the_finished_run_sorts_and_goes_back() {
    let mut app = finished_audit(true);
    let run_view = render_at(&app, 110, 36);
    assert!(run_view.contains("audit report"), "{run_view}");
    assert!(
        !run_view.contains("ttl_histogram"),
        "the whole report stays out of the run's outputs line: {run_view}"
    );

    // k/j scroll the run's output back and forth, G follows again.
    let back = |app: &App| app.run_of("dev", "orders").map(|r| r.view.scroll_back);
    app.update(Action::Up);
    app.update(Action::Up);
    app.update(Action::Up);
    assert_eq!(back(&app), Some(2), "no further back than the history");
    app.update(Action::Down);
    assert_eq!(back(&app), Some(1));
    app.update(Action::Bottom);
    assert_eq!(back(&app), Some(0));

    app.update(Action::Enter);
    let screen = render_at(&app, 110, 36);
    assert!(
        !screen.contains('\u{1b}') && !screen.contains('\u{7}'),
        "{screen}"
    );
    assert!(
        screen.contains(r"big:\x1b[31mred"),
        "shown escaped: {screen}"
    );
    assert!(screen.contains("9300 keys (DBSIZE 9310)"), "{screen}");
    assert!(screen.contains("83 % of memory"), "{screen}");
    assert_eq!(
        selected(&app),
        (SortBy::NoTtl, true, "cache:product:{n}".into()),
        "leaks first"
    );
    snap!("audit_report", screen);

    app.update(Action::Down);
    assert_eq!(selected(&app).2, "session:{hex}");
    app.update(Action::Sort);
    assert_eq!(
        selected(&app),
        (SortBy::Keys, true, "session:{hex}".into()),
        "the selection follows its row"
    );
    app.update(Action::Sort);
    app.update(Action::ReverseSort);
    app.update(Action::Top);
    assert_eq!(
        selected(&app),
        (SortBy::Memory, false, "evil:{bin}".into()),
        "memory, smallest first"
    );
    let by_memory = render_at(&app, 110, 36);
    assert!(
        by_memory.contains(r"evil:\x1b[2J\x1b]0;pwn\x071"),
        "{by_memory}"
    );
    snap!("audit_report_by_memory_ascending", by_memory);

    app.update(Action::Back);
    assert!(matches!(app.run_screen(), Some(RunScreen::Run { .. })));
}

#[test]
fn tui_audit_report_says_when_it_is_incomplete() {
    let mut app = finished_audit(false);
    app.update(Action::Enter);
    let screen = render_at(&app, 110, 36);
    assert!(screen.contains("INCOMPLETE"), "{screen}");
    assert!(
        screen.contains("no reply to a batch within 10s"),
        "{screen}"
    );
    snap!("audit_report_incomplete", screen);
}
