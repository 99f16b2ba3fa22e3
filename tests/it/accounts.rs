//! Which account an environment reaches, through the real binary against a loopback stand-in
//! for the AWS endpoints that records who signed each request: a profile's own keys even
//! with other keys exported, STS GetCallerIdentity shown and pinned (`account_id`), a
//! `default` environment from ambient (here: ECS container) credentials, and static
//! environments that make no AWS call at all.

use assert_cmd::Command;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

const STAGING_KEY: &str = "AKIASTAGINGKEY000001";
const EXPORTED_KEY: &str = "AKIAEXPORTEDPROD0001";
const CONTAINER_KEY: &str = "ASIACONTAINERTASK001";

/// One request as the stand-in saw it.
#[derive(Debug, Clone)]
struct Seen {
    action: String,
    access_key: String,
}

/// A loopback HTTP server answering AWS query-protocol calls with empty results,
/// GetCallerIdentity with the account of the signing key, and `/creds` with ECS container
/// credentials.
struct FakeAws {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

fn account_of(key: &str) -> &'static str {
    match key {
        STAGING_KEY => "111111111111",
        EXPORTED_KEY => "999999999999",
        CONTAINER_KEY => "333333333333",
        _ => "000000000001",
    }
}

impl FakeAws {
    fn start() -> FakeAws {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || serve(stream, &log));
            }
        });
        FakeAws { url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("log").clone()
    }
}

fn serve(stream: TcpStream, log: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut out = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = BTreeMap::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let body = String::from_utf8_lossy(&body).to_string();
        let (status, content_type, reply) = if request_line.starts_with("GET /creds") {
            let json = serde_json::json!({
                "AccessKeyId": CONTAINER_KEY,
                "SecretAccessKey": "container-secret",
                "Token": "container-token",
                "Expiration": "2099-01-01T00:00:00Z",
            });
            ("200 OK", "application/json", json.to_string())
        } else {
            let action = body
                .split('&')
                .find_map(|kv| kv.strip_prefix("Action="))
                .unwrap_or("Unknown")
                .to_string();
            let access_key = headers
                .get("authorization")
                .and_then(|a| a.split("Credential=").nth(1))
                .and_then(|c| c.split('/').next())
                .unwrap_or("")
                .to_string();
            log.lock().expect("log").push(Seen {
                action: action.clone(),
                access_key: access_key.clone(),
            });
            let result = if action == "GetCallerIdentity" {
                let account = account_of(&access_key);
                format!(
                    "<Arn>arn:aws:sts::{account}:assumed-role/oncall/jo</Arn><UserId>AROAEXAMPLE:jo</UserId><Account>{account}</Account>"
                )
            } else {
                String::new()
            };
            (
                "200 OK",
                "text/xml",
                format!(
                    "<{action}Response><{action}Result>{result}</{action}Result><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></{action}Response>"
                ),
            )
        };
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n{reply}",
            reply.len()
        );
        if out.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// The binary with a clean environment of its own under `home`.
fn cachedeck(home: &tempfile::TempDir) -> Command {
    let mut cmd = Command::cargo_bin("cachedeck").expect("binary");
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("CACHEDECK_CONFIG_DIR", home.path().join("config"))
        .env("CACHEDECK_STATE_DIR", home.path().join("state"))
        .env("CACHEDECK_SANDBOX_DIR", home.path().join("sandbox"))
        .env("AWS_CONFIG_FILE", home.path().join("aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            home.path().join("aws-credentials"),
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .timeout(std::time::Duration::from_secs(120));
    cmd
}

fn json_of(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn staging_home(aws: &FakeAws, pin: Option<&str>) -> tempfile::TempDir {
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        home.path().join("aws-credentials"),
        format!(
            "[staging]\naws_access_key_id = {STAGING_KEY}\naws_secret_access_key = staging-secret\n"
        ),
    )
    .expect("credentials");
    std::fs::write(
        home.path().join("aws-config"),
        "[profile staging]\nregion = eu-west-1\n",
    )
    .expect("aws config");
    let pin = pin
        .map(|id| format!("account_id = \"{id}\"\n"))
        .unwrap_or_default();
    std::fs::write(
        home.path().join("config.toml"),
        format!(
            "[environments.staging]\nprovider = \"aws\"\nprofile = \"staging\"\nendpoint_url = \"{}\"\n{pin}discovery = {{ kinds = [\"replication-group\"] }}\n",
            aws.url
        ),
    )
    .expect("config");
    home
}

/// With production keys exported (aws-vault, `aws configure export-credentials`), an
/// environment with a profile signs with that profile's keys and nothing else.
#[test]
fn exported_keys_never_sign_for_a_profile_environment() {
    let aws = FakeAws::start();
    let home = staging_home(&aws, None);
    let out = cachedeck(&home)
        .env("AWS_ACCESS_KEY_ID", EXPORTED_KEY)
        .env("AWS_SECRET_ACCESS_KEY", "exported-secret")
        .env("AWS_REGION", "us-east-1")
        .arg("--config")
        .arg(home.path().join("config.toml"))
        .args(["envs", "--output", "json"])
        .output()
        .expect("run");
    let json = json_of(&out);
    let seen = aws.seen();
    assert!(
        seen.iter().any(|s| s.action == "DescribeReplicationGroups"),
        "{seen:?}"
    );
    assert!(
        seen.iter().all(|s| s.access_key == STAGING_KEY),
        "every request is signed by the profile's key: {seen:?}"
    );
    let env = &json["environments"][0];
    assert_eq!(env["name"], "staging");
    assert_eq!(env["account_id"], "111111111111", "{json}");
    assert_eq!(
        env["caller_arn"],
        "arn:aws:sts::111111111111:assumed-role/oncall/jo"
    );
    // The profile's region, not the exported AWS_REGION.
    assert_eq!(env["error"], Value::Null, "{json}");
}

/// An environment pinned to another account than its profile resolves to refuses every
/// call with one line, and makes none beyond asking who it is.
#[test]
fn a_pinned_account_mismatch_refuses_the_environment_with_one_line() {
    let aws = FakeAws::start();
    let home = staging_home(&aws, Some("222222222222"));
    let out = cachedeck(&home)
        .arg("--config")
        .arg(home.path().join("config.toml"))
        .args(["caches", "--output", "json"])
        .output()
        .expect("run");
    assert_ne!(out.status.code(), Some(0));
    let json = json_of(&out);
    assert_eq!(
        json["errors"][0]["error"],
        "profile staging now resolves to account 111111111111, this environment is pinned to 222222222222; fix the profile or `account_id`",
        "{json}"
    );
    let actions: Vec<String> = aws.seen().into_iter().map(|s| s.action).collect();
    assert_eq!(actions, ["GetCallerIdentity"]);

    let out = cachedeck(&home)
        .arg("--config")
        .arg(home.path().join("config.toml"))
        .args(["envs"])
        .output()
        .expect("run");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("111111111111 (pinned)"), "{table}");
}

/// A bastion whose only credentials are its task role (ECS container credentials) gets a
/// read-only `default` environment, and its calls are signed with the task's keys.
#[test]
fn container_credentials_alone_give_a_default_environment() {
    let aws = FakeAws::start();
    let home = tempfile::tempdir().expect("tempdir");
    let out = cachedeck(&home)
        .env(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            format!("{}/creds", aws.url),
        )
        .env("AWS_ENDPOINT_URL", &aws.url)
        .env("AWS_REGION", "eu-west-1")
        .args(["envs", "--output", "json"])
        .output()
        .expect("run");
    let json = json_of(&out);
    let envs = json["environments"].as_array().expect("environments");
    assert_eq!(envs.len(), 1, "{json}");
    assert_eq!(envs[0]["name"], "default");
    assert_eq!(envs[0]["protection"], "read-only");
    assert_eq!(envs[0]["account_id"], "333333333333", "{json}");
    let seen = aws.seen();
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|s| s.access_key == CONTAINER_KEY),
        "{seen:?}"
    );
}

/// With nothing at all (no profile, no ambient credentials) there is no `default`.
#[test]
fn no_credentials_anywhere_means_no_default_environment() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = cachedeck(&home)
        .args(["envs", "--output", "json"])
        .output()
        .expect("run");
    let json = json_of(&out);
    assert_eq!(json["environments"], serde_json::json!([]), "{json}");
}

/// `provider = "static"` lists its URL caches without a single AWS call; an `aws`
/// environment whose AWS side fails still lists its static caches, with the error beside.
#[test]
fn static_caches_need_no_aws() {
    let aws = FakeAws::start();
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        home.path().join("config.toml"),
        "[environments.bastion]\nprovider = \"static\"\n[[environments.bastion.caches]]\nname = \"legacy-sessions\"\nurl = \"redis://127.0.0.1:6390\"\n\n[environments.broken]\nprovider = \"aws\"\nprofile = \"nope\"\n[[environments.broken.caches]]\nname = \"other-cloud\"\nurl = \"rediss://127.0.0.1:6391\"\n",
    )
    .expect("config");
    let out = cachedeck(&home)
        .env("AWS_ENDPOINT_URL", &aws.url)
        .env("AWS_ACCESS_KEY_ID", EXPORTED_KEY)
        .env("AWS_SECRET_ACCESS_KEY", "exported-secret")
        .env("AWS_REGION", "eu-west-1")
        .arg("--config")
        .arg(home.path().join("config.toml"))
        .args(["caches", "--output", "json"])
        .output()
        .expect("run");
    let json = json_of(&out);
    let names: Vec<(&str, &str)> = json["caches"]
        .as_array()
        .expect("caches")
        .iter()
        .filter_map(|c| Some((c["env"].as_str()?, c["name"].as_str()?)))
        .collect();
    assert_eq!(
        names,
        [("bastion", "legacy-sessions"), ("broken", "other-cloud")],
        "{json}"
    );
    let warnings = json["warnings"].to_string();
    assert!(
        warnings.contains("discovery failed: profile `nope` not found"),
        "{json}"
    );
    assert!(aws.seen().is_empty(), "no AWS call: {:?}", aws.seen());
}
