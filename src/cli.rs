//! Command-line interface: the clap definitions shared by `main.rs` and the tests.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// The on-call engineer's terminal for Valkey/Redis caches on AWS.
#[derive(Debug, Parser)]
#[command(name = "cachedeck", version, about, long_about = None)]
pub struct Cli {
    /// Config file (default: $XDG_CONFIG_HOME/cachedeck/config.toml).
    #[arg(long, global = true, env = "CACHEDECK_CONFIG")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Output format of headless commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Output {
    #[default]
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List environments.
    Envs {
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// List caches of every environment, or of one.
    Caches {
        /// Only this environment.
        #[arg(long)]
        env: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Run the local sandbox estate of real valkey-server processes.
    Sandbox {
        #[command(subcommand)]
        action: SandboxAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum SandboxAction {
    /// Start the sandbox (idempotent) and seed its data.
    Up {
        /// Keys to seed across the sandbox's caches.
        #[arg(long, default_value_t = 120_000)]
        keys: u64,
    },
    /// Stop every sandbox process and free its ports.
    Down,
    /// Show each sandbox process, its port and whether it answers.
    Status {
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Serve the sandbox's TLS endpoints (started by `up`; runs until `down`).
    #[command(hide = true)]
    Serve,
}
