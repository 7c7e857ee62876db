//! The egress audit: one `egress.request` record for every request the proxy relays (intercepted
//! or forwarded) and for every tunnel, with what a security team reviews — host, port, method,
//! path without its query, status, bytes each way, duration, whether a sealed token was swapped,
//! the model usage its answer reported ([`crate::meter`]) —
//! and never a header, a body, a query or a key.
//!
//! Records go out through the event queue (batched, never blocking a request) behind a token
//! bucket ([`crate::events::Bucket`]), so a flood from the sandbox cannot flood the session's log:
//! at most `BURST` records at once and `RATE` per second after. What the bucket refuses is counted
//! (`sealpod_sidecar_audit_unrecorded_total`) and the next record says how many it left out
//! (`unrecorded`). The sink, its token and these bounds come from the proxy's configuration, which
//! the sandbox cannot change.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::events::Traffic;
use crate::meter::UsageSlot;
use crate::proxy::Proxy;

/// A request on its way: what its record will say once its response has ended.
#[derive(Debug)]
pub(crate) struct Pending {
    proxy: Arc<Proxy>,
    host: String,
    port: u16,
    method: String,
    started: Instant,
    traffic: Traffic,
    sent: Arc<AtomicU64>,
    usage: UsageSlot,
}

impl Pending {
    /// Starts the record of a request (`path`: the URI path, its query dropped here) or, with
    /// `path` `None`, of a tunnel.
    pub(crate) fn start(
        proxy: &Arc<Proxy>,
        host: &str,
        port: u16,
        method: &str,
        path: Option<&str>,
    ) -> Self {
        Self {
            proxy: Arc::clone(proxy),
            host: host.to_owned(),
            port,
            method: method.to_owned(),
            started: Instant::now(),
            traffic: Traffic {
                path: path.map(|p| p.split('?').next().unwrap_or_default().to_owned()),
                ..Traffic::default()
            },
            sent: Arc::new(AtomicU64::new(0)),
            usage: UsageSlot::default(),
        }
    }

    /// The counter of bytes the request body sends (see [`crate::counted::Counted`]).
    pub(crate) fn sent(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.sent)
    }

    /// Notes that a sealed token was swapped.
    pub(crate) fn swapped(&mut self) {
        self.traffic.swapped = true;
    }

    /// Whether a sealed token was swapped.
    pub(crate) fn is_swapped(&self) -> bool {
        self.traffic.swapped
    }

    /// Where the response's metered model usage goes (see [`crate::meter`]).
    pub(crate) fn usage_slot(&self) -> UsageSlot {
        Arc::clone(&self.usage)
    }

    /// Ends a tunnel's record with its byte counts.
    pub(crate) fn finish_tunnel(mut self, sent: u64, received: u64) {
        self.sent.store(sent, Ordering::Relaxed);
        self.traffic.bytes_received = received;
        drop(self);
    }

    /// The response has its status; the record goes out when `body` ends or is dropped.
    pub(crate) fn attach<B>(mut self, status: u16, body: B) -> Recorded<B> {
        self.traffic.status = Some(status);
        Recorded {
            inner: body,
            pending: Some(self),
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let Some(unrecorded) = self.proxy.events.bucket().take(Instant::now()) else {
            self.proxy
                .metrics
                .audit_unrecorded
                .fetch_add(1, Ordering::Relaxed);
            return;
        };
        let mut traffic = std::mem::take(&mut self.traffic);
        traffic.bytes_sent = self.sent.load(Ordering::Relaxed);
        traffic.duration_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        traffic.unrecorded = unrecorded;
        traffic.usage = self.usage.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.proxy
            .record(&self.host, self.port, &self.method, traffic);
    }
}

/// A response body that counts what it relays and sends its request's record when it ends (or
/// is dropped: a client that hangs up is recorded too).
#[derive(Debug)]
pub(crate) struct Recorded<B> {
    inner: B,
    pending: Option<Pending>,
}

impl<B> Body for Recorded<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(p)) = (frame.data_ref(), this.pending.as_mut()) {
                    p.traffic.bytes_received += data.len() as u64;
                }
            }
            // The end, or an error: the record goes now rather than when hyper drops the body.
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => drop(this.pending.take()),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
