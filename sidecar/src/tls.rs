//! TLS configurations: the client-facing server side (leaves from the per-pod CA, HTTP/1.1) and
//! the upstream client side (webpki roots plus `extra_roots`, ALPN h2 then HTTP/1.1).
//!
//! ring is the only crypto provider. Upstream certificates are always verified: this module must
//! never offer a way to skip verification.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::ca::PodCa;

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// An `extra_roots` file could not be read or holds no certificate.
    #[error("extra_roots file {path}: {message}")]
    Roots {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The upstream client configuration: webpki roots plus the PEM files in `extra_roots`.
pub fn upstream_client(extra_roots: &[PathBuf]) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for path in extra_roots {
        let err = |message: String| TlsError::Roots {
            path: path.display().to_string(),
            message,
        };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| err(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err(e.to_string()))?;
        if certs.is_empty() {
            return Err(err("no certificate found".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| err(e.to_string()))?;
        }
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The server configuration for one intercepted connection: a leaf for the client's SNI, or for
/// `connect_host` when the client sends none. HTTP/1.1 to the client.
pub fn intercept_server(ca: Arc<PodCa>, connect_host: &str) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(LeafResolver {
            ca,
            fallback: connect_host.to_owned(),
        }));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Picks the leaf by SNI. A leaf for a name other than the `CONNECT` target is still minted so
/// that the mismatch is answered with a readable 421 instead of a handshake failure; nothing is
/// ever forwarded on such a connection.
#[derive(Debug)]
struct LeafResolver {
    ca: Arc<PodCa>,
    fallback: String,
}

impl ResolvesServerCert for LeafResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name().unwrap_or(&self.fallback);
        match self.ca.leaf(name) {
            Ok(leaf) => Some(leaf),
            Err(error) => {
                tracing::warn!(%error, "cannot mint a leaf certificate");
                None
            }
        }
    }
}
