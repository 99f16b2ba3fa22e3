//! `auth-rotate` on self-managed Valkey (the ACL mechanism) through the binary: an `aws`
//! environment whose SSM is moto, a static cache on a real valkey-server whose ACL user
//! `app` comes from an ACL file, behind a TLS front. A SIGKILL mid-run then `runs resume`
//! (ACL SETUSER sent once per phase), `persist=true` writing the ACL file (a restart keeps
//! the new password), then a run without it: the warning, and a restart that indeed brings
//! the old password back.

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

/// Waits until a journal under `home` has a record matching `pred`; returns its run id.
/// The runner ending first fails the test with what it printed.
fn wait_record(
    home: &Path,
    child: &mut std::process::Child,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    let runs = home.join("state").join("runs");
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the run ended ({status}) before the record: {}",
                std::fs::read_to_string(home.join("runner.out")).unwrap_or_default()
            );
        }
        for entry in std::fs::read_dir(&runs).into_iter().flatten().flatten() {
            let path = entry.path();
            let Ok(body) = std::fs::read_to_string(&path) else {
                continue;
            };
            if body
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .any(|v| pred(&v))
            {
                return path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no matching journal record within 60 s");
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
    // The password as the applications read it: an SSM SecureString (seed 004 style).
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
    let read = |ssm: aws_sdk_ssm::Client| async move {
        ssm.get_parameter()
            .name(PARAM)
            .with_decryption(true)
            .send()
            .await
            .expect("get the password")
            .parameter
            .and_then(|p| p.value)
            .expect("a value")
    };

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

    // Run 1, with persist: SIGKILL once the new password is accepted (at the publish
    // step's intent), then `runs resume`.
    let mut cmd = command(home);
    let log = std::fs::File::create(home.join("runner.out")).expect("runner output");
    cmd.args(rotate_args(true))
        .stdout(Stdio::from(log.try_clone().expect("clone")))
        .stderr(Stdio::from(log));
    let mut child = cmd.spawn().expect("runner");
    let run_id = wait_record(home, &mut child, |v| {
        v["record"] == "intent" && v["step"] == "publish"
    });
    let _ = child.kill();
    let _ = child.wait();
    let mut cmd = command(home);
    cmd.args(["runs", "resume", &run_id, "--yes", "--output", "json"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let new1 = read(ssm.clone()).await;
    assert_ne!(new1, OLD);
    assert_eq!(new1.len(), 64);
    assert!(accepts(port, &new1), "new password refused");
    assert!(!accepts(port, OLD), "old password still accepted");
    // One ACL SETUSER per phase: the resume did not add the password again.
    assert_eq!(setuser_calls(port, &new1), 2);
    assert!(
        text(&out).contains("ACL SAVE wrote"),
        "persist did not save: {}",
        text(&out)
    );
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
        "{newest:?}"
    );
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
    let new2 = read(ssm.clone()).await;
    assert_ne!(new2, new1);
    assert!(accepts(port, &new2));
    assert!(!accepts(port, &new1));
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
