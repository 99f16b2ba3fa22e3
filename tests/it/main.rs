//! cachedeck's integration tests: one binary, real valkey-server processes, moto for AWS.

// Test helpers may fail loudly with a reason; `unwrap` stays denied.
#![allow(clippy::expect_used)]

mod accounts;
mod audit;
mod audit_run;
mod auth_rotate;
mod auth_rotate_acl;
mod aws_auth;
mod aws_mocks;
mod aws_moto;
mod aws_snapshot_mocks;
mod cli_extras;
mod config;
mod connectivity;
mod consumers;
mod discovery_sources;
mod envs;
mod exec;
mod exec_aws;
mod failover;
mod failover_aws;
mod harden;
mod harness;
mod output_safety;
mod probe;
mod remediate;
mod roles;
mod runbook;
mod sandbox;
mod server;
mod snapshot;
mod stats_cmd;
mod tui;
mod tui_e2e;
mod tui_run;
mod tui_runner;
mod valkey;
mod watch;
