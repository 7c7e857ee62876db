//! TLS material: a fresh certificate authority per cluster and a server certificate for the
//! loopback names (`localhost`, `127.0.0.1`, `::1`), both generated in memory with rcgen/ring.
//! Only the CA certificate leaves this module in clear (into kubeconfigs and clients); the keys
//! stay in the server config.

use crate::error::Error;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use std::sync::Arc;

/// The CA certificate (PEM and DER) and the server config that presents the leaf.
#[derive(Debug, Clone)]
pub(crate) struct TlsMaterial {
    pub(crate) ca_pem: String,
    pub(crate) ca_der: Vec<u8>,
    pub(crate) server: Arc<rustls::ServerConfig>,
}

pub(crate) fn generate() -> Result<TlsMaterial, Error> {
    let e = |x: rcgen::Error| Error::Tls(x.to_string());
    let ca_key = KeyPair::generate().map_err(e)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "devcluster-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(e)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate().map_err(e)?;
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).map_err(e)?;
    leaf.distinguished_name
        .push(DnType::CommonName, "devcluster");
    leaf.subject_alt_names
        .push(SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
    leaf.subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()));
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(e)?;

    let chain = vec![leaf_cert.der().clone(), ca_cert.der().clone()];
    let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der())
        .map_err(|m| Error::Tls(m.to_string()))?;
    let mut server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|x| Error::Tls(x.to_string()))?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|x| Error::Tls(x.to_string()))?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsMaterial {
        ca_pem: ca_cert.pem(),
        ca_der: ca_cert.der().to_vec(),
        server: Arc::new(server),
    })
}
