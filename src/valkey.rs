//! The Valkey data plane: connections to nodes (TLS, AUTH/ACL), INFO parsing and live stats.
//! Everything here talks to real servers; the control plane lives in `controlplane`.

pub mod connect;
pub mod info;
pub mod stats;
