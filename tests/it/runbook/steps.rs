//! Step semantics through the binary: retries with backoff, rollback on failure, and
//! secrets that pass between steps without reaching the journal or the screen.

use super::estate::{RunbookEstate, json_out, ssm, stderr};
use crate::harness::valkey::raw_command;
use std::path::PathBuf;
use std::time::Instant;

fn ok_fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/runbooks/ok")
        .join(name)
}

#[test]
fn retryable_failures_are_retried_with_backoff_then_fail_with_exit_1() {
    let Some(estate) = RunbookEstate::start() else {
        return;
    };
    let started = Instant::now();
    let out = estate
        .cmd()
        .args([
            "run",
            "health-check",
            "--env",
            "dev",
            "--cache",
            "gone",
            "--output",
            "json",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    assert!(
        started.elapsed().as_millis() >= 1000,
        "backoff of 1s was waited"
    );
    let report = json_out(&out);
    assert_eq!(report["state"], "failed");
    assert_eq!(report["steps"][0]["state"], "failed");
    let error = report["error"].as_str().expect("error");
    assert!(
        error.contains("tcp") || error.contains("refused"),
        "{error}"
    );
    let run_id = report["run_id"].as_str().expect("run id");
    let attempts: Vec<(i64, bool)> = estate
        .records(run_id)
        .iter()
        .filter(|r| r["record"] == "step-failed")
        .map(|r| {
            (
                r["attempt"].as_i64().unwrap_or(0),
                r["retrying"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    assert_eq!(attempts, [(1, true), (2, false)]);
    assert_eq!(
        report["steps"].as_array().map(Vec::len),
        Some(1),
        "later steps did not run"
    );
}

#[test]
fn a_failing_step_runs_its_rollback_step_and_stops() {
    let Some(estate) = RunbookEstate::start() else {
        return;
    };
    let out = estate
        .cmd()
        .arg("run")
        .arg(ok_fixture("rollback-demo.toml"))
        .args([
            "--env", "dev", "--cache", "orders", "--yes", "--output", "json",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    let report = json_out(&out);
    let states: Vec<String> = report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            format!(
                "{}={}",
                s["id"].as_str().unwrap_or(""),
                s["state"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        states,
        ["write=succeeded", "verify=failed", "undo=succeeded"]
    );
    let error = report["error"].as_str().expect("error");
    assert!(
        error.contains("written == expected") && error.contains("rolled back with `undo`"),
        "{error}"
    );
    let key = format!("rb:{}", report["run_id"].as_str().expect("id"));
    assert!(raw_command(estate.server.port(), &["GET", &key]).contains("rolled-back"));
}

#[test]
fn secrets_flow_between_steps_but_never_reach_journal_or_output() {
    let Some(estate) = RunbookEstate::start() else {
        return;
    };
    const SECRET: &str = "tok-S3CRET-never-print-42";
    ssm(
        &estate.moto,
        &format!("put_parameter(Name='/app/dev/token',Value='{SECRET}',Type='SecureString')"),
    );
    let out = estate
        .cmd()
        .arg("run")
        .arg(ok_fixture("secret-copy.toml"))
        .args([
            "--env", "dev", "--cache", "orders", "--yes", "--output", "json",
        ])
        .args([
            "--param",
            "from=/app/dev/token",
            "--param",
            "to=/app/dev/token-copy",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let copied = ssm(
        &estate.moto,
        "get_parameter(Name='/app/dev/token-copy',WithDecryption=True)",
    );
    assert!(copied.contains(SECRET), "the secret was copied");
    assert!(
        copied.contains("SecureString"),
        "and stored as SecureString: {copied}"
    );
    let report = json_out(&out);
    let run_id = report["run_id"].as_str().expect("id");
    let journal = std::fs::read_to_string(estate.runs_dir().join(format!("{run_id}.jsonl")))
        .expect("journal");
    assert!(!journal.contains(SECRET), "journal holds no secret");
    assert!(
        journal.contains("\"secret_outputs\":[\"value\"]"),
        "secret outputs are named: {journal}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains(SECRET));
    assert!(!stderr(&out).contains(SECRET));
}
