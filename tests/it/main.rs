//! cachedeck's integration tests: one binary, real valkey-server processes, moto for AWS.

mod config;
mod envs;
mod tui;
