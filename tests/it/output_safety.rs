//! Output safety through the real binary: private log files, and text from outside (AWS
//! names, SSM values, server errors) escaped on every terminal-bound path.

use assert_cmd::Command;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn cachedeck(home: &Path) -> Command {
    let mut cmd = Command::cargo_bin("cachedeck").expect("binary");
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("CACHEDECK_CONFIG_DIR", home.join("config"))
        .env("CACHEDECK_STATE_DIR", home.join("state"))
        .env("CACHEDECK_SANDBOX_DIR", home.join("sandbox"))
        .env("AWS_CONFIG_FILE", home.join("aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("aws-credentials"))
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .timeout(std::time::Duration::from_secs(120));
    cmd
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
}

#[test]
fn the_log_directory_is_0700_and_its_files_0600() {
    let home = tempfile::tempdir().expect("tempdir");
    cachedeck(home.path())
        .args(["envs", "--output", "json"])
        .output()
        .expect("run");
    let logs = home.path().join("state/logs");
    assert_eq!(mode(&logs), 0o700, "{}", logs.display());
    let files: Vec<_> = std::fs::read_dir(&logs)
        .expect("read logs")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    assert!(!files.is_empty(), "no log file in {}", logs.display());
    for f in files {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
}

/// A parameter value with an OSC 52 sequence (which would write to the clipboard), a CSI
/// and a one-character C1 CSI (U+009B, which serde leaves raw in JSON).
const HOSTILE_HOST: &str = "evil\u{1b}]52;c;aGVsbG8=\u{7}\u{9b}2J\u{202e}.example";

fn put_parameter(moto: &crate::harness::moto::Moto, name: &str, value: &str) {
    let script = "import boto3,sys\nssm=boto3.client('ssm',endpoint_url=sys.argv[1],region_name='eu-west-1',aws_access_key_id='testing',aws_secret_access_key='testing')\nssm.put_parameter(Name=sys.argv[2],Value=sys.argv[3],Type='String')";
    let out = std::process::Command::new(crate::harness::moto::Moto::python())
        .args(["-c", script, &moto.endpoint, name, value])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "boto3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn assert_no_raw_controls(what: &str, text: &str) {
    let bad: Vec<char> = text
        .chars()
        .filter(|&c| c != '\n' && cachedeck::escape::is_unsafe(c))
        .collect();
    assert!(bad.is_empty(), "{what} carries raw {bad:?}:\n{text:?}");
}

#[test]
fn an_ssm_value_with_terminal_escapes_is_escaped_in_tables_and_json() {
    let Some(moto) = crate::harness::moto::Moto::start() else {
        return;
    };
    put_parameter(&moto, "/evil/redis/endpoint", HOSTILE_HOST);
    let home = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| home.path().join(name);
    std::fs::write(
        path("aws-credentials"),
        "[moto]\naws_access_key_id = testing\naws_secret_access_key = testing\n",
    )
    .expect("write credentials");
    std::fs::write(path("aws-config"), "[profile moto]\nregion = eu-west-1\n")
        .expect("write aws config");
    let config = format!(
        r#"
[environments.dev]
provider = "aws"
profile = "moto"
endpoint_url = "{endpoint}"
discovery = {{ kinds = ["endpoint"] }}

[[environments.dev.ssm]]
name = "evil"
endpoint = "/evil/redis/endpoint"
"#,
        endpoint = moto.endpoint
    );
    std::fs::write(path("config.toml"), config).expect("write config");
    let run = |args: &[&str]| {
        cachedeck(home.path())
            .env_remove("AWS_ENDPOINT_URL")
            .arg("--config")
            .arg(path("config.toml"))
            .args(args)
            .output()
            .expect("run cachedeck")
    };

    let table = run(&["caches", "--output", "table"]);
    let stdout = String::from_utf8_lossy(&table.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&table.stderr).into_owned();
    assert_eq!(table.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_no_raw_controls("the caches table", &stdout);
    assert_no_raw_controls("stderr", &stderr);
    assert!(
        stdout.contains("evil\\x1b]52;c;aGVsbG8=\\x07\\u{9b}2J\\u{202e}.example:6379"),
        "the value is shown escaped: {stdout}"
    );

    let json = run(&["caches", "--output", "json"]);
    let stdout = String::from_utf8_lossy(&json.stdout).into_owned();
    assert_no_raw_controls("the caches JSON", &stdout);
    let value: serde_json::Value = serde_json::from_str(&stdout).expect("still JSON");
    // JSON carries the value itself, for scripts; only its encoding is terminal-safe.
    assert_eq!(value["caches"][0]["endpoint"]["host"], HOSTILE_HOST);
}
