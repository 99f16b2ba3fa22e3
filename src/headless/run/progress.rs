//! Progress of long steps on stderr: a live bar (done/total, rate, ETA) when stderr is a
//! terminal; otherwise a plain line at most every few seconds, so the log of a six-hour audit
//! run from cron or CI stays readable. Other lines go through [`ProgressView::line`], which
//! prints them above a live bar instead of through it.

use crate::escape::{escape_capped, escape_lines_capped};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Plain progress lines of one step are at least this far apart (the last one always shows).
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// The progress shown for the steps of one run.
pub struct ProgressView {
    live: bool,
    bars: HashMap<String, ProgressBar>,
    last_plain: HashMap<String, Instant>,
}

impl ProgressView {
    /// Live bars when stderr is a terminal, plain lines otherwise.
    pub fn new() -> ProgressView {
        ProgressView::with_live(std::io::stderr().is_terminal())
    }

    pub fn with_live(live: bool) -> ProgressView {
        ProgressView {
            live,
            bars: HashMap::new(),
            last_plain: HashMap::new(),
        }
    }

    /// One progress event of `step`. `message` is untrusted (it may quote a cache). Returns
    /// whether a plain line was printed.
    pub fn update(&mut self, step: &str, done: u64, total: Option<u64>, message: &str) -> bool {
        let message = escape_capped(message, 80);
        if self.live {
            let bar = self
                .bars
                .entry(step.to_string())
                .or_insert_with(|| new_bar(step));
            match total {
                Some(t) if t > 0 => {
                    bar.set_length(t.max(done));
                }
                _ => {
                    bar.unset_length();
                    if done == 0 {
                        // A wait: no bar and no count, only what it waits for and how long.
                        bar.set_style(wait_style());
                    }
                }
            }
            bar.set_position(done);
            bar.set_message(message);
            return false;
        }
        let now = Instant::now();
        let finished = total.is_some_and(|t| done >= t);
        let due = self
            .last_plain
            .get(step)
            .is_none_or(|at| now.duration_since(*at) >= PLAIN_EVERY);
        if due || finished {
            self.last_plain.insert(step.to_string(), now);
            eprintln!("{}", plain(step, done, total, &message));
        }
        due || finished
    }

    /// The step ended: its bar goes away.
    pub fn finish(&mut self, step: &str) {
        if let Some(bar) = self.bars.remove(step) {
            bar.finish_and_clear();
        }
        self.last_plain.remove(step);
    }

    /// Prints `text` on stderr, above any live bar, escaped line by line: it quotes step
    /// outputs, errors and prompts, which carry outside text.
    pub fn line(&self, text: &str) {
        let text = escape_lines_capped(text, 1000);
        match self.bars.values().next() {
            Some(bar) => bar.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }
}

impl Default for ProgressView {
    fn default() -> Self {
        ProgressView::new()
    }
}

fn new_bar(step: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
    // No colours: NO_COLOR terminals and logs get the same bar.
    let style = ProgressStyle::with_template(
        "  {prefix} [{bar:30}] {percent:>3}% {human_pos}/{human_len} {msg} · {rate} · ETA {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .with_key(
        "rate",
        |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.0}/s", state.per_sec());
        },
    )
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(escape_capped(step, 40));
    bar
}

fn wait_style() -> ProgressStyle {
    ProgressStyle::with_template("  {prefix} {spinner} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

/// The plain (non-terminal) line of one progress event.
pub fn plain(step: &str, done: u64, total: Option<u64>, message: &str) -> String {
    match total {
        Some(t) if t > 0 => format!(
            "  {step}: {}% ({done}/{t}) {message}",
            done.saturating_mul(100) / t
        ),
        // A wait (`ActionContext::waiting`) has no count: its message says the time.
        _ if done == 0 => format!("  {step}: {message}"),
        _ => format!("  {step}: {done} {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_show_share_and_counts() {
        assert_eq!(
            plain("audit", 250, Some(1000), "keys scanned"),
            "  audit: 25% (250/1000) keys scanned"
        );
        assert_eq!(plain("wait", 3, None, "polls"), "  wait: 3 polls");
        // A wait carries no count: only its message, which says the time.
        assert_eq!(
            plain("roll", 0, None, "orders-sidekiq: COMPLETED · 15 s"),
            "  roll: orders-sidekiq: COMPLETED · 15 s"
        );
        assert_eq!(
            plain("audit", 5, Some(0), "keys scanned"),
            "  audit: 5 keys scanned"
        );
    }

    #[test]
    fn plain_updates_are_throttled_but_the_last_shows() {
        let mut v = ProgressView::with_live(false);
        assert!(v.update("audit", 1, Some(10), "k"), "the first shows");
        assert!(
            !v.update("audit", 2, Some(10), "k"),
            "the next is held back"
        );
        assert!(
            v.update("wait", 1, None, "k"),
            "another step has its own pace"
        );
        assert!(v.update("audit", 10, Some(10), "k"), "the last shows");
        v.finish("audit");
        assert!(
            v.update("audit", 1, Some(10), "k"),
            "a new attempt starts afresh"
        );
    }
}
