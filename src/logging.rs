//! Logging: tracing to a file under the state directory, never to the screen (the TUI owns
//! the terminal, and headless output must stay parseable). `CACHEDECK_LOG` sets the filter.
//!
//! The log directory is created 0700 and every log file 0600 (as the journals are): a log
//! line may name caches, hosts and accounts, and no other local user may read it. One file
//! per UTC day, `cachedeck.log.YYYY-MM-DD`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

/// The file name prefix of the daily log files.
pub const FILE_PREFIX: &str = "cachedeck.log";

/// Starts file logging; keep the guard alive until exit so buffered lines are written.
/// Logging is best effort: an unwritable state directory leaves it off.
pub fn init() -> Option<WorkerGuard> {
    let dir = crate::config::state_dir().join("logs");
    let appender = DailyFile::open(&dir).ok()?;
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let mut filter = EnvFilter::try_from_env("CACHEDECK_LOG")
        .unwrap_or_else(|_| EnvFilter::new("cachedeck=info,warn"));
    for clamp in crate::aws::SDK_LOG_CLAMPS {
        if let Ok(directive) = clamp.parse() {
            filter = filter.add_directive(directive);
        }
    }
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init()
        .ok()?;
    Some(guard)
}

/// A log file per UTC day in a private directory: the directory 0700, each file 0600
/// (tightened when an older run left them wider).
pub struct DailyFile {
    dir: PathBuf,
    day: String,
    file: File,
}

impl DailyFile {
    /// Creates (or tightens) `dir` and opens today's file.
    pub fn open(dir: &Path) -> std::io::Result<DailyFile> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        let day = today();
        let file = open_private(&dir.join(format!("{FILE_PREFIX}.{day}")))?;
        Ok(DailyFile {
            dir: dir.to_path_buf(),
            day,
            file,
        })
    }
}

impl Write for DailyFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let day = today();
        if day != self.day {
            self.file = open_private(&self.dir.join(format!("{FILE_PREFIX}.{day}")))?;
            self.day = day;
        }
        self.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Opens `path` for appending, created 0600, and made 0600 if it already existed wider.
fn open_private(path: &Path) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    if file.metadata()?.permissions().mode() & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

/// Today's UTC date as `YYYY-MM-DD`.
fn today() -> String {
    let d = time::OffsetDateTime::now_utc().date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directory_is_private_and_files_are_0600() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("state/logs");
        // An older run's wide directory and file are tightened.
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let old = dir.join(format!("{FILE_PREFIX}.{}", today()));
        std::fs::write(&old, "old\n").expect("write");
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let mut log = DailyFile::open(&dir).expect("open");
        log.write_all(b"line\n").expect("write");
        log.flush().expect("flush");
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&old), 0o600);
        assert_eq!(std::fs::read_to_string(&old).expect("read"), "old\nline\n");
        let fresh = tmp.path().join("other/logs");
        DailyFile::open(&fresh).expect("open");
        assert_eq!(mode(&fresh), 0o700);
        assert_eq!(
            mode(&fresh.join(format!("{FILE_PREFIX}.{}", today()))),
            0o600
        );
    }
}
