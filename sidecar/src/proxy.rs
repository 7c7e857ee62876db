//! The proxy's shared state, built once from the validated configuration (the start-up sequence
//! that binds and serves is [`crate::running`]).
//!
//! Everything a connection needs hangs off [`Proxy`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use sealpod_resources::proxy_config::{Mode, ValidatedProxyConfig};

use crate::allowlist::Allowlist;
use crate::ca::{CaError, PodCa};
use crate::events::{Event, Events, Kind, Traffic};
use crate::gate::Gate;
use crate::metrics::{DenyReason, Metrics};
use crate::resolve::Net;
use crate::ssrf::Guard;
use crate::swap::Credential;
use crate::tls::{self, TlsError};

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The CA could not be minted.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// The TLS configuration is invalid (`extra_roots`).
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The CA certificate could not be written.
    #[error("cannot write ca_cert_out {path}: {source}")]
    WriteCa {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A listener could not be bound.
    #[error("cannot bind {key} {addr}: {source}")]
    Bind {
        /// Which key (`listen`, `admin_listen`).
        key: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Shared state of the proxy.
#[derive(Debug)]
pub struct Proxy {
    /// Enforce or report.
    pub mode: Mode,
    /// Destinations and credential hosts.
    pub allowlist: Allowlist,
    /// The non-public address guard.
    pub guard: Guard,
    /// Resolver and dialler.
    pub net: Arc<dyn Net>,
    /// The per-pod CA.
    pub ca: Arc<PodCa>,
    /// Upstream TLS client configuration.
    pub upstream_tls: Arc<rustls::ClientConfig>,
    /// Credentials, indexed like the config's `credentials`.
    pub credentials: Vec<Arc<Credential>>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Egress events.
    pub events: Events,
    /// The egress gate, when `events.gate_url` is configured: no swap while it is closed.
    pub(crate) gate: Option<Arc<Gate>>,
    /// Set once both listeners are bound.
    pub ready: AtomicBool,
    /// HTTP/2 upstream connections shared by every intercepted client connection to the same
    /// `host:port` (each was dialled to a checked address): a new client connection costs no new
    /// upstream handshake.
    upstream_h2: Mutex<HashMap<(String, u16), H2Sender>>,
}

/// A shared HTTP/2 upstream sender.
pub(crate) type H2Sender = hyper::client::conn::http2::SendRequest<crate::counted::UpstreamBody>;

impl Proxy {
    /// Builds the state (mints the CA). Needs a Tokio runtime when `events` is configured.
    pub fn new(config: &ValidatedProxyConfig, net: Arc<dyn Net>) -> Result<Self, StartError> {
        let metrics = Arc::new(Metrics::default());
        let upstream_tls = tls::upstream_client(&config.extra_roots)?;
        let events = match &config.events {
            Some(sink) => Events::spawn(
                sink.clone(),
                Arc::clone(&upstream_tls),
                Arc::clone(&metrics),
            ),
            None => Events::disabled(Arc::clone(&metrics)),
        };
        let gate = config
            .events
            .as_ref()
            .and_then(|sink| Gate::spawn(sink, Arc::clone(&upstream_tls)));
        Ok(Self {
            gate,
            mode: config.mode,
            allowlist: Allowlist::new(
                config.allow.clone(),
                config.credentials.iter().map(|c| c.hosts.clone()).collect(),
            ),
            guard: Guard::new(config.deny_cidrs.clone(), config.allow_cidrs.clone()),
            net,
            ca: Arc::new(PodCa::mint()?),
            upstream_tls,
            credentials: config
                .credentials
                .iter()
                .map(|c| Arc::new(Credential::new(c)))
                .collect(),
            metrics,
            events,
            ready: AtomicBool::new(false),
            upstream_h2: Mutex::default(),
        })
    }

    /// A live shared HTTP/2 upstream connection to `host:port`, if any.
    pub(crate) fn pooled_h2(&self, host: &str, port: u16) -> Option<H2Sender> {
        let mut pool = self.upstream_h2.lock().unwrap_or_else(|p| p.into_inner());
        let key = (host.to_owned(), port);
        match pool.get(&key) {
            Some(sender) if !sender.is_closed() => Some(sender.clone()),
            Some(_) => {
                pool.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Shares an HTTP/2 upstream connection to `host:port`.
    pub(crate) fn pool_h2(&self, host: &str, port: u16, sender: &H2Sender) {
        let mut pool = self.upstream_h2.lock().unwrap_or_else(|p| p.into_inner());
        pool.insert((host.to_owned(), port), sender.clone());
    }

    /// Counts and reports a refusal.
    pub fn refuse(&self, reason: DenyReason, host: &str, port: u16, method: &str) {
        self.metrics.deny(reason);
        let kind = if reason == DenyReason::TokenMisuse {
            Kind::TokenMisuse
        } else {
            Kind::Denied
        };
        self.events.emit(Event::new(
            kind,
            host,
            port,
            reason.as_str(),
            method,
            self.mode,
        ));
    }

    /// Sends the `egress.request` audit record of a relayed request or a tunnel.
    pub fn record(&self, host: &str, port: u16, method: &str, traffic: Traffic) {
        let mut event = Event::new(Kind::Request, host, port, "allowed", method, self.mode);
        event.body.traffic = Some(traffic);
        self.events.emit(event);
    }

    /// Counts and reports what report mode lets through.
    pub fn would_refuse(&self, reason: DenyReason, host: &str, port: u16, method: &str) {
        self.metrics.would_deny(reason);
        self.events.emit(Event::new(
            Kind::Denied,
            host,
            port,
            reason.as_str(),
            method,
            self.mode,
        ));
    }
}
