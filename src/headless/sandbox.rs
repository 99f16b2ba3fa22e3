//! `cachedeck sandbox up | down | status` (and the hidden `serve` daemon): progress on
//! stderr, results on stdout.

use super::Format;
use crate::cli::SandboxAction;
use crate::controlplane::param_store::ParamStore;
use crate::sandbox::status::ProcessRow;
use crate::sandbox::{self, UpOptions, state::State};
use anyhow::Context;
use std::process::ExitCode;

/// Runs one sandbox subcommand.
pub async fn run(action: SandboxAction) -> anyhow::Result<ExitCode> {
    let dir = sandbox::sandbox_dir();
    match action {
        SandboxAction::Up { keys } => {
            let exe = std::env::current_exe()
                .context("find the cachedeck binary to run the endpoint daemon")?;
            eprintln!("starting the sandbox in {} …", dir.display());
            let report = sandbox::up(&UpOptions {
                dir: dir.clone(),
                keys,
                exe,
            })
            .await
            .context("start the sandbox")?;
            if !report.repaired.is_empty() {
                println!(
                    "sandbox repaired: started again {}",
                    report.repaired.join(", ")
                );
            }
            if report.already_up {
                println!(
                    "sandbox already up: {} processes in {}",
                    report.processes,
                    report.dir.display()
                );
            } else {
                println!(
                    "sandbox up: {} processes, {} keys seeded in {:.1}s; environments sandbox-dev (open) and sandbox-prod (confirm)",
                    report.processes,
                    report.seeded_keys,
                    report.elapsed.as_secs_f64()
                );
                println!("next: cachedeck caches --env sandbox-dev");
            }
            Ok(ExitCode::from(super::exit::OK))
        }
        SandboxAction::Down => {
            let stopped = sandbox::down(&dir).await.context("stop the sandbox")?;
            if stopped == 0 {
                println!("sandbox was not running ({})", dir.display());
            } else {
                println!("sandbox down: stopped {stopped} processes, ports free");
            }
            Ok(ExitCode::from(super::exit::OK))
        }
        SandboxAction::Status { output } => {
            let output = Format::from(output);
            let Some(state) = State::load(&dir).context("read the sandbox state")? else {
                match output {
                    Format::Json => println!("[]"),
                    _ => println!(
                        "sandbox is down ({}); start it with `cachedeck sandbox up`",
                        dir.display()
                    ),
                }
                return Ok(ExitCode::from(super::exit::OK));
            };
            let rows = sandbox::status::live(&state, &ParamStore::new(&dir)).await;
            match output {
                Format::Json => super::print_json(&serde_json::to_string_pretty(&rows)?),
                _ => print!("{}", table(&rows)),
            }
            let all_up = rows.iter().all(|r| r.alive);
            Ok(super::code(!all_up))
        }
        SandboxAction::Consumer { service, task } => {
            sandbox::consumer::run(&service, &task)
                .await
                .map_err(anyhow::Error::msg)
                .context("run the sandbox consumer task")?;
            Ok(ExitCode::from(super::exit::OK))
        }
        SandboxAction::Fault {
            service,
            fault,
            env,
        } => {
            let Some(service) = service else {
                let state = State::load(&dir)
                    .context("read the sandbox state")?
                    .ok_or_else(|| {
                        anyhow::anyhow!("the sandbox is down; start it with `cachedeck sandbox up`")
                    })?;
                let mut t = super::Table::new(["ENV", "SERVICE", "CACHE", "TASK", "FAULT"]);
                for c in &state.consumers {
                    t.row([
                        c.env.clone(),
                        c.service.clone(),
                        c.cache.clone(),
                        c.task.clone(),
                        c.fault.map_or("none", |f| f.as_str()).to_string(),
                    ]);
                }
                print!("{}", t.render());
                return Ok(ExitCode::from(super::exit::OK));
            };
            let Some(fault) = fault else {
                let known: Vec<&str> = sandbox::faults::ConsumerFault::ALL
                    .iter()
                    .map(|f| f.as_str())
                    .collect();
                anyhow::bail!("name the fault: none, {}", known.join(", "));
            };
            let fault =
                sandbox::faults::ConsumerFault::parse(&fault).map_err(anyhow::Error::msg)?;
            let task = sandbox::faults::set(&dir, &env, &service, fault)
                .await
                .context("set the fault")?;
            println!(
                "{service}: fault {}; new task {task}",
                fault.map_or("none", |f| f.as_str())
            );
            Ok(ExitCode::from(super::exit::OK))
        }
        SandboxAction::Isolate { block, argv } => {
            let code = sandbox::faults::isolate(&block, &argv).map_err(anyhow::Error::msg)?;
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
        }
        SandboxAction::Serve => {
            sandbox::proxy::serve(&dir)
                .await
                .context("serve the sandbox endpoints")?;
            Ok(ExitCode::from(super::exit::OK))
        }
    }
}

/// The rows as a table for people.
fn table(rows: &[ProcessRow]) -> String {
    let mut t = super::Table::new(["ENV", "CACHE", "NODE", "ROLE", "PID", "PORT", "STATE"]);
    for r in rows {
        let port = if r.endpoints.is_empty() {
            r.port.to_string()
        } else {
            r.endpoints
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        t.row([
            r.env.clone(),
            r.cache.clone(),
            r.node.clone(),
            r.role.clone(),
            r.pid.to_string(),
            port,
            if r.alive {
                "up".into()
            } else {
                "down".to_string()
            },
        ]);
    }
    t.render()
}
