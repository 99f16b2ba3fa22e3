//! Where cachedeck keeps its files: XDG config, state and data directories, each with an
//! environment-variable override (used by tests and by people with unusual layouts).

use std::path::PathBuf;

fn from_env(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// `$CACHEDECK_CONFIG_DIR`, else `$XDG_CONFIG_HOME/cachedeck` (`~/.config/cachedeck`).
pub fn config_dir() -> PathBuf {
    from_env("CACHEDECK_CONFIG_DIR")
        .or_else(|| dirs::config_dir().map(|d| d.join("cachedeck")))
        .unwrap_or_else(|| PathBuf::from(".cachedeck"))
}

/// The config file: `--config`, else `$CACHEDECK_CONFIG`, else `config.toml` in
/// [`config_dir`]. The bool says whether the user named it (then it must exist).
pub fn config_path(flag: Option<PathBuf>) -> (PathBuf, bool) {
    match flag.or_else(|| from_env("CACHEDECK_CONFIG")) {
        Some(path) => (path, true),
        None => (config_dir().join("config.toml"), false),
    }
}

/// `$CACHEDECK_STATE_DIR`, else `$XDG_STATE_HOME/cachedeck` (`~/.local/state/cachedeck`):
/// journals, locks of the sandbox, the sandbox itself, logs.
pub fn state_dir() -> PathBuf {
    from_env("CACHEDECK_STATE_DIR")
        .or_else(|| dirs::state_dir().map(|d| d.join("cachedeck")))
        .or_else(|| dirs::home_dir().map(|d| d.join(".local/state/cachedeck")))
        .unwrap_or_else(|| PathBuf::from(".cachedeck/state"))
}

/// `$CACHEDECK_DATA_DIR`, else `$XDG_DATA_HOME/cachedeck` (`~/.local/share/cachedeck`).
pub fn data_dir() -> PathBuf {
    from_env("CACHEDECK_DATA_DIR")
        .or_else(|| dirs::data_dir().map(|d| d.join("cachedeck")))
        .unwrap_or_else(|| PathBuf::from(".cachedeck/data"))
}
