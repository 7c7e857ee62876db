//! A fake model API for tests and benchmarks: TLS on loopback with its own root, returns 401
//! unless `x-api-key` or `Authorization: Bearer` holds the real key, records every request, and
//! streams SSE (generic ticks with send timestamps, and Anthropic Messages events).
//!
//! Test code only: it collects request bodies (the proxy under test must not).

#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// An upstream PKI: a root and one leaf for the given names.
pub struct Pki {
    pub root_pem: String,
    pub root_der: CertificateDer<'static>,
    pub leaf: CertificateDer<'static>,
    pub leaf_key: Vec<u8>,
}

impl Pki {
    pub fn new(names: &[&str]) -> Self {
        let root_key = KeyPair::generate().expect("root key");
        let mut root = CertificateParams::default();
        root.distinguished_name
            .push(DnType::CommonName, "fake upstream root");
        root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let root_cert = root.self_signed(&root_key).expect("root");
        let issuer = Issuer::new(root, root_key);
        let leaf_key = KeyPair::generate().expect("leaf key");
        let leaf =
            CertificateParams::new(names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .expect("leaf params")
                .signed_by(&leaf_key, &issuer)
                .expect("leaf");
        Self {
            root_pem: root_cert.pem(),
            root_der: root_cert.der().clone(),
            leaf: leaf.der().clone(),
            leaf_key: leaf_key.serialize_der(),
        }
    }

    fn server_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ServerConfig> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![self.leaf.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.leaf_key.clone())),
        )
        .expect("server config");
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Record {
    pub method: String,
    pub path_and_query: String,
    /// The request target's authority (HTTP/2 `:authority`; absent in HTTP/1.1 origin form).
    pub authority: Option<String>,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Record {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Shared state of a running fake upstream.
#[derive(Debug, Default)]
pub struct State {
    pub key: Mutex<String>,
    pub records: Mutex<Vec<Record>>,
    pub accepts: AtomicUsize,
}

impl State {
    pub fn records(&self) -> Vec<Record> {
        self.records.lock().expect("lock").clone()
    }
    pub fn set_key(&self, key: &str) {
        *self.key.lock().expect("lock") = key.to_owned();
    }
}

/// A running fake upstream.
pub struct Upstream {
    pub addr: SocketAddr,
    pub state: Arc<State>,
}

/// Starts a TLS fake upstream on `bind` offering `alpn`.
pub async fn start(pki: &Pki, key: &str, alpn: &[&[u8]], bind: SocketAddr) -> Upstream {
    let listener = TcpListener::bind(bind).await.expect("bind upstream");
    let addr = listener.local_addr().expect("addr");
    let state = Arc::new(State::default());
    state.set_key(key);
    let acceptor = tokio_rustls::TlsAcceptor::from(pki.server_config(alpn));
    let st = Arc::clone(&state);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            st.accepts.fetch_add(1, Ordering::SeqCst);
            let acceptor = acceptor.clone();
            let st = Arc::clone(&st);
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = service_fn(move |req| handle(Arc::clone(&st), req));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Upstream { addr, state }
}

/// Starts the same fake upstream over plain HTTP/1.1 (for absolute-URI forwarding).
pub async fn start_plain(key: &str, bind: SocketAddr) -> Upstream {
    let listener = TcpListener::bind(bind).await.expect("bind upstream");
    let addr = listener.local_addr().expect("addr");
    let state = Arc::new(State::default());
    state.set_key(key);
    let st = Arc::clone(&state);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            st.accepts.fetch_add(1, Ordering::SeqCst);
            let st = Arc::clone(&st);
            tokio::spawn(async move {
                let service = service_fn(move |req| handle(Arc::clone(&st), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    Upstream { addr, state }
}

type Out = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Out> {
    let mut r = Response::new(http_body_util::Full::new(body.into()).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        content_type.parse().expect("ct"),
    );
    r
}

/// Nanoseconds since the epoch, as carried in SSE ticks.
pub fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos()
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Out>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let record = Record {
        method: parts.method.to_string(),
        path_and_query: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        authority: parts.uri.authority().map(|a| a.to_string()),
        version: format!("{:?}", parts.version),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.clone(),
    };
    state.records.lock().expect("lock").push(record);
    let key = state.key.lock().expect("lock").clone();
    let authorized = parts
        .headers
        .get("x-api-key")
        .is_some_and(|v| v == key.as_str())
        || parts
            .headers
            .get("authorization")
            .is_some_and(|v| v.to_str().ok() == Some(format!("Bearer {key}").as_str()));
    let path = parts.uri.path();
    let query = parts.uri.query().unwrap_or("");
    let param = |name: &str, default: u64| {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(default)
    };
    let sized = |default: &str| match param("size", 0) {
        0 => Bytes::from(default.to_owned()),
        n => Bytes::from(vec![b'x'; n as usize]),
    };
    if path == "/public" {
        return Ok(full(StatusCode::OK, "text/plain", sized("public\n")));
    }
    if !authorized {
        return Ok(full(
            StatusCode::UNAUTHORIZED,
            "application/json",
            r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
        ));
    }
    Ok(match path {
        "/reflect" => {
            let mut r = full(
                StatusCode::OK,
                "text/plain",
                format!("your key is {key}.\n"),
            );
            r.headers_mut()
                .insert("x-echo-key", key.parse().expect("hv"));
            r
        }
        "/name-echo" => {
            // Header names are case-insensitive (and lowercase once parsed): the key, folded.
            let mut r = full(StatusCode::OK, "text/plain", "names\n");
            let folded = key.to_ascii_lowercase();
            for name in [folded.clone(), format!("x-echo-{folded}")] {
                let name = http::HeaderName::from_bytes(name.as_bytes()).expect("name");
                r.headers_mut().insert(name, "1".parse().expect("hv"));
            }
            r
        }
        "/gzip" => {
            // Claims a content coding: the redactor could not see a key inside a real one.
            let mut r = full(
                StatusCode::OK,
                "text/plain",
                format!("your key is {key}.\n"),
            );
            r.headers_mut()
                .insert(http::header::CONTENT_ENCODING, "gzip".parse().expect("hv"));
            r
        }
        "/reason" => {
            // The key in the HTTP/1.1 reason phrase (hyper writes it from this extension).
            let status = StatusCode::from_u16(param("status", 200) as u16).expect("status");
            let mut r = full(status, "text/plain", "reason\n");
            let phrase = hyper::ext::ReasonPhrase::try_from(format!("Fine {key}")).expect("phrase");
            r.extensions_mut().insert(phrase);
            r
        }
        "/sse" => sse(
            param("n", 20) as usize,
            Duration::from_millis(param("gap_ms", 50)),
            |i| format!("data: {i} {}\n\n", now_ns()),
        ),
        "/v1/messages" => {
            let streaming = String::from_utf8_lossy(&body)
                .replace(' ', "")
                .contains("\"stream\":true");
            if streaming {
                messages_stream()
            } else {
                full(StatusCode::OK, "application/json", MESSAGE)
            }
        }
        _ => full(
            StatusCode::OK,
            "application/json",
            format!(r#"{{"ok":true,"path":"{path}"}}"#),
        ),
    })
}

const MESSAGE: &str = r#"{"id":"msg_fake","type":"message","role":"assistant","model":"claude-fake","content":[{"type":"text","text":"Hello from the fake upstream"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":5,"output_tokens":6}}"#;

const STREAM: [&str; 7] = [
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_fake\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-fake\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello \"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"through the proxy\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":4}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
];

fn messages_stream() -> Response<Out> {
    sse(STREAM.len(), Duration::from_millis(20), |i| {
        STREAM[i].to_owned()
    })
}

/// An SSE response sending `n` events `gap` apart, each produced at send time.
fn sse(n: usize, gap: Duration, event: impl Fn(usize) -> String + Send + 'static) -> Response<Out> {
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        for i in 0..n {
            if i > 0 {
                tokio::time::sleep(gap).await;
            }
            if tx.send(Bytes::from(event(i))).await.is_err() {
                return;
            }
        }
    });
    let mut r = Response::new(ChannelBody(rx).boxed());
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        "text/event-stream".parse().expect("ct"),
    );
    r.headers_mut()
        .insert(http::header::CACHE_CONTROL, "no-cache".parse().expect("cc"));
    r
}

struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}
