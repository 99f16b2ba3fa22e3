//! Valkey as a process: finding the server binary and running servers (for tests and the
//! sandbox). Connections, INFO parsing and scanning live in sibling modules.

pub mod binary;
pub mod server;
