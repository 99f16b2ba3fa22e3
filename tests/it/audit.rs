//! The key TTL audit against real valkey-server processes: exact counts against ground truth
//! (hostile names included), every logical database, keys added and deleted during the scan, duplicate detection with
//! dedup off, a 3-shard cluster scanned on its replicas (and a replica killed mid-scan), and
//! INFO commandstats showing no KEYS/FLUSH*/CONFIG/DEBUG.

#![allow(clippy::expect_used)]

use crate::harness::valkey::{ServerSpec, ValkeyServer, server, start};
use cachedeck::audit::report::AuditReport;
use cachedeck::audit::{self, AuditOptions, pattern};
use cachedeck::domain::Endpoint;
use cachedeck::valkey::connect::{Auth, ConnectOptions, Connector, NodeConnection};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub(crate) fn connector() -> Connector {
    let options = ConnectOptions {
        connect_timeout: Duration::from_secs(3),
        command_timeout: Duration::from_secs(5),
    };
    Connector::new(Auth::default(), false, None, options).expect("plain connector")
}

pub(crate) fn local(port: u16) -> Endpoint {
    Endpoint::new("127.0.0.1", port, false)
}

pub(crate) async fn conn(port: u16) -> NodeConnection {
    connector().connect(&local(port)).await.expect("connect")
}

/// Writes `keys` (name, TTL in seconds or none) in pipelines of 1000.
async fn load(c: &mut NodeConnection, keys: &[(Vec<u8>, Option<u64>)]) {
    for chunk in keys.chunks(1000) {
        let mut p = redis::pipe();
        for (k, ttl) in chunk {
            match ttl {
                Some(s) => p.cmd("SET").arg(k).arg("v").arg("EX").arg(*s).ignore(),
                None => p.cmd("SET").arg(k).arg("v").ignore(),
            };
        }
        let () = p.query_async(c.raw()).await.expect("load keys");
    }
}

/// Ground truth per inferred pattern: (keys, no TTL). Hex ids that happen to be all digits
/// (`session:{n}`) belong with their `{hex}` siblings.
pub(crate) fn truth(keys: &[(Vec<u8>, Option<u64>)]) -> BTreeMap<String, (u64, u64)> {
    let mut t: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (k, ttl) in keys {
        let e = t.entry(pattern::infer(k)).or_insert((0, 0));
        e.0 += 1;
        e.1 += u64::from(ttl.is_none());
    }
    // A short letters-and-digits word with more than WIDE_WORD_VALUES values at one place
    // is an id: its patterns fold into the collapsed one.
    loop {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for p in t.keys() {
            for i in 0..pattern::mixed_words(p).len() {
                if let Some(c) = pattern::collapse_word(p, i) {
                    groups.entry(c).or_default().push(p.clone());
                }
            }
        }
        let Some((into, members)) = groups
            .into_iter()
            .find(|(_, m)| m.len() > cachedeck::audit::aggregate::WIDE_WORD_VALUES)
        else {
            break;
        };
        for m in members {
            if let Some((k, n)) = t.remove(&m) {
                let e = t.entry(into.clone()).or_insert((0, 0));
                e.0 += k;
                e.1 += n;
            }
        }
    }
    let mut numeric: Vec<String> = t.keys().filter(|p| p.contains("{n}")).cloned().collect();
    numeric.sort_by_key(|p| t[p].0);
    for p in numeric {
        let keys = t[&p].0;
        // The biggest sibling with `{hex}` in place of some of the `{n}`.
        let pieces: Vec<&str> = p.split("{n}").collect();
        let sibling = (1u32..(1 << (pieces.len() - 1)))
            .map(|mask| {
                let mut v = pieces[0].to_string();
                for (i, piece) in pieces.iter().enumerate().skip(1) {
                    v.push_str(if mask & (1 << (i - 1)) != 0 {
                        "{hex}"
                    } else {
                        "{n}"
                    });
                    v.push_str(piece);
                }
                v
            })
            .filter(|v| t.get(v).is_some_and(|e| e.0 >= keys))
            .max_by_key(|v| t[v].0);
        if let Some(hex) = sibling
            && let Some((keys, no_ttl)) = t.remove(&p)
            && let Some(e) = t.get_mut(&hex)
        {
            e.0 += keys;
            e.1 += no_ttl;
        }
    }
    t
}

fn counted(r: &AuditReport) -> BTreeMap<String, (u64, u64)> {
    r.patterns
        .iter()
        .map(|p| (p.pattern.clone(), (p.keys, p.no_ttl)))
        .collect()
}

fn hostile_and_plain() -> Vec<(Vec<u8>, Option<u64>)> {
    let mut keys = Vec::new();
    for i in 0..5000 {
        keys.push((format!("cache:product:{i}").into_bytes(), None));
    }
    for i in 0..3000u64 {
        let ttl = (i % 2 == 0).then_some(1800);
        keys.push((format!("session:{:032x}", i * 7919 + 1).into_bytes(), ttl));
    }
    for i in 0..1000u64 {
        let id = format!("{:08x}-1234-4abc-8def-{:012x}", i, i * 31);
        keys.push((format!("celery-task-meta-{id}").into_bytes(), Some(86_400)));
    }
    for i in 0..40u64 {
        keys.push((format!("evil:\x1b[2J\x1b]0;pwn\x07{i}").into_bytes(), None));
        let mut bad = b"bin:\xff\xfe\x00".to_vec();
        bad.extend_from_slice(i.to_string().as_bytes());
        keys.push((bad, Some(40 * 86_400)));
        keys.push((format!("ctl:\r\n\t{i}").into_bytes(), Some(30)));
    }
    for i in 0..3u8 {
        let mut huge = vec![b'x'; 65536];
        huge[0] = b'0' + i;
        keys.push((huge, None));
    }
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_equal_ground_truth_with_hostile_names() {
    let s = server();
    let mut c = conn(s.port()).await;
    let keys = hostile_and_plain();
    load(&mut c, &keys).await;
    let opts = AuditOptions {
        count: 97,
        memory_samples: Some(5),
        ..AuditOptions::default()
    };
    let r = audit::run(
        &connector(),
        &local(s.port()),
        false,
        &opts,
        None,
        CancellationToken::new(),
    )
    .await
    .expect("audit runs");
    assert!(r.complete, "{:?}", r.incomplete_reasons);
    assert_eq!(r.total_keys, keys.len() as u64);
    assert_eq!(r.dbsize_end, keys.len() as u64);
    let no_ttl = keys.iter().filter(|k| k.1.is_none()).count() as u64;
    assert_eq!(r.keys_without_ttl, no_ttl);
    assert_eq!(counted(&r), truth(&keys));
    assert_eq!(r.dedup, "exact");
    assert!(!r.duplicates_possible);
    let session = r
        .patterns
        .iter()
        .find(|p| p.pattern == "session:{hex}")
        .expect("sessions");
    let sessions = keys.iter().filter(|k| k.0.starts_with(b"session:"));
    let with_ttl = sessions.clone().filter(|k| k.1.is_some()).count() as u64;
    assert_eq!(session.ttl_histogram.lt_1h, with_ttl);
    assert_eq!(
        session.ttl_histogram.none,
        sessions.count() as u64 - with_ttl
    );
    assert_eq!(session.family.as_deref(), Some("session store"));
    // The session leak is a finding; the 64 KB names are the biggest keys, shown cut.
    assert!(r.findings.iter().any(|f| f.pattern == "session:{hex}"));
    assert!(r.memory_bytes.unwrap_or(0) > 3 * 65536);
    let top = &r.top_keys[0];
    assert!(top.memory_bytes > 65536 && top.key.len() < 400, "{top:?}");
    // Untrusted bytes reach no rendering raw.
    for out in [r.to_json(), r.to_csv(), r.to_markdown()] {
        assert!(!out.contains('\x1b') && !out.contains('\x07') && !out.contains('\r'));
    }
    let json = r.to_json();
    assert!(json.contains(r"\\x1b[2J"), "ESC shown escaped in examples");
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    for field in [
        "total_keys",
        "keys_without_ttl",
        "patterns",
        "complete",
        "duration_ms",
    ] {
        assert!(v.get(field).is_some(), "{field}");
    }
    for field in ["pattern", "keys", "no_ttl", "memory_bytes", "ttl_histogram"] {
        assert!(v["patterns"][0].get(field).is_some(), "{field}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_logical_database_is_scanned_and_kept_apart() {
    let s = server();
    let mut c = conn(s.port()).await;
    let zero: Vec<(Vec<u8>, Option<u64>)> = (0..1500u64)
        .map(|i| (format!("cache:product:{i}").into_bytes(), None))
        .collect();
    let two: Vec<(Vec<u8>, Option<u64>)> = (0..2500u64)
        .map(|i| {
            let ttl = (i % 5 != 0).then_some(600);
            (format!("cache:product:{i}").into_bytes(), ttl)
        })
        .chain((0..700u64).map(|i| (format!("celery-task-meta-{i}").into_bytes(), None)))
        .collect();
    load(&mut c, &zero).await;
    let _: () = c
        .query(redis::cmd("SELECT").arg(2))
        .await
        .expect("select 2");
    load(&mut c, &two).await;
    let r = audit::run(
        &connector(),
        &local(s.port()),
        false,
        &AuditOptions {
            count: 211,
            ..AuditOptions::default()
        },
        None,
        CancellationToken::new(),
    )
    .await
    .expect("audit runs");
    assert!(r.complete, "{:?}", r.incomplete_reasons);
    assert_eq!(r.total_keys, 1500 + 3200);
    assert_eq!(
        r.dbsize_end,
        1500 + 3200,
        "DBSIZE summed over the databases"
    );
    assert_eq!(r.keys_without_ttl, 1500 + 500 + 700);
    let row = |db: u32, pattern: &str| {
        r.patterns
            .iter()
            .find(|p| p.db == db && p.pattern == pattern)
            .map(|p| (p.keys, p.no_ttl))
    };
    assert_eq!(row(0, "cache:product:{n}"), Some((1500, 1500)));
    assert_eq!(row(2, "cache:product:{n}"), Some((2500, 500)));
    assert_eq!(row(2, "celery-task-meta-{n}"), Some((700, 700)));
    assert_eq!(row(0, "celery-task-meta-{n}"), None);
    assert!(
        r.findings
            .iter()
            .any(|f| f.message.contains("`celery-task-meta-{n}` (db 2)")),
        "{:?}",
        r.findings
    );
    let v: serde_json::Value = serde_json::from_str(&r.to_json()).expect("json");
    assert!(
        v["patterns"]
            .as_array()
            .expect("patterns")
            .iter()
            .any(|p| p["db"] == 2)
    );
}

async fn commandstats(port: u16) -> BTreeMap<String, u64> {
    let mut c = conn(port).await;
    let text: String = c
        .query(redis::cmd("INFO").arg("commandstats"))
        .await
        .expect("info");
    text.lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest.split(',').find_map(|f| f.strip_prefix("calls="))?;
            Some((name.to_string(), calls.parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_no_keys_flush_config_or_debug() {
    let s = server();
    let mut c = conn(s.port()).await;
    load(&mut c, &hostile_and_plain()).await;
    let before = commandstats(s.port()).await;
    let opts = AuditOptions {
        memory_samples: Some(1),
        ..AuditOptions::default()
    };
    let r = audit::run(
        &connector(),
        &local(s.port()),
        false,
        &opts,
        None,
        CancellationToken::new(),
    )
    .await
    .expect("audit runs");
    assert!(r.complete);
    let after = commandstats(s.port()).await;
    let grew: Vec<&String> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(v))
        .map(|(k, _)| k)
        .collect();
    assert!(grew.iter().any(|k| k.as_str() == "scan"), "{grew:?}");
    for k in &grew {
        let k = k.to_ascii_lowercase();
        assert!(
            !(k == "keys"
                || k.starts_with("flush")
                || k.starts_with("config")
                || k.starts_with("debug")),
            "audit sent {k}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_present_throughout_are_counted_once_under_churn() {
    let s = server();
    let mut c = conn(s.port()).await;
    let mut keys: Vec<(Vec<u8>, Option<u64>)> = Vec::new();
    for i in 0..20_000 {
        keys.push((
            format!("stable:{i}").into_bytes(),
            (i % 3 == 0).then_some(600),
        ));
    }
    for i in 0..40_000 {
        keys.push((format!("doomed:{i}").into_bytes(), None));
    }
    load(&mut c, &keys).await;
    let stop = CancellationToken::new();
    // Churn: delete every doomed key (the table shrinks: SCAN may repeat keys) and add
    // fresh ones, while the audit runs at a paced rate.
    let churn = {
        let stop = stop.clone();
        let port = s.port();
        tokio::spawn(async move {
            let mut c = conn(port).await;
            let mut round = 0u64;
            while !stop.is_cancelled() {
                let mut p = redis::pipe();
                for i in 0..500 {
                    let n = round * 500 + i;
                    if n < 40_000 {
                        p.cmd("DEL").arg(format!("doomed:{n}")).ignore();
                    }
                    p.cmd("SET").arg(format!("fresh:{n}")).arg("v").ignore();
                }
                let () = p.query_async(c.raw()).await.expect("churn");
                round += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            round
        })
    };
    let opts = AuditOptions {
        count: 200,
        rate_limit: Some(40_000),
        ..AuditOptions::default()
    };
    let r = audit::run(
        &connector(),
        &local(s.port()),
        false,
        &opts,
        None,
        CancellationToken::new(),
    )
    .await
    .expect("audit runs");
    stop.cancel();
    let rounds = churn.await.expect("churn task");
    assert!(
        rounds > 10,
        "churn ran alongside the scan ({rounds} rounds)"
    );
    assert!(r.complete, "{:?}", r.incomplete_reasons);
    let stable = r
        .patterns
        .iter()
        .find(|p| p.pattern == "stable:{n}")
        .expect("stable");
    assert_eq!(stable.keys, 20_000);
    assert_eq!(stable.no_ttl, 20_000 - 6667);
    let pat = |name: &str| {
        r.patterns
            .iter()
            .find(|p| p.pattern == name)
            .map_or(0, |p| p.keys)
    };
    assert!(pat("doomed:{n}") <= 40_000);
    assert!(pat("fresh:{n}") <= rounds * 500);
    assert_eq!(r.total_keys, 20_000 + pat("doomed:{n}") + pat("fresh:{n}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_dedup_a_shrinking_keyspace_is_flagged() {
    let s = server();
    let mut c = conn(s.port()).await;
    let keys: Vec<(Vec<u8>, Option<u64>)> = (0..60_000)
        .map(|i| (format!("gone:{i}").into_bytes(), None))
        .collect();
    load(&mut c, &keys).await;
    let port = s.port();
    let deleter = tokio::spawn(async move {
        let mut c = conn(port).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        for chunk in (0..50_000).collect::<Vec<u32>>().chunks(1000) {
            let mut p = redis::pipe();
            for i in chunk {
                p.cmd("DEL").arg(format!("gone:{i}")).ignore();
            }
            let () = p.query_async(c.raw()).await.expect("delete");
        }
    });
    let opts = AuditOptions {
        count: 100,
        rate_limit: Some(30_000),
        dedup_max_keys: 0,
        ..AuditOptions::default()
    };
    let r = audit::run(
        &connector(),
        &local(s.port()),
        false,
        &opts,
        None,
        CancellationToken::new(),
    )
    .await
    .expect("audit runs");
    deleter.await.expect("deleter");
    assert_eq!(r.dedup, "detect");
    assert!(
        r.duplicates_possible,
        "a shrink without dedup must be flagged"
    );
    assert!(r.findings.iter().any(|f| f.message.contains("twice")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paced_mode_holds_the_rate() {
    let s = server();
    let mut c = conn(s.port()).await;
    let keys: Vec<(Vec<u8>, Option<u64>)> = (0..20_000)
        .map(|i| (format!("p:{i}").into_bytes(), None))
        .collect();
    load(&mut c, &keys).await;
    let opts = AuditOptions {
        rate_limit: Some(10_000),
        ..AuditOptions::default()
    };
    let started = Instant::now();
    let r = audit::run(
        &connector(),
        &local(s.port()),
        false,
        &opts,
        None,
        CancellationToken::new(),
    )
    .await
    .expect("audit runs");
    let rate = r.total_keys as f64 / started.elapsed().as_secs_f64();
    assert_eq!(r.total_keys, 20_000);
    assert!(
        (9_000.0..=11_000.0).contains(&rate),
        "rate {rate:.0} keys/s"
    );
}

/// Six nodes: three primaries with a replica each, formed into a cluster.
pub(crate) struct Cluster {
    pub(crate) primaries: Vec<ValkeyServer>,
    pub(crate) replicas: Vec<ValkeyServer>,
}

pub(crate) async fn cluster() -> Cluster {
    let primaries: Vec<ValkeyServer> = (0..3).map(|_| start(ServerSpec::new().cluster())).collect();
    let replicas: Vec<ValkeyServer> = (0..3).map(|_| start(ServerSpec::new().cluster())).collect();
    let plan: Vec<cachedeck::sandbox::cluster::ShardPlan> = primaries
        .iter()
        .zip(&replicas)
        .map(|(p, r)| cachedeck::sandbox::cluster::ShardPlan {
            primary: p.port(),
            replicas: vec![r.port()],
        })
        .collect();
    cachedeck::sandbox::cluster::form(
        &plan,
        &cachedeck::sandbox::client::NodeAuth::default(),
        Duration::from_secs(30),
    )
    .await
    .expect("cluster forms");
    Cluster {
        primaries,
        replicas,
    }
}

/// Loads keys into the primary owning each key's slot, then waits for the replicas.
pub(crate) async fn load_cluster(cl: &Cluster, keys: &[(Vec<u8>, Option<u64>)]) {
    let ranges = cachedeck::sandbox::cluster::slot_ranges(3);
    let mut per: Vec<Vec<(Vec<u8>, Option<u64>)>> = vec![Vec::new(); 3];
    for k in keys {
        let slot = cachedeck::valkey::slot::key_slot(std::str::from_utf8(&k.0).expect("ascii"));
        let shard = ranges
            .iter()
            .position(|(a, b)| (*a..=*b).contains(&slot))
            .expect("slot in a range");
        per[shard].push(k.clone());
    }
    for (p, ks) in cl.primaries.iter().zip(&per) {
        load(&mut conn(p.port()).await, ks).await;
    }
    let until = Instant::now() + Duration::from_secs(20);
    for (r, ks) in cl.replicas.iter().zip(&per) {
        let mut c = conn(r.port()).await;
        loop {
            let n: u64 = c.query(&redis::cmd("DBSIZE")).await.expect("dbsize");
            if n == ks.len() as u64 {
                break;
            }
            assert!(Instant::now() < until, "replica caught up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub(crate) fn cluster_keys(n: usize) -> Vec<(Vec<u8>, Option<u64>)> {
    (0..n)
        .map(|i| {
            let k = match i % 3 {
                0 => format!("cache:item:{i}"),
                1 => format!("user:{i}:profile"),
                _ => format!("queue:q{i}"),
            };
            (k.into_bytes(), (i % 4 == 0).then_some(3600))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_shards_are_scanned_on_replicas_exactly() {
    let cl = cluster().await;
    let keys = cluster_keys(30_000);
    load_cluster(&cl, &keys).await;
    let opts = AuditOptions {
        count: 500,
        ..AuditOptions::default()
    };
    let seed = local(cl.primaries[0].port());
    let r = audit::run(
        &connector(),
        &seed,
        false,
        &opts,
        None,
        CancellationToken::new(),
    )
    .await
    .expect("audit runs");
    assert!(r.complete, "{:?}", r.incomplete_reasons);
    assert_eq!(r.shards.len(), 3);
    let replica_ports: Vec<String> = cl
        .replicas
        .iter()
        .map(|s| local(s.port()).address())
        .collect();
    for sh in &r.shards {
        assert!(sh.replica && replica_ports.contains(&sh.node), "{sh:?}");
        assert!(sh.keys > 9_000, "{sh:?}");
    }
    assert_eq!(r.total_keys, 30_000);
    assert_eq!(counted(&r), truth(&keys));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_lost_mid_scan_restarts_that_shard() {
    let mut cl = cluster().await;
    let keys = cluster_keys(30_000);
    load_cluster(&cl, &keys).await;
    let opts = AuditOptions {
        count: 100,
        rate_limit: Some(15_000),
        shard_retries: 6,
        ..AuditOptions::default()
    };
    let seed = local(cl.primaries[0].port());
    let task = tokio::spawn(async move {
        audit::run(
            &connector(),
            &seed,
            false,
            &opts,
            None,
            CancellationToken::new(),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    cl.replicas[1].kill();
    let r = task.await.expect("task").expect("audit runs");
    assert!(r.complete, "{:?}", r.incomplete_reasons);
    assert_eq!(r.total_keys, 30_000);
    assert_eq!(counted(&r), truth(&keys));
    assert!(r.shards.iter().any(|s| s.restarts > 0), "{:?}", r.shards);
}
