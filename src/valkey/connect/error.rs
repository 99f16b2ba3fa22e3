//! Connection failures classified by the layer that failed (secret, dns, tcp, tls, auth,
//! protocol, timeout, server) with the likely cause in words, so the TUI, `cachedeck stats`
//! and the connectivity-check runbook all say the same useful thing.
//!
//! Texts never contain a password: server and library messages are escaped (they are
//! untrusted) and scrubbed of the secret in use before they are stored.

use crate::escape::escape_capped;
use serde::Serialize;
use std::fmt;

/// Which step of reaching a node failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layer {
    /// Resolving the password (env var, SSM parameter, URL parameter).
    Secret,
    Dns,
    Tcp,
    Tls,
    Auth,
    /// The bytes that came back were not RESP, or the link dropped mid-reply.
    Protocol,
    Timeout,
    /// The server answered with an error (e.g. NOPERM for INFO, LOADING).
    Server,
}

impl Layer {
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Secret => "secret",
            Layer::Dns => "dns",
            Layer::Tcp => "tcp",
            Layer::Tls => "tls",
            Layer::Auth => "auth",
            Layer::Protocol => "protocol",
            Layer::Timeout => "timeout",
            Layer::Server => "server",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure to reach, log in to, or query a node.
///
/// Displays as a fragment that reads after "failed to …": `reach 10.0.0.5:6379 (tls):
/// invalid peer certificate: UnknownIssuer; likely cause: …`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct ConnectError {
    pub layer: Layer,
    /// `host:port`, or the secret's name for [`Layer::Secret`].
    pub target: String,
    /// What happened, escaped and free of secrets.
    pub detail: String,
    /// The most likely cause and what to do, when one can be named.
    pub likely_cause: Option<String>,
    /// The server's error code (`READONLY`, `MOVED`, `LOADING`, `WRONGPASS`…) when the
    /// failure was a server reply, so callers need not parse `detail`.
    pub code: Option<String>,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.layer {
            Layer::Secret => write!(f, "read the password from {}: {}", self.target, self.detail)?,
            Layer::Server => write!(f, "query {}: {}", self.target, self.detail)?,
            layer => write!(f, "reach {} ({layer}): {}", self.target, self.detail)?,
        }
        if let Some(cause) = &self.likely_cause {
            write!(f, "; likely cause: {cause}")?;
        }
        Ok(())
    }
}

/// Longest detail kept: server errors can be arbitrarily long.
const MAX_DETAIL: usize = 300;

impl ConnectError {
    /// Where a cluster `MOVED slot host:port` reply points, as (host, port). The host is empty
    /// when the server means "the host you asked". The redis crate prints the reply as
    /// `Moved: slot host:port`, servers as `MOVED slot host:port`.
    pub fn moved_to(&self) -> Option<(String, u16)> {
        // ASCII upper-casing keeps byte offsets, so `start` indexes `detail` too.
        let start = self.detail.to_ascii_uppercase().find("MOVED")?;
        let mut words = self.detail[start..].split_whitespace().skip(1);
        words
            .next()?
            .trim_matches(|c: char| !c.is_ascii_digit())
            .parse::<u16>()
            .ok()?;
        let address = words
            .next()?
            .trim_end_matches(|c: char| !c.is_ascii_digit());
        let (host, port) = address.rsplit_once(':')?;
        Some((
            host.trim_matches(|c| c == '[' || c == ']').to_string(),
            port.parse().ok()?,
        ))
    }

    /// Builds an error, escaping `detail` and removing every occurrence of `secret`.
    pub fn new(
        layer: Layer,
        target: impl Into<String>,
        detail: impl AsRef<str>,
        secret: Option<&str>,
    ) -> ConnectError {
        ConnectError {
            layer,
            target: escape_capped(target.into(), 200),
            detail: clean(detail.as_ref(), secret),
            likely_cause: None,
            code: None,
        }
    }

    /// Records the server's error code (escaped: it is untrusted text).
    pub fn with_code(mut self, code: &str) -> ConnectError {
        self.code = Some(escape_capped(code, 40)).filter(|c| !c.is_empty());
        self
    }

    pub fn with_cause(mut self, cause: impl Into<String>) -> ConnectError {
        self.likely_cause = Some(cause.into());
        self
    }

    /// Failures worth retrying soon (timeouts, dropped links), as opposed to ones that
    /// will fail the same way until someone changes something (wrong password, no host).
    pub fn is_transient(&self) -> bool {
        matches!(self.layer, Layer::Timeout | Layer::Protocol | Layer::Tcp)
    }
}

/// Scrubs a secret (and, defensively, its percent-encoded form) out of untrusted text, then
/// escapes it for display.
pub(crate) fn clean(text: &str, secret: Option<&str>) -> String {
    let mut text = text.to_string();
    if let Some(secret) = secret.filter(|s| !s.is_empty()) {
        text = text.replace(secret, "***");
        let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        if encoded != secret {
            text = text.replace(&encoded, "***");
        }
    }
    escape_capped(text, MAX_DETAIL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_reads_after_failed_to_and_names_the_layer() {
        let e = ConnectError::new(Layer::Tcp, "127.0.0.1:1", "connection refused", None)
            .with_cause("nothing listens on that port");
        assert_eq!(
            e.to_string(),
            "reach 127.0.0.1:1 (tcp): connection refused; likely cause: nothing listens on that port"
        );
    }

    #[test]
    fn secrets_are_scrubbed_and_text_escaped() {
        let e = ConnectError::new(
            Layer::Auth,
            "h:1",
            "WRONGPASS s3cr3t&x \u{1b}[31m s3cr3t%26x",
            Some("s3cr3t&x"),
        );
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
        assert!(e.detail.contains("\\x1b[31m"));
        assert!(!format!("{e:?}").contains("s3cr3t"));
    }
}
