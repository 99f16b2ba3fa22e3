//! Config files: every fixture under tests/fixtures/config is rejected with the exact message
//! pinned beside it, and the shipped example loads.

use cachedeck::config::Config;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config")
}

#[test]
fn every_bad_config_fixture_fails_with_its_pinned_message() {
    let mut checked = 0;
    let mut entries: Vec<_> = std::fs::read_dir(fixtures())
        .expect("fixtures dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    entries.sort();
    let mut mismatches = Vec::new();
    for path in entries {
        let text = std::fs::read_to_string(&path).expect("read fixture");
        let shown = Path::new("tests/fixtures/config").join(path.file_name().expect("name"));
        let err = Config::parse(&shown, &text).expect_err("fixture must be rejected");
        let expected_path = path.with_extension("err");
        let got = format!("{err}\n");
        match std::fs::read_to_string(&expected_path) {
            Ok(expected) if expected == got => {}
            Ok(expected) => mismatches.push(format!(
                "{}:\n--- expected\n{expected}--- got\n{got}",
                shown.display()
            )),
            Err(_) if std::env::var_os("CACHEDECK_BLESS").is_some() => {
                std::fs::write(&expected_path, &got).expect("write expected");
            }
            Err(_) => mismatches.push(format!(
                "{}: no .err file (run with CACHEDECK_BLESS=1 to write it); got:\n{got}",
                shown.display()
            )),
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} fixtures found");
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn no_config_error_echoes_a_secret() {
    let path = fixtures().join("inline-password.toml");
    let text = std::fs::read_to_string(&path).expect("read");
    let err = Config::parse(&path, &text).expect_err("rejected");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn shipped_example_config_loads_with_every_seed_estate() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/config.example.toml");
    let config = Config::load(&path).expect("example config is valid");
    let envs = &config.environments;
    for name in [
        "jobs-production",
        "storefront-dev",
        "paperwurks-prod",
        "plataforma-bet",
        "trigpointing",
    ] {
        assert!(envs.contains_key(name), "example lacks {name}");
    }
    let storefront = &envs["storefront-dev"];
    let vars = storefront.template_vars("storefront-dev");
    let endpoint = storefront.ssm[0]
        .endpoint
        .as_deref()
        .expect("endpoint template");
    assert_eq!(
        cachedeck::config::expand_template(endpoint, &vars).as_deref(),
        Ok("/storefront-dev/redis/endpoint")
    );
    assert_eq!(
        envs["trigpointing"].ecs[0].host.as_deref(),
        Some("valkey.trigpointing.local")
    );
}
