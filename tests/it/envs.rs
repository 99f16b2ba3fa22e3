//! `cachedeck envs` through the real binary: environments implied by AWS profiles when no
//! config file exists, and a bad config file named on the command line.

use assert_cmd::Command;
use serde_json::Value;

fn cachedeck(home: &tempfile::TempDir) -> Command {
    let mut cmd = Command::cargo_bin("cachedeck").expect("binary");
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("CACHEDECK_CONFIG_DIR", home.path().join("config"))
        .env("CACHEDECK_STATE_DIR", home.path().join("state"))
        .env("CACHEDECK_SANDBOX_DIR", home.path().join("sandbox"))
        .env("AWS_CONFIG_FILE", home.path().join("aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            home.path().join("aws-credentials"),
        )
        // Nothing may leave loopback: an implied profile points its calls at a closed port.
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .timeout(std::time::Duration::from_secs(120));
    cmd
}

#[test]
fn aws_profiles_become_environments_without_a_config_file() {
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        home.path().join("aws-config"),
        "[default]\nregion = us-east-1\n\n[profile storefront-dev]\nregion = eu-west-2\n\n[profile paperwurks-prod]\nregion = eu-west-2\n",
    )
    .expect("write aws config");
    let out = cachedeck(&home)
        .args(["envs", "--output", "json"])
        .output()
        .expect("run");
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let envs = json["environments"].as_array().expect("environments");
    let names: Vec<&str> = envs.iter().filter_map(|e| e["name"].as_str()).collect();
    assert_eq!(names, ["default", "paperwurks-prod", "storefront-dev"]);
    let storefront = &envs[2];
    assert_eq!(storefront["provider"], "aws");
    assert_eq!(storefront["profile"], "storefront-dev");
    assert_eq!(storefront["region"], "eu-west-2");
    // Implied environments are read-only until a config file says otherwise.
    assert_eq!(storefront["protection"], "read-only");
    assert_eq!(storefront["source"], "aws config");
}

#[test]
fn a_bad_config_file_is_exit_2_with_file_line_and_column() {
    let home = tempfile::tempdir().expect("tempdir");
    let path = home.path().join("bad.toml");
    std::fs::write(
        &path,
        "[environments.dev]\nprovider = \"aws\"\nregoin = \"x\"\n",
    )
    .expect("write");
    let out = cachedeck(&home)
        .args(["caches", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:3:1: unknown field `regoin`", path.display())),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn a_named_config_that_does_not_exist_says_so() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = cachedeck(&home)
        .args(["envs"])
        .env("CACHEDECK_CONFIG", home.path().join("nope.toml"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nope.toml does not exist"), "{stderr}");
}
