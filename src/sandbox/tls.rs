//! The sandbox's local CA and the endpoint certificate (SANs localhost, 127.0.0.1 and
//! [`CLUSTER_FRONT_HOST`]), and the TLS acceptor of the endpoint daemon. TLS ends in the
//! daemon, as ElastiCache ends it in front of the nodes; the CA's PEM is what clients are
//! told to trust (`credentials.ca_file`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const CA_FILE: &str = "ca.pem";
const CERT_FILE: &str = "endpoint.pem";
const KEY_FILE: &str = "endpoint-key.pem";
/// The loopback address of the per-node TLS fronts of a cluster-mode group with in-transit
/// encryption: each node listens plain on 127.0.0.1:P, its front on this address with the same
/// port, and the node announces this address to clients (`cluster-announce-client-ipv4`),
/// so CLUSTER SLOTS/SHARDS/NODES and MOVED/ASK name the TLS address, as on ElastiCache.
/// Replication and the cluster bus stay on 127.0.0.1. Any 127.0.0.0/8 address is local on
/// Linux without setup.
pub const CLUSTER_FRONT_HOST: &str = "127.0.1.1";

/// Server arguments of a cluster node whose clients reach it through its TLS front.
pub fn cluster_front_args() -> [&'static str; 2] {
    ["--cluster-announce-client-ipv4", CLUSTER_FRONT_HOST]
}

/// Why the certificates could not be made or loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("generate the sandbox certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("write {path}: {source}")]
    Write {
        path: PathBuf,
        source: crate::valkey::server::ServerError,
    },
    #[error("load {path}: {detail}; run `cachedeck sandbox down` and `up` to make new ones")]
    Load { path: PathBuf, detail: String },
}

/// Creates the CA and the endpoint certificate under `tls_dir`; returns the CA file path.
pub fn generate(tls_dir: &Path) -> Result<PathBuf, TlsError> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "cachedeck sandbox local CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let mut leaf = CertificateParams::new(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        CLUSTER_FRONT_HOST.to_string(),
    ])?;
    leaf.distinguished_name
        .push(DnType::CommonName, "cachedeck sandbox endpoint");
    let leaf_key = KeyPair::generate()?;
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;

    std::fs::create_dir_all(tls_dir).map_err(|e| TlsError::Write {
        path: tls_dir.to_path_buf(),
        source: crate::valkey::server::ServerError::Io {
            path: tls_dir.to_path_buf(),
            source: e,
        },
    })?;
    let write = |name: &str, text: &str| -> Result<PathBuf, TlsError> {
        let path = tls_dir.join(name);
        crate::valkey::server::write_private(&path, text).map_err(|source| TlsError::Write {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    };
    let ca = write(CA_FILE, &ca_cert.pem())?;
    write(CERT_FILE, &format!("{}{}", leaf_cert.pem(), ca_cert.pem()))?;
    write(KEY_FILE, &leaf_key.serialize_pem())?;
    Ok(ca)
}

/// The acceptor serving the endpoint certificate from `tls_dir`.
pub fn acceptor(tls_dir: &Path) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let cert_path = tls_dir.join(CERT_FILE);
    let key_path = tls_dir.join(KEY_FILE);
    let load = |path: &Path, detail: String| TlsError::Load {
        path: path.to_path_buf(),
        detail,
    };
    let certs = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| load(&cert_path, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| load(&cert_path, e.to_string()))?;
    let key =
        PrivateKeyDer::from_pem_file(&key_path).map_err(|e| load(&key_path, e.to_string()))?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| load(&cert_path, e.to_string()))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// A client config trusting only the sandbox CA (for probes and tests).
pub fn client_config(ca_file: &Path) -> Result<rustls::ClientConfig, TlsError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let load = |detail: String| TlsError::Load {
        path: ca_file.to_path_buf(),
        detail,
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).map_err(|e| load(e.to_string()))? {
        roots
            .add(cert.map_err(|e| load(e.to_string()))?)
            .map_err(|e| load(e.to_string()))?;
    }
    Ok(rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth())
}
