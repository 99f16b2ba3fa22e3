//! Shared helpers of the integration tests.

pub mod sandbox;
pub mod valkey;
