//! The AWS control plane at the wire against moto 5.2: ElastiCache replication groups and
//! clusters, SSM parameters (String + SecureString URL) and an ECS Valkey service.

use crate::harness::moto::Moto;
use cachedeck::aws::AwsControlPlane;
use cachedeck::config::{Config, Settings};
use cachedeck::controlplane::{
    ControlPlane, ControlPlaneError, ParameterType, ParameterValue, PutParameter,
};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

const TOKEN: &str = "moto-s3cret-AUTH-token-42";

fn plane(moto: &Moto) -> AwsControlPlane {
    // Serverless is left out: moto 5.2 answers DescribeServerlessCaches with a 500.
    let text = format!(
        r#"
[environments.dev]
provider = "aws"
region = "eu-west-1"
endpoint_url = "{endpoint}"

[environments.dev.discovery]
kinds = ["replication-group", "cache-cluster", "ecs-service", "endpoint"]

[[environments.dev.ssm]]
name = "storefront"
endpoint = "/storefront-{{env}}/redis/endpoint"
port = "/storefront-{{env}}/redis/port"

[[environments.dev.ssm]]
name = "paperwurks"
url = "/paperwurks/{{env}}/redis/url"

[[environments.dev.ssm]]
name = "forgotten"
endpoint = "/forgotten-{{env}}/redis/endpoint"

[[environments.dev.ecs]]
cluster = "orders"
container = "valkey"
host = "valkey.orders.local"

[[environments.dev.ecs]]
cluster = "orders"
services = ["ghost-valkey"]
"#,
        endpoint = moto.endpoint
    );
    plane_with(moto, &text)
}

/// A plane for the environment `dev` of config `text`, every client pointed at moto.
fn plane_with(moto: &Moto, text: &str) -> AwsControlPlane {
    let config = Config::parse(Path::new("moto.toml"), text).expect("test config parses");
    let cfg = config.environments["dev"].clone();
    let settings = Settings {
        call_timeout: Duration::from_secs(15),
        ..Settings::default()
    };
    let region = aws_sdk_elasticache::config::Region::new("eu-west-1");
    let creds =
        aws_sdk_elasticache::config::Credentials::new("testing", "testing", None, None, "moto");
    let behavior = aws_sdk_elasticache::config::BehaviorVersion::latest();
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
    let servicediscovery = aws_sdk_servicediscovery::Client::from_conf(
        aws_sdk_servicediscovery::Config::builder()
            .behavior_version(aws_sdk_servicediscovery::config::BehaviorVersion::latest())
            .region(aws_sdk_servicediscovery::config::Region::new("eu-west-1"))
            .endpoint_url(&moto.endpoint)
            .credentials_provider(aws_sdk_servicediscovery::config::Credentials::new(
                "testing", "testing", None, None, "moto",
            ))
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
    .with_service_discovery(servicediscovery)
}

fn put(name: &str, kind: ParameterType, value: ParameterValue) -> PutParameter {
    PutParameter {
        name: name.to_string(),
        kind,
        value,
        overwrite: false,
        description: None,
    }
}

/// The fields the brief pins, in the JSON shape `cachedeck caches --output json` prints.
fn shape(cache: &Value) -> Value {
    json!({
        "name": cache["name"],
        "env": cache["env"],
        "kind": cache["kind"],
        "engine": cache["engine"],
        "engine_version": cache["engine_version"],
        "status": cache["status"],
        "cluster_mode": cache["cluster_mode"],
        "auth": cache["auth"],
        "tls": cache["tls"],
        "endpoint": cache["endpoint"].get("host").map(|_| json!({
            "host": cache["endpoint"]["host"], "port": cache["endpoint"]["port"]
        })).unwrap_or(Value::Null),
        "shards": cache["shards"].as_array().map(|shards| shards.iter().map(|s| json!({
            "id": s["id"],
            "nodes": s["nodes"].as_array().map(|nodes| nodes.iter().map(|n| json!({
                "id": n["id"], "role": n["role"], "host": n["host"], "port": n["port"]
            })).collect::<Vec<_>>()),
        })).collect::<Vec<_>>()),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_estate_is_discovered_with_ssm_and_ecs() {
    let Some(moto) = Moto::start() else { return };
    let made = moto.run_fixture("moto_estate.py");
    let task_id = made["task_ids"][0]
        .as_str()
        .expect("fixture made a task")
        .to_string();
    let plane = plane(&moto);

    // First pass: no SSM parameters yet, so every SSM cache is a warning, not an error.
    let first = plane
        .discover()
        .await
        .expect("discovery works against moto");
    assert!(
        first
            .warnings
            .iter()
            .any(|w| w == "ssm /storefront-dev/redis/endpoint: not found (cache `storefront`)"),
        "{:?}",
        first.warnings
    );
    let pw = first
        .caches
        .iter()
        .find(|c| c.name == "paperwurks-prod")
        .expect("cluster-mode group found");
    let pw_host = pw
        .endpoint
        .as_ref()
        .expect("configuration endpoint")
        .host
        .clone();

    plane
        .put_parameter(put(
            "/storefront-dev/redis/endpoint",
            ParameterType::String,
            ParameterValue::Plain("storefront-dev-x1y2.serverless.euw1.cache.amazonaws.com".into()),
        ))
        .await
        .expect("put endpoint");
    plane
        .put_parameter(put(
            "/storefront-dev/redis/port",
            ParameterType::String,
            ParameterValue::Plain("6379".into()),
        ))
        .await
        .expect("put port");
    plane
        .put_parameter(put(
            "/paperwurks/dev/redis/url",
            ParameterType::SecureString,
            ParameterValue::Secret(SecretString::from(format!(
                "rediss://:{TOKEN}@{pw_host}:6379"
            ))),
        ))
        .await
        .expect("put url");

    let found = plane.discover().await.expect("second discovery");
    assert_eq!(
        found.warnings,
        vec![
            "ecs orders/ghost-valkey: missing".to_string(),
            "ssm /forgotten-dev/redis/endpoint: not found (cache `forgotten`)".to_string()
        ]
    );
    let json = serde_json::to_value(&found.caches).expect("caches serialize");
    let text = json.to_string();
    assert!(
        !text.contains(TOKEN),
        "the AUTH token leaked into the cache JSON"
    );
    assert!(
        !format!("{found:?}").contains(TOKEN),
        "the AUTH token leaked into Debug"
    );

    let by_name = |name: &str| -> Value {
        json.as_array()
            .and_then(|all| all.iter().find(|c| c["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("cache {name} not discovered in {text}"))
    };
    let names: Vec<&str> = json
        .as_array()
        .map(|all| all.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        names,
        [
            "jobs-valkey",
            "paperwurks-prod",
            "solo-redis",
            "orders-valkey",
            "storefront"
        ],
        "memcached and the unrelated ECS service are skipped; kind order, then name"
    );

    let jobs = by_name("jobs-valkey");
    let jobs_shape = shape(&jobs);
    assert_eq!(jobs_shape["kind"], "replication-group");
    assert_eq!(jobs_shape["engine"], "valkey");
    assert_eq!(
        jobs_shape["engine_version"], "8.0.1",
        "version joined from DescribeCacheClusters"
    );
    assert_eq!(jobs_shape["status"], "available");
    assert_eq!(jobs_shape["cluster_mode"], false);
    assert_eq!(jobs_shape["auth"], "none");
    assert_eq!(jobs_shape["tls"], true);
    assert_eq!(jobs_shape["env"], "dev");
    assert!(
        jobs_shape["endpoint"]["host"]
            .as_str()
            .is_some_and(|h| h.starts_with("master.jobs-valkey."))
    );
    assert_eq!(jobs_shape["endpoint"]["port"], 6379);
    let nodes = &jobs_shape["shards"][0]["nodes"];
    assert_eq!(jobs_shape["shards"][0]["id"], "0001");
    assert_eq!(nodes[0]["id"], "jobs-valkey-001");
    assert_eq!(nodes[0]["role"], "primary");
    assert_eq!(nodes[1]["id"], "jobs-valkey-002");
    assert_eq!(nodes[1]["role"], "replica");
    assert!(
        nodes[1]["host"]
            .as_str()
            .is_some_and(|h| h.starts_with("jobs-valkey-002."))
    );
    assert_eq!(jobs["automatic_failover"], true);
    assert_eq!(jobs["multi_az"], true);
    assert!(jobs["endpoints"]["reader"].is_object() || jobs["endpoints"].get("reader").is_none());

    let pw = by_name("paperwurks-prod");
    let pw_shape = shape(&pw);
    assert_eq!(pw_shape["engine"], "redis");
    assert_eq!(pw_shape["cluster_mode"], true);
    assert_eq!(pw_shape["auth"], "token");
    assert_eq!(pw_shape["endpoint"]["host"], pw_host.as_str());
    assert_eq!(pw_shape["shards"].as_array().map(Vec::len), Some(2));
    assert_eq!(pw_shape["shards"][1]["id"], "0002");
    assert_eq!(
        pw_shape["shards"][1]["nodes"][0]["id"],
        "pw-0002-001".replace("pw", "paperwurks-prod")
    );
    assert_eq!(pw["shards"][0]["slots"], "0-5461");
    // The SSM URL attached to the discovered group instead of adding a duplicate.
    assert_eq!(
        pw["credentials"]["url_parameter"],
        "/paperwurks/dev/redis/url"
    );
    assert!(
        pw["notes"]
            .to_string()
            .contains("URL in SSM /paperwurks/dev/redis/url")
    );

    let solo = shape(&by_name("solo-redis"));
    assert_eq!(solo["kind"], "cache-cluster");
    assert_eq!(solo["engine_version"], "7.1");

    let orders = by_name("orders-valkey");
    let orders_shape = shape(&orders);
    assert_eq!(orders_shape["kind"], "ecs-service");
    assert_eq!(orders_shape["engine"], "valkey");
    assert_eq!(orders_shape["engine_version"], "8.1.1");
    assert_eq!(
        orders_shape["endpoint"],
        json!({"host": "valkey.orders.local", "port": 6379})
    );
    assert_eq!(
        orders_shape["shards"][0]["nodes"][0]["id"],
        task_id.as_str()
    );
    assert!(
        orders_shape["shards"][0]["nodes"][0]["host"]
            .as_str()
            .is_some_and(|h| h.starts_with("10."))
    );
    assert_eq!(
        orders["ecs"],
        json!({"cluster": "orders", "service": "orders-valkey", "container": "valkey"})
    );

    let storefront = shape(&by_name("storefront"));
    assert_eq!(
        storefront,
        json!({
            "name": "storefront", "env": "dev", "kind": "endpoint", "engine": "unknown",
            "engine_version": "unknown", "status": "unknown", "cluster_mode": false,
            "auth": "none", "tls": true,
            "endpoint": {"host": "storefront-dev-x1y2.serverless.euw1.cache.amazonaws.com", "port": 6379},
            "shards": [{"id": "0001", "nodes": [{
                "id": "storefront-dev-x1y2.serverless.euw1.cache.amazonaws.com", "role": "unknown",
                "host": "storefront-dev-x1y2.serverless.euw1.cache.amazonaws.com", "port": 6379
            }]}]
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_parameters_round_trip_and_refuse_overwrite() {
    let Some(moto) = Moto::start() else { return };
    let plane = plane(&moto);
    let lock = || {
        put(
            "/cachedeck/locks/dev/jobs-valkey",
            ParameterType::String,
            ParameterValue::Plain("holder=ops@bastion".into()),
        )
    };
    assert_eq!(plane.put_parameter(lock()).await, Ok(1));
    assert_eq!(
        plane.put_parameter(lock()).await,
        Err(ControlPlaneError::AlreadyExists {
            what: "parameter /cachedeck/locks/dev/jobs-valkey".into()
        })
    );

    plane
        .put_parameter(put(
            "/cachedeck/secrets/token",
            ParameterType::SecureString,
            ParameterValue::Secret(SecretString::from(TOKEN)),
        ))
        .await
        .expect("put secure string");
    let secret = plane
        .get_parameter("/cachedeck/secrets/token")
        .await
        .expect("get works")
        .expect("parameter exists");
    assert!(matches!(secret.value, ParameterValue::Secret(_)));
    assert_eq!(secret.kind, ParameterType::SecureString);
    assert_eq!(secret.value.expose(), TOKEN);
    assert!(!format!("{secret:?}").contains(TOKEN));

    let all = plane
        .get_parameters_by_path("/cachedeck")
        .await
        .expect("by path");
    let mut names: Vec<&str> = all.iter().map(|p| p.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "/cachedeck/locks/dev/jobs-valkey",
            "/cachedeck/secrets/token"
        ]
    );

    plane
        .delete_parameter("/cachedeck/locks/dev/jobs-valkey")
        .await
        .expect("delete");
    assert_eq!(
        plane
            .get_parameter("/cachedeck/locks/dev/jobs-valkey")
            .await
            .map(|p| p.is_none()),
        Ok(true)
    );
    assert_eq!(
        plane
            .delete_parameter("/cachedeck/locks/dev/jobs-valkey")
            .await,
        Err(ControlPlaneError::NotFound {
            what: "parameter /cachedeck/locks/dev/jobs-valkey".into()
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_labels_move_between_versions_and_history_lists_them() {
    let Some(moto) = Moto::start() else { return };
    let plane = plane(&moto);
    let name = "/paperwurks/dev/redis/url";
    let labels = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(matches!(
        plane
            .label_parameter_version(name, None, &labels(&["x"]))
            .await,
        Err(ControlPlaneError::NotFound { .. })
    ));
    for (i, value) in ["rediss://:a@h:6379/0", "rediss://:b@h:6379/0"]
        .iter()
        .enumerate()
    {
        let mut p = put(
            name,
            ParameterType::SecureString,
            ParameterValue::Secret(SecretString::from(*value)),
        );
        p.overwrite = i > 0;
        assert_eq!(plane.put_parameter(p).await, Ok(i as i64 + 1));
    }
    // The newest version by default; labels breaking the rules come back, unattached.
    let out = plane
        .label_parameter_version(
            name,
            None,
            &labels(&["cachedeck-current", "run-20261201T1700Z", "9lives", "ssm-x"]),
        )
        .await
        .expect("label");
    assert_eq!(out.version, 2);
    assert_eq!(out.invalid_labels, labels(&["9lives", "ssm-x"]));
    plane
        .label_parameter_version(name, Some(1), &labels(&["cachedeck-previous"]))
        .await
        .expect("label version 1");
    // A label moves: `cachedeck-current` onto version 1 leaves version 2.
    plane
        .label_parameter_version(name, Some(1), &labels(&["cachedeck-current"]))
        .await
        .expect("move");
    let history = plane.get_parameter_history(name).await.expect("history");
    let shape: Vec<(i64, Vec<String>)> = history
        .iter()
        .map(|v| {
            let mut l = v.labels.clone();
            l.sort();
            (v.version, l)
        })
        .collect();
    assert_eq!(
        shape,
        [
            (1, labels(&["cachedeck-current", "cachedeck-previous"])),
            (2, labels(&["run-20261201T1700Z"])),
        ]
    );
    assert!(history.iter().all(|v| v.last_modified.is_some()));
    assert!(matches!(
        plane
            .label_parameter_version(name, Some(7), &labels(&["x"]))
            .await,
        Err(ControlPlaneError::NotFound { .. })
    ));
    let ten: Vec<String> = (0..10).map(|i| format!("l{i}")).collect();
    plane
        .label_parameter_version(name, Some(2), &ten[..9])
        .await
        .expect("nine more labels");
    assert!(matches!(
        plane
            .label_parameter_version(name, Some(2), &ten[9..])
            .await,
        Err(ControlPlaneError::QuotaExceeded { .. })
    ));
    assert!(matches!(
        plane.get_parameter_history("/no/such/parameter").await,
        Err(ControlPlaneError::NotFound { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoint_is_one_line() {
    // A loopback port nothing listens on any more: the dispatch fails fast.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!(
            "http://127.0.0.1:{}",
            listener.local_addr().expect("addr").port()
        )
    };
    let text = format!(
        "[environments.dev]\nprovider = \"aws\"\nregion = \"eu-west-1\"\nendpoint_url = \"{dead}\"\n"
    );
    let config = Config::parse(Path::new("dead.toml"), &text).expect("parses");
    let cfg = config.environments["dev"].clone();
    let region = aws_sdk_ssm::config::Region::new("eu-west-1");
    let creds = aws_sdk_ssm::config::Credentials::new("testing", "testing", None, None, "moto");
    let behavior = aws_sdk_ssm::config::BehaviorVersion::latest();
    let ssm = aws_sdk_ssm::Client::from_conf(
        aws_sdk_ssm::Config::builder()
            .behavior_version(behavior)
            .region(region)
            .endpoint_url(&dead)
            .credentials_provider(creds)
            .build(),
    );
    let ec = aws_sdk_elasticache::Client::from_conf(
        aws_sdk_elasticache::Config::builder()
            .behavior_version(behavior)
            .build(),
    );
    let ecs = aws_sdk_ecs::Client::from_conf(
        aws_sdk_ecs::Config::builder()
            .behavior_version(behavior)
            .build(),
    );
    let plane = AwsControlPlane::from_clients(
        cfg.environment("dev", "dead.toml"),
        cfg,
        Settings::default(),
        ec,
        ecs,
        ssm,
    );
    let err = plane
        .get_parameter("/x")
        .await
        .expect_err("nothing listens");
    assert!(
        matches!(err, ControlPlaneError::Unreachable { .. }),
        "{err:?}"
    );
    let line = err.to_string();
    assert!(
        line.starts_with(&format!("cannot reach {dead} (")),
        "{line}"
    );
    assert!(line.contains("Connection refused"), "{line}");
    assert!(
        line.ends_with("); check the region, endpoint_url and network"),
        "{line}"
    );
}

/// `cachedeck caches` through the real binary: `AwsControlPlane::connect` with a profile
/// from the shared credentials file and the endpoint override, beside an environment whose
/// profile does not exist (one line for it; the other still lists its caches).
#[test]
fn caches_command_discovers_through_connect_and_reports_a_broken_profile() {
    let Some(moto) = Moto::start() else { return };
    moto.run_fixture("moto_estate.py");
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
discovery = {{ kinds = ["replication-group", "cache-cluster"], name_prefixes = ["jobs-", "solo-"] }}

[environments.broken]
provider = "aws"
profile = "no-such-profile"
region = "eu-west-1"
endpoint_url = "{endpoint}"
"#,
        endpoint = moto.endpoint
    );
    std::fs::write(path("config.toml"), config).expect("write config");

    let out = assert_cmd::Command::cargo_bin("cachedeck")
        .expect("binary")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("CACHEDECK_CONFIG_DIR", path("config"))
        .env("CACHEDECK_STATE_DIR", path("state"))
        .env("CACHEDECK_SANDBOX_DIR", path("sandbox"))
        .env("AWS_CONFIG_FILE", path("aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", path("aws-credentials"))
        // Nothing may leave loopback: no instance metadata service.
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .args(["--config"])
        .arg(path("config.toml"))
        .args(["caches", "--output", "json"])
        .timeout(Duration::from_secs(120))
        .output()
        .expect("run cachedeck");
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let names: Vec<&str> = json["caches"]
        .as_array()
        .map(|all| all.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        names,
        ["jobs-valkey", "solo-redis"],
        "prefixes and kinds filter"
    );
    assert_eq!(json["caches"][0]["engine_version"], "8.0.1");
    let errors = json["errors"].as_array().expect("errors array");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["env"], "broken");
    let line = errors[0]["error"].as_str().unwrap_or_default();
    assert_eq!(
        line,
        format!(
            "profile `no-such-profile` not found in {} (or {}); known: moto",
            path("aws-config").display(),
            path("aws-credentials").display()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_endpoint_is_a_timeout_after_the_call_deadline() {
    // The kernel accepts the connection into the backlog; nobody ever answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let hung = format!(
        "http://127.0.0.1:{}",
        listener.local_addr().expect("addr").port()
    );
    let text = format!(
        "[environments.dev]\nprovider = \"aws\"\nregion = \"eu-west-1\"\nendpoint_url = \"{hung}\"\n"
    );
    let config = Config::parse(Path::new("hung.toml"), &text).expect("parses");
    let cfg = config.environments["dev"].clone();
    let settings = Settings {
        call_timeout: Duration::from_millis(400),
        ..Settings::default()
    };
    let behavior = aws_sdk_ssm::config::BehaviorVersion::latest();
    let ssm = aws_sdk_ssm::Client::from_conf(
        aws_sdk_ssm::Config::builder()
            .behavior_version(behavior)
            .region(aws_sdk_ssm::config::Region::new("eu-west-1"))
            .endpoint_url(&hung)
            .credentials_provider(aws_sdk_ssm::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .build(),
    );
    let ec = aws_sdk_elasticache::Client::from_conf(
        aws_sdk_elasticache::Config::builder()
            .behavior_version(behavior)
            .build(),
    );
    let ecs = aws_sdk_ecs::Client::from_conf(
        aws_sdk_ecs::Config::builder()
            .behavior_version(behavior)
            .build(),
    );
    let plane = AwsControlPlane::from_clients(
        cfg.environment("dev", "hung.toml"),
        cfg,
        settings,
        ec,
        ecs,
        ssm,
    );
    let started = std::time::Instant::now();
    let err = plane.get_parameter("/x").await.expect_err("nobody answers");
    assert_eq!(
        err.to_string(),
        "GetParameter timed out after 400ms; check network access to the endpoint"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(listener);
}

/// An SSO profile whose cached token has expired (and cannot be refreshed) fails before any
/// network call, with the login command as the fix. No moto needed: nothing is sent.
#[test]
fn expired_sso_profile_through_the_binary_says_how_to_log_in() {
    let home = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| home.path().join(name);
    std::fs::write(
        path("aws-config"),
        "[profile acme-sso]\nsso_session = acme\nsso_account_id = 123456789012\nsso_role_name = OnCall\nregion = eu-west-1\n\n[sso-session acme]\nsso_start_url = https://acme.awsapps.com/start\nsso_region = eu-west-1\n",
    )
    .expect("write aws config");
    // The SDK's cache file is named by the SHA-1 of the session name ("acme").
    let cache = home.path().join(".aws/sso/cache");
    std::fs::create_dir_all(&cache).expect("cache dir");
    std::fs::write(
        cache.join("293abb6b76d7791c0732cc517d38c4b5c734b87f.json"),
        r#"{"accessToken": "expired-access-token", "expiresAt": "2020-01-01T00:00:00Z", "region": "eu-west-1", "startUrl": "https://acme.awsapps.com/start"}"#,
    )
    .expect("write token");
    std::fs::write(
        path("config.toml"),
        "[environments.prod]\nprovider = \"aws\"\nprofile = \"acme-sso\"\nendpoint_url = \"http://127.0.0.1:9\"\n",
    )
    .expect("write config");
    let out = assert_cmd::Command::cargo_bin("cachedeck")
        .expect("binary")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("CACHEDECK_CONFIG_DIR", path("config"))
        .env("CACHEDECK_STATE_DIR", path("state"))
        .env("CACHEDECK_SANDBOX_DIR", path("sandbox"))
        .env("AWS_CONFIG_FILE", path("aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", path("aws-credentials"))
        // Belt and braces: every AWS client (SSO portal included) points at a closed
        // loopback port, and there is no instance metadata.
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .args(["--config"])
        .arg(path("config.toml"))
        .args(["caches", "--output", "json"])
        .timeout(Duration::from_secs(120))
        .output()
        .expect("run cachedeck");
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(
        json["errors"],
        json!([{
            "env": "prod",
            "error": "no usable AWS credentials (the SSO session has expired); run `aws sso login --profile acme-sso`"
        }])
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("expired-access-token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_snapshots_and_a_restore_at_the_wire() {
    use cachedeck::controlplane::{RestoreRequest, SnapshotQuery, SnapshotTarget};
    let Some(moto) = Moto::start() else { return };
    moto.run_fixture("moto_estate.py");
    let plane = plane(&moto);

    let made = plane
        .create_snapshot(
            "jobs-before-deploy",
            SnapshotTarget::Node("jobs-valkey-002".into()),
        )
        .await
        .expect("CreateSnapshot");
    assert_eq!(made.name, "jobs-before-deploy");
    assert!(!made.serverless);

    let listed = plane
        .describe_snapshots(SnapshotQuery {
            name: Some("jobs-before-deploy".into()),
            ..Default::default()
        })
        .await
        .expect("DescribeSnapshots");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].name, "jobs-before-deploy");
    assert!(
        matches!(listed[0].status.as_str(), "creating" | "available"),
        "{listed:?}"
    );

    let group = plane
        .create_snapshot("jobs-group", SnapshotTarget::Group("jobs-valkey".into()))
        .await
        .expect("CreateSnapshot at group level");
    assert_eq!(group.name, "jobs-group");
    let all = plane
        .describe_snapshots(SnapshotQuery::default())
        .await
        .expect("DescribeSnapshots, all pages");
    let mut names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["jobs-before-deploy", "jobs-group"]);

    plane
        .restore_snapshot(RestoreRequest {
            new_id: "jobs-restored".into(),
            source: "jobs-valkey".into(),
            snapshot: "jobs-before-deploy".into(),
            snapshot_arn: None,
            serverless: false,
            description: "restore test".into(),
            engine: Some("valkey".into()),
            engine_version: Some("8.0".into()),
            node_type: Some("cache.t4g.micro".into()),
            shards: Some(1),
            replicas_per_shard: Some(1),
            tls: true,
            auth_token: Some(SecretString::from(TOKEN)),
        })
        .await
        .expect("CreateReplicationGroup with SnapshotName");
    let found = plane.discover().await.expect("discover");
    assert!(
        found.caches.iter().any(|c| c.name == "jobs-restored"),
        "{:?}",
        found.caches.iter().map(|c| &c.name).collect::<Vec<_>>()
    );

    plane
        .delete_snapshot("jobs-group", false)
        .await
        .expect("DeleteSnapshot");
    let gone = plane
        .describe_snapshots(SnapshotQuery {
            name: Some("jobs-group".into()),
            ..Default::default()
        })
        .await;
    assert!(
        matches!(&gone, Err(ControlPlaneError::NotFound { .. }))
            || gone.as_ref().is_ok_and(|v| v.is_empty()),
        "{gone:?}"
    );

    // Cutover's parameter calls: versions read back by number and label, labels moved.
    use cachedeck::controlplane::ParameterSelector;
    let url = "/paperwurks/dev/redis/url";
    let secure = |v: &str| ParameterValue::Secret(SecretString::from(v.to_string()));
    let first = format!("rediss://:{TOKEN}@old.example:6379/0");
    let second = format!("rediss://:{TOKEN}@new.example:6380/0");
    assert_eq!(
        plane
            .put_parameter(put(url, ParameterType::SecureString, secure(&first)))
            .await,
        Ok(1)
    );
    let mut again = put(url, ParameterType::SecureString, secure(&second));
    again.overwrite = true;
    assert_eq!(plane.put_parameter(again).await, Ok(2));
    let labels = |l: &str| vec![l.to_string()];
    plane
        .label_parameter_version(url, Some(1), &labels("cachedeck-before-x"))
        .await
        .expect("LabelParameterVersion");
    plane
        .label_parameter_version(url, Some(2), &labels("cachedeck-cutover-x"))
        .await
        .expect("LabelParameterVersion");
    let before = plane
        .get_parameter_at(url, &ParameterSelector::Label("cachedeck-before-x".into()))
        .await
        .expect("GetParameter name:label")
        .expect("the label is on version 1");
    assert_eq!((before.name.as_str(), before.version), (url, 1));
    assert_eq!(before.kind, ParameterType::SecureString);
    assert_eq!(before.value.expose(), first);
    let by_number = plane
        .get_parameter_at(url, &ParameterSelector::Version(2))
        .await
        .expect("GetParameter name:2")
        .expect("version 2");
    assert_eq!(by_number.value.expose(), second);
    assert!(matches!(
        plane
            .get_parameter_at(url, &ParameterSelector::Version(7))
            .await,
        Ok(None)
    ));
    // Moving a label: it leaves version 1.
    plane
        .label_parameter_version(url, Some(2), &labels("cachedeck-before-x"))
        .await
        .expect("move the label");
    let moved = plane
        .get_parameter_at(url, &ParameterSelector::Label("cachedeck-before-x".into()))
        .await
        .expect("GetParameter name:label")
        .expect("label on version 2");
    assert_eq!(moved.version, 2);
    assert!(matches!(
        plane
            .get_parameter_at(url, &ParameterSelector::Label("cachedeck-nothing".into()))
            .await,
        Ok(None)
    ));
}

/// Seed 004: a self-managed Valkey is reached by its Cloud Map name, which stays while task
/// addresses change; a registry that no longer resolves falls back to the task address with
/// the reason. The names are looked up once per plane (they cannot change).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_ecs_services_are_reached_by_their_cloud_map_names() {
    let Some(moto) = Moto::start() else { return };
    let made = moto.run_fixture("moto_cloudmap.py");
    let text = format!(
        r#"
[environments.dev]
provider = "aws"
region = "eu-west-1"
endpoint_url = "{endpoint}"

[environments.dev.discovery]
kinds = ["ecs-service"]

[[environments.dev.ecs]]
cluster = "trigpointing-cluster"
container = "valkey"
"#,
        endpoint = moto.endpoint
    );
    let plane = plane_with(&moto, &text);

    let found = plane
        .discover()
        .await
        .expect("discovery works against moto");
    let by_name = |name: &str| {
        found
            .caches
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("{name} discovered: {:?}", found.caches))
    };
    let named = by_name("trigpointing-valkey");
    let endpoint = named.endpoint.as_ref().expect("an endpoint");
    assert_eq!(
        (endpoint.host.as_str(), endpoint.port),
        ("valkey.trigpointing.local", 6379)
    );
    assert!(
        named
            .notes
            .contains(&"endpoint from Cloud Map: valkey.trigpointing.local".to_string()),
        "{:?}",
        named.notes
    );
    let task_id = made["tasks"]["trigpointing-valkey"]
        .as_str()
        .expect("task id");
    let task = named.shards[0]
        .nodes
        .iter()
        .find(|n| n.id == task_id)
        .unwrap_or_else(|| panic!("task {task_id} is a node: {:?}", named.shards));
    assert!(
        task.host.starts_with("10."),
        "nodes keep task addresses: {task:?}"
    );

    let stale = by_name("stale-valkey");
    let endpoint = stale.endpoint.as_ref().expect("an endpoint");
    assert!(
        stale.shards[0]
            .nodes
            .iter()
            .any(|n| n.host == endpoint.host),
        "the fallback is a task's address: {endpoint:?}"
    );
    let note = stale
        .notes
        .iter()
        .find(|n| n.starts_with("service-discovery name unknown ("))
        .unwrap_or_else(|| panic!("{:?}", stale.notes));
    assert!(
        note.contains("ServiceNotFound")
            && note.ends_with(&format!(
                "using task address {}, which changes with every deployment",
                endpoint.host
            )),
        "{note}"
    );

    // A second discovery answers the same (the name is kept, the failure asked again).
    let again = plane.discover().await.expect("second discovery");
    let named_again = again
        .caches
        .iter()
        .find(|c| c.name == "trigpointing-valkey")
        .expect("found again");
    assert_eq!(named_again.endpoint, named.endpoint);
}
