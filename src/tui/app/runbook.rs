//! Running runbooks from the TUI: the picker (`x`, `:run`), the parameter form, the run view
//! and its confirmation dialog, cancellation, and the results of the run's worker. Keys go
//! here first while one of these screens is open; what they do not use falls through to the
//! ordinary keymap.
//!
//! Leaving the run view (Esc) keeps the run going: the header shows it, `x` on its cache
//! comes back. A run that asks a question brings its view to the front. Quitting with a run
//! going first cancels it cleanly; a second `q` quits at once.

mod keys;

use super::form::Form;
use super::{App, Effect, Load, Mode, Route};
use crate::runbook::engine::Plan;
use crate::runbook::events::Event;
use crate::runbook::validate::Runbook;
use crate::tui::action::Action;
use crate::tui::audit::AuditView;
use crate::tui::run_view::RunView;

/// Which runner screen covers the cache view.
#[derive(Debug)]
pub enum RunScreen {
    /// Runbooks that apply to the cache; `wanted` is a name given with `:run NAME`.
    Picker {
        env: String,
        cache: String,
        runbooks: Load<Vec<Runbook>>,
        selected: usize,
        wanted: Option<String>,
    },
    Form(Box<Form>),
    /// The run of this cache.
    Run {
        env: String,
        cache: String,
    },
    /// The report of this cache's finished `ttl-audit` run.
    Audit {
        env: String,
        cache: String,
        view: Box<AuditView>,
    },
}

impl RunScreen {
    fn is_for(&self, e: &str, c: &str) -> bool {
        match self {
            RunScreen::Picker { env, cache, .. }
            | RunScreen::Run { env, cache }
            | RunScreen::Audit { env, cache, .. } => env == e && cache == c,
            RunScreen::Form(f) => f.env == e && f.cache == c,
        }
    }
}

/// One run started from this TUI (kept after it ends, until the next run of its cache).
#[derive(Debug)]
pub struct RunSession {
    pub id: u64,
    pub env: String,
    pub cache: String,
    pub runbook: String,
    pub dry_run: bool,
    pub plan: Option<Plan>,
    /// How far the plan is scrolled (j/k).
    pub scroll: u16,
    pub view: RunView,
    /// Set when the worker is done; `Some(Some(e))` when the run could not be carried out.
    pub ended: Option<Option<String>>,
    pub cancelling: bool,
}

impl RunSession {
    pub fn active(&self) -> bool {
        self.ended.is_none()
    }

    /// A short state for the header badge.
    pub fn status(&self) -> &'static str {
        match (&self.ended, &self.view.finished) {
            (None, _) if self.view.confirm.is_some() => "waiting for you",
            (None, _) if self.cancelling => "cancelling",
            (None, _) => "running",
            (Some(_), Some((state, _))) => state.as_str(),
            (Some(None), None) if self.dry_run => "planned",
            (Some(_), None) => "failed to start",
        }
    }
}

impl App {
    /// The run of a cache (the live one, or the last one kept).
    pub fn run_of(&self, env: &str, cache: &str) -> Option<&RunSession> {
        self.runs.iter().find(|r| r.env == env && r.cache == cache)
    }

    /// Runs still going.
    pub fn active_runs(&self) -> impl Iterator<Item = &RunSession> {
        self.runs.iter().filter(|r| r.active())
    }

    /// The runner screen, when it belongs to the cache on screen.
    pub fn run_screen(&self) -> Option<&RunScreen> {
        let Route::Cache { env, cache } = &self.route else {
            return None;
        };
        self.run_screen.as_ref().filter(|s| s.is_for(env, cache))
    }

    /// Handles `action` when it concerns runs; gives it back otherwise.
    pub(super) fn update_run(&mut self, action: Action) -> Result<Vec<Effect>, Action> {
        let mut effects = Vec::new();
        match action {
            Action::OpenRunbooks(name) => self.open_runbooks(name, &mut effects),
            Action::Runbooks { env, cache, result } => self.runbooks_arrived(env, cache, result),
            Action::RunPlanned { run, result } => {
                if let Some(s) = self.session_mut(run) {
                    match result {
                        Ok(plan) => s.plan = Some(*plan),
                        Err(e) => s.ended = Some(Some(e)),
                    }
                }
            }
            Action::RunEvent { run, event } => self.run_event(run, *event),
            Action::RunEnded { run, error } => {
                if let Some(s) = self.session_mut(run) {
                    s.ended = Some(error);
                }
                if self.quitting && self.active_runs().next().is_none() {
                    self.quit = true;
                }
            }
            Action::Quit if self.active_runs().next().is_some() => {
                if self.quitting {
                    self.quit = true;
                } else {
                    self.quitting = true;
                    for run in self.active_runs() {
                        effects.push(Effect::CancelRun(run.id));
                    }
                    self.say(
                        "stopping the run cleanly before quitting (its journal says interrupted); q again quits at once",
                        false,
                    );
                }
            }
            // An open prompt or the help overlay takes keys before the screen beneath.
            action if self.help || matches!(self.mode, Mode::Command(_) | Mode::Filter(_)) => {
                return Err(action);
            }
            action => {
                let Some(screen) = self.run_screen.take() else {
                    return Err(action);
                };
                if !self.route_is_for(&screen) {
                    // Left for another screen: the picker or form is dropped (a run keeps
                    // going without its view; the header shows it).
                    return Err(action);
                }
                return match screen {
                    RunScreen::Picker { .. } => self.picker_key(screen, action),
                    RunScreen::Form(form) => self.form_key(*form, action),
                    RunScreen::Run { env, cache } => self.run_key(env, cache, action),
                    RunScreen::Audit { env, cache, view } => {
                        self.audit_key(env, cache, *view, action)
                    }
                };
            }
        }
        Ok(effects)
    }

    /// Keeps the keyboard mode in step with the runner screen: text goes to the form and to
    /// an open confirmation.
    pub(super) fn sync_run_mode(&mut self) {
        let typing = match self.run_screen() {
            Some(RunScreen::Form(_)) => true,
            Some(RunScreen::Run { env, cache }) => self
                .run_of(env, cache)
                .is_some_and(|r| r.view.confirm.is_some()),
            _ => false,
        };
        if typing {
            self.mode = Mode::Input;
        } else if self.mode == Mode::Input {
            self.mode = Mode::Normal;
        }
    }

    fn route_is_for(&self, screen: &RunScreen) -> bool {
        matches!(&self.route, Route::Cache { env, cache } if screen.is_for(env, cache))
    }

    fn session_mut(&mut self, run: u64) -> Option<&mut RunSession> {
        self.runs.iter_mut().find(|r| r.id == run)
    }

    fn open_runbooks(&mut self, name: Option<String>, effects: &mut Vec<Effect>) {
        if matches!(self.route, Route::Caches { .. }) {
            // From the caches list: the selected cache, opened first.
            self.enter();
        }
        let Route::Cache { env, cache } = self.route.clone() else {
            self.say(
                "pick a cache first: x runs a runbook on the selected or open cache",
                true,
            );
            return;
        };
        if self.run_of(&env, &cache).is_some_and(RunSession::active) {
            if name.is_some() {
                self.say("a run is going on this cache; one at a time", true);
            }
            self.run_screen = Some(RunScreen::Run { env, cache });
            return;
        }
        let Some(found) = self.current_cache().cloned() else {
            self.say(
                "this cache has not been discovered yet; try again shortly",
                true,
            );
            return;
        };
        self.run_screen = Some(RunScreen::Picker {
            env: env.clone(),
            cache: cache.clone(),
            runbooks: Load::Loading,
            selected: 0,
            wanted: name,
        });
        effects.push(Effect::LoadRunbooks {
            env,
            cache: Box::new(found),
        });
    }

    fn runbooks_arrived(
        &mut self,
        env: String,
        cache: String,
        result: Result<Vec<Runbook>, String>,
    ) {
        let Some(RunScreen::Picker {
            env: e,
            cache: c,
            runbooks,
            wanted,
            ..
        }) = self.run_screen.as_mut()
        else {
            return;
        };
        if *e != env || *c != cache {
            return;
        }
        *runbooks = match result {
            Ok(list) => Load::Ready(list),
            Err(e) => Load::Failed(e),
        };
        let Some(name) = wanted.take() else { return };
        let Load::Ready(list) = runbooks else { return };
        match list.iter().find(|r| r.name == name) {
            Some(r) => {
                let form = Form::new(&env, &cache, r.clone(), list.clone());
                self.run_screen = Some(RunScreen::Form(Box::new(form)));
            }
            None => self.say(
                &format!("no runbook `{name}` applies to `{cache}`; pick one of these"),
                true,
            ),
        }
    }

    fn run_event(&mut self, run: u64, event: Event) {
        let now = self.now;
        let Some(session) = self.session_mut(run) else {
            // Unknown run: dropping the event answers any question with "no".
            return;
        };
        let asks = matches!(event, Event::NeedsConfirmation { .. });
        session.view.apply_at(event, now);
        if asks {
            // The run waits on the operator: bring its view to the front.
            let (env, cache) = (session.env.clone(), session.cache.clone());
            self.goto(Route::Cache {
                env: env.clone(),
                cache: cache.clone(),
            });
            self.help = false;
            self.run_screen = Some(RunScreen::Run { env, cache });
        }
    }
}
