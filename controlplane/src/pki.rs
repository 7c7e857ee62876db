//! The control plane's keys and certificates, made once and kept in `DIR/pki/` (keys 0600): a
//! CA, the API server's serving certificate for the loopback names, client certificates for the
//! admin (`system:masters`) and the controller manager, the service-account signing key, and the
//! `EncryptionConfiguration` that encrypts Secrets at rest in etcd (`aesgcm`, a random key).
//! Kubeconfigs embed them. Nothing here is ever logged.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use super::Error;

/// A certificate and its key, both PEM.
#[derive(Clone)]
pub struct Identity {
    /// The certificate.
    pub cert: String,
    /// The private key.
    pub key: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").finish_non_exhaustive()
    }
}

/// The files of `DIR/pki/`.
#[derive(Debug, Clone)]
pub struct Pki {
    /// Its directory.
    pub dir: PathBuf,
}

/// The client identities with kubeconfigs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum User {
    /// `sealpod-admin` in `system:masters`.
    Admin,
    /// `system:kube-controller-manager`.
    ControllerManager,
}

impl User {
    fn file(self) -> &'static str {
        match self {
            User::Admin => "admin",
            User::ControllerManager => "controller-manager",
        }
    }

    fn subject(self) -> (&'static str, Option<&'static str>) {
        match self {
            User::Admin => ("sealpod-admin", Some("system:masters")),
            User::ControllerManager => ("system:kube-controller-manager", None),
        }
    }
}

const USERS: [User; 2] = [User::Admin, User::ControllerManager];

fn tls(e: &rcgen::Error) -> Error {
    Error::Pki(e.to_string())
}

fn write(path: &Path, text: &str, mode: u32) -> Result<(), Error> {
    sealpod_util::files::write_with_mode(path, text.as_bytes(), mode).map_err(Error::io(path))
}

impl Pki {
    /// The PKI under `dir`, made now unless every file is there already.
    pub fn open(dir: &Path) -> Result<Pki, Error> {
        let pki = Pki {
            dir: dir.to_path_buf(),
        };
        let mut files = vec![
            pki.path("ca.crt"),
            pki.path("apiserver.crt"),
            pki.path("apiserver.key"),
            pki.path("sa.key"),
            pki.path("sa.pub"),
            pki.path("encryption.yaml"),
        ];
        files.extend(USERS.iter().map(|u| pki.path(&format!("{}.key", u.file()))));
        if !files.iter().all(|f| f.is_file()) {
            pki.make()?;
        }
        Ok(pki)
    }

    /// A file of the PKI.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn make(&self) -> Result<(), Error> {
        std::fs::create_dir_all(&self.dir).map_err(Error::io(&self.dir))?;
        let ca_key = KeyPair::generate().map_err(|e| tls(&e))?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(|e| tls(&e))?;
        ca.distinguished_name
            .push(DnType::CommonName, "sealpod-control-plane-ca");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).map_err(|e| tls(&e))?;
        write(&self.path("ca.crt"), &ca_cert.pem(), 0o644)?;
        write(&self.path("ca.key"), &ca_key.serialize_pem(), 0o600)?;
        let issuer = Issuer::new(ca, ca_key);

        let names = [
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ];
        let mut serving =
            CertificateParams::new(names.map(str::to_owned).to_vec()).map_err(|e| tls(&e))?;
        serving
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        for ip in [IpAddr::from([127, 0, 0, 1]), IpAddr::from([10, 96, 0, 1])] {
            serving.subject_alt_names.push(SanType::IpAddress(ip));
        }
        serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().map_err(|e| tls(&e))?;
        let cert = serving.signed_by(&key, &issuer).map_err(|e| tls(&e))?;
        write(&self.path("apiserver.crt"), &cert.pem(), 0o644)?;
        write(&self.path("apiserver.key"), &key.serialize_pem(), 0o600)?;

        for user in USERS {
            let (name, group) = user.subject();
            let mut client = CertificateParams::new(Vec::<String>::new()).map_err(|e| tls(&e))?;
            client.distinguished_name.push(DnType::CommonName, name);
            if let Some(group) = group {
                client
                    .distinguished_name
                    .push(DnType::OrganizationName, group);
            }
            client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            let key = KeyPair::generate().map_err(|e| tls(&e))?;
            let cert = client.signed_by(&key, &issuer).map_err(|e| tls(&e))?;
            write(
                &self.path(&format!("{}.crt", user.file())),
                &cert.pem(),
                0o644,
            )?;
            write(
                &self.path(&format!("{}.key", user.file())),
                &key.serialize_pem(),
                0o600,
            )?;
        }
        let secret_key: [u8; 32] = rand::random();
        let encryption = serde_json::json!({
            "apiVersion": "apiserver.config.k8s.io/v1",
            "kind": "EncryptionConfiguration",
            "resources": [{
                "resources": ["secrets"],
                "providers": [
                    {"aesgcm": {"keys": [{"name": "key1", "secret": BASE64.encode(secret_key)}]}},
                    {"identity": {}},
                ],
            }],
        });
        let yaml = serde_saphyr::to_string(&encryption).map_err(|e| Error::Pki(e.to_string()))?;
        write(&self.path("encryption.yaml"), &yaml, 0o600)?;
        let sa = KeyPair::generate().map_err(|e| tls(&e))?;
        write(&self.path("sa.pub"), &sa.public_key_pem(), 0o644)?;
        write(&self.path("sa.key"), &sa.serialize_pem(), 0o600)
    }

    fn read(&self, name: &str) -> Result<String, Error> {
        let path = self.path(name);
        std::fs::read_to_string(&path).map_err(Error::io(&path))
    }

    /// A user's certificate and key.
    pub fn identity(&self, user: User) -> Result<Identity, Error> {
        Ok(Identity {
            cert: self.read(&format!("{}.crt", user.file()))?,
            key: self.read(&format!("{}.key", user.file()))?,
        })
    }

    /// Writes a kubeconfig (mode 0600) for `user` against `server`.
    pub fn write_kubeconfig(&self, path: &Path, server: &str, user: User) -> Result<(), Error> {
        write(path, &self.kubeconfig(server, user)?, 0o600)
    }

    /// A kubeconfig (YAML) for `user` against `server`, with the CA and the user's key inline.
    pub fn kubeconfig(&self, server: &str, user: User) -> Result<String, Error> {
        let identity = self.identity(user)?;
        let b64 = |s: &str| BASE64.encode(s);
        let doc = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "sealpod", "cluster": {
                "server": server,
                "certificate-authority-data": b64(&self.read("ca.crt")?),
            }}],
            "users": [{"name": user.file(), "user": {
                "client-certificate-data": b64(&identity.cert),
                "client-key-data": b64(&identity.key),
            }}],
            "contexts": [{"name": "sealpod", "context": {
                "cluster": "sealpod", "user": user.file(), "namespace": "default",
            }}],
            "current-context": "sealpod",
            "preferences": {},
        });
        serde_saphyr::to_string(&doc).map_err(|e| Error::Pki(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_kept_after_and_keys_are_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tmp");
        let pki = Pki::open(dir.path()).expect("pki");
        let first = pki.identity(User::Admin).expect("admin");
        let again = Pki::open(dir.path()).expect("reopened");
        assert_eq!(again.identity(User::Admin).expect("admin").cert, first.cert);
        for key in ["ca.key", "apiserver.key", "sa.key", "admin.key"] {
            let mode = std::fs::metadata(pki.path(key))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{key}");
        }
        let kubeconfig = dir.path().join("kubeconfig");
        pki.write_kubeconfig(&kubeconfig, "https://127.0.0.1:1", User::Admin)
            .expect("kubeconfig");
        let text = std::fs::read_to_string(&kubeconfig).expect("read");
        assert!(text.contains("client-key-data"), "{text}");
    }
}
