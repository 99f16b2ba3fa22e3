//! The event loop: terminal input, results of background work, a one-second tick and the
//! control-plane interval all become actions; `App::update` applies them; the screen is
//! redrawn when something changed — at once after a key, at most every [`FRAME`] for
//! background updates, so a dozen pollers do not repaint a slow SSH link a dozen times a
//! second. The terminal is restored on exit, panic, SIGTERM and SIGHUP.

use super::action::Action;
use super::app::{App, Effect};
use super::keys;
use super::theme::{Theme, no_color_requested};
use super::view::view;
use super::workers::Workers;
use crate::estate::Estate;
use crossterm::event::{Event, EventStream};
use futures::StreamExt;
use ratatui::DefaultTerminal;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

/// Shortest time between two redraws caused by background updates.
const FRAME: Duration = Duration::from_millis(500);

/// Why the TUI could not run.
#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    #[error(
        "open the TUI: standard output is not a terminal; use `cachedeck caches` or `cachedeck envs` for plain output"
    )]
    NotATerminal,
    #[error("drive the terminal: {0}")]
    Terminal(#[from] io::Error),
    #[error(transparent)]
    Estate(#[from] crate::estate::EstateError),
}

/// Restores the terminal when dropped, however the loop ends.
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Ends the process when the terminal is gone and the event loop cannot say so itself.
///
/// crossterm's reader treats a read of 0 bytes (what a hung-up terminal gives) as "nothing
/// yet" and reads again at once, forever, on the thread polling the event stream — the
/// thread the event loop runs on, which then never sees SIGHUP or anything else and spins.
/// This watchdog runs on the runtime's worker threads: once the terminal hung up (SIGHUP,
/// or the terminal's descriptor polls as hung up) it gives the event loop [`HANGUP_GRACE`]
/// to end the usual way, then exits with 129 (128 + SIGHUP). There is no terminal left to
/// restore, and a run in progress is resumable from its journal like any killed run.
struct HangupWatchdog(tokio::task::JoinHandle<()>);

/// How long the event loop has to end by itself after the terminal hung up.
const HANGUP_GRACE: Duration = Duration::from_secs(2);

impl HangupWatchdog {
    fn start() -> HangupWatchdog {
        // Chosen while the terminal is alive: a hung-up one no longer reads as a terminal.
        let watched = TerminalFd::now();
        HangupWatchdog(tokio::spawn(async move {
            let mut sighup = signal(SignalKind::hangup()).ok();
            let mut every = tokio::time::interval(Duration::from_millis(500));
            loop {
                let hup = async {
                    match sighup.as_mut() {
                        Some(s) => {
                            s.recv().await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                tokio::select! {
                    _ = hup => break,
                    _ = every.tick() => {
                        if watched.is_some_and(TerminalFd::hung_up) {
                            break;
                        }
                    }
                }
            }
            tokio::time::sleep(HANGUP_GRACE).await;
            tracing::warn!("the terminal hung up and the event loop did not end; exiting");
            std::process::exit(129);
        }))
    }
}

impl Drop for HangupWatchdog {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The standard stream the terminal is on: input, else output.
#[derive(Debug, Clone, Copy)]
enum TerminalFd {
    Stdin,
    Stdout,
}

impl TerminalFd {
    fn now() -> Option<TerminalFd> {
        use std::io::IsTerminal;
        if io::stdin().is_terminal() {
            Some(TerminalFd::Stdin)
        } else if io::stdout().is_terminal() {
            Some(TerminalFd::Stdout)
        } else {
            None
        }
    }

    /// Whether the terminal has hung up: its descriptor polls as hung up or invalid. Nothing
    /// is read from it.
    fn hung_up(self) -> bool {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use std::os::fd::AsFd;
        let (stdin, stdout) = (io::stdin(), io::stdout());
        let fd = match self {
            TerminalFd::Stdin => stdin.as_fd(),
            TerminalFd::Stdout => stdout.as_fd(),
        };
        let mut fds = [PollFd::new(fd, PollFlags::empty())];
        match poll(&mut fds, PollTimeout::ZERO) {
            Ok(_) => fds[0].revents().is_some_and(|r| {
                r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL)
            }),
            Err(_) => false,
        }
    }
}

/// Runs the TUI until the user quits or a signal asks it to stop. The first frame is drawn
/// before `load` (the config, each environment's credentials and account) finishes, and
/// `q`, Ctrl-C, SIGTERM and SIGHUP are answered while it runs.
pub async fn run<F>(load: F) -> Result<(), TuiError>
where
    F: std::future::Future<Output = Result<Estate, crate::estate::EstateError>>,
{
    use std::io::IsTerminal;
    if !io::stdout().is_terminal() {
        return Err(TuiError::NotATerminal);
    }
    let theme = Theme::load(
        &crate::config::config_dir().join("theme.toml"),
        no_color_requested(),
    );
    // Installs a panic hook that restores the terminal before the panic is printed.
    let mut terminal = ratatui::try_init()?;
    let _guard = TerminalGuard;
    let _watchdog = HangupWatchdog::start();
    // One input stream for the whole session: crossterm's reader is process-wide, and a
    // stream dropped while its reader thread waits would race the next one.
    let mut input = EventStream::new();
    let Some(estate) = loading(&mut terminal, &theme, &mut input, load).await? else {
        return Ok(());
    };
    event_loop(&mut terminal, &mut input, Arc::new(estate), &theme).await
}

/// Shows that environments are loading until `load` is done; `None` when the user left.
async fn loading<F>(
    terminal: &mut DefaultTerminal,
    theme: &Theme,
    input: &mut EventStream,
    load: F,
) -> Result<Option<Estate>, TuiError>
where
    F: std::future::Future<Output = Result<Estate, crate::estate::EstateError>>,
{
    terminal.draw(|f| super::view::loading(theme, f))?;
    tracing::info!("first frame drawn");
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    tokio::pin!(load);
    loop {
        tokio::select! {
            estate = &mut load => return Ok(Some(estate?)),
            event = input.next() => match event {
                Some(Ok(Event::Key(key))) if keys::quits_while_loading(key) => return Ok(None),
                Some(Ok(Event::Resize(..))) => {
                    terminal.draw(|f| super::view::loading(theme, f))?;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(None),
            },
            _ = sigterm.recv() => return Ok(None),
            _ = sighup.recv() => return Ok(None),
        }
    }
}

async fn event_loop(
    terminal: &mut DefaultTerminal,
    input: &mut EventStream,
    estate: Arc<Estate>,
    theme: &Theme,
) -> Result<(), TuiError> {
    let (tx, mut rx) = mpsc::channel::<Action>(1024);
    let mut app = App::new(
        estate.envs.iter().map(|h| h.env.clone()).collect(),
        time::OffsetDateTime::now_utc(),
    );
    let size = terminal.size()?;
    app.size = (size.width, size.height);
    let cp_interval = estate.settings.control_plane_interval;
    let mut workers = Workers::new(estate.clone(), tx);
    // The environments at once, before any discovery starts.
    terminal.draw(|f| view(&app, theme, f))?;
    for effect in app.start() {
        workers.run(effect);
    }

    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut control_plane = tokio::time::interval_at(
        Instant::now() + cp_interval,
        cp_interval.max(Duration::from_secs(1)),
    );
    control_plane.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let mut dirty = false;
    let mut last_draw = Instant::now();

    loop {
        let mut keyed = false;
        let action = tokio::select! {
            event = input.next() => match event {
                Some(Ok(Event::Key(key))) => {
                    keyed = true;
                    keys::action_for(key, &app.mode)
                }
                Some(Ok(Event::Resize(w, h))) => {
                    keyed = true;
                    Some(Action::Resize(w, h))
                }
                Some(Ok(_)) => None,
                Some(Err(e)) => return Err(e.into()),
                None => Some(Action::Quit),
            },
            Some(action) = rx.recv() => Some(action),
            _ = tick.tick() => Some(Action::Tick(time::OffsetDateTime::now_utc())),
            _ = control_plane.tick() => Some(Action::ControlPlaneDue),
            _ = sigterm.recv() => Some(Action::Quit),
            _ = sighup.recv() => Some(Action::Quit),
            _ = tokio::time::sleep_until(last_draw + FRAME), if dirty => None,
        };
        let mut shell = None;
        if let Some(action) = action {
            for effect in app.update(action) {
                match effect {
                    e @ Effect::ExecShell { .. } => shell = Some(e),
                    other => workers.run(other),
                }
            }
            dirty = true;
        }
        // Fold in whatever else has arrived, so one redraw covers a burst of results.
        while let Ok(action) = rx.try_recv() {
            for effect in app.update(action) {
                match effect {
                    e @ Effect::ExecShell { .. } => shell = Some(e),
                    other => workers.run(other),
                }
            }
            dirty = true;
        }
        if let Some(Effect::ExecShell {
            env,
            cluster,
            service,
            container,
        }) = shell
        {
            // The shell gets the terminal: no key reader, normal screen, cooked mode; the
            // TUI's screen comes back after.
            // A fresh, unpolled stream: the old one (and its reader thread) goes now.
            *input = EventStream::new();
            ratatui::restore();
            println!(
                "cachedeck: shell in a task of {} (exit the shell to come back)",
                crate::escape::escape(&service)
            );
            let args = crate::headless::exec::ExecArgs {
                env,
                cache: None,
                service: Some(service.clone()),
                cluster: Some(cluster),
                container,
                task: None,
                command: Vec::new(),
            };
            let result = crate::headless::exec::run_session(&estate, args).await;
            // A new terminal: raw mode, the alternate screen, and empty buffers so the
            // next frame is drawn whole.
            *terminal = ratatui::try_init()?;
            for effect in app.update(Action::ExecEnded { service, result }) {
                workers.run(effect);
            }
            terminal.draw(|f| view(&app, theme, f))?;
            last_draw = Instant::now();
            dirty = false;
            continue;
        }
        if app.quit {
            return Ok(());
        }
        if dirty && (keyed || last_draw.elapsed() >= FRAME) {
            terminal.draw(|f| view(&app, theme, f))?;
            last_draw = Instant::now();
            dirty = false;
        }
    }
}
