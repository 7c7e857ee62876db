//! Test support: the fake upstream, a counting resolver/dialler, an event sink, and a small
//! proxy client (CONNECT, TLS, HTTP/1.1).

#![allow(dead_code, unreachable_pub)]

pub mod upstream;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use sealpod_sidecar::resolve::{BoxFuture, Net, SystemNet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Counts lookups and dials, delegating to the real network (with overrides).
#[derive(Debug)]
pub struct CountingNet {
    pub inner: SystemNet,
    pub lookups: Mutex<Vec<String>>,
    pub dials: Mutex<Vec<SocketAddr>>,
}

impl CountingNet {
    pub fn new(inner: SystemNet) -> Self {
        Self {
            inner,
            lookups: Mutex::default(),
            dials: Mutex::default(),
        }
    }
    pub fn lookups(&self) -> Vec<String> {
        self.lookups.lock().expect("lock").clone()
    }
    pub fn dials(&self) -> Vec<SocketAddr> {
        self.dials.lock().expect("lock").clone()
    }
}

impl Net for CountingNet {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, io::Result<Vec<SocketAddr>>> {
        self.lookups
            .lock()
            .expect("lock")
            .push(format!("{host}:{port}"));
        self.inner.resolve(host, port)
    }
    fn connect(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<TcpStream>> {
        self.dials.lock().expect("lock").push(addr);
        self.inner.connect(addr)
    }
}

/// An egress event sink recording what it receives.
#[derive(Debug)]
pub struct Sink {
    pub posts: Mutex<Vec<(String, serde_json::Value)>>,
    pub count: AtomicUsize,
    /// Events received so far, for waiting on them without polling.
    received: tokio::sync::watch::Sender<usize>,
}

impl Default for Sink {
    fn default() -> Self {
        Self {
            posts: Mutex::default(),
            count: AtomicUsize::new(0),
            received: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl Sink {
    pub async fn start() -> (SocketAddr, Arc<Sink>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
        let addr = listener.local_addr().expect("addr");
        let sink = Arc::new(Sink::default());
        let s = Arc::clone(&sink);
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let s = Arc::clone(&s);
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let s = Arc::clone(&s);
                        async move {
                            let auth = req
                                .headers()
                                .get("authorization")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_owned();
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let json =
                                serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                            let n = json["events"].as_array().map_or(0, Vec::len);
                            s.posts.lock().expect("lock").push((auth, json));
                            s.count.fetch_add(1, Ordering::SeqCst);
                            s.received.send_modify(|received| *received += n);
                            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                                Bytes::from_static(b"{}"),
                            )))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        (addr, sink)
    }

    /// Every event received once at least `n` have arrived (or, so that a missing event fails the
    /// test instead of hanging it, once a minute has passed).
    pub async fn wait_for_events(&self, n: usize) -> Vec<(String, serde_json::Value)> {
        let mut received = self.received.subscribe();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            received.wait_for(|&received| received >= n),
        )
        .await;
        self.events()
    }

    /// Every event received so far, with the authorization header of its batch.
    pub fn events(&self) -> Vec<(String, serde_json::Value)> {
        self.posts
            .lock()
            .expect("lock")
            .iter()
            .flat_map(|(auth, body)| {
                body["events"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |e| (auth.clone(), e))
            })
            .collect()
    }
}

/// The answer to a CONNECT: status line code, the raw head, and the stream when it was 200.
pub struct Connected {
    pub status: u16,
    pub head: String,
    pub stream: Option<TcpStream>,
}

/// Sends `CONNECT target` to the proxy with extra headers and reads the response head.
pub async fn connect(proxy: SocketAddr, target: &str, headers: &[(&str, &str)]) -> Connected {
    let mut stream = TcpStream::connect(proxy).await.expect("connect proxy");
    let mut head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("write");
    let head = read_head(&mut stream).await;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    Connected {
        status,
        stream: (status == 200).then_some(stream),
        head,
    }
}

async fn read_head(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).await.expect("read head");
        assert!(
            n > 0,
            "connection closed in the head: {}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// A TLS client trusting `roots`, offering HTTP/1.1.
pub fn tls_connector(roots: &[CertificateDer<'static>]) -> tokio_rustls::TlsConnector {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add(r.clone()).expect("root");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(store)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// TLS over `stream` with `sni`, then an HTTP/1.1 client.
pub async fn https_client(
    stream: TcpStream,
    sni: &str,
    roots: &[CertificateDer<'static>],
) -> io::Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
    let name = ServerName::try_from(sni.to_owned()).expect("sni");
    let tls = tls_connector(roots).connect(name, stream).await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(io::Error::other)?;
    tokio::spawn(conn);
    Ok(sender)
}

/// Builds a request with a Host header and extra headers.
pub fn request(
    method: &str,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Request<Full<Bytes>> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", host);
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    b.body(Full::new(Bytes::from(body.to_owned())))
        .expect("request")
}

/// Sends and collects the response (status, headers, body text).
pub async fn send(
    client: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> (u16, http::HeaderMap, String) {
    client.ready().await.expect("ready");
    let resp = client.send_request(req).await.expect("response");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}
