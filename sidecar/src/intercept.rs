//! TLS interception for credential hosts: terminate the client's TLS with a leaf from the per-pod
//! CA, check that the request has exactly one `Host` and that it, the URI authority, SNI and the
//! `CONNECT` target agree (421 otherwise), run the tripwire, ask the egress gate ([`crate::gate`])
//! before a swap, swap sealed tokens in the declared header slots, and relay to the verified
//! upstream (HTTP/2 when its ALPN offers it) with bodies streaming frame by frame in both
//! directions; the answer to a swapped request has its model usage metered ([`crate::meter`]).
//!
//! It must never rewrite a body, a path or a query, never forward a request whose host disagrees
//! with the `CONNECT` target, never relay the client's `Host` (the upstream gets one written from
//! the target), and never dial an address other than the one checked at `CONNECT`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use http::{Request, Response, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::service::service_fn;
use hyper::upgrade::Upgraded;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::audit::Pending;
use crate::counted::{Counted, UpstreamBody};
use crate::meter::{self, Metering};
use crate::metrics::DenyReason;
use crate::proxy::Proxy;
use crate::relay::{self, MAX_HEAD};
use crate::respond::{self, Failure, ProxyBody};
use crate::swap;
use crate::target::{Target, request_names};
use crate::{redact, resolve};

/// The default port of the scheme spoken inside an intercepted connection.
const HTTPS: u16 = 443;

/// One intercepted client connection and its upstream.
#[derive(Debug)]
struct Session {
    proxy: Arc<Proxy>,
    target: Target,
    credentials: Vec<usize>,
    /// The client's SNI agreed with the `CONNECT` target (or was absent).
    sni_ok: bool,
    upstream: Upstream,
}

/// The upstream side: the address checked at `CONNECT` and the connection dialled then (used
/// first; absent when a shared HTTP/2 connection was live), and the current HTTP sender.
#[derive(Debug)]
struct Upstream {
    addr: Option<SocketAddr>,
    first: std::sync::Mutex<Option<TcpStream>>,
    sender: Mutex<Option<Sender>>,
}

#[derive(Debug)]
enum Sender {
    H1(http1::SendRequest<UpstreamBody>),
    H2(http2::SendRequest<UpstreamBody>),
}

/// Serves one intercepted connection until the client closes it.
pub(crate) async fn serve(
    proxy: Arc<Proxy>,
    client: Upgraded,
    target: Target,
    credentials: Vec<usize>,
    upstream: Option<(TcpStream, SocketAddr)>,
) {
    let (first, addr) = match upstream {
        Some((tcp, addr)) => (Some(tcp), Some(addr)),
        None => (None, None),
    };
    let config = match crate::tls::intercept_server(Arc::clone(&proxy.ca), target.host()) {
        Ok(c) => c,
        Err(error) => {
            tracing::warn!(%error, "cannot build the interception TLS config");
            return;
        }
    };
    let tls = match TlsAcceptor::from(config).accept(TokioIo::new(client)).await {
        Ok(t) => t,
        Err(error) => {
            tracing::debug!(%error, host = %crate::tripwire::scrub(target.host()), "client TLS handshake failed");
            return;
        }
    };
    let sni_ok = tls
        .get_ref()
        .1
        .server_name()
        .is_none_or(|sni| target.is_named_by(sni));
    let session = Arc::new(Session {
        proxy,
        target,
        credentials,
        sni_ok,
        upstream: Upstream {
            addr,
            first: std::sync::Mutex::new(first),
            sender: Mutex::new(None),
        },
    });
    let service = service_fn(move |req| {
        let session = Arc::clone(&session);
        async move {
            session
                .proxy
                .metrics
                .requests
                .fetch_add(1, Ordering::Relaxed);
            let result = handle(&session, req).await;
            Ok::<_, std::convert::Infallible>(result.unwrap_or_else(|failure| {
                if let Failure::Upstream(_) | Failure::Dial(_) = failure {
                    session
                        .proxy
                        .metrics
                        .upstream_errors
                        .fetch_add(1, Ordering::Relaxed);
                }
                respond::rescue(&failure)
            }))
        }
    });
    let result = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .max_buf_size(MAX_HEAD)
        .serve_connection(TokioIo::new(tls), service)
        .await;
    if let Err(error) = result {
        tracing::debug!(%error, "intercepted connection ended with an error");
    }
}

async fn handle(
    session: &Session,
    mut req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Failure> {
    let proxy = &session.proxy;
    let target = &session.target;
    let method = req.method().as_str().to_owned();
    if !session.sni_ok || !request_names(target, req.version(), req.uri(), req.headers(), HTTPS) {
        proxy.refuse(
            DenyReason::HostMismatch,
            target.host(),
            target.port(),
            &method,
        );
        return Err(Failure::Deny(DenyReason::HostMismatch));
    }
    if crate::tripwire::find_misuse(&req, target, &proxy.credentials, &proxy.allowlist).is_some() {
        proxy.refuse(
            DenyReason::TokenMisuse,
            target.host(),
            target.port(),
            &method,
        );
        return Err(Failure::Deny(DenyReason::TokenMisuse));
    }
    let swapping = session
        .credentials
        .iter()
        .filter_map(|&i| proxy.credentials.get(i))
        .any(|c| c.slot_carries_token(req.headers()));
    if swapping
        && let Some(gate) = &proxy.gate
        && let Err(refusal) = gate.admit().await
    {
        let reason = DenyReason::from(refusal);
        proxy.refuse(reason, target.host(), target.port(), &method);
        return Err(Failure::Deny(reason));
    }
    // Refusals above are recorded as `egress.denied`; from here on, as `egress.request`.
    let mut record = Pending::start(
        &session.proxy,
        target.host(),
        target.port(),
        &method,
        Some(req.uri().path()),
    );
    for &i in &session.credentials {
        let Some(cred) = proxy.credentials.get(i) else {
            continue;
        };
        if !cred.slot_carries_token(req.headers()) {
            continue;
        }
        // Read per request: a rotated value_file takes effect here, on open connections too.
        let value = cred.value().map_err(|error| {
            tracing::warn!(%error, credential = i, "credential value_file unreadable");
            Failure::CredentialUnavailable
        })?;
        let n = swap::swap_slots(req.headers_mut(), cred.sealed(), cred.slots(), &value);
        proxy.metrics.swaps.fetch_add(n as u64, Ordering::Relaxed);
        if n > 0 {
            record.swapped();
        }
    }
    let needles = relay::needles(proxy, &session.credentials);
    respond::strip_hop_by_hop(req.headers_mut());
    redact::ask_for_identity(req.headers_mut());
    let req = req.map(|body| Counted::new(body, record.sent()));
    let started = Instant::now();
    let response = session.send(req).await?;
    proxy.metrics.observe_upstream(started.elapsed());
    let bound = relay::Bound {
        target,
        method: &method,
        needles,
    };
    let mut response = relay::relay_response(proxy, response, Some(bound))?;
    if record.is_swapped() {
        response = metered(proxy, response, record.usage_slot());
    }
    let status = response.status().as_u16();
    Ok(response.map(|body| record.attach(status, body).boxed()))
}

/// The answer to a swapped request, its model usage metered: into the gate's total (the
/// session's budget) and the request's audit record.
fn metered(
    proxy: &Proxy,
    response: Response<ProxyBody>,
    slot: meter::UsageSlot,
) -> Response<ProxyBody> {
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let gate = proxy.gate.clone();
    let sink: meter::UsageSink = Box::new(move |usage| {
        if let Some(gate) = gate {
            gate.meter(&usage);
        }
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(usage);
    });
    response.map(|body| Metering::new(body, content_type.as_deref(), sink).boxed())
}

impl Session {
    async fn send(&self, mut req: Request<UpstreamBody>) -> Result<Response<Incoming>, Failure> {
        let upstream_error = |e: hyper::Error| Failure::Upstream(e.to_string());
        let sender = self.sender().await?;
        match sender {
            Sender::H2(mut h2) => {
                let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
                // `:authority` plays Host's role in HTTP/2: written from the target, never taken
                // from the client.
                *req.uri_mut() = Uri::builder()
                    .scheme("https")
                    .authority(self.target.authority(HTTPS))
                    .path_and_query(path)
                    .build()
                    .map_err(|e| Failure::Upstream(e.to_string()))?;
                req.headers_mut().remove(http::header::HOST);
                *req.version_mut() = http::Version::HTTP_2;
                h2.send_request(req).await.map_err(upstream_error)
            }
            Sender::H1(mut h1) => {
                let path = req
                    .uri()
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_owned();
                *req.uri_mut() =
                    Uri::try_from(path).map_err(|e| Failure::Upstream(e.to_string()))?;
                self.target.write_host(req.headers_mut(), HTTPS);
                *req.version_mut() = http::Version::HTTP_11;
                h1.ready().await.map_err(upstream_error)?;
                let response = h1.send_request(req).await.map_err(upstream_error);
                // Back in the slot for the next request: it waits (`ready`) until this body ends.
                let mut slot = self.upstream.sender.lock().await;
                if slot.is_none() && !h1.is_closed() {
                    *slot = Some(Sender::H1(h1));
                }
                response
            }
        }
    }

    /// The current upstream sender, or a new connection to the checked address.
    async fn sender(&self) -> Result<Sender, Failure> {
        let mut slot = self.upstream.sender.lock().await;
        match slot.take() {
            Some(Sender::H2(h2)) if !h2.is_closed() => {
                *slot = Some(Sender::H2(h2.clone()));
                return Ok(Sender::H2(h2));
            }
            Some(Sender::H1(h1)) => {
                let mut h1 = h1;
                // `ready` waits until the previous body has ended; it fails when the upstream
                // closed the idle connection, and then a new one is dialled below (nothing of
                // this request has been sent yet, so that is safe).
                let alive = !h1.is_closed() && h1.ready().await.is_ok();
                if alive {
                    return Ok(Sender::H1(h1));
                }
            }
            _ => {}
        }
        if let Some(h2) = self.proxy.pooled_h2(self.target.host(), self.target.port()) {
            *slot = Some(Sender::H2(h2.clone()));
            return Ok(Sender::H2(h2));
        }
        let sender = self.connect().await?;
        if let Sender::H2(h2) = &sender {
            *slot = Some(Sender::H2(h2.clone()));
            self.proxy
                .pool_h2(self.target.host(), self.target.port(), h2);
        }
        Ok(sender)
    }

    async fn connect(&self) -> Result<Sender, Failure> {
        let first = self
            .upstream
            .first
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let tcp = match (first, self.upstream.addr) {
            (Some(tcp), _) => tcp,
            // The address was checked at CONNECT; re-dialling it needs no new lookup.
            (None, Some(addr)) => self
                .proxy
                .net
                .connect(addr)
                .await
                .map_err(|e| Failure::Upstream(e.to_string()))?,
            // The shared connection this client relied on is gone: resolve, check, dial.
            (None, None) => {
                resolve::dial(&self.proxy.net, &self.proxy.guard, &self.target)
                    .await?
                    .0
            }
        };
        let name = ServerName::try_from(self.target.host().to_owned())
            .map_err(|e| Failure::Upstream(e.to_string()))?;
        let tls = TlsConnector::from(Arc::clone(&self.proxy.upstream_tls))
            .connect(name, tcp)
            .await
            .map_err(|e| Failure::Upstream(format!("upstream TLS: {e}")))?;
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(tls);
        if h2 {
            let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .handshake(io)
                .await
                .map_err(|e| Failure::Upstream(e.to_string()))?;
            tokio::spawn(conn);
            Ok(Sender::H2(sender))
        } else {
            let (sender, conn) = http1::Builder::new()
                .max_buf_size(MAX_HEAD.max(8192))
                .handshake(io)
                .await
                .map_err(|e| Failure::Upstream(e.to_string()))?;
            tokio::spawn(conn);
            Ok(Sender::H1(sender))
        }
    }
}
