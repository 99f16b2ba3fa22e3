//! `cachedeck run ttl-audit` end to end on the sandbox: the engine, the action and the
//! headless runner against real servers — on the cluster-mode cache (every shard) and on the
//! replication group behind its TLS endpoint — checked against a ground truth the test reads
//! from the nodes itself; `--output json|csv|markdown` carry the same totals, stdout holds only
//! the result and stderr the progress.

use crate::audit::truth;
use crate::harness::sandbox::Sandbox;
use crate::remediate::client;
use crate::remediate::cluster::primaries;
use crate::runbook::estate::stderr;
use std::collections::{BTreeMap, BTreeSet};

/// Every key on the nodes, with whether it has a TTL (binary-safe names).
fn snapshot(ports: &[u16], password: Option<&str>) -> BTreeMap<Vec<u8>, bool> {
    let mut keys = BTreeMap::new();
    for port in ports {
        let mut c = client(*port);
        if let Some(p) = password {
            redis::cmd("AUTH").arg(p).query::<()>(&mut c).expect("auth");
        }
        let mut cursor = 0u64;
        loop {
            let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("COUNT")
                .arg(1000)
                .query(&mut c)
                .expect("scan");
            let mut pipe = redis::pipe();
            for k in &batch {
                pipe.cmd("PTTL").arg(k);
            }
            let ttls: Vec<i64> = pipe.query(&mut c).expect("pttl");
            for (k, t) in batch.into_iter().zip(ttls) {
                if t != -2 {
                    keys.insert(k, t >= 0);
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    keys
}

/// Ground truth per pattern, (keys, no TTL), of a set of keys.
fn by_pattern<'a>(
    keys: impl Iterator<Item = (&'a Vec<u8>, &'a bool)>,
) -> BTreeMap<String, (u64, u64)> {
    let list: Vec<(Vec<u8>, Option<u64>)> =
        keys.map(|(k, ttl)| (k.clone(), ttl.then_some(1))).collect();
    truth(&list)
}

fn run(sandbox: &Sandbox, cache: &str, output: &str) -> std::process::Output {
    sandbox
        .cachedeck()
        .args(["run", "ttl-audit", "--env", "sandbox-dev", "--cache", cache])
        .args(["--output", output])
        .output()
        .expect("run ttl-audit")
}

/// Audits `cache` headless as JSON and checks it against the keys read before and after:
/// every key present throughout is counted once, and nothing that was never there is.
fn audit_matches_ground_truth(sandbox: &Sandbox, cache: &str, shards: usize) {
    let (ports, password) = primaries(sandbox, cache);
    assert_eq!(ports.len(), shards, "{cache}: shards");
    let before = snapshot(&ports, password.as_deref());
    let out = run(sandbox, cache, "json");
    let after = snapshot(&ports, password.as_deref());
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(report["complete"], true, "{}", report["incomplete_reasons"]);
    for field in ["keys_without_ttl", "patterns", "duration_ms", "run_id"] {
        assert!(report.get(field).is_some(), "{field} at the top level");
    }
    assert!(
        report["steps"][0]["outputs"].get("report").is_none(),
        "the report is not printed twice"
    );
    let throughout: BTreeSet<&Vec<u8>> = before.keys().filter(|k| after.contains_key(*k)).collect();
    let ever: BTreeSet<&Vec<u8>> = before.keys().chain(after.keys()).collect();
    let total = report["total_keys"].as_u64().expect("total_keys");
    assert!(
        (throughout.len() as u64..=ever.len() as u64).contains(&total),
        "{cache}: counted {total}, present throughout {}, ever {}",
        throughout.len(),
        ever.len()
    );
    let low = by_pattern(before.iter().filter(|(k, _)| after.contains_key(*k)));
    let high = by_pattern(
        before
            .iter()
            .chain(after.iter())
            .collect::<BTreeMap<_, _>>()
            .into_iter(),
    );
    let counted: BTreeMap<String, (u64, u64)> = report["patterns"]
        .as_array()
        .expect("patterns")
        .iter()
        .map(|p| {
            let n = |f: &str| p[f].as_u64().expect("count");
            (
                p["pattern"].as_str().expect("pattern").to_string(),
                (n("keys"), n("no_ttl")),
            )
        })
        .collect();
    for pattern in low.keys() {
        assert!(counted.contains_key(pattern), "{cache}: {pattern} missing");
    }
    for (pattern, (keys, no_ttl)) in &counted {
        let (lo, lo_bare) = low.get(pattern).copied().unwrap_or((0, 0));
        let Some(&(hi, hi_bare)) = high.get(pattern) else {
            panic!("{cache}: counted {pattern}, which no key on the nodes has");
        };
        assert!(
            (lo..=hi).contains(keys),
            "{cache} {pattern}: {keys} keys, truth {lo}..={hi}"
        );
        // Keys without TTL do not expire: their count is exact.
        assert_eq!(
            (lo_bare, hi_bare),
            (*no_ttl, *no_ttl),
            "{cache} {pattern}: no TTL"
        );
    }
    let bare_truth = before.values().filter(|t| !**t).count() as u64;
    assert_eq!(report["keys_without_ttl"], bare_truth, "{cache}");
}

#[test]
fn headless_audits_of_the_sandbox_match_ground_truth() {
    let sandbox = Sandbox::up(6000);
    audit_matches_ground_truth(&sandbox, "paperwurks", 3);
    audit_matches_ground_truth(&sandbox, "orders", 1);
}

#[test]
fn csv_and_markdown_carry_the_json_totals_and_stdout_only_the_result() {
    let sandbox = Sandbox::up(3000);
    let json = run(&sandbox, "paperwurks", "json");
    assert_eq!(json.status.code(), Some(0), "stderr: {}", stderr(&json));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    let bare = report["keys_without_ttl"].as_u64().expect("no ttl");
    assert!(bare > 0, "the sandbox seeds keys without TTL");

    let csv = run(&sandbox, "paperwurks", "csv");
    assert_eq!(csv.status.code(), Some(0), "stderr: {}", stderr(&csv));
    let text = String::from_utf8(csv.stdout.clone()).expect("utf-8");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    assert_eq!(&header[..5], ["pattern", "db", "family", "keys", "no_ttl"]);
    let col = header
        .iter()
        .position(|h| *h == "no_ttl")
        .expect("no_ttl column");
    let csv_bare: u64 = lines
        .map(|l| {
            // Patterns never hold a comma or a quote, so splitting is safe here.
            l.split(',')
                .nth(col)
                .expect("cell")
                .parse::<u64>()
                .expect("number")
        })
        .sum();
    assert_eq!(csv_bare, bare, "CSV no-TTL column sums to the JSON total");
    let progress = stderr(&csv);
    assert!(
        progress.contains("> audit") && progress.contains("keys scanned"),
        "{progress}"
    );

    let md = run(&sandbox, "paperwurks", "markdown");
    assert_eq!(md.status.code(), Some(0), "stderr: {}", stderr(&md));
    let md = String::from_utf8(md.stdout).expect("utf-8");
    assert!(md.starts_with("# TTL audit"), "{md}");
    assert!(md.contains(&format!(", {bare} without TTL")), "{md}");
    assert!(md.contains("| `user:{n}` |"), "{md}");
}

#[test]
fn csv_of_a_runbook_without_an_audit_is_bad_input_and_runs_nothing() {
    let sandbox = Sandbox::up(100);
    let out = sandbox
        .cachedeck()
        .args([
            "run",
            "marker-roundtrip",
            "--env",
            "sandbox-dev",
            "--cache",
            "orders",
        ])
        .args(["--yes", "--output", "csv"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).contains("use --output text or json"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());
    let runs = sandbox
        .cachedeck()
        .args(["runs", "list", "--output", "json"])
        .output()
        .expect("runs list");
    let listed: serde_json::Value = serde_json::from_slice(&runs.stdout).expect("json");
    assert_eq!(
        listed.as_array().map(Vec::len),
        Some(0),
        "no run was journaled"
    );
}

#[test]
fn serverless_audits_and_remediations_stop_above_max_usd() {
    let sandbox = Sandbox::up(2000);
    let out = run(&sandbox, "storefront", "json");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).contains("serverless estimate:"),
        "{}",
        stderr(&out)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(report["total_keys"].as_u64() > Some(0), "{report}");

    let refused = sandbox
        .cachedeck()
        .args([
            "run",
            "ttl-audit",
            "--env",
            "sandbox-dev",
            "--cache",
            "storefront",
        ])
        .args(["--param", "max_usd=0", "--output", "json"])
        .output()
        .expect("run ttl-audit");
    assert_eq!(
        refused.status.code(),
        Some(1),
        "stderr: {}",
        stderr(&refused)
    );
    let err = stderr(&refused);
    assert!(
        err.contains("is over max_usd") && err.contains("--param max_usd="),
        "{err}"
    );
    let report: serde_json::Value = serde_json::from_slice(&refused.stdout).expect("json");
    assert!(report.get("total_keys").is_none(), "no audit ran: {report}");

    // ttl-remediate's apply honours the same ceiling with the survey's estimate.
    let remediate = sandbox
        .cachedeck()
        .args([
            "run",
            "ttl-remediate",
            "--env",
            "sandbox-dev",
            "--cache",
            "storefront",
        ])
        .args([
            "--param",
            "pattern=*",
            "--param",
            "ttl=1d",
            "--param",
            "dry_run=false",
        ])
        .args(["--param", "max_usd=0", "--yes", "--output", "json"])
        .output()
        .expect("run ttl-remediate");
    assert_eq!(
        remediate.status.code(),
        Some(1),
        "stderr: {}",
        stderr(&remediate)
    );
    let err = stderr(&remediate);
    assert!(err.contains("over max_usd"), "{err}");
    let report: serde_json::Value = serde_json::from_slice(&remediate.stdout).expect("json");
    let apply = report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["id"] == "apply")
        .expect("apply step");
    assert_eq!(apply["state"], "failed", "{apply}");
    assert!(
        apply["outputs"].get("updated").is_none(),
        "nothing was set: {apply}"
    );
}
