//! Consumer discovery from task definitions: the AWS adapter at the wire against moto
//! (ListClusters, ListServices, DescribeServices, DescribeTaskDefinition) plus the config's
//! consumers, and the sandbox's consumer services, into which `cachedeck exec --cache`
//! goes and returns the remote exit code.

use crate::harness::moto::Moto;
use crate::harness::sandbox::Sandbox;
use cachedeck::aws::AwsControlPlane;
use cachedeck::config::{Config, Settings};
use cachedeck::controlplane::ControlPlane;
use std::path::Path;
use std::time::Duration;

fn moto_plane(moto: &Moto) -> AwsControlPlane {
    let text = format!(
        r#"
[environments.dev]
provider = "aws"
region = "eu-west-1"
endpoint_url = "{endpoint}"

[environments.dev.discovery]
kinds = ["endpoint"]

[[environments.dev.ssm]]
name = "storefront"
endpoint = "/storefront-{{env}}/redis/endpoint"
auth = "/storefront-{{env}}/redis/auth"

[[environments.dev.consumers]]
cache = "storefront"
cluster = "batch"
service = "legacy"
"#,
        endpoint = moto.endpoint
    );
    let config = Config::parse(Path::new("moto.toml"), &text).expect("test config parses");
    let cfg = config.environments["dev"].clone();
    let settings = Settings {
        call_timeout: Duration::from_secs(15),
        ..Settings::default()
    };
    let region = aws_sdk_ecs::config::Region::new("eu-west-1");
    let creds = aws_sdk_ecs::config::Credentials::new("testing", "testing", None, None, "moto");
    let behavior = aws_sdk_ecs::config::BehaviorVersion::latest();
    let elasticache = aws_sdk_elasticache::Client::from_conf(
        aws_sdk_elasticache::Config::builder()
            .behavior_version(behavior)
            .region(region.clone())
            .endpoint_url(&moto.endpoint)
            .credentials_provider(creds.clone())
            .build(),
    );
    let ecs = aws_sdk_ecs::Client::from_conf(
        aws_sdk_ecs::Config::builder()
            .behavior_version(behavior)
            .region(region.clone())
            .endpoint_url(&moto.endpoint)
            .credentials_provider(creds.clone())
            .build(),
    );
    let ssm = aws_sdk_ssm::Client::from_conf(
        aws_sdk_ssm::Config::builder()
            .behavior_version(behavior)
            .region(region)
            .endpoint_url(&moto.endpoint)
            .credentials_provider(creds)
            .build(),
    );
    AwsControlPlane::from_clients(
        cfg.environment("dev", "moto.toml"),
        cfg,
        settings,
        elasticache,
        ecs,
        ssm,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_task_definitions_name_the_consumers() {
    let Some(moto) = Moto::start() else { return };
    moto.run_fixture("moto_consumers.py");
    let plane = moto_plane(&moto);
    let found = plane.discover().await.expect("discovery");
    let cache = found
        .caches
        .iter()
        .find(|c| c.name == "storefront")
        .unwrap_or_else(|| panic!("storefront not discovered: {:?}", found.warnings));
    let consumers = plane.consumer_services(cache).await.expect("consumers");
    let rows: Vec<_> = consumers
        .iter()
        .map(|c| {
            (
                c.cluster.as_str(),
                c.service.as_str(),
                c.container.as_deref(),
                c.variables.join(","),
                c.found_by.as_str(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("batch", "legacy", None, String::new(), "config"),
            (
                "apps",
                "storefront-web",
                Some("web"),
                "REDIS_HOST,REDIS_PASSWORD".to_string(),
                "task-definition"
            ),
            (
                "apps",
                "storefront-worker",
                Some("worker"),
                "REDIS_AUTH".to_string(),
                "task-definition"
            ),
        ]
    );
    assert!(consumers[1].running.is_some(), "{consumers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_into_a_sandbox_consumer_returns_the_remote_exit_code() {
    let sandbox = Sandbox::up(50);
    let plane = sandbox.plane("sandbox-dev");
    let found = plane.discover().await.expect("discover");
    let mut seen = Vec::new();
    for name in ["orders", "paperwurks", "storefront", "valkey-ecs"] {
        let cache = found
            .caches
            .iter()
            .find(|c| c.name == name)
            .expect("sandbox cache");
        for c in plane.consumer_services(cache).await.expect("consumers") {
            seen.push((
                name,
                c.service,
                c.variables.join(","),
                c.running,
                c.container,
            ));
        }
    }
    let app = Some("app".to_string());
    assert_eq!(
        seen,
        [
            (
                "orders",
                "orders-sidekiq".to_string(),
                "SIDEKIQ_REDIS_URL,REDIS_PASSWORD".to_string(),
                Some(1),
                app.clone()
            ),
            (
                "paperwurks",
                "paperwurks-celery".to_string(),
                "CELERY_BROKER_URL".to_string(),
                Some(1),
                app.clone()
            ),
            (
                "storefront",
                "storefront-web".to_string(),
                "REDIS_URL,REDIS_PASSWORD,REDIS_USERNAME".to_string(),
                Some(1),
                app
            ),
        ]
    );

    let out = sandbox
        .cachedeck()
        .args(["exec", "--env", "sandbox-dev", "--cache", "orders", "--"])
        .args(["sh", "-c", "echo out; echo err >&2; exit 7"])
        .output()
        .expect("exec");
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).as_ref()
        ),
        (Some(7), "out\nerr\n"),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The consumer's own environment: the variable the app reads, the password not in argv.
    let out = sandbox
        .cachedeck()
        .args(["exec", "--env", "sandbox-dev", "--cache", "orders", "--"])
        .args([
            "sh",
            "-c",
            "case \"$SIDEKIQ_REDIS_URL\" in rediss://127.0.0.1:*) [ -n \"$REDIS_PASSWORD\" ] && exit 0;; esac; exit 3",
        ])
        .output()
        .expect("exec");
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    fifty_megabytes_in_order_in_bounded_memory(&sandbox);

    // stdin is forwarded to the remote command, and its output comes back in order.
    let out = sandbox
        .cachedeck()
        .args([
            "exec",
            "--env",
            "sandbox-dev",
            "--cache",
            "storefront",
            "--",
        ])
        .args(["sh", "-c", "head -n 2 | tr a-z A-Z"])
        .write_stdin("first line\nsecond line\n")
        .output()
        .expect("exec");
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).as_ref()
        ),
        (Some(0), "FIRST LINE\nSECOND LINE\n"),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `unshare -rn` (a user + network namespace) works here; the `port-blocked` fault needs it.
fn namespaces_work() -> bool {
    std::process::Command::new("unshare")
        .args(["-rn", "true"])
        .status()
        .is_ok_and(|s| s.success())
}

fn check_from_consumer(sandbox: &Sandbox, cache: &str, extra: &[&str]) -> (i32, String) {
    let mut cmd = sandbox.cachedeck();
    cmd.args([
        "run",
        "connectivity-check",
        "--env",
        "sandbox-dev",
        "--cache",
        cache,
        "--param",
        "from=consumer",
        "--param",
        "connect_timeout=1s",
        "--param",
        "pings=5",
    ]);
    for e in extra {
        cmd.args(["--param", e]);
    }
    let out = cmd.output().expect("run connectivity-check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_from_a_consumer_passes_and_each_fault_fails_at_its_layer() {
    let sandbox = Sandbox::up(50);
    for cache in ["orders", "paperwurks", "storefront"] {
        let (code, text) = check_from_consumer(&sandbox, cache, &[]);
        assert_eq!(code, 0, "{cache}: {text}");
        assert!(
            // A full client: valkey-cli/redis-cli when this host has one that speaks TLS
            // (the consumer's image is this host's PATH), else python3.
            [
                "(python3; reads ",
                "(valkey-cli; reads ",
                "(redis-cli; reads "
            ]
            .iter()
            .any(|t| text.contains(t))
                && text.contains("role    task: ok primary"),
            "{cache}: {text}"
        );
    }
    // Without a client in the container: a shell's /dev/tcp, TCP only, and it says so.
    let (_, text) = check_from_consumer(&sandbox, "orders", &["probe=dev-tcp"]);
    assert!(
        text.contains("(/dev/tcp;") && text.contains("TLS, AUTH and PING not checked"),
        "{text}"
    );

    let param = sandbox
        .state()
        .cache("sandbox-dev", "orders")
        .and_then(|c| c.password_parameter.clone())
        .expect("orders has a password parameter");
    let secret = sandbox
        .params()
        .get(&param)
        .ok()
        .flatten()
        .map(|p| p.value.expose().to_string());
    assert!(secret.is_some());
    let mut cases = vec![
        (
            "wrong-ca",
            "tls layer: certificate not trusted",
            "certificate not trusted from the task but not from here: the task's CA bundle",
        ),
        (
            "stale-password",
            "auth layer: WRONGPASS",
            "AUTH refused from the task but not from here: the app's secret (SIDEKIQ_REDIS_URL, REDIS_PASSWORD) is stale",
        ),
    ];
    if namespaces_work() {
        cases.insert(
            0,
            (
                "port-blocked",
                "tcp layer: connect to 127.0.0.1:",
                "TCP timeout from the task but not from here: the task's security group or the cache's inbound rules",
            ),
        );
    } else {
        eprintln!(
            "port-blocked not checked: `unshare -rn` (user + network namespaces) is not allowed here"
        );
    }
    for (fault, layer, cause) in cases {
        let out = sandbox
            .cachedeck()
            .args(["sandbox", "fault", "orders-sidekiq", fault])
            .output()
            .expect("sandbox fault");
        assert!(out.status.success(), "{out:?}");
        let (code, text) = check_from_consumer(&sandbox, "orders", &[]);
        assert_eq!(code, 1, "{fault}: {text}");
        assert!(text.contains(layer), "{fault}: {layer:?} missing in {text}");
        assert!(text.contains(cause), "{fault}: {cause:?} missing in {text}");
        if let Some(secret) = &secret {
            assert!(
                !text.contains(secret.as_str()),
                "{fault}: the secret leaked"
            );
        }
    }
    let out = sandbox
        .cachedeck()
        .args(["sandbox", "fault", "orders-sidekiq", "none"])
        .output()
        .expect("sandbox fault none");
    assert!(out.status.success());
    let (code, text) = check_from_consumer(&sandbox, "orders", &[]);
    assert_eq!(code, 0, "{text}");
}

/// A script that runs `cachedeck` with `args` (tmux starts a program without arguments).
fn script(dir: &Path, name: &str, args: &str) -> std::path::PathBuf {
    let bin = env!("CARGO_BIN_EXE_cachedeck");
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\nexec '{bin}' {args}\n")).expect("write script");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

#[test]
fn an_interactive_shell_in_tmux_from_the_cli_and_from_the_tui() {
    use crate::tui_e2e::Tmux;
    let sandbox = Sandbox::up(50);
    let home = sandbox.home().to_path_buf();
    let sandbox_dir = sandbox.dir().display().to_string();
    let state = home.join("state").display().to_string();
    let home_s = home.display().to_string();
    let envs = [
        ("CACHEDECK_SANDBOX_DIR", sandbox_dir.as_str()),
        ("CACHEDECK_STATE_DIR", state.as_str()),
        ("CACHEDECK_CONFIG_DIR", home_s.as_str()),
        ("HOME", home_s.as_str()),
        ("AWS_CONFIG_FILE", "/nonexistent"),
        ("TERM", "xterm-256color"),
    ];
    let wait = Duration::from_secs(20);

    // `cachedeck exec` with no command: a shell in raw mode, the terminal restored after.
    let exec = script(&home, "exec.sh", "exec --env sandbox-dev --cache orders");
    let report = home.join("exec-report");
    let tmux = Tmux::start(&exec, &envs, 100, 30, &report);
    tmux.wait_for("the remote shell's prompt", wait, |s| {
        s.lines()
            .any(|l| l.trim_end().ends_with('$') || l.trim_end().ends_with('#'))
    });
    tmux.keys(&["echo \"in-$((40+2))-$SIDEKIQ_REDIS_URL\"", "Enter"]);
    tmux.wait_for("the command's output", wait, |s| {
        s.contains("in-42-rediss://127.0.0.1:")
    });
    tmux.keys(&["exit", "Enter"]);
    let start = std::time::Instant::now();
    let after = loop {
        let text = std::fs::read_to_string(&report).unwrap_or_default();
        if text.contains("exit=") && text.contains("icanon") {
            break text;
        }
        assert!(
            start.elapsed() < wait,
            "cachedeck exec did not end: {}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(after.contains("exit=0"), "{after}");
    assert!(
        !after.contains("-icanon") && !after.contains("-echo "),
        "the terminal was left raw: {after}"
    );

    // The TUI: the consumers panel of orders, `e` opens a shell there and comes back. (The
    // first session is killed only once this one runs, so the tmux server stays up.)
    let tui = script(&home, "tui.sh", "");
    let report = home.join("tui-report");
    let first = tmux;
    let tmux = Tmux::start(&tui, &envs, 120, 32, &report);
    drop(first);
    tmux.wait_for("the environments", wait, |s| s.contains("sandbox-dev"));
    tmux.keys(&[":"]);
    tmux.keys(&["caches sandbox-dev", "Enter"]);
    tmux.wait_for("the caches of sandbox-dev", wait, |s| {
        s.contains("caches of sandbox-dev") && s.contains("orders")
    });
    tmux.keys(&["/", "orders", "Enter", "Enter"]);
    tmux.wait_for("the orders cache", wait, |s| {
        s.contains("sandbox-dev › orders")
    });
    tmux.keys(&["6"]);
    tmux.wait_for("the consumers panel", wait, |s| {
        s.contains("orders-sidekiq") && s.contains("SIDEKIQ_REDIS_URL, REDIS_PASSWORD")
    });
    tmux.keys(&["e"]);
    tmux.wait_for("the shell in orders-sidekiq", wait, |s| {
        s.contains("shell in a task of orders-sidekiq")
            && s.lines()
                .any(|l| l.trim_end().ends_with('$') || l.trim_end().ends_with('#'))
    });
    tmux.keys(&["echo \"from-tui-$((6*7))\"", "Enter"]);
    tmux.wait_for("the shell's output", wait, |s| s.contains("from-tui-42"));
    tmux.keys(&["exit 3", "Enter"]);
    tmux.wait_for("the TUI back", wait, |s| {
        s.contains("sandbox-dev › orders") && s.contains("orders-sidekiq")
    });
    // The TUI still answers keys.
    tmux.keys(&["1"]);
    tmux.wait_for("the stats panel", wait, |s| {
        s.contains("1 stats") && !s.contains("from-tui-42")
    });
    tmux.keys(&["q"]);
    let start = std::time::Instant::now();
    loop {
        let text = std::fs::read_to_string(&report).unwrap_or_default();
        if text.contains("exit=") {
            assert!(text.contains("exit=0"), "{text}");
            break;
        }
        assert!(
            start.elapsed() < wait,
            "the TUI did not quit: {}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// 50.9 MB of `seq` output through `cachedeck exec` (agent, protocol, pty, exit marker): every
/// line in order, and the process's peak RSS (VmHWM, the in-process sandbox agent included)
/// below the size of the output, so nothing holds it all.
fn fifty_megabytes_in_order_in_bounded_memory(sandbox: &Sandbox) {
    use std::io::BufRead;
    const LINES: u64 = 6_500_000;
    let home = sandbox.home();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cachedeck"))
        .env("CACHEDECK_SANDBOX_DIR", sandbox.dir())
        .env("CACHEDECK_STATE_DIR", home.join("state"))
        .env("CACHEDECK_CONFIG_DIR", home.join("config"))
        .env("AWS_CONFIG_FILE", home.join("aws-config"))
        .args(["exec", "--env", "sandbox-dev", "--cache", "orders", "--"])
        .args(["seq", "1", &LINES.to_string()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("cachedeck exec");
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done2 = done.clone();
    let watcher = std::thread::spawn(move || {
        let mut hwm_kb = 0u64;
        while !done2.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                && let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:"))
            {
                hwm_kb = line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(hwm_kb);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        hwm_kb
    });
    let reader = std::io::BufReader::with_capacity(1 << 16, child.stdout.take().expect("stdout"));
    let mut expected = 1u64;
    let mut bytes = 0u64;
    for line in reader.split(b'\n') {
        let line = line.expect("read");
        bytes += line.len() as u64 + 1;
        assert_eq!(
            std::str::from_utf8(&line)
                .ok()
                .and_then(|l| l.parse::<u64>().ok()),
            Some(expected),
            "line {expected} out of order or damaged"
        );
        expected += 1;
    }
    let status = child.wait().expect("wait");
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let hwm_kb = watcher.join().expect("watcher");
    assert_eq!((status.code(), expected - 1), (Some(0), LINES));
    assert!(bytes > 50_000_000, "{bytes}");
    eprintln!(
        "50 MB through cachedeck exec: peak RSS {} MiB",
        hwm_kb / 1024
    );
    assert!(
        hwm_kb > 0 && hwm_kb * 1024 < bytes,
        "peak RSS {hwm_kb} kB is not below the {bytes} bytes streamed"
    );
}

/// Sets a consumer service's fault (here: a thin image) and runs the check from it.
fn check_with(
    sandbox: &Sandbox,
    service: &str,
    fault: &str,
    cache: &str,
    extra: &[&str],
) -> (i32, String) {
    let out = sandbox
        .cachedeck()
        .args(["sandbox", "fault", service, fault])
        .output()
        .expect("sandbox fault");
    assert!(out.status.success(), "{fault}: {out:?}");
    check_from_consumer(sandbox, cache, extra)
}

/// A valkey-cli or redis-cli with TLS on this host's PATH.
fn cli_speaks_tls() -> bool {
    std::process::Command::new("sh")
        .args([
            "-c",
            "for c in valkey-cli redis-cli; do command -v $c >/dev/null && $c --help 2>&1 | grep -q -e --tls && exit 0; done; exit 1",
        ])
        .status()
        .is_ok_and(|s| s.success())
}

fn on_path(tool: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_probe_runs_in_a_task_whose_image_has_only_its_client() {
    let sandbox = Sandbox::up(20);
    let state = sandbox.state();
    let tls_of = |cache: &str| {
        state
            .cache("sandbox-dev", cache)
            .and_then(|c| c.endpoint.clone())
            .expect("endpoint")
            .tls
    };
    // orders: TLS, a password; every layer of every probe that speaks TLS.
    assert!(tls_of("orders"));
    let full = |text: &str| {
        ["dns", "tcp", "tls", "auth", "ping", "role"]
            .iter()
            .all(|l| text.contains(&format!("check: {l:<7} task: ok")))
    };
    let (code, text) = check_with(&sandbox, "orders-sidekiq", "only-python3", "orders", &[]);
    assert!(
        code == 0 && text.contains("(python3; reads ") && full(&text),
        "{text}"
    );
    assert!(text.contains("latency task: ok 5 PINGs: p50"), "{text}");

    if on_path("ruby") {
        let (code, text) = check_with(&sandbox, "orders-sidekiq", "only-ruby", "orders", &[]);
        assert!(
            code == 0 && text.contains("(ruby; reads ") && full(&text),
            "{text}"
        );
        assert!(text.contains("latency task: ok 5 PINGs: p50"), "{text}");
    } else {
        eprintln!("the ruby probe not checked: no ruby on this host (apt-get install ruby)");
    }

    let (code, text) = check_with(&sandbox, "orders-sidekiq", "only-openssl", "orders", &[]);
    assert!(
        code == 0 && text.contains("(openssl s_client; reads ") && full(&text),
        "{text}"
    );
    // What s_client cannot measure, it says.
    assert!(
        text.contains("latency p50/p99 not measured") && text.contains("latency task: -"),
        "{text}"
    );

    // valkey-cli: every layer where it can speak to the cache; where the app needs TLS and
    // this valkey-cli has none, the probe falls back to /dev/tcp and says why.
    let (code, text) = check_with(&sandbox, "orders-sidekiq", "only-valkey-cli", "orders", &[]);
    let unpacked = std::env::var_os("CACHEDECK_TOOLS_DIR")
        .map(|d| Path::new(&d).join("redis-tools/usr/bin/redis-cli"))
        .is_some_and(|p| p.is_file());
    if cli_speaks_tls() || unpacked {
        assert!(
            text.contains("(valkey-cli;") || text.contains("(redis-cli;"),
            "{text}"
        );
        assert!(code == 0 && full(&text), "{text}");
    } else {
        eprintln!(
            "the valkey-cli probe on a TLS cache not checked: no valkey-cli/redis-cli with TLS here (apt-get install redis-tools)"
        );
        assert!(
            text.contains("(/dev/tcp;")
                && text.contains("here has no TLS and there is no other client"),
            "{text}"
        );
    }
    let plain = ["paperwurks", "storefront"]
        .into_iter()
        .find(|c| !tls_of(c));
    if let Some(cache) = plain {
        let service = if cache == "paperwurks" {
            "paperwurks-celery"
        } else {
            "storefront-web"
        };
        let (code, text) = check_with(&sandbox, service, "only-valkey-cli", cache, &[]);
        assert!(
            code == 0
                && (text.contains("(valkey-cli; reads ") || text.contains("(redis-cli; reads ")),
            "{text}"
        );
        for l in ["dns", "tcp", "auth", "ping", "role"] {
            assert!(
                text.contains(&format!("check: {l:<7} task: ok")),
                "{l}: {text}"
            );
        }
        assert!(text.contains("(valkey-cli --latency)"), "{text}");
        // s_client speaks TLS only: TCP through /dev/tcp, and it says what it left out.
        let (_, text) = check_with(&sandbox, service, "only-openssl", cache, &[]);
        assert!(
            text.contains("openssl s_client speaks TLS only and the app's URL is plain: AUTH and PING not checked"),
            "{text}"
        );
    } else {
        eprintln!(
            "the valkey-cli probe on a plain cache not checked: every consumer's cache uses TLS"
        );
    }

    let (code, text) = check_with(&sandbox, "orders-sidekiq", "only-shell", "orders", &[]);
    assert!(
        code == 0 && text.contains("(/dev/tcp;") && text.contains("no client in the container"),
        "{text}"
    );

    // The ruby and s_client probes fail at the right layer with the right cause.
    let mut probes = vec!["python3", "openssl"];
    if on_path("ruby") {
        probes.push("ruby");
    }
    if cli_speaks_tls() {
        probes.push("valkey-cli");
    } else {
        eprintln!(
            "the valkey-cli probe's failures not checked: no valkey-cli/redis-cli with TLS on this host's PATH"
        );
    }
    for (fault, layer, cause) in [
        (
            "wrong-ca",
            "tls layer: certificate not trusted",
            "certificate not trusted from the task but not from here",
        ),
        (
            "stale-password",
            "auth layer: WRONGPASS",
            "AUTH refused from the task but not from here",
        ),
    ] {
        let out = sandbox
            .cachedeck()
            .args(["sandbox", "fault", "orders-sidekiq", fault])
            .output()
            .expect("sandbox fault");
        assert!(out.status.success(), "{out:?}");
        for probe in &probes {
            let (code, text) =
                check_from_consumer(&sandbox, "orders", &[&format!("probe={probe}")]);
            assert_eq!(code, 1, "{fault} {probe}: {text}");
            assert!(
                text.contains(layer) && text.contains(cause),
                "{fault} {probe}: {text}"
            );
        }
    }
}
