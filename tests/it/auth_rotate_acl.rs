//! `auth-rotate` on self-managed Valkey (the ACL mechanism) through the binary: an `aws`
//! environment whose SSM is moto, a static cache on a real valkey-server whose ACL user
//! `app` comes from an ACL file, behind a TLS front. A SIGKILL at each step boundary in
//! turn, then `runs resume` (ACL SETUSER sent once per phase), `persist=true` writing the
//! ACL file (a restart keeps the new password), then a run without it: the warning, and a
//! restart that indeed brings the old password back. Users kept in the config file instead:
//! `persist=true` runs CONFIG REWRITE, and the server started again from that file takes
//! the new password only.

use crate::harness::moto::Moto;
use crate::harness::valkey::{ServerSpec, start};
use crate::valkey::tls_proxy::TlsProxy;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

const PARAM: &str = "/jobs/dev/valkey/password";
const OLD: &str = "Old-selfmanaged-PASSWORD-0123456789";

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write file");
}

/// `cachedeck` with every directory in `home`, AWS only through moto's profile.
fn command(home: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("cachedeck"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("CACHEDECK_CONFIG_DIR", home.join("config"))
        .env("CACHEDECK_STATE_DIR", home.join("state"))
        .env("CACHEDECK_SANDBOX_DIR", home.join("sandbox"))
        .env("AWS_CONFIG_FILE", home.join("aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("aws-credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .arg("--config")
        .arg(home.join("config.toml"));
    cmd
}

fn rotate_args(persist: bool) -> Vec<String> {
    let mut args: Vec<String> = [
        "run",
        "auth-rotate",
        "--env",
        "selfhosted",
        "--cache",
        "jobs-valkey",
        "--yes",
        "--output",
        "json",
        "--param",
        "poll=200ms",
        "--param",
        "drain_timeout=20s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if persist {
        args.extend(["--param".to_string(), "persist=true".to_string()]);
    }
    args
}

async fn output(mut cmd: std::process::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run cachedeck")
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The user's password through the plain node: `true` when accepted.
fn accepts(port: u16, password: &str) -> bool {
    crate::harness::valkey::raw_command(port, &["AUTH", "app", password]).starts_with("+OK")
}

/// Calls of ACL SETUSER on the node so far.
fn setuser_calls(port: u16, password: &str) -> u64 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let auth = format!(
        "*3\r\n$4\r\nAUTH\r\n$3\r\napp\r\n${}\r\n{password}\r\n",
        password.len()
    );
    stream.write_all(auth.as_bytes()).expect("auth");
    stream
        .write_all(b"*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n")
        .expect("info");
    let mut reply = String::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut buf = [0u8; 65536];
    while !reply.contains("# Commandstats") || !reply.ends_with("\r\n\r\n") {
        let n = stream.read(&mut buf).expect("read");
        reply.push_str(&String::from_utf8_lossy(&buf[..n]));
        if n == 0 || Instant::now() > deadline || reply.contains("cmdstat_info") {
            break;
        }
    }
    reply
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_acl|setuser:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Waits until a journal under `home` of a run not in `seen` has a record matching `pred`;
/// returns its run id. The runner ending first fails the test with what it printed.
fn wait_record(
    home: &Path,
    seen: &[String],
    child: &mut std::process::Child,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    let runs = home.join("state").join("runs");
    while Instant::now() < deadline {
        let ended = child.try_wait().ok().flatten();
        for entry in std::fs::read_dir(&runs).into_iter().flatten().flatten() {
            let path = entry.path();
            let id = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if seen.contains(&id) {
                continue;
            }
            let Ok(body) = std::fs::read_to_string(&path) else {
                continue;
            };
            if body
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .any(|v| pred(&v))
            {
                return id;
            }
        }
        if let Some(status) = ended {
            panic!(
                "the run ended ({status}) before the record: {}",
                std::fs::read_to_string(home.join("runner.out")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("no matching journal record within 60 s");
}

/// The `aws` environment (SSM at moto) with the static cache behind `proxy`, and its
/// password as the applications read it: an SSM SecureString (seed 004 style).
async fn estate(home: &Path, moto: &Moto, proxy: &TlsProxy) -> aws_sdk_ssm::Client {
    write(
        &home.join("aws-credentials"),
        "[moto]\naws_access_key_id = testing\naws_secret_access_key = testing\n",
    );
    write(
        &home.join("aws-config"),
        "[profile moto]\nregion = eu-west-1\n",
    );
    write(
        &home.join("config.toml"),
        &format!(
            r#"
[environments.selfhosted]
provider = "aws"
profile = "moto"
protection = "open"
endpoint_url = "{endpoint}"
discovery = {{ kinds = ["cache-cluster"] }}

[[environments.selfhosted.caches]]
name = "jobs-valkey"
url = "rediss://localhost:{tls}"
username = "app"
password = {{ ssm = "{PARAM}" }}
ca_file = "{ca}"
"#,
            endpoint = moto.endpoint,
            tls = proxy.port,
            ca = proxy.ca_file.display()
        ),
    );
    let ssm = aws_sdk_ssm::Client::from_conf(
        aws_sdk_ssm::Config::builder()
            .behavior_version(aws_sdk_ssm::config::BehaviorVersion::latest())
            .region(aws_sdk_ssm::config::Region::new("eu-west-1"))
            .endpoint_url(&moto.endpoint)
            .credentials_provider(aws_sdk_ssm::config::Credentials::new(
                "testing", "testing", None, None, "moto",
            ))
            .build(),
    );
    ssm.put_parameter()
        .name(PARAM)
        .value(OLD)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .expect("put the password");
    ssm
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_managed_acl_rotation_resumes_and_warns_about_restarts() {
    let Some(moto) = Moto::start() else { return };
    let home = tempfile::tempdir().expect("tempdir");
    let home = home.path();
    let acl = home.join("users.acl");
    write(
        &acl,
        &format!("user default off\nuser app on >{OLD} ~* &* +@all\n"),
    );
    let mut server = start(ServerSpec::new().config_line(format!("aclfile {}", acl.display())));
    let port = server.port();
    let proxy = TlsProxy::start(port).await;
    let ssm = estate(home, &moto, &proxy).await;
    // The dry run names the ACL calls and the start-up check, and no password.
    let mut cmd = command(home);
    cmd.args([
        "run",
        "auth-rotate",
        "--env",
        "selfhosted",
        "--cache",
        "jobs-valkey",
        "--dry-run",
    ]);
    let out = output(cmd).await;
    let plan = text(&out);
    assert_eq!(out.status.code(), Some(0), "{plan}");
    assert!(plan.contains("ACL SETUSER app >["), "{plan}");
    assert!(plan.contains("CONFIG GET aclfile"), "{plan}");
    assert!(!plan.contains(OLD));

    // With persist: SIGKILL at each step boundary in turn, then `runs resume`; every round
    // ends rotated, with one ACL SETUSER per phase (nothing sent twice).
    let points = [
        ("intent", "generate"),
        ("intent", "rotate"),
        ("step-done", "rotate"),
        ("intent", "publish"),
        ("intent", "roll"),
        ("intent", "finalize"),
    ];
    let mut current = OLD.to_string();
    let mut seen: Vec<String> = Vec::new();
    for (record, step) in points {
        let calls = setuser_calls(port, &current);
        let mut cmd = command(home);
        let log = std::fs::File::create(home.join("runner.out")).expect("runner output");
        cmd.args(rotate_args(true))
            .stdout(Stdio::from(log.try_clone().expect("clone")))
            .stderr(Stdio::from(log));
        let mut child = cmd.spawn().expect("runner");
        let run_id = wait_record(home, &seen, &mut child, |v| {
            v["record"] == record && v["step"] == step
        });
        seen.push(run_id.clone());
        let _ = child.kill();
        let status = child.wait().expect("wait for the runner");
        let what = format!("killed at {record} {step}");
        // A run quicker than the kill has nothing left to resume (its output is the file's).
        let out = if status.success() {
            eprintln!("{what}: the run finished before the kill landed");
            let mut cmd = command(home);
            cmd.args(["runs", "show", &run_id]);
            let mut out = output(cmd).await;
            out.stdout = std::fs::read(home.join("runner.out")).unwrap_or_default();
            out
        } else {
            let mut cmd = command(home);
            cmd.args(["runs", "resume", &run_id, "--yes", "--output", "json"]);
            output(cmd).await
        };
        assert_eq!(out.status.code(), Some(0), "{what}: {}", text(&out));
        let new = read_password(&ssm).await;
        assert_ne!(new, current, "{what}: not rotated");
        assert_eq!(new.len(), 64);
        assert!(accepts(port, &new), "{what}: new password refused");
        assert!(!accepts(port, &current), "{what}: old password accepted");
        assert_eq!(
            setuser_calls(port, &new) - calls,
            2,
            "{what}: ACL SETUSER sent again"
        );
        assert!(
            text(&out).contains("ACL SAVE wrote"),
            "{what}: persist did not save: {}",
            text(&out)
        );
        for staging in [
            "/cachedeck/rotation/jobs-valkey/pending",
            "/cachedeck/rotation/jobs-valkey/previous",
        ] {
            assert!(
                ssm.get_parameter().name(staging).send().await.is_err(),
                "{what}: {staging} left behind"
            );
        }
        // The published version is labelled.
        let history = ssm
            .get_parameter_history()
            .name(PARAM)
            .send()
            .await
            .expect("history");
        let newest = history
            .parameters()
            .iter()
            .max_by_key(|p| p.version)
            .expect("versions");
        assert!(
            newest.labels().contains(&"cachedeck-current".to_string())
                && newest.labels().contains(&format!("run-{run_id}")),
            "{what}: {newest:?}"
        );
        current = new;
    }
    let new1 = current;
    // Persisted: a restart keeps the new password.
    server.restart().expect("restart");
    assert!(accepts(port, &new1), "the restart lost the new password");
    assert!(
        !accepts(port, OLD),
        "the restart brought the old password back"
    );

    // Run 2, without persist: the warning, and it is true.
    let mut cmd = command(home);
    cmd.args(rotate_args(false));
    let out = output(cmd).await;
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    let new2 = read_password(&ssm).await;
    assert_ne!(new2, new1);
    assert!(accepts(port, &new2));
    assert!(!accepts(port, &new1));
    assert!(
        all.contains("users from the ACL file")
            && all.contains("a restart would bring the old password back unless it is saved"),
        "the preflight does not say where the users come from: {all}"
    );
    assert!(
        all.contains("a restart reloads user app from")
            && all.contains("users.acl, which still has the old password"),
        "{all}"
    );
    for (place, body) in [("output", &all)] {
        for secret in [OLD, new1.as_str(), new2.as_str()] {
            assert!(!body.contains(secret), "a password is in the {place}");
        }
    }
    server.restart().expect("restart");
    assert!(
        accepts(port, &new1),
        "the warning said a restart brings the old password back"
    );
    assert!(!accepts(port, &new2));
}

/// The SSM value of the applications' password.
async fn read_password(ssm: &aws_sdk_ssm::Client) -> String {
    ssm.get_parameter()
        .name(PARAM)
        .with_decryption(true)
        .send()
        .await
        .expect("get the password")
        .parameter
        .and_then(|p| p.value)
        .expect("a value")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_in_the_config_file_are_rewritten_with_persist_and_survive_a_restart() {
    use sha2::Digest;
    let Some(moto) = Moto::start() else { return };
    let home = tempfile::tempdir().expect("tempdir");
    let home = home.path();
    let mut server = start(
        ServerSpec::new()
            .config_line("user default off")
            .config_line(format!("user app on >{OLD} ~* &* +@all")),
    );
    let port = server.port();
    let proxy = TlsProxy::start(port).await;
    let ssm = estate(home, &moto, &proxy).await;
    let mut cmd = command(home);
    cmd.args(rotate_args(true));
    let out = output(cmd).await;
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(all.contains("users from the config file"), "{all}");
    assert!(all.contains("CONFIG REWRITE wrote"), "{all}");
    let new = read_password(&ssm).await;
    assert_ne!(new, OLD);
    // The config file now names the user with the new password's hash only.
    let conf = server.dir().join("cachedeck.conf");
    let written = std::fs::read_to_string(&conf).expect("read the config file");
    let hash = |p: &str| {
        sha2::Sha256::digest(p.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    assert!(written.contains(&format!("#{}", hash(&new))), "{written}");
    assert!(!written.contains(&hash(OLD)) && !written.contains(OLD));
    // Started again from that file, the server takes the new password, not the old one.
    server.stop().expect("stop");
    let binary = cachedeck::valkey::binary::cached().expect("valkey-server");
    let mut again = std::process::Command::new(&binary.path)
        .arg(&conf)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--protected-mode", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start valkey-server again");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cachedeck::valkey::server::ping(port, Duration::from_millis(200)) {
        assert!(Instant::now() < deadline, "the server did not come back");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (new_ok, old_ok) = (accepts(port, &new), accepts(port, OLD));
    let _ = again.kill();
    let _ = again.wait();
    assert!(new_ok, "the restart lost the new password");
    assert!(!old_ok, "the restart brought the old password back");
}
