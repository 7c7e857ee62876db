//! The HTTP(S) server: the accept loop (plain or TLS, HTTP/1.1 and HTTP/2), authentication of
//! every request except health probes, and the router value (`app`) that hands requests to
//! `routes`, plus the two response and query helpers `routes` and `resources` share (so neither
//! imports the other's). Owns no API semantics.

mod resources;
mod routes;

use crate::auth::Tokens;
use crate::error::ApiError;
use crate::store::Store;
use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What every request handler can reach.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) store: Arc<Mutex<Store>>,
    pub(crate) tokens: Tokens,
    pub(crate) server_address: String,
    pub(crate) bookmark_interval: Duration,
    pub(crate) shutdown: watch::Receiver<bool>,
}

/// The router: one fallback handler, because Kubernetes paths are parsed by hand.
pub(crate) fn app(state: Arc<AppState>) -> Router {
    Router::new().fallback(handle).with_state(state)
}

async fn handle(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let probe = matches!(path.as_str(), "/healthz" | "/livez" | "/readyz");
    if probe {
        return (http::StatusCode::OK, "ok").into_response();
    }
    let auth = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let Some(user) = state.tokens.user(auth).map(str::to_string) else {
        return ApiError::unauthorized().into_response();
    };
    match routes::route(&state, &user, req).await {
        Ok(r) => r,
        Err(e) => {
            if e.code >= 500 {
                tracing::warn!(error = %e, path, "request failed");
            }
            e.into_response()
        }
    }
}

/// Serves `router` on `listener` until `shutdown` turns true; with `tls`, every connection is
/// a TLS connection.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let (tcp, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = tcp.set_nodelay(true);
        let svc = hyper_util::service::TowerToHyperService::new(router.clone());
        let acceptor = acceptor.clone();
        let mut conn_shutdown = shutdown.clone();
        conns.spawn(async move {
            let builder = auto::Builder::new(TokioExecutor::new());
            match acceptor {
                Some(a) => {
                    let Ok(stream) = a.accept(tcp).await else {
                        return;
                    };
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                    tokio::select! { _ = conn => {}, _ = conn_shutdown.changed() => {} }
                }
                None => {
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), svc);
                    tokio::select! { _ = conn => {}, _ = conn_shutdown.changed() => {} }
                }
            }
        });
        while conns.try_join_next().is_some() {}
    }
    conns.abort_all();
}

/// A JSON body with its status.
fn json_response(code: http::StatusCode, v: &Value) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    (
        code,
        [(http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// The query string's parameters (the last of a repeated name wins).
fn query(req: &Request) -> HashMap<String, String> {
    req.uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}
