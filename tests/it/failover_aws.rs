//! `failover-test` against the AWS control plane with aws-smithy-mocks scripting
//! TestFailover and the DescribeEvents sequence, while a real primary + replica pair stands
//! in for the replication group: when TestFailover is called the test fails the pair over
//! itself (Valkey FAILOVER) and moves a loopback "primary endpoint" to the new primary, as
//! ElastiCache moves its DNS name. Also the quota (counted from the events, and AWS's own
//! TestFailoverNotAvailableFault) and the invalid-state fault.

use crate::harness::valkey::{ServerSpec, cluster_pair, raw_command, server, start};
use aws_sdk_elasticache::Client as Ec;
use aws_sdk_elasticache::operation::describe_cache_clusters::DescribeCacheClustersOutput;
use aws_sdk_elasticache::operation::describe_events::DescribeEventsOutput;
use aws_sdk_elasticache::operation::describe_replication_groups::DescribeReplicationGroupsOutput;
use aws_sdk_elasticache::operation::test_failover::{TestFailoverError, TestFailoverOutput};
use aws_sdk_elasticache::types::error::{
    InvalidReplicationGroupStateFault, TestFailoverNotAvailableFault,
};
use aws_sdk_elasticache::types::{Event, SourceType};
use aws_sdk_ssm::Client as Ssm;
use aws_sdk_ssm::operation::delete_parameter::DeleteParameterOutput;
use aws_sdk_ssm::operation::get_parameter::{GetParameterError, GetParameterOutput};
use aws_sdk_ssm::operation::put_parameter::{PutParameterError, PutParameterOutput};
use aws_sdk_ssm::types::error::{ParameterAlreadyExists, ParameterNotFound};
use aws_sdk_ssm::types::{Parameter, ParameterType};
use aws_smithy_mocks::{MockResponse, Rule, RuleMode, mock, mock_client};
use aws_smithy_types::DateTime;
use cachedeck::aws::AwsControlPlane;
use cachedeck::config::{Config, Settings};
use cachedeck::domain::{
    AuthMode, Cache, CacheKind, Credentials, Endpoint, Endpoints, Node, NodeHealth, NodeRole,
    RoleSource, Shard,
};
use cachedeck::runbook::actions::builtin;
use cachedeck::runbook::catalog;
use cachedeck::runbook::engine::{Engine, RunReport, RunRequest, Target};
use cachedeck::runbook::events::{Event as RunEvent, EventSender};
use cachedeck::runbook::validate::bind_params;
use cachedeck::valkey::connect::ConnectOptions;
use cachedeck::valkey::server::ValkeyServer;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const RG: &str = "jobs-valkey";

/// A loopback endpoint that forwards to whichever port it is told, and drops its
/// connections when it is moved (as clients of a moved DNS name see).
struct MovableEndpoint {
    port: u16,
    target: Arc<AtomicU16>,
    moved: watch::Sender<u64>,
}

impl MovableEndpoint {
    async fn start(to: u16) -> MovableEndpoint {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let target = Arc::new(AtomicU16::new(to));
        let (moved, _) = watch::channel(0u64);
        let (t, m) = (target.clone(), moved.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let to = t.load(Ordering::SeqCst);
                let mut gone = m.subscribe();
                tokio::spawn(async move {
                    let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", to)).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                        _ = gone.changed() => {}
                    }
                });
            }
        });
        MovableEndpoint {
            port,
            target,
            moved,
        }
    }

    fn move_to(&self, port: u16) {
        self.target.store(port, Ordering::SeqCst);
        self.moved.send_modify(|g| *g += 1);
    }
}

/// What the scripted control plane has been asked and has done.
#[derive(Default)]
struct Script {
    triggered: Option<OffsetDateTime>,
    promoted: Option<OffsetDateTime>,
}

fn aws_time(t: OffsetDateTime) -> DateTime {
    DateTime::from_secs_and_nanos(t.unix_timestamp(), t.nanosecond())
}

fn ev(t: OffsetDateTime, source: &str, kind: SourceType, message: &str) -> Event {
    Event::builder()
        .source_identifier(source)
        .source_type(kind)
        .message(message)
        .date(aws_time(t))
        .build()
}

/// DescribeEvents as AWS would answer during the failover, with `history` earlier
/// TestFailover calls of other groups in the last 24 hours (the quota in use).
fn events_rule(script: Arc<Mutex<Script>>, history: usize) -> Rule {
    mock!(Ec::describe_events).then_compute_output(move |req| {
        let all = all_events(&script, history);
        // As DescribeEvents: the exact source identifier and type asked for.
        let mut out = DescribeEventsOutput::builder();
        for e in all {
            if req.source_type().is_none_or(|t| e.source_type() == Some(t))
                && req
                    .source_identifier()
                    .is_none_or(|id| e.source_identifier() == Some(id))
            {
                out = out.events(e);
            }
        }
        out.build()
    })
}

fn all_events(script: &Mutex<Script>, history: usize) -> Vec<Event> {
    {
        let now = OffsetDateTime::now_utc();
        let mut out: Vec<Event> = Vec::new();
        for i in 0..history {
            out.push(ev(
                now - time::Duration::hours(2) + time::Duration::seconds(i as i64),
                "other-group",
                SourceType::ReplicationGroup,
                "Test Failover API called for node group 0001",
            ));
        }
        let s = script.lock().expect("script");
        if let Some(t) = s.triggered {
            out.push(ev(
                t,
                RG,
                SourceType::ReplicationGroup,
                "Test Failover API called for node group 0001",
            ));
        }
        if let Some(t) = s.promoted {
            out.push(ev(
                    t,
                    RG,
                    SourceType::ReplicationGroup,
                    "Failover from primary node jobs-valkey-001 to replica node jobs-valkey-002 completed",
                ));
            out.push(ev(
                t,
                "jobs-valkey-001",
                SourceType::CacheCluster,
                "Recovering cache nodes 0001",
            ));
            out.push(ev(
                t + time::Duration::milliseconds(300),
                "jobs-valkey-001",
                SourceType::CacheCluster,
                "Finished recovery for cache nodes 0001",
            ));
        }
        out
    }
}

/// SSM holding the run lock: put (Overwrite=false), get, delete over one stored value.
fn lock_rules() -> Vec<Rule> {
    let held: Arc<Mutex<Option<String>>> = Arc::default();
    let (h1, h2, h3) = (held.clone(), held.clone(), held);
    vec![
        mock!(Ssm::put_parameter).then_compute_response(move |req| {
            let mut h = h1.lock().expect("lock");
            if h.is_some() && req.overwrite() != Some(true) {
                return MockResponse::Error(PutParameterError::ParameterAlreadyExists(
                    ParameterAlreadyExists::builder().build(),
                ));
            }
            *h = req.value().map(str::to_string);
            MockResponse::Output(PutParameterOutput::builder().version(1).build())
        }),
        mock!(Ssm::get_parameter).then_compute_response(move |req| {
            match h2.lock().expect("lock").clone() {
                Some(v) => MockResponse::Output(
                    GetParameterOutput::builder()
                        .parameter(
                            Parameter::builder()
                                .name(req.name().unwrap_or_default())
                                .value(v)
                                .r#type(ParameterType::String)
                                .version(1)
                                .build(),
                        )
                        .build(),
                ),
                None => MockResponse::Error(GetParameterError::ParameterNotFound(
                    ParameterNotFound::builder().build(),
                )),
            }
        }),
        mock!(Ssm::delete_parameter).then_compute_output(move |_| {
            *h3.lock().expect("lock") = None;
            DeleteParameterOutput::builder().build()
        }),
    ]
}

/// Discovery after the failover finds nothing here (the cache was described by hand).
fn discovery_rules() -> Vec<Rule> {
    vec![
        mock!(Ec::describe_replication_groups)
            .then_output(|| DescribeReplicationGroupsOutput::builder().build()),
        mock!(Ec::describe_cache_clusters)
            .then_output(|| DescribeCacheClustersOutput::builder().build()),
    ]
}

const CONFIG: &str = r#"
[environments.jobs-prod]
provider = "aws"
region = "eu-west-1"
protection = "open"

[environments.jobs-prod.discovery]
kinds = ["replication-group"]
"#;

fn plane(ec_rules: &[&Rule]) -> AwsControlPlane {
    let config = Config::parse(std::path::Path::new("mocks.toml"), CONFIG).expect("config");
    let cfg = config.environments["jobs-prod"].clone();
    let lock = lock_rules();
    let ssm_rules: Vec<&Rule> = lock.iter().collect();
    let ssm_rules: &[&Rule] = &ssm_rules;
    let discovery = discovery_rules();
    let mut all: Vec<&Rule> = ec_rules.to_vec();
    all.extend(discovery.iter());
    let ec_rules: &[&Rule] = &all;
    let no_rules: &[&Rule] = &[];
    AwsControlPlane::from_clients(
        cfg.environment("jobs-prod", "mocks.toml"),
        cfg,
        Settings::default(),
        mock_client!(aws_sdk_elasticache, RuleMode::MatchAny, ec_rules),
        mock_client!(aws_sdk_ecs, RuleMode::MatchAny, no_rules),
        mock_client!(aws_sdk_ssm, RuleMode::MatchAny, ssm_rules),
    )
}

fn node(id: &str, role: NodeRole, port: u16) -> Node {
    Node {
        id: id.into(),
        role,
        host: "127.0.0.1".into(),
        port,
        availability_zone: Some("eu-west-1a".into()),
        status: "available".into(),
        health: NodeHealth::Up,
        tls: false,
        role_source: RoleSource::ControlPlane,
    }
}

/// The replication group as DescribeReplicationGroups would have described it.
fn cache(primary: u16, replica: u16, endpoint: u16) -> Cache {
    let ep = Endpoint::new("127.0.0.1", endpoint, false);
    Cache {
        name: RG.into(),
        env: "jobs-prod".into(),
        kind: CacheKind::ReplicationGroup,
        engine: "valkey".into(),
        engine_version: "8.1".into(),
        status: "available".into(),
        cluster_mode: false,
        auth: AuthMode::None,
        tls: false,
        endpoint: Some(ep.clone()),
        endpoints: Endpoints {
            primary: Some(ep),
            reader: Some(Endpoint::new("127.0.0.1", replica, false)),
            configuration: None,
        },
        shards: vec![Shard {
            id: "0001".into(),
            slots: None,
            nodes: vec![
                node("jobs-valkey-001", NodeRole::Primary, primary),
                node("jobs-valkey-002", NodeRole::Replica, replica),
            ],
        }],
        automatic_failover: true,
        multi_az: true,
        arn: None,
        description: None,
        notes: vec![],
        credentials: Credentials::default(),
        ecs: None,
    }
}

/// A primary and a replica that has caught up with it: the replica's link is up AND the
/// primary lists it as online (it does so only after the replica's first REPLCONF ACK, a
/// moment later — the preflight counts the primary's view).
fn pair() -> (ValkeyServer, ValkeyServer) {
    let primary = server();
    let replica =
        start(ServerSpec::new().args(["--replicaof", "127.0.0.1", &primary.port().to_string()]));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !raw_command(replica.port(), &["INFO", "replication"]).contains("master_link_status:up")
        || !raw_command(primary.port(), &["INFO", "replication"]).contains("state=online")
    {
        assert!(Instant::now() < deadline, "replica never synced");
        std::thread::sleep(Duration::from_millis(50));
    }
    (primary, replica)
}

/// Runs failover-test in-process, confirming every dangerous step.
async fn run(plane: AwsControlPlane, cache: Cache, dir: &std::path::Path) -> RunReport {
    let registry = builtin();
    let runbook = catalog::find("failover-test", &registry).expect("runbook");
    let params = bind_params(
        &runbook,
        &[
            ("event_poll".to_string(), "100ms".to_string()),
            ("timeout".to_string(), "30s".to_string()),
        ],
    )
    .expect("params");
    let env = plane_env(&plane);
    let engine = Engine::new(registry, dir.to_path_buf(), ConnectOptions::default());
    let (tx, mut rx) = EventSender::channel();
    let answer = tokio::spawn(async move {
        let mut lines = Vec::new();
        while let Some(e) = rx.recv().await {
            match e {
                RunEvent::NeedsConfirmation { reply, .. } => {
                    let _ = reply.send(true);
                }
                RunEvent::StepOutput { step, line } => lines.push(format!("{step}: {line}")),
                _ => {}
            }
        }
        lines
    });
    let req = RunRequest {
        runbook,
        params,
        target: Target {
            env,
            cache,
            plane: Arc::new(plane),
        },
        force_unlock: None,
    };
    let report = engine
        .start(req, tx, CancellationToken::new())
        .await
        .expect("engine runs");
    let lines = answer.await.expect("events");
    eprintln!("{}", lines.join("\n"));
    report
}

fn plane_env(plane: &AwsControlPlane) -> cachedeck::domain::Environment {
    use cachedeck::controlplane::ControlPlane;
    plane.environment().clone()
}

fn failover_rule(script: Arc<Mutex<Script>>, calls: Arc<AtomicUsize>) -> Rule {
    mock!(Ec::test_failover)
        .match_requests(|r| {
            r.replication_group_id() == Some(RG) && r.node_group_id() == Some("0001")
        })
        .then_compute_output(move |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            script.lock().expect("script").triggered = Some(OffsetDateTime::now_utc());
            TestFailoverOutput::builder().build()
        })
}

/// What ElastiCache does after TestFailover: promote the replica, move the endpoint.
fn promote_when_triggered(
    script: Arc<Mutex<Script>>,
    primary: &ValkeyServer,
    replica: &ValkeyServer,
    endpoint: MovableEndpoint,
) -> tokio::task::JoinHandle<MovableEndpoint> {
    let (s, p, r) = (script, primary.port(), replica.port());
    tokio::spawn(async move {
        // Bounded: a promotion that never comes fails the test instead of hanging it.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if s.lock().expect("script").triggered.is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "TestFailover was never called");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let reply = tokio::task::spawn_blocking(move || raw_command(p, &["FAILOVER"]))
            .await
            .expect("failover");
        assert!(reply.starts_with("+OK"), "{reply}");
        loop {
            let role = tokio::task::spawn_blocking(move || raw_command(r, &["ROLE"]))
                .await
                .expect("role");
            if role.contains("master") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the replica was never promoted: {role}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        endpoint.move_to(r);
        s.lock().expect("script").promoted = Some(OffsetDateTime::now_utc());
        endpoint
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_test_through_the_aws_adapter_promotes_and_measures() {
    let (primary, replica) = pair();
    let endpoint = MovableEndpoint::start(primary.port()).await;
    let endpoint_port = endpoint.port;
    let script = Arc::new(Mutex::new(Script::default()));
    let calls = Arc::new(AtomicUsize::new(0));
    let events = events_rule(script.clone(), 3);
    let failover = failover_rule(script.clone(), calls.clone());

    let promoter = promote_when_triggered(script.clone(), &primary, &replica, endpoint);
    let dir = tempfile::tempdir().expect("tempdir");
    let report = run(
        plane(&[&events, &failover]),
        cache(primary.port(), replica.port(), endpoint_port),
        dir.path(),
    )
    .await;
    let json = serde_json::to_value(&report).expect("json");
    assert_eq!(json["state"], "succeeded", "{json}");
    let _endpoint = promoter.await.expect("promoter");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one TestFailover");
    let out = &json["steps"][1]["outputs"];
    assert_eq!(out["acked_writes_lost"], 0, "{out}");
    let window = out["write_unavailable_ms"].as_f64().expect("window");
    // Writes stop while FAILOVER hands over and the endpoint still points at the demoted
    // primary; they resume once it moved.
    assert!(window > 0.0 && window < 10_000.0, "window {window}");
    assert!(out["writer"]["failed"].as_u64() > Some(0), "{out}");
    assert_eq!(out["shards"][0]["old_primary"], "jobs-valkey-001");
    assert_eq!(out["shards"][0]["new_primary"], "jobs-valkey-002");
    assert_eq!(out["writer"]["server_before"], "jobs-valkey-001", "{out}");
    assert_eq!(out["writer"]["server_after"], "jobs-valkey-002", "{out}");
    assert!(
        out["errors_by_class"]["readonly"].as_u64() > Some(0)
            || out["errors_by_class"]["refused"].as_u64() > Some(0),
        "{out}"
    );
    assert_eq!(json["steps"][0]["outputs"]["quota_used"], 3);
    assert_eq!(out["events"].as_array().map(Vec::len), Some(4), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quota_counted_from_events_stops_the_run_before_any_trigger() {
    let (primary, replica) = pair();
    let script = Arc::new(Mutex::new(Script::default()));
    let calls = Arc::new(AtomicUsize::new(0));
    let events = events_rule(script.clone(), 15);
    let failover = failover_rule(script, calls.clone());
    let dir = tempfile::tempdir().expect("tempdir");
    let report = run(
        plane(&[&events, &failover]),
        cache(primary.port(), replica.port(), primary.port()),
        dir.path(),
    )
    .await;
    let json = serde_json::to_value(&report).expect("json");
    assert_eq!(json["state"], "failed");
    let error = json["error"].as_str().expect("error");
    assert!(
        error.contains("quota allows 0 more node group(s)"),
        "{error}"
    );
    assert!(error.contains("15 of 15 used"), "{error}");
    assert_eq!(calls.load(Ordering::SeqCst), 0, "no TestFailover");
}

async fn faulted(fault: fn() -> TestFailoverError) -> String {
    let (primary, replica) = pair();
    let script = Arc::new(Mutex::new(Script::default()));
    let events = events_rule(script, 2);
    let failover = mock!(Ec::test_failover).then_error(fault);
    let dir = tempfile::tempdir().expect("tempdir");
    let report = run(
        plane(&[&events, &failover]),
        cache(primary.port(), replica.port(), primary.port()),
        dir.path(),
    )
    .await;
    let json = serde_json::to_value(&report).expect("json");
    assert_eq!(json["state"], "failed", "{json}");
    assert_eq!(
        failover.num_calls(),
        1,
        "a refused TestFailover is not retried"
    );
    // The probe list is not left behind by a failed run.
    let keys = raw_command(primary.port(), &["KEYS", "cachedeck:failover-probe:*"]);
    assert_eq!(keys, "*0\r\n");
    json["error"].as_str().expect("error").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_quota_and_invalid_state_faults_fail_the_step_with_one_line() {
    let quota = faulted(|| {
        TestFailoverError::TestFailoverNotAvailableFault(
            TestFailoverNotAvailableFault::builder()
                .message("TestFailover is not available: quota of 15 node groups exceeded")
                .build(),
        )
    })
    .await;
    assert!(
        quota.contains("TestFailover refused: quota exceeded"),
        "{quota}"
    );
    let state = faulted(|| {
        TestFailoverError::InvalidReplicationGroupStateFault(
            InvalidReplicationGroupStateFault::builder()
                .message("Replication group jobs-valkey is not in available state")
                .build(),
        )
    })
    .await;
    assert!(
        state.contains(
            "TestFailover refused: Replication group jobs-valkey is not in available state"
        ),
        "{state}"
    );
}

/// TestFailover whose answer is lost (HTTP 500 after AWS took the call): the SDK must not
/// send it again (a second call would fail over twice and spend the quota twice); the run
/// finds the "Test Failover API called" event and follows the failover to its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_failover_answer_lost_in_transit_is_not_resent_and_is_followed() {
    let (primary, replica) = pair();
    let endpoint = MovableEndpoint::start(primary.port()).await;
    let endpoint_port = endpoint.port;
    let script = Arc::new(Mutex::new(Script::default()));
    let events = events_rule(script.clone(), 0);
    let s = script.clone();
    let failover = mock!(Ec::test_failover).then_compute_response(move |_| {
        let mut s = s.lock().expect("script");
        if s.triggered.is_none() {
            s.triggered = Some(OffsetDateTime::now_utc());
        }
        MockResponse::Http(aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(500).expect("status"),
            aws_smithy_types::body::SdkBody::empty(),
        ))
    });
    let promoter = promote_when_triggered(script.clone(), &primary, &replica, endpoint);
    let dir = tempfile::tempdir().expect("tempdir");
    let report = run(
        plane(&[&events, &failover]),
        cache(primary.port(), replica.port(), endpoint_port),
        dir.path(),
    )
    .await;
    let json = serde_json::to_value(&report).expect("json");
    let _endpoint = promoter.await.expect("promoter");
    assert_eq!(failover.num_calls(), 1, "TestFailover is never resent");
    assert_eq!(json["state"], "succeeded", "{json}");
    let out = &json["steps"][1]["outputs"];
    assert_eq!(out["shards"][0]["new_primary"], "jobs-valkey-002", "{out}");
    assert_eq!(out["shards"][0]["recovered"], true, "{out}");
}

/// DescribeReplicationGroups and DescribeCacheClusters of a cluster-mode-enabled group as
/// ElastiCache answers them: one node group owning every slot, members without
/// `CurrentRole` or `ReadEndpoint` (documented for cluster mode disabled only), node
/// addresses from DescribeCacheClusters, and a configuration endpoint.
fn cluster_mode_discovery(primary: u16, replica: u16) -> Vec<Rule> {
    use aws_sdk_elasticache::types::{
        CacheCluster, CacheNode, Endpoint as AwsEndpoint, NodeGroup, NodeGroupMember,
        ReplicationGroup,
    };
    let ep = |port: u16| {
        AwsEndpoint::builder()
            .address("127.0.0.1")
            .port(i32::from(port))
            .build()
    };
    let member = |id: &str| {
        NodeGroupMember::builder()
            .cache_cluster_id(id)
            .cache_node_id("0001")
            .preferred_availability_zone("eu-west-1a")
            .build()
    };
    let group = ReplicationGroup::builder()
        .replication_group_id(RG)
        .status("available")
        .engine("valkey")
        .cluster_enabled(true)
        .automatic_failover(aws_sdk_elasticache::types::AutomaticFailoverStatus::Enabled)
        .configuration_endpoint(ep(primary))
        .member_clusters("jobs-valkey-001")
        .member_clusters("jobs-valkey-002")
        .node_groups(
            NodeGroup::builder()
                .node_group_id("0001")
                .status("available")
                .slots("0-16383")
                .node_group_members(member("jobs-valkey-001"))
                .node_group_members(member("jobs-valkey-002"))
                .build(),
        )
        .build();
    let cluster = move |id: &str, port: u16| {
        CacheCluster::builder()
            .cache_cluster_id(id)
            .replication_group_id(RG)
            .engine("valkey")
            .engine_version("8.1.0")
            .cache_cluster_status("available")
            .cache_nodes(
                CacheNode::builder()
                    .cache_node_id("0001")
                    .cache_node_status("available")
                    .endpoint(ep(port))
                    .build(),
            )
            .build()
    };
    vec![
        mock!(Ec::describe_replication_groups).then_compute_output(move |_| {
            DescribeReplicationGroupsOutput::builder()
                .replication_groups(group.clone())
                .build()
        }),
        mock!(Ec::describe_cache_clusters).then_compute_output(move |_| {
            DescribeCacheClustersOutput::builder()
                .cache_clusters(cluster("jobs-valkey-001", primary))
                .cache_clusters(cluster("jobs-valkey-002", replica))
                .build()
        }),
    ]
}

/// The done-when of cluster mode on AWS: DescribeReplicationGroups carries no roles, and
/// `failover-test` still finds the shard's primary and replica (asked from the nodes),
/// passes its preflight, fails the shard over and names old and new primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_test_on_a_cluster_mode_group_whose_description_carries_no_roles() {
    use cachedeck::controlplane::ControlPlane;
    let (primary, replica) = cluster_pair().await;
    let script = Arc::new(Mutex::new(Script::default()));
    let calls = Arc::new(AtomicUsize::new(0));
    let events = events_rule(script.clone(), 0);
    let failover = failover_rule(script.clone(), calls.clone());
    let discovery = cluster_mode_discovery(primary.port(), replica.port());
    let mut rules: Vec<&Rule> = discovery.iter().collect();
    rules.extend([&events, &failover]);
    let plane = plane(&rules);

    // Discovery through the AWS adapter: every role unknown, as on AWS.
    let found = plane.discover().await.expect("discover");
    let cache = found
        .caches
        .into_iter()
        .find(|c| c.name == RG)
        .expect("the group");
    assert!(cache.cluster_mode);
    assert!(
        cache.nodes().all(|n| n.role == NodeRole::Unknown),
        "{:?}",
        cache.shards
    );
    assert!(cache.shards[0].primary().is_none() && cache.shards[0].replicas().next().is_none());
    assert_eq!(cache.shape(), "1×1", "the shape needs no roles");

    // What ElastiCache does after TestFailover in cluster mode: the replica takes over.
    let (s, r) = (script.clone(), replica.port());
    let promoter = tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(60);
        while s.lock().expect("script").triggered.is_none() {
            assert!(Instant::now() < deadline, "TestFailover was never called");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let reply = tokio::task::spawn_blocking(move || raw_command(r, &["CLUSTER", "FAILOVER"]))
            .await
            .expect("failover");
        assert!(reply.starts_with("+OK"), "{reply}");
        loop {
            let role = tokio::task::spawn_blocking(move || raw_command(r, &["ROLE"]))
                .await
                .expect("role");
            if role.contains("master") {
                break;
            }
            assert!(Instant::now() < deadline, "never promoted: {role}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        s.lock().expect("script").promoted = Some(OffsetDateTime::now_utc());
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let report = run(plane, cache, dir.path()).await;
    promoter.await.expect("promoter");
    let json = serde_json::to_value(&report).expect("json");
    assert_eq!(json["state"], "succeeded", "{json}");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one TestFailover");
    let lag = &json["steps"][0]["outputs"]["lag"][0];
    assert_eq!(lag["primary"], "jobs-valkey-001", "{lag}");
    assert_eq!(lag["replicas_online"], 1, "{lag}");
    let out = &json["steps"][1]["outputs"];
    assert_eq!(out["shards"][0]["old_primary"], "jobs-valkey-001", "{out}");
    assert_eq!(out["shards"][0]["new_primary"], "jobs-valkey-002", "{out}");
    assert_eq!(out["acked_writes_lost"], 0, "{out}");
    assert_eq!(out["writer"]["server_before"], "jobs-valkey-001", "{out}");
    assert_eq!(out["writer"]["server_after"], "jobs-valkey-002", "{out}");
}

/// Right after a replica (re)starts it is not yet online: the preflight waits for it (up to
/// `lag_wait`, 30 s by default) instead of refusing at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preflight_waits_for_a_replica_that_is_still_syncing() {
    let primary = server();
    let replica = server();
    let script = Arc::new(Mutex::new(Script::default()));
    let events = events_rule(script, 0);
    let failover = mock!(Ec::test_failover).then_error(|| {
        TestFailoverError::InvalidReplicationGroupStateFault(
            InvalidReplicationGroupStateFault::builder()
                .message("stop here")
                .build(),
        )
    });
    // The replica starts replicating only a moment after the run began.
    let (p, r) = (primary.port(), replica.port());
    let attach = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        tokio::task::spawn_blocking(move || {
            raw_command(r, &["REPLICAOF", "127.0.0.1", &p.to_string()])
        })
        .await
        .expect("replicaof")
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let report = run(
        plane(&[&events, &failover]),
        cache(primary.port(), replica.port(), primary.port()),
        dir.path(),
    )
    .await;
    assert!(attach.await.expect("attach").starts_with("+OK"));
    let json = serde_json::to_value(&report).expect("json");
    let preflight = &json["steps"][0];
    assert_eq!(preflight["state"], "succeeded", "{json}");
    assert_eq!(
        preflight["outputs"]["lag"][0]["replicas_online"], 1,
        "{json}"
    );
    assert!(started.elapsed() >= Duration::from_millis(1500));
    assert_eq!(failover.num_calls(), 1, "the run went on to the trigger");
}
