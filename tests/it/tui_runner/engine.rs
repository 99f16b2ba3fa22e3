//! Runs from the TUI through the real engine, to their end.

use super::render;
use super::session::{Session, phases};
use crate::harness::valkey::raw_command;
use cachedeck::runbook::events::RunState;
use cachedeck::tui::action::Action;
use cachedeck::tui::app::{Mode, RunScreen};
use cachedeck::tui::run_view::StepPhase;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tui_runner_health_check_runs_to_the_end_through_the_engine() {
    let mut s = Session::start("dev").await;
    s.act(Action::OpenRunbooks(None));
    s.until("the picker", |app| {
        matches!(app.run_screen(), Some(RunScreen::Picker { runbooks, .. }) if runbooks.ready().is_some())
    })
    .await;
    let Some(RunScreen::Picker { runbooks, .. }) = s.app.run_screen() else {
        panic!("picker");
    };
    let index = runbooks
        .ready()
        .and_then(|l| l.iter().position(|r| r.name == "health-check"))
        .expect("health-check applies to an endpoint");
    for _ in 0..index {
        s.act(Action::Down);
    }
    s.act(Action::Enter);
    assert!(matches!(s.app.run_screen(), Some(RunScreen::Form(_))));
    s.act(Action::PromptSubmit);
    s.until("the run to end", |app| {
        app.runs.first().is_some_and(|r| !r.active())
    })
    .await;
    let run = s.run();
    assert_eq!(run.ended, Some(None));
    assert_eq!(
        run.view.finished.as_ref().map(|f| f.0),
        Some(RunState::Succeeded),
        "{run:?}"
    );
    assert_eq!(
        phases(run),
        ["ping", "info", "verdict"].map(|id| (id.to_string(), StepPhase::Ok))
    );
    assert!(run.view.steps.iter().all(|s| s.elapsed.is_some()));
    let ping = &run.view.steps[0].outputs;
    assert!(ping.contains("max_latency_ms"), "{ping}");
    assert_eq!(
        s.journal_states().last().map(String::as_str),
        Some("succeeded")
    );
    let screen = render(&s.app);
    assert!(screen.contains("run succeeded"), "{screen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tui_runner_confirmation_answered_with_the_cache_name_runs_the_mutation() {
    let mut s = Session::start("prod").await;
    s.start_run("marker-roundtrip").await;
    s.until("the confirmation", |app| {
        app.runs.first().is_some_and(|r| r.view.confirm.is_some())
    })
    .await;
    assert_eq!(s.app.mode, Mode::Input);
    let confirm = s.run().view.confirm.as_ref().expect("confirm");
    assert_eq!(confirm.step, "write");
    assert_eq!(confirm.expect.as_deref(), Some("orders"));
    // A wrong name is not an answer: the question stays open, nothing is written.
    s.type_text("order");
    s.act(Action::PromptSubmit);
    assert!(s.run().view.confirm.is_some());
    assert!(s.app.message.as_ref().is_some_and(|m| m.error));
    s.type_text("s");
    s.act(Action::PromptSubmit);
    assert!(s.run().view.confirm.is_none());
    assert_eq!(s.app.mode, Mode::Normal);
    s.until("the run to end", |app| {
        app.runs.first().is_some_and(|r| !r.active())
    })
    .await;
    let run = s.run();
    assert_eq!(
        run.view.finished.as_ref().map(|f| f.0),
        Some(RunState::Succeeded),
        "{run:?}"
    );
    assert!(phases(run).iter().all(|(_, p)| *p == StepPhase::Ok));
    let key = format!("cachedeck:marker:{}", run.view.run_id);
    assert!(
        raw_command(s.server.port(), &["GET", &key]).contains(&run.view.run_id),
        "the marker was written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tui_runner_declined_confirmation_refuses_the_run_and_writes_nothing() {
    let mut s = Session::start("prod").await;
    s.start_run("marker-roundtrip").await;
    s.until("the confirmation", |app| {
        app.runs.first().is_some_and(|r| r.view.confirm.is_some())
    })
    .await;
    s.act(Action::Back);
    s.until("the run to end", |app| {
        app.runs.first().is_some_and(|r| !r.active())
    })
    .await;
    let run = s.run();
    let (state, error) = run.view.finished.clone().expect("finished");
    assert_eq!(state, RunState::Refused);
    assert!(error.is_some_and(|e| e.contains("declined")));
    assert_eq!(
        phases(run),
        [
            ("reachable".to_string(), StepPhase::Ok),
            ("write".to_string(), StepPhase::Failed),
            ("pause".to_string(), StepPhase::Skipped),
            ("read".to_string(), StepPhase::Skipped),
        ]
    );
    assert_eq!(s.markers(), "*0\r\n", "nothing was written");
    assert_eq!(
        s.journal_states().last().map(String::as_str),
        Some("refused")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tui_runner_ctrl_c_at_a_confirmation_interrupts_cleanly() {
    let mut s = Session::start("prod").await;
    s.start_run("marker-roundtrip").await;
    s.until("the confirmation", |app| {
        app.runs.first().is_some_and(|r| r.view.confirm.is_some())
    })
    .await;
    s.act(Action::Interrupt);
    assert!(!s.app.quit, "Ctrl-C in a run cancels the run, not the TUI");
    s.until("the run to end", |app| {
        app.runs.first().is_some_and(|r| !r.active())
    })
    .await;
    let run = s.run();
    assert_eq!(
        run.view.finished.as_ref().map(|f| f.0),
        Some(RunState::Interrupted),
        "{run:?}"
    );
    assert_eq!(run.view.steps[1].phase, StepPhase::Interrupted);
    assert_eq!(s.markers(), "*0\r\n", "nothing was written");
    assert_eq!(
        s.journal_states().last().map(String::as_str),
        Some("interrupted")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tui_runner_quit_during_a_run_cancels_it_first_then_quits() {
    let mut s = Session::start("dev").await;
    s.act(Action::StartCommand);
    s.type_text("run marker-roundtrip");
    s.act(Action::PromptSubmit);
    s.until("the form", |app| {
        matches!(app.run_screen(), Some(RunScreen::Form(_)))
    })
    .await;
    // Second field is `pause`: make it long enough to quit in the middle of it.
    s.act(Action::Down);
    for _ in 0..2 {
        s.act(Action::PromptBackspace);
    }
    s.type_text("60s");
    s.act(Action::PromptSubmit);
    // An open environment still asks before a dangerous step; Enter is the answer there.
    s.until("the confirmation", |app| {
        app.runs
            .first()
            .is_some_and(|r| r.view.confirm.as_ref().is_some_and(|c| c.expect.is_none()))
    })
    .await;
    s.act(Action::PromptSubmit);
    s.until("the pause step", |app| {
        app.runs.first().is_some_and(|r| {
            r.view
                .steps
                .iter()
                .any(|st| st.id == "pause" && matches!(st.phase, StepPhase::Running { .. }))
        })
    })
    .await;
    // Leave the run view, then quit: the run is cancelled cleanly before the TUI goes.
    s.act(Action::Back);
    s.act(Action::Quit);
    assert!(!s.app.quit, "quit waits for the run to stop");
    s.until("quit", |app| app.quit).await;
    let run = s.run();
    assert_eq!(
        run.view.finished.as_ref().map(|f| f.0),
        Some(RunState::Interrupted),
        "{run:?}"
    );
    assert_eq!(
        s.journal_states().last().map(String::as_str),
        Some("interrupted")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tui_runner_read_only_environment_refuses_a_mutating_runbook_before_it_starts() {
    let mut s = Session::start("ro").await;
    s.act(Action::OpenRunbooks(None));
    s.until("the picker", |app| {
        matches!(app.run_screen(), Some(RunScreen::Picker { runbooks, .. }) if runbooks.ready().is_some())
    })
    .await;
    assert!(render(&s.app).contains("refused"));
    s.act(Action::Back);
    s.start_run("marker-roundtrip").await;
    s.until("the refusal", |app| {
        app.runs.first().is_some_and(|r| !r.active())
    })
    .await;
    let run = s.run();
    let error = run.ended.clone().flatten().expect("refused");
    assert!(error.contains("read-only"), "{error}");
    assert!(run.view.steps.is_empty(), "nothing ran");
    assert_eq!(s.markers(), "*0\r\n");
    assert!(render(&s.app).contains("is read-only"));
}
