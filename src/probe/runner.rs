//! The probe loop: one tokio task per probe, an attempt every interval, reconnecting through
//! the endpoint after any failure (and following MOVED, as a cluster client would).

use super::{Attempt, Outcome, classify};
use crate::domain::Endpoint;
use crate::valkey::connect::{ConnectOptions, Connector, NodeConnection};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What a probe does each tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// `RPUSH key seq`: each acknowledged sequence number must survive.
    Writer,
    /// `LLEN key`: reads keep being answered.
    Reader,
}

/// One probe's settings.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    pub kind: ProbeKind,
    pub endpoint: Endpoint,
    /// The list the writer appends to (given a TTL so it never outlives the run by long).
    pub key: String,
    /// Time between attempts (≤ 10 ms gives the window a 10 ms resolution).
    pub interval: Duration,
    /// Deadline of one connect or one command.
    pub attempt_timeout: Duration,
}

/// A running probe.
pub struct ProbeHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<Vec<Attempt>>,
    started: Instant,
}

impl ProbeHandle {
    /// Time since the probe started, on the clock its attempts use.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stops the probe and returns every attempt it made.
    pub async fn stop(self) -> Vec<Attempt> {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}

/// How long the probe key lives: long enough to verify writes after a slow failover.
const KEY_TTL_SECS: u64 = 3600;

/// Starts a probe; it runs until [`ProbeHandle::stop`].
pub fn start(connector: &Connector, config: ProbeConfig) -> ProbeHandle {
    let connector = connector.with_options(ConnectOptions {
        connect_timeout: config.attempt_timeout,
        command_timeout: config.attempt_timeout,
    });
    let (stop, mut stopped) = watch::channel(false);
    let started = Instant::now();
    let task = tokio::spawn(async move {
        let mut attempts = Vec::new();
        let mut conn: Option<(NodeConnection, String, bool)> = None;
        let mut target = config.endpoint.clone();
        let mut ticker = tokio::time::interval(config.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seq = 0u64;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stopped.changed() => break,
            }
            seq += 1;
            if conn.is_none() {
                match open(&connector, &target).await {
                    Ok((c, server)) => conn = Some((c, server, false)),
                    Err(class) => {
                        attempts.push(Attempt {
                            seq,
                            at: started.elapsed(),
                            outcome: Outcome::Failed { class },
                        });
                        target = config.endpoint.clone();
                        continue;
                    }
                }
            }
            let Some((c, server, expiring)) = conn.as_mut() else {
                continue;
            };
            let result = match config.kind {
                ProbeKind::Writer => {
                    c.query::<i64>(redis::cmd("RPUSH").arg(&config.key).arg(seq))
                        .await
                }
                ProbeKind::Reader => c.query::<i64>(redis::cmd("LLEN").arg(&config.key)).await,
            };
            let at = started.elapsed();
            match result {
                Ok(_) => {
                    attempts.push(Attempt {
                        seq,
                        at,
                        outcome: Outcome::Acked {
                            server: server.clone(),
                        },
                    });
                    if config.kind == ProbeKind::Writer && !*expiring {
                        // Once per connection: the list must not outlive the run by long.
                        let ttl = redis::cmd("EXPIRE")
                            .arg(&config.key)
                            .arg(KEY_TTL_SECS)
                            .arg("NX")
                            .to_owned();
                        *expiring = c.query::<i64>(&ttl).await.is_ok();
                    }
                }
                Err(e) => {
                    attempts.push(Attempt {
                        seq,
                        at,
                        outcome: Outcome::Failed {
                            class: classify(&e),
                        },
                    });
                    target = match e.moved_to() {
                        Some((host, port)) if !host.is_empty() => {
                            Endpoint::new(host, port, config.endpoint.tls)
                        }
                        Some((_, port)) => Endpoint {
                            port,
                            ..target.clone()
                        },
                        None => config.endpoint.clone(),
                    };
                    conn = None;
                }
            }
        }
        attempts
    });
    ProbeHandle {
        stop,
        task,
        started,
    }
}

/// Connects and learns which server answers (its run id).
async fn open(
    connector: &Connector,
    target: &Endpoint,
) -> Result<(NodeConnection, String), super::ErrorClass> {
    let mut conn = connector.connect(target).await.map_err(|e| classify(&e))?;
    let info: String = conn
        .query(redis::cmd("INFO").arg("server"))
        .await
        .map_err(|e| classify(&e))?;
    let server = info
        .lines()
        .find_map(|l| l.strip_prefix("run_id:"))
        .unwrap_or("unknown")
        .trim()
        .to_string();
    Ok((conn, server))
}
