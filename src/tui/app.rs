//! The TUI's one state, and `update`: the only code that changes it. `update` does no I/O;
//! work it wants done comes back as [`Effect`]s for the runtime to start, and the results
//! come back later as actions. Results of a watch the user has left are dropped.

mod command;
mod form;
mod lists;
mod nav;
mod runbook;
mod watch;

pub use command::parse_command;
pub use form::{Field, Form};
pub use lists::{CacheAlert, Health, NodeRow};
pub use runbook::{RunScreen, RunSession};

/// The `:` commands and what they do, for the help overlay.
pub fn command_table() -> &'static [(&'static str, &'static str)] {
    command::COMMANDS
}

use super::action::{Action, Route, Tab};
use crate::controlplane::{CacheEvent, Discovery};
use crate::domain::{Cache, Environment};
use crate::runbook::Runbook;
use crate::valkey::stats::{SlowlogEntry, StatsBook};
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// Something that is being fetched, has arrived, or could not be had.
#[derive(Debug, Clone, PartialEq)]
pub enum Load<T> {
    Loading,
    Ready(T),
    Failed(String),
}

impl<T> Load<T> {
    pub fn ready(&self) -> Option<&T> {
        match self {
            Load::Ready(t) => Some(t),
            _ => None,
        }
    }
}

/// One environment and what discovery found in it.
#[derive(Debug, Clone)]
pub struct EnvEntry {
    pub env: Environment,
    pub discovery: Load<Discovery>,
}

/// What the keyboard is typing into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// A `:` command being typed.
    Command(String),
    /// A `/` filter being typed (applied live).
    Filter(String),
    /// Text for the runner: a parameter form field, or a confirmation dialog.
    Input,
}

/// Background work `update` asks the runtime to start or stop.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Discover one environment, or all of them.
    Discover(Option<String>),
    /// Poll INFO of every node of these caches; results carry `id`. Replaces any earlier one.
    WatchStats {
        id: u64,
        env: String,
        caches: Vec<Cache>,
    },
    StopStats,
    /// Poll the slowlog and control-plane events of one cache; replaces any earlier one.
    WatchDetail {
        id: u64,
        env: String,
        cache: Box<Cache>,
    },
    StopDetail,
    /// Poll everything watched now, without waiting for the interval.
    PollNow,
    /// List the runbooks that apply to a cache (reads user runbook files).
    LoadRunbooks {
        env: String,
        cache: Box<Cache>,
    },
    /// Prepare and start a run (or only plan it) of the runbook the picker checked on the
    /// cache the app holds; its events come back as `RunEvent`s.
    StartRun {
        run: u64,
        env: String,
        cache: Box<Cache>,
        runbook: Box<Runbook>,
        params: Vec<(String, String)>,
        dry_run: bool,
    },
    /// Cancel a run cleanly through its cancellation token.
    CancelRun(u64),
    /// Find the consumers of a cache; the result comes back as `Action::Consumers`.
    LoadConsumers {
        id: u64,
        env: String,
        cache: Box<Cache>,
    },
    /// Leave the TUI's screen, run an interactive shell in a task of the consumer (ECS
    /// Exec), come back; handled by the runtime, which owns the terminal.
    ExecShell {
        env: String,
        cluster: String,
        service: String,
        container: Option<String>,
    },
}

/// A line at the bottom of the screen for a few seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub text: String,
    pub error: bool,
}

/// The whole TUI state.
#[derive(Debug)]
pub struct App {
    pub envs: Vec<EnvEntry>,
    pub route: Route,
    pub mode: Mode,
    /// The filter of the current list (kept after `/` … Enter, cleared by Esc).
    pub filter: String,
    pub help: bool,
    pub tab: Tab,
    /// Selected row of the envs, caches and nodes lists; scroll of slowlog/events.
    pub selected: [usize; 3],
    pub scroll: usize,
    pub book: StatsBook,
    pub slowlog: BTreeMap<String, Load<Vec<SlowlogEntry>>>,
    pub events: Load<Vec<CacheEvent>>,
    /// The watched cache's snapshots (replication groups and serverless caches).
    pub snapshots: Load<Vec<crate::controlplane::Snapshot>>,
    /// The consumers of the cache on screen.
    pub consumers: Load<Vec<crate::controlplane::ConsumerService>>,
    /// Caches found to hold job queues (Sidekiq, Celery): eviction there loses jobs.
    pub queue_caches: BTreeMap<String, bool>,
    /// Caches whose stats could not be polled at all, with the reason.
    pub watch_errors: BTreeMap<String, String>,
    pub message: Option<Message>,
    pub now: OffsetDateTime,
    pub size: (u16, u16),
    pub quit: bool,
    /// The picker, form or run view covering the cache view.
    pub run_screen: Option<RunScreen>,
    /// Runs started from this TUI: at most one per cache.
    pub runs: Vec<RunSession>,
    /// Quit was asked while a run was going: quit once it has stopped.
    quitting: bool,
    stats_watch: Option<(u64, WatchKey)>,
    detail_watch: Option<(u64, String, String)>,
    next_id: u64,
}

/// What a stats watch polls: restarting it is only worth it when this changes.
type WatchKey = (String, Vec<(String, String, String, u16)>);

impl App {
    pub fn new(envs: Vec<Environment>, now: OffsetDateTime) -> App {
        App {
            envs: envs
                .into_iter()
                .map(|env| EnvEntry {
                    env,
                    discovery: Load::Loading,
                })
                .collect(),
            route: Route::Envs,
            mode: Mode::Normal,
            filter: String::new(),
            help: false,
            tab: Tab::Stats,
            selected: [0; 3],
            scroll: 0,
            book: StatsBook::default(),
            slowlog: BTreeMap::new(),
            events: Load::Loading,
            snapshots: Load::Loading,
            consumers: Load::Loading,
            queue_caches: BTreeMap::new(),
            watch_errors: BTreeMap::new(),
            message: None,
            now,
            size: (80, 24),
            quit: false,
            run_screen: None,
            runs: Vec::new(),
            quitting: false,
            stats_watch: None,
            detail_watch: None,
            next_id: 1,
        }
    }

    /// The first effects: discover every environment.
    pub fn start(&mut self) -> Vec<Effect> {
        vec![Effect::Discover(None)]
    }

    pub fn env_entry(&self, name: &str) -> Option<&EnvEntry> {
        self.envs.iter().find(|e| e.env.name == name)
    }

    /// The caches of an environment, when its discovery has arrived.
    pub fn caches_of(&self, env: &str) -> Option<&[Cache]> {
        self.env_entry(env)
            .and_then(|e| e.discovery.ready())
            .map(|d| d.caches.as_slice())
    }

    /// The cache on screen, when it is known.
    pub fn current_cache(&self) -> Option<&Cache> {
        match &self.route {
            Route::Cache { env, cache } => self.caches_of(env)?.iter().find(|c| &c.name == cache),
            _ => None,
        }
    }

    /// The environment on screen (caches or cache view).
    pub fn current_env(&self) -> Option<&EnvEntry> {
        match &self.route {
            Route::Envs => None,
            Route::Caches { env } | Route::Cache { env, .. } => self.env_entry(env),
        }
    }

    /// Applies one action; returns the background work it calls for.
    pub fn update(&mut self, action: Action) -> Vec<Effect> {
        let mut effects = Vec::new();
        if action.is_input() {
            // A message lasts until the next key: it answered the previous one.
            self.message = None;
        }
        let action = match self.update_run(action) {
            Ok(run_effects) => {
                effects.extend(run_effects);
                self.sync_run_mode();
                effects.extend(self.reconcile_watches());
                return effects;
            }
            Err(action) => action,
        };
        match action {
            Action::Quit => self.quit = true,
            // No run on screen to cancel: Ctrl-C quits (stopping any run cleanly first).
            Action::Interrupt => effects.extend(self.update(Action::Quit)),
            Action::CancelRun => self.say("no run on screen to cancel", false),
            Action::Sort | Action::ReverseSort => {}
            // Handled by `update_run`; here only when no runner screen is open.
            Action::OpenRunbooks(_)
            | Action::Runbooks { .. }
            | Action::RunPlanned { .. }
            | Action::RunEvent { .. }
            | Action::RunEnded { .. } => {}
            Action::Down => self.move_selection(1),
            Action::Up => self.move_selection(-1),
            Action::PageDown => self.move_selection(self.page()),
            Action::PageUp => self.move_selection(-self.page()),
            Action::Top => self.move_selection(isize::MIN / 2),
            Action::Bottom => self.move_selection(isize::MAX / 2),
            Action::Enter => self.enter(),
            Action::Back => self.back(),
            Action::Refresh => {
                effects.push(Effect::Discover(self.route_env()));
                effects.push(Effect::PollNow);
                self.say("refreshing", false);
            }
            Action::ToggleHelp => self.help = !self.help,
            Action::StartCommand => self.mode = Mode::Command(String::new()),
            Action::StartFilter => self.mode = Mode::Filter(self.filter.clone()),
            Action::PromptInput(c) => match &mut self.mode {
                Mode::Command(text) => text.push(c),
                Mode::Filter(text) => {
                    text.push(c);
                    self.filter = text.clone();
                    self.clamp_selection();
                }
                Mode::Normal | Mode::Input => {}
            },
            Action::PromptBackspace => match &mut self.mode {
                Mode::Command(text) => {
                    text.pop();
                }
                Mode::Filter(text) => {
                    text.pop();
                    self.filter = text.clone();
                }
                Mode::Normal | Mode::Input => {}
            },
            Action::PromptSubmit => {
                let mode = std::mem::replace(&mut self.mode, Mode::Normal);
                if let Mode::Command(text) = mode {
                    match parse_command(&text, self) {
                        Ok(action) => effects.extend(self.update(action)),
                        Err(e) => self.say(&e, true),
                    }
                }
            }
            Action::NextTab => self.set_tab(Tab::ALL[(self.tab.index() + 1) % Tab::ALL.len()]),
            Action::PrevTab => {
                self.set_tab(Tab::ALL[(self.tab.index() + Tab::ALL.len() - 1) % Tab::ALL.len()])
            }
            Action::SelectTab(tab) => self.set_tab(tab),
            Action::Goto(route) => self.goto(route),
            Action::Resize(w, h) => self.size = (w, h),
            Action::Tick(now) => {
                self.now = now;
                for run in &mut self.runs {
                    run.view.now = Some(now);
                }
            }
            Action::ControlPlaneDue => effects.push(Effect::Discover(self.route_env())),
            Action::Discovered { env, result } => {
                if let Some(entry) = self.envs.iter_mut().find(|e| e.env.name == env) {
                    entry.discovery = match result {
                        Ok(d) => Load::Ready(d),
                        // Keep what we had: a failed refresh must not blank a working view.
                        Err(e) => match &entry.discovery {
                            Load::Ready(_) => {
                                self.message = Some(Message {
                                    text: format!("{env}: {e}"),
                                    error: true,
                                });
                                entry.discovery.clone()
                            }
                            _ => Load::Failed(e),
                        },
                    };
                }
                self.clamp_selection();
            }
            Action::Stats { watch, event } => {
                if self
                    .stats_watch
                    .as_ref()
                    .is_some_and(|(id, _)| *id == watch)
                {
                    self.book.apply(*event);
                }
            }
            Action::Slowlog {
                watch,
                node,
                result,
            } => {
                if self.detail_is(watch) {
                    let load = match result {
                        Ok(entries) => Load::Ready(entries),
                        Err(e) => Load::Failed(e),
                    };
                    self.slowlog.insert(node, load);
                }
            }
            Action::Events { watch, result } => {
                if self.detail_is(watch) {
                    self.events = match result {
                        Ok(events) => Load::Ready(events),
                        Err(e) => Load::Failed(e),
                    };
                }
            }
            Action::Snapshots { watch, result } => {
                if self.detail_is(watch) {
                    self.snapshots = match result {
                        Ok(mut list) => {
                            // Newest first, as the console lists them.
                            list.sort_by_key(|s| std::cmp::Reverse(s.created));
                            Load::Ready(list)
                        }
                        Err(e) => Load::Failed(e),
                    };
                }
            }
            Action::Consumers { watch, result } => {
                if self.detail_is(watch) {
                    self.consumers = match result {
                        Ok(list) => Load::Ready(list),
                        Err(e) => Load::Failed(e),
                    };
                }
            }
            Action::Exec => effects.extend(self.exec_shell()),
            Action::ExecEnded { service, result } => match result {
                Ok(_) => self.say(&format!("shell in {service} closed"), false),
                Err(e) => self.say(&format!("shell in {service}: {e}"), true),
            },
            Action::QueueCache {
                watch,
                cache,
                queues,
            } => {
                if self
                    .stats_watch
                    .as_ref()
                    .is_some_and(|(id, _)| *id == watch)
                {
                    self.queue_caches.insert(cache, queues);
                }
            }
            Action::WatchFailed {
                watch,
                cache,
                reason,
            } => {
                if self
                    .stats_watch
                    .as_ref()
                    .is_some_and(|(id, _)| *id == watch)
                {
                    self.watch_errors.insert(cache, reason);
                }
            }
        }
        self.sync_run_mode();
        effects.extend(self.reconcile_watches());
        effects
    }

    fn detail_is(&self, watch: u64) -> bool {
        self.detail_watch
            .as_ref()
            .is_some_and(|(id, ..)| *id == watch)
    }

    fn route_env(&self) -> Option<String> {
        match &self.route {
            Route::Envs => None,
            Route::Caches { env } | Route::Cache { env, .. } => Some(env.clone()),
        }
    }

    fn say(&mut self, text: &str, error: bool) {
        self.message = Some(Message {
            text: text.to_string(),
            error,
        });
    }
}

#[cfg(test)]
mod tests;

impl App {
    /// `e` on the consumers panel: a shell in the selected consumer's task.
    fn exec_shell(&mut self) -> Vec<Effect> {
        let Route::Cache { env, .. } = &self.route else {
            return Vec::new();
        };
        let env = env.clone();
        if self.tab != Tab::Consumers {
            self.say(
                "e opens a shell in a consumer: choose one on the consumers panel (6)",
                false,
            );
            return Vec::new();
        }
        let chosen = self
            .consumers
            .ready()
            .and_then(|list| list.get(self.scroll.min(list.len().saturating_sub(1))))
            .cloned();
        let Some(c) = chosen else {
            self.say("no consumer to open a shell in", false);
            return Vec::new();
        };
        vec![Effect::ExecShell {
            env,
            cluster: c.cluster,
            service: c.service,
            container: c.container,
        }]
    }
}
