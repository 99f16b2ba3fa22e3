//! Killing the runner and resuming: the run finishes with the same final state and the
//! write is never repeated, including when the kill fell between the write and its
//! `done` record (write-ahead + observe). Ctrl-C records `interrupted` (exit 5).

use super::estate::{RunbookEstate, json_out, stderr};
use crate::harness::valkey::raw_command;
use std::process::Stdio;

fn start_paused(estate: &RunbookEstate, pause: &str) -> std::process::Child {
    estate
        .std_cmd()
        .args([
            "run",
            "marker-roundtrip",
            "--env",
            "dev",
            "--cache",
            "orders",
        ])
        .args(["--yes", "--param", &format!("pause={pause}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("runner")
}

fn resume(estate: &RunbookEstate, run_id: &str) -> serde_json::Value {
    let out = estate
        .cmd()
        .args(["runs", "resume", run_id, "--yes", "--output", "json"])
        .output()
        .expect("resume");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    json_out(&out)
}

fn step_state(report: &serde_json::Value, id: &str) -> String {
    report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["id"] == id)
        .map(|s| s["state"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

#[test]
fn sigkill_between_steps_then_resume_finishes_without_a_second_write() {
    let Some(estate) = RunbookEstate::start() else {
        return;
    };
    let sets = estate.calls("set");
    let mut runner = start_paused(&estate, "3s");
    let run_id = estate.wait_for_record("pause started", |r| {
        r["record"] == "step-started" && r["step"] == "pause"
    });
    runner.kill().expect("SIGKILL");
    let _ = runner.wait();
    assert_eq!(estate.calls("set"), sets + 1);

    let list = json_out(
        &estate
            .cmd()
            .args(["runs", "list", "--output", "json"])
            .output()
            .expect("list"),
    );
    assert_eq!(list[0]["state"], "incomplete");
    assert_eq!(list[0]["last_step"], "pause");

    let report = resume(&estate, &run_id);
    assert_eq!(report["state"], "succeeded");
    assert_eq!(report["run_id"], run_id.as_str());
    assert_eq!(step_state(&report, "write"), "already-done");
    assert_eq!(step_state(&report, "read"), "succeeded");
    assert_eq!(estate.calls("set"), sets + 1, "resume must not write again");
    let key = format!("cachedeck:marker:{run_id}");
    assert!(raw_command(estate.server.port(), &["GET", &key]).contains(&run_id));
    // The resumed pause only waited what was left of the 3 s.
    let waited = report["steps"][2]["outputs"]["waited_ms"]
        .as_i64()
        .expect("waited");
    assert!(waited < 3000, "waited {waited} ms");
}

#[test]
fn kill_after_the_write_but_before_its_done_record_is_observed_not_repeated() {
    let Some(estate) = RunbookEstate::start() else {
        return;
    };
    let sets = estate.calls("set");
    let mut runner = start_paused(&estate, "5s");
    let run_id = estate.wait_for_record("pause started", |r| {
        r["record"] == "step-started" && r["step"] == "pause"
    });
    runner.kill().expect("SIGKILL");
    let _ = runner.wait();
    // Make the journal look as if the runner died right after SET, before `step-done`.
    let path = estate.runs_dir().join(format!("{run_id}.jsonl"));
    let text = std::fs::read_to_string(&path).expect("journal");
    let cut = text
        .find("\"record\":\"step-done\",\"step\":\"write\"")
        .map(|i| text[..i].rfind('\n').map_or(0, |n| n + 1))
        .expect("write done record");
    std::fs::write(&path, &text[..cut]).expect("truncate journal");

    let report = resume(&estate, &run_id);
    assert_eq!(report["state"], "succeeded");
    assert_eq!(step_state(&report, "write"), "already-done");
    assert_eq!(estate.calls("set"), sets + 1, "observed, not repeated");
    let records = estate.records(&run_id);
    assert!(
        records.iter().any(|r| r["record"] == "observed"
            && r["step"] == "write"
            && r["facts"].as_str().unwrap_or("").contains("took effect")),
        "{records:?}"
    );
}

#[test]
fn ctrl_c_records_interrupted_and_exits_5() {
    let Some(estate) = RunbookEstate::start() else {
        return;
    };
    let runner = start_paused(&estate, "5s");
    let run_id = estate.wait_for_record("pause started", |r| {
        r["record"] == "step-started" && r["step"] == "pause"
    });
    let pid = nix::unistd::Pid::from_raw(runner.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let out = runner.wait_with_output().expect("runner ends");
    assert_eq!(out.status.code(), Some(5));
    let records = estate.records(&run_id);
    let last = records.last().expect("records");
    assert_eq!(last["record"], "run-finished");
    assert_eq!(last["state"], "interrupted");
    let report = resume(&estate, &run_id);
    assert_eq!(report["state"], "succeeded");
}
