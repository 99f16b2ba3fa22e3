//! Everything that can happen to the TUI, as one enum: keys turned into intents, and results
//! of background work. [`super::app::App::update`] is the only place that acts on them.

use crate::controlplane::{CacheEvent, Discovery};
use crate::runbook::engine::Plan;
use crate::runbook::events::Event;
use crate::runbook::validate::Runbook;
use crate::valkey::stats::{SlowlogEntry, StatsEvent};

/// Which screen is showing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Every environment.
    Envs,
    /// The caches of one environment.
    Caches { env: String },
    /// One cache: nodes, live stats, keyspace, slowlog, events.
    Cache { env: String, cache: String },
}

/// The panels of the cache view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tab {
    #[default]
    Stats,
    Keyspace,
    Slowlog,
    Events,
    Snapshots,
    /// The ECS services that use the cache; `e` opens a shell in one.
    Consumers,
}

impl Tab {
    pub const ALL: [Tab; 6] = [
        Tab::Stats,
        Tab::Keyspace,
        Tab::Slowlog,
        Tab::Events,
        Tab::Snapshots,
        Tab::Consumers,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Tab::Stats => "stats",
            Tab::Keyspace => "keyspace",
            Tab::Slowlog => "slowlog",
            Tab::Events => "events",
            Tab::Snapshots => "snapshots",
            Tab::Consumers => "consumers",
        }
    }

    pub fn index(self) -> usize {
        Tab::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }
}

impl Action {
    /// Whether the user caused this (a key, a command), as opposed to background work.
    pub fn is_input(&self) -> bool {
        !matches!(
            self,
            Action::Resize(..)
                | Action::Tick(_)
                | Action::ControlPlaneDue
                | Action::Discovered { .. }
                | Action::Stats { .. }
                | Action::Slowlog { .. }
                | Action::Events { .. }
                | Action::Snapshots { .. }
                | Action::Consumers { .. }
                | Action::ExecEnded { .. }
                | Action::QueueCache { .. }
                | Action::WatchFailed { .. }
                | Action::Runbooks { .. }
                | Action::RunPlanned { .. }
                | Action::RunEvent { .. }
                | Action::RunEnded { .. }
        )
    }
}

/// One thing for the app to do or take note of. Not `Clone`: a run's confirmation question
/// carries the engine's one-shot reply sender, which must have exactly one owner.
#[derive(Debug)]
pub enum Action {
    /// Leave cachedeck (once any run of this TUI has stopped cleanly).
    Quit,
    /// Ctrl-C: cancels the run on screen, and otherwise quits.
    Interrupt,
    /// Move the selection one row down.
    Down,
    /// Move the selection one row up.
    Up,
    /// Jump to the first row.
    Top,
    /// Jump to the last row.
    Bottom,
    /// Move the selection a page down.
    PageDown,
    /// Move the selection a page up.
    PageUp,
    /// Open the selected row (environment → caches → cache).
    Enter,
    /// Close the overlay or prompt, clear the filter, or go up one level, in that order.
    Back,
    /// Poll everything of the current view again now.
    Refresh,
    /// Show or hide the help overlay.
    ToggleHelp,
    /// Start typing a `:` command.
    StartCommand,
    /// Start typing a `/` filter for the current list.
    StartFilter,
    /// A character typed into the open prompt.
    PromptInput(char),
    /// Delete the last character of the open prompt.
    PromptBackspace,
    /// Run the `:` command or keep the `/` filter.
    PromptSubmit,
    /// Show the next panel of the cache view.
    NextTab,
    /// Show the previous panel of the cache view.
    PrevTab,
    /// Show one panel of the cache view.
    SelectTab(Tab),
    /// Go to a screen (from a `:` command).
    Goto(Route),
    /// The terminal changed size.
    Resize(u16, u16),
    /// A second passed: ages ("3 s ago") move on. Carries the wall clock so that `update`
    /// itself never reads it.
    Tick(time::OffsetDateTime),
    /// The control plane's periodic poll is due (discovery, events).
    ControlPlaneDue,
    /// One environment's discovery finished; `error` is the reason it failed.
    Discovered {
        env: String,
        result: Result<Discovery, String>,
    },
    /// A stats poller reported about one node of the watch numbered `watch`.
    Stats {
        watch: u64,
        event: Box<StatsEvent>,
    },
    /// SLOWLOG GET of one node of the watched cache.
    Slowlog {
        watch: u64,
        node: String,
        result: Result<Vec<SlowlogEntry>, String>,
    },
    /// Recent control-plane events of the watched cache.
    Events {
        watch: u64,
        result: Result<Vec<CacheEvent>, String>,
    },
    /// The snapshots of the watched cache.
    Snapshots {
        watch: u64,
        result: Result<Vec<crate::controlplane::Snapshot>, String>,
    },
    /// The consumers of the watched cache (ECS services whose task definitions name it).
    Consumers {
        watch: u64,
        result: Result<Vec<crate::controlplane::ConsumerService>, String>,
    },
    /// `e`: a shell in a task of the selected consumer.
    Exec,
    /// The shell opened by `e` ended: its exit code, or why it could not run.
    ExecEnded {
        service: String,
        result: Result<u8, String>,
    },
    /// Whether a cache holds job queues (Sidekiq, Celery), so eviction would lose jobs.
    QueueCache {
        watch: u64,
        cache: String,
        queues: bool,
    },
    /// The watch could not start for one cache (e.g. its password is not readable).
    WatchFailed {
        watch: u64,
        cache: String,
        reason: String,
    },
    /// Open the runbook picker for the cache on screen (`x`), or the form of the named
    /// runbook (`:run NAME`); shows the cache's run instead while one is going.
    OpenRunbooks(Option<String>),
    /// Cancel the run on screen cleanly (`c`): the journal records it interrupted.
    CancelRun,
    /// Order a report's table by its next column (`s`), or the other way round (`S`).
    Sort,
    ReverseSort,
    /// The runbooks that apply to a cache, for the picker.
    Runbooks {
        env: String,
        cache: String,
        result: Result<Vec<Runbook>, String>,
    },
    /// A dry run's plan (nothing executed), or why it could not be made.
    RunPlanned {
        run: u64,
        result: Result<Box<Plan>, String>,
    },
    /// One engine event of the run numbered `run`.
    RunEvent {
        run: u64,
        event: Box<Event>,
    },
    /// The engine returned: `error` says why the run could not be carried out at all
    /// (preparation refused, lock held); a finished run's state came as an event.
    RunEnded {
        run: u64,
        error: Option<String>,
    },
}
