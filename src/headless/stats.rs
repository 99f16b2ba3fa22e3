//! `cachedeck stats CACHE --env ENV`: per-node live figures of one cache, once (two samples
//! one interval apart, so rates are real) or every interval until Ctrl-C.
//!
//! A node that cannot be reached is a row with `up: false` and the reason, never a failure
//! of the command: the exit code is non-zero only when the cache itself cannot be found.

mod render;

use super::Format;
use super::exit;
use crate::controlplane::ControlPlane;
use crate::domain::Cache;
use crate::estate::{Estate, EstateError, static_caches};
use crate::valkey::connect::ConnectOptions;
use crate::valkey::stats::{NodeKey, PollerConfig, StatsBook, StatsEvent, poll_nodes};
use crate::watch::{self, Sink, StatsConfig, Update};
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// One report, or one per interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Once,
    Watch,
}

pub async fn run(
    estate: &Estate,
    env: &str,
    cache: &str,
    mode: Mode,
    interval: Option<Duration>,
    output: Format,
) -> anyhow::Result<ExitCode> {
    let (plane, cache) = match find(estate, env, cache).await {
        Ok(found) => found,
        Err((code, e)) => {
            super::print_error(e);
            return Ok(ExitCode::from(code));
        }
    };
    let interval = interval
        .unwrap_or(estate.settings.stats_interval)
        .max(Duration::from_millis(100));
    let options = ConnectOptions::from_settings(&estate.settings);
    let nodes = poll_nodes(&cache);
    let mut book = StatsBook::new(4);
    let keys: Vec<NodeKey> = nodes
        .iter()
        .map(|n| NodeKey {
            env: cache.env.clone(),
            cache: cache.name.clone(),
            node: n.id.clone(),
        })
        .collect();
    for k in &keys {
        book.track(k.clone());
    }
    let (tx, mut rx) = mpsc::channel(64);
    let config = StatsConfig {
        options,
        poller: PollerConfig {
            interval,
            max_backoff: interval.max(Duration::from_secs(30)),
        },
        queues: false,
    };
    let _watch = watch::stats(plane, vec![cache.clone()], config, Sink::plain(tx));
    match mode {
        Mode::Once => {
            let patience = interval + (options.connect_timeout + options.command_timeout) * 2;
            collect_once(&mut rx, &mut book, &keys, patience).await;
            emit(
                &render::Context {
                    cache: &cache,
                    nodes: &nodes,
                    book: &book,
                },
                output,
                false,
            );
        }
        Mode::Watch => {
            // The first report waits a little past one interval, so the second sample (and
            // with it every rate) has arrived.
            let grace = (interval / 4).min(Duration::from_millis(250));
            let mut tick =
                tokio::time::interval_at(tokio::time::Instant::now() + interval + grace, interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    Some(update) = rx.recv() => apply(&mut book, &keys, update),
                    _ = tick.tick() => {
                        let ctx = render::Context { cache: &cache, nodes: &nodes, book: &book };
                        if !emit(&ctx, output, true) {
                            break; // stdout closed (e.g. `| head`)
                        }
                    }
                    _ = tokio::signal::ctrl_c() => break,
                }
            }
        }
    }
    Ok(ExitCode::from(exit::OK))
}

/// Waits until every node has two samples (a real interval) or has failed, or `patience`
/// runs out.
async fn collect_once(
    rx: &mut mpsc::Receiver<Update>,
    book: &mut StatsBook,
    keys: &[NodeKey],
    patience: Duration,
) {
    let finished = |book: &StatsBook| {
        keys.iter().all(|k| {
            book.get(k)
                .is_none_or(|e| e.history.len() >= 2 || e.consecutive_failures > 0)
        })
    };
    let deadline = tokio::time::Instant::now() + patience;
    while !finished(book) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(update)) => apply(book, keys, update),
            _ => break,
        }
    }
}

/// Folds one update of the stats watch into the book. Credentials that cannot be resolved
/// make every node a "down" row with the reason.
fn apply(book: &mut StatsBook, keys: &[NodeKey], update: Update) {
    match update {
        Update::Stats(event) => book.apply(event),
        Update::Failed { error, .. } => {
            for k in keys {
                book.apply(StatsEvent::Failed {
                    key: k.clone(),
                    error: error.clone(),
                    consecutive: u32::MAX,
                    retry_in: Duration::MAX,
                });
            }
        }
        _ => {}
    }
}

/// Prints one report; false when stdout is gone.
fn emit(ctx: &render::Context<'_>, output: Format, watch: bool) -> bool {
    let text = match output {
        Format::Json if watch => crate::escape::json_for_terminal(&render::json_line(ctx)),
        Format::Json => crate::escape::json_for_terminal(&render::json_pretty(ctx)),
        _ => render::table(ctx, watch),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .is_ok()
}

/// The cache, with its environment's control plane when there is one. Caches named by URL
/// in the config need no control plane (unless their password is in SSM), so they are
/// still found when the environment's control plane is unusable. Errors come with the
/// exit code: 2 for an unknown environment or cache, 1 when the environment can't be read.
async fn find(
    estate: &Estate,
    env: &str,
    cache: &str,
) -> Result<(Option<Arc<dyn ControlPlane>>, Cache), (u8, String)> {
    match estate.find_cache(env, cache).await {
        Ok((plane, found)) => Ok((Some(plane), found)),
        Err(e @ EstateError::Plane { .. }) => {
            let handle = estate
                .env(env)
                .map_err(|e| (exit::BAD_INPUT, e.to_string()))?;
            static_caches(&handle.env, &handle.config)
                .into_iter()
                .find(|c| c.name == cache)
                .map(|c| (handle.plane.clone().ok(), c))
                .ok_or_else(|| {
                    (
                        exit::PARTIAL,
                        format!("cache `{cache}` is not among the config's caches, and {e}"),
                    )
                })
        }
        Err(e) => Err((exit::BAD_INPUT, e.to_string())),
    }
}
