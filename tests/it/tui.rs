//! TUI screens rendered with ratatui's `TestBackend` from hand-built state, pinned with
//! insta snapshots (tests/snapshots): every view, the help overlay, a filter, a node down, a
//! cache with hostile key names, and the `:` commands.

use cachedeck::controlplane::{CacheEvent, Discovery};
use cachedeck::domain::{
    AuthMode, Cache, CacheKind, Credentials, Endpoint, Endpoints, Environment, Node, NodeHealth,
    NodeRole, Protection, ProviderKind, RoleSource, Shard,
};
use cachedeck::tui::action::{Action, Route, Tab};
use cachedeck::tui::app::{App, Effect};
use cachedeck::tui::theme::Theme;
use cachedeck::tui::view::view;
use cachedeck::valkey::connect::{ConnectError, Layer};
use cachedeck::valkey::info::{Info, KeyspaceDb, Role};
use cachedeck::valkey::stats::{NodeKey, NodeStats, SlowlogEntry, StatsEvent};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::sync::Arc;
use time::OffsetDateTime;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-11-23 21:00:00 UTC);

fn env(name: &str, provider: ProviderKind, protection: Protection) -> Environment {
    Environment {
        name: name.into(),
        provider,
        protection,
        profile: (provider == ProviderKind::Aws).then(|| "prod-admin".into()),
        region: (provider == ProviderKind::Aws).then(|| "eu-west-1".into()),
        endpoint_url: None,
        source: "test".into(),
        account: None,
    }
}

fn node(id: &str, role: NodeRole, port: u16, az: &str) -> Node {
    Node {
        id: id.into(),
        role,
        host: "127.0.0.1".into(),
        port,
        availability_zone: Some(az.into()),
        status: "available".into(),
        health: NodeHealth::Up,
        tls: false,
        role_source: RoleSource::ControlPlane,
    }
}

fn cache(name: &str, kind: CacheKind, shards: Vec<Shard>) -> Cache {
    let cluster_mode = shards.len() > 1;
    Cache {
        name: name.into(),
        env: "sandbox-dev".into(),
        kind,
        engine: "valkey".into(),
        engine_version: "8.1".into(),
        status: "available".into(),
        cluster_mode,
        auth: if kind == CacheKind::Serverless {
            AuthMode::Rbac
        } else {
            AuthMode::Token
        },
        tls: kind != CacheKind::EcsService,
        endpoint: Some(Endpoint::new("127.0.0.1", 17000, true)),
        endpoints: Endpoints::default(),
        shards,
        automatic_failover: true,
        multi_az: true,
        arn: None,
        description: None,
        notes: vec![],
        credentials: Credentials::default(),
        ecs: None,
    }
}

fn shard(id: &str, nodes: Vec<Node>) -> Shard {
    Shard {
        id: id.into(),
        slots: None,
        nodes,
    }
}

fn estate_caches() -> Vec<Cache> {
    vec![
        cache(
            "orders",
            CacheKind::ReplicationGroup,
            vec![shard(
                "0001",
                vec![
                    node("orders-001", NodeRole::Primary, 17001, "local-a"),
                    node("orders-002", NodeRole::Replica, 17002, "local-b"),
                    node("orders-003", NodeRole::Replica, 17003, "local-c"),
                ],
            )],
        ),
        cache(
            "paperwurks",
            CacheKind::ReplicationGroup,
            (1..=3)
                .map(|i| {
                    shard(
                        &format!("000{i}"),
                        vec![
                            node(
                                &format!("paperwurks-000{i}-001"),
                                NodeRole::Primary,
                                17100 + i,
                                "local-a",
                            ),
                            node(
                                &format!("paperwurks-000{i}-002"),
                                NodeRole::Replica,
                                17110 + i,
                                "local-b",
                            ),
                        ],
                    )
                })
                .collect(),
        ),
        cache(
            "storefront",
            CacheKind::Serverless,
            vec![shard(
                "0001",
                vec![node("storefront-001", NodeRole::Primary, 17201, "local-a")],
            )],
        ),
        cache(
            "valkey-ecs",
            CacheKind::EcsService,
            vec![shard(
                "0001",
                vec![node(
                    "valkey-ecs-task1",
                    NodeRole::Primary,
                    17301,
                    "local-a",
                )],
            )],
        ),
    ]
}

/// An app with three environments, sandbox-dev discovered.
fn app() -> App {
    let mut app = App::new(
        vec![
            env("aws-prod", ProviderKind::Aws, Protection::ReadOnly),
            env("sandbox-dev", ProviderKind::Sandbox, Protection::Open),
            env("sandbox-prod", ProviderKind::Sandbox, Protection::Confirm),
        ],
        NOW,
    );
    let _ = app.start();
    app.update(Action::Discovered {
        env: "aws-prod".into(),
        result: Err("no usable AWS credentials (the SSO token expired); run `aws sso login --profile prod-admin`".into()),
    });
    app.update(Action::Discovered {
        env: "sandbox-dev".into(),
        result: Ok(Discovery {
            caches: estate_caches(),
            warnings: vec![],
        }),
    });
    app
}

fn stats(role: Role, ops: f64, used: u64, tick: i64) -> NodeStats {
    NodeStats {
        time: NOW + time::Duration::seconds(tick),
        role,
        engine: "valkey".into(),
        version: Some("8.1.1".into()),
        uptime_seconds: Some(7200),
        latency_ms: 0.4,
        ops_per_sec: Some(ops),
        instantaneous_ops_per_sec: Some(ops as u64),
        hit_rate: Some(0.93),
        hit_rate_lifetime: Some(0.9),
        used_memory: Some(used),
        maxmemory: Some(256 << 20),
        maxmemory_policy: Some("noeviction".into()),
        mem_fragmentation_ratio: Some(1.12),
        connected_clients: Some(12),
        blocked_clients: Some(2),
        evicted_keys: Some(0),
        expired_keys: Some(40),
        evicted_per_sec: Some(0.0),
        expired_per_sec: Some(3.0),
        net_in_bytes_per_sec: Some(48_000.0),
        net_out_bytes_per_sec: Some(96_000.0),
        cpu_percent: Some(3.5),
        repl_offset: Some(123_456),
        replicas: vec![],
        master_link_status: (role == Role::Replica).then(|| "up".into()),
        master_link_down_seconds: None,
        rdb_last_bgsave_status: Some("ok".into()),
        rdb_last_save_time: Some((NOW.unix_timestamp() - 300) as u64),
        rdb_changes_since_last_save: Some(1250),
        rdb_bgsave_in_progress: Some(false),
        aof_enabled: Some(false),
        aof_last_write_status: Some("ok".into()),
        loading: Some(false),
        keys: 40_000,
        expires: 25_000,
        keyspace: vec![KeyspaceDb {
            db: 0,
            keys: 40_000,
            expires: 25_000,
            avg_ttl_ms: 1_800_000,
        }],
    }
}

fn sample(app: &mut App, cache: &str, node: &str, stats: NodeStats) {
    let watch = app
        .stats_watch_id()
        .expect("a stats watch runs in an environment");
    app.update(Action::Stats {
        watch,
        event: Box::new(StatsEvent::Sample {
            key: NodeKey {
                env: "sandbox-dev".into(),
                cache: cache.into(),
                node: node.into(),
            },
            stats: Box::new(stats),
            info: Arc::new(Info::default()),
        }),
    });
}

fn refused(app: &mut App, cache: &str, node: &str) {
    let watch = app.stats_watch_id().expect("a stats watch");
    app.update(Action::Stats {
        watch,
        event: Box::new(StatsEvent::Failed {
            key: NodeKey {
                env: "sandbox-dev".into(),
                cache: cache.into(),
                node: node.into(),
            },
            error: ConnectError::new(Layer::Tcp, "127.0.0.1:17003", "connection refused", None),
            consecutive: 1,
            retry_in: std::time::Duration::from_secs(1),
        }),
    });
}

/// Feeds a few seconds of live figures for every node of sandbox-dev.
fn live(app: &mut App) {
    for tick in 0..12 {
        let wave = [
            3.0, 5.0, 8.0, 6.0, 9.0, 12.0, 10.0, 14.0, 11.0, 15.0, 13.0, 16.0,
        ][tick as usize];
        let mut primary = stats(Role::Primary, wave * 100.0, (40 + tick as u64) << 20, tick);
        primary.replicas = vec![
            cachedeck::valkey::stats::ReplicaLag {
                address: "127.0.0.1:17002".into(),
                state: Some("online".into()),
                offset: Some(123_400),
                lag_bytes: Some(56),
                lag_seconds: Some(0),
            },
            cachedeck::valkey::stats::ReplicaLag {
                address: "127.0.0.1:17003".into(),
                state: Some("online".into()),
                offset: Some(123_456),
                lag_bytes: Some(0),
                lag_seconds: Some(0),
            },
        ];
        sample(app, "orders", "orders-001", primary);
        for n in ["orders-002", "orders-003"] {
            sample(
                app,
                "orders",
                n,
                stats(Role::Replica, wave * 10.0, 38 << 20, tick),
            );
        }
        for i in 1..=3 {
            sample(
                app,
                "paperwurks",
                &format!("paperwurks-000{i}-001"),
                stats(Role::Primary, 250.0, 20 << 20, tick),
            );
            sample(
                app,
                "paperwurks",
                &format!("paperwurks-000{i}-002"),
                stats(Role::Replica, 5.0, 20 << 20, tick),
            );
        }
        sample(
            app,
            "storefront",
            "storefront-001",
            stats(Role::Primary, 1800.0, 90 << 20, tick),
        );
        sample(
            app,
            "valkey-ecs",
            "valkey-ecs-task1",
            stats(Role::Primary, 40.0, 8 << 20, tick),
        );
    }
}

fn render(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    terminal
        .draw(|f| view(app, &Theme::monochrome(), f))
        .expect("draw");
    terminal.backend().to_string()
}

macro_rules! snap {
    ($name:expr, $screen:expr) => {
        insta::with_settings!({snapshot_path => "../snapshots", prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!($name, $screen);
        });
    };
}

fn open(app: &mut App, route: Route) -> Vec<Effect> {
    app.update(Action::Goto(route))
}

#[test]
fn tui_envs_view_shows_protection_health_and_failures() {
    let mut app = app();
    let mut prod = estate_caches().remove(0);
    prod.env = "sandbox-prod".into();
    prod.shards[0].nodes[2].health = NodeHealth::Down("connection refused".into());
    app.update(Action::Discovered {
        env: "sandbox-prod".into(),
        result: Ok(Discovery {
            caches: vec![prod],
            warnings: vec![],
        }),
    });
    let screen = render(&app, 80, 24);
    assert!(screen.contains("1 node down"), "{screen}");
    assert!(
        screen.contains("discovery failed: no usable AWS credentials"),
        "the selected env's failure in full: {screen}"
    );
    snap!("envs", screen);
}

/// The header names the account the environment's credentials resolve to.
#[test]
fn tui_header_shows_the_account_of_the_environment() {
    let mut with_account = env("sandbox-dev", ProviderKind::Sandbox, Protection::Open);
    with_account.account = Some(cachedeck::domain::Account {
        id: "000000000000".into(),
        caller_arn: "arn:aws:iam::000000000000:user/oncall".into(),
    });
    let mut app = App::new(vec![with_account], NOW);
    let _ = app.start();
    app.update(Action::Discovered {
        env: "sandbox-dev".into(),
        result: Ok(Discovery {
            caches: estate_caches(),
            warnings: vec![],
        }),
    });
    open(
        &mut app,
        Route::Caches {
            env: "sandbox-dev".into(),
        },
    );
    let screen = render(&app, 100, 20);
    let header = screen.lines().next().unwrap_or_default();
    assert!(header.contains("account 000000000000"), "{screen}");
}

#[test]
fn tui_caches_view_shows_live_ops_and_alerts() {
    let mut app = app();
    let effects = open(
        &mut app,
        Route::Caches {
            env: "sandbox-dev".into(),
        },
    );
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::WatchStats { caches, .. } if caches.len() == 4)),
        "opening an environment starts polling its caches: {effects:?}"
    );
    live(&mut app);
    // A queue cache with an evicting policy must be flagged.
    let watch = app.stats_watch_id().expect("watch");
    app.update(Action::QueueCache {
        watch,
        cache: "orders".into(),
        queues: true,
    });
    let mut lru = stats(Role::Primary, 1600.0, 41 << 20, 13);
    lru.maxmemory_policy = Some("allkeys-lru".into());
    sample(&mut app, "orders", "orders-001", lru);
    snap!("caches", render(&app, 80, 24));
}

#[test]
fn tui_cache_view_shows_nodes_and_charts() {
    let mut app = app();
    open(
        &mut app,
        Route::Caches {
            env: "sandbox-dev".into(),
        },
    );
    app.update(Action::Enter);
    assert_eq!(
        app.route,
        Route::Cache {
            env: "sandbox-dev".into(),
            cache: "orders".into()
        }
    );
    live(&mut app);
    snap!("cache_stats", render(&app, 80, 24));
    app.update(Action::SelectTab(Tab::Keyspace));
    snap!("cache_keyspace", render(&app, 80, 24));
}

#[test]
fn tui_cache_view_marks_a_node_down_with_the_reason() {
    let mut app = app();
    open(
        &mut app,
        Route::Cache {
            env: "sandbox-dev".into(),
            cache: "orders".into(),
        },
    );
    live(&mut app);
    refused(&mut app, "orders", "orders-003");
    app.update(Action::Bottom);
    let screen = render(&app, 80, 24);
    assert!(screen.contains("down"), "{screen}");
    assert!(screen.contains("connection refused"), "{screen}");
    snap!("cache_node_down", screen);
    // The caches list says so too.
    app.update(Action::Back);
    assert!(render(&app, 80, 24).contains("⚠ 1 down"));
}

#[test]
fn tui_slowlog_escapes_hostile_key_names() {
    let mut app = app();
    open(
        &mut app,
        Route::Cache {
            env: "sandbox-dev".into(),
            cache: "orders".into(),
        },
    );
    let watch = app
        .detail_watch_id()
        .expect("a detail watch runs in a cache view");
    let hostile: Vec<Vec<Vec<u8>>> = vec![
        vec![b"GET".to_vec(), b"user:\x1b[2J\x1b]0;pwned\x07".to_vec()],
        vec![
            b"SET".to_vec(),
            "invoice\u{202e}fdp.exe".as_bytes().to_vec(),
            b"a\rb\n".to_vec(),
        ],
        vec![b"DEL".to_vec(), b"\xff\xfebinary\x00key".to_vec()],
        vec![b"HGETALL".to_vec(), "zero\u{200b}width".as_bytes().to_vec()],
    ];
    let entries = hostile
        .into_iter()
        .enumerate()
        .map(|(i, args)| SlowlogEntry {
            id: i as u64,
            timestamp: NOW.unix_timestamp() - 60 + i as i64,
            duration_micros: 12_000 + i as u64 * 1000,
            args,
            client_addr: Some("127.0.0.1:50000".into()),
            client_name: None,
            capped: false,
        })
        .collect();
    app.update(Action::Slowlog {
        watch,
        node: "orders-001".into(),
        result: Ok(entries),
    });
    // A result for a watch that has been replaced is dropped.
    app.update(Action::Slowlog {
        watch: watch + 100,
        node: "orders-002".into(),
        result: Ok(vec![]),
    });
    assert_eq!(app.slowlog.len(), 1);
    app.update(Action::SelectTab(Tab::Slowlog));
    let screen = render(&app, 80, 24);
    assert!(!screen.contains('\x1b'), "raw ESC reached the screen");
    assert!(
        !screen.contains('\u{202e}'),
        "raw bidi override reached the screen"
    );
    assert!(screen.contains("\\x1b[2J"), "{screen}");
    assert!(screen.contains("\\u{202e}"), "{screen}");
    assert!(screen.contains("\\xff\\xfe"), "{screen}");
    snap!("cache_slowlog_hostile", screen);
}

#[test]
fn tui_events_panel_lists_control_plane_events() {
    let mut app = app();
    open(
        &mut app,
        Route::Cache {
            env: "sandbox-dev".into(),
            cache: "orders".into(),
        },
    );
    let watch = app.detail_watch_id().expect("detail watch");
    let event = |mins: i64, message: &str| CacheEvent {
        time: NOW - time::Duration::minutes(mins),
        source: "orders".into(),
        source_type: "replication-group".into(),
        message: message.into(),
    };
    app.update(Action::Events {
        watch,
        result: Ok(vec![
            event(30, "Test Failover API called for node group 0001"),
            event(
                29,
                "Failover from primary node orders-001 to replica node orders-002 completed",
            ),
            event(28, "Recovering cache nodes orders-001"),
            event(25, "Finished recovery for cache nodes orders-001"),
        ]),
    });
    app.update(Action::NextTab);
    app.update(Action::NextTab);
    app.update(Action::NextTab);
    assert_eq!(app.tab, Tab::Events);
    snap!("cache_events", render(&app, 80, 24));
}

#[test]
fn tui_snapshots_panel_lists_the_caches_snapshots_escaped() {
    use cachedeck::controlplane::Snapshot;
    let mut app = app();
    open(
        &mut app,
        Route::Cache {
            env: "sandbox-dev".into(),
            cache: "paperwurks".into(),
        },
    );
    let watch = app.detail_watch_id().expect("detail watch");
    let snap = |name: &str, status: &str, source: &str, hours: i64, size: Option<u64>| Snapshot {
        name: name.into(),
        status: status.into(),
        source: source.into(),
        cache: Some("paperwurks".into()),
        cache_cluster_id: None,
        serverless: false,
        created: Some(NOW - time::Duration::hours(hours)),
        size_bytes: size,
        shard_count: Some(3),
        engine: Some("valkey".into()),
        engine_version: Some("8.0".into()),
        node_type: None,
        arn: None,
    };
    app.update(Action::SelectTab(Tab::Snapshots));
    assert!(render(&app, 100, 24).contains("fetching snapshots"));
    app.update(Action::Snapshots {
        watch,
        result: Ok(vec![
            snap(
                "automatic.paperwurks-2026-11-30",
                "available",
                "automated",
                30,
                Some(48 << 20),
            ),
            snap("before-deploy", "creating", "manual", 1, None),
            snap("evil\x1b[2J\u{202e}name", "failed", "manual", 5, None),
        ]),
    });
    // A result for a watch that has been replaced is dropped.
    app.update(Action::Snapshots {
        watch: watch + 100,
        result: Ok(vec![]),
    });
    let screen = render(&app, 100, 24);
    assert!(!screen.contains('\x1b'), "raw ESC reached the screen");
    assert!(
        !screen.contains('\u{202e}'),
        "raw bidi override reached the screen"
    );
    for want in [
        "before-deploy",
        "automatic.paperwurks-2026-11-30",
        "automated",
        "48M",
        "creating",
        "\\x1b[2J",
    ] {
        assert!(screen.contains(want), "{want} missing:\n{screen}");
    }
    // Newest first.
    let at = |s: &str| screen.find(s).expect("listed");
    assert!(at("before-deploy") < at("evil") && at("evil") < at("automatic.paperwurks"));
    snap!("cache_snapshots", screen);

    // A cache AWS keeps no snapshots of says so instead of waiting.
    open(
        &mut app,
        Route::Cache {
            env: "sandbox-dev".into(),
            cache: "valkey-ecs".into(),
        },
    );
    app.update(Action::SelectTab(Tab::Snapshots));
    let screen = render(&app, 100, 24);
    assert!(screen.contains("AWS keeps snapshots of"), "{screen}");

    // A failure is shown, escaped, instead of the table.
    open(
        &mut app,
        Route::Cache {
            env: "sandbox-dev".into(),
            cache: "storefront".into(),
        },
    );
    let watch = app.detail_watch_id().expect("detail watch");
    app.update(Action::SelectTab(Tab::Snapshots));
    app.update(Action::Snapshots {
        watch,
        result: Err("failed to DescribeServerlessCacheSnapshots: access denied \x1b]0;x".into()),
    });
    let screen = render(&app, 100, 24);
    assert!(screen.contains("snapshots unavailable"), "{screen}");
    assert!(!screen.contains('\x1b'));
}

#[test]
fn tui_help_overlay_lists_every_key() {
    let mut app = app();
    app.update(Action::ToggleHelp);
    let screen = render(&app, 80, 24);
    for (keys, _) in cachedeck::tui::keys::HELP {
        assert!(screen.contains(keys), "help misses {keys}:\n{screen}");
    }
    snap!("help", screen);
    app.update(Action::Back);
    assert!(!app.help);
}

#[test]
fn tui_filter_narrows_the_list_and_esc_clears_it() {
    let mut app = app();
    open(
        &mut app,
        Route::Caches {
            env: "sandbox-dev".into(),
        },
    );
    app.update(Action::StartFilter);
    for c in "pap".chars() {
        app.update(Action::PromptInput(c));
    }
    let screen = render(&app, 80, 24);
    assert!(
        screen.contains("paperwurks") && !screen.contains("storefront"),
        "{screen}"
    );
    snap!("caches_filtered", screen);
    app.update(Action::PromptSubmit);
    app.update(Action::Enter);
    assert_eq!(
        app.route,
        Route::Cache {
            env: "sandbox-dev".into(),
            cache: "paperwurks".into()
        },
        "Enter opens the filtered row"
    );
    app.update(Action::Back);
    app.update(Action::StartFilter);
    app.update(Action::PromptInput('x'));
    app.update(Action::Back);
    assert!(app.filter.is_empty());
    assert!(render(&app, 80, 24).contains("storefront"));
}

#[test]
fn tui_command_mode_navigates_and_reports_mistakes() {
    let mut app = app();
    let type_command = |app: &mut App, text: &str| {
        app.update(Action::StartCommand);
        for c in text.chars() {
            app.update(Action::PromptInput(c));
        }
        app.update(Action::PromptSubmit)
    };
    type_command(&mut app, "caches dev");
    assert_eq!(
        app.route,
        Route::Caches {
            env: "sandbox-dev".into()
        }
    );
    type_command(&mut app, "cache storefront");
    assert_eq!(
        app.route,
        Route::Cache {
            env: "sandbox-dev".into(),
            cache: "storefront".into()
        }
    );
    type_command(&mut app, "cache nope");
    assert!(
        app.message
            .as_ref()
            .is_some_and(|m| m.error && m.text.contains("no cache `nope`"))
    );
    type_command(&mut app, "envs");
    assert_eq!(app.route, Route::Envs);
    let effects = type_command(&mut app, "frobnicate");
    assert!(effects.contains(&Effect::StopStats) || app.stats_watch_id().is_none());
    snap!("command_error", render(&app, 80, 24));
    type_command(&mut app, "q");
    assert!(app.quit);
}

#[test]
fn tui_adapts_to_a_small_and_a_wide_terminal() {
    let mut app = app();
    open(
        &mut app,
        Route::Cache {
            env: "sandbox-dev".into(),
            cache: "paperwurks".into(),
        },
    );
    live(&mut app);
    app.update(Action::Resize(60, 16));
    let small = render(&app, 60, 16);
    assert!(small.contains("paperwurks"), "{small}");
    app.update(Action::Resize(140, 40));
    snap!("cache_cluster_wide", render(&app, 140, 40));
}

#[test]
fn tui_stale_stats_from_a_left_view_are_dropped() {
    let mut app = app();
    open(
        &mut app,
        Route::Caches {
            env: "sandbox-dev".into(),
        },
    );
    let old = app.stats_watch_id().expect("watch");
    open(&mut app, Route::Envs);
    assert_eq!(app.stats_watch_id(), None);
    open(
        &mut app,
        Route::Caches {
            env: "sandbox-dev".into(),
        },
    );
    let new = app.stats_watch_id().expect("watch");
    assert_ne!(old, new);
    app.update(Action::Stats {
        watch: old,
        event: Box::new(StatsEvent::Sample {
            key: NodeKey {
                env: "sandbox-dev".into(),
                cache: "orders".into(),
                node: "orders-001".into(),
            },
            stats: Box::new(stats(Role::Primary, 999.0, 1, 0)),
            info: Arc::new(Info::default()),
        }),
    });
    assert_eq!(app.book.cache_ops_per_sec("sandbox-dev", "orders"), None);
}

#[test]
fn tui_without_a_terminal_points_at_the_headless_commands() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = assert_cmd::Command::cargo_bin("cachedeck")
        .expect("binary")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("CACHEDECK_CONFIG_DIR", home.path().join("config"))
        .env("CACHEDECK_STATE_DIR", home.path().join("state"))
        .env("CACHEDECK_SANDBOX_DIR", home.path().join("sandbox"))
        .env("AWS_CONFIG_FILE", home.path().join("aws-config"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .expect("run cachedeck");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing may garble a pipe");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("not a terminal") && stderr.contains("cachedeck caches"),
        "{stderr}"
    );
}

#[test]
fn tui_tables_size_columns_from_content_and_cut_long_names_in_the_middle() {
    let mut app = app();
    let names = [
        "paperwurks-prod-redis-001",
        "paperwurks-prod-redis-002",
        "jobs-production-sidekiq-valkey-cluster-001",
        "jobs-production-sidekiq-valkey-cluster-002",
        "env0-cache-000",
        "env0-cache-049",
    ];
    let caches: Vec<Cache> = names
        .iter()
        .map(|name| {
            let mut c = estate_caches().remove(0);
            c.name = name.to_string();
            c
        })
        .collect();
    app.update(Action::Discovered {
        env: "sandbox-dev".into(),
        result: Ok(Discovery {
            caches,
            warnings: vec![],
        }),
    });
    open(
        &mut app,
        Route::Caches {
            env: "sandbox-dev".into(),
        },
    );
    // Wide: every name whole, nothing cut while space is left.
    let wide = render(&app, 160, 12);
    for name in names {
        assert!(wide.contains(name), "{name} whole at 160 columns:\n{wide}");
    }
    snap!("caches_long_names_160", wide);
    // Narrow: the long names are cut in the middle, their tails still tell them apart.
    let narrow = render(&app, 80, 12);
    for short in ["env0-cache-000", "env0-cache-049"] {
        assert!(
            narrow.contains(short),
            "{short} fits whole at 80:\n{narrow}"
        );
    }
    for tail in ["…redis-001", "…redis-002", "…uster-001", "…uster-002"] {
        assert!(narrow.contains(tail), "{tail} at 80:\n{narrow}");
    }
    snap!("caches_long_names_80", narrow);
}
