//! TLS for cache connections: rustls trusting the public web roots (ElastiCache certificates
//! chain to Amazon's public CAs) plus the cache's own CA file when one is set (the
//! sandbox's local CA, a self-managed Valkey's private CA). SNI is the host name dialled.

use super::error::{ConnectError, Layer};
use rustls::RootCertStore;
use rustls::pki_types::ServerName;
use std::sync::Arc;

/// Builds the client configuration; `ca_file` adds PEM certificates to the trusted roots.
pub fn client_config(ca_file: Option<&str>) -> Result<Arc<rustls::ClientConfig>, ConnectError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let target = format!("ca file {path}");
        let pem = std::fs::read(path).map_err(|e| {
            ConnectError::new(Layer::Tls, target.clone(), e.to_string(), None)
                .with_cause("credentials.ca_file points at a missing or unreadable file")
        })?;
        let mut added = 0;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| {
                ConnectError::new(Layer::Tls, target.clone(), format!("bad PEM: {e}"), None)
            })?;
            roots.add(cert).map_err(|e| {
                ConnectError::new(
                    Layer::Tls,
                    target.clone(),
                    format!("bad certificate: {e}"),
                    None,
                )
            })?;
            added += 1;
        }
        if added == 0 {
            return Err(ConnectError::new(
                Layer::Tls,
                target,
                "it holds no PEM certificate",
                None,
            ));
        }
    }
    // The process-wide provider (installed in main) is used when present; tests and library
    // users may not have installed one, so fall back to ring explicitly.
    let builder = match rustls::crypto::CryptoProvider::get_default() {
        Some(provider) => rustls::ClientConfig::builder_with_provider(provider.clone()),
        None => rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        )),
    };
    let config = builder
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectError::new(Layer::Tls, "tls setup", e.to_string(), None))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The name sent as SNI and checked against the certificate (an IP literal is checked as
/// an IP address SAN).
pub fn server_name(host: &str) -> Result<ServerName<'static>, ConnectError> {
    ServerName::try_from(host.trim_matches(|c| c == '[' || c == ']').to_string())
        .map_err(|_| ConnectError::new(Layer::Tls, host, "not a valid TLS server name", None))
}

/// Names the likely cause of a failed handshake from rustls's error.
pub(crate) fn handshake_cause(err: &std::io::Error) -> Option<&'static str> {
    let inner = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    match inner {
        Some(rustls::Error::InvalidCertificate(cert)) => Some(match cert {
            rustls::CertificateError::UnknownIssuer => {
                "the certificate is signed by a CA cachedeck does not trust; set credentials.ca_file to the CA's PEM"
            }
            rustls::CertificateError::NotValidForName
            | rustls::CertificateError::NotValidForNameContext { .. } => {
                "the certificate does not name this host; connect by the endpoint name the certificate was issued for"
            }
            rustls::CertificateError::Expired | rustls::CertificateError::ExpiredContext { .. } => {
                "the server's certificate has expired"
            }
            _ => "the server's certificate was rejected",
        }),
        Some(rustls::Error::InvalidMessage(_))
        | Some(rustls::Error::InappropriateMessage { .. }) => {
            Some("the endpoint does not speak TLS; use redis:// (tls off) for it")
        }
        Some(rustls::Error::AlertReceived(_)) => {
            Some("the server refused the handshake (protocol version or cipher mismatch)")
        }
        _ if err.kind() == std::io::ErrorKind::UnexpectedEof => {
            Some("the server closed the connection during the handshake; it may not speak TLS")
        }
        _ => None,
    }
}
