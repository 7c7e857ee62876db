//! Outbound HTTP/1.1 for the runtime: one connection per request, direct or through an HTTP
//! `CONNECT` proxy (`HTTPS_PROXY`), TLS by tokio-rustls (ring) verified against the webpki roots
//! plus `SSL_CERT_FILE` (where the sidecar's per-pod CA lives; read again when it changes, see
//! [`Trust`]).
//!
//! It never logs a header value: callers put secrets in headers, this module only moves bytes.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// A parsed `scheme://host[:port][/prefix]` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// True for `https`.
    pub https: bool,
    /// Host name or IP literal (brackets removed).
    pub host: String,
    /// Port (scheme default when absent).
    pub port: u16,
    /// Path prefix without a trailing `/` (empty for none).
    pub prefix: String,
}

/// A URL the runtime cannot use.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    /// Not `http://` or `https://`.
    #[error("`{0}` must start with http:// or https://")]
    Scheme(String),
    /// No host or a bad port.
    #[error("`{0}` has no valid host and port")]
    Authority(String),
}

impl Endpoint {
    /// Parses a URL; userinfo, query and fragment are not accepted.
    pub fn parse(url: &str) -> Result<Endpoint, UrlError> {
        let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(UrlError::Scheme(url.into()));
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.is_empty() || authority.contains('@') {
            return Err(UrlError::Authority(url.into()));
        }
        let default_port = if https { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| UrlError::Authority(url.into()))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| UrlError::Authority(url.into()))?,
                None => default_port,
            };
            (h.to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (
                    h.to_owned(),
                    p.parse().map_err(|_| UrlError::Authority(url.into()))?,
                ),
                None => (authority.to_owned(), default_port),
            }
        };
        if host.is_empty() {
            return Err(UrlError::Authority(url.into()));
        }
        Ok(Endpoint {
            https,
            host: host.to_ascii_lowercase(),
            port,
            prefix: path.trim_end_matches('/').to_owned(),
        })
    }

    /// `host:port` for a `Host` header or `CONNECT` (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// True when `no_proxy` (lower-case entries) exempts this host from the proxy.
    pub fn bypasses_proxy(&self, no_proxy: &[String]) -> bool {
        no_proxy.iter().any(|entry| {
            let entry = entry.split(':').next().unwrap_or_default();
            entry == "*"
                || self.host == entry.trim_start_matches('.')
                || (self
                    .host
                    .ends_with(&format!(".{}", entry.trim_start_matches('.'))))
        })
    }
}

/// A failed exchange.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// TCP connect, TLS or I/O failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The proxy refused the tunnel.
    #[error("proxy answered `{0}` to CONNECT")]
    Proxy(String),
    /// HTTP framing failed.
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    /// The server name is not valid for TLS.
    #[error("invalid TLS server name `{0}`")]
    ServerName(String),
}

/// The trust store of outbound TLS, kept current with `SSL_CERT_FILE`: a proxy sidecar that
/// restarts mints a new per-pod CA (its key never outlives its process) and rewrites the file,
/// and every certificate it signs from then on is signed by the new CA. Each connection takes the
/// store as of the file's last change; a file that cannot be read or parsed keeps the store
/// before it (and is read again next time).
#[derive(Debug)]
pub struct Trust {
    ca_file: Option<PathBuf>,
    /// The store, and the file's stamp when it was built from it.
    current: Mutex<(Option<Stamp>, Arc<ClientConfig>)>,
}

/// A file's modification time and length.
type Stamp = (SystemTime, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl Trust {
    /// Loads the store; a `ca_file` that cannot be read or parsed is an error here.
    pub fn load(ca_file: Option<&Path>) -> Result<Trust, std::io::Error> {
        let stamp = ca_file.and_then(stamp);
        let config = tls_config(ca_file)?;
        Ok(Trust {
            ca_file: ca_file.map(Path::to_path_buf),
            current: Mutex::new((stamp, config)),
        })
    }

    /// The store for a new connection.
    pub fn config(&self) -> Arc<ClientConfig> {
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(path) = &self.ca_file {
            let now = stamp(path);
            if now.is_some() && now != current.0 {
                match tls_config(Some(path)) {
                    Ok(config) => {
                        tracing::info!(file = %path.display(), "trusted certificates changed; reloaded");
                        *current = (now, config);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "trusted certificates unreadable; keeping the previous ones");
                    }
                }
            }
        }
        current.1.clone()
    }
}

/// Loads the trust store: webpki roots plus every certificate in `ca_file`.
fn tls_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, std::io::Error> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)?;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?;
            roots.add(cert).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?;
        }
    }
    let mut config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

async fn tunnel(proxy: &Endpoint, target: &Endpoint) -> Result<TcpStream, NetError> {
    let mut tcp = TcpStream::connect((proxy.host.as_str(), proxy.port)).await?;
    let authority = target.authority();
    tcp.write_all(format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").as_bytes())
        .await?;
    // Read the proxy's answer byte by byte up to the blank line, so nothing of the tunnelled
    // stream is consumed.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return Err(NetError::Proxy("an oversized answer".into()));
        }
        let byte = tcp.read_u8().await?;
        head.push(byte);
    }
    let text = String::from_utf8_lossy(&head);
    let status_line = text.lines().next().unwrap_or_default().to_owned();
    let ok = status_line
        .split_whitespace()
        .nth(1)
        .is_some_and(|code| code.starts_with('2'));
    if ok {
        Ok(tcp)
    } else {
        Err(NetError::Proxy(status_line))
    }
}

/// Sends one request to `target` (through `proxy` when given) on a fresh connection. The request
/// URI must be origin-form (`/path?query`); `Host` is set here.
pub async fn send(
    target: &Endpoint,
    proxy: Option<&Endpoint>,
    trust: &Trust,
    mut request: Request<Full<Bytes>>,
) -> Result<Response<Incoming>, NetError> {
    let tcp = match proxy {
        Some(proxy) => tunnel(proxy, target).await?,
        None => TcpStream::connect((target.host.as_str(), target.port)).await?,
    };
    tcp.set_nodelay(true)?;
    let io: Pin<Box<dyn Io>> = if target.https {
        let name = ServerName::try_from(target.host.clone())
            .map_err(|_| NetError::ServerName(target.host.clone()))?;
        let stream = TlsConnector::from(trust.config())
            .connect(name, tcp)
            .await?;
        Box::pin(stream)
    } else {
        Box::pin(tcp)
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "connection closed with an error");
        }
    });
    if let Ok(host) = http::HeaderValue::from_str(&target.authority()) {
        request.headers_mut().insert(http::header::HOST, host);
    }
    Ok(sender.send_request(request).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let e = Endpoint::parse("https://api.anthropic.com").expect("url");
        assert_eq!((e.https, e.port, e.prefix.as_str()), (true, 443, ""));
        let e = Endpoint::parse("http://127.0.0.1:8081/base/").expect("url");
        assert_eq!(
            (e.host.as_str(), e.port, e.prefix.as_str()),
            ("127.0.0.1", 8081, "/base")
        );
        let e = Endpoint::parse("http://[::1]:9").expect("url");
        assert_eq!(e.authority(), "[::1]:9");
        assert!(Endpoint::parse("ftp://x").is_err());
        assert!(Endpoint::parse("http://user@x").is_err());
        assert!(Endpoint::parse("http://x:notaport").is_err());
    }

    #[test]
    fn no_proxy_matches_hosts_and_suffixes() {
        let e = Endpoint::parse("https://api.sealpod.svc:8081").expect("url");
        assert!(e.bypasses_proxy(&[".svc".into()]));
        assert!(e.bypasses_proxy(&["sealpod.svc".into()]));
        assert!(e.bypasses_proxy(&["*".into()]));
        assert!(!e.bypasses_proxy(&["anthropic.com".into(), "pod.svc".into()]));
    }
}
