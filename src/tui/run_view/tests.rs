use super::*;
use crate::runbook::events::StepInfo;
use std::collections::BTreeMap;

fn started() -> RunView {
    let mut run = RunView::default();
    run.apply(Event::RunStarted {
        run_id: "r1".into(),
        runbook: "marker-roundtrip".into(),
        env: "dev".into(),
        cache: "orders".into(),
        steps: vec![
            StepInfo {
                id: "write".into(),
                title: "write a marker".into(),
                action: "valkey.set".into(),
                dangerous: false,
            },
            StepInfo {
                id: "read".into(),
                title: "read it back".into(),
                action: "valkey.get".into(),
                dangerous: false,
            },
        ],
        resumed: false,
    });
    run
}

#[test]
fn unreached_steps_are_skipped_when_the_run_ends() {
    let mut run = started();
    run.apply(Event::StepStarted {
        step: "write".into(),
        attempt: 1,
    });
    run.apply(Event::StepFinished {
        step: "write".into(),
        state: StepState::Failed,
        elapsed: Duration::from_millis(30),
        outputs: BTreeMap::new(),
        error: Some("boom\x1b[2J".into()),
    });
    run.apply(Event::RunFinished {
        run_id: "r1".into(),
        state: RunState::Failed,
        error: None,
    });
    assert_eq!(run.steps[0].phase, StepPhase::Failed);
    assert_eq!(run.steps[1].phase, StepPhase::Skipped);
    let error = run.steps[0].error.clone().unwrap_or_default();
    assert!(!error.contains('\x1b'), "error must be escaped: {error:?}");
}

#[test]
fn hostile_output_is_escaped_and_capped() {
    let mut run = started();
    for i in 0..(MAX_OUTPUT + 5) {
        run.apply(Event::StepOutput {
            step: "read".into(),
            line: format!("{i}\x1b]0;pwned\x07"),
        });
    }
    assert_eq!(run.output.len(), MAX_OUTPUT);
    assert!(run.output.iter().all(|l| !l.contains('\x1b')));
}

#[test]
fn a_wrong_cache_name_declines_and_a_right_one_accepts() {
    for (typed, want) in [("order", false), ("orders", true)] {
        let mut run = started();
        let (tx, mut rx) = oneshot::channel();
        run.apply(Event::NeedsConfirmation {
            step: "write".into(),
            prompt: "write to orders".into(),
            expect: Some("orders".into()),
            reply: tx,
        });
        if let Some(c) = run.confirm.as_mut() {
            c.typed = typed.into();
        }
        assert!(run.answer(true));
        assert_eq!(rx.try_recv().ok(), Some(want), "typed {typed:?}");
        assert!(run.confirm.is_none());
    }
}

#[test]
fn esc_declines_even_after_typing_the_right_name() {
    let mut run = started();
    let (tx, mut rx) = oneshot::channel();
    run.apply(Event::NeedsConfirmation {
        step: "write".into(),
        prompt: "write".into(),
        expect: Some("orders".into()),
        reply: tx,
    });
    for c in "orderx".chars() {
        run.confirm_input(c);
    }
    run.confirm_backspace();
    run.confirm_input('s');
    run.confirm_input('\u{1b}');
    assert!(run.confirm.as_ref().is_some_and(|c| c.acceptable()));
    assert!(run.answer(false));
    assert_eq!(rx.try_recv().ok(), Some(false));
}
