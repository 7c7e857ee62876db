//! The explicit-proxy listener: accepts connections, answers `CONNECT` (tunnel or interception)
//! and forwards absolute-URI plain HTTP.
//!
//! Order per request: parse the target → tripwire → allowlist decision → (only then) resolve,
//! check and dial. It must never resolve or dial before the decision, and never answer `200` to a
//! `CONNECT` it has not dialled.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use http::{Method, Request, Response, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use sealpod_resources::proxy_config::Mode;
use tokio::net::TcpListener;

use crate::allowlist::Decision;
use crate::audit::Pending;
use crate::counted::Counted;
use crate::metrics::{ConnectionGuard, DenyReason};
use crate::proxy::Proxy;
use crate::redact;
use crate::relay::{Bound, MAX_HEAD, needles, relay_response};
use crate::resolve::{self, DialError};
use crate::respond::{self, Failure, ProxyBody};
use crate::target::{Target, request_names};
use crate::{intercept, tripwire, tunnel};

/// The default port of plain HTTP.
const HTTP: u16 = 80;

/// Accepts proxy connections until the listener fails.
pub(crate) async fn serve(listener: TcpListener, proxy: Arc<Proxy>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(error) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let proxy = Arc::clone(&proxy);
        tokio::spawn(async move {
            let _open = ConnectionGuard::new(&proxy.metrics);
            let service = service_fn(|req| handle(Arc::clone(&proxy), req));
            let result = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .max_buf_size(MAX_HEAD)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
            if let Err(error) = result {
                tracing::debug!(%error, "client connection ended with an error");
            }
        });
    }
}

async fn handle(
    proxy: Arc<Proxy>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    proxy.metrics.requests.fetch_add(1, Ordering::Relaxed);
    let result = if req.method() == Method::CONNECT {
        connect(&proxy, req).await
    } else {
        forward(&proxy, req).await
    };
    Ok(result.unwrap_or_else(|failure| {
        if let Failure::Dial(DialError::Resolve(_) | DialError::Connect(_)) | Failure::Upstream(_) =
            failure
        {
            proxy
                .metrics
                .upstream_errors
                .fetch_add(1, Ordering::Relaxed);
        }
        respond::rescue(&failure)
    }))
}

/// Tripwire, then allowlist. Returns the decision to act on (report mode turns a denial into a
/// tunnel or forward after counting it).
fn decide<B>(proxy: &Proxy, target: &Target, req: &Request<B>) -> Result<Decision, Failure> {
    let method = req.method().as_str();
    let misuse = tripwire::carries_token(target.host(), &proxy.credentials)
        || tripwire::find_misuse(req, target, &proxy.credentials, &proxy.allowlist).is_some();
    if misuse {
        // Refused in both modes: the token never goes where it is not bound.
        proxy.refuse(
            DenyReason::TokenMisuse,
            target.host(),
            target.port(),
            method,
        );
        return Err(Failure::Deny(DenyReason::TokenMisuse));
    }
    match proxy.allowlist.decide(target) {
        Decision::Deny if proxy.mode == Mode::Report => {
            proxy.would_refuse(
                DenyReason::NotAllowlisted,
                target.host(),
                target.port(),
                method,
            );
            Ok(Decision::Tunnel)
        }
        Decision::Deny => {
            proxy.refuse(
                DenyReason::NotAllowlisted,
                target.host(),
                target.port(),
                method,
            );
            Err(Failure::Deny(DenyReason::NotAllowlisted))
        }
        other => Ok(other),
    }
}

fn dial_failed(proxy: &Proxy, target: &Target, method: &str, error: DialError) -> Failure {
    if let DialError::NonPublic(range) = &error {
        tracing::info!(host = %tripwire::scrub(target.host()), port = target.port(), range = range.label(), "non-public destination refused");
        proxy.refuse(
            DenyReason::NonPublicAddress,
            target.host(),
            target.port(),
            method,
        );
    }
    Failure::Dial(error)
}

async fn connect(
    proxy: &Arc<Proxy>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Failure> {
    let target = req
        .uri()
        .authority()
        .and_then(|a| Target::parse(a.as_str(), 443))
        .ok_or_else(|| {
            proxy.metrics.deny(DenyReason::BadRequest);
            Failure::Deny(DenyReason::BadRequest)
        })?;
    let decision = decide(proxy, &target, &req)?;
    // A credential host with a shared HTTP/2 upstream needs no new connection; everything else
    // is dialled now, so a refusal or an unreachable host is answered instead of a 200.
    let shared = matches!(decision, Decision::Intercept(_))
        && proxy.pooled_h2(target.host(), target.port()).is_some();
    let upstream = if shared {
        None
    } else {
        Some(
            resolve::dial(&proxy.net, &proxy.guard, &target)
                .await
                .map_err(|e| dial_failed(proxy, &target, "CONNECT", e))?,
        )
    };
    proxy
        .events
        .allowed(target.host(), target.port(), "CONNECT", proxy.mode);
    let proxy = Arc::clone(proxy);
    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(u) => u,
            Err(error) => {
                tracing::debug!(%error, "CONNECT upgrade failed");
                return;
            }
        };
        match (decision, upstream) {
            (Decision::Intercept(credentials), upstream) => {
                proxy.metrics.intercepts.fetch_add(1, Ordering::Relaxed);
                // Boxed: an interception's state is large, and a tunnel's task must not carry
                // room for it.
                Box::pin(intercept::serve(
                    proxy,
                    upgraded,
                    target,
                    credentials,
                    upstream,
                ))
                .await;
            }
            (Decision::Tunnel | Decision::Deny, Some((upstream, _))) => {
                proxy.metrics.tunnels.fetch_add(1, Ordering::Relaxed);
                let record = Pending::start(&proxy, target.host(), target.port(), "CONNECT", None);
                let (sent, received) = tunnel::run(upgraded, upstream).await;
                record.finish_tunnel(sent, received);
            }
            (Decision::Tunnel | Decision::Deny, None) => {}
        }
    });
    Ok(Response::new(respond::empty()))
}

/// Plain HTTP with an absolute URI. Credentials are never swapped in over plain HTTP: the real key
/// would cross the network in clear text.
async fn forward(
    proxy: &Arc<Proxy>,
    mut req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Failure> {
    let bad = || Failure::Deny(DenyReason::BadRequest);
    let uri = req.uri().clone();
    if uri.scheme_str() != Some("http") {
        proxy.metrics.deny(DenyReason::BadRequest);
        return Err(bad());
    }
    let target = uri
        .authority()
        .and_then(|a| Target::parse(a.as_str(), HTTP))
        .ok_or_else(bad)?;
    if !request_names(&target, req.version(), &uri, req.headers(), HTTP) {
        proxy.refuse(
            DenyReason::HostMismatch,
            target.host(),
            target.port(),
            req.method().as_str(),
        );
        return Err(Failure::Deny(DenyReason::HostMismatch));
    }
    let method = req.method().as_str().to_owned();
    let decision = decide(proxy, &target, &req)?;
    let (stream, _) = resolve::dial(&proxy.net, &proxy.guard, &target)
        .await
        .map_err(|e| dial_failed(proxy, &target, &method, e))?;
    proxy
        .events
        .allowed(target.host(), target.port(), &method, proxy.mode);

    let record = Pending::start(
        proxy,
        target.host(),
        target.port(),
        &method,
        Some(uri.path()),
    );
    strip_proxy_headers(req.headers_mut());
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    *req.uri_mut() = Uri::try_from(path).map_err(|_| bad())?;
    target.write_host(req.headers_mut(), HTTP);
    if matches!(decision, Decision::Intercept(_)) {
        redact::ask_for_identity(req.headers_mut());
    }
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(MAX_HEAD.max(8192))
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| Failure::Upstream(e.to_string()))?;
    tokio::spawn(conn);
    let req = req.map(|body| Counted::new(body, record.sent()));
    let started = Instant::now();
    let response = sender
        .send_request(req)
        .await
        .map_err(|e| Failure::Upstream(e.to_string()))?;
    proxy.metrics.observe_upstream(started.elapsed());
    let bound = match &decision {
        Decision::Intercept(creds) => Some(Bound {
            target: &target,
            method: &method,
            needles: needles(proxy, creds),
        }),
        _ => None,
    };
    let response = relay_response(proxy, response, bound)?;
    let status = response.status().as_u16();
    Ok(response.map(|body| record.attach(status, body).boxed()))
}

fn strip_proxy_headers(headers: &mut http::HeaderMap) {
    respond::strip_hop_by_hop(headers);
}
