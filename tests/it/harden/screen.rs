//! Hostile bytes through the TUI: AWS names and fields (through the AWS adapter's own
//! mapping of a DescribeReplicationGroups answer), an SSM endpoint value, discovery warnings
//! and failures, server errors, INFO fields, slowlog arguments and client names, and
//! control-plane events, each made of ESC, CSI, OSC 52, BEL, CR, C1, bidi overrides,
//! zero-width characters, invalid UTF-8 and (in some cases) 64 KB strings. Every screen — the
//! environments, the caches table, each panel of the cache view, the help overlay — is drawn
//! into ratatui's `TestBackend` at two sizes, and no cell of the buffer may hold a character a
//! terminal acts on or that hides or reorders text.

use super::hostile::{hostile_bytes, terminal_safe};
use super::summary;
use aws_sdk_elasticache::types::{
    Endpoint as AwsEndpoint, NodeGroup, NodeGroupMember, ReplicationGroup,
};
use cachedeck::controlplane::{CacheEvent, Discovery};
use cachedeck::domain::{Environment, Protection, ProviderKind};
use cachedeck::tui::action::{Action, Route, Tab};
use cachedeck::tui::app::App;
use cachedeck::tui::theme::Theme;
use cachedeck::tui::view::view;
use cachedeck::valkey::connect::{ConnectError, Layer};
use cachedeck::valkey::info::Info;
use cachedeck::valkey::stats::{NodeKey, NodeSample, NodeStats, SlowlogEntry, StatsEvent};
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use time::macros::datetime;

const NOW: time::OffsetDateTime = datetime!(2026-11-23 21:00:00 UTC);
const ENV: &str = "prod";

/// Text for a `String` field: hostile bytes, invalid UTF-8 shown as U+FFFD as Rust strings
/// hold it; now and then 64 KB of it.
fn text(bytes: &[u8], long: bool) -> String {
    let s = String::from_utf8_lossy(bytes).into_owned();
    if long && !s.is_empty() {
        s.repeat(65_536 / s.len() + 1)
            .chars()
            .take(65_536)
            .collect()
    } else {
        s
    }
}

/// One set of hostile inputs.
#[derive(Debug, Clone)]
struct Inputs {
    parts: Vec<Vec<u8>>,
    long: usize,
}

impl Inputs {
    /// The `i`-th hostile text (64 KB for the one `long` picks).
    fn s(&self, i: usize) -> String {
        text(&self.parts[i % self.parts.len()], i == self.long)
    }

    fn b(&self, i: usize) -> Vec<u8> {
        self.parts[i % self.parts.len()].clone()
    }
}

fn inputs() -> impl Strategy<Value = Inputs> {
    (prop::collection::vec(hostile_bytes(10), 24), 0..64usize)
        .prop_map(|(parts, long)| Inputs { parts, long })
}

/// A DescribeReplicationGroups answer whose every name and field is hostile, mapped by the
/// AWS adapter.
fn hostile_group(h: &Inputs) -> cachedeck::domain::Cache {
    let member = |i: usize, role: &str| {
        NodeGroupMember::builder()
            .cache_cluster_id(h.s(i))
            .cache_node_id("0001")
            .read_endpoint(
                AwsEndpoint::builder()
                    .address(h.s(i + 1))
                    .port(6379)
                    .build(),
            )
            .preferred_availability_zone(h.s(i + 2))
            .current_role(role)
            .build()
    };
    let group = ReplicationGroup::builder()
        .replication_group_id(h.s(0))
        .description(h.s(1))
        .status(h.s(2))
        .engine(h.s(3))
        .node_groups(
            NodeGroup::builder()
                .node_group_id(h.s(4))
                .status(h.s(5))
                .primary_endpoint(AwsEndpoint::builder().address(h.s(6)).port(6379).build())
                .node_group_members(member(7, "primary"))
                .node_group_members(member(10, "replica"))
                .build(),
        )
        .member_clusters(h.s(7))
        .member_clusters(h.s(10))
        .build();
    cachedeck::aws::map::replication_group(ENV, &group, &HashMap::new())
}

/// INFO with hostile values where the server chooses the text.
fn hostile_info(h: &Inputs) -> Info {
    let field = |i: usize| h.s(i).replace(['\r', '\n'], " ");
    Info::parse(&format!(
        "# Server\r\nredis_version:{}\r\nvalkey_version:{}\r\nserver_name:{}\r\nuptime_in_seconds:100\r\n\
         # Memory\r\nused_memory:1000\r\nmaxmemory:0\r\nmaxmemory_policy:{}\r\n\
         # Persistence\r\nrdb_last_bgsave_status:{}\r\naof_last_write_status:{}\r\n\
         # Replication\r\nrole:slave\r\nmaster_link_status:{}\r\n\
         # Keyspace\r\ndb0:keys=10,expires=2,avg_ttl=0\r\n",
        field(13),
        field(14),
        field(15),
        field(16),
        field(17),
        field(18),
        field(19)
    ))
}

fn app(h: &Inputs) -> (App, String, Vec<String>) {
    let env = Environment {
        name: ENV.into(),
        provider: ProviderKind::Aws,
        protection: Protection::ReadOnly,
        profile: Some(h.s(20)),
        region: Some(h.s(21)),
        endpoint_url: None,
        source: h.s(22),
        account: None,
    };
    let broken = Environment {
        name: "broken".into(),
        ..env.clone()
    };
    let mut app = App::new(vec![env, broken], NOW);
    let _ = app.start();
    let mut cache = hostile_group(h);
    // An SSM endpoint value as the adapter reads it, attached as the cache's endpoint.
    if let Ok(v) = cachedeck::aws::ssm_caches::parse_endpoint_value(&h.s(23)) {
        cache.notes.push(format!("endpoint from SSM: {}", v.host));
    }
    cache.notes.push(h.s(1));
    let name = cache.name.clone();
    let nodes: Vec<String> = cache.nodes().map(|n| n.id.clone()).collect();
    app.update(Action::Discovered {
        env: ENV.into(),
        result: Ok(Discovery {
            caches: vec![cache],
            warnings: vec![h.s(2), h.s(3)],
        }),
    });
    app.update(Action::Discovered {
        env: "broken".into(),
        result: Err(h.s(5)),
    });
    (app, name, nodes)
}

/// Every cell of the screen: nothing raw.
fn screen_safe(what: &str, app: &App, width: u16, height: u16) -> Result<(), TestCaseError> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    terminal
        .draw(|f| view(app, &Theme::monochrome(), f))
        .expect("draw");
    let buffer = terminal.backend().buffer();
    for (i, cell) in buffer.content.iter().enumerate() {
        let symbol = cell.symbol();
        if let Err(e) = terminal_safe(what, symbol.as_bytes()) {
            let y = i / width as usize;
            let row: String = buffer.content[y * width as usize..(y + 1) * width as usize]
                .iter()
                .map(|c| c.symbol())
                .collect();
            return Err(TestCaseError::fail(format!(
                "{e} in cell ({}, {y}) of a {width}×{height} screen, row {row:?}",
                i % width as usize,
            )));
        }
        if symbol.contains(['\n', '\t']) {
            return Err(TestCaseError::fail(format!(
                "{what}: raw {symbol:?} in a cell"
            )));
        }
    }
    Ok(())
}

fn all_screens(what: &str, app: &App) -> Result<(), TestCaseError> {
    for (w, h) in [(80, 24), (160, 50)] {
        screen_safe(what, app, w, h)?;
    }
    Ok(())
}

fn one_case(h: &Inputs) -> Result<(), TestCaseError> {
    let (mut app, name, nodes) = app(h);
    all_screens("environments", &app)?;
    app.update(Action::Goto(Route::Caches { env: ENV.into() }));
    let watch = app
        .stats_watch_id()
        .expect("a stats watch in an environment");
    let key = |node: &str| NodeKey {
        env: ENV.into(),
        cache: name.clone(),
        node: node.into(),
    };
    let info = hostile_info(h);
    let sample = NodeSample::new(info.clone(), Duration::from_millis(1));
    app.update(Action::Stats {
        watch,
        event: Box::new(StatsEvent::Sample {
            key: key(&nodes[0]),
            stats: Box::new(NodeStats::derive(&sample, None)),
            info: Arc::new(info),
        }),
    });
    if let Some(second) = nodes.get(1) {
        app.update(Action::Stats {
            watch,
            event: Box::new(StatsEvent::Failed {
                key: key(second),
                // Built as the connector builds it from a server's error text.
                error: ConnectError::new(Layer::Server, h.s(8), h.s(9), None).with_code(&h.s(10)),
                consecutive: 2,
                retry_in: Duration::from_secs(2),
            }),
        });
    }
    all_screens("caches", &app)?;

    app.update(Action::Goto(Route::Cache {
        env: ENV.into(),
        cache: name.clone(),
    }));
    let detail = app.detail_watch_id().expect("a detail watch in a cache");
    let entries = (0..3)
        .map(|i| SlowlogEntry {
            id: i,
            timestamp: NOW.unix_timestamp() - 60,
            duration_micros: 15_000,
            args: vec![h.b(11 + i as usize), h.b(12 + i as usize), h.b(i as usize)],
            client_addr: Some(h.s(15 + i as usize)),
            client_name: Some(h.s(16 + i as usize)),
            capped: i == 2,
        })
        .collect();
    app.update(Action::Slowlog {
        watch: detail,
        node: nodes[0].clone(),
        result: Ok(entries),
    });
    if let Some(second) = nodes.get(1) {
        app.update(Action::Slowlog {
            watch: detail,
            node: second.clone(),
            result: Err(h.s(18)),
        });
    }
    app.update(Action::Events {
        watch: detail,
        result: Ok(vec![CacheEvent {
            time: NOW - time::Duration::minutes(3),
            source: h.s(19),
            source_type: "replication-group".into(),
            message: h.s(20),
        }]),
    });
    for tab in Tab::ALL {
        app.update(Action::SelectTab(tab));
        all_screens(tab.title(), &app)?;
    }
    app.update(Action::ToggleHelp);
    all_screens("help", &app)?;
    Ok(())
}

#[test]
fn no_hostile_byte_reaches_a_cell_of_any_tui_screen() {
    let cases: u32 = if super::soak() { 2_000 } else { 64 };
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&inputs(), |h| one_case(&h))
        .unwrap_or_else(|e| panic!("{e}"));
    summary::add("hostile.tui_screens", u64::from(cases));
}

/// The fixed worst case, always: every fragment at once in every field.
#[test]
fn every_hostile_fragment_at_once_stays_escaped_on_screen() {
    let all: Vec<u8> = super::hostile::NASTY.concat();
    let h = Inputs {
        parts: vec![all; 24],
        long: 1,
    };
    one_case(&h).unwrap_or_else(|e| panic!("{e}"));
}
