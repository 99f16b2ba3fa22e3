//! Faults of the sandbox's consumer tasks, so every layer of the connectivity check from a
//! consumer can be seen failing once (`cachedeck sandbox fault SERVICE FAULT`):
//!
//! - `port-blocked`: the task's network drops the cache's ports — ECS Exec sessions into
//!   the task run in a network namespace of their own (`unshare -rn`) where a listener that
//!   never accepts fills each of the cache's ports, so SYNs go unanswered as a security group
//!   drops them: a TCP timeout from the task, while this host connects.
//! - `wrong-ca`: the task trusts another CA (`SSL_CERT_FILE` is an unrelated CA's file).
//! - `stale-password`: the task's secret is an old one (the cache's token was rotated, the
//!   task still holds the previous value).
//! - `only-valkey-cli`, `only-python3`, `only-ruby`, `only-openssl`, `only-shell`: a thin
//!   image — the task's `PATH` is a directory holding `sh`, `bash` and the basic tools
//!   (`stty`, `tr`, `awk`, `sed`, `grep`, `getent`, `timeout`, …) plus only that client, so the
//!   check from the consumer takes that probe (the client must exist on this host).
//!
//! Setting a fault replaces the service's task (stop, start with the fault), as a deployment
//! with a broken task definition or network would.

use super::state::State;
use crate::controlplane::ControlPlaneError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A fault of one consumer service's tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsumerFault {
    PortBlocked,
    WrongCa,
    StalePassword,
    OnlyValkeyCli,
    OnlyPython3,
    OnlyRuby,
    OnlyOpenssl,
    OnlyShell,
}

impl ConsumerFault {
    pub const ALL: [ConsumerFault; 8] = [
        ConsumerFault::PortBlocked,
        ConsumerFault::WrongCa,
        ConsumerFault::StalePassword,
        ConsumerFault::OnlyValkeyCli,
        ConsumerFault::OnlyPython3,
        ConsumerFault::OnlyRuby,
        ConsumerFault::OnlyOpenssl,
        ConsumerFault::OnlyShell,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConsumerFault::PortBlocked => "port-blocked",
            ConsumerFault::WrongCa => "wrong-ca",
            ConsumerFault::StalePassword => "stale-password",
            ConsumerFault::OnlyValkeyCli => "only-valkey-cli",
            ConsumerFault::OnlyPython3 => "only-python3",
            ConsumerFault::OnlyRuby => "only-ruby",
            ConsumerFault::OnlyOpenssl => "only-openssl",
            ConsumerFault::OnlyShell => "only-shell",
        }
    }

    /// `none` clears; anything else must be a known fault.
    pub fn parse(s: &str) -> Result<Option<ConsumerFault>, String> {
        if s == "none" {
            return Ok(None);
        }
        ConsumerFault::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .map(Some)
            .ok_or_else(|| {
                let known: Vec<&str> = ConsumerFault::ALL.iter().map(|f| f.as_str()).collect();
                format!("unknown fault `{s}` (known: none, {})", known.join(", "))
            })
    }
}

fn fail(op: &str, e: impl std::fmt::Display) -> ControlPlaneError {
    ControlPlaneError::Service {
        operation: op.into(),
        detail: e.to_string(),
    }
}

/// The CA file of a CA nobody signed the sandbox's endpoints with.
pub fn wrong_ca(dir: &Path) -> Result<PathBuf, ControlPlaneError> {
    let tls = dir.join("tls-wrong");
    let ca = tls.join("ca.pem");
    if ca.exists() {
        return Ok(ca);
    }
    super::tls::generate(&tls).map_err(|e| fail("RunTask", e))
}

/// The basic tools of a thin image (what the probes' shell part uses).
const BASE_TOOLS: &[&str] = &[
    "sh", "bash", "stty", "tr", "head", "awk", "sed", "grep", "cut", "getent", "basename", "cat",
    "timeout", "env", "sleep", "date",
];

/// The first `name` on this host's `PATH`.
fn on_host_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The client a thin image holds: (name in the image, where it is on this host).
fn image_client(fault: ConsumerFault) -> Result<Option<(&'static str, PathBuf)>, String> {
    let missing = |what: &str, hint: &str| format!("{what} is not on this host ({hint})");
    Ok(Some(match fault {
        ConsumerFault::OnlyValkeyCli => {
            // On PATH, then beside the valkey-server the sandbox runs; one that speaks TLS
            // first (the sandbox's caches use TLS).
            let mut found: Vec<(&'static str, PathBuf)> = Vec::new();
            for name in ["valkey-cli", "redis-cli"] {
                found.extend(on_host_path(name).map(|p| (name, p)));
            }
            if let Some(dir) = crate::valkey::binary::locate()
                .ok()
                .and_then(|s| s.parent().map(Path::to_path_buf))
            {
                for name in ["valkey-cli", "redis-cli"] {
                    let p = dir.join(name);
                    if p.is_file() {
                        found.push((name, p));
                    }
                }
            }
            let speaks_tls = |p: &Path| {
                let mut cmd = std::process::Command::new(p);
                if let Some(libs) = unpacked_libs(p) {
                    cmd.env("LD_LIBRARY_PATH", libs);
                }
                cmd.arg("--help").output().is_ok_and(|o| {
                    String::from_utf8_lossy(&o.stdout).contains("--tls")
                        || String::from_utf8_lossy(&o.stderr).contains("--tls")
                })
            };
            // Debian's redis-cli unpacked in the tools directory (scripts/setup-tools.sh).
            for tools in crate::valkey::binary::tools_dirs() {
                let p = tools.join("redis-tools/usr/bin/redis-cli");
                if p.is_file() {
                    found.push(("redis-cli", p));
                }
            }
            let first_tls = found.iter().position(|(_, p)| speaks_tls(p)).unwrap_or(0);
            if found.is_empty() {
                return Err(missing(
                    "valkey-cli",
                    "it comes with valkey-server; apt-get install redis-tools",
                ));
            }
            found.swap_remove(first_tls)
        }
        ConsumerFault::OnlyPython3 => {
            // The interpreter itself (a version manager's shim needs the manager).
            let out = std::process::Command::new("python3")
                .args(["-c", "import sys; print(sys.executable)"])
                .output()
                .map_err(|_| missing("python3", "apt-get install python3"))?;
            let exe = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if !out.status.success() || exe.is_empty() {
                return Err(missing("python3", "apt-get install python3"));
            }
            ("python3", PathBuf::from(exe))
        }
        ConsumerFault::OnlyRuby => (
            "ruby",
            on_host_path("ruby").ok_or_else(|| missing("ruby", "apt-get install ruby"))?,
        ),
        ConsumerFault::OnlyOpenssl => (
            "openssl",
            on_host_path("openssl").ok_or_else(|| missing("openssl", "apt-get install openssl"))?,
        ),
        ConsumerFault::OnlyShell => return Ok(None),
        ConsumerFault::PortBlocked | ConsumerFault::WrongCa | ConsumerFault::StalePassword => {
            return Ok(None);
        }
    }))
}

/// Builds the thin image's `bin` directory (symbolic links to this host's tools); returns it.
pub fn image(dir: &Path, fault: ConsumerFault) -> Result<PathBuf, ControlPlaneError> {
    let client = image_client(fault).map_err(|e| fail("RunTask", e))?;
    let bin = dir.join("images").join(fault.as_str()).join("bin");
    if bin.exists() {
        std::fs::remove_dir_all(&bin).map_err(|e| fail("RunTask", e))?;
    }
    std::fs::create_dir_all(&bin).map_err(|e| fail("RunTask", e))?;
    let base = BASE_TOOLS
        .iter()
        .filter_map(|t| on_host_path(t).map(|p| (*t, p)));
    for (name, target) in base.chain(client) {
        if let Some(libs) = unpacked_libs(&target) {
            // An unpacked package's binary finds its libraries through a wrapper.
            let script = format!(
                "#!/bin/sh\nLD_LIBRARY_PATH='{}' exec '{}' \"$@\"\n",
                libs.display(),
                target.display()
            );
            let path = bin.join(name);
            std::fs::write(&path, script).map_err(|e| fail("RunTask", e))?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| fail("RunTask", e))?;
        } else {
            std::os::unix::fs::symlink(&target, bin.join(name)).map_err(|e| fail("RunTask", e))?;
        }
    }
    Ok(bin)
}

/// For a binary unpacked from a Debian package under `<root>/usr/bin/`: the directory of its
/// unpacked libraries (`<root>/usr/lib/<triplet>`), if there is one.
fn unpacked_libs(binary: &Path) -> Option<PathBuf> {
    let root = binary.parent()?.parent()?.parent()?;
    if !root.join("debs").is_dir() {
        return None;
    }
    std::fs::read_dir(root.join("usr/lib"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir() && p.join("liblzf.so.1").exists())
}

/// The task's environment with `fault` applied (at task start).
pub fn apply(
    dir: &Path,
    fault: Option<ConsumerFault>,
    env: &mut Vec<(String, String)>,
    secret_vars: &[String],
) -> Result<(), ControlPlaneError> {
    match fault {
        Some(ConsumerFault::WrongCa) => {
            let ca = wrong_ca(dir)?.display().to_string();
            for (k, v) in env.iter_mut() {
                if k == "SSL_CERT_FILE" {
                    *v = ca.clone();
                }
            }
        }
        Some(ConsumerFault::StalePassword) => {
            let stale = format!("stale-{}", super::exec::random_hex(12));
            for (k, v) in env.iter_mut() {
                if !secret_vars.contains(k) {
                    continue;
                }
                match url::Url::parse(v) {
                    Ok(mut u) if u.password().is_some() => {
                        let _ = u.set_password(Some(&stale));
                        *v = u.to_string();
                    }
                    _ => *v = stale.clone(),
                }
            }
        }
        Some(
            f @ (ConsumerFault::OnlyValkeyCli
            | ConsumerFault::OnlyPython3
            | ConsumerFault::OnlyRuby
            | ConsumerFault::OnlyOpenssl
            | ConsumerFault::OnlyShell),
        ) => {
            let bin = image(dir, f)?;
            env.push(("PATH".into(), bin.display().to_string()));
        }
        Some(ConsumerFault::PortBlocked) | None => {}
    }
    Ok(())
}

/// Sets (or clears) a consumer service's fault and replaces its task; returns the new task.
pub async fn set(
    dir: &Path,
    env: &str,
    service: &str,
    fault: Option<ConsumerFault>,
) -> Result<String, ControlPlaneError> {
    const OP: &str = "UpdateService";
    {
        let _lock = super::setup::lock(dir).await.map_err(|e| fail(OP, e))?;
        let mut state = State::load(dir)
            .map_err(|e| fail(OP, e))?
            .ok_or_else(|| fail(OP, "the sandbox is down"))?;
        let Some(c) = state
            .consumers
            .iter_mut()
            .find(|c| c.env == env && c.service == service)
        else {
            let known: Vec<_> = state.consumers.iter().map(|c| c.service.clone()).collect();
            return Err(ControlPlaneError::NotFound {
                what: format!(
                    "consumer service {service} in {env} (known: {})",
                    known.join(", ")
                ),
            });
        };
        c.fault = fault;
        state.save(dir).map_err(|e| fail(OP, e))?;
    }
    let (_, new) = super::consumer::replace(dir, env, service, super::ecs::STOP_TIMEOUT).await?;
    Ok(new.into_iter().next().unwrap_or_default())
}

/// `cachedeck sandbox isolate --block PORT… -- ARGV…` (run under `unshare -rn`): brings the
/// namespace's loopback up, fills a never-accepting listener on each blocked port so SYNs
/// are dropped, then runs ARGV and returns its exit code.
pub fn isolate(block: &[u16], argv: &[String]) -> Result<i32, String> {
    use socket2::{Domain, Socket, Type};
    let up = std::process::Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .map_err(|e| format!("ip link set lo up: {e}"))?;
    if !up.success() {
        return Err("ip link set lo up failed".into());
    }
    let mut keep = Vec::new();
    for &port in block {
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        let l = Socket::new(Domain::IPV4, Type::STREAM, None).map_err(|e| e.to_string())?;
        l.bind(&addr.into())
            .map_err(|e| format!("bind {port}: {e}"))?;
        l.listen(0).map_err(|e| e.to_string())?;
        // Fill the accept queue: later SYNs are dropped, as a security group drops them.
        for _ in 0..3 {
            let s = Socket::new(Domain::IPV4, Type::STREAM, None).map_err(|e| e.to_string())?;
            s.set_nonblocking(true).map_err(|e| e.to_string())?;
            let _ = s.connect(&addr.into());
            keep.push(s);
        }
        keep.push(l);
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    let (program, args) = argv.split_first().ok_or("no command")?;
    let status = std::process::Command::new(program)
        .args(args)
        .status()
        .map_err(|e| format!("{program}: {e}"))?;
    drop(keep);
    Ok(status.code().unwrap_or(128 + 9))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_unknown_ones_are_listed() {
        for f in ConsumerFault::ALL {
            assert_eq!(ConsumerFault::parse(f.as_str()), Ok(Some(f)));
        }
        assert_eq!(ConsumerFault::parse("none"), Ok(None));
        assert!(
            ConsumerFault::parse("slow")
                .unwrap_err()
                .contains("port-blocked")
        );
    }

    #[test]
    fn a_stale_password_replaces_only_the_secret_variables() {
        let dir = tempfile::tempdir().expect("dir");
        let mut env = vec![
            (
                "REDIS_URL".to_string(),
                "rediss://127.0.0.1:1/0".to_string(),
            ),
            ("REDIS_PASSWORD".to_string(), "current".to_string()),
            (
                "CELERY_BROKER_URL".to_string(),
                "rediss://:current@127.0.0.1:2/0".to_string(),
            ),
        ];
        let secrets = vec![
            "REDIS_PASSWORD".to_string(),
            "CELERY_BROKER_URL".to_string(),
        ];
        apply(
            dir.path(),
            Some(ConsumerFault::StalePassword),
            &mut env,
            &secrets,
        )
        .expect("apply");
        assert_eq!(env[0].1, "rediss://127.0.0.1:1/0");
        assert!(env[1].1.starts_with("stale-"));
        assert!(env[2].1.starts_with("rediss://:stale-") && env[2].1.ends_with("@127.0.0.1:2/0"));
    }
}
