//! Response redaction: a real key seen in a response header value or body from a credential host
//! is replaced by its sealed token before it reaches the sandbox, and a header whose name holds a
//! key is dropped.
//!
//! The body wrapper works frame by frame: it holds back only the few trailing bytes that could be
//! the start of a key split across frames, so an SSE event is never delayed or coalesced (event
//! boundaries cannot be a key prefix). It must never collect a body.
//!
//! It can only redact what it can read: requests to credential hosts ask for `identity`
//! ([`ask_for_identity`]), and a response in any other coding must not be relayed
//! ([`is_plain`]).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body::{Body, Frame, SizeHint};

use crate::metrics::Metrics;

/// A real value and what replaces it.
#[derive(Clone)]
pub(crate) struct Needle {
    real: Bytes,
    sealed: Bytes,
}

impl std::fmt::Debug for Needle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Needle([redacted])")
    }
}

impl Needle {
    /// Replace `real` with `sealed` (an empty `real` never matches).
    pub(crate) fn new(real: &str, sealed: &str) -> Self {
        Self {
            real: Bytes::copy_from_slice(real.as_bytes()),
            sealed: Bytes::copy_from_slice(sealed.as_bytes()),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    let first = needle[0];
    (0..=hay.len() - needle.len()).find(|&i| hay[i] == first && &hay[i..i + needle.len()] == needle)
}

/// Replaces every needle in `input`; returns the result and the number of replacements.
pub(crate) fn replace_all(input: &[u8], needles: &[Needle]) -> (Vec<u8>, usize) {
    let mut out = input.to_vec();
    let mut count = 0;
    for n in needles {
        if find(&out, &n.real).is_none() {
            continue;
        }
        let mut next = Vec::with_capacity(out.len());
        let mut rest = &out[..];
        while let Some(i) = find(rest, &n.real) {
            next.extend_from_slice(&rest[..i]);
            next.extend_from_slice(&n.sealed);
            rest = &rest[i + n.real.len()..];
            count += 1;
        }
        next.extend_from_slice(rest);
        out = next;
    }
    (out, count)
}

/// Length of the longest suffix of `buf` that is a proper prefix of some needle.
fn partial_suffix(buf: &[u8], needles: &[Needle]) -> usize {
    let mut best = 0;
    for n in needles {
        let Some(&first) = n.real.first() else {
            continue;
        };
        let max = n.real.len().saturating_sub(1).min(buf.len());
        // Only positions holding the needle's first byte can start a partial match.
        for start in buf.len() - max..buf.len() {
            let len = buf.len() - start;
            if len <= best {
                break;
            }
            if buf[start] == first && buf[start..] == n.real[..len] {
                best = len;
                break;
            }
        }
    }
    best
}

/// Redacts needles in headers; returns the number of headers changed or dropped.
///
/// A value holding a key gets the sealed token in its place. A header whose *name* holds a key
/// is dropped: names arrive lowercased (HTTP/2 requires it, and `http` folds HTTP/1.1 names), so
/// the key is matched ignoring ASCII case, and a rewritten name could not be faithful anyway.
pub(crate) fn redact_headers(headers: &mut HeaderMap, needles: &[Needle]) -> usize {
    let named: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            let name = name.as_str().as_bytes();
            needles.iter().any(|n| {
                !n.real.is_empty()
                    && name
                        .windows(n.real.len())
                        .any(|w| w.eq_ignore_ascii_case(&n.real))
            })
        })
        .cloned()
        .collect();
    let mut changed = 0;
    for name in named {
        changed += headers.get_all(&name).iter().count();
        headers.remove(&name);
    }
    for value in headers.values_mut() {
        let (out, n) = replace_all(value.as_bytes(), needles);
        if n > 0
            && let Ok(v) = HeaderValue::from_bytes(&out)
        {
            *value = v;
            changed += 1;
        }
    }
    changed
}

/// Replaces the client's `Accept-Encoding` with `identity` on a request to a credential host, so
/// the response body comes back as plain bytes the redactor can read (a compressed body would
/// carry a key past it).
pub(crate) fn ask_for_identity(headers: &mut HeaderMap) {
    headers.remove(ACCEPT_ENCODING);
    headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
}

/// True when a response with these headers has a body of plain bytes: no content coding but
/// `identity` and no transfer coding but `chunked` (which hyper decodes). Anything else (a value
/// that is not even text included) must not be relayed from a credential host.
pub(crate) fn is_plain(headers: &HeaderMap) -> bool {
    let only = |name: HeaderName, allowed: &str| {
        headers.get_all(name).iter().all(|value| {
            value.to_str().is_ok_and(|v| {
                v.split(',')
                    .map(str::trim)
                    .all(|coding| coding.is_empty() || coding.eq_ignore_ascii_case(allowed))
            })
        })
    };
    only(CONTENT_ENCODING, "identity") && only(TRANSFER_ENCODING, "chunked")
}

/// A body that redacts needles frame by frame.
#[derive(Debug)]
pub(crate) struct Redacting<B> {
    inner: B,
    needles: Vec<Needle>,
    carry: BytesMut,
    pending_trailers: Option<HeaderMap>,
    metrics: Arc<Metrics>,
    ended: bool,
}

impl<B> Redacting<B> {
    /// Wraps `inner`.
    pub(crate) fn new(inner: B, needles: Vec<Needle>, metrics: Arc<Metrics>) -> Self {
        Self {
            inner,
            needles,
            carry: BytesMut::new(),
            pending_trailers: None,
            metrics,
            ended: false,
        }
    }
}

impl<B> Body for Redacting<B>
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
        if let Some(trailers) = this.pending_trailers.take() {
            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
        }
        if this.ended {
            return Poll::Ready(None);
        }
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => {
                    let frame = match frame.into_data() {
                        Ok(data) => {
                            // Fast path: nothing held back, no key in the frame, no key starting
                            // at its end: pass the frame through without copying it.
                            if this.carry.is_empty()
                                && this.needles.iter().all(|n| find(&data, &n.real).is_none())
                                && partial_suffix(&data, &this.needles) == 0
                            {
                                return Poll::Ready(Some(Ok(Frame::data(data))));
                            }
                            this.carry.extend_from_slice(&data);
                            let (mut out, n) = replace_all(&this.carry, &this.needles);
                            if n > 0 {
                                this.metrics
                                    .redactions
                                    .fetch_add(n as u64, Ordering::Relaxed);
                            }
                            let hold = partial_suffix(&out, &this.needles);
                            let held = out.split_off(out.len() - hold);
                            this.carry.clear();
                            this.carry.extend_from_slice(&held);
                            if out.is_empty() {
                                continue;
                            }
                            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                        }
                        Err(frame) => frame,
                    };
                    if let Ok(mut trailers) = frame.into_trailers() {
                        redact_headers(&mut trailers, &this.needles);
                        if this.carry.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                        }
                        this.pending_trailers = Some(trailers);
                        let rest = this.carry.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(rest))));
                    }
                }
                Poll::Ready(None) => {
                    this.ended = true;
                    if this.carry.is_empty() {
                        return Poll::Ready(None);
                    }
                    let rest = this.carry.split().freeze();
                    return Poll::Ready(Some(Ok(Frame::data(rest))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended && self.pending_trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    const SEALED: &str = "sp_sealed_0123456789abcdef0123456789abcdef";

    #[test]
    fn header_names_holding_a_key_are_dropped_values_replaced() {
        let n = [Needle::new("sk-Real-1", SEALED)];
        let mut h = HeaderMap::new();
        h.insert("sk-real-1", HeaderValue::from_static("a"));
        h.append("x-sk-real-1-echo", HeaderValue::from_static("b"));
        h.append("x-sk-real-1-echo", HeaderValue::from_static("c"));
        h.insert("x-echo", HeaderValue::from_static("sk-Real-1"));
        h.insert("x-other", HeaderValue::from_static("sk-real-1"));
        assert_eq!(redact_headers(&mut h, &n), 4);
        let mut names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, vec!["x-echo", "x-other"]);
        assert_eq!(h["x-echo"], SEALED);
        assert_eq!(
            h["x-other"], "sk-real-1",
            "values are matched exactly, as the body is"
        );
    }

    #[test]
    fn only_plain_bodies_are_readable() {
        let cases: &[(&[(&str, &str)], bool)] = &[
            (&[], true),
            (&[("content-encoding", "identity")], true),
            (&[("content-encoding", "Identity, identity")], true),
            (&[("transfer-encoding", "chunked")], true),
            (&[("content-encoding", "gzip")], false),
            (
                &[("content-encoding", "identity"), ("content-encoding", "br")],
                false,
            ),
            (&[("content-encoding", "identity, zstd")], false),
            (&[("transfer-encoding", "gzip, chunked")], false),
        ];
        for (headers, want) in cases {
            let mut h = HeaderMap::new();
            for (name, value) in *headers {
                h.append(
                    HeaderName::from_static(name),
                    HeaderValue::from_bytes(value.as_bytes()).expect("value"),
                );
            }
            assert_eq!(is_plain(&h), *want, "{headers:?}");
        }
        let mut h = HeaderMap::new();
        let opaque = HeaderValue::from_bytes(b"identity\xff").expect("obs-text");
        h.insert(CONTENT_ENCODING, opaque);
        assert!(!is_plain(&h), "a coding that is not text is not identity");
        let mut h = HeaderMap::new();
        h.append(ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        h.append(ACCEPT_ENCODING, HeaderValue::from_static("br"));
        ask_for_identity(&mut h);
        let sent: Vec<_> = h.get_all(ACCEPT_ENCODING).iter().collect();
        assert_eq!(sent, vec!["identity"]);
    }

    #[test]
    fn replaces_everywhere() {
        let n = [Needle::new("sk-real", SEALED)];
        let (out, c) = replace_all(b"a sk-real b sk-real", &n);
        assert_eq!(c, 2);
        assert_eq!(out, format!("a {SEALED} b {SEALED}").into_bytes());
        assert_eq!(partial_suffix(b"data: sk-re", &n), 5);
        assert_eq!(partial_suffix(b"data: x\n\n", &n), 0);
        assert_eq!(partial_suffix(b"sk-rea", &n), 6);
        assert_eq!(partial_suffix(b"s", &n), 1);
        assert_eq!(
            partial_suffix(b"sk-real", &n),
            0,
            "a whole key is replaced, not held"
        );
        assert_eq!(partial_suffix(b"", &n), 0);
    }

    /// A body that yields the given frames, one per poll.
    struct Frames(std::collections::VecDeque<Bytes>);

    impl Body for Frames {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
        }
    }

    #[tokio::test]
    async fn a_key_split_across_frames_is_redacted_and_frames_are_not_merged() {
        let body = Frames(
            ["data: 1\n\n", "data: sk-re", "al!\n\n", "data: 3\n\n"]
                .into_iter()
                .map(|s: &'static str| Bytes::from_static(s.as_bytes()))
                .collect(),
        );
        let mut r = Redacting::new(
            body,
            vec![Needle::new("sk-real", SEALED)],
            Arc::new(Metrics::default()),
        );
        let mut frames = Vec::new();
        while let Some(f) = r.frame().await {
            frames.push(f.expect("frame").into_data().expect("data"));
        }
        assert_eq!(frames[0], "data: 1\n\n", "first event passes at once");
        assert_eq!(
            frames[1], "data: ",
            "only the possible key prefix is held back"
        );
        assert_eq!(frames[2], format!("{SEALED}!\n\n"));
        assert_eq!(frames[3], "data: 3\n\n");
        assert_eq!(frames.len(), 4);
    }
}
