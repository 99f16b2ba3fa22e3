//! Seeding realistic data: the key families of the seed estates (Sidekiq, Celery/kombu,
//! Django cache, sessions, product and query caches, rate limits, user hashes, and some
//! forgotten keys without TTL). Deterministic (seeded RNG); written in pipelines of ~1000
//! commands, grouped by slot owner in cluster mode.

use super::client::{self, NodeAuth};
use crate::valkey::slot::key_slot;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

const BATCH: usize = 1000;
const DAY: &str = "2026-11-23";

/// Which application's data a cache holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Rails + Sidekiq: queues, sessions, rate limits, query cache (seeds 000/003).
    Sidekiq,
    /// Django + Celery/kombu broker and cache (seed 002).
    Celery,
    /// Storefront: product cache JSON, sessions, carts (seed 001).
    Storefront,
    /// A self-managed Valkey with a bit of everything (seed 004).
    Mixed,
}

/// Where to write: one target per shard (its primary's port) and the slot ranges it owns.
#[derive(Debug, Clone)]
pub struct Target {
    pub port: u16,
    pub slots: Option<(u16, u16)>,
}

fn hex(rng: &mut StdRng, len: usize) -> String {
    (0..len)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
        .collect()
}

fn uuid(rng: &mut StdRng) -> String {
    format!(
        "{}-{}-4{}-a{}-{}",
        hex(rng, 8),
        hex(rng, 4),
        hex(rng, 3),
        hex(rng, 3),
        hex(rng, 12)
    )
}

/// One write: the key (for slot routing) and its command.
struct Write {
    key: String,
    cmd: redis::Cmd,
}

fn set_ex(key: String, value: String, ttl: u64) -> Write {
    let mut cmd = redis::cmd("SET");
    cmd.arg(&key).arg(value).arg("EX").arg(ttl);
    Write { key, cmd }
}

fn set(key: String, value: String) -> Write {
    let mut cmd = redis::cmd("SET");
    cmd.arg(&key).arg(value);
    Write { key, cmd }
}

fn with(key: &str, name: &str, args: &[String]) -> Write {
    let mut cmd = redis::cmd(name);
    cmd.arg(key);
    for a in args {
        cmd.arg(a);
    }
    Write {
        key: key.to_string(),
        cmd,
    }
}

/// The fixed keys of a profile (queues, stats, bindings) — a few dozen.
fn fixed(profile: Profile, rng: &mut StdRng) -> Vec<Write> {
    let mut out = Vec::new();
    match profile {
        Profile::Sidekiq => {
            out.push(with(
                "queues",
                "SADD",
                &["default".into(), "mailers".into(), "critical".into()],
            ));
            for queue in ["default", "mailers", "critical"] {
                let jobs: Vec<String> = (0..25)
                    .map(|i| {
                        format!(
                            r#"{{"class":"OrderMailerJob","args":[{i}],"queue":"{queue}","jid":"{}","retry":true,"created_at":1795400000.{i}}}"#,
                            hex(rng, 24)
                        )
                    })
                    .collect();
                out.push(with(&format!("queue:{queue}"), "LPUSH", &jobs));
            }
            for zset in ["schedule", "retry", "dead"] {
                let mut args = Vec::new();
                for i in 0..20 {
                    args.push(format!("{}", 1_795_400_000 + i * 60));
                    args.push(format!(
                        r#"{{"class":"SyncInventoryJob","args":[{i}],"jid":"{}","retry_count":{}}}"#,
                        hex(rng, 24),
                        i % 5
                    ));
                }
                out.push(with(zset, "ZADD", &args));
            }
            out.push(with("processes", "SADD", &["worker-7f9c:1:4b1e2a".into()]));
            let mut hb = redis::cmd("HSET");
            hb.arg("worker-7f9c:1:4b1e2a")
                .arg("busy")
                .arg(3)
                .arg("beat")
                .arg("1795400000.5")
                .arg("info")
                .arg(r#"{"hostname":"worker-7f9c","concurrency":10,"queues":["critical","default","mailers"]}"#);
            out.push(Write {
                key: "worker-7f9c:1:4b1e2a".into(),
                cmd: hb,
            });
            out.push(set("stat:processed".into(), "1843211".into()));
            out.push(set("stat:failed".into(), "2144".into()));
            out.push(set(format!("stat:processed:{DAY}"), "40211".into()));
            out.push(set(format!("stat:failed:{DAY}"), "37".into()));
        }
        Profile::Celery => {
            let tasks: Vec<String> = (0..40)
                .map(|_| {
                    format!(
                        r#"{{"body":"W1tdLHt9XQ==","content-encoding":"utf-8","content-type":"application/json","headers":{{"lang":"py","task":"documents.tasks.render_pdf","id":"{}"}},"properties":{{"delivery_tag":"{}","body_encoding":"base64"}}}}"#,
                        uuid(rng),
                        uuid(rng)
                    )
                })
                .collect();
            out.push(with("celery", "LPUSH", &tasks));
            for binding in ["celery", "celery.pidbox", "celeryev", "reply.celery.pidbox"] {
                out.push(with(
                    &format!("_kombu.binding.{binding}"),
                    "SADD",
                    &[format!("{binding}\x06\x16\x06\x16{binding}")],
                ));
            }
            let mut unacked = Vec::new();
            let mut index = Vec::new();
            for i in 0..10 {
                let tag = uuid(rng);
                unacked.push(tag.clone());
                unacked.push(format!(
                    r#"[{{"body":"e30=","headers":{{"task":"documents.tasks.ocr"}}}},"",{i}]"#
                ));
                index.push(format!("{}", 1_795_400_000 + i));
                index.push(tag);
            }
            out.push(with("unacked", "HSET", &unacked));
            out.push(with("unacked_index", "ZADD", &index));
            out.push(set_ex("unacked_mutex".into(), uuid(rng), 300));
        }
        Profile::Storefront => {
            out.push(set("catalog:version".into(), "2026-11-23T04:00:00Z".into()));
            out.push(with(
                "featured:products",
                "RPUSH",
                &(1..=12)
                    .map(|i| format!("{}", 1000 + i))
                    .collect::<Vec<_>>(),
            ));
        }
        Profile::Mixed => {
            out.push(set("app:schema_version".into(), "42".into()));
            out.push(set("jobs:last_run".into(), "1795400000".into()));
        }
    }
    out
}

/// The n-th bulk key of a profile.
fn bulk(profile: Profile, i: u64, rng: &mut StdRng) -> Write {
    let pick = rng.random_range(0..100u32);
    let session_ttl = rng.random_range(1800..86_400);
    match (profile, pick) {
        // Some forgotten keys without TTL in every estate.
        (_, 0..=2) => set(
            format!("tmp:export:{}:{i}", hex(rng, 8)),
            format!(
                r#"{{"rows":{},"status":"done"}}"#,
                rng.random_range(10..100_000)
            ),
        ),
        (_, 3..=12) => with(
            &format!("user:{i}"),
            "HSET",
            &[
                "email".into(),
                format!("user{i}@example.com"),
                "plan".into(),
                ["free", "pro", "team"][rng.random_range(0..3)].into(),
                "created_at".into(),
                format!("{}", 1_700_000_000 + i),
            ],
        ),
        (Profile::Sidekiq, 13..=49) => set_ex(
            format!("session:{}", hex(rng, 32)),
            format!(
                r#"{{"user_id":{},"csrf":"{}","flash":{{}}}}"#,
                rng.random_range(1..500_000),
                hex(rng, 16)
            ),
            session_ttl,
        ),
        (Profile::Sidekiq, 50..=74) => set_ex(
            format!("query_cache:orders:{}", hex(rng, 40)),
            format!(
                r#"[{{"id":{i},"total_cents":{},"state":"shipped"}}]"#,
                rng.random_range(100..99_999)
            ),
            rng.random_range(60..900),
        ),
        (Profile::Sidekiq | Profile::Storefront, 75..=99) => {
            let key = format!(
                "rate_limit:api:{}.{}.{}.{}:{}",
                10,
                rng.random_range(0..255),
                rng.random_range(0..255),
                rng.random_range(1..255),
                i % 60
            );
            let mut cmd = redis::cmd("SET");
            cmd.arg(&key)
                .arg(rng.random_range(1..120))
                .arg("EX")
                .arg(rng.random_range(5..60));
            Write { key, cmd }
        }
        (Profile::Celery, 13..=44) => set_ex(
            format!("celery-task-meta-{}", uuid(rng)),
            format!(
                r#"{{"status":"SUCCESS","result":null,"traceback":null,"children":[],"date_done":"2026-11-23T0{}:00:00","task_id":"{}"}}"#,
                i % 10,
                uuid(rng)
            ),
            86_400,
        ),
        (Profile::Celery, 45..=79) => set_ex(
            format!(
                ":1:views.decorators.cache.cache_page..GET.{}.{}.en-gb.UTC",
                hex(rng, 32),
                hex(rng, 32)
            ),
            format!("<html><body>document {i}</body></html>"),
            rng.random_range(300..3600),
        ),
        (Profile::Celery, _) => set_ex(
            format!(":1:django.contrib.sessions.cache{}", hex(rng, 32)),
            format!(r#"{{"_auth_user_id":"{}"}}"#, rng.random_range(1..50_000)),
            1_209_600,
        ),
        (Profile::Storefront, 13..=39) => set_ex(
            format!("session:{}", hex(rng, 32)),
            format!(r#"{{"cart_id":"{}"}}"#, uuid(rng)),
            session_ttl,
        ),
        (Profile::Storefront, _) => set_ex(
            format!("product:{}:v3", 1000 + i),
            format!(
                r#"{{"id":{},"title":"Product {i}","price_cents":{},"stock":{},"tags":["sale","winter"]}}"#,
                1000 + i,
                rng.random_range(199..49_999),
                rng.random_range(0..500)
            ),
            rng.random_range(600..7200),
        ),
        (_, 13..=59) => set_ex(
            format!("cache:report:{}", hex(rng, 16)),
            format!(r#"{{"rows":{}}}"#, rng.random_range(1..1000)),
            rng.random_range(60..86_400),
        ),
        (_, _) => with(
            &format!("counter:page:{}", i % 5000),
            "INCRBY",
            &[format!("{}", rng.random_range(1..10))],
        ),
    }
}

/// Writes about `keys` keys of `profile` to the targets; returns the commands sent.
pub async fn seed(
    targets: &[Target],
    auth: &NodeAuth,
    profile: Profile,
    keys: u64,
    seed: u64,
) -> Result<u64, String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut conns = Vec::new();
    for t in targets {
        conns.push(client::connect(t.port, auth, Duration::from_secs(5)).await?);
    }
    let mut batches: Vec<redis::Pipeline> = targets.iter().map(|_| redis::pipe()).collect();
    let mut pending = vec![0usize; targets.len()];
    let mut sent = 0u64;
    let fixed = fixed(profile, &mut rng);
    let fixed_len = fixed.len() as u64;
    let writes = fixed
        .into_iter()
        .chain((0..keys.saturating_sub(fixed_len)).map(|i| bulk(profile, i, &mut rng)));
    for write in writes {
        let slot = key_slot(&write.key);
        let shard = targets
            .iter()
            .position(|t| t.slots.is_none_or(|(a, b)| (a..=b).contains(&slot)))
            .unwrap_or(0);
        batches[shard].add_command(write.cmd).ignore();
        pending[shard] += 1;
        sent += 1;
        if pending[shard] >= BATCH {
            flush(&mut conns[shard], &mut batches[shard]).await?;
            pending[shard] = 0;
        }
    }
    for (shard, conn) in conns.iter_mut().enumerate() {
        if pending[shard] > 0 {
            flush(conn, &mut batches[shard]).await?;
        }
    }
    Ok(sent)
}

async fn flush(
    conn: &mut redis::aio::MultiplexedConnection,
    pipe: &mut redis::Pipeline,
) -> Result<(), String> {
    let result = tokio::time::timeout(Duration::from_secs(30), pipe.query_async::<()>(conn)).await;
    *pipe = redis::pipe();
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(client::describe(&e)),
        Err(_) => Err("a pipeline of 1000 writes took more than 30s".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic() {
        let mut a = StdRng::seed_from_u64(7);
        let mut b = StdRng::seed_from_u64(7);
        let ka: Vec<String> = (0..50)
            .map(|i| bulk(Profile::Celery, i, &mut a).key)
            .collect();
        let kb: Vec<String> = (0..50)
            .map(|i| bulk(Profile::Celery, i, &mut b).key)
            .collect();
        assert_eq!(ka, kb);
    }
}
