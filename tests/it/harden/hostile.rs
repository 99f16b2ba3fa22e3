//! Hostile bytes everywhere text is printed, and parsers that never panic. Property tests
//! (proptest) feed ESC, CSI, OSC 52, BEL, CR, C1, bidi overrides, zero-width characters,
//! invalid UTF-8 and 64 KB strings:
//!
//! - through `escape` (the one function every output path uses for untrusted text);
//! - as key names in a real valkey-server, through `ttl-audit`'s text, JSON, CSV and
//!   Markdown outputs and its progress lines: nothing a terminal acts on comes out, the
//!   JSON stays valid;
//! - into the parsers of INFO replies, config files and runbook files: an error with a
//!   location, never a panic.

use super::summary;
use crate::harness::valkey::server;
use cachedeck::escape::{escape, escape_capped, is_unsafe};
use proptest::prelude::*;
use std::path::Path;

/// Fragments that do something to a terminal, or hide, or reorder.
pub const NASTY: &[&[u8]] = &[
    b"\x1b[2J",
    b"\x1b[31m",
    b"\x1b]52;c;Y2FjaGVkZWNr\x07",
    b"\x1b]0;title\x1b\\",
    b"\x07",
    b"\r",
    b"\x08",
    b"\x00",
    b"\x7f",
    "\u{9b}31m".as_bytes(),
    "\u{85}".as_bytes(),
    "\u{202e}".as_bytes(),
    "\u{2066}".as_bytes(),
    "\u{200b}".as_bytes(),
    "\u{feff}".as_bytes(),
    b"\xff\xfe",
    b"\xc3",
    b"\xed\xa0\x80",
    "\u{1F600}".as_bytes(),
    b"\\x1b",
    b"plain",
];

/// Bytes made of hostile fragments and arbitrary bytes.
pub fn hostile_bytes(max_parts: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            prop::sample::select(NASTY).prop_map(|b| b.to_vec()),
            prop::collection::vec(any::<u8>(), 0..8),
        ],
        1..max_parts,
    )
    .prop_map(|parts| parts.concat())
}

/// Whether `text` may go to a terminal: valid UTF-8 with no character a terminal acts on
/// or that hides or reorders text, apart from newline and tab.
pub fn terminal_safe(what: &str, bytes: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("{what}: not UTF-8: {e}"))?;
    if let Some(c) = text
        .chars()
        .find(|c| *c != '\n' && *c != '\t' && is_unsafe(*c))
    {
        let at = text.find(c).unwrap_or(0);
        let from = text.floor_char_boundary(at.saturating_sub(40));
        return Err(format!(
            "{what}: raw {:?} reaches the terminal near: {:?}",
            c,
            &text[from..at]
        ));
    }
    Ok(())
}

/// The inverse of `escape` for uncapped text: what the escaped form stood for, byte for byte.
pub fn unescape(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next()? {
            '\\' => out.push(b'\\'),
            'n' => out.push(b'\n'),
            'r' => out.push(b'\r'),
            't' => out.push(b'\t'),
            'x' => {
                let hex: String = [chars.next()?, chars.next()?].iter().collect();
                out.push(u8::from_str_radix(&hex, 16).ok()?);
            }
            'u' => {
                if chars.next()? != '{' {
                    return None;
                }
                let hex: String = chars.by_ref().take_while(|c| *c != '}').collect();
                let c = char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Counts property cases for the summary, 500 at a time (case counts are multiples of 500).
fn tally() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static CASES: AtomicU64 = AtomicU64::new(0);
    if CASES.fetch_add(1, Ordering::Relaxed) % 500 == 499 {
        summary::add("hostile.inputs", 500);
    }
}

proptest! {
    // Failures are kept as plain regression tests below, not as files in the tree.
    #![proptest_config(ProptestConfig {
        cases: if super::soak() { 20_000 } else { 1_000 },
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn escape_lets_nothing_through_a_terminal_acts_on(input in hostile_bytes(24)) {
        tally();
        let out = escape(&input);
        prop_assert!(terminal_safe("escape", out.as_bytes()).is_ok(), "{out:?}");
        prop_assert!(!out.contains('\n') && !out.contains('\t'));
        let capped = escape_capped(&input, 40);
        prop_assert!(capped.chars().count() <= 40 + 24, "{capped:?}");
        prop_assert!(terminal_safe("escape_capped", capped.as_bytes()).is_ok());
        // Nothing is lost: the escaped text stands for exactly the original bytes.
        prop_assert_eq!(unescape(&out), Some(input));
    }

    #[test]
    fn info_replies_never_panic(text in ".{0,400}", lines in prop::collection::vec("[a-z_#]{0,12}:?[ -~]{0,30}", 0..40)) {
        tally();
        let _ = cachedeck::valkey::info::Info::parse(&text);
        let info = cachedeck::valkey::info::Info::parse(&lines.join("\r\n"));
        let _ = (info.total_keys(), info.total_expires());
    }

    #[test]
    fn config_files_fail_with_a_location(text in config_text()) {
        tally();
        let path = Path::new("/etc/cachedeck/config.toml");
        if let Err(e) = cachedeck::config::Config::parse(path, &text) {
            let shown = e.to_string();
            prop_assert!(shown.starts_with("/etc/cachedeck/config.toml:"), "{shown}");
            prop_assert!(terminal_safe("config error", shown.as_bytes()).is_ok(), "{shown:?}");
        }
    }

    #[test]
    fn runbook_files_fail_with_a_location(text in runbook_text()) {
        tally();
        let registry = cachedeck::runbook::actions::builtin();
        if let Err(e) = cachedeck::runbook::validate::parse("mine.toml", &text, &registry) {
            prop_assert!(e.line >= 1 && e.column >= 1, "{e}");
            prop_assert!(e.to_string().starts_with("mine.toml:"), "{e}");
            prop_assert!(terminal_safe("runbook error", e.to_string().as_bytes()).is_ok(), "{e}");
        }
    }
}

/// Found by `runbook_files_fail_with_a_location`: the error quoted the file's zero-width
/// space raw.
#[test]
fn a_parse_error_quoting_hostile_text_escapes_it() {
    let registry = cachedeck::runbook::actions::builtin();
    let text = cachedeck::runbook::catalog::BUILTIN[0].1.replacen(
        "\"replication-group\"",
        "\"\u{200b}\u{202e}replication-group\"",
        1,
    );
    let e = cachedeck::runbook::validate::parse("mine.toml", &text, &registry)
        .expect_err("an unknown kind");
    let shown = e.to_string();
    assert!(
        shown.contains("\\u{200b}\\u{202e}replication-group"),
        "{shown}"
    );
    terminal_safe("runbook error", shown.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let config = "[environments.x]\nprovider = \"\u{202e}aws\"\n";
    let e =
        cachedeck::config::Config::parse(Path::new("c.toml"), config).expect_err("bad provider");
    terminal_safe("config error", e.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}"));
}

/// A real config file with a splice of arbitrary text at an arbitrary place.
fn config_text() -> impl Strategy<Value = String> {
    let base = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/config.example.toml"
    ))
    .unwrap_or_default();
    splice(base)
}

/// A built-in runbook with a splice of arbitrary text at an arbitrary place.
fn runbook_text() -> impl Strategy<Value = String> {
    prop::sample::select(cachedeck::runbook::catalog::BUILTIN.to_vec())
        .prop_flat_map(|(_, text)| splice(text.to_string()))
}

fn splice(base: String) -> impl Strategy<Value = String> {
    let len = base.len().max(1);
    (0..len, 0..64usize, ".{0,40}|[\\[\\]{}=\"'\\n#.,]{0,12}").prop_map(move |(at, cut, insert)| {
        let at = base.floor_char_boundary(at);
        let end = base.floor_char_boundary((at + cut).min(base.len()));
        format!("{}{}{}", &base[..at], insert, &base[end..])
    })
}

/// Hostile key names in a real server, through every output of `ttl-audit` (the runner's
/// text, JSON, CSV, Markdown and the progress lines on stderr).
#[test]
fn hostile_key_names_never_reach_the_terminal_raw() {
    let srv = server();
    let home = tempfile::tempdir().expect("tempdir");
    let config = home.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[environments.lab]\nprovider = \"aws\"\nregion = \"eu-west-1\"\n\
             endpoint_url = \"http://127.0.0.1:9\"\nprotection = \"open\"\n\n\
             [environments.lab.discovery]\nkinds = [\"endpoint\"]\n\n\
             [[environments.lab.caches]]\nname = \"hostile\"\nurl = \"redis://127.0.0.1:{}\"\n",
            srv.port()
        ),
    )
    .expect("config");
    let c = std::cell::RefCell::new(
        redis::Client::open(format!("redis://127.0.0.1:{}/", srv.port()))
            .expect("client")
            .get_connection()
            .expect("connect"),
    );
    let cases: u32 = if super::soak() { 64 } else { 6 };
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let tried = std::cell::Cell::new(0u64);
    let keys = prop::collection::vec(hostile_bytes(12), 1..20);
    runner
        .run(&keys, |keys| {
            let mut c = c.borrow_mut();
            let () = redis::cmd("FLUSHALL").query(&mut *c).expect("FLUSHALL");
            let mut p = redis::pipe();
            let mut written = keys.clone();
            for (i, k) in keys.iter().enumerate() {
                p.cmd("SET").arg(k).arg(k).ignore();
                // A 64 KB name in some cases.
                if i == 0 && k.len() % 3 == 0 {
                    let mut long = k.repeat(65_536 / k.len().max(1) + 1);
                    long.truncate(65_536);
                    p.cmd("SET").arg(&long).arg("v").ignore();
                    written.push(long);
                }
            }
            let () = p.query(&mut *c).expect("seed");
            tried.set(tried.get() + keys.len() as u64);
            for format in ["text", "json", "csv", "markdown"] {
                let out = assert_cmd::Command::cargo_bin("cachedeck")
                    .expect("binary")
                    .env("CACHEDECK_STATE_DIR", home.path().join("state"))
                    .env("CACHEDECK_CONFIG_DIR", home.path().join("cfg"))
                    .env("AWS_CONFIG_FILE", home.path().join("aws-config"))
                    .env(
                        "AWS_SHARED_CREDENTIALS_FILE",
                        home.path().join("aws-credentials"),
                    )
                    .env("AWS_ACCESS_KEY_ID", "testing")
                    .env("AWS_SECRET_ACCESS_KEY", "testing")
                    .env("AWS_EC2_METADATA_DISABLED", "true")
                    .arg("--config")
                    .arg(&config)
                    .args(["run", "ttl-audit", "--env", "lab", "--cache", "hostile"])
                    .args(["--param", "memory_samples=1", "--output", format])
                    .timeout(std::time::Duration::from_secs(60))
                    .output()
                    .expect("run");
                prop_assert_eq!(
                    out.status.code(),
                    Some(0),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                if let Err(e) = terminal_safe(&format!("stdout ({format})"), &out.stdout) {
                    return Err(TestCaseError::fail(e));
                }
                if let Err(e) = terminal_safe(&format!("stderr ({format})"), &out.stderr) {
                    return Err(TestCaseError::fail(e));
                }
                if format == "json" {
                    let v: serde_json::Value = match serde_json::from_slice(&out.stdout) {
                        Ok(v) => v,
                        Err(e) => {
                            return Err(TestCaseError::fail(format!("JSON does not parse: {e}")));
                        }
                    };
                    // Every example key in the JSON stands for a key that was written, byte
                    // for byte (a capped one for its beginning).
                    for p in v["patterns"].as_array().into_iter().flatten() {
                        for ex in p["examples"].as_array().into_iter().flatten() {
                            let text = ex.as_str().unwrap_or_default();
                            let (shown, capped) = match text.split_once("\u{2026}(+") {
                                Some((head, _)) => (head, true),
                                None => (text, false),
                            };
                            let bytes = unescape(shown);
                            let Some(bytes) = bytes else {
                                return Err(TestCaseError::fail(format!(
                                    "example {text:?} is not an escape of anything"
                                )));
                            };
                            let found = if capped {
                                written.iter().any(|k| k.starts_with(&bytes))
                            } else {
                                written.contains(&bytes)
                            };
                            prop_assert!(found, "example {:?} is no key that was written", text);
                        }
                    }
                }
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    summary::add("hostile.keys_through_cli_outputs", tried.get());
}
