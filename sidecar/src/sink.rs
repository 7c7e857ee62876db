//! The sidecar's client of the API server's runtime API: `POST` a JSON body with the bearer token
//! read from a file (on every call, so a rotated token takes effect without a restart) to an
//! `http://` or `https://` URL, one connection per call. The event sink ([`crate::events`]) and
//! the egress gate ([`crate::gate`]) use it.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use sealpod_resources::secret::Secret;
use tokio::net::TcpStream;

/// The largest reply read.
const MAX_REPLY: usize = 64 * 1024;

/// A parsed sink URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    tls: bool,
    host: String,
    port: u16,
    path: String,
}

impl Target {
    pub(crate) fn parse(url: &str) -> Option<Self> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else {
            (false, url.strip_prefix("http://")?)
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let uri: http::uri::Authority = authority.parse().ok()?;
        Some(Self {
            tls,
            host: uri
                .host()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port: uri.port_u16().unwrap_or(if tls { 443 } else { 80 }),
            path: path.to_owned(),
        })
    }
}

pub(crate) type PostError = Box<dyn std::error::Error + Send + Sync>;

pub(crate) async fn post(
    target: &Target,
    token_file: &PathBuf,
    body: Vec<u8>,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<(http::StatusCode, Bytes), PostError> {
    // Read on every call, so a rotated sink token takes effect without a restart.
    let token = Secret::new(
        tokio::fs::read_to_string(token_file)
            .await?
            .trim()
            .to_owned(),
    );
    let tcp = TcpStream::connect((target.host.as_str(), target.port)).await?;
    let authority = if (target.tls && target.port == 443) || (!target.tls && target.port == 80) {
        target.host.clone()
    } else {
        format!("{}:{}", target.host, target.port)
    };
    let request = Request::post(target.path.as_str())
        .header(http::header::HOST, authority)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(
            http::header::AUTHORIZATION,
            format!("Bearer {}", token.expose()),
        )
        .body(Full::new(Bytes::from(body)))?;
    let answer = if target.tls {
        let name = rustls::pki_types::ServerName::try_from(target.host.clone())?;
        let stream = tokio_rustls::TlsConnector::from(Arc::clone(tls))
            .connect(name, tcp)
            .await?;
        send(TokioIo::new(stream), request).await?
    } else {
        send(TokioIo::new(tcp), request).await?
    };
    Ok(answer)
}

async fn send<T>(
    io: T,
    request: Request<Full<Bytes>>,
) -> Result<(http::StatusCode, Bytes), PostError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(conn);
    let response = sender.send_request(request).await?;
    let status = response.status();
    // The reply is small (the sink's acknowledgement, the gate's answer); a larger one is cut.
    let body = http_body_util::Limited::new(response.into_body(), MAX_REPLY)
        .collect()
        .await?
        .to_bytes();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_urls_parse() {
        let t = Target::parse("http://api.sealpod:8081/runtime/v1/egress").expect("url");
        assert_eq!(
            (t.tls, t.host.as_str(), t.port, t.path.as_str()),
            (false, "api.sealpod", 8081, "/runtime/v1/egress")
        );
        let t = Target::parse("https://[::1]").expect("url");
        assert_eq!(
            (t.tls, t.host.as_str(), t.port, t.path.as_str()),
            (true, "::1", 443, "/")
        );
        assert!(Target::parse("ftp://x").is_none());
    }
}
