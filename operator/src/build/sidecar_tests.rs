//! The proxy configuration and Secret the operator writes, run by the real sidecar proxy on
//! loopback: with `--proxy-resolve` pointing the credential's host at a loopback upstream and
//! `--upstream-ca-file` naming the upstream's private CA, a sandbox-side CONNECT reaches the
//! upstream, TLS is verified against that CA, and the real key is swapped in.
//!
//! Only the file locations (listeners, the CA output, the Secret's mount directory) are moved to a
//! temporary directory; what the flags produce (`resolve`, `allow_cidrs`, `extra_roots`' content)
//! is used as written. Network: 127.0.0.1 only.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sealpod_resources::proxy_config::ProxyConfig;
use sealpod_sidecar::resolve::SystemNet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::fixture::{self, REAL_KEY, SEALED};
use super::*;

/// A private CA and a leaf for `api.anthropic.com` signed by it.
struct Pki {
    ca_pem: String,
    leaf: CertificateDer<'static>,
    leaf_key: PrivateKeyDer<'static>,
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "private gateway CA");
    let ca_pem = ca.self_signed(&ca_key).expect("ca").pem();
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().expect("key");
    let leaf = CertificateParams::new(vec!["api.anthropic.com".to_owned()])
        .expect("params")
        .signed_by(&leaf_key, &issuer)
        .expect("leaf");
    Pki {
        ca_pem,
        leaf: leaf.der().clone(),
        leaf_key: PrivateKeyDer::from_pem_slice(leaf_key.serialize_pem().as_bytes()).expect("key"),
    }
}

/// A TLS upstream on 127.0.0.1: answers `200 real-key` when the request carried the real key in
/// `x-api-key`, else `401`.
async fn upstream(pki: &Pki) -> SocketAddr {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(vec![pki.leaf.clone()], pki.leaf_key.clone_key())
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let head = read_head(&mut tls).await.to_ascii_lowercase();
                let wanted = format!("x-api-key: {}", REAL_KEY.to_ascii_lowercase());
                let reply = if head.contains(&wanted) {
                    "HTTP/1.1 200 OK\r\ncontent-length: 8\r\nconnection: close\r\n\r\nreal-key"
                } else {
                    "HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                };
                let _ = tls.write_all(reply.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

async fn read_head<S: AsyncReadExt + Unpin>(s: &mut S) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte).await {
            Ok(1) => buf.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Starts the sidecar proxy from the operator's Secret for `settings`, with file locations moved
/// under `dir`, after `edit` (the contrast cases) has changed the configuration.
async fn proxy_from_secret(
    settings: &Settings,
    dir: &std::path::Path,
    edit: impl FnOnce(&mut ProxyConfig),
) -> sealpod_sidecar::running::Running {
    let secret = proxy_secret(&fixture::plan(), settings).expect("builds");
    let data = secret.data.as_ref().expect("data");
    // The Secret's entries, as the pod mounts them at PROXY_DIR.
    for (name, bytes) in data {
        std::fs::write(dir.join(name), &bytes.0).expect("entry");
    }
    let text = String::from_utf8(data[PROXY_CONFIG_ENTRY].0.clone()).expect("utf8");
    let mut config: ProxyConfig = serde_saphyr::from_str(&text).expect("yaml");
    // Relative paths name entries next to the configuration, as the sidecar resolves them.
    let remount = |p: &std::path::Path| {
        assert!(
            p.is_relative(),
            "{} is not an entry of the Secret",
            p.display()
        );
        dir.join(p)
    };
    config.listen = "127.0.0.1:0".into();
    config.admin_listen = "127.0.0.1:0".into();
    config.ca_cert_out = dir.join("pod-ca.pem");
    config.events = None;
    for c in &mut config.credentials {
        c.value_file = remount(&c.value_file);
    }
    config.extra_roots = config.extra_roots.iter().map(|p| remount(p)).collect();
    edit(&mut config);
    let valid = config.validate().expect("the sidecar accepts it");
    sealpod_sidecar::running::start(&valid, Arc::new(SystemNet::new(valid.resolve.clone())))
        .await
        .expect("the sidecar starts")
}

/// What a sandbox gets for `CONNECT api.anthropic.com:443` and a request with the sealed token:
/// the CONNECT status, then the HTTP status line and body (when the CONNECT succeeded).
async fn call(running: &sealpod_sidecar::running::Running, dir: &std::path::Path) -> String {
    let mut tcp = TcpStream::connect(running.listen).await.expect("proxy");
    tcp.write_all(b"CONNECT api.anthropic.com:443 HTTP/1.1\r\nHost: api.anthropic.com:443\r\n\r\n")
        .await
        .expect("connect");
    let head = read_head(&mut tcp).await;
    let status = head.lines().next().unwrap_or_default().to_owned();
    if !status.contains(" 200") {
        return status;
    }
    // The sandbox trusts the pod CA the proxy wrote.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(dir.join("pod-ca.pem")).expect("pod ca"))
        .expect("root");
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::try_from("api.anthropic.com").expect("name");
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(name, tcp)
        .await
        .expect("tls to the proxy");
    let request = format!(
        "GET /v1/models HTTP/1.1\r\nHost: api.anthropic.com\r\nx-api-key: {SEALED}\r\nconnection: close\r\n\r\n"
    );
    tls.write_all(request.as_bytes()).await.expect("request");
    let mut response = String::new();
    let _ = tls.read_to_string(&mut response).await;
    let line = response.lines().next().unwrap_or_default().to_owned();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    format!("{line} | {body}")
}

#[tokio::test]
async fn the_real_proxy_reaches_an_overridden_loopback_upstream_trusting_the_flagged_ca() {
    let pki = pki();
    let addr = upstream(&pki).await;
    let dir = tempfile::tempdir().expect("dir");
    let ca_file = dir.path().join("flag-ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).expect("ca");
    let resolve = format!("--proxy-resolve=api.anthropic.com={addr}");
    let ca_flag = format!("--upstream-ca-file={}", ca_file.display());
    let flagged = <crate::Config as clap::Parser>::try_parse_from([
        "sealpod-operator",
        "--sidecar-image=s:1",
        "--runtime-image=r:1",
        "--runtime-api-url=http://sealpod-api.sealpod-system.svc:8081",
        resolve.as_str(),
        ca_flag.as_str(),
    ])
    .expect("flags")
    .settings()
    .expect("settings");
    // The flags under test, from the real parser; the rest from the shared fixture.
    let settings = Settings {
        proxy_resolve: flagged.proxy_resolve,
        upstream_ca: flagged.upstream_ca,
        ..fixture::settings()
    };

    let mount = tempfile::tempdir().expect("dir");
    let running = proxy_from_secret(&settings, mount.path(), |_| ()).await;
    // The body may come back chunked: look for the upstream's word in it.
    let reached = call(&running, mount.path()).await;
    assert!(
        reached.starts_with("HTTP/1.1 200 OK | ") && reached.contains("real-key"),
        "overridden, exempted, verified against the flagged CA, key swapped: {reached}"
    );
    drop(running);

    // Each part is needed. Without the exemption the override is refused as non-public ...
    let plain = proxy_config::proxy_config(&fixture::plan(), &fixture::settings()).allow_cidrs;
    let mount = tempfile::tempdir().expect("dir");
    let running = proxy_from_secret(&settings, mount.path(), |c| {
        assert_ne!(c.allow_cidrs, plain, "the override added an exemption");
        c.allow_cidrs = plain;
    })
    .await;
    let refused = call(&running, mount.path()).await;
    assert_eq!(refused, "HTTP/1.1 403 Forbidden", "CONNECT refused");
    drop(running);

    // ... and without the CA the upstream's certificate is not trusted.
    let mount = tempfile::tempdir().expect("dir");
    let no_ca = Settings {
        upstream_ca: None,
        ..settings.clone()
    };
    let running = proxy_from_secret(&no_ca, mount.path(), |_| ()).await;
    let untrusted = call(&running, mount.path()).await;
    assert!(
        untrusted.starts_with("HTTP/1.1 502 ") && !untrusted.contains("real-key"),
        "{untrusted}"
    );
}
