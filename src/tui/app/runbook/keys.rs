//! Keys on the runner screens: moving in the picker, editing the form and starting the run,
//! and in the run view answering the confirmation, cancelling, or leaving it running.
//! Each handler takes the screen out of the app and puts it back (or its successor); what
//! it does not use is given back for the ordinary keymap.

use super::{RunScreen, RunSession};
use crate::tui::action::Action;
use crate::tui::app::form::Form;
use crate::tui::app::{App, Effect, Load};
use crate::tui::audit::AuditView;
use crate::tui::run_view::RunView;

impl App {
    pub(super) fn picker_key(
        &mut self,
        mut screen: RunScreen,
        action: Action,
    ) -> Result<Vec<Effect>, Action> {
        let RunScreen::Picker {
            env,
            cache,
            runbooks,
            selected,
            ..
        } = &mut screen
        else {
            return Err(action);
        };
        let len = runbooks.ready().map_or(0, Vec::len);
        let last = len.saturating_sub(1);
        match action {
            Action::Down => *selected = (*selected + 1).min(last),
            Action::Up => *selected = selected.saturating_sub(1),
            Action::Top => *selected = 0,
            Action::Bottom => *selected = last,
            Action::Back | Action::Interrupt => return Ok(Vec::new()),
            Action::Enter => {
                if let Some(list) = runbooks.ready()
                    && let Some(r) = list.get(*selected)
                {
                    let form = Form::new(env, cache, r.clone(), list.clone());
                    self.run_screen = Some(RunScreen::Form(Box::new(form)));
                    return Ok(Vec::new());
                }
            }
            other => {
                self.run_screen = Some(screen);
                return Err(other);
            }
        }
        self.run_screen = Some(screen);
        Ok(Vec::new())
    }

    pub(super) fn form_key(
        &mut self,
        mut form: Form,
        action: Action,
    ) -> Result<Vec<Effect>, Action> {
        match action {
            Action::Down | Action::NextTab => form.move_focus(1),
            Action::Up | Action::PrevTab => form.move_focus(-1),
            Action::PromptInput(c) => form.input(c),
            Action::PromptBackspace => form.backspace(),
            Action::Back | Action::Interrupt => {
                // Back to the picker it came from.
                let selected = form
                    .picked_from
                    .iter()
                    .position(|r| r.name == form.runbook.name)
                    .unwrap_or(0);
                self.run_screen = Some(RunScreen::Picker {
                    env: form.env,
                    cache: form.cache,
                    runbooks: Load::Ready(form.picked_from),
                    selected,
                    wanted: None,
                });
                return Ok(Vec::new());
            }
            Action::PromptSubmit | Action::Enter => {
                if let Some(params) = form.validate() {
                    return Ok(self.start_run(form, params));
                }
            }
            Action::Quit => {
                self.run_screen = Some(RunScreen::Form(Box::new(form)));
                return Err(Action::Quit);
            }
            _ => {}
        }
        self.run_screen = Some(RunScreen::Form(Box::new(form)));
        Ok(Vec::new())
    }

    fn start_run(&mut self, mut form: Form, params: Vec<(String, String)>) -> Vec<Effect> {
        // The run gets the cache as the app holds it: nothing is discovered again.
        let Some(cache) = self
            .caches_of(&form.env)
            .and_then(|caches| caches.iter().find(|c| c.name == form.cache))
            .cloned()
        else {
            form.error = Some(format!(
                "cache `{}` is no longer listed in {}; wait for discovery, then try again",
                crate::escape::escape(&form.cache),
                crate::escape::escape(&form.env)
            ));
            self.run_screen = Some(RunScreen::Form(Box::new(form)));
            return Vec::new();
        };
        let id = self.next_id();
        // One run per cache: the finished one it replaces goes.
        self.runs
            .retain(|r| !(r.env == form.env && r.cache == form.cache));
        self.runs.push(RunSession {
            id,
            env: form.env.clone(),
            cache: form.cache.clone(),
            runbook: form.runbook.name.clone(),
            dry_run: form.dry_run,
            plan: None,
            scroll: 0,
            view: RunView::default(),
            ended: None,
            cancelling: false,
        });
        self.run_screen = Some(RunScreen::Run {
            env: form.env.clone(),
            cache: form.cache.clone(),
        });
        vec![Effect::StartRun {
            run: id,
            env: form.env,
            cache: Box::new(cache),
            runbook: Box::new(form.runbook),
            params,
            dry_run: form.dry_run,
        }]
    }

    pub(super) fn run_key(
        &mut self,
        env: String,
        cache: String,
        action: Action,
    ) -> Result<Vec<Effect>, Action> {
        let screen = RunScreen::Run {
            env: env.clone(),
            cache: cache.clone(),
        };
        let Some(index) = self
            .runs
            .iter()
            .position(|r| r.env == env && r.cache == cache)
        else {
            return Err(action);
        };
        let run = &mut self.runs[index];
        let mut effects = Vec::new();
        if run.view.confirm.is_some() {
            match action {
                Action::PromptInput(c) => run.view.confirm_input(c),
                Action::PromptBackspace => run.view.confirm_backspace(),
                Action::PromptSubmit | Action::Enter => {
                    if run.view.confirm.as_ref().is_some_and(|c| c.acceptable()) {
                        run.view.answer(true);
                    } else {
                        self.say(
                            &format!("type the exact cache name `{cache}`, or Esc to decline"),
                            true,
                        );
                    }
                }
                // The engine records the refusal and ends the run.
                Action::Back => {
                    run.view.answer(false);
                }
                Action::Interrupt | Action::CancelRun => {
                    run.cancelling = true;
                    effects.push(Effect::CancelRun(run.id));
                }
                other => {
                    self.run_screen = Some(screen);
                    return Err(other);
                }
            }
            self.run_screen = Some(screen);
            return Ok(effects);
        }
        match action {
            Action::CancelRun | Action::Interrupt if run.active() => {
                run.cancelling = true;
                effects.push(Effect::CancelRun(run.id));
                self.say(
                    "cancelling: the run stops after the current call; its journal says interrupted",
                    false,
                );
            }
            Action::CancelRun => self.say("this run has ended; nothing to cancel", false),
            // A finished audit opens its report.
            Action::Enter if !run.active() && run.view.audit.is_some() => {
                if let Some(report) = &run.view.audit {
                    self.run_screen = Some(RunScreen::Audit {
                        env,
                        cache,
                        view: Box::new(AuditView::new((**report).clone())),
                    });
                }
                return Ok(effects);
            }
            // A long plan scrolls.
            Action::Down if run.plan.is_some() => run.scroll = run.scroll.saturating_add(1),
            Action::Up if run.plan.is_some() => run.scroll = run.scroll.saturating_sub(1),
            Action::PageDown if run.plan.is_some() => run.scroll = run.scroll.saturating_add(10),
            Action::PageUp if run.plan.is_some() => run.scroll = run.scroll.saturating_sub(10),
            Action::Top if run.plan.is_some() => run.scroll = 0,
            // A run's output scrolls back through its history (k older, j newer, G follows).
            Action::Up
            | Action::Down
            | Action::PageUp
            | Action::PageDown
            | Action::Top
            | Action::Bottom => {
                let oldest = run.view.output.len();
                let back = &mut run.view.scroll_back;
                *back = match action {
                    Action::Up => back.saturating_add(1),
                    Action::Down => back.saturating_sub(1),
                    Action::PageUp => back.saturating_add(10),
                    Action::PageDown => back.saturating_sub(10),
                    Action::Top => oldest,
                    _ => 0,
                }
                .min(oldest);
            }
            // Leaving keeps the run going; the header shows it and `x` comes back.
            Action::Back => {
                if run.active() {
                    self.say("the run goes on; x on this cache shows it again", false);
                }
                return Ok(effects);
            }
            other => {
                self.run_screen = Some(screen);
                return Err(other);
            }
        }
        self.run_screen = Some(screen);
        Ok(effects)
    }

    pub(super) fn audit_key(
        &mut self,
        env: String,
        cache: String,
        mut view: AuditView,
        action: Action,
    ) -> Result<Vec<Effect>, Action> {
        match action {
            Action::Down => view.move_by(1),
            Action::Up => view.move_by(-1),
            Action::PageDown => view.move_by(10),
            Action::PageUp => view.move_by(-10),
            Action::Top => view.top(),
            Action::Bottom => view.bottom(),
            Action::Sort => view.cycle_sort(),
            Action::ReverseSort => view.reverse(),
            // Back to the run it came from.
            Action::Back | Action::Enter => {
                self.run_screen = Some(RunScreen::Run { env, cache });
                return Ok(Vec::new());
            }
            other => {
                self.run_screen = Some(RunScreen::Audit {
                    env,
                    cache,
                    view: Box::new(view),
                });
                return Err(other);
            }
        }
        self.run_screen = Some(RunScreen::Audit {
            env,
            cache,
            view: Box::new(view),
        });
        Ok(Vec::new())
    }
}
