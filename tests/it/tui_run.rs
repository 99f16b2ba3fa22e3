//! The runner view drawn from engine events folded into a `RunView`, pinned with insta
//! snapshots (tests/snapshots): a run in progress with a progress bar and hostile output, a
//! confirmation dialog asking for the cache name, and the final report.

use cachedeck::runbook::events::{Event, RunState, StepInfo, StepState};
use cachedeck::tui::run_view::RunView;
use cachedeck::tui::theme::Theme;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::collections::BTreeMap;
use std::time::Duration;

fn render(run: &RunView) -> String {
    let mut terminal = Terminal::new(TestBackend::new(90, 22)).expect("test terminal");
    terminal
        .draw(|f| cachedeck::tui::view::run_view::draw(run, &Theme::monochrome(), f, f.area()))
        .expect("draw");
    terminal.backend().to_string()
}

macro_rules! snap {
    ($name:expr, $screen:expr) => {
        insta::with_settings!({snapshot_path => "../snapshots", prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!($name, $screen);
        });
    };
}

fn step(id: &str, title: &str, dangerous: bool) -> StepInfo {
    StepInfo {
        id: id.into(),
        title: title.into(),
        action: "valkey.command".into(),
        dangerous,
    }
}

fn in_progress() -> RunView {
    let mut run = RunView::default();
    run.apply(Event::RunStarted {
        run_id: "20261123-210000-ab12".into(),
        runbook: "failover-test".into(),
        env: "prod".into(),
        cache: "orders".into(),
        steps: vec![
            step("health", "check every node answers", false),
            step("failover", "fail over shard 0001", true),
            step("verify", "check the new primary", false),
        ],
        resumed: false,
    });
    run.apply(Event::StepStarted {
        step: "health".into(),
        attempt: 1,
    });
    run.apply(Event::StepOutput {
        step: "health".into(),
        line: "node orders-0001-001 PONG \x1b[31mkey\x07".into(),
    });
    run.apply(Event::StepFinished {
        step: "health".into(),
        state: StepState::Succeeded,
        elapsed: Duration::from_millis(420),
        outputs: BTreeMap::new(),
        error: None,
    });
    run.apply(Event::StepStarted {
        step: "failover".into(),
        attempt: 1,
    });
    run.apply(Event::StepProgress {
        step: "failover".into(),
        done: 3,
        total: Some(8),
        message: "waiting for the replica to be promoted".into(),
    });
    run
}

#[test]
fn run_in_progress_shows_states_a_progress_bar_and_escaped_output() {
    let screen = render(&in_progress());
    assert!(!screen.contains('\x1b'));
    assert!(screen.contains("running"));
    snap!("run_in_progress", screen);
}

#[test]
fn confirmation_asks_for_the_cache_name() {
    let mut run = in_progress();
    let (reply, _rx) = tokio::sync::oneshot::channel();
    run.apply(Event::NeedsConfirmation {
        step: "failover".into(),
        prompt: "fail over shard 0001 of orders".into(),
        expect: Some("orders".into()),
        reply,
    });
    if let Some(c) = run.confirm.as_mut() {
        c.typed = "ord".into();
    }
    let screen = render(&run);
    assert!(screen.contains("type the cache name `orders`"));
    snap!("run_confirm", screen);
}

#[test]
fn final_report_marks_unreached_steps_skipped() {
    let mut run = in_progress();
    run.apply(Event::StepFinished {
        step: "failover".into(),
        state: StepState::Failed,
        elapsed: Duration::from_secs(31),
        outputs: BTreeMap::new(),
        error: Some("test failover: replica did not take over within 30 s".into()),
    });
    run.apply(Event::RunFinished {
        run_id: "20261123-210000-ab12".into(),
        state: RunState::Failed,
        error: Some("step failover failed".into()),
    });
    let screen = render(&run);
    assert!(screen.contains("skipped"));
    assert!(screen.contains("run failed"));
    snap!("run_final_report", screen);
}

#[test]
fn running_step_shows_its_age_and_the_report_what_each_step_found() {
    use time::macros::datetime;
    let mut run = RunView::default();
    let t0 = datetime!(2026-11-23 21:00:00 UTC);
    run.apply_at(
        Event::RunStarted {
            run_id: "20261123-210000-cd34".into(),
            runbook: "health-check".into(),
            env: "dev".into(),
            cache: "orders".into(),
            steps: vec![
                step("ping", "ping every node", false),
                step("verdict", "check the latency", false),
            ],
            resumed: false,
        },
        t0,
    );
    run.apply_at(
        Event::StepStarted {
            step: "ping".into(),
            attempt: 1,
        },
        t0,
    );
    run.now = Some(t0 + time::Duration::seconds(42));
    let screen = render(&run);
    assert!(screen.contains("42 s…"), "{screen}");

    let mut outputs = BTreeMap::new();
    outputs.insert("max_latency_ms".to_string(), serde_json::json!(0.4));
    outputs.insert("nodes".to_string(), serde_json::json!(3));
    // Outputs can hold data from the cache: escaped like output lines.
    outputs.insert("role".to_string(), serde_json::json!("master\u{1b}[2J"));
    run.apply(Event::StepFinished {
        step: "ping".into(),
        state: StepState::Succeeded,
        elapsed: Duration::from_millis(1200),
        outputs,
        error: None,
    });
    run.apply(Event::RunFinished {
        run_id: "20261123-210000-cd34".into(),
        state: RunState::Succeeded,
        error: None,
    });
    let screen = render(&run);
    assert!(screen.contains("\"nodes\":3"), "{screen}");
    assert!(!screen.contains('\x1b'));
    snap!("run_report_outputs", screen);
}

#[test]
fn output_scrolls_back_through_its_history_and_follows_again() {
    let mut run = in_progress();
    for i in 0..60 {
        run.apply(Event::StepOutput {
            step: "failover".into(),
            line: format!("line {i:02}"),
        });
    }
    let following = render(&run);
    assert!(following.contains("line 59"), "{following}");
    assert!(!following.contains("line 30"), "{following}");
    run.scroll_back = 25;
    let back = render(&run);
    assert!(back.contains("25 lines back"), "{back}");
    assert!(
        back.contains("line 34") && !back.contains("line 59"),
        "{back}"
    );
    // Further back than the history stops at its first lines.
    run.scroll_back = 10_000;
    let oldest = render(&run);
    assert!(
        oldest.contains("failover: line 00") || oldest.contains("PONG"),
        "{oldest}"
    );
    assert!(!oldest.contains("line 59"), "{oldest}");
}
