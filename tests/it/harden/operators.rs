//! Two operators: two processes start the same mutating runbook on one cache at once;
//! exactly one proceeds, the other exits 4 naming the holder (user, host, run id, since). A
//! holder killed with SIGKILL leaves its lock in place: the next run is refused with the dead
//! run's id (never silently stolen), and the killed run itself resumes.

use super::summary;
use crate::harness::sandbox::Sandbox;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn runner(sb: &Sandbox, pause: &str) -> Command {
    let home = sb.home();
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("cachedeck"));
    cmd.env("CACHEDECK_SANDBOX_DIR", home.join("sandbox"))
        .env("CACHEDECK_STATE_DIR", home.join("state"))
        .env("CACHEDECK_CONFIG_DIR", home.join("config"))
        .env("AWS_CONFIG_FILE", home.join("aws-config"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .args([
            "run",
            "marker-roundtrip",
            "--env",
            "sandbox-dev",
            "--cache",
            "valkey-ecs",
        ])
        .args(["--yes", "--param", &format!("pause={pause}")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

#[test]
fn one_operator_at_a_time_and_a_dead_holder_is_not_robbed() {
    let sb = Sandbox::up(100);
    let lock_params = || sb.params().by_path("/cachedeck/locks").expect("locks");

    // Both at once.
    let a = runner(&sb, "2s").spawn().expect("first");
    let b = runner(&sb, "2s").spawn().expect("second");
    let (a, b) = (
        a.wait_with_output().expect("first ends"),
        b.wait_with_output().expect("second ends"),
    );
    let mut codes = [a.status.code(), b.status.code()];
    codes.sort();
    assert_eq!(
        codes,
        [Some(0), Some(4)],
        "exactly one proceeds: {}\n{}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    let (won, lost) = if a.status.code() == Some(0) {
        (&a, &b)
    } else {
        (&b, &a)
    };
    let refused = String::from_utf8_lossy(&lost.stderr);
    let won_out = String::from_utf8_lossy(&won.stdout);
    let holder_run = won_out
        .split_whitespace()
        .find(|w| w.len() > 20 && w.contains('T') && w.contains('Z') && w.contains('-'))
        .unwrap_or_default()
        .to_string();
    assert!(
        !holder_run.is_empty() && refused.contains(&holder_run),
        "the refusal names the holder's run {holder_run:?}: {refused}"
    );
    let user = cachedeck::runbook::lock::current_user();
    let host = cachedeck::runbook::lock::current_host();
    assert!(
        refused.contains(&user) && refused.contains(&host),
        "the refusal names user {user} and host {host}: {refused}"
    );
    assert!(lock_params().is_empty(), "released at the end");

    // A holder killed with SIGKILL keeps its lock; the next operator is told who holds it.
    let mut dead = runner(&sb, "6s").spawn().expect("holder");
    let deadline = Instant::now() + Duration::from_secs(30);
    while lock_params().is_empty() {
        assert!(Instant::now() < deadline, "the lock was never taken");
        std::thread::sleep(Duration::from_millis(10));
    }
    let held: serde_json::Value =
        serde_json::from_str(lock_params()[0].value.expose()).expect("lock JSON");
    let dead_run = held["run_id"].as_str().expect("run id").to_string();
    dead.kill().expect("SIGKILL");
    let _ = dead.wait();
    let next = runner(&sb, "0s").output().expect("next operator");
    let said = String::from_utf8_lossy(&next.stderr);
    assert_eq!(next.status.code(), Some(4), "{said}");
    assert!(
        said.contains(&dead_run),
        "names the dead holder {dead_run}: {said}"
    );
    assert_eq!(lock_params().len(), 1, "not stolen");
    // The killed run resumes under its own lock, and then the lock is gone.
    let out = sb
        .cachedeck()
        .args(["runs", "resume", &dead_run, "--yes"])
        .output()
        .expect("resume");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(lock_params().is_empty(), "released after the resume");
    summary::add("operators.cases", 3);
}
