//! Egress events (`egress.allowed` on the first use of each host, `egress.denied`,
//! `egress.token_misuse`, and the `egress.request` audit records of [`crate::audit`] behind their
//! rate bound), batched and posted to the configured sink.
//!
//! Emitting never blocks and never fails: events go into a bounded queue and are dropped and
//! counted when it is full; a background task posts batches of up to 100 events or 1 s. An event
//! must never carry a token or key value: its body holds only host, port, reason, method, mode.

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sealpod_resources::proxy_config::{EventsConfig, Mode};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::sink;

/// Events queued before new ones are dropped.
pub const QUEUE: usize = 4096;
/// Largest batch posted at once.
pub const BATCH: usize = 100;
/// Longest an event waits for its batch.
pub const LINGER: Duration = Duration::from_secs(1);
/// Distinct hosts remembered for `egress.allowed` (first use); past this, no more first-use events.
const SEEN_LIMIT: usize = 10_000;

/// Records the bucket holds: a burst of this many goes out at once.
pub const BURST: f64 = 200.0;
/// Records per second the bucket refills with.
pub const RATE: f64 = 5.0;

/// What a record adds to an event's body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Traffic {
    /// The request path without its query (none for a tunnel).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The response status (none for a tunnel, or when no response came).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Bytes from the sandbox to the destination (request body, or tunnel bytes).
    pub bytes_sent: u64,
    /// Bytes from the destination to the sandbox (response body, or tunnel bytes).
    pub bytes_received: u64,
    /// From the request (or `CONNECT`) to the end of the response (or tunnel).
    pub duration_ms: u64,
    /// A sealed token was swapped for a real key in this request.
    pub swapped: bool,
    /// Requests the rate bound left unrecorded since the previous record.
    pub unrecorded: u64,
    /// Model usage the response reported (a credential host's answer to a swapped request).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<sealpod_resources::runtime_api::Usage>,
}

/// The token bucket every `egress.request` record passes (see [`crate::audit`]).
#[derive(Debug)]
pub struct Bucket {
    state: Mutex<(f64, Instant)>,
    unrecorded: AtomicU64,
}

impl Default for Bucket {
    fn default() -> Self {
        Self {
            state: Mutex::new((BURST, Instant::now())),
            unrecorded: AtomicU64::new(0),
        }
    }
}

impl Bucket {
    /// Takes a token at `now`: `Some(requests left out before this one)`, or `None` (and one
    /// more left out) when the bucket is empty.
    pub fn take(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = &mut *state;
        let refill = now.saturating_duration_since(*last).as_secs_f64() * RATE;
        *tokens = (*tokens + refill).min(BURST);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Some(self.unrecorded.swap(0, Ordering::Relaxed))
        } else {
            self.unrecorded.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// The kind of an egress event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Kind {
    /// First allowed use of a host.
    #[serde(rename = "egress.allowed")]
    Allowed,
    /// A refusal (or, in report mode, what enforce would refuse).
    #[serde(rename = "egress.denied")]
    Denied,
    /// A sealed token sent to a host it is not bound to.
    #[serde(rename = "egress.token_misuse")]
    TokenMisuse,
    /// The audit record of a relayed request or a tunnel.
    #[serde(rename = "egress.request")]
    Request,
}

/// One event, as posted: `{"type", "ts", "body": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Kind.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// RFC 3339 time.
    pub ts: String,
    /// Details.
    pub body: EventBody,
}

/// What an event says. Never a token or a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventBody {
    /// Destination host.
    pub host: String,
    /// Destination port.
    pub port: u16,
    /// Why (`allowed`, `not_allowlisted`, `non_public_address`, …).
    pub reason: &'static str,
    /// `CONNECT`, or the method of a forwarded or intercepted request.
    pub method: String,
    /// `enforce` or `report`.
    pub mode: &'static str,
    /// An audit record's traffic (`egress.request` only).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<Traffic>,
}

impl Event {
    /// An event stamped now.
    pub fn new(
        kind: Kind,
        host: &str,
        port: u16,
        reason: &'static str,
        method: &str,
        mode: Mode,
    ) -> Self {
        let ts = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        Self {
            kind,
            ts,
            body: EventBody {
                // A sealed token smuggled into a host name must not reach the sink.
                host: crate::tripwire::scrub(host).into_owned(),
                port,
                reason,
                method: method.to_owned(),
                mode: mode.as_str(),
                traffic: None,
            },
        }
    }
}

/// The emitting side, shared by every connection.
#[derive(Debug)]
pub struct Events {
    tx: Option<mpsc::Sender<Event>>,
    seen: Mutex<HashSet<(String, u16)>>,
    bucket: Bucket,
    metrics: Arc<Metrics>,
}

impl Events {
    /// Events that are only logged (no sink configured).
    pub fn disabled(metrics: Arc<Metrics>) -> Self {
        Self {
            tx: None,
            seen: Mutex::default(),
            bucket: Bucket::default(),
            metrics,
        }
    }

    /// Events posted to `config`'s sink by a background task (spawned on the current runtime).
    pub fn spawn(
        config: EventsConfig,
        tls: Arc<rustls::ClientConfig>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(post_loop(rx, config, tls, Arc::clone(&metrics)));
        Self {
            tx: Some(tx),
            seen: Mutex::default(),
            bucket: Bucket::default(),
            metrics,
        }
    }

    /// Queues an event; drops and counts it when the queue is full. Never waits.
    pub fn emit(&self, event: Event) {
        tracing::info!(
            kind = ?event.kind,
            host = %event.body.host,
            port = event.body.port,
            reason = event.body.reason,
            method = %event.body.method,
            mode = event.body.mode,
            "egress"
        );
        if let Some(tx) = &self.tx
            && tx.try_send(event).is_err()
        {
            self.metrics.events_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The bound on `egress.request` records.
    pub fn bucket(&self) -> &Bucket {
        &self.bucket
    }

    /// Emits `egress.allowed` the first time `host:port` is used.
    pub fn allowed(&self, host: &str, port: u16, method: &str, mode: Mode) {
        let first = {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            seen.len() < SEEN_LIMIT && seen.insert((host.to_owned(), port))
        };
        if first {
            self.emit(Event::new(
                Kind::Allowed,
                host,
                port,
                "allowed",
                method,
                mode,
            ));
        }
    }
}

async fn post_loop(
    mut rx: mpsc::Receiver<Event>,
    config: EventsConfig,
    tls: Arc<rustls::ClientConfig>,
    metrics: Arc<Metrics>,
) {
    let Some(target) = sink::Target::parse(&config.url) else {
        tracing::error!("events.url cannot be parsed; events are dropped");
        return;
    };
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + LINGER;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(e)) => batch.push(e),
                Ok(None) | Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        let Ok(body) = serde_json::to_vec(&serde_json::json!({ "events": batch })) else {
            continue;
        };
        match tokio::time::timeout(
            Duration::from_secs(5),
            sink::post(&target, &config.token_file, body, &tls),
        )
        .await
        {
            Ok(Ok((status, _))) if status.is_success() => {
                metrics.events_sent.fetch_add(n, Ordering::Relaxed);
            }
            Ok(Ok((status, _))) => {
                tracing::warn!(%status, events = n, "event sink refused a batch");
                metrics.events_failed.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, events = n, "event sink unreachable");
                metrics.events_failed.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                tracing::warn!(events = n, "event sink timed out");
                metrics.events_failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_have_the_contract_shape() {
        let e = Event::new(
            Kind::TokenMisuse,
            "evil.com",
            443,
            "token_misuse",
            "POST",
            Mode::Enforce,
        );
        let v = serde_json::to_value(&e).expect("json");
        assert_eq!(v["type"], "egress.token_misuse");
        assert_eq!(v["body"]["host"], "evil.com");
        assert_eq!(v["body"]["port"], 443);
        assert_eq!(v["body"]["reason"], "token_misuse");
        assert_eq!(v["body"]["method"], "POST");
        assert_eq!(v["body"]["mode"], "enforce");
        assert!(
            time::OffsetDateTime::parse(
                v["ts"].as_str().expect("ts"),
                &time::format_description::well_known::Rfc3339
            )
            .is_ok()
        );
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts() {
        let metrics = Arc::new(Metrics::default());
        let (tx, _rx) = mpsc::channel(1);
        let events = Events {
            tx: Some(tx),
            seen: Mutex::default(),
            bucket: Bucket::default(),
            metrics: Arc::clone(&metrics),
        };
        for _ in 0..3 {
            events.emit(Event::new(Kind::Denied, "a", 1, "x", "GET", Mode::Enforce));
        }
        assert_eq!(metrics.events_dropped.load(Ordering::Relaxed), 2);
        events.allowed("h", 443, "CONNECT", Mode::Enforce);
        events.allowed("h", 443, "CONNECT", Mode::Enforce);
        assert_eq!(
            metrics.events_dropped.load(Ordering::Relaxed),
            3,
            "only the first use is emitted"
        );
    }

    #[test]
    fn the_bucket_allows_a_burst_then_its_rate_and_counts_what_it_refuses() {
        let bucket = Bucket::default();
        let t0 = Instant::now();
        for _ in 0..BURST as usize {
            assert_eq!(bucket.take(t0), Some(0));
        }
        assert_eq!(bucket.take(t0), None);
        assert_eq!(bucket.take(t0), None);
        // One second refills RATE tokens; the first record says two were left out.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(bucket.take(t1), Some(2));
        for _ in 1..RATE as usize {
            assert_eq!(bucket.take(t1), Some(0));
        }
        assert_eq!(bucket.take(t1), None);
        // Never more than a burst, however long it rests.
        let later = t1 + Duration::from_secs_f64(BURST / RATE) * 10;
        let granted = (0..1000).filter(|_| bucket.take(later).is_some()).count();
        assert_eq!(granted, BURST as usize);
    }

    #[test]
    fn a_record_leaves_out_what_a_tunnel_has_not() {
        let traffic = Traffic {
            path: Some("/v1/messages".into()),
            status: Some(200),
            bytes_sent: 10,
            bytes_received: 20,
            duration_ms: 3,
            swapped: true,
            unrecorded: 0,
            usage: Some(sealpod_resources::runtime_api::Usage {
                input_tokens: 7,
                ..Default::default()
            }),
        };
        let v = serde_json::to_value(&traffic).expect("json");
        assert_eq!(v["path"], "/v1/messages");
        assert_eq!(v["status"], 200);
        assert_eq!(v["swapped"], true);
        assert_eq!(v["usage"]["input_tokens"], 7);
        let tunnel = serde_json::to_value(Traffic::default()).expect("json");
        assert!(
            ["path", "status", "usage"]
                .iter()
                .all(|k| tunnel.get(k).is_none())
        );
    }
}
