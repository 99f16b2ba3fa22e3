//! Known key families (Sidekiq, Celery/kombu, Django and Rails caches, session stores, rate
//! limiters) and what each expects of TTLs: a Sidekiq queue without TTL is normal, a session
//! or a rate-limiter counter without TTL is a leak.

use serde::{Deserialize, Serialize};

/// What a family expects of its keys' TTLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expectation {
    /// Keys should expire; a key without TTL is a leak.
    TtlExpected,
    /// Keys live until the application deletes them; no TTL is normal.
    NoTtlNormal,
    /// Not a known family.
    Unknown,
}

/// A recognised family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    pub name: &'static str,
    pub expectation: Expectation,
}

const fn fam(name: &'static str, expectation: Expectation) -> Option<Family> {
    Some(Family { name, expectation })
}

/// The family of a key, judged on its name (an optional `namespace:` prefix is allowed for
/// Sidekiq, which supports one).
pub fn classify(key: &[u8]) -> Option<Family> {
    use Expectation::*;
    let lower: Vec<u8> = key.iter().take(64).map(u8::to_ascii_lowercase).collect();
    let k = lower.as_slice();
    // Celery / kombu.
    if k.starts_with(b"celery-task-meta-") || k.starts_with(b"chord-unlock-") {
        return fam("celery result", TtlExpected);
    }
    if k == b"celery"
        || k.starts_with(b"_kombu.binding.")
        || k == b"unacked"
        || k == b"unacked_index"
        || k == b"unacked_mutex"
    {
        return fam("celery broker", NoTtlNormal);
    }
    // Django's cache framework prefixes `:<version>:`.
    if k.starts_with(b":1:") || k.starts_with(b"django.contrib.sessions") {
        return if k.windows(7).any(|w| w == b"session") {
            fam("django session", TtlExpected)
        } else {
            fam("django cache", TtlExpected)
        };
    }
    if starts_any(
        k,
        &[
            b"session:",
            b"sess:",
            b"sessions:",
            b"_session_id:",
            b"rack:session:",
        ],
    ) || k.starts_with(b"spring:session:")
    {
        return fam("session store", TtlExpected);
    }
    if starts_any(
        k,
        &[
            b"ratelimit",
            b"rate-limit",
            b"rate_limit",
            b"rl:",
            b"throttle:",
            b"rack::attack",
        ],
    ) {
        return fam("rate limiter", TtlExpected);
    }
    if k.starts_with(b"views/") || k.starts_with(b"_rails_cache") || k.starts_with(b"rails:cache:")
    {
        return fam("rails cache", TtlExpected);
    }
    if let Some(f) = sidekiq(k) {
        return Some(f);
    }
    if k.starts_with(b"cache:") || k.starts_with(b"cache/") {
        return fam("cache", TtlExpected);
    }
    None
}

fn starts_any(k: &[u8], prefixes: &[&[u8]]) -> bool {
    prefixes.iter().any(|p| k.starts_with(p))
}

/// Sidekiq: `queues`, `queue:<name>`, `schedule`, `retry`, `dead`, `processes`, `stat:*`,
/// `<host>:<pid>:<hex>` process hashes and their `:work`, optionally under one namespace.
fn sidekiq(k: &[u8]) -> Option<Family> {
    use Expectation::*;
    let check = |s: &[u8]| -> Option<Family> {
        if matches!(
            s,
            b"queues" | b"schedule" | b"retry" | b"dead" | b"processes"
        ) {
            return fam("sidekiq", NoTtlNormal);
        }
        if s.starts_with(b"queue:") {
            return fam("sidekiq queue", NoTtlNormal);
        }
        if s.starts_with(b"stat:") {
            // Daily stats expire (Sidekiq sets years); totals do not: both are normal.
            return fam("sidekiq stats", NoTtlNormal);
        }
        if is_process_key(s) {
            // The heartbeat re-arms a 60 s TTL: one without TTL is a dead process's leftover.
            return fam("sidekiq process", TtlExpected);
        }
        None
    };
    if let Some(f) = check(k) {
        return Some(f);
    }
    // One namespace level (`myapp:queue:default`).
    let colon = k.iter().position(|&b| b == b':')?;
    check(&k[colon + 1..])
}

/// `<host>:<pid>:<12 hex digits>` (a Sidekiq process identity: `SecureRandom.hex(6)`) and its `:work` / `:workers` hash.
fn is_process_key(s: &[u8]) -> bool {
    let parts: Vec<&[u8]> = s.split(|&b| b == b':').collect();
    let tail_ok = match parts.len() {
        3 => true,
        4 => matches!(parts[3], b"work" | b"workers"),
        _ => false,
    };
    tail_ok
        && !parts[0].is_empty()
        && !parts[1].is_empty()
        && parts[1].iter().all(u8::is_ascii_digit)
        && parts[2].len() == 12
        && parts[2].iter().all(u8::is_ascii_hexdigit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families() {
        let e = |k: &[u8]| classify(k).map(|f| f.expectation);
        assert_eq!(e(b"queue:default"), Some(Expectation::NoTtlNormal));
        assert_eq!(e(b"myapp:queue:default"), Some(Expectation::NoTtlNormal));
        assert_eq!(
            e(b"stat:processed:2024-01-01"),
            Some(Expectation::NoTtlNormal)
        );
        assert_eq!(e(b"celery"), Some(Expectation::NoTtlNormal));
        assert_eq!(e(b"_kombu.binding.celery"), Some(Expectation::NoTtlNormal));
        assert_eq!(e(b"celery-task-meta-abc"), Some(Expectation::TtlExpected));
        assert_eq!(e(b":1:views.x"), Some(Expectation::TtlExpected));
        assert_eq!(e(b"session:abc"), Some(Expectation::TtlExpected));
        assert_eq!(e(b"ratelimit:ip:1"), Some(Expectation::TtlExpected));
        assert_eq!(e(b"orders:1"), None);
        assert_eq!(
            e(b"worker-3f8c:12:0a1b2c3d4e5f"),
            Some(Expectation::TtlExpected)
        );
        assert_eq!(
            e(b"myapp:web-1:7:0a1b2c3d4e5f:work"),
            Some(Expectation::TtlExpected)
        );
        assert_eq!(e(b"orders:12:0a1b2c3d4e5f:items"), None);
        assert_eq!(e(b"orders:x12:0a1b2c"), None);
    }
}
