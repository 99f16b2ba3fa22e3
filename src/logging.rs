//! Logging: tracing to a file under the state directory, never to the screen (the TUI owns
//! the terminal, and headless output must stay parseable). `CACHEDECK_LOG` sets the filter.

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

/// Starts file logging; keep the guard alive until exit so buffered lines are written.
/// Logging is best effort: an unwritable state directory leaves it off.
pub fn init() -> Option<WorkerGuard> {
    let dir = crate::config::state_dir().join("logs");
    std::fs::create_dir_all(&dir).ok()?;
    let appender = tracing_appender::rolling::daily(&dir, "cachedeck.log");
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let mut filter = EnvFilter::try_from_env("CACHEDECK_LOG")
        .unwrap_or_else(|_| EnvFilter::new("cachedeck=info,warn"));
    for clamp in crate::aws::SDK_LOG_CLAMPS {
        if let Ok(directive) = clamp.parse() {
            filter = filter.add_directive(directive);
        }
    }
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init()
        .ok()?;
    Some(guard)
}
