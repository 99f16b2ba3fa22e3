//! `cachedeck exec`: a command (or a shell) inside an ECS task through ECS Exec, speaking the
//! data-channel protocol itself (no session-manager-plugin), and exiting with the remote
//! command's exit code.

use crate::controlplane::ExecCommand;
use crate::domain::ProviderKind;
use crate::ecsexec::client::{self, ClientOptions, Input, Stream};
use crate::ecsexec::wrap;
use crate::estate::Estate;
use std::io::Write;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Exit codes of `cachedeck exec` beyond the remote command's own.
pub mod exit {
    /// The command ran but its exit code is unknown: no shell in the container to report it
    /// (distroless), or the session ended before the command did.
    pub const UNKNOWN: u8 = 254;
    /// cachedeck could not run the command: bad input, preflight, ExecuteCommand or the
    /// session failed (the message says which).
    pub const FAILED: u8 = 255;
}

/// Exit codes as `--help` prints them.
pub const EXIT_CODES: &str = "Exit codes:
  0-253  the remote command's own exit code
  254    the exit code is unknown (no shell in the container, or the session ended early)
  255    cachedeck could not run it (bad input, preflight, ExecuteCommand, session error)";

/// What to exec into.
#[derive(Debug, Clone)]
pub struct ExecArgs {
    pub env: String,
    pub cache: Option<String>,
    pub service: Option<String>,
    pub cluster: Option<String>,
    pub container: Option<String>,
    pub task: Option<String>,
    pub command: Vec<String>,
}

/// Runs `cachedeck exec`; returns the process exit code.
pub async fn run(estate: &Estate, args: ExecArgs) -> u8 {
    match run_inner(estate, args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            exit::FAILED
        }
    }
}

pub use crate::ecsexec::target::{Target, preflight};

/// Finds the service and task, and checks what ECS Exec needs, with reasons to act on.
/// `--cache C` goes to a consumer of C (a service whose task definition names it, or one
/// the config names); a cache that runs on ECS itself and has no consumer goes to its own
/// service.
pub async fn resolve(estate: &Estate, args: &ExecArgs) -> anyhow::Result<Target> {
    let (plane, cluster, service, default_container) = match (&args.cache, &args.service) {
        (Some(cache), None) => {
            let (plane, c) = estate.find_cache(&args.env, cache).await?;
            let consumers = crate::consumers::discover(plane.as_ref(), &c).await;
            let has_consumers = consumers.as_ref().is_ok_and(|l| !l.is_empty());
            match (has_consumers, c.ecs.clone()) {
                (false, Some(ecs)) => (plane, ecs.cluster, ecs.service, ecs.container),
                _ => {
                    if let Err(e) = &consumers {
                        tracing::info!(error = %e, "consumer discovery failed");
                    }
                    let target = crate::ecsexec::target::consumer(
                        plane,
                        &c,
                        None,
                        args.task.as_deref(),
                        args.container.as_deref(),
                    )
                    .await
                    .map_err(|e| match consumers {
                        Err(d) => anyhow::anyhow!("{e} (consumer discovery: {d})"),
                        Ok(_) => e,
                    })?;
                    if std::io::IsTerminal::is_terminal(&std::io::stderr())
                        && let Some(via) = &target.consumer
                    {
                        eprintln!(
                            "exec into {} (task {}, container {}): uses {} through {}",
                            crate::escape::escape(&target.service),
                            target.task.task_id,
                            crate::escape::escape(&target.container),
                            crate::escape::escape(cache),
                            crate::escape::escape(via.variables.join(", "))
                        );
                    }
                    return Ok(target);
                }
            }
        }
        (None, Some(service)) => {
            let plane = estate.plane(&args.env)?;
            let env = plane.environment();
            let cluster = match (&args.cluster, env.provider) {
                (Some(c), _) => c.clone(),
                (None, ProviderKind::Sandbox) => env.name.clone(),
                (None, _) => anyhow::bail!("name the service's ECS cluster with --cluster"),
            };
            (plane, cluster, service.clone(), None)
        }
        _ => anyhow::bail!("give exactly one of --cache C or --service S"),
    };
    let tasks = plane.exec_tasks(&cluster, &service).await?;
    let task =
        crate::ecsexec::target::choose_task(&tasks, args.task.as_deref(), &cluster, &service)?;
    let container = crate::ecsexec::target::choose_container(
        &task,
        args.container.as_deref(),
        default_container.as_deref(),
    )?;
    preflight(&task, &container, &service)?;
    Ok(Target {
        plane,
        cluster,
        service,
        task,
        container,
        consumer: None,
    })
}

/// A shell (or command) as `cachedeck exec` runs it, for the TUI's `e`: the exit code, or
/// why it could not run.
pub async fn run_session(estate: &Estate, args: ExecArgs) -> Result<u8, String> {
    run_inner(estate, args).await.map_err(|e| format!("{e:#}"))
}

async fn run_inner(estate: &Estate, args: ExecArgs) -> anyhow::Result<u8> {
    let target = resolve(estate, &args).await?;
    let interactive = args.command.is_empty();
    if interactive && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        anyhow::bail!("no command given and stdin is not a terminal: give a command after `--`");
    }
    // A command with piped stdin gets it as terminal input, once the terminal stops echoing.
    let piped = !interactive && !std::io::IsTerminal::is_terminal(&std::io::stdin());
    let wrapped = (!interactive).then(|| {
        if piped {
            wrap::wrap_with_input(&args.command)
        } else {
            wrap::wrap(&args.command)
        }
    });
    let command = wrapped
        .as_ref()
        .map_or_else(|| "sh".to_string(), |w| w.command.clone());
    let started = target
        .plane
        .execute_command(ExecCommand {
            cluster: target.cluster.clone(),
            task: target.task.task_arn.clone(),
            container: Some(target.container.clone()),
            command,
        })
        .await?;
    tracing::info!(session = %started.session.session_id, task = %target.task.task_id, "exec session started");
    let size = crossterm::terminal::size().ok();
    let opts = ClientOptions {
        data_keys: target.plane.exec_data_keys(),
        size: Some(size.unwrap_or((200, 50))),
        ..ClientOptions::default()
    };
    let (in_tx, in_rx) = mpsc::channel(64);
    let (out_tx, mut out_rx) = mpsc::channel::<(Stream, Vec<u8>)>(64);
    let _raw = if interactive {
        Some(RawTerminal::enter(in_tx.clone())?)
    } else {
        None
    };
    let session = started.session.clone();
    let client = tokio::spawn(async move { client::run(&session, &opts, in_rx, out_tx).await });
    let mut scanner = wrapped.as_ref().map(|w| w.scanner());
    let mut stdout = std::io::stdout();
    let mut stdin_ready = piped.then(|| forward_stdin(in_tx.clone()));
    while let Some((stream, bytes)) = out_rx.recv().await {
        match stream {
            Stream::Stdout => {
                let shown = match scanner.as_mut() {
                    Some(s) => s.push(&bytes),
                    None => bytes,
                };
                if scanner.as_ref().is_some_and(|s| s.is_ready())
                    && let Some(go) = stdin_ready.take()
                {
                    let _ = go.send(());
                }
                let _ = stdout.write_all(&shown).and_then(|_| stdout.flush());
            }
            Stream::Stderr => {
                let _ = std::io::stderr().write_all(&bytes);
            }
        }
    }
    drop(in_tx);
    let ended = client
        .await
        .map_err(|e| anyhow::anyhow!("the session task failed: {e}"))?;
    drop(_raw);
    let code = scanner.as_mut().map(|s| {
        let (rest, code) = s.finish();
        let _ = stdout.write_all(&rest).and_then(|_| stdout.flush());
        code
    });
    let ended = match ended {
        Ok(e) => e,
        // The exit marker is printed after the command ended and arrives in sequence after
        // all its output: a channel that fails after it lost nothing of the command's.
        Err(e) if matches!(code, Some(Some(_))) => {
            eprintln!(
                "note: session {}: {e} (after the command's exit status arrived: its output is complete)",
                started.session.session_id
            );
            crate::ecsexec::client::Ended::default()
        }
        Err(e) => {
            eprintln!("error: session {}: {e}", started.session.session_id);
            return Ok(exit::FAILED);
        }
    };
    if let Some(reason) = &ended.reason {
        eprintln!("session closed: {}", crate::escape::escape(reason));
    }
    match code {
        None => Ok(0),
        Some(Some(c)) => Ok(u8::try_from(c.rem_euclid(256)).unwrap_or(exit::UNKNOWN)),
        Some(None) => {
            eprintln!(
                "error: the exit code of the command is unknown: the session ended without the exit marker (no `sh` in the container, e.g. distroless, or the command never finished)"
            );
            Ok(exit::UNKNOWN)
        }
    }
}

/// Sends this process's stdin to the remote terminal once the returned trigger fires (the
/// terminal is ready), then Ctrl-D for end of input (twice after a partial line, as a
/// terminal needs). Stdin reaches the command as terminal input: canonical lines of at most
/// 4095 bytes, as with the session-manager-plugin.
fn forward_stdin(input: mpsc::Sender<Input>) -> tokio::sync::oneshot::Sender<()> {
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(16);
    std::thread::spawn(move || {
        use std::io::Read;
        let mut stdin = std::io::stdin();
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 || tx.blocking_send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        if go_rx.await.is_err() {
            return;
        }
        let mut last = b'\n';
        while let Some(chunk) = rx.recv().await {
            last = chunk.last().copied().unwrap_or(last);
            if input.send(Input::Bytes(chunk)).await.is_err() {
                return;
            }
        }
        let eof = if last == b'\n' {
            &b"\x04"[..]
        } else {
            &b"\x04\x04"[..]
        };
        let _ = input.send(Input::Bytes(eof.to_vec())).await;
    });
    go_tx
}

/// Raw mode for an interactive shell: keys (Ctrl-C included) go to the remote terminal,
/// window size changes are sent, and the terminal is restored on drop.
struct RawTerminal {
    stop: Arc<std::sync::atomic::AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl RawTerminal {
    fn enter(input: mpsc::Sender<Input>) -> anyhow::Result<RawTerminal> {
        crossterm::terminal::enable_raw_mode()?;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let keys = input.clone();
        let stop_keys = stop.clone();
        // Reads keys until the session ends: polled with a short timeout, so the thread
        // stops with the session and leaves the terminal to whoever comes next (the TUI).
        let reader = std::thread::spawn(move || {
            use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
            use std::io::Read;
            use std::os::fd::AsFd;
            let mut stdin = std::io::stdin();
            let mut buf = [0u8; 1024];
            while !stop_keys.load(std::sync::atomic::Ordering::Relaxed) {
                let ready = {
                    let fd = stdin.as_fd();
                    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
                    poll(&mut fds, PollTimeout::from(100u16)).unwrap_or(0)
                };
                if ready == 0 {
                    continue;
                }
                match stdin.read(&mut buf) {
                    Ok(n) if n > 0 => {
                        if keys.blocking_send(Input::Bytes(buf[..n].to_vec())).is_err() {
                            break;
                        }
                    }
                    _ => break,
                }
            }
        });
        let stop2 = stop.clone();
        tokio::spawn(async move {
            let Ok(mut winch) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
            else {
                return;
            };
            while winch.recv().await.is_some() {
                if stop2.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                if let Ok((cols, rows)) = crossterm::terminal::size()
                    && input.send(Input::Size { cols, rows }).await.is_err()
                {
                    break;
                }
            }
        });
        Ok(RawTerminal {
            stop,
            reader: Some(reader),
        })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        // The key reader is gone before anyone else (the TUI) reads the terminal again.
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controlplane::{ExecContainer, ExecTask};

    fn task() -> ExecTask {
        ExecTask {
            cluster: "c".into(),
            task_arn: "arn:aws:ecs:eu-west-1:1:task/c/abc".into(),
            task_id: "abc".into(),
            last_status: "RUNNING".into(),
            enable_execute_command: true,
            launch_type: Some("FARGATE".into()),
            platform_version: Some("1.4.0".into()),
            task_definition_arn: "td".into(),
            containers: vec![ExecContainer {
                name: "app".into(),
                runtime_id: Some("abc-1".into()),
                exec_agent: Some("RUNNING".into()),
            }],
        }
    }

    #[test]
    fn preflight_says_what_to_fix() {
        assert!(preflight(&task(), "app", "web").is_ok());
        let mut t = task();
        t.enable_execute_command = false;
        let e = preflight(&t, "app", "web").unwrap_err().to_string();
        assert!(
            e.contains("--enable-execute-command --force-new-deployment"),
            "{e}"
        );
        let mut t = task();
        t.containers[0].exec_agent = Some("STOPPED".into());
        assert!(
            preflight(&t, "app", "web")
                .unwrap_err()
                .to_string()
                .contains("is STOPPED, not RUNNING")
        );
        let mut t = task();
        t.platform_version = Some("1.3.0".into());
        assert!(
            preflight(&t, "app", "web")
                .unwrap_err()
                .to_string()
                .contains("needs 1.4.0")
        );
        assert!(
            preflight(&task(), "db", "web")
                .unwrap_err()
                .to_string()
                .contains("has no container db")
        );
    }
}
