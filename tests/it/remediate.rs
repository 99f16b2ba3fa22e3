//! The `ttl-remediate` runbook through the binary against a real valkey-server: the dry run
//! counts exactly and writes nothing; applying gives exactly the matching keys without TTL a
//! TTL in range, once; the rate holds; read-only refuses; SIGKILL mid-apply then
//! `runs resume` finishes with every key changed once. Cluster mode and failovers: `cluster`.

pub(crate) mod cluster;

use crate::runbook::estate::{RunbookEstate, json_out, stderr};
use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

pub(crate) fn client(port: u16) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .expect("client")
        .get_connection()
        .expect("connect to the test server")
}

/// Seeds: `cache:product:<n>` without TTL (`bare`) and with a 100000 s TTL (`ttl`),
/// `cache:product:<n>:meta` without TTL (matches the glob, not `{n}`) and `session:<hex>`
/// without TTL (matches neither).
fn seed(port: u16, bare: u64, ttl: u64) {
    let mut c = client(port);
    let mut p = redis::pipe();
    for i in 0..bare {
        p.cmd("SET")
            .arg(format!("cache:product:{i}"))
            .arg("{}")
            .ignore();
    }
    for i in bare..bare + ttl {
        p.cmd("SET")
            .arg(format!("cache:product:{i}"))
            .arg("{}")
            .arg("EX")
            .arg(100_000)
            .ignore();
    }
    for i in 0..50 {
        p.cmd("SET")
            .arg(format!("cache:product:{i}:meta"))
            .arg("m")
            .ignore();
        p.cmd("SET")
            .arg(format!("session:{i:032x}"))
            .arg("s")
            .ignore();
    }
    p.query::<()>(&mut c).expect("seed");
}

/// PTTL of every key, by name (SCAN, so the runner's KEYS count stays its own).
fn pttls(port: u16) -> BTreeMap<String, i64> {
    let mut c = client(port);
    let mut keys: Vec<String> = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, page): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query(&mut c)
            .expect("scan");
        keys.extend(page);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let mut p = redis::pipe();
    for k in &keys {
        p.cmd("PTTL").arg(k);
    }
    let ttls: Vec<i64> = p.query(&mut c).expect("pttl");
    keys.into_iter().zip(ttls).collect()
}

fn run(estate: &RunbookEstate, env: &str, params: &[&str]) -> std::process::Output {
    let mut cmd = estate.cmd();
    cmd.args(["run", "ttl-remediate", "--env", env, "--cache", "orders"])
        .args(["--yes", "--output", "json"]);
    for p in params {
        cmd.args(["--param", p]);
    }
    cmd.output().expect("run ttl-remediate")
}

fn outputs<'a>(report: &'a serde_json::Value, step: &str) -> &'a serde_json::Value {
    &report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["id"] == step)
        .unwrap_or_else(|| panic!("no step {step} in {report}"))["outputs"]
}

#[test]
fn dry_run_counts_exactly_and_writes_nothing() {
    let Some(estate) = RunbookEstate::start() else {
        return;
    };
    let port = estate.server.port();
    seed(port, 300, 100);
    let before = pttls(port);

    let out = run(&estate, "dev", &["pattern=cache:product:{n}", "ttl=1h"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let report = json_out(&out);
    let survey = outputs(&report, "survey");
    assert_eq!(survey["pattern_kind"], "audit-pattern");
    assert_eq!(survey["matched"], 400, "{survey}");
    assert_eq!(survey["no_ttl"], 300);
    assert_eq!(survey["with_ttl"], 100);
    assert_eq!(survey["complete"], true);
    assert!(
        survey["examples"][0]
            .as_str()
            .expect("example")
            .starts_with("cache:product:")
    );
    let apply = outputs(&report, "apply");
    assert_eq!(apply["dry_run"], true);
    assert_eq!(apply["updated"], 0);

    // A glob takes the `:meta` keys too.
    let out = run(&estate, "dev", &["pattern=cache:product:*", "ttl=1h"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let survey = outputs(&json_out(&out), "survey").clone();
    assert_eq!(survey["pattern_kind"], "glob");
    assert_eq!(
        (survey["matched"].clone(), survey["no_ttl"].clone()),
        (450.into(), 350.into())
    );

    let after = pttls(port);
    assert_eq!(before.len(), after.len());
    for (k, b) in &before {
        let a = after[k];
        if *b == -1 {
            assert_eq!(a, -1, "{k} got a TTL in a dry run");
        } else {
            assert!(a <= *b && a > b - 60_000, "{k}: {b} → {a}");
        }
    }
    assert_eq!(estate.calls("expire"), 0);
}

#[test]
fn apply_sets_a_ttl_in_range_on_exactly_the_matching_keys_without_one() {
    let Some(estate) = RunbookEstate::start() else {
        return;
    };
    let port = estate.server.port();
    seed(port, 300, 100);
    let out = run(
        &estate,
        "dev",
        &[
            "pattern=cache:product:{id}",
            "ttl=1h",
            "jitter=10",
            "dry_run=false",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let report = json_out(&out);
    let apply = outputs(&report, "apply");
    assert_eq!(apply["updated"], 300, "{apply}");
    assert_eq!(apply["skipped_with_ttl"], 100);
    assert_eq!(apply["complete"], true);
    assert_eq!(apply["shards"].as_array().expect("shards").len(), 1);

    let (lo, hi) = (3600 * 900, 3600 * 1100); // ms, ±10 %
    let mut spread = std::collections::BTreeSet::new();
    for (k, ttl) in pttls(port) {
        let n = k
            .strip_prefix("cache:product:")
            .and_then(|r| r.parse::<u64>().ok());
        match n {
            Some(n) if n < 300 => {
                assert!((lo - 5_000..=hi).contains(&ttl), "{k}: {ttl} ms");
                spread.insert(ttl / 1000);
            }
            // Their own TTL, not overwritten.
            Some(_) => assert!(ttl > 99_000_000, "{k}: {ttl} ms"),
            None => assert_eq!(ttl, -1, "{k} does not match and got a TTL"),
        }
    }
    assert!(
        spread.len() > 50,
        "jitter spreads TTLs: {} distinct",
        spread.len()
    );
    assert_eq!(
        estate.calls("expire"),
        300,
        "one EXPIRE per key without TTL"
    );
    for banned in ["keys", "flushall", "flushdb", "config", "debug", "del"] {
        assert_eq!(estate.calls(banned), 0, "{banned} was sent");
    }
}

#[test]
fn the_rate_limit_holds() {
    let Some(estate) = RunbookEstate::start() else {
        return;
    };
    let port = estate.server.port();
    seed(port, 3000, 0);
    let out = run(
        &estate,
        "dev",
        &[
            "pattern=cache:product:{n}",
            "ttl=1h",
            "rate=1000",
            "survey_rate=1000",
            "dry_run=false",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let report = json_out(&out);
    for step in ["survey", "apply"] {
        let s = report["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .find(|s| s["id"] == step)
            .expect("step");
        let secs = s["elapsed_ms"].as_f64().expect("elapsed") / 1000.0;
        let rate = 3000.0 / secs;
        eprintln!("{step}: 3000 keys in {secs:.3} s = {rate:.0} keys/s (set 1000)");
        assert!((900.0..=1100.0).contains(&rate), "{step}: {rate:.0} keys/s");
    }
    assert_eq!(outputs(&report, "apply")["updated"], 3000);
}

#[test]
fn a_read_only_environment_refuses_and_nothing_changes() {
    let Some(estate) = RunbookEstate::start() else {
        return;
    };
    let port = estate.server.port();
    seed(port, 100, 0);
    let out = run(
        &estate,
        "ro",
        &["pattern=cache:product:*", "ttl=1h", "dry_run=false"],
    );
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr(&out));
    assert!(stderr(&out).contains("read-only"), "{}", stderr(&out));
    assert_eq!(estate.calls("scan"), 0, "refused before touching the cache");
    assert_eq!(estate.calls("expire"), 0);
    assert!(pttls(port).values().all(|t| *t == -1));
}

#[test]
fn a_dry_run_is_allowed_in_a_read_only_environment_and_writes_nothing() {
    let Some(estate) = RunbookEstate::start() else {
        return;
    };
    let port = estate.server.port();
    seed(port, 100, 0);
    // No --yes: a dry run asks for nothing.
    let out = estate
        .cmd()
        .args(["run", "ttl-remediate", "--env", "ro", "--cache", "orders"])
        .args(["--param", "pattern=cache:product:*", "--param", "ttl=1h"])
        .args(["--output", "json"])
        .output()
        .expect("run ttl-remediate");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    // The glob also takes the 50 `cache:product:{i}:meta` keys.
    assert_eq!(outputs(&report, "survey")["no_ttl"], 150);
    assert!(estate.calls("scan") > 0, "the survey looked");
    assert_eq!(estate.calls("expire"), 0);
    assert!(pttls(port).values().all(|t| *t == -1));
}

#[test]
fn sigkill_mid_apply_then_resume_sets_every_ttl_exactly_once() {
    let Some(estate) = RunbookEstate::start() else {
        return;
    };
    let port = estate.server.port();
    let n = 4000;
    seed(port, n, 200);
    let mut runner = estate
        .std_cmd()
        .args([
            "run",
            "ttl-remediate",
            "--env",
            "dev",
            "--cache",
            "orders",
            "--yes",
        ])
        .args(["--param", "pattern=cache:product:{n}", "--param", "ttl=2h"])
        .args([
            "--param",
            "rate=2000",
            "--param",
            "count=100",
            "--param",
            "dry_run=false",
            "--param",
            "survey_rate=20000",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("runner");
    // Kill once the apply step has journaled a checkpoint with some TTLs set.
    let run_id = estate.wait_for_record("an apply checkpoint", |r| {
        r["record"] == "progress"
            && r["step"] == "apply"
            && r["facts"]["shards"]["standalone"]["updated"]
                .as_u64()
                .is_some_and(|u| u >= 500)
    });
    runner.kill().expect("SIGKILL");
    let _ = runner.wait();
    let set_before_resume = pttls(port)
        .iter()
        .filter(|(k, t)| {
            k.starts_with("cache:product:")
                && !k.ends_with(":meta")
                && **t > 0
                && **t < 3 * 3600 * 1000
        })
        .count() as u64;
    assert!(
        set_before_resume > 0 && set_before_resume < n,
        "killed mid-apply: {set_before_resume} of {n} set"
    );

    let started = Instant::now();
    let out = estate
        .cmd()
        .args(["runs", "resume", &run_id, "--yes", "--output", "json"])
        .timeout(Duration::from_secs(120))
        .output()
        .expect("resume");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let report = json_out(&out);
    assert_eq!(report["state"], "succeeded");
    let apply = outputs(&report, "apply");
    assert_eq!(apply["complete"], true);
    // Everything journaled as set plus everything found with a TTL is every matching key.
    let updated = apply["updated"].as_u64().expect("updated");
    let skipped = apply["skipped_with_ttl"].as_u64().expect("skipped");
    assert_eq!(updated + skipped, n + 200, "{apply}");
    assert!(updated <= n && updated >= set_before_resume.saturating_sub(2000));
    eprintln!(
        "resume finished in {:?}: {updated} set (journaled), {skipped} found with a TTL",
        started.elapsed()
    );

    let ttls = pttls(port);
    for i in 0..n {
        let t = ttls[&format!("cache:product:{i}")];
        assert!(
            (2 * 3600 * 900 - 60_000..=2 * 3600 * 1100).contains(&t),
            "key {i}: {t}"
        );
    }
    assert!(
        ttls.iter()
            .filter(|(k, _)| k.starts_with("session:"))
            .all(|(_, t)| *t == -1)
    );
    // Exactly once: one EXPIRE per key, across the killed run and the resume.
    assert_eq!(estate.calls("expire"), n);
    let records = estate.records(&run_id);
    assert!(records.iter().any(|r| r["record"] == "progress"));
    let observed = records
        .iter()
        .find(|r| r["record"] == "observed" && r["step"] == "apply")
        .unwrap_or_else(|| panic!("apply observed on resume: {records:?}"));
    let facts = observed["facts"].as_str().expect("facts");
    assert!(
        facts.contains("took effect in part") && facts.contains("same server, continues at cursor"),
        "{facts}"
    );
}

#[test]
fn hostile_key_names_are_counted_shown_escaped_and_remediated() {
    let Some(estate) = RunbookEstate::start() else {
        return;
    };
    let port = estate.server.port();
    let mut c = client(port);
    let mut long = b"evil:".to_vec();
    long.extend(std::iter::repeat_n(b'x', 65_536));
    let names: Vec<Vec<u8>> = vec![
        b"evil:\x1b[2J\x1b]0;pwned\x07".to_vec(),
        b"evil:\xff\xfe\x00bin".to_vec(),
        b"evil:\r\nSET x y".to_vec(),
        long,
    ];
    for n in &names {
        redis::cmd("SET")
            .arg(n)
            .arg("v")
            .query::<()>(&mut c)
            .expect("set");
    }
    let out = run(
        &estate,
        "dev",
        &["pattern=evil:*", "ttl=1h", "dry_run=false"],
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    for stream in [&out.stdout, &out.stderr] {
        assert!(
            !stream.contains(&0x1b) && !stream.contains(&0x07),
            "raw control bytes reached the output"
        );
    }
    let report = json_out(&out);
    let survey = outputs(&report, "survey");
    assert_eq!(survey["matched"], 4);
    let examples = survey["examples"].as_array().expect("examples");
    assert_eq!(examples.len(), 4);
    assert!(
        examples
            .iter()
            .all(|e| e.as_str().is_some_and(|e| e.chars().count() <= 150)),
        "{examples:?}"
    );
    assert_eq!(outputs(&report, "apply")["updated"], 4);
    for n in &names {
        let ttl: i64 = redis::cmd("PTTL").arg(n).query(&mut c).expect("pttl");
        assert!(ttl > 0, "a hostile name got no TTL");
    }
}

#[test]
fn every_logical_database_holding_keys_is_remediated_unless_one_is_named() {
    let Some(estate) = RunbookEstate::start() else {
        return;
    };
    let port = estate.server.port();
    seed(port, 30, 0);
    let mut c = client(port);
    redis::cmd("SELECT")
        .arg(2)
        .query::<()>(&mut c)
        .expect("select");
    for i in 0..20 {
        redis::cmd("SET")
            .arg(format!("cache:product:{i}"))
            .arg("{}")
            .query::<()>(&mut c)
            .expect("set");
    }
    // Only database 2.
    let out = run(
        &estate,
        "dev",
        &[
            "pattern=cache:product:{n}",
            "ttl=1h",
            "db=2",
            "dry_run=false",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let report = json_out(&out);
    assert_eq!(outputs(&report, "apply")["updated"], 20);
    assert!(
        pttls(port).values().all(|t| *t == -1),
        "database 0 untouched"
    );

    // Every database: the 30 in database 0 now (database 2 is done).
    let out = run(
        &estate,
        "dev",
        &["pattern=cache:product:{n}", "ttl=1h", "dry_run=false"],
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let report = json_out(&out);
    let apply = outputs(&report, "apply");
    assert_eq!(
        (apply["updated"].clone(), apply["skipped_with_ttl"].clone()),
        (30.into(), 20.into())
    );
    let shards: Vec<&str> = apply["shards"]
        .as_array()
        .expect("shards")
        .iter()
        .filter_map(|s| s["shard"].as_str())
        .collect();
    assert_eq!(shards, vec!["standalone", "standalone/db2"]);
    let ttls = pttls(port);
    assert!(
        ttls.iter()
            .filter(|(k, _)| k.starts_with("cache:product:") && !k.ends_with(":meta"))
            .all(|(_, t)| *t > 0)
    );
}

#[test]
fn a_pattern_matching_nothing_still_walks_the_keyspace_at_scan_rate() {
    let Some(estate) = RunbookEstate::start() else {
        return;
    };
    let port = estate.server.port();
    seed(port, 19_900, 0); // 20,000 keys with the `:meta` and `session:` ones
    let out = run(
        &estate,
        "dev",
        &[
            "pattern=nothing:*",
            "ttl=1h",
            "scan_rate=10000",
            "count=500",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let report = json_out(&out);
    assert_eq!(outputs(&report, "survey")["matched"], 0);
    let secs = report["steps"][0]["elapsed_ms"].as_f64().expect("elapsed") / 1000.0;
    // ≈ 40 SCAN calls of COUNT 500 at 10,000 keys/s, less the 1,000-key burst: ≈ 1.9 s.
    eprintln!("walked 20,000 keys in {secs:.2} s at scan_rate 10000");
    assert!((1.5..=2.6).contains(&secs), "{secs} s");
    assert!(estate.calls("scan") >= 40);
}
