//! The cachedeck binary: parses the command line, sets up logging and the TLS provider,
//! and hands over to the library's headless commands or the TUI.

use cachedeck::cli::{Cli, Command, RunbooksAction, RunsAction};
use cachedeck::estate::Estate;
use cachedeck::headless::{self, run, runbooks, runs};
use cachedeck::logging;
use cachedeck::runbook::protect::Approval;
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One process-wide TLS provider, chosen before any client (AWS SDK, Valkey) is built.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let _log_guard = logging::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(headless::exit::BAD_INPUT);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            // The chain may quote outside text (a name from AWS, a server's error).
            eprintln!(
                "error: {}",
                cachedeck::escape::escape_lines_capped(&format!("{e:#}"), 2000)
            );
            ExitCode::from(headless::exit::BAD_INPUT)
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Some(Command::Envs { output }) => {
            let estate = load(cli.config).await?;
            headless::envs::run(&estate, output.into()).await
        }
        Some(Command::Snapshots { env, cache, output }) => {
            let estate = load(cli.config).await?;
            headless::snapshots::run(&estate, &env, cache.as_deref(), output.into()).await
        }
        Some(Command::Caches { env, output }) => {
            let estate = load(cli.config).await?;
            headless::caches::run(&estate, env.as_deref(), output.into()).await
        }
        Some(Command::Run {
            runbook,
            env,
            cache,
            params,
            yes,
            confirm_cache,
            dry_run,
            output,
            force_unlock,
        }) => {
            let estate = load(cli.config).await?;
            let args = run::RunArgs {
                runbook,
                env,
                cache,
                params,
                approval: Approval {
                    yes,
                    confirm_cache,
                    interactive: false,
                },
                dry_run,
                force_unlock,
                format: output.into(),
            };
            Ok(ExitCode::from(run::run(&estate, args).await))
        }
        Some(Command::Runbooks { action }) => Ok(ExitCode::from(match action {
            RunbooksAction::List { output } => runbooks::list(output.into()),
            RunbooksAction::Validate { file } => runbooks::validate(&file),
        })),
        Some(Command::Runs { action }) => Ok(ExitCode::from(match action {
            RunsAction::List { output } => runs::list(output.into()),
            RunsAction::Show { run_id, output } => runs::show(&run_id, output.into()),
            RunsAction::Resume {
                run_id,
                yes,
                confirm_cache,
                force_unlock,
                output,
            } => {
                let estate = load(cli.config).await?;
                let approval = Approval {
                    yes,
                    confirm_cache,
                    interactive: false,
                };
                runs::resume(&estate, &run_id, approval, force_unlock, output.into()).await
            }
            RunsAction::Unlock { env, cache, yes } => {
                let estate = load(cli.config).await?;
                runs::unlock(&estate, &env, &cache, yes).await
            }
        })),
        Some(Command::Stats {
            cache,
            env,
            once: _,
            watch,
            interval,
            output,
        }) => {
            let estate = load(cli.config).await?;
            let mode = if watch {
                headless::stats::Mode::Watch
            } else {
                headless::stats::Mode::Once
            };
            headless::stats::run(&estate, &env, &cache, mode, interval, output.into()).await
        }
        Some(Command::Exec {
            env,
            cache,
            service,
            cluster,
            container,
            task,
            command,
        }) => {
            // The remote command owns exit codes 0-253: cachedeck's own failures are 255.
            let estate = match load(cli.config).await {
                Ok(e) => e,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return Ok(ExitCode::from(headless::exec::exit::FAILED));
                }
            };
            let args = headless::exec::ExecArgs {
                env,
                cache,
                service,
                cluster,
                container,
                task,
                command,
            };
            Ok(ExitCode::from(headless::exec::run(&estate, args).await))
        }
        Some(Command::Sandbox { action }) => headless::sandbox::run(action).await,
        Some(Command::Completions { shell }) => {
            headless::complete::completions(shell, &mut std::io::stdout().lock());
            Ok(ExitCode::from(headless::exit::OK))
        }
        Some(Command::Man) => {
            headless::complete::man(&mut std::io::stdout().lock())?;
            Ok(ExitCode::from(headless::exit::OK))
        }
        None => {
            cachedeck::tui::run(Estate::load(cli.config)).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn load(config: Option<std::path::PathBuf>) -> anyhow::Result<Estate> {
    Ok(Estate::load(config).await?)
}
