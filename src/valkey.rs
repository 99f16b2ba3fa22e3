//! Valkey: finding the server binary and running servers (for tests and the sandbox), and
//! the data plane: connections to nodes (TLS, AUTH/ACL), INFO parsing, live stats and cluster key slots.

pub mod binary;
pub mod caps;
pub mod connect;
pub mod info;
pub mod roles;
pub mod server;
pub mod slot;
pub mod stats;
