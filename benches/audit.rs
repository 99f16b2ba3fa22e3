//! The TTL audit benchmark, one run against a real valkey-server on loopback: on a 1M-key
//! keyspace, the audit's keys/s and server CPU seconds per 1M keys (INFO cpu deltas) against
//! `valkey-cli --bigkeys` and a bare pipelined SCAN + PTTL + TYPE loop (the ceiling); paced
//! mode's accuracy; and the audit process's peak RSS at 10M keys. Prints ratios and targets.
//!
//! Run with `scripts/bench-audit.sh` (BENCH_KEYS and BENCH_BIG_KEYS change the sizes;
//! BENCH_BIG_KEYS=0 skips the 10M run). The audit runs in a child process so that its RSS
//! is its own, not the loader's.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use anyhow::{Context, Result, bail};
use cachedeck::audit::{self, AuditOptions};
use cachedeck::domain::Endpoint;
use cachedeck::valkey::connect::{Auth, ConnectOptions, Connector, NodeConnection};
use cachedeck::valkey::server::{ServerSpec, ValkeyServer};
use redis::Value;
use std::process::Command;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn connector() -> Connector {
    let o = ConnectOptions {
        connect_timeout: Duration::from_secs(5),
        command_timeout: Duration::from_secs(60),
    };
    Connector::new(Auth::default(), false, None, o).expect("connector")
}

fn local(port: u16) -> Endpoint {
    Endpoint::new("127.0.0.1", port, false)
}

async fn conn(port: u16) -> Result<NodeConnection> {
    Ok(connector().connect(&local(port)).await?)
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--audit-child") {
        return child(&args[2..]).await;
    }
    let keys = env_u64("BENCH_KEYS", 1_000_000);
    let big = env_u64("BENCH_BIG_KEYS", 10_000_000);
    let server = ValkeyServer::start(ServerSpec::new().args([
        "--save",
        "",
        "--appendonly",
        "no",
        "--enable-debug-command",
        "local",
    ]))?;
    let port = server.port();
    let mut c = conn(port).await?;
    eprintln!("loading {keys} keys…");
    load(&mut c, keys).await?;

    let (audit_secs, audit_keys, audit_cpu, _) = measure_child(port, &[]).await?;
    let (big_secs, big_cpu) = bigkeys(port).await?;
    let cpu0 = cpu(&mut c).await?;
    let t = Instant::now();
    let bare_keys = bare_loop(port).await?;
    let bare_secs = t.elapsed().as_secs_f64();
    let bare_cpu = cpu(&mut c).await? - cpu0;
    if bare_keys != keys || audit_keys != keys {
        bail!("key counts differ: audit {audit_keys}, bare loop {bare_keys}, loaded {keys}");
    }
    let rate = env_u64("BENCH_PACED_RATE", 200_000);
    let (paced_secs, paced_keys, _, _) = measure_child(port, &[rate.to_string()]).await?;
    let paced = paced_keys as f64 / paced_secs;

    let per_m = |cpu: f64| cpu * 1e6 / keys as f64;
    let kps = |s: f64| keys as f64 / s;
    println!("keyspace: {keys} keys");
    println!(
        "audit        {:>10.0} keys/s  {:>6.3} server CPU s / 1M keys",
        kps(audit_secs),
        per_m(audit_cpu)
    );
    println!(
        "--bigkeys    {:>10.0} keys/s  {:>6.3} server CPU s / 1M keys",
        kps(big_secs),
        per_m(big_cpu)
    );
    println!(
        "bare loop    {:>10.0} keys/s  {:>6.3} server CPU s / 1M keys",
        kps(bare_secs),
        per_m(bare_cpu)
    );
    println!(
        "ratios: audit/bigkeys keys/s {:.2}x (target >= 3), audit/bare keys/s {:.2}x (target >= 0.85), audit/bigkeys server CPU {:.2}x (target <= 0.4)",
        big_secs / audit_secs,
        bare_secs / audit_secs,
        audit_cpu / big_cpu
    );
    println!(
        "paced: set {rate} keys/s, measured {paced:.0} keys/s ({:+.1} %, target within ±10 %)",
        (paced / rate as f64 - 1.0) * 100.0
    );
    if big > keys {
        eprintln!("growing the keyspace to {big} keys for the RSS measurement…");
        let _: Value = c
            .query(
                redis::cmd("DEBUG")
                    .arg("POPULATE")
                    .arg(big - keys)
                    .arg("pop"),
            )
            .await?;
        let (secs, n, _, rss_kb) = measure_child(port, &[]).await?;
        println!(
            "at {n} keys: audit {:.0} keys/s, client peak RSS {:.1} MB (target <= 64 MB)",
            n as f64 / secs,
            rss_kb as f64 / 1024.0
        );
    }
    Ok(())
}

/// A realistic mix: cache keys with TTL, sessions half without, Sidekiq-ish lists, hashes.
async fn load(c: &mut NodeConnection, n: u64) -> Result<()> {
    let mut i = 0u64;
    while i < n {
        let mut p = redis::pipe();
        for j in i..(i + 5000).min(n) {
            match j % 10 {
                0..=4 => p
                    .cmd("SET")
                    .arg(format!("cache:product:{j}"))
                    .arg("x".repeat(40))
                    .arg("EX")
                    .arg(3600 + j % 7200)
                    .ignore(),
                5..=6 => p
                    .cmd("SET")
                    .arg(format!("session:{:032x}", j * 2654435761))
                    .arg("s")
                    .ignore(),
                7 => p
                    .cmd("RPUSH")
                    .arg(format!("queue:q{}", j))
                    .arg("job")
                    .ignore(),
                8 => p
                    .cmd("HSET")
                    .arg(format!("user:{j}:profile"))
                    .arg("name")
                    .arg("n")
                    .ignore(),
                _ => p
                    .cmd("SET")
                    .arg(format!(
                        "rl:10.{}.{}.{}:login",
                        j / 65536 % 256,
                        j / 256 % 256,
                        j % 256
                    ))
                    .arg("1")
                    .arg("EX")
                    .arg(60)
                    .ignore(),
            };
        }
        let () = p.query_async(c.raw()).await?;
        i += 5000;
    }
    let n_now: u64 = c.query(&redis::cmd("DBSIZE")).await?;
    if n_now != n {
        bail!("loaded {n_now} keys, wanted {n} (rate-limiter keys collide?)");
    }
    Ok(())
}

/// used_cpu_sys + used_cpu_user of the server, in seconds.
async fn cpu(c: &mut NodeConnection) -> Result<f64> {
    let text: String = c.query(redis::cmd("INFO").arg("cpu")).await?;
    let field = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok())
            .unwrap_or(0.0)
    };
    Ok(field("used_cpu_sys") + field("used_cpu_user"))
}

/// Runs the audit in a child process; returns (audit seconds, keys, server CPU s, peak RSS kB).
async fn measure_child(port: u16, extra: &[String]) -> Result<(f64, u64, f64, u64)> {
    let mut c = conn(port).await?;
    let before = cpu(&mut c).await?;
    let out = Command::new(std::env::current_exe()?)
        .arg("--audit-child")
        .arg(port.to_string())
        .args(extra)
        .output()?;
    let used = cpu(&mut c).await? - before;
    if !out.status.success() {
        bail!(
            "audit child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let f: Vec<f64> = line
        .split_whitespace()
        .map(|w| w.parse().unwrap_or(0.0))
        .collect();
    if f.len() != 3 {
        bail!("unexpected child output: {line}");
    }
    Ok((f[0], f[1] as u64, used, f[2] as u64))
}

/// The child: audits `port` (optionally paced) and prints "seconds keys peak_rss_kb".
async fn child(args: &[String]) -> Result<()> {
    let port: u16 = args.first().context("port")?.parse()?;
    let opts = AuditOptions {
        rate_limit: args.get(1).and_then(|r| r.parse().ok()),
        ..AuditOptions::default()
    };
    let started = Instant::now();
    let r = audit::run(
        &connector(),
        &local(port),
        false,
        &opts,
        None,
        CancellationToken::new(),
    )
    .await?;
    let secs = started.elapsed().as_secs_f64();
    if !r.complete {
        bail!("audit incomplete: {:?}", r.incomplete_reasons);
    }
    let status = std::fs::read_to_string("/proc/self/status")?;
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0);
    println!("{secs} {} {hwm}", r.total_keys);
    Ok(())
}

/// `valkey-cli --bigkeys`: (seconds, server CPU s).
async fn bigkeys(port: u16) -> Result<(f64, f64)> {
    let server = cachedeck::valkey::binary::locate()?;
    let cli = server.with_file_name("valkey-cli");
    let mut c = conn(port).await?;
    let before = cpu(&mut c).await?;
    let t = Instant::now();
    let out = Command::new(&cli)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "--bigkeys"])
        .output()
        .with_context(|| format!("run {}", cli.display()))?;
    let secs = t.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!("--bigkeys failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok((secs, cpu(&mut c).await? - before))
}

/// The ceiling: SCAN COUNT 1000 and one pipeline per batch with PTTL + TYPE of the previous
/// batch and the next SCAN, doing nothing with the replies but counting.
async fn bare_loop(port: u16) -> Result<u64> {
    let mut c = conn(port).await?;
    let mut pending: Vec<Vec<u8>> = Vec::new();
    let mut next = Some(0u64);
    let mut n = 0u64;
    while !pending.is_empty() || next.is_some() {
        let mut p = redis::pipe();
        for k in &pending {
            p.cmd("PTTL").arg(k);
            p.cmd("TYPE").arg(k);
        }
        if let Some(cur) = next {
            p.cmd("SCAN").arg(cur).arg("COUNT").arg(1000);
        }
        let mut replies: Vec<Value> = p.query_async(c.raw()).await?;
        n += (replies.len() / 2) as u64;
        pending.clear();
        if next.is_some() {
            let Some(Value::Array(mut scan)) = replies.pop() else {
                bail!("bad SCAN reply");
            };
            let keys = scan.pop();
            let cur = scan.pop();
            let cur: u64 = match cur {
                Some(Value::BulkString(b)) => String::from_utf8_lossy(&b).parse()?,
                _ => bail!("bad cursor"),
            };
            if let Some(Value::Array(ks)) = keys {
                for k in ks {
                    if let Value::BulkString(b) = k {
                        pending.push(b);
                    }
                }
            }
            next = (cur != 0).then_some(cur);
        }
    }
    Ok(n)
}
