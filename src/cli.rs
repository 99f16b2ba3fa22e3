//! Command-line interface: the clap definitions shared by `main.rs` and the tests.

use crate::headless::Format;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// `--version`: the package version and the git commit it was built from (`unknown commit`
/// when it was built outside a git checkout; `-dirty` when the checkout had changes).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("CACHEDECK_GIT_COMMIT"),
    ")"
);

/// The on-call engineer's terminal for Valkey/Redis caches on AWS.
#[derive(Debug, Parser)]
#[command(name = "cachedeck", version = VERSION, about, long_about = None)]
pub struct Cli {
    /// Config file (default: $XDG_CONFIG_HOME/cachedeck/config.toml).
    #[arg(long, global = true, env = "CACHEDECK_CONFIG")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// `--output` of the listing commands (`envs`, `caches`, `stats`, `sandbox status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Output {
    #[default]
    Table,
    Json,
}

/// `--output` of `runbooks list`, `runs list|show|resume`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum TextOutput {
    #[default]
    Text,
    Json,
}

/// `--output` of `cachedeck run`: text or json, the run; csv or markdown, the report of a
/// ttl-audit run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum RunOutput {
    #[default]
    Text,
    Json,
    Csv,
    Markdown,
}

impl From<Output> for Format {
    fn from(o: Output) -> Format {
        match o {
            Output::Table => Format::Text,
            Output::Json => Format::Json,
        }
    }
}

impl From<TextOutput> for Format {
    fn from(o: TextOutput) -> Format {
        match o {
            TextOutput::Text => Format::Text,
            TextOutput::Json => Format::Json,
        }
    }
}

impl From<RunOutput> for Format {
    fn from(o: RunOutput) -> Format {
        match o {
            RunOutput::Text => Format::Text,
            RunOutput::Json => Format::Json,
            RunOutput::Csv => Format::Csv,
            RunOutput::Markdown => Format::Markdown,
        }
    }
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
    /// List the snapshots of an environment (node and serverless): name, status, source,
    /// created, size, shard count.
    Snapshots {
        /// The environment.
        #[arg(long)]
        env: String,
        /// Only snapshots of this cache.
        #[arg(long)]
        cache: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Live per-node figures of one cache from INFO: ops/s, hit rate, memory, clients,
    /// evictions, replication lag, persistence, keys.
    Stats {
        /// The cache's name, as `cachedeck caches` lists it.
        cache: String,
        /// The environment the cache is in.
        #[arg(long)]
        env: String,
        /// Take two samples one interval apart, print them and exit (the default).
        #[arg(long, conflicts_with = "watch")]
        once: bool,
        /// Print the figures every interval until Ctrl-C (JSON: one object a line).
        #[arg(long)]
        watch: bool,
        /// Time between samples, e.g. `1s`, `500ms` (default: the config's stats_interval).
        #[arg(long, value_parser = humantime::parse_duration)]
        interval: Option<std::time::Duration>,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Run a runbook against one cache, headless: progress on stderr, result on stdout.
    #[command(after_help = RUN_EXIT_CODES)]
    Run {
        /// Runbook name (`cachedeck runbooks list`) or path to a runbook file.
        runbook: String,
        #[arg(long)]
        env: String,
        #[arg(long)]
        cache: String,
        /// A runbook parameter, `name=value` (repeatable).
        #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
        params: Vec<(String, String)>,
        /// Agree to dangerous and confirm steps without being asked.
        #[arg(long)]
        yes: bool,
        /// The target cache's name, typed again: required with --yes in confirm environments.
        #[arg(long, value_name = "NAME")]
        confirm_cache: Option<String>,
        /// Print the plan with the exact calls it would make; execute nothing.
        #[arg(long)]
        dry_run: bool,
        /// text or json: the run; csv or markdown: the report of a ttl-audit run.
        #[arg(long, value_enum, default_value_t)]
        output: RunOutput,
        /// Break the cache's lock if (and only if) it is held by exactly this run id.
        #[arg(long, value_name = "RUN_ID")]
        force_unlock: Option<String>,
    },
    /// List and validate runbooks.
    Runbooks {
        #[command(subcommand)]
        action: RunbooksAction,
    },
    /// Journaled runs: list, show, resume.
    Runs {
        #[command(subcommand)]
        action: RunsAction,
    },
    /// Run a command (or a shell) inside an ECS task through ECS Exec, without the
    /// session-manager-plugin; exits with the remote command's exit code.
    #[command(after_help = crate::headless::exec::EXIT_CODES)]
    Exec {
        #[arg(long)]
        env: String,
        /// A task of a service that uses this cache (or of the cache's own ECS service).
        #[arg(long, conflicts_with = "service", required_unless_present = "service")]
        cache: Option<String>,
        /// The ECS service to exec into.
        #[arg(long)]
        service: Option<String>,
        /// The service's ECS cluster (the sandbox's is its environment).
        #[arg(long, requires = "service")]
        cluster: Option<String>,
        /// The container (needed when the task has several).
        #[arg(long)]
        container: Option<String>,
        /// A task id or ARN (default: the first running task with ECS Exec on).
        #[arg(long)]
        task: Option<String>,
        /// The command and its arguments; none: an interactive shell.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Run the local sandbox estate of real valkey-server processes.
    Sandbox {
        #[command(subcommand)]
        action: SandboxAction,
    },
    /// Print a shell completion script on stdout, e.g.
    /// `cachedeck completions bash > ~/.local/share/bash-completion/completions/cachedeck`.
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the manual page (roff) on stdout, e.g. `cachedeck man | man -l -`.
    Man,
}

/// The shells `cachedeck completions` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
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
    /// Run one task of a sandbox consumer service (started by `up` and by rollouts).
    #[command(hide = true)]
    Consumer {
        #[arg(long)]
        service: String,
        #[arg(long)]
        task: String,
    },
    /// Make a consumer service's tasks fail one layer of the connectivity check on purpose
    /// (the service's task is replaced): `port-blocked` (its network drops the cache's
    /// ports), `wrong-ca` (it trusts another CA), `stale-password` (it holds an old secret),
    /// `only-valkey-cli`/`only-python3`/`only-ruby`/`only-openssl`/`only-shell` (a thin image
    /// with that one client), or `none`. With no arguments, lists the consumers and their
    /// faults.
    Fault {
        /// A consumer service: orders-sidekiq, paperwurks-celery, storefront-web.
        service: Option<String>,
        /// none, port-blocked, wrong-ca, stale-password, only-valkey-cli, only-python3,
        /// only-ruby, only-openssl, only-shell.
        fault: Option<String>,
        #[arg(long, default_value = "sandbox-dev")]
        env: String,
    },
    /// Run ARGV with the given loopback ports black-holed (under `unshare -rn`; used by the
    /// `port-blocked` fault).
    #[command(hide = true)]
    Isolate {
        #[arg(long)]
        block: Vec<u16>,
        #[arg(last = true, required = true)]
        argv: Vec<String>,
    },
}

/// Exit codes of `cachedeck run` and `cachedeck runs resume` (see docs/runbooks.md).
pub const RUN_EXIT_CODES: &str = "Exit codes:
  0  the runbook succeeded (or the dry run was printed)
  1  a step failed; see the report and the journal
  2  bad input (runbook, parameter, environment or cache); nothing ran
  3  refused by protection (read-only environment, missing --yes/--confirm-cache, declined)
  4  the cache's lock is held by another run (the message names the holder)
  5  interrupted; resume with `cachedeck runs resume RUN_ID`";

fn parse_param(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not NAME=VALUE")),
    }
}

#[derive(Debug, Subcommand)]
pub enum RunbooksAction {
    /// Built-in and user runbooks (user ones live in $XDG_CONFIG_HOME/cachedeck/runbooks).
    List {
        #[arg(long, value_enum, default_value_t)]
        output: TextOutput,
    },
    /// Check a runbook file; errors point at file:line:col (exit 2 when invalid).
    Validate { file: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum RunsAction {
    /// Journaled runs, newest first.
    List {
        #[arg(long, value_enum, default_value_t)]
        output: TextOutput,
    },
    /// One run's journal.
    Show {
        run_id: String,
        #[arg(long, value_enum, default_value_t)]
        output: TextOutput,
    },
    /// Continue an interrupted or failed run: observes the last started step first and
    /// never repeats a mutation that took effect.
    #[command(after_help = RUN_EXIT_CODES)]
    Resume {
        run_id: String,
        #[arg(long)]
        yes: bool,
        #[arg(long, value_name = "NAME")]
        confirm_cache: Option<String>,
        #[arg(long, value_name = "RUN_ID")]
        force_unlock: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        output: TextOutput,
    },
    /// Break the run lock of a cache whose holder died: shows the holder (user, host, pid,
    /// run, heartbeat) and asks for its run id; --yes breaks it without asking (scripts).
    Unlock {
        /// The environment.
        env: String,
        /// The cache.
        cache: String,
        #[arg(long)]
        yes: bool,
    },
}
