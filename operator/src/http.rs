//! The `/healthz`, `/readyz` and `/metrics` listener.
//!
//! `/healthz` answers while the process runs; `/readyz` once the first election round is done
//! (a passive replica is ready: it is doing its job by waiting) and, on the leader, once the
//! controllers run; `/metrics` is the Prometheus text exposition.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::metrics::Metrics;

/// Shared by the listener and the election loop.
#[derive(Debug, Default)]
pub struct Health {
    /// Set when this replica is ready.
    pub ready: AtomicBool,
    /// The metrics registry.
    pub metrics: Arc<Metrics>,
}

/// The router.
pub fn app(health: Arc<Health>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(h): State<Arc<Health>>| async move {
                if h.ready.load(Ordering::Relaxed) {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "starting")
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(h): State<Arc<Health>>| async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    h.metrics.render(),
                )
            }),
        )
        .with_state(health)
}
