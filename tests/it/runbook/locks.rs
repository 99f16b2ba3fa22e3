//! Two runners on one cache: exactly one proceeds, the other exits 4 naming the holder —
//! also when they call the account by different environment names; a dead run's lock is
//! broken by `runs unlock` (holder shown, asked, `--yes`) or `--force-unlock` (exact id).

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
    assert!(err.contains("cachedeck runs unlock"), "{err}");
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

/// `dev` and `prod` are two names for one account and region (the same moto): a run in
/// one locks the cache for the other.
#[test]
fn two_environment_names_for_one_account_share_the_lock() {
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
        .stderr(Stdio::null())
        .spawn()
        .expect("first runner");
    let holder = estate.wait_for_record("lock taken", |r| {
        r["record"] == "lock" && r["taken"] == true
    });
    let record = estate.records(&holder);
    let lock = record
        .iter()
        .find(|r| r["record"] == "lock")
        .and_then(|r| r["name"].as_str())
        .unwrap_or_default()
        .to_string();
    assert_eq!(lock, "/cachedeck/locks/123456789012/eu-west-1/orders");
    let out = estate
        .cmd()
        .args([
            "run",
            "marker-roundtrip",
            "--env",
            "prod",
            "--cache",
            "orders",
        ])
        .args(["--yes", "--confirm-cache", "orders"])
        .output()
        .expect("second runner");
    assert_eq!(out.status.code(), Some(4), "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("run {holder}")),
        "{}",
        stderr(&out)
    );
    // The holder record says who, where and that it is alive.
    let value = super::estate::ssm(
        &estate.moto,
        &format!("get_parameter(Name='{lock}')['Parameter']['Value']"),
    );
    let value: serde_json::Value = serde_json::from_str(value.trim())
        .and_then(|v: serde_json::Value| serde_json::from_str(v.as_str().unwrap_or_default()))
        .expect("holder JSON");
    for field in ["holder", "host", "pid", "run_id", "since", "heartbeat"] {
        assert!(value.get(field).is_some(), "{field} in {value}");
    }
    assert_eq!(first.wait().expect("first ends").code(), Some(0));
}

/// A dead run's lock: `runs unlock` shows the holder, refuses without a terminal or
/// `--yes`, breaks it with `--yes`; the next run goes ahead.
#[test]
fn runs_unlock_shows_the_holder_and_breaks_a_dead_runs_lock() {
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

    let asked = estate
        .cmd()
        .args(["runs", "unlock", "dev", "orders"])
        .output()
        .expect("unlock without --yes");
    assert_eq!(asked.status.code(), Some(3), "stderr: {}", stderr(&asked));
    let shown = String::from_utf8_lossy(&asked.stdout).to_string();
    assert!(shown.contains(&format!("run {holder}")), "{shown}");
    assert!(shown.contains("oncall-tester@"), "{shown}");
    assert!(shown.contains(" pid "), "{shown}");
    assert!(stderr(&asked).contains("pass --yes"), "{}", stderr(&asked));
    let blocked = estate.cmd().args(MARKER_RUN).output().expect("blocked");
    assert_eq!(blocked.status.code(), Some(4));

    let broken = estate
        .cmd()
        .args(["runs", "unlock", "dev", "orders", "--yes"])
        .output()
        .expect("unlock --yes");
    assert_eq!(broken.status.code(), Some(0), "stderr: {}", stderr(&broken));
    let out = estate.cmd().args(MARKER_RUN).output().expect("runs now");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let again = estate
        .cmd()
        .args(["runs", "unlock", "dev", "orders"])
        .output()
        .expect("nothing to unlock");
    assert_eq!(again.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&again.stdout).contains("is not locked"));
}
