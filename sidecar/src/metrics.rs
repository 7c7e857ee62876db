//! Prometheus metrics of the proxy: requests, tunnels, denials by reason, swaps, upstream latency,
//! open connections, dropped events.
//!
//! Lock-free counters rendered as Prometheus text. Labels come only from fixed enums: a host name,
//! token or key must never become a label value.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use sealpod_resources::runtime_api::GateClosed;
use sealpod_util::metrics::{Exposition, Histogram, Kind};

/// Why a request was refused (the label of `sealpod_sidecar_denials_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenyReason {
    /// The host is not on the allowlist.
    NotAllowlisted,
    /// The destination resolves to a non-public address.
    NonPublicAddress,
    /// A sealed token was sent to a host it is not bound to.
    TokenMisuse,
    /// `Host`, SNI and the `CONNECT` target disagree.
    HostMismatch,
    /// Malformed request (no host, bad target).
    BadRequest,
    /// A credential host answered with a content or transfer coding the redactor cannot read.
    EncodedResponse,
    /// A sealed token was sent while no turn of the session is running.
    NoTurn,
    /// A sealed token was sent after the running turn's `limits.turn_seconds`.
    DeadlineExceeded,
    /// A sealed token was sent after the session's `limits.tokens` were spent.
    BudgetExceeded,
    /// A sealed token was sent and the egress gate could not be asked.
    GateUnavailable,
}

impl DenyReason {
    /// Every reason, in label order.
    pub const ALL: [DenyReason; 10] = [
        DenyReason::NotAllowlisted,
        DenyReason::NonPublicAddress,
        DenyReason::TokenMisuse,
        DenyReason::HostMismatch,
        DenyReason::BadRequest,
        DenyReason::EncodedResponse,
        DenyReason::NoTurn,
        DenyReason::DeadlineExceeded,
        DenyReason::BudgetExceeded,
        DenyReason::GateUnavailable,
    ];

    /// The label value (also sent in the `x-sealpod-deny-reason` header and events).
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::NotAllowlisted => "not_allowlisted",
            DenyReason::NonPublicAddress => "non_public_address",
            DenyReason::TokenMisuse => "token_misuse",
            DenyReason::HostMismatch => "host_mismatch",
            DenyReason::BadRequest => "bad_request",
            DenyReason::EncodedResponse => "encoded_response",
            DenyReason::NoTurn => GateClosed::NoTurn.as_str(),
            DenyReason::DeadlineExceeded => GateClosed::DeadlineExceeded.as_str(),
            DenyReason::BudgetExceeded => GateClosed::BudgetExceeded.as_str(),
            DenyReason::GateUnavailable => "gate_unavailable",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// All proxy metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// HTTP requests handled (CONNECT, forwarded plain HTTP, intercepted requests).
    pub requests: AtomicU64,
    /// Plain tunnels opened.
    pub tunnels: AtomicU64,
    /// Intercepted (TLS-terminated) connections opened.
    pub intercepts: AtomicU64,
    denials: [AtomicU64; DenyReason::ALL.len()],
    report_would_deny: [AtomicU64; DenyReason::ALL.len()],
    /// Header slots where a sealed token was replaced.
    pub swaps: AtomicU64,
    /// Real keys redacted from responses.
    pub redactions: AtomicU64,
    /// Upstream connection or request failures.
    pub upstream_errors: AtomicU64,
    /// Events dropped because the queue was full.
    pub events_dropped: AtomicU64,
    /// Event batches that the sink did not accept.
    pub events_failed: AtomicU64,
    /// Events delivered.
    pub events_sent: AtomicU64,
    /// Relayed requests and tunnels left without an `egress.request` record by its rate bound.
    pub audit_unrecorded: AtomicU64,
    /// Connections currently open (client side).
    pub open_connections: AtomicI64,
    latency: Histogram,
}

impl Metrics {
    /// Counts a refusal.
    pub fn deny(&self, reason: DenyReason) {
        self.denials[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts something report mode let through that enforce would have refused.
    pub fn would_deny(&self, reason: DenyReason) {
        self.report_would_deny[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Refusals so far for `reason`.
    pub fn denials(&self, reason: DenyReason) -> u64 {
        self.denials[reason.index()].load(Ordering::Relaxed)
    }

    /// Records the time from sending a request upstream to its response head.
    pub fn observe_upstream(&self, elapsed: Duration) {
        self.latency.observe(elapsed);
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = Exposition::default();
        for (name, help, value) in [
            (
                "sealpod_sidecar_requests_total",
                "Requests handled.",
                &self.requests,
            ),
            (
                "sealpod_sidecar_tunnels_total",
                "Plain tunnels opened.",
                &self.tunnels,
            ),
            (
                "sealpod_sidecar_intercepts_total",
                "TLS-intercepted connections opened.",
                &self.intercepts,
            ),
            (
                "sealpod_sidecar_swaps_total",
                "Sealed tokens replaced in header slots.",
                &self.swaps,
            ),
            (
                "sealpod_sidecar_redactions_total",
                "Real keys redacted from responses.",
                &self.redactions,
            ),
            (
                "sealpod_sidecar_upstream_errors_total",
                "Upstream connection or request failures.",
                &self.upstream_errors,
            ),
            (
                "sealpod_sidecar_events_sent_total",
                "Egress events delivered.",
                &self.events_sent,
            ),
            (
                "sealpod_sidecar_events_dropped_total",
                "Egress events dropped on a full queue.",
                &self.events_dropped,
            ),
            (
                "sealpod_sidecar_event_batches_failed_total",
                "Event batches the sink refused.",
                &self.events_failed,
            ),
            (
                "sealpod_sidecar_audit_unrecorded_total",
                "Relayed requests and tunnels the audit's rate bound left unrecorded.",
                &self.audit_unrecorded,
            ),
        ] {
            out.single(name, help, Kind::Counter, get(value));
        }
        for (name, help, values) in [
            (
                "sealpod_sidecar_denials_total",
                "Requests refused, by reason.",
                &self.denials,
            ),
            (
                "sealpod_sidecar_report_would_deny_total",
                "Requests report mode allowed that enforce would refuse, by reason.",
                &self.report_would_deny,
            ),
        ] {
            out.family(name, help, Kind::Counter);
            for reason in DenyReason::ALL {
                out.sample(
                    name,
                    &[("reason", reason.as_str())],
                    get(&values[reason.index()]),
                );
            }
        }
        out.single(
            "sealpod_sidecar_open_connections",
            "Client connections open.",
            Kind::Gauge,
            self.open_connections.load(Ordering::Relaxed),
        );
        let name = "sealpod_sidecar_upstream_latency_seconds";
        out.family(
            name,
            "Time from request sent upstream to response head.",
            Kind::Histogram,
        )
        .histogram(name, &[], &self.latency);
        out.finish()
    }
}

/// Counts an open connection for as long as it lives.
#[derive(Debug)]
pub(crate) struct ConnectionGuard<'a>(&'a Metrics);

impl<'a> ConnectionGuard<'a> {
    /// Increments the gauge until dropped.
    pub(crate) fn new(metrics: &'a Metrics) -> Self {
        metrics.open_connections.fetch_add(1, Ordering::Relaxed);
        Self(metrics)
    }
}

impl Drop for ConnectionGuard<'_> {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family() {
        let m = Metrics::default();
        m.deny(DenyReason::TokenMisuse);
        m.observe_upstream(Duration::from_millis(3));
        {
            let _g = ConnectionGuard::new(&m);
            assert!(m.render().contains("sealpod_sidecar_open_connections 1"));
        }
        let text = m.render();
        assert!(
            text.contains("sealpod_sidecar_denials_total{reason=\"token_misuse\"} 1"),
            "{text}"
        );
        assert!(text.contains("sealpod_sidecar_upstream_latency_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("sealpod_sidecar_upstream_latency_seconds_bucket{le=\"0.001\"} 0"));
        assert!(text.contains("sealpod_sidecar_upstream_latency_seconds_count 1"));
        assert!(text.contains("sealpod_sidecar_open_connections 0"));
    }
}
