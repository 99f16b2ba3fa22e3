//! What `sandbox up`, `down`, `repair` and the endpoint daemon share: the options of `up`,
//! the one error type, and the sandbox directory's lock.

use super::tls;
use crate::valkey::server as srv;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What `up` needs.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub dir: PathBuf,
    /// Keys to seed across all caches.
    pub keys: u64,
    /// The cachedeck binary that runs the endpoint daemon (`sandbox serve`).
    pub exe: PathBuf,
}

/// Why the sandbox could not be started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(transparent)]
    Binary(#[from] crate::valkey::binary::BinaryError),
    #[error(transparent)]
    Server(#[from] srv::ServerError),
    #[error(transparent)]
    State(#[from] super::state::StateError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("{0}")]
    Params(#[from] crate::controlplane::ControlPlaneError),
    #[error("prepare {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "set up {cache}: {detail}; see the node logs under {dir}, then `cachedeck sandbox down`"
    )]
    Setup {
        cache: String,
        detail: String,
        dir: PathBuf,
    },
    #[error(
        "the sandbox in {dir} is partly down ({detail}); run `cachedeck sandbox down`, then `up`"
    )]
    Broken { dir: PathBuf, detail: String },
}

/// Takes the sandbox's exclusive lock (held until the file drops), so two `up`/`down` runs
/// never build or tear down the same sandbox at once; waits up to two minutes for it.
pub(crate) async fn lock(dir: &Path) -> Result<std::fs::File, SandboxError> {
    make_private_dir(dir)?;
    let path = dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| SandboxError::Io {
            path: path.clone(),
            source,
        })?;
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(SandboxError::Broken {
                    dir: dir.to_path_buf(),
                    detail: "another `cachedeck sandbox up` or `down` held its lock for 2 minutes"
                        .into(),
                });
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(SandboxError::Io { path, source });
            }
        }
    }
}

pub(crate) fn make_private_dir(dir: &Path) -> Result<(), SandboxError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| SandboxError::Io {
            path: dir.to_path_buf(),
            source,
        })
}
