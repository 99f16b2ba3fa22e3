//! cachedeck's integration tests: one binary, real valkey-server processes, moto for AWS.

mod aws_mocks;
mod aws_moto;
mod config;
mod envs;
mod harness;
