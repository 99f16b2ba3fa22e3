//! INFO parser tests on text captured from a real Valkey 8.1 primary/replica pair, and on a
//! Redis 7.0 (ElastiCache-style) reply assembled from its documented fields.

use super::*;

const VALKEY_PRIMARY: &str = include_str!("../../../tests/fixtures/info/valkey-8.1-primary.txt");
const VALKEY_REPLICA: &str = include_str!("../../../tests/fixtures/info/valkey-8.1-replica.txt");
const REDIS_70: &str =
    include_str!("../../../tests/fixtures/info/redis-7.0-elasticache-primary.txt");

#[test]
fn fixtures_keep_their_crlf_line_ends() {
    assert!(
        VALKEY_PRIMARY.contains("\r\n"),
        "git must not normalise the fixture"
    );
}

#[test]
fn valkey_primary_server_and_memory() {
    let info = Info::parse(VALKEY_PRIMARY);
    assert_eq!(info.server.engine, "valkey");
    assert_eq!(info.server.version.as_deref(), Some("8.1.8"));
    assert_eq!(info.server.redis_version.as_deref(), Some("7.2.4"));
    assert_eq!(info.server.mode.as_deref(), Some("standalone"));
    assert_eq!(info.server.tcp_port, Some(26401));
    assert_eq!(info.clients.connected_clients, Some(1));
    assert_eq!(info.clients.blocked_clients, Some(0));
    assert_eq!(info.memory.used_memory, Some(1_250_312));
    assert_eq!(info.memory.maxmemory, Some(67_108_864));
    assert_eq!(info.memory.maxmemory_policy.as_deref(), Some("allkeys-lru"));
    assert_eq!(info.memory.mem_fragmentation_ratio, Some(4.90));
    assert_eq!(info.cluster_enabled, Some(false));
    // Values containing ':' keep everything after the first one.
    assert_eq!(info.get("executable"), Some("/usr/local/bin/valkey-server"));
    assert_eq!(
        info.get("listener0"),
        Some("name=tcp,bind=*,bind=-::*,port=26401")
    );
}

#[test]
fn valkey_primary_persistence_stats_and_cpu() {
    let info = Info::parse(VALKEY_PRIMARY);
    let p = &info.persistence;
    assert_eq!(p.loading, Some(false));
    assert_eq!(p.rdb_changes_since_last_save, Some(52));
    assert_eq!(p.rdb_last_save_time, Some(1_795_465_190));
    assert_eq!(p.rdb_last_bgsave_status.as_deref(), Some("ok"));
    assert_eq!(p.aof_enabled, Some(true));
    let s = &info.stats;
    assert_eq!(s.total_commands_processed, Some(65));
    assert_eq!(s.instantaneous_ops_per_sec, Some(39));
    assert_eq!(s.keyspace_hits, Some(1));
    assert_eq!(s.keyspace_misses, Some(1));
    assert_eq!(s.total_net_input_bytes, Some(2080));
    assert_eq!(s.instantaneous_output_kbps, Some(1.67));
    assert_eq!(info.cpu.used_cpu_sys, Some(0.012627));
}

#[test]
fn valkey_primary_replication_keyspace_and_command_stats() {
    let info = Info::parse(VALKEY_PRIMARY);
    let r = &info.replication;
    assert_eq!(r.role, Role::Primary);
    assert_eq!(r.connected_replicas, Some(1));
    assert_eq!(r.master_repl_offset, Some(1663));
    assert_eq!(
        r.replicas,
        vec![ReplicaLink {
            ip: "127.0.0.1".into(),
            port: Some(26402),
            state: Some("online".into()),
            offset: Some(1663),
            lag_seconds: Some(0),
        }]
    );
    assert_eq!(
        info.keyspace,
        vec![
            KeyspaceDb {
                db: 0,
                keys: 51,
                expires: 1,
                avg_ttl_ms: 99_817
            },
            KeyspaceDb {
                db: 3,
                keys: 1,
                expires: 0,
                avg_ttl_ms: 0
            },
        ]
    );
    assert_eq!(info.total_keys(), 52);
    assert_eq!(info.total_expires(), 1);
    assert_eq!(info.commandstats[0].command, "set");
    assert_eq!(info.commandstats[0].calls, 51);
    let config_set = info
        .commandstats
        .iter()
        .find(|c| c.command == "config|set")
        .expect("subcommand stats are kept");
    assert_eq!(config_set.usec, 480);
    let incr = info.commandstats.iter().find(|c| c.command == "incr");
    assert_eq!(incr.and_then(|c| c.failed_calls), Some(1));
    assert_eq!(
        info.errorstats,
        vec![ErrorStat {
            error: "ERR".into(),
            count: 2
        }]
    );
    // Sections without a typed view are still reachable.
    assert!(info.raw["latencystats"].contains_key("latency_percentiles_usec_get"));
}

#[test]
fn valkey_replica_side_of_the_link() {
    let info = Info::parse(VALKEY_REPLICA);
    let r = &info.replication;
    assert_eq!(r.role, Role::Replica);
    assert_eq!(r.master_host.as_deref(), Some("127.0.0.1"));
    assert_eq!(r.master_port, Some(26401));
    assert_eq!(r.master_link_status.as_deref(), Some("up"));
    assert_eq!(r.slave_repl_offset, Some(1663));
    assert_eq!(r.master_sync_in_progress, Some(false));
    // -1 ("never") is not a duration.
    assert_eq!(r.master_link_down_since_seconds, None);
    assert!(r.replicas.is_empty());
    assert_eq!(info.persistence.rdb_last_bgsave_time_sec, None);
}

#[test]
fn redis_70_elasticache_reply() {
    let info = Info::parse(REDIS_70);
    assert_eq!(info.server.engine, "redis");
    assert_eq!(info.server.version.as_deref(), Some("7.0.7"));
    assert_eq!(info.server.mode.as_deref(), Some("cluster"));
    assert_eq!(info.cluster_enabled, Some(true));
    assert_eq!(info.clients.blocked_clients, Some(3));
    assert_eq!(
        info.memory.maxmemory_policy.as_deref(),
        Some("volatile-lru")
    );
    assert_eq!(
        info.persistence.rdb_last_bgsave_status.as_deref(),
        Some("err")
    );
    assert_eq!(info.replication.replicas.len(), 2);
    assert_eq!(info.replication.replicas[1].offset, Some(4_999_000));
    assert_eq!(info.replication.replicas[1].lag_seconds, Some(1));
    assert_eq!(info.keyspace[0].keys, 1_200_000);
    // Valkey-only fields are simply absent.
    assert_eq!(info.get("valkey_version"), None);
    assert_eq!(info.errorstats[0].error, "MOVED");
}

#[test]
fn unknown_and_malformed_lines_are_skipped_not_fatal() {
    let text = "# Server\r\nredis_version:7.2.0\r\nno colon here\r\n:emptyname\r\n\
                future_field:42\r\n# Keyspace\r\ndb0:keys=oops,expires=1\r\n\
                db1:keys=5\r\ndbx:keys=1\r\n# Replication\r\nrole:master\r\n\
                slave10:ip=a,port=1\r\nslave2:ip=b,port=notaport\r\nslave:ip=c\r\n\
                # Stats\r\ntotal_commands_processed:-5\r\nexpired_keys:\r\n";
    let info = Info::parse(text);
    assert_eq!(info.get("future_field"), Some("42"));
    assert_eq!(
        info.keyspace,
        vec![KeyspaceDb {
            db: 1,
            keys: 5,
            expires: 0,
            avg_ttl_ms: 0
        }]
    );
    let ips: Vec<&str> = info
        .replication
        .replicas
        .iter()
        .map(|r| r.ip.as_str())
        .collect();
    assert_eq!(ips, ["b", "a"], "slave2 sorts before slave10");
    assert_eq!(info.replication.replicas[0].port, None);
    assert_eq!(info.stats.total_commands_processed, None);
    assert_eq!(info.stats.expired_keys, None);
    assert_eq!(info.server.engine, "redis");
}

#[test]
fn empty_and_garbage_input_gives_an_empty_info() {
    assert_eq!(Info::parse("").total_keys(), 0);
    let info = Info::parse("\u{1b}[2J\r\n\0\0:\r\n###\r\n");
    assert_eq!(info.replication.role, Role::Unknown);
    assert!(info.keyspace.is_empty());
}

#[test]
fn parsing_is_cheap_enough_to_poll_many_nodes_every_second() {
    // 30 nodes polled every second for half a minute: well under the time it covers, even
    // unoptimised and on a busy machine.
    let started = std::time::Instant::now();
    for _ in 0..900 {
        std::hint::black_box(Info::parse(VALKEY_PRIMARY));
    }
    let took = started.elapsed();
    eprintln!("900 INFO parses took {took:?}");
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
}
