//! Output safety through the real binary: private log files, and text from outside (AWS
//! names, SSM values, server errors) escaped on every terminal-bound path.

use assert_cmd::Command;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn cachedeck(home: &Path) -> Command {
    let mut cmd = Command::cargo_bin("cachedeck").expect("binary");
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("CACHEDECK_CONFIG_DIR", home.join("config"))
        .env("CACHEDECK_STATE_DIR", home.join("state"))
        .env("CACHEDECK_SANDBOX_DIR", home.join("sandbox"))
        .env("AWS_CONFIG_FILE", home.join("aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("aws-credentials"))
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .timeout(std::time::Duration::from_secs(120));
    cmd
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
}

#[test]
fn the_log_directory_is_0700_and_its_files_0600() {
    let home = tempfile::tempdir().expect("tempdir");
    cachedeck(home.path())
        .args(["envs", "--output", "json"])
        .output()
        .expect("run");
    let logs = home.path().join("state/logs");
    assert_eq!(mode(&logs), 0o700, "{}", logs.display());
    let files: Vec<_> = std::fs::read_dir(&logs)
        .expect("read logs")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    assert!(!files.is_empty(), "no log file in {}", logs.display());
    for f in files {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
}
