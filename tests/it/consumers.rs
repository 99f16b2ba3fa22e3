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
            text.contains("(python3; reads ") && text.contains("role    task: ok primary"),
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
