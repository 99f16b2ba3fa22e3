//! The shipped `marker-roundtrip` runbook against a real server, its journal, `runs
//! list|show`, and `--dry-run`.

use super::estate::{MARKER_RUN, RunbookEstate, json_out, stderr};
use crate::harness::valkey::raw_command;
use std::os::unix::fs::PermissionsExt;

#[test]
fn marker_roundtrip_writes_reads_back_journals_and_releases_the_lock() {
    let Some(estate) = RunbookEstate::start() else {
        return;
    };
    let out = estate
        .cmd()
        .args([
            "run",
            "marker-roundtrip",
            "--env",
            "dev",
            "--cache",
            "orders",
        ])
        .args(["--yes", "--param", "ttl=2m", "--output", "json"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let report = json_out(&out);
    assert_eq!(report["state"], "succeeded");
    let run_id = report["run_id"].as_str().expect("run id").to_string();
    let ids: Vec<&str> = report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["reachable", "write", "pause", "read"]);
    assert_eq!(report["steps"][3]["outputs"]["value"], run_id.as_str());

    // The marker is really there, with the TTL asked for.
    let key = format!("cachedeck:marker:{run_id}");
    assert!(raw_command(estate.server.port(), &["GET", &key]).contains(&run_id));
    let ttl = raw_command(estate.server.port(), &["TTL", &key]);
    let ttl: i64 = ttl.trim().trim_start_matches(':').parse().expect("ttl");
    assert!((60..=120).contains(&ttl), "ttl {ttl}");

    // Journal: private, fsynced records of every step, write-ahead around the write.
    let path = estate.runs_dir().join(format!("{run_id}.jsonl"));
    let mode = std::fs::metadata(&path)
        .expect("journal")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let kinds: Vec<String> = estate
        .records(&run_id)
        .iter()
        .map(|r| {
            format!(
                "{}:{}",
                r["record"].as_str().unwrap_or("?"),
                r["step"].as_str().unwrap_or("")
            )
        })
        .collect();
    let intent = kinds
        .iter()
        .position(|k| k == "intent:write")
        .expect("intent");
    let done = kinds
        .iter()
        .position(|k| k == "step-done:write")
        .expect("done");
    assert!(intent < done, "{kinds:?}");
    assert_eq!(kinds.first().map(String::as_str), Some("run-started:"));
    assert_eq!(kinds.last().map(String::as_str), Some("run-finished:"));
    assert!(kinds.contains(&"lock:".to_string()));

    // The lock was given back: a second mutating run on the same cache proceeds.
    let again = estate.cmd().args(MARKER_RUN).output().expect("run again");
    assert_eq!(again.status.code(), Some(0), "stderr: {}", stderr(&again));

    let list = estate
        .cmd()
        .args(["runs", "list", "--output", "json"])
        .output()
        .expect("runs list");
    let runs = json_out(&list);
    assert_eq!(runs.as_array().map(Vec::len), Some(2));
    assert!(
        runs.as_array()
            .expect("runs")
            .iter()
            .all(|r| r["state"] == "succeeded")
    );
    let show = estate
        .cmd()
        .args(["runs", "show", &run_id])
        .output()
        .expect("runs show");
    assert_eq!(show.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&show.stdout).contains("step-done"));
}

#[test]
fn dry_run_prints_the_exact_calls_and_executes_nothing() {
    let Some(estate) = RunbookEstate::start() else {
        return;
    };
    let sets_before = estate.calls("set");
    let out = estate
        .cmd()
        .args([
            "run",
            "marker-roundtrip",
            "--env",
            "dev",
            "--cache",
            "orders",
        ])
        .args(["--dry-run", "--output", "json"])
        .output()
        .expect("dry run");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let plan = json_out(&out);
    let calls = plan.to_string();
    assert!(
        calls.contains(
            "PutParameter name=/cachedeck/locks/123456789012/eu-west-1/orders overwrite=false"
        ),
        "{calls}"
    );
    assert!(
        calls.contains("SET cachedeck:marker:<run id> <run id> EX 600"),
        "{calls}"
    );
    assert!(calls.contains(&format!("127.0.0.1:{}", estate.server.port())));
    assert_eq!(estate.calls("set"), sets_before);
    assert!(estate.journals().is_empty(), "a dry run writes no journal");
}
