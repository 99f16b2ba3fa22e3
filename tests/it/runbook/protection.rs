//! Protection levels headless: read-only refuses dangerous runbooks before anything runs
//! (exit 3), confirm needs --yes and the exact cache name, open needs --yes.

use super::estate::{RunbookEstate, stderr};

fn run(estate: &RunbookEstate, env: &str, extra: &[&str]) -> std::process::Output {
    estate
        .cmd()
        .args(["run", "marker-roundtrip", "--env", env, "--cache", "orders"])
        .args(extra)
        .output()
        .expect("run")
}

#[test]
fn protection_levels_gate_dangerous_runbooks() {
    let Some(estate) = RunbookEstate::start() else {
        return;
    };
    let sets = estate.calls("set");

    let out = run(&estate, "ro", &["--yes"]);
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).contains("environment `ro` is read-only"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("`write`"));

    let out = run(&estate, "prod", &["--yes"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("--confirm-cache orders"),
        "{}",
        stderr(&out)
    );

    let out = run(&estate, "prod", &["--yes", "--confirm-cache", "ordres"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("not the target cache `orders`"),
        "{}",
        stderr(&out)
    );

    let out = run(&estate, "dev", &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("add --yes"), "{}", stderr(&out));

    // Nothing ran in any refused case: no write reached the server, no journal exists.
    assert_eq!(estate.calls("set"), sets);
    assert!(estate.journals().is_empty());

    let out = run(&estate, "prod", &["--yes", "--confirm-cache", "orders"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(estate.calls("set"), sets + 1);

    // A read-only runbook is fine in a read-only environment.
    let out = estate
        .cmd()
        .args([
            "run",
            "health-check",
            "--env",
            "ro",
            "--cache",
            "orders",
            "--output",
            "json",
        ])
        .output()
        .expect("health-check");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
}
