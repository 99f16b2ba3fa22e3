//! ECS Exec without the session-manager-plugin: the Session Manager data-channel protocol
//! (`frame`, `client`), its KMS encryption (`crypto`) and the exit-code wrapper (`wrap`).
//! Knows nothing of the TUI, runbooks or the estate: it is given a session (what
//! ExecuteCommand returned) and byte streams.

pub mod client;
pub mod crypto;
pub mod frame;
pub mod target;
pub mod wrap;
