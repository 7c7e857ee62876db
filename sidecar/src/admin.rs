//! The admin listener: `GET /ready` (200 once the proxy listener is bound) and `GET /metrics`
//! (Prometheus text); and [`wait_ready`], its client for `sealpod-sidecar ready`.
//!
//! Read-only; it must never expose configuration, tokens or keys.

use std::convert::Infallible;
use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::proxy::Proxy;

/// Serves the admin endpoints until the listener fails.
pub(crate) async fn serve(listener: TcpListener, proxy: Arc<Proxy>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(error) => {
                tracing::warn!(%error, "admin accept failed");
                continue;
            }
        };
        let proxy = Arc::clone(&proxy);
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let proxy = Arc::clone(&proxy);
                async move { Ok::<_, Infallible>(route(&proxy, &req)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn route(proxy: &Proxy, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/ready") if proxy.ready.load(Ordering::Acquire) => {
            (StatusCode::OK, "text/plain", Bytes::from_static(b"ready\n"))
        }
        (&Method::GET, "/ready") => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            Bytes::from_static(b"starting\n"),
        ),
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4",
            Bytes::from(proxy.metrics.render()),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            Bytes::from_static(b"not found\n"),
        ),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}

/// How often [`wait_ready`] asks.
const READY_POLL: Duration = Duration::from_millis(10);

/// Asks `GET /ready` at `admin` until it answers 200 (`true`) or `wait` has passed (`false`).
pub(crate) fn wait_ready(admin: SocketAddr, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        if answers_ready(admin) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(READY_POLL);
    }
}

fn answers_ready(admin: SocketAddr) -> bool {
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&admin, Duration::from_secs(1))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let request = format!("GET /ready HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_waits_for_a_200_and_gives_up_when_the_wait_runs_out() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            for status in [
                "503 Service Unavailable",
                "503 Service Unavailable",
                "200 OK",
            ] {
                let (mut conn, _) = listener.accept().expect("accept");
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf);
                let _ = conn.write_all(format!("HTTP/1.1 {status}\r\n\r\n").as_bytes());
            }
        });
        assert!(wait_ready(addr, Duration::from_secs(60)));
        server.join().expect("server");
        // Nothing listens there any more: a zero wait asks once and gives up.
        assert!(!wait_ready(addr, Duration::ZERO));
    }
}
