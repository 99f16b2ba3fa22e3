//! Two runners on one cache: exactly one proceeds, the other exits 4 naming the holder;
//! `--force-unlock` needs the exact run id.

use super::estate::{MARKER_RUN, RunbookEstate, stderr};
use std::process::Stdio;

#[test]
fn second_runner_on_a_locked_cache_exits_4_naming_the_holder() {
    let Some(estate) = RunbookEstate::start() else {
        return;
    };
    let mut first = estate
        .std_cmd()
        .args([
            "run",
            "marker-roundtrip",
            "--env",
            "dev",
            "--cache",
            "orders",
        ])
        .args(["--yes", "--param", "pause=4s"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("first runner");
    let holder = estate.wait_for_record("write done", |r| {
        r["record"] == "step-done" && r["step"] == "write"
    });

    let sets = estate.calls("set");
    let out = estate
        .cmd()
        .args(MARKER_RUN)
        .output()
        .expect("second runner");
    assert_eq!(out.status.code(), Some(4), "stderr: {}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("oncall-tester@"), "{err}");
    assert!(err.contains(&format!("run {holder}")), "{err}");
    assert!(err.contains(&format!("--force-unlock {holder}")), "{err}");
    assert_eq!(estate.calls("set"), sets, "the loser wrote nothing");

    // A wrong id does not break the lock.
    let out = estate
        .cmd()
        .args(MARKER_RUN)
        .args(["--force-unlock", "20260101T000000Z-deadbeef"])
        .output()
        .expect("wrong force-unlock");
    assert_eq!(out.status.code(), Some(4), "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).contains("not 20260101T000000Z-deadbeef"),
        "{}",
        stderr(&out)
    );

    let status = first.wait().expect("first runner ends");
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        estate.journals().len(),
        1,
        "only the winner journaled a run"
    );
}

#[test]
fn force_unlock_with_the_exact_id_breaks_a_dead_runs_lock() {
    let Some(estate) = RunbookEstate::start() else {
        return;
    };
    let mut dead = estate
        .std_cmd()
        .args([
            "run",
            "marker-roundtrip",
            "--env",
            "dev",
            "--cache",
            "orders",
        ])
        .args(["--yes", "--param", "pause=30s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("runner");
    let holder = estate.wait_for_record("lock taken", |r| {
        r["record"] == "lock" && r["taken"] == true
    });
    dead.kill().expect("SIGKILL");
    let _ = dead.wait();

    let out = estate.cmd().args(MARKER_RUN).output().expect("blocked");
    assert_eq!(out.status.code(), Some(4));
    let out = estate
        .cmd()
        .args(MARKER_RUN)
        .args(["--force-unlock", &holder])
        .output()
        .expect("force");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
}

#[test]
fn resuming_a_run_that_is_still_going_is_refused() {
    let Some(estate) = RunbookEstate::start() else {
        return;
    };
    let mut running = estate
        .std_cmd()
        .args([
            "run",
            "marker-roundtrip",
            "--env",
            "dev",
            "--cache",
            "orders",
        ])
        .args(["--yes", "--param", "pause=4s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("runner");
    let run_id = estate.wait_for_record("write done", |r| {
        r["record"] == "step-done" && r["step"] == "write"
    });
    let sets = estate.calls("set");
    let out = estate
        .cmd()
        .args(["runs", "resume", &run_id, "--yes"])
        .output()
        .expect("resume");
    assert_eq!(out.status.code(), Some(4), "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).contains("still running in another cachedeck process"),
        "{}",
        stderr(&out)
    );
    assert_eq!(running.wait().expect("runner ends").code(), Some(0));
    assert_eq!(estate.calls("set"), sets);
}
