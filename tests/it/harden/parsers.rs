//! Parsers of what comes from outside, under property tests: ECS Exec data-channel frames
//! (arbitrary bytes never panic; every field round-trips; a corrupted payload, a wrong length,
//! an oversized payload and a non-text message type are each their own clear error) and the
//! AWS adapter's handling of strings in AWS answers (SSM endpoint values and URLs, service
//! error messages, ExecuteCommand errors, names and fields of DescribeReplicationGroups,
//! DescribeCacheClusters and DescribeServerlessCaches answers): no panic, errors on one line
//! with nothing a terminal acts on and never the secret of a URL, and the JSON of the caches
//! valid, terminal-safe and carrying the original strings.

use super::hostile::{hostile_bytes, terminal_safe};
use super::summary;
use aws_sdk_elasticache::types::{
    CacheCluster, CacheNode, Endpoint as AwsEndpoint, NodeGroup, NodeGroupMember, ReplicationGroup,
    ServerlessCache,
};
use cachedeck::ecsexec::frame::{Frame, FrameError, MAX_PAYLOAD, PAYLOAD_OFFSET, kind};
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};

fn runner(ci: u32, soak: u32) -> TestRunner {
    TestRunner::new(ProptestConfig {
        cases: if super::soak() { soak } else { ci },
        failure_persistence: None,
        ..ProptestConfig::default()
    })
}

fn safe(what: &str, text: &str) -> Result<(), TestCaseError> {
    terminal_safe(what, text.as_bytes()).map_err(TestCaseError::fail)?;
    prop_assert!(!text.contains('\n'), "{what}: more than one line: {text:?}");
    Ok(())
}

/// Message types as the agent sends them: printable ASCII, at most 32 characters, no
/// padding of their own.
fn message_type() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            kind::INPUT,
            kind::OUTPUT,
            kind::ACK,
            kind::CHANNEL_CLOSED,
        ])
        .prop_map(str::to_string),
        "[!-~]([ -~]{0,30}[!-~])?",
    ]
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..512),
        1 => (0..=MAX_PAYLOAD).prop_map(|n| vec![0xa5; n]),
    ]
}

fn frame() -> impl Strategy<Value = Frame> {
    (
        message_type(),
        any::<i64>(),
        any::<u64>(),
        0..8u32,
        payload(),
        1..u64::MAX,
        any::<u32>(),
    )
        .prop_map(
            |(message_type, sequence, flags, payload_type, payload, created_ms, schema)| {
                let mut f = Frame::new(&message_type, sequence, flags, payload_type, payload);
                f.created_ms = created_ms;
                f.schema_version = schema;
                f
            },
        )
}

#[test]
fn ecs_exec_frames_round_trip_and_reject_what_is_wrong_with_a_clear_error() {
    let mut tried = 0u64;
    // Arbitrary bytes, and arbitrary bytes behind a well-formed header length.
    let bytes = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..400),
        prop::collection::vec(any::<u8>(), 120..400).prop_map(|mut b| {
            b[..4].copy_from_slice(&116u32.to_be_bytes());
            b
        }),
        hostile_bytes(40),
    ];
    runner(2_000, 50_000)
        .run(&bytes, |bytes| {
            if let Err(e) = Frame::decode(&bytes) {
                safe("frame error", &e.to_string())?;
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    tried += 2_000;

    runner(300, 5_000)
        .run(&(frame(), any::<prop::sample::Index>()), |(f, at)| {
            let wire = f.encode();
            prop_assert_eq!(wire.len(), PAYLOAD_OFFSET + f.payload.len());
            let decoded = Frame::decode(&wire);
            prop_assert_eq!(decoded.as_ref(), Ok(&f));

            // One payload byte flipped: the digest says so (publication messages carry none).
            if !f.payload.is_empty() {
                let mut bad = wire.clone();
                let i = PAYLOAD_OFFSET + at.index(f.payload.len());
                bad[i] ^= 0x01;
                let e = Frame::decode(&bad).expect_err("a flipped payload byte");
                prop_assert_eq!(
                    &e,
                    &FrameError::Digest {
                        kind: f.message_type.clone(),
                        seq: f.sequence
                    }
                );
                safe("digest error", &e.to_string())?;
            }
            // Cut short, or one byte too many: the lengths disagree.
            let mut cut = wire.clone();
            cut.pop();
            let e = Frame::decode(&cut).expect_err("one byte short");
            prop_assert!(
                matches!(e, FrameError::PayloadLength { .. } | FrameError::Short(_)),
                "{e:?}"
            );
            let mut long = wire.clone();
            long.push(0);
            let e = Frame::decode(&long).expect_err("one byte long");
            prop_assert!(
                matches!(
                    e,
                    FrameError::PayloadLength { .. } | FrameError::TooLarge(_)
                ),
                "{e:?}"
            );
            // A message type with a control character in it is not text.
            let mut ctl = wire.clone();
            ctl[4 + at.index(32)] = 0x1b;
            prop_assert_eq!(Frame::decode(&ctl), Err(FrameError::MessageType));
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    tried += 300;

    // Over the cap: refused whatever it says.
    let mut big = Frame::new(kind::OUTPUT, 1, 0, 1, vec![0; MAX_PAYLOAD + 1]).encode();
    assert_eq!(
        Frame::decode(&big),
        Err(FrameError::TooLarge(MAX_PAYLOAD + 1))
    );
    big.truncate(PAYLOAD_OFFSET + MAX_PAYLOAD);
    assert!(matches!(
        Frame::decode(&big),
        Err(FrameError::PayloadLength { .. })
    ));
    summary::add("parsers.frames", tried);
}

/// Hostile text for a `String` field.
fn text() -> impl Strategy<Value = String> {
    hostile_bytes(12).prop_map(|b| String::from_utf8_lossy(&b).into_owned())
}

#[test]
fn ssm_values_and_aws_messages_never_panic_or_echo_a_secret() {
    let cases = if super::soak() { 20_000 } else { 1_000 };
    let secret = "Sekr3t-canary-77";
    let value = prop_oneof![
        text(),
        (text(), text(), 0..70000u32)
            .prop_map(move |(a, b, port)| format!("rediss://user:{secret}{a}@{b}:{port}")),
        (text(), 0..70000u32).prop_map(move |(a, port)| format!("redis://:{secret}@{a}:{port}/")),
        (text(), text()).prop_map(|(a, b)| format!("{a}:{b}")),
    ];
    runner(cases, cases)
        .run(&(value, text(), text()), |(value, code, message)| {
            use cachedeck::aws::ssm_caches::{parse_cache_url, parse_endpoint_value};
            if let Err(e) = parse_endpoint_value(&value) {
                safe("endpoint value error", &e)?;
                prop_assert!(!e.contains(secret), "{e}");
            }
            if let Err(e) = parse_cache_url(&value) {
                safe("URL error", &e)?;
                prop_assert!(!e.contains(secret), "{e}");
            }
            let ctx = cachedeck::aws::errors::ErrorContext {
                profile: Some("prod".into()),
                endpoint: "AWS (eu-west-1)".into(),
                call_timeout: std::time::Duration::from_secs(10),
            };
            for code in [
                code.as_str(),
                "AccessDenied",
                "Throttling",
                "ValidationError",
            ] {
                let e = cachedeck::aws::errors::classify_code(
                    "DescribeThings",
                    &ctx,
                    code,
                    &message,
                    400,
                );
                // Control-plane errors are plain text, escaped where they are printed
                // (`headless::print_error`, the TUI's views): one line, no panic.
                let line = e.to_string();
                prop_assert!(!line.contains(['\n', '\r']), "{line:?}");
                safe(
                    "service error as printed",
                    &cachedeck::escape::escape_lines_capped(&line, 2000),
                )?;
            }
            for code in [
                code.as_str(),
                "TargetNotConnectedException",
                "AccessDeniedException",
                "InvalidParameterException",
            ] {
                if let Some(line) = cachedeck::aws::exec::explain(code, &message) {
                    safe("ExecuteCommand error", &line)?;
                }
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    summary::add("parsers.aws_answers", u64::from(cases));
}

#[test]
fn aws_describe_answers_map_to_caches_whose_json_is_safe_and_faithful() {
    let cases = if super::soak() { 5_000 } else { 300 };
    let fields = prop::collection::vec(text(), 12);
    runner(cases, cases)
        .run(&fields, |t| {
            let endpoint = |s: &str| AwsEndpoint::builder().address(s).port(6379).build();
            let group = ReplicationGroup::builder()
                .replication_group_id(&t[0])
                .description(&t[1])
                .status(&t[2])
                .engine(&t[3])
                .configuration_endpoint(endpoint(&t[4]))
                .node_groups(
                    NodeGroup::builder()
                        .node_group_id(&t[5])
                        .slots(&t[6])
                        .node_group_members(
                            NodeGroupMember::builder()
                                .cache_cluster_id(&t[7])
                                .read_endpoint(endpoint(&t[8]))
                                .current_role(&t[9])
                                .preferred_availability_zone(&t[10])
                                .build(),
                        )
                        .build(),
                )
                .member_clusters(&t[7])
                .build();
            let member = CacheCluster::builder()
                .cache_cluster_id(&t[7])
                .replication_group_id(&t[0])
                .engine(&t[3])
                .engine_version(&t[11])
                .build();
            let solo = CacheCluster::builder()
                .cache_cluster_id(&t[1])
                .engine("redis")
                .engine_version(&t[2])
                .cache_cluster_status(&t[3])
                .cache_nodes(
                    CacheNode::builder()
                        .cache_node_id(&t[4])
                        .endpoint(endpoint(&t[5]))
                        .customer_availability_zone(&t[6])
                        .cache_node_status(&t[7])
                        .build(),
                )
                .build();
            let serverless = ServerlessCache::builder()
                .serverless_cache_name(&t[8])
                .engine(&t[9])
                .full_engine_version(&t[10])
                .status(&t[11])
                .endpoint(endpoint(&t[0]))
                .build();
            let members = cachedeck::aws::map::member_index(&[member]);
            let mut caches = vec![
                cachedeck::aws::map::replication_group("prod", &group, &members),
                cachedeck::aws::map::serverless("prod", &serverless),
            ];
            caches.extend(cachedeck::aws::map::cache_cluster("prod", &solo));
            prop_assert_eq!(&caches[0].name, &t[0]);
            let json = serde_json::to_string(&caches).expect("caches serialize");
            let shown = cachedeck::escape::json_for_terminal(&json);
            terminal_safe("caches JSON", shown.as_bytes()).map_err(TestCaseError::fail)?;
            let back: serde_json::Value = serde_json::from_str(&shown)
                .map_err(|e| TestCaseError::fail(format!("JSON no longer parses: {e}")))?;
            let original: serde_json::Value = serde_json::from_str(&json).expect("parses");
            prop_assert_eq!(back, original, "the terminal-safe JSON says something else");
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    summary::add("parsers.aws_answers", u64::from(cases));
}
