//! Keeping the audit gentle: a token-bucket rate limit in keys per second shared by every
//! shard's scanner, and a latency guard that PINGs each scanned node on its own connection
//! and pauses (then aborts) that node's scan while the probe's p99 is over a threshold.

use crate::valkey::connect::NodeConnection;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// A token bucket: `rate` keys per second, bursting up to a tenth of a second's worth.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    pub fn new(keys_per_sec: u64) -> Arc<Self> {
        let rate = keys_per_sec.max(1) as f64;
        let burst = (rate / 10.0).max(1.0);
        Arc::new(RateLimiter {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
        })
    }

    /// The batch size that keeps pacing smooth: at most a twentieth of a second's keys.
    pub fn batch_hint(&self) -> u32 {
        (self.rate / 20.0).clamp(10.0, 100_000.0) as u32
    }

    /// Takes `n` tokens (the keys a batch just returned), sleeping while the bucket is in
    /// debt. Debt is allowed so that a batch bigger than the burst still passes; the sleep
    /// that follows keeps the long-run rate exact.
    pub async fn take(&self, n: u64, cancel: &CancellationToken) {
        let wait = {
            let mut s = self.state.lock().await;
            let now = Instant::now();
            let refill = now.duration_since(s.1).as_secs_f64() * self.rate;
            s.0 = (s.0 + refill).min(self.burst) - n as f64;
            s.1 = now;
            if s.0 < 0.0 {
                Duration::from_secs_f64(-s.0 / self.rate)
            } else {
                Duration::ZERO
            }
        };
        if !wait.is_zero() {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// Latency guard settings.
#[derive(Debug, Clone, Copy)]
pub struct LatencyGuard {
    /// Pause while the probe's p99 is above this.
    pub p99_threshold: Duration,
    /// Probe interval.
    pub every: Duration,
    /// Samples the p99 is computed over.
    pub window: usize,
    /// Abort the node's scan after being paused this long in one stretch.
    pub abort_after: Duration,
}

impl Default for LatencyGuard {
    fn default() -> Self {
        LatencyGuard {
            p99_threshold: Duration::from_millis(50),
            every: Duration::from_millis(50),
            window: 40,
            abort_after: Duration::from_secs(30),
        }
    }
}

/// The guard's verdict for one node, read by its scanner.
#[derive(Debug, Default)]
pub struct GuardState {
    pub paused: AtomicBool,
    pub aborted: AtomicBool,
    pub worst_p99_us: std::sync::atomic::AtomicU64,
}

/// The p99 of `samples` (the nearest-rank value).
pub fn p99(samples: &VecDeque<Duration>) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut v: Vec<Duration> = samples.iter().copied().collect();
    v.sort();
    let rank = ((v.len() as f64) * 0.99).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Probes `conn` until `stop` is cancelled, updating `state`. A PING that fails or times
/// out counts as a sample at the command timeout.
pub async fn run_guard(
    mut conn: NodeConnection,
    guard: LatencyGuard,
    state: Arc<GuardState>,
    stop: CancellationToken,
) {
    let mut samples: VecDeque<Duration> = VecDeque::with_capacity(guard.window);
    let mut paused_since: Option<Instant> = None;
    loop {
        let started = Instant::now();
        let ok = conn.query::<String>(&redis::cmd("PING")).await.is_ok();
        let took = if ok {
            started.elapsed()
        } else {
            started.elapsed().max(guard.p99_threshold * 2)
        };
        if samples.len() == guard.window {
            samples.pop_front();
        }
        samples.push_back(took);
        let p = p99(&samples);
        state
            .worst_p99_us
            .fetch_max(p.as_micros() as u64, Ordering::Relaxed);
        if p > guard.p99_threshold {
            let since = *paused_since.get_or_insert_with(Instant::now);
            state.paused.store(true, Ordering::Relaxed);
            if since.elapsed() >= guard.abort_after {
                state.aborted.store(true, Ordering::Relaxed);
            }
        } else {
            paused_since = None;
            state.paused.store(false, Ordering::Relaxed);
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(guard.every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p99_nearest_rank() {
        let s: VecDeque<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(p99(&s), Duration::from_millis(99));
        let s: VecDeque<Duration> = (1..=10).map(Duration::from_millis).collect();
        assert_eq!(p99(&s), Duration::from_millis(10));
    }

    #[tokio::test]
    async fn bucket_paces_to_the_rate() {
        let l = RateLimiter::new(2000);
        let cancel = CancellationToken::new();
        let started = Instant::now();
        for _ in 0..20 {
            l.take(50, &cancel).await;
        }
        // 1000 keys at 2000/s, less the initial burst of 200: ≈ 0.4 s.
        let took = started.elapsed().as_secs_f64();
        assert!((0.36..0.5).contains(&took), "took {took}");
    }
}
