//! Kill at every step, then resume: every mutating runbook of the catalog, on the sandbox,
//! stopped by SIGKILL, SIGTERM and SIGHUP once its journal holds k records (for every k
//! before the last) and once each of its hook's inside points holds, then `runs resume`d.
//! Each round is compared with an uninterrupted reference round: the same state (the
//! hook's), the same number of mutating calls, no lock left. SIGTERM and SIGHUP must stop
//! the run cleanly: exit 5 and a journal that ends `interrupted`.
//!
//! The journal is watched (polled every 2 ms), never slept on: a kill lands at or just
//! after its boundary, and the promises must hold wherever it lands.

use super::canary::Canary;
use super::hooks::{self, Baseline, Hook, Kind, Mutating, Reached};
use super::summary;
use crate::harness::sandbox::Sandbox;
use cachedeck::runbook::Runbook;
use nix::sys::signal::Signal;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// How long the sandbox keeps a group or user `modifying` after an auth change in these runs
/// (3 s by default): long enough for the inside points, short enough for the sweep.
const MODIFY_MS: (&str, &str) = ("CACHEDECK_SANDBOX_MODIFY_MS", "1000");

/// Every runbook of the catalog (built-ins and the user's, as `cachedeck` sees them).
pub fn catalog() -> Vec<Runbook> {
    let registry = cachedeck::runbook::actions::builtin();
    cachedeck::runbook::catalog::all(&registry)
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("the catalog holds an invalid runbook: {e}")))
        .collect()
}

/// The runbook as it runs with the hook's parameters (a `dangerous_unless` flag applied).
pub fn as_run(runbook: &Runbook, hook: &Hook, round: u32) -> Runbook {
    let params = (hook.params)(round);
    runbook.clone().for_params(|name| {
        params.iter().find_map(|p| {
            let (k, v) = p.split_once('=')?;
            (k == name).then(|| v.parse::<bool>().ok()).flatten()
        })
    })
}

/// The catalog's runbooks paired with their hooks; panics naming every runbook without one,
/// or whose hook says read-only when it mutates (or the other way round).
pub fn hooked() -> Vec<(Runbook, Hook)> {
    let mut missing = Vec::new();
    let mut wrong = Vec::new();
    let mut out = Vec::new();
    for rb in catalog() {
        let hooks = hooks::of(&rb.name);
        if hooks.is_empty() {
            missing.push(rb.name.clone());
        }
        for hook in hooks {
            let mutates = as_run(&rb, &hook, 0).mutates();
            if mutates != matches!(hook.state, Kind::Mutating(_)) {
                wrong.push(format!(
                    "{} on {} ({} with the hook's parameters)",
                    rb.name,
                    hook.cache,
                    if mutates { "mutates" } else { "read-only" }
                ));
            }
            out.push((rb.clone(), hook));
        }
    }
    assert!(
        missing.is_empty() && wrong.is_empty(),
        "the hardening suite needs a hook per runbook (tests/it/harden/hooks.rs): \
         without one: {missing:?}; declared wrongly: {wrong:?}"
    );
    out
}

/// Where a run is stopped.
#[derive(Clone)]
enum Point {
    /// Once the journal holds this many complete records.
    Records(usize, String),
    /// Once the hook's predicate holds.
    Inside(&'static str, Reached),
}

impl Point {
    fn label(&self) -> String {
        match self {
            Point::Records(n, what) => format!("after record {n} ({what})"),
            Point::Inside(what, _) => format!("inside: {what}"),
        }
    }
}

/// Runs the sweep: every point in soak mode, a slice around the first write-ahead `intent`
/// record otherwise.
pub fn sweep(full: bool) {
    let mut canary_scans = 0u64;
    let mut swept = 0u64;
    let mut kills = 0u64;
    let mut gaps = Vec::new();
    let mut ctx = Ctx {
        sandbox: None,
        rounds_left: 0,
        round: 0,
    };
    for (rb, hook) in hooked() {
        let Kind::Mutating(m) = &hook.state else {
            continue;
        };
        let name = format!("{} on {}", rb.name, hook.cache);
        // CACHEDECK_SWEEP=runbook@cache,… sweeps only those (a soak of one runbook).
        if let Ok(only) = std::env::var("CACHEDECK_SWEEP")
            && !only
                .split(',')
                .any(|o| o.trim() == format!("{}@{}", rb.name, hook.cache))
        {
            continue;
        }
        let hook_started = Instant::now();
        swept += 1;
        gaps.extend(m.gaps.iter().map(|(at, why)| format!("{name} {at}: {why}")));
        // The reference: one uninterrupted round.
        let round = ctx.next_round();
        let sb = ctx.sandbox_for(m);
        let base = (m.prepare)(sb, round);
        let before = journals(sb);
        let mut canary = Canary::of(sb);
        let (child, out) = spawn(sb, &run_args(&hook, round));
        let status = watch(sb, child, &mut canary, &before, &base, None);
        let path = new_journal(sb, &before).expect("the reference run wrote a journal");
        let reference = read_records(&path);
        assert_eq!(
            status.code(),
            Some(0),
            "{}: the uninterrupted run failed: {}",
            name,
            std::fs::read_to_string(out.with_extension("err")).unwrap_or_default()
        );
        let run_id = run_id(&reference);
        let want_state = (m.state)(sb, &base, &run_id);
        let want_mutations = (m.mutations)(sb, &base);
        assert!(
            want_mutations > 0,
            "{}: the uninterrupted round issued no mutating call; the hook counts the wrong thing",
            name
        );
        assert_no_lock(sb, &name);
        canary.scan_run(sb, &out);
        canary_scans += canary.finish(&format!("{name} uninterrupted"));

        for (point, signal) in points(&reference, m, full) {
            kills += 1;
            let what = format!("{name}: {} by {signal:?}", point.label());
            let round = ctx.next_round();
            let sb = ctx.sandbox_for(m);
            let mut canary = Canary::of(sb);
            let base = (m.prepare)(sb, round);
            let run_id = kill_and_resume(
                sb,
                &hook,
                m,
                round,
                &base,
                &point,
                signal,
                &mut canary,
                &what,
            );
            let state = (m.state)(sb, &base, &run_id);
            assert_eq!(
                state, want_state,
                "{what}: the final state differs from an uninterrupted run's"
            );
            let mutations = (m.mutations)(sb, &base);
            assert_eq!(
                mutations, want_mutations,
                "{what}: {mutations} mutating calls where an uninterrupted run makes {want_mutations}"
            );
            assert_no_lock(sb, &what);
            canary_scans += canary.finish(&what);
        }
        summary::add(
            &format!("kill.ms.{}@{}", rb.name, hook.cache),
            hook_started.elapsed().as_millis() as u64,
        );
    }
    summary::add("kill.runbooks_swept", swept);
    summary::add("kill.kill_points", kills);
    summary::add("canary.outputs_scanned", canary_scans);
    summary::add("canary.hits", 0);
    summary::add("kill.known_gaps", gaps.len() as u64);
    for g in gaps {
        eprintln!("kill sweep: not run: {g}");
    }
}

/// The sandbox rounds run on, replaced when a hook's rounds are used up.
struct Ctx {
    sandbox: Option<Sandbox>,
    rounds_left: u32,
    round: u32,
}

impl Ctx {
    fn sandbox_for(&mut self, m: &Mutating) -> &Sandbox {
        let fresh = self.rounds_left == 0 || self.sandbox.is_none();
        if fresh {
            // Down first: one sandbox at a time.
            self.sandbox = None;
            self.sandbox = Some(Sandbox::up(200));
            self.rounds_left = m.rounds_per_sandbox;
        } else if self.rounds_left > m.rounds_per_sandbox {
            self.rounds_left = m.rounds_per_sandbox;
        }
        self.rounds_left -= 1;
        self.sandbox.as_ref().expect("sandbox")
    }

    fn next_round(&mut self) -> u32 {
        self.round += 1;
        self.round
    }
}

/// `cachedeck run` of one round, JSON out.
fn run_args(hook: &Hook, round: u32) -> Vec<String> {
    let mut args: Vec<String> = [
        "run",
        hook.runbook,
        "--env",
        hook.env,
        "--cache",
        hook.cache,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(["--yes".into(), "--output".into(), "json".into()]);
    for p in (hook.params)(round) {
        args.extend(["--param".into(), p]);
    }
    args
}

/// The stop points of a runbook: after each record but the last (the run is over then), and
/// the hook's inside points; each with SIGKILL, SIGTERM and SIGHUP. The slice: around the
/// first `intent` record (the write-ahead boundary of a mutation), one signal each, and the
/// inside points with SIGKILL.
fn points(reference: &[Value], m: &Mutating, full: bool) -> Vec<(Point, Signal)> {
    let signals = [Signal::SIGKILL, Signal::SIGTERM, Signal::SIGHUP];
    let boundaries: Vec<Point> = (1..reference.len())
        .map(|k| {
            let r = &reference[k - 1];
            Point::Records(
                k,
                format!(
                    "{} {}",
                    r["record"].as_str().unwrap_or("?"),
                    r["step"].as_str().unwrap_or("")
                )
                .trim()
                .to_string(),
            )
        })
        .collect();
    let inside: Vec<Point> = m
        .inside
        .iter()
        .map(|(what, pred)| Point::Inside(what, *pred))
        .collect();
    if full {
        return boundaries
            .into_iter()
            .chain(inside)
            .flat_map(|p| signals.map(|s| (p.clone(), s)))
            .collect();
    }
    let intent = reference
        .iter()
        .position(|r| r["record"] == "intent")
        .map_or(1, |i| i + 1);
    let at = |k: usize| boundaries[k.clamp(1, boundaries.len()) - 1].clone();
    let mut slice = vec![
        (at(intent), Signal::SIGKILL),
        (at(intent - 1), Signal::SIGTERM),
        (at(intent + 1), Signal::SIGHUP),
    ];
    slice.extend(inside.into_iter().map(|p| (p, Signal::SIGKILL)));
    slice
}

/// One round: run, stop at `point` with `signal`, check the stop, resume; returns the run id.
#[allow(clippy::too_many_arguments)]
fn kill_and_resume(
    sb: &Sandbox,
    hook: &Hook,
    m: &Mutating,
    round: u32,
    base: &Baseline,
    point: &Point,
    signal: Signal,
    canary: &mut Canary,
    what: &str,
) -> String {
    let before = journals(sb);
    let (child, out) = spawn(sb, &run_args(hook, round));
    let status = watch(
        sb,
        child,
        canary,
        &before,
        base,
        Some((point, signal, what)),
    );
    let path =
        new_journal(sb, &before).unwrap_or_else(|| panic!("{what}: the run wrote no journal"));
    canary.scan_run(sb, &out);
    let records = read_records(&path);
    let run_id = run_id(&records);
    let last = records.last().cloned().unwrap_or(Value::Null);
    let finished = last["record"] == "run-finished";
    if signal != Signal::SIGKILL && !(finished && last["state"] == "succeeded") {
        let err = std::fs::read_to_string(out.with_extension("err")).unwrap_or_default();
        assert_eq!(
            status.code(),
            Some(5),
            "{what}: a clean stop exits 5 ({status}); stderr: {err}"
        );
        assert!(
            finished && last["state"] == "interrupted",
            "{what}: the journal must end `interrupted`, it ends {last}"
        );
    }
    if finished && last["state"] == "succeeded" {
        return run_id;
    }
    let out = sb
        .cachedeck()
        .env("CACHEDECK_LOG", "trace")
        .env(MODIFY_MS.0, MODIFY_MS.1)
        .args(["runs", "resume", &run_id, "--yes", "--output", "json"])
        .timeout(Duration::from_secs(300))
        .output()
        .expect("runs resume");
    canary.scan_bytes(&format!("{what}: resume stdout"), &out.stdout);
    canary.scan_bytes(&format!("{what}: resume stderr"), &out.stderr);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: resume printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let error = report["error"].as_str().unwrap_or_default();
    let allowed =
        out.status.code() == Some(1) && m.resume_may_fail_with.iter().any(|t| error.contains(t));
    assert!(
        out.status.code() == Some(0) || allowed,
        "{what}: resume exited {:?}: {report}",
        out.status.code()
    );
    let records = read_records(&path);
    assert_eq!(
        records.last().map(|r| r["record"].clone()),
        Some(Value::from("run-finished")),
        "{what}: the resumed journal is closed"
    );
    run_id
}

/// The runner as a std process with trace logging; stdout to `<n>.out`, stderr to `<n>.err`.
fn spawn(sb: &Sandbox, args: &[String]) -> (Child, PathBuf) {
    let home = sb.home();
    let dir = home.join("outputs");
    std::fs::create_dir_all(&dir).expect("outputs dir");
    let out = dir.join(format!("{}.out", rand::random::<u32>()));
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("cachedeck"))
        .env("CACHEDECK_SANDBOX_DIR", home.join("sandbox"))
        .env("CACHEDECK_STATE_DIR", home.join("state"))
        .env("CACHEDECK_CONFIG_DIR", home.join("config"))
        .env("AWS_CONFIG_FILE", home.join("aws-config"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("CACHEDECK_LOG", "trace")
        .env(MODIFY_MS.0, MODIFY_MS.1)
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(out.with_extension("err")).expect("stderr file"))
        .spawn()
        .expect("start cachedeck run");
    (child, out)
}

/// Follows a run: argv of it and its children goes to the canary; with a stop point, the
/// signal is sent once the point is reached. Returns how the process ended.
fn watch(
    sb: &Sandbox,
    mut child: Child,
    canary: &mut Canary,
    before: &[PathBuf],
    base: &Baseline,
    stop: Option<(&Point, Signal, &str)>,
) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(300);
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let mut sent = false;
    loop {
        canary.scan_proc(child.id());
        if let Some(status) = child.try_wait().expect("wait") {
            if let Some((point, _, what)) = stop
                && !sent
            {
                let reached = match point {
                    Point::Records(k, _) => {
                        new_journal(sb, before).is_some_and(|p| read_records(&p).len() >= *k)
                    }
                    Point::Inside(..) => false,
                };
                assert!(
                    reached,
                    "{what}: the run ended before reaching its stop point"
                );
            }
            return status;
        }
        if let Some((point, signal, _)) = stop
            && !sent
        {
            let reached = match point {
                Point::Records(k, _) => {
                    new_journal(sb, before).is_some_and(|p| read_records(&p).len() >= *k)
                }
                Point::Inside(_, pred) => pred(sb, base),
            };
            if reached {
                // ESRCH: it ended just now; `try_wait` sees it next.
                let _ = nix::sys::signal::kill(pid, signal);
                sent = true;
            }
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("a run did not end within 300 s");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Journal files of the sandbox home.
fn journals(sb: &Sandbox) -> Vec<PathBuf> {
    std::fs::read_dir(sb.home().join("state").join("runs"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// The journal that appeared since `before`.
fn new_journal(sb: &Sandbox, before: &[PathBuf]) -> Option<PathBuf> {
    journals(sb).into_iter().find(|p| !before.contains(p))
}

/// The complete records of a journal (a line still being written is not one).
fn read_records(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |i| &text[..i]);
    complete
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("journal line {l}: {e}")))
        .collect()
}

fn run_id(records: &[Value]) -> String {
    records
        .first()
        .and_then(|r| r["run_id"].as_str())
        .expect("a run id in the journal")
        .to_string()
}

/// No run lock is left in the sandbox's parameter store.
fn assert_no_lock(sb: &Sandbox, what: &str) {
    let locks = sb.params().by_path("/cachedeck/locks").expect("read locks");
    let names: Vec<&str> = locks.iter().map(|p| p.name.as_str()).collect();
    assert!(names.is_empty(), "{what}: locks left behind: {names:?}");
}

#[test]
fn every_runbook_in_the_catalog_declares_what_its_state_means() {
    let hooked = hooked();
    // Every runbook of the catalog has at least one hook (one per cache it is swept on).
    let mut swept: Vec<String> = hooked.iter().map(|(rb, _)| rb.name.clone()).collect();
    swept.dedup();
    assert_eq!(
        swept,
        catalog().into_iter().map(|r| r.name).collect::<Vec<_>>()
    );
    // Hooks of runbooks that left the catalog are dead weight: say so.
    let names: Vec<String> = catalog().into_iter().map(|r| r.name).collect();
    for h in hooks::all() {
        assert!(
            names.iter().any(|n| n == h.runbook),
            "hook for `{}`, which is not in the catalog",
            h.runbook
        );
    }
}

#[test]
fn every_mutating_runbook_survives_being_stopped_at_its_boundaries() {
    sweep(super::soak());
}
