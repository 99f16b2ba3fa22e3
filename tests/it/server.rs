//! ValkeyServer: real processes on free ports, secrets kept out of argv, killed on drop.

use crate::harness::valkey::{self, ServerSpec};
use cachedeck::valkey::server::{self as srv, port_free};
use std::time::Duration;

#[test]
fn server_answers_and_port_is_freed_on_drop() {
    let server = valkey::server();
    let port = server.port();
    assert_eq!(valkey::raw_command(port, &["PING"]), "+PONG\r\n");
    assert!(!port_free(port));
    drop(server);
    assert!(port_free(port), "port {port} still taken after drop");
}

#[test]
fn password_lives_in_config_file_not_argv() {
    let server = valkey::start(ServerSpec::new().config_line("requirepass s3cret-test-pass"));
    let pid = server.pid().expect("pid");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
    assert!(!String::from_utf8_lossy(&cmdline).contains("s3cret"));
    assert!(valkey::raw_command(server.port(), &["GET", "x"]).starts_with("-NOAUTH"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(server.dir().join("cachedeck.conf"))
        .expect("conf")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn restart_keeps_rdb_data() {
    let mut server = valkey::start(ServerSpec::new().args(["--save", "900 1"]));
    assert_eq!(
        valkey::raw_command(server.port(), &["SET", "marker", "1"]),
        "+OK\r\n"
    );
    server.restart().expect("restart");
    assert_eq!(
        valkey::raw_command(server.port(), &["GET", "marker"]),
        "$1\r\n1\r\n"
    );
}

#[test]
fn detached_server_outlives_handle_and_stops_by_pid() {
    let dir = srv::unique_temp_dir("it-detached");
    let detached = srv::spawn_detached(&ServerSpec::new().dir(&dir)).expect("spawn detached");
    assert!(srv::pid_alive(detached.pid));
    assert_eq!(valkey::raw_command(detached.port, &["PING"]), "+PONG\r\n");
    srv::stop_detached(detached.pid, detached.port, Duration::from_secs(5)).expect("stop");
    assert!(!srv::pid_alive(detached.pid));
    assert!(port_free(detached.port));
    let _ = std::fs::remove_dir_all(dir);
}
