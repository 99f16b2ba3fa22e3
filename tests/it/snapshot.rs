//! `snapshot` and `restore` end to end through the binary against one isolated sandbox: keys
//! written just before the snapshot are read back from the restored nodes directly (not
//! through cachedeck's report), and repeating a snapshot name or a restore target is refused
//! before any second call.

use crate::harness::sandbox::Sandbox;
use cachedeck::controlplane::{ControlPlane, SnapshotQuery};
use redis::AsyncCommands;

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn step<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no step {id} in {report}"))
}

/// A plain connection to a sandbox node, logged in with the password in `parameter`.
async fn node(
    sandbox: &Sandbox,
    port: u16,
    user: Option<&str>,
    parameter: Option<&str>,
) -> redis::aio::MultiplexedConnection {
    let password = parameter.map(|p| {
        sandbox
            .params()
            .get(p)
            .expect("read parameter")
            .expect("parameter exists")
            .value
            .expose()
            .to_string()
    });
    let mut settings = redis::RedisConnectionInfo::default();
    if let Some(user) = user {
        settings = settings.set_username(user);
    }
    if let Some(p) = &password {
        settings = settings.set_password(p);
    }
    let info = redis::IntoConnectionInfo::into_connection_info(format!("redis://127.0.0.1:{port}"))
        .expect("url")
        .set_redis_settings(settings);
    redis::Client::open(info)
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to node")
}

fn run(sandbox: &Sandbox, args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let out = sandbox
        .cachedeck()
        .args(["run"])
        .args(args)
        .args(["--yes", "--output", "json"])
        .output()
        .expect("run");
    (out.status.code(), json(&out))
}

/// WAIT until `replicas` replicas hold every write so far (snapshots are taken on a replica).
async fn wait_replicas(conn: &mut redis::aio::MultiplexedConnection, replicas: i64) {
    let _: i64 = redis::cmd("WAIT")
        .arg(replicas)
        .arg(10_000)
        .query_async(conn)
        .await
        .expect("WAIT");
}

/// `run` of `runbook` on `cache` of `env`, with each of `params` as a `--param`.
fn run_on(
    sandbox: &Sandbox,
    runbook: &str,
    env: &str,
    cache: &str,
    params: &[&str],
) -> (Option<i32>, serde_json::Value) {
    let mut args = vec![runbook, "--env", env, "--cache", cache];
    for p in params {
        args.extend(["--param", p]);
    }
    run(sandbox, &args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_restore_and_verify_each_kind_of_cache() {
    let sandbox = Sandbox::up(300);
    let state = sandbox.state();
    let orders = state
        .cache("sandbox-dev", "orders")
        .expect("orders")
        .clone();
    let token_param = orders
        .password_parameter
        .clone()
        .expect("orders has a token");

    // Keys written just before the snapshot, of several types, one with a TTL.
    let primary = orders.shards[0].nodes[0].port;
    let mut conn = node(&sandbox, primary, None, Some(&token_param)).await;
    for i in 0..50 {
        let _: () = conn
            .set(format!("snaptest:{i}"), format!("value-{i}"))
            .await
            .expect("SET");
    }
    let _: () = conn
        .hset_multiple("snaptest:hash", &[("a", "1"), ("b", "2")])
        .await
        .expect("HSET");
    let _: () = conn
        .rpush("snaptest:list", &["x", "y", "z"])
        .await
        .expect("RPUSH");
    let _: () = conn
        .set_ex("snaptest:ttl", "short-lived", 3600)
        .await
        .expect("SETEX");
    // The snapshot is taken on a replica: let the writes reach every replica first.
    wait_replicas(&mut conn, 2).await;

    let (code, report) = run_on(
        &sandbox,
        "snapshot",
        "sandbox-dev",
        "orders",
        &["name=Before-Deploy", "poll=200ms"],
    );
    assert_eq!(code, Some(0), "{report}");
    let pre = &step(&report, "preflight")["outputs"];
    assert_eq!(pre["name"], "before-deploy", "AWS lowercases names");
    assert_eq!(pre["level"], "node");
    assert_ne!(
        pre["node"], "orders-001",
        "the snapshot is taken on a replica"
    );
    let snap = &step(&report, "snapshot")["outputs"];
    assert_eq!(snap["status"], "available");
    let keys = snap["keys"].as_i64().expect("keys");
    assert!(keys > 54, "{snap}");
    assert!(snap["sampled"].as_i64().expect("sampled") > 0, "{snap}");
    assert!(snap["size_bytes"].as_i64().expect("size") > 0, "{snap}");

    // The store lists it, AWS-shaped.
    let listed = sandbox
        .plane("sandbox-dev")
        .describe_snapshots(SnapshotQuery {
            cache: Some("orders".into()),
            ..Default::default()
        })
        .await
        .expect("describe");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "before-deploy");
    assert_eq!(listed[0].source, "manual");
    assert_eq!(listed[0].shard_count, Some(1));

    // The same name again is refused before any call.
    let (code, report) = run_on(
        &sandbox,
        "snapshot",
        "sandbox-dev",
        "orders",
        &["name=before-deploy"],
    );
    assert_eq!(code, Some(1), "{report}");
    assert!(
        report["error"]
            .as_str()
            .is_some_and(|e| e.contains("already exists")),
        "{report}"
    );

    // A token source restored without a token parameter, or with one that is not a
    // SecureString, is refused in the preflight, before the confirmation and any call.
    let plain = "/orders/dev/plain/auth-token";
    sandbox
        .plane("sandbox-dev")
        .put_parameter(cachedeck::controlplane::PutParameter {
            name: plain.into(),
            kind: cachedeck::controlplane::ParameterType::String,
            value: cachedeck::controlplane::ParameterValue::Plain("Abcdefgh12345678".into()),
            overwrite: true,
            description: None,
        })
        .await
        .expect("put a String parameter");
    for (extra, says) in [
        (None, "needs one: pass --param auth_token_parameter="),
        (Some(plain), "is not a SecureString"),
    ] {
        let mut params = vec!["snapshot=before-deploy", "target=orders-refused"];
        let given = extra.map(|p| format!("auth_token_parameter={p}"));
        if let Some(g) = &given {
            params.push(g.as_str());
        }
        let (code, report) = run_on(&sandbox, "restore", "sandbox-dev", "orders", &params);
        assert_eq!(code, Some(1), "{report}");
        assert_eq!(step(&report, "preflight")["state"], "failed", "{report}");
        assert!(
            report["error"].as_str().is_some_and(|e| e.contains(says)),
            "{report}"
        );
        let steps = report["steps"].as_array().expect("steps");
        assert!(
            steps.iter().all(|s| s["id"] == "preflight"),
            "no step after the preflight ran: {report}"
        );
    }

    // Restore into a new group with its own token, then verify.
    let new_token = "/orders/dev/restored/auth-token";
    let (code, report) = run_on(
        &sandbox,
        "restore",
        "sandbox-dev",
        "orders",
        &[
            "snapshot=before-deploy",
            "target=orders-restored",
            &format!("auth_token_parameter={new_token}"),
            "poll=200ms",
        ],
    );
    assert_eq!(code, Some(0), "{report}");
    let verify = &step(&report, "verify")["outputs"];
    assert_eq!(verify["verified"], true, "{verify}");
    assert_eq!(verify["missing"], 0);
    assert_eq!(verify["different"], 0);
    assert_eq!(verify["keys_restored"].as_i64(), Some(keys), "{verify}");

    // Read the restored nodes directly: every node, primary and replicas.
    let state = sandbox.state();
    let restored = state
        .cache("sandbox-dev", "orders-restored")
        .expect("restored group in the sandbox state");
    assert_eq!(restored.shards[0].nodes.len(), orders.shards[0].nodes.len());
    // The replicas loaded the snapshot's RDB themselves and caught up by a partial resync
    // (the RDB, saved on a replica, carries the replication id and offset).
    for n in restored.shards[0].nodes.iter().skip(1) {
        let log = std::fs::read_to_string(n.dir.join("valkey.log")).unwrap_or_default();
        assert!(
            log.contains("Successful partial resynchronization"),
            "replica {} did a full sync:\n{log}",
            n.id
        );
    }
    for n in &restored.shards[0].nodes {
        let mut conn = node(&sandbox, n.port, None, Some(new_token)).await;
        let v: Option<String> = conn.get("snaptest:49").await.expect("GET");
        assert_eq!(v.as_deref(), Some("value-49"), "node {}", n.id);
        let h: std::collections::BTreeMap<String, String> =
            conn.hgetall("snaptest:hash").await.expect("HGETALL");
        assert_eq!(h.get("b").map(String::as_str), Some("2"));
        let l: Vec<String> = conn.lrange("snaptest:list", 0, -1).await.expect("LRANGE");
        assert_eq!(l, ["x", "y", "z"]);
        let ttl: i64 = conn.ttl("snaptest:ttl").await.expect("TTL");
        assert!(ttl > 0, "the TTL survived the restore");
    }
    // A new, discoverable cache with a TLS primary endpoint.
    let found = sandbox
        .plane("sandbox-dev")
        .discover()
        .await
        .expect("discover");
    let cache = found
        .caches
        .iter()
        .find(|c| c.name == "orders-restored")
        .expect("discovered");
    assert_eq!(cache.status, "available");
    assert!(cache.endpoint.as_ref().is_some_and(|e| e.tls), "{cache:?}");

    // CreateReplicationGroup answers at once, as AWS does: the group is `creating` (and
    // discoverable) until the endpoint daemon has started its nodes, then `available`.
    let plane = sandbox.plane("sandbox-dev");
    plane
        .restore_snapshot(cachedeck::controlplane::RestoreRequest {
            new_id: "orders-accepted".into(),
            source: "orders".into(),
            snapshot: "before-deploy".into(),
            snapshot_arn: None,
            serverless: false,
            description: "accepted at once".into(),
            engine: None,
            engine_version: None,
            node_type: None,
            shards: Some(1),
            replicas_per_shard: Some(1),
            tls: true,
            auth_token: Some("accepted-token-0123456789abcdef".to_string().into()),
        })
        .await
        .expect("CreateReplicationGroup");
    let status_of = |found: &cachedeck::controlplane::Discovery| {
        found
            .caches
            .iter()
            .find(|c| c.name == "orders-accepted")
            .map(|c| c.status.clone())
    };
    let first = plane.discover().await.expect("discover");
    assert_eq!(status_of(&first).as_deref(), Some("creating"));
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let found = plane.discover().await.expect("discover");
        match status_of(&found).as_deref() {
            Some("available") => break,
            Some("creating") if std::time::Instant::now() < until => {}
            other => panic!("orders-accepted: {other:?}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let accepted = sandbox.state();
    let accepted = accepted
        .cache("sandbox-dev", "orders-accepted")
        .expect("recorded");
    assert_eq!(accepted.shards[0].nodes.len(), 2);
    for n in &accepted.shards[0].nodes {
        let mut c = node(
            &sandbox,
            n.port,
            None,
            accepted.password_parameter.as_deref(),
        )
        .await;
        let got: Option<String> = c.get("snaptest:7").await.expect("GET");
        assert_eq!(got.as_deref(), Some("value-7"), "node {}", n.id);
    }

    // Writes while the snapshot is taken: a key rewritten between the save's fork and its
    // read is reported as changed during the snapshot, never as a mismatch on restore.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut busy = node(&sandbox, primary, None, Some(&token_param)).await;
    let writer = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut round = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for i in 0..100 {
                    let _: () = busy.set(format!("busy:{i}"), round).await.expect("SET");
                }
                round += 1;
            }
            round
        }
    });
    let (code, report) = run_on(
        &sandbox,
        "snapshot",
        "sandbox-dev",
        "orders",
        &["name=while-busy", "poll=200ms"],
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let rounds = writer.await.expect("writer");
    assert_eq!(code, Some(0), "{report}");
    assert!(
        rounds > 2,
        "the writes ran through the snapshot ({rounds} rounds)"
    );
    let changed = step(&report, "snapshot")["outputs"]["changed_during_snapshot"]
        .as_i64()
        .expect("changed");
    assert!(changed > 0, "{report}");
    // The node's write tracking names the keys written: the rest of the sample is checked.
    let sampled = step(&report, "snapshot")["outputs"]["sampled"]
        .as_i64()
        .expect("sampled");
    assert!(
        changed < sampled,
        "{changed} of {sampled} sampled keys changed"
    );
    let (code, report) = run_on(
        &sandbox,
        "restore",
        "sandbox-dev",
        "orders",
        &[
            "snapshot=while-busy",
            "target=orders-busy",
            "auth_token_parameter=/orders/dev/busy/auth-token",
            "poll=200ms",
        ],
    );
    assert_eq!(code, Some(0), "verified despite the writes: {report}");
    let verify = &step(&report, "verify")["outputs"];
    assert_eq!(verify["different"].as_i64(), Some(0), "{verify}");
    assert_eq!(verify["changed_during_snapshot"].as_i64(), Some(changed));

    // A second restore into the same id is refused before any create.
    let (code, report) = run_on(
        &sandbox,
        "restore",
        "sandbox-dev",
        "orders",
        &[
            "snapshot=before-deploy",
            "target=orders-restored",
            &format!("auth_token_parameter={new_token}"),
        ],
    );
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(step(&report, "preflight")["state"], "failed", "{report}");

    // The 3-shard cluster: a group-level snapshot, restored with the same slot layout.
    let paperwurks = state
        .cache("sandbox-dev", "paperwurks")
        .expect("paperwurks")
        .clone();
    let (code, report) = run_on(
        &sandbox,
        "snapshot",
        "sandbox-dev",
        "paperwurks",
        &["name=cluster-one", "poll=200ms"],
    );
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(step(&report, "preflight")["outputs"]["level"], "group");
    let cluster_keys = step(&report, "snapshot")["outputs"]["keys"]
        .as_i64()
        .expect("keys");
    let (code, report) = run_on(
        &sandbox,
        "restore",
        "sandbox-dev",
        "paperwurks",
        &[
            "snapshot=cluster-one",
            "target=paperwurks-copy",
            "auth_token_parameter=/paperwurks/dev/copy/auth-token",
            "poll=200ms",
        ],
    );
    assert_eq!(code, Some(0), "{report}");
    let verify = &step(&report, "verify")["outputs"];
    assert_eq!(verify["verified"], true, "{verify}");
    assert_eq!(verify["keys_restored"].as_i64(), Some(cluster_keys));
    let state = sandbox.state();
    let copy = state
        .cache("sandbox-dev", "paperwurks-copy")
        .expect("restored cluster");
    assert_eq!(copy.shards.len(), 3);
    for (old, new) in paperwurks.shards.iter().zip(&copy.shards) {
        assert_eq!(old.slots, new.slots, "same slot layout");
        let mut conn = node(
            &sandbox,
            new.nodes[0].port,
            None,
            Some("/paperwurks/dev/copy/auth-token"),
        )
        .await;
        let mut old_conn = node(
            &sandbox,
            old.nodes[0].port,
            None,
            paperwurks.password_parameter.as_deref(),
        )
        .await;
        let n: i64 = redis::cmd("DBSIZE")
            .query_async(&mut conn)
            .await
            .expect("DBSIZE");
        let m: i64 = redis::cmd("DBSIZE")
            .query_async(&mut old_conn)
            .await
            .expect("DBSIZE");
        assert_eq!(n, m, "shard {} holds the source shard's keys", new.id);
        let info: String = redis::cmd("CLUSTER")
            .arg("INFO")
            .query_async(&mut conn)
            .await
            .expect("CLUSTER INFO");
        assert!(info.contains("cluster_state:ok"), "{info}");
    }

    // The serverless cache: CreateServerlessCacheSnapshot, restored with the same user.
    let storefront = state
        .cache("sandbox-dev", "storefront")
        .expect("storefront")
        .clone();
    let mut conn = node(
        &sandbox,
        storefront.shards[0].nodes[0].port,
        storefront.username.as_deref(),
        storefront.password_parameter.as_deref(),
    )
    .await;
    let _: () = conn
        .set("product:snaptest", "in-the-snapshot")
        .await
        .expect("SET");
    let (code, report) = run_on(
        &sandbox,
        "snapshot",
        "sandbox-dev",
        "storefront",
        &["name=sf-one", "poll=200ms"],
    );
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(step(&report, "preflight")["outputs"]["level"], "serverless");
    assert_eq!(step(&report, "preflight")["outputs"]["limit"], 24);
    let (code, report) = run_on(
        &sandbox,
        "restore",
        "sandbox-dev",
        "storefront",
        &["snapshot=sf-one", "target=storefront-copy", "poll=200ms"],
    );
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(step(&report, "verify")["outputs"]["verified"], true);
    let state = sandbox.state();
    let sf = state
        .cache("sandbox-dev", "storefront-copy")
        .expect("restored serverless");
    let mut conn = node(
        &sandbox,
        sf.shards[0].nodes[0].port,
        storefront.username.as_deref(),
        storefront.password_parameter.as_deref(),
    )
    .await;
    let v: Option<String> = conn.get("product:snaptest").await.expect("GET");
    assert_eq!(v.as_deref(), Some("in-the-snapshot"));

    // Cutover: storefront's parameters (seed 001's endpoint/port, and a URL SecureString in
    // seed 002's shape) now name the copy; then rollback puts the old versions back.
    let store = sandbox.params();
    let sf_endpoint = "/storefront-dev/redis/endpoint";
    let sf_port = "/storefront-dev/redis/port";
    let sf_url = "/storefront-dev/redis/url";
    let password = store
        .get(
            storefront
                .password_parameter
                .as_deref()
                .expect("password parameter"),
        )
        .expect("read")
        .expect("password")
        .value
        .expose()
        .to_string();
    let src = storefront.endpoint.clone().expect("source endpoint");
    let old_url = format!(
        "rediss://{}:{password}@{}:{}/3?ssl_cert_reqs=required",
        storefront.username.as_deref().expect("user"),
        src.host,
        src.port
    );
    cachedeck::sandbox::params::put_value(&store, sf_url, &old_url, true).expect("seed URL");
    let read = |name: &str| store.get(name).expect("read").expect("parameter exists");
    let before: Vec<(i64, String)> = [sf_endpoint, sf_port, sf_url]
        .iter()
        .map(|n| {
            let p = read(n);
            (p.version, p.value.expose().to_string())
        })
        .collect();
    let cut_args = [
        "--param",
        "restored=storefront-copy",
        "--param",
        "endpoint_parameter=/storefront-dev/redis/endpoint",
        "--param",
        "port_parameter=/storefront-dev/redis/port",
        "--param",
        "url_parameter=/storefront-dev/redis/url",
    ];
    let out = sandbox
        .cachedeck()
        .args([
            "run",
            "cutover",
            "--env",
            "sandbox-dev",
            "--cache",
            "storefront",
        ])
        .args(cut_args)
        .args(["--yes", "--output", "json"])
        .output()
        .expect("run cutover");
    let raw = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !raw.contains(&password),
        "the password leaked into the output"
    );
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    // Every sandbox endpoint is 127.0.0.1: the endpoint parameter already holds the copy's
    // host and is only labelled; the port and the URL are written.
    assert_eq!(
        step(&report, "cutover")["outputs"]["written"],
        2,
        "{report}"
    );
    let to = sf.endpoint.clone().expect("copy endpoint");
    assert_eq!(read(sf_endpoint).value.expose(), to.host);
    assert_eq!(read(sf_port).value.expose(), to.port.to_string());
    let new_url = read(sf_url);
    assert_eq!(
        new_url.kind,
        cachedeck::controlplane::ParameterType::SecureString
    );
    assert_eq!(
        new_url.value.expose(),
        format!(
            "rediss://{}:{password}@{}:{}/3?ssl_cert_reqs=required",
            storefront.username.as_deref().expect("user"),
            to.host,
            to.port
        )
    );
    use cachedeck::controlplane::ParameterSelector;
    let labelled = |name: &str, label: &str| {
        store
            .get_at(name, &ParameterSelector::Label(label.into()))
            .expect("read")
            .map(|p| p.version)
    };
    let wrote = [0, 1, 1];
    for ((name, (version, _)), w) in [sf_endpoint, sf_port, sf_url]
        .iter()
        .zip(&before)
        .zip(wrote)
    {
        assert_eq!(
            read(name).version,
            version + w,
            "{name}: {w} new version(s)"
        );
        assert_eq!(
            labelled(name, "cachedeck-before-storefront-copy"),
            Some(*version)
        );
        assert_eq!(
            labelled(name, "cachedeck-cutover-storefront-copy"),
            Some(version + w)
        );
    }
    // The journal holds names and versions, never the URL.
    let journals = sandbox.home().join("state");
    let mut leaked = Vec::new();
    for entry in walk(&journals) {
        if std::fs::read_to_string(&entry).is_ok_and(|t| t.contains(&password)) {
            leaked.push(entry);
        }
    }
    assert!(leaked.is_empty(), "password written to {leaked:?}");

    // The cluster copy has another token: the cutover refuses before any write.
    let paper_url = read("/paperwurks/dev/redis/url");
    let (code, report) = run_on(
        &sandbox,
        "cutover",
        "sandbox-dev",
        "paperwurks",
        &["restored=paperwurks-copy"],
    );
    assert_eq!(code, Some(1), "{report}");
    assert!(
        report
            .to_string()
            .contains("does not accept the credentials"),
        "{report}"
    );
    let after = read("/paperwurks/dev/redis/url");
    assert_eq!(after.version, paper_url.version);
    assert_eq!(after.value.expose(), paper_url.value.expose());

    // Rollback: the old values and types, as new versions; a second rollback writes nothing.
    let out = sandbox
        .cachedeck()
        .args([
            "run",
            "rollback",
            "--env",
            "sandbox-dev",
            "--cache",
            "storefront",
        ])
        .args(cut_args)
        .args(["--yes", "--output", "json"])
        .output()
        .expect("run rollback");
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(
        step(&report, "rollback")["outputs"]["written"],
        2,
        "{report}"
    );
    for ((name, (version, value)), w) in [sf_endpoint, sf_port, sf_url]
        .iter()
        .zip(&before)
        .zip(wrote)
    {
        let now = read(name);
        assert_eq!(now.version, version + 2 * w, "{name}");
        assert_eq!(&now.value.expose().to_string(), value, "{name}");
        let rolled = labelled(name, "cachedeck-rollback-storefront-copy");
        assert_eq!(rolled, (w == 1).then_some(version + 2), "{name}");
    }
    assert_eq!(
        read(sf_url).kind,
        cachedeck::controlplane::ParameterType::SecureString
    );
    assert_eq!(
        read(sf_port).kind,
        cachedeck::controlplane::ParameterType::String
    );
    let out = sandbox
        .cachedeck()
        .args([
            "run",
            "rollback",
            "--env",
            "sandbox-dev",
            "--cache",
            "storefront",
        ])
        .args(cut_args)
        .args(["--yes", "--output", "json"])
        .output()
        .expect("run rollback again");
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(
        step(&report, "rollback")["outputs"]["written"],
        0,
        "{report}"
    );
    assert_eq!(read(sf_port).version, before[1].0 + 2);

    // `cachedeck snapshots` lists node and serverless snapshots alike.
    let out = sandbox
        .cachedeck()
        .args(["snapshots", "--env", "sandbox-dev", "--output", "json"])
        .output()
        .expect("snapshots");
    assert_eq!(out.status.code(), Some(0));
    let listed = json(&out);
    let mut names: Vec<(&str, &str)> = listed["snapshots"]
        .as_array()
        .expect("snapshots")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or(""),
                s["status"].as_str().unwrap_or(""),
            )
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            ("before-deploy", "available"),
            ("cluster-one", "available"),
            ("sf-one", "available"),
            ("while-busy", "available"),
        ]
    );
    let out = sandbox
        .cachedeck()
        .args(["snapshots", "--env", "sandbox-dev", "--cache", "paperwurks"])
        .output()
        .expect("snapshots table");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("cluster-one") && !text.contains("before-deploy"),
        "{text}"
    );

    // `sandbox down` removes the restored processes with the rest.
    let pids: Vec<i32> = restored.shards[0].nodes.iter().map(|n| n.pid).collect();
    sandbox.down();
    for pid in pids {
        assert!(
            !cachedeck::valkey::server::pid_alive(pid),
            "restored node {pid} still runs"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_restart_measures_what_a_deployment_and_a_crash_keep() {
    let sandbox = Sandbox::up(100);
    let before = sandbox.state();
    let ecs = before
        .cache("sandbox-dev", "valkey-ecs")
        .expect("valkey-ecs")
        .clone();
    let old_port = ecs.shards[0].nodes[0].port;
    let run_restart = |stop: &str| {
        run_on(
            &sandbox,
            "survives-restart",
            "sandbox-dev",
            "valkey-ecs",
            &["poll=200ms", stop],
        )
    };
    // A new deployment: SIGTERM, the final save, a new task on a new port.
    let (code, report) = run_restart("stop=deploy");
    assert_eq!(code, Some(0), "{report}");
    let restart = &step(&report, "restart")["outputs"];
    assert_ne!(restart["old_task"], restart["new_task"], "{restart}");
    assert!(
        restart["last_acked"].as_i64().expect("acked") > 10,
        "{restart}"
    );
    let verify = &step(&report, "verify")["outputs"];
    assert_eq!(verify["marker_ok"], true);
    assert_eq!(
        verify["lost_writes"], 0,
        "the final save keeps every ack: {verify}"
    );
    let state = sandbox.state();
    let now = state.cache("sandbox-dev", "valkey-ecs").expect("ecs");
    let new_port = now.shards[0].nodes[0].port;
    assert_ne!(new_port, old_port, "a new task address");
    assert_eq!(now.shards[0].nodes[0].dir, ecs.shards[0].nodes[0].dir);
    assert!(!cachedeck::valkey::server::pid_alive(
        ecs.shards[0].nodes[0].pid
    ));
    let service = sandbox
        .plane("sandbox-dev")
        .describe_service("sandbox-dev", "valkey-ecs")
        .await
        .expect("DescribeServices");
    assert_eq!(service.deployments.len(), 1);
    assert_eq!(
        service.primary().and_then(|d| d.rollout_state.as_deref()),
        Some("COMPLETED")
    );
    assert!(
        service.events[0].contains("has reached a steady state"),
        "{:?}",
        service.events
    );

    // A crash: the task is killed; only what the last save kept survives.
    let (code, report) = run_restart("stop=crash");
    assert_eq!(code, Some(0), "{report}");
    let restart = &step(&report, "restart")["outputs"];
    let acked = restart["last_acked"].as_i64().expect("acked");
    assert!(acked > 10, "{restart}");
    let verify = &step(&report, "verify")["outputs"];
    assert_eq!(verify["marker_ok"], true, "the marker was saved by BGSAVE");
    assert_eq!(verify["lost_writes"].as_i64(), Some(acked), "{verify}");
    assert!(verify["loss_window_ms"].as_i64().expect("window") > 0);
    // Read the new task directly: the sequence key written after the save is gone.
    let state = sandbox.state();
    let task = &state
        .cache("sandbox-dev", "valkey-ecs")
        .expect("ecs")
        .shards[0]
        .nodes[0];
    let mut conn = node(&sandbox, task.port, None, None).await;
    let seq: Option<i64> = conn
        .get(restart["seq_key"].as_str().expect("seq key"))
        .await
        .expect("GET");
    assert_eq!(seq, None);

    // A save already running (a killed run's, the server's own schedule) is waited out:
    // BGSAVE answers "already in progress" while an RDB child runs, and only a save that
    // starts after it counts. The delay keeps the first save running while the run starts.
    let saves = |info: String| -> i64 {
        info.lines()
            .find_map(|l| l.strip_prefix("rdb_saves:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("rdb_saves")
    };
    let saves_before = saves(
        redis::cmd("INFO")
            .arg("persistence")
            .query_async(&mut conn)
            .await
            .expect("INFO"),
    );
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "rdb-key-save-delay", "10000"])
        .query_async(&mut conn)
        .await
        .expect("CONFIG SET");
    let _: String = redis::cmd("BGSAVE")
        .query_async(&mut conn)
        .await
        .expect("BGSAVE");
    let (code, report) = run_on(&sandbox, "snapshot", "sandbox-dev", "valkey-ecs", &[]);
    assert_eq!(code, Some(0), "a running save is waited for: {report}");
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "rdb-key-save-delay", "0"])
        .query_async(&mut conn)
        .await
        .expect("CONFIG SET");
    let saves_after = saves(
        redis::cmd("INFO")
            .arg("persistence")
            .query_async(&mut conn)
            .await
            .expect("INFO"),
    );
    assert!(
        saves_after >= saves_before + 2,
        "the running save, then the run's own: {saves_before} -> {saves_after}"
    );

    // The ecs-service snapshot: BGSAVE, the manifest, and the RDB downloaded off the host.
    let file = sandbox.home().join("valkey-ecs.rdb");
    let download = format!("download={}", file.display());
    let (code, report) = run_on(
        &sandbox,
        "snapshot",
        "sandbox-dev",
        "valkey-ecs",
        &[&download],
    );
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(step(&report, "preflight")["outputs"]["level"], "bgsave");
    let out = &step(&report, "snapshot")["outputs"];
    assert!(out["download"]["bytes"].as_u64() > Some(0), "{out}");
    let keys: i64 = redis::cmd("DBSIZE")
        .query_async(&mut conn)
        .await
        .expect("DBSIZE");
    let data = tempfile::tempdir().expect("tempdir");
    std::fs::copy(&file, data.path().join("dump.rdb")).expect("copy");
    let fresh = crate::harness::valkey::start(
        crate::harness::valkey::ServerSpec::new()
            .dir(data.path())
            .args(["--dbfilename", "dump.rdb"]),
    );
    let mut fresh_conn = node_url(&format!("redis://127.0.0.1:{}", fresh.port())).await;
    let loaded: i64 = redis::cmd("DBSIZE")
        .query_async(&mut fresh_conn)
        .await
        .expect("DBSIZE");
    assert_eq!(loaded, keys, "a fresh server loads the downloaded RDB");
}

/// `download`: both replication forms give an RDB that a fresh valkey-server loads with the
/// same DBSIZE; a password-protected node is logged in to without the password leaking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_streams_an_rdb_that_a_fresh_server_loads() {
    use crate::harness::valkey::{ServerSpec, start};
    use secrecy::SecretString;
    let source = start(ServerSpec::new().config_line("requirepass dl-s3cret-pass"));
    let mut conn = node_url(&format!(
        "redis://:dl-s3cret-pass@127.0.0.1:{}",
        source.port()
    ))
    .await;
    let mut pipe = redis::pipe();
    for i in 0..2000 {
        pipe.cmd("SET").arg(format!("dl:{i}")).arg(i).ignore();
    }
    pipe.cmd("HSET").arg("dl:hash").arg("f").arg("v").ignore();
    let _: () = pipe.query_async(&mut conn).await.expect("write keys");
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = SecretString::from("dl-s3cret-pass");
    for (diskless, form) in [("no", "len"), ("yes", "eof")] {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("repl-diskless-sync")
            .arg(diskless)
            .query_async(&mut conn)
            .await
            .expect("CONFIG SET");
        let path = dir.path().join(format!("{form}.rdb"));
        let got = cachedeck::snapshot::rdb::download(
            "127.0.0.1",
            source.port(),
            None,
            Some(&secret),
            &path,
            std::time::Duration::from_secs(30),
            &|_, _| {},
        )
        .await
        .expect("download");
        assert_eq!(got.form, form);
        assert!(got.header.starts_with("REDIS") || got.header.starts_with("VALKEY"));
        assert_ne!(got.crc64, 0, "the checksum was checked");
        let meta = std::fs::metadata(&path).expect("file");
        assert_eq!(meta.len(), got.bytes);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        // A fresh server loads it.
        let data = tempfile::tempdir().expect("tempdir");
        std::fs::copy(&path, data.path().join("dump.rdb")).expect("copy");
        let fresh = start(
            ServerSpec::new()
                .dir(data.path())
                .args(["--dbfilename", "dump.rdb"]),
        );
        let mut fresh_conn = node_url(&format!("redis://127.0.0.1:{}", fresh.port())).await;
        let n: i64 = redis::cmd("DBSIZE")
            .query_async(&mut fresh_conn)
            .await
            .expect("DBSIZE");
        assert_eq!(n, 2001, "{form}");
    }
    // A wrong password is refused in the server's words, never echoing the password.
    let wrong = SecretString::from("not-the-password");
    let e = cachedeck::snapshot::rdb::download(
        "127.0.0.1",
        source.port(),
        None,
        Some(&wrong),
        &dir.path().join("x.rdb"),
        std::time::Duration::from_secs(5),
        &|_, _| {},
    )
    .await
    .expect_err("AUTH fails");
    assert!(
        e.contains("AUTH refused") && !e.contains("not-the-password"),
        "{e}"
    );
}

async fn node_url(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// The endpoint daemon stopped (SIGKILL) while it builds a restore, its processes started and
/// loading: the next daemon (`sandbox up` starts it again) stops the half-built processes and
/// builds the group over from the snapshot, as ElastiCache finishes a create it accepted; the
/// restore runbook, waiting all along, sees it available and verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_whose_daemon_stopped_mid_build_is_built_again() {
    let sandbox = Sandbox::up(100);
    let orders = sandbox
        .state()
        .cache("sandbox-dev", "orders")
        .expect("orders")
        .clone();
    let token_param = orders.password_parameter.clone().expect("a token");
    // Enough data that loading it takes a while: the daemon is stopped during the load.
    let mut conn = node(
        &sandbox,
        orders.shards[0].nodes[0].port,
        None,
        Some(&token_param),
    )
    .await;
    let value = "v".repeat(100);
    for chunk in 0..40 {
        let mut p = redis::pipe();
        for i in 0..10_000 {
            p.set(format!("bulk:{chunk}:{i}"), &value).ignore();
        }
        let _: () = p.query_async(&mut conn).await.expect("load");
    }
    wait_replicas(&mut conn, 2).await;
    let (code, report) = run_on(
        &sandbox,
        "snapshot",
        "sandbox-dev",
        "orders",
        &["name=mid-build", "sample=200", "poll=100ms"],
    );
    assert_eq!(code, Some(0), "{report}");

    let home = sandbox.home().to_path_buf();
    let runbook = std::thread::spawn(move || {
        crate::harness::sandbox::cachedeck(&home)
            .args([
                "run",
                "restore",
                "--env",
                "sandbox-dev",
                "--cache",
                "orders",
                "--param",
                "snapshot=mid-build",
                "--param",
                "target=rebuilt",
                "--param",
                "auth_token_parameter=/orders/dev/rebuilt/auth-token",
                "--param",
                "poll=100ms",
                "--yes",
                "--output",
                "json",
            ])
            .timeout(std::time::Duration::from_secs(180))
            .output()
            .expect("run restore")
    });
    // Wait until the daemon has started the group's processes, then stop it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let half_built = loop {
        let state = sandbox.state();
        if let Some(c) = state.cache("sandbox-dev", "rebuilt") {
            assert_eq!(
                c.status.as_deref(),
                Some("creating"),
                "built before the daemon could be stopped; load more keys"
            );
            if !c.shards.is_empty() {
                break c.clone();
            }
        }
        assert!(std::time::Instant::now() < deadline, "no build began");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    };
    let daemon = sandbox.state().daemon.expect("a daemon").pid;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("stop the daemon");
    let old: Vec<i32> = half_built
        .shards
        .iter()
        .flat_map(|s| s.nodes.iter().map(|n| n.pid))
        .collect();
    let out = sandbox
        .cachedeck()
        .args(["sandbox", "up"])
        .output()
        .expect("sandbox up");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = runbook.join().expect("runbook thread");
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(
        step(&report, "verify")["outputs"]["verified"],
        true,
        "{report}"
    );
    let rebuilt = sandbox
        .state()
        .cache("sandbox-dev", "rebuilt")
        .expect("rebuilt")
        .clone();
    assert_eq!(rebuilt.status, None, "available");
    let nodes: Vec<_> = rebuilt.shards.iter().flat_map(|s| &s.nodes).collect();
    assert_eq!(nodes.len(), 3, "one primary and two replicas, once");
    for pid in old {
        assert!(
            !cachedeck::valkey::server::pid_alive(pid)
                || !cachedeck::valkey::server::is_server_pid(pid),
            "half-built process {pid} still runs"
        );
    }
    for n in nodes {
        let mut c = node(
            &sandbox,
            n.port,
            None,
            Some("/orders/dev/rebuilt/auth-token"),
        )
        .await;
        let got: i64 = redis::cmd("DBSIZE")
            .query_async(&mut c)
            .await
            .expect("DBSIZE");
        assert!(
            got >= 400_000,
            "node {} holds the snapshot's keys: {got}",
            n.id
        );
        let v: Option<String> = c.get("bulk:39:9999").await.expect("GET");
        assert_eq!(v.as_deref(), Some(value.as_str()), "node {}", n.id);
    }
    sandbox.down();
}
