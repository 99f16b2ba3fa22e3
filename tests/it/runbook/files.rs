//! Runbook files: every shipped runbook validates (and is compiled in), and each kind of
//! mistake is rejected at file:line:col with a fix, exit 2, before anything executes.

use super::estate::{MARKER_RUN, RunbookEstate, stderr};
use assert_cmd::Command;
use cachedeck::runbook::{actions, catalog};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/runbooks")
        .join(name)
}

#[test]
fn every_shipped_runbook_is_valid_and_compiled_in() {
    let registry = actions::builtin();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("runbooks");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .expect("runbooks/")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    on_disk.sort();
    let mut built_in: Vec<String> = catalog::BUILTIN
        .iter()
        .map(|(f, _)| f.to_string())
        .collect();
    built_in.sort();
    assert_eq!(
        on_disk, built_in,
        "every file in runbooks/ is listed in catalog::BUILTIN"
    );
    for (file, text) in catalog::BUILTIN {
        let rb = cachedeck::runbook::validate::parse(file, text, &registry)
            .unwrap_or_else(|e| panic!("shipped runbook {file} is invalid:\n{e}"));
        assert_eq!(
            format!("{}.toml", rb.name),
            *file,
            "file name matches runbook name"
        );
        let out = Command::cargo_bin("cachedeck")
            .expect("binary")
            .args(["runbooks", "validate"])
            .arg(dir.join(file))
            .output()
            .expect("validate");
        assert_eq!(out.status.code(), Some(0), "{file}: {}", stderr(&out));
    }
}

/// (fixture, line:col, a fragment of the message, a fragment of the fix)
const BAD: &[(&str, &str, &str, &str)] = &[
    (
        "wrong-type.toml",
        "8:11",
        "invalid type: string \"three\", expected u32",
        "give the value the type",
    ),
    (
        "unknown-field.toml",
        "8:1",
        "unknown field `timout`",
        "remove the field or correct its spelling",
    ),
    (
        "duplicate-step.toml",
        "11:6",
        "duplicate step id `write`",
        "its own id",
    ),
    (
        "bad-duration.toml",
        "9:11",
        "`ten minutes` is not a duration",
        "\"30s\"",
    ),
    (
        "unknown-action.toml",
        "7:10",
        "unknown action `flushall`",
        ", check, connectivity-check,",
    ),
    (
        "forward-reference.toml",
        "8:19",
        "not an earlier step",
        "steps above this one",
    ),
    (
        "unknown-output.toml",
        "13:19",
        "output `name` that step `write` does not produce",
        "its outputs are: key, value",
    ),
    (
        "undeclared-dangerous.toml",
        "7:10",
        "mutates, but the step does not say so",
        "dangerous = true",
    ),
    (
        "dangerous-unless-not-bool.toml",
        "13:20",
        "`dangerous_unless` names `dry_run`, which is not a bool parameter",
        "type = \"bool\"",
    ),
    (
        "secure-from-param.toml",
        "12:41",
        "takes its value only from a secret source",
        "steps.<id>.outputs.<secret output>",
    ),
    (
        "bad-param-default.toml",
        "7:11",
        "default of parameter `count` (int)",
        "give a value of type int",
    ),
];

#[test]
fn invalid_runbooks_are_rejected_at_file_line_col_with_exit_2() {
    for (file, at, message, fix) in BAD {
        let path = fixture(file);
        let out = Command::cargo_bin("cachedeck")
            .expect("binary")
            .args(["runbooks", "validate"])
            .arg(&path)
            .output()
            .expect("validate");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{file}: {err}");
        let want = format!("{}:{at}: ", path.display());
        assert!(err.contains(&want), "{file}: expected `{want}` in:\n{err}");
        assert!(
            err.contains(message),
            "{file}: expected `{message}` in:\n{err}"
        );
        assert!(
            err.contains("fix: ") && err.contains(fix),
            "{file}: expected fix `{fix}` in:\n{err}"
        );
    }
}

#[test]
fn running_an_invalid_runbook_executes_nothing() {
    let Some(estate) = RunbookEstate::start() else {
        return;
    };
    let sets = estate.calls("set");
    for file in [
        "duplicate-step.toml",
        "bad-duration.toml",
        "wrong-type.toml",
        "unknown-field.toml",
    ] {
        let out = estate
            .cmd()
            .arg("run")
            .arg(fixture(file))
            .args(["--env", "dev", "--cache", "orders", "--yes"])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{file}: {}", stderr(&out));
        assert!(stderr(&out).contains(file));
    }
    assert_eq!(estate.calls("set"), sets);
    assert!(estate.journals().is_empty());

    let out = estate
        .cmd()
        .args(MARKER_RUN)
        .args(["--param", "ttl=soon"])
        .output()
        .expect("bad param");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--param ttl: `soon` is not a duration"),
        "{}",
        stderr(&out)
    );
    let out = estate
        .cmd()
        .args([
            "run",
            "marker-roundtrip",
            "--env",
            "nope",
            "--cache",
            "orders",
            "--yes",
        ])
        .output()
        .expect("bad env");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("known: dev, prod, ro"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn shipped_json_schema_matches_the_file_format() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/runbook.schema.json");
    let want = cachedeck::runbook::file::json_schema();
    if std::env::var_os("CACHEDECK_BLESS").is_some() {
        std::fs::write(&path, &want).expect("write schema");
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "assets/runbook.schema.json is stale; regenerate with CACHEDECK_BLESS=1 cargo test --test it runbook::files"
    );
    let schema: serde_json::Value = serde_json::from_str(&have).expect("schema is JSON");
    let steps = &schema["$defs"]["StepDef"]["properties"];
    for field in [
        "id",
        "action",
        "inputs",
        "dangerous",
        "confirm",
        "timeout",
        "retries",
        "backoff",
        "on_failure",
        "rollback",
    ] {
        assert!(
            steps.get(field).is_some(),
            "schema documents step field `{field}`"
        );
    }
}

#[test]
fn every_action_is_documented() {
    let doc =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/runbooks.md"))
            .expect("docs/runbooks.md");
    for name in actions::builtin().names() {
        assert!(
            doc.contains(&format!("| `{name}` |")),
            "docs/runbooks.md documents action `{name}`"
        );
    }
    for code in ["| 0 |", "| 1 |", "| 2 |", "| 3 |", "| 4 |", "| 5 |"] {
        assert!(doc.contains(code), "exit code row {code}");
    }
}

#[test]
fn user_runbooks_join_the_list_and_broken_ones_are_reported() {
    let home = tempfile::tempdir().expect("tempdir");
    let dir = home.path().join("runbooks");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("my-ping.toml"),
        "name = \"my-ping\"\ntitle = \"Ping\"\napplies_to = [\"endpoint\"]\n\n[[steps]]\nid = \"p\"\naction = \"ping\"\n",
    )
    .expect("write");
    std::fs::write(dir.join("broken.toml"), "name = \"broken\"\ntitle = 3\n").expect("write");
    let out = Command::cargo_bin("cachedeck")
        .expect("binary")
        .env("CACHEDECK_CONFIG_DIR", home.path())
        .args(["runbooks", "list", "--output", "json"])
        .output()
        .expect("list");
    assert_eq!(
        out.status.code(),
        Some(1),
        "a broken user runbook makes the list exit 1"
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let names: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["name"].as_str().expect("name"))
        .collect();
    for want in ["health-check", "marker-roundtrip", "my-ping"] {
        assert!(names.contains(&want), "{want} in {names:?}");
    }
    let mine = list
        .as_array()
        .expect("array")
        .iter()
        .find(|r| r["name"] == "my-ping")
        .expect("mine");
    assert!(
        mine["source"]
            .as_str()
            .expect("source")
            .ends_with("runbooks/my-ping.toml")
    );
    assert_eq!(mine["mutates"], false);
    assert!(
        stderr(&out).contains("broken.toml:2:9: invalid type"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn run_help_documents_the_exit_codes() {
    let out = Command::cargo_bin("cachedeck")
        .expect("binary")
        .args(["run", "--help"])
        .output()
        .expect("help");
    let help = String::from_utf8_lossy(&out.stdout);
    for line in [
        "0  the runbook succeeded",
        "3  refused by protection",
        "4  the cache's lock is held",
        "5  interrupted",
    ] {
        assert!(help.contains(line), "`{line}` in:\n{help}");
    }
    assert!(
        help.contains("--confirm-cache")
            && help.contains("--dry-run")
            && help.contains("--force-unlock")
    );
}
