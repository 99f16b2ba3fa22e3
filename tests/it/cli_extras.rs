//! The command line's finishing touches through the real binary: shell completions for
//! bash, zsh and fish, the manual page, and `--version` naming the commit.

use assert_cmd::Command;

fn cachedeck(home: &tempfile::TempDir) -> Command {
    let mut cmd = Command::cargo_bin("cachedeck").expect("binary");
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("CACHEDECK_CONFIG_DIR", home.path().join("config"))
        .env("CACHEDECK_STATE_DIR", home.path().join("state"))
        .timeout(std::time::Duration::from_secs(60));
    cmd
}

fn stdout_of(args: &[&str]) -> String {
    let home = tempfile::tempdir().expect("tempdir");
    let out = cachedeck(&home).args(args).output().expect("run cachedeck");
    assert!(
        out.status.success(),
        "cachedeck {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn completions_are_printed_for_bash_zsh_and_fish_with_every_command() {
    let bash = stdout_of(&["completions", "bash"]);
    assert!(bash.contains("_cachedeck()"), "{bash}");
    assert!(bash.contains("complete -F _cachedeck"), "{bash}");
    let zsh = stdout_of(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef cachedeck"), "{zsh}");
    let fish = stdout_of(&["completions", "fish"]);
    assert!(fish.contains("complete -c cachedeck"), "{fish}");
    for script in [&bash, &zsh, &fish] {
        for command in [
            "envs", "caches", "stats", "run", "runbooks", "runs", "sandbox", "man",
        ] {
            assert!(script.contains(command), "`{command}` missing");
        }
        // Options of subcommands and their values complete too.
        assert!(script.contains("--confirm-cache"));
        assert!(script.contains("markdown"));
    }
    let home = tempfile::tempdir().expect("tempdir");
    let bad = cachedeck(&home)
        .args(["completions", "tcsh"])
        .output()
        .expect("run cachedeck");
    assert_eq!(bad.status.code(), Some(2), "an unknown shell is bad input");
}

#[test]
fn man_prints_a_roff_page_documenting_every_command() {
    let page = stdout_of(&["man"]);
    assert!(page.contains(".TH cachedeck 1"), "{page}");
    for section in [".SH NAME", ".SH SYNOPSIS", ".SH OPTIONS", ".SH COMMANDS"] {
        assert!(page.contains(section), "{section} missing");
    }
    for command in [
        ".SS \"cachedeck run\"",
        ".SS \"cachedeck runs resume\"",
        ".SS \"cachedeck sandbox up\"",
        ".SS \"cachedeck completions\"",
    ] {
        assert!(page.contains(command), "{command} missing");
    }
    // A subcommand's options and its after-help (the run's exit codes) are in the page.
    assert!(page.contains("confirm\\-cache"), "options of run");
    assert!(
        page.contains("interrupted; resume with"),
        "exit codes of run"
    );
    assert!(
        !page.contains("sandbox serve"),
        "hidden commands stay hidden"
    );
}

#[test]
fn version_names_the_package_version_and_the_commit() {
    let version = stdout_of(&["--version"]);
    let line = version.trim();
    let expected_commit = commit_of_checkout().unwrap_or_else(|| "unknown commit".into());
    assert_eq!(
        line,
        format!(
            "cachedeck {} ({expected_commit})",
            env!("CARGO_PKG_VERSION")
        )
    );
}

/// The checkout's HEAD as build.rs reads it, when the package is its own git checkout.
fn commit_of_checkout() -> Option<String> {
    let dir = env!("CARGO_MANIFEST_DIR");
    let git = |args: &[&str]| -> Option<String> {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let top = git(&["rev-parse", "--show-toplevel"])?;
    let same = std::path::Path::new(&top).canonicalize().ok()?
        == std::path::Path::new(dir).canonicalize().ok()?;
    if !same {
        return None;
    }
    git(&["rev-parse", "--short=12", "HEAD"])
}
