//! The per-pod CA: minted in memory at start, signs leaf certificates per host on demand and
//! caches them.
//!
//! Only the CA *certificate* ever leaves this module (as PEM, for `ca_cert_out`). The CA's private
//! key must never be written, logged or exported: it dies with the process.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;

/// Leaves kept in the cache; past this the cache starts over (a sandbox talks to few hosts).
const LEAF_CACHE: usize = 1024;

/// Why a certificate could not be minted.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// rcgen refused (bad name, key generation).
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// rustls refused the generated key.
    #[error("generated key unusable: {0}")]
    Key(#[from] rustls::Error),
}

/// The per-pod certificate authority.
pub struct PodCa {
    issuer: Issuer<'static, KeyPair>,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    leaves: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl fmt::Debug for PodCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PodCa").finish_non_exhaustive()
    }
}

impl PodCa {
    /// Mints a fresh CA (ECDSA P-256) in memory.
    pub fn mint() -> Result<Self, CaError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "sealpod per-pod egress CA");
        dn.push(DnType::OrganizationName, "sealpod");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(3650);
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_der: cert.der().clone(),
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
            leaves: Mutex::default(),
        })
    }

    /// The CA certificate, PEM (the only thing written to `ca_cert_out`).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// A leaf certificate for `name` (a DNS name or an IP literal), from the cache or minted now.
    pub fn leaf(&self, name: &str) -> Result<Arc<CertifiedKey>, CaError> {
        let name = name.to_ascii_lowercase();
        if let Some(hit) = self.cache().get(&name) {
            return Ok(Arc::clone(hit));
        }
        let leaf = Arc::new(self.mint_leaf(&name)?);
        let mut cache = self.cache();
        if cache.len() >= LEAF_CACHE {
            cache.clear();
        }
        cache.insert(name, Arc::clone(&leaf));
        Ok(leaf)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<CertifiedKey>>> {
        self.leaves.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn mint_leaf(&self, name: &str) -> Result<CertifiedKey, CaError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![match name.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(name.to_owned().try_into()?),
        }];
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(365);
        let cert = params.signed_by(&key, &self.issuer)?;
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signing = rustls::crypto::ring::sign::any_ecdsa_type(&der)?;
        Ok(CertifiedKey::new(
            vec![cert.der().clone(), self.cert_der.clone()],
            signing,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_are_cached_per_name() {
        let ca = PodCa::mint().expect("ca");
        assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(!ca.cert_pem().contains("PRIVATE KEY"));
        let a = ca.leaf("api.example.com").expect("leaf");
        let b = ca.leaf("API.example.com").expect("leaf");
        assert!(Arc::ptr_eq(&a, &b));
        let c = ca.leaf("127.0.0.1").expect("ip leaf");
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(a.cert.len(), 2, "leaf plus CA");
    }
}
