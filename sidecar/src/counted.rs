//! A body that counts the data bytes passing through it into a shared counter: the request side
//! of an audit record ([`crate::audit`]). A leaf: it knows no other module.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// A request body that counts the bytes it sends.
#[derive(Debug)]
pub(crate) struct Counted<B> {
    inner: B,
    sent: Arc<AtomicU64>,
}

impl<B> Counted<B> {
    /// Counts `inner`'s data into `sent`.
    pub(crate) fn new(inner: B, sent: Arc<AtomicU64>) -> Self {
        Self { inner, sent }
    }
}

impl<B> Body for Counted<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.sent.fetch_add(data.len() as u64, Ordering::Relaxed);
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

/// The body of a request on its way upstream.
pub(crate) type UpstreamBody = Counted<hyper::body::Incoming>;
