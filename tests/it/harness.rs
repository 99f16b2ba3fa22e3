//! Shared helpers of the integration tests: real servers on random loopback ports.

pub mod moto;
pub mod sandbox;
pub mod valkey;
