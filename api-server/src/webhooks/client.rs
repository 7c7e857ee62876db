//! The outbound POST of a delivery: connects to the one address the guard checked (never a
//! second DNS lookup), TLS with the web PKI roots for `https`, HTTP/1.1, and the per-attempt
//! timeout around all of it. Never follows redirects; never logs the body or headers.

use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use url::Url;

static TLS: LazyLock<Option<tokio_rustls::TlsConnector>> = LazyLock::new(|| {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .ok()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
});

/// The answer of an attempt: the status code.
pub type Outcome = Result<u16, String>;

/// POSTs `body` with `headers` to `url`, dialling `addr`.
pub async fn post(
    url: &Url,
    addr: SocketAddr,
    headers: &[(&'static str, String)],
    body: Bytes,
    timeout: Duration,
) -> Outcome {
    match tokio::time::timeout(timeout, post_inner(url, addr, headers, body)).await {
        Ok(r) => r,
        Err(_) => Err(format!("timed out after {} ms", timeout.as_millis())),
    }
}

async fn post_inner(
    url: &Url,
    addr: SocketAddr,
    headers: &[(&'static str, String)],
    body: Bytes,
) -> Outcome {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let host = url.host_str().unwrap_or_default().to_owned();
    if url.scheme() == "https" {
        let tls = TLS.as_ref().ok_or("tls unavailable")?;
        let name = rustls::pki_types::ServerName::try_from(
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
        )
        .map_err(|e| format!("tls name: {e}"))?;
        let stream = tls
            .connect(name, tcp)
            .await
            .map_err(|e| format!("tls: {e}"))?;
        send(TokioIo::new(stream), url, headers, body).await
    } else {
        send(TokioIo::new(tcp), url, headers, body).await
    }
}

async fn send<T>(io: T, url: &Url, headers: &[(&'static str, String)], body: Bytes) -> Outcome
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(io)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let conn = tokio::spawn(conn);
    let authority = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let mut req = http::Request::post(path)
        .header(http::header::HOST, authority)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::USER_AGENT, "sealpod-webhooks/1")
        .header(http::header::CONTENT_LENGTH, body.len());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let req = req
        .body(Full::new(body))
        .map_err(|e| format!("request: {e}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let status = resp.status().as_u16();
    // Drain a little of the answer so the receiver sees a clean close; its content is ignored.
    let _ = tokio::time::timeout(Duration::from_secs(1), resp.into_body().collect()).await;
    conn.abort();
    Ok(status)
}
