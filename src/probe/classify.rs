//! Error classes a client meets during a failover, as an on-call engineer names them.

use crate::valkey::connect::{ConnectError, Layer};
use serde::Serialize;

/// Why a probe attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorClass {
    /// No answer within the probe's deadline.
    Timeout,
    /// Connection refused or reset: nothing listening, or the link was cut.
    Refused,
    /// The node answered READONLY: it is a replica now (a demoted primary).
    Readonly,
    /// The node answered MOVED: the slot belongs to another node (cluster mode).
    Moved,
    /// The node is loading its dataset (after a restart or a full sync).
    Loading,
    /// The credentials were refused.
    Auth,
    /// Anything else (TLS, DNS, protocol, other server errors).
    Other,
}

impl ErrorClass {
    pub const ALL: [ErrorClass; 7] = [
        ErrorClass::Timeout,
        ErrorClass::Refused,
        ErrorClass::Readonly,
        ErrorClass::Moved,
        ErrorClass::Loading,
        ErrorClass::Auth,
        ErrorClass::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Timeout => "timeout",
            ErrorClass::Refused => "refused",
            ErrorClass::Readonly => "readonly",
            ErrorClass::Moved => "moved",
            ErrorClass::Loading => "loading",
            ErrorClass::Auth => "auth",
            ErrorClass::Other => "other",
        }
    }
}

/// The class of a connection or command failure.
pub fn classify(error: &ConnectError) -> ErrorClass {
    let detail = error.detail.to_ascii_uppercase();
    match error.layer {
        Layer::Timeout => ErrorClass::Timeout,
        Layer::Auth => ErrorClass::Auth,
        Layer::Tcp | Layer::Protocol => ErrorClass::Refused,
        _ if detail.contains("READONLY") => ErrorClass::Readonly,
        _ if detail.contains("MOVED") => ErrorClass::Moved,
        _ if detail.contains("LOADING") => ErrorClass::Loading,
        _ if detail.contains("WRONGPASS") || detail.contains("NOAUTH") => ErrorClass::Auth,
        _ => ErrorClass::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(layer: Layer, detail: &str) -> ConnectError {
        ConnectError::new(layer, "127.0.0.1:6379", detail, None)
    }

    #[test]
    fn server_replies_are_classed_by_their_error_code() {
        assert_eq!(
            classify(&err(
                Layer::Server,
                "READONLY You can't write against a read only replica."
            )),
            ErrorClass::Readonly
        );
        assert_eq!(
            classify(&err(Layer::Server, "MOVED 3999 127.0.0.1:7002")),
            ErrorClass::Moved
        );
        assert_eq!(
            classify(&err(
                Layer::Server,
                "LOADING Valkey is loading the dataset in memory"
            )),
            ErrorClass::Loading
        );
        assert_eq!(
            classify(&err(Layer::Tcp, "Connection refused")),
            ErrorClass::Refused
        );
        assert_eq!(
            classify(&err(Layer::Timeout, "no reply")),
            ErrorClass::Timeout
        );
        assert_eq!(classify(&err(Layer::Auth, "WRONGPASS")), ErrorClass::Auth);
        assert_eq!(
            classify(&err(Layer::Server, "ERR unknown")),
            ErrorClass::Other
        );
    }

    #[test]
    fn moved_errors_name_the_node_to_follow() {
        assert_eq!(
            err(Layer::Server, "Moved: 3999 127.0.0.1:7002").moved_to(),
            Some(("127.0.0.1".to_string(), 7002))
        );
        assert_eq!(
            err(Layer::Server, "MOVED 3999 127.0.0.1:7002").moved_to(),
            Some(("127.0.0.1".to_string(), 7002))
        );
        assert_eq!(err(Layer::Server, "READONLY x").moved_to(), None);
    }
}
