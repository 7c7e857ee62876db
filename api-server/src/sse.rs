//! Server-sent events: a cursor per client over its session's shared tail (the ring of recent
//! events, each serialized once into its SSE frame as `Bytes`, that [`crate::store::hub`] keeps). There is no task and
//! no channel per subscriber: a client's stream reads the ring from its cursor when woken by a
//! `watch` of the highest published seq, and falls back to the store for anything the ring does
//! not hold (resume from far back, events committed before the tail existed, other replicas).
//!
//! The local append path publishes only after commit; on PostgreSQL, other replicas' appends
//! arrive through LISTEN/NOTIFY (`store::postgres::listen`). Frames are `id: <seq>\ndata:
//! <event>\n\n` with LF only and no `event:` line; `: ping` every 15 s when quiet. A stream ends
//! on shutdown, and once an archived session has been replayed to its head. This module must
//! never drop or duplicate an event for a client: the cursor only moves over contiguous seqs.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::Stream;
use tokio::sync::watch;

use crate::store::hub::{Entry, Tail, frame};
use crate::store::{EventFilter, Store};

/// Events read from the store per catch-up page.
const STORE_PAGE: i64 = 500;

/// The `stream` query parameter of the event route.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub(crate) struct StreamParam {
    /// `sse` for a stream.
    pub stream: Option<String>,
}

/// True when a request to the event route asks for the SSE stream: `stream=sse`, or `Accept:
/// text/event-stream` (what `EventSource` and the Go CLI send). The handler streams exactly when
/// this holds, and only then may a client token come as `?token=`.
pub(crate) fn wants_sse(stream: Option<&str>, headers: &axum::http::HeaderMap) -> bool {
    stream == Some("sse")
        || headers
            .get(axum::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/event-stream"))
}

/// What one client's stream needs.
#[derive(Debug)]
pub(crate) struct StreamParams {
    /// The store (catch-up reads, archived check).
    pub store: Arc<Store>,
    /// Tenant of the session.
    pub namespace: String,
    /// `ses_…`
    pub session: String,
    /// The row the stream follows (`SessionRow::n`): a row of the same id with another `n` is a
    /// later session under the name (the followed one was retired), and ends the stream.
    pub row: i64,
    /// Resume after this seq.
    pub cursor: i64,
    /// Filters.
    pub filter: EventFilter,
    /// Ends the stream when it flips to true.
    pub shutdown: watch::Receiver<bool>,
    /// Keep-alive interval.
    pub ping: Duration,
    /// The session's head when the caller found it archived (saves a read at connect).
    pub archived_head: Option<i64>,
    /// The tail and a control receiver taken before the caller read the session, so an archive
    /// in between is not missed.
    pub subscribed: Option<(Arc<Tail>, watch::Receiver<u64>)>,
}

struct StreamState {
    p: StreamParams,
    tail: Arc<Tail>,
    seen: watch::Receiver<i64>,
    ctl: watch::Receiver<u64>,
    caught_up: bool,
    check_archived: bool,
    done: bool,
}

fn matches(filter: &EventFilter, e: &Entry) -> bool {
    filter.matches(e.level, &e.type_, e.turn_id.as_deref())
}

fn chunk(frames: Vec<Bytes>) -> Option<Bytes> {
    match frames.len() {
        0 => None,
        1 => frames.into_iter().next(),
        _ => {
            let mut buf = BytesMut::with_capacity(frames.iter().map(Bytes::len).sum());
            for f in frames {
                buf.extend_from_slice(&f);
            }
            Some(buf.freeze())
        }
    }
}

impl StreamState {
    /// Reads the next store page after the cursor; returns the frames passing the filter and
    /// whether the page was short (caught up with the store).
    async fn store_page(&mut self) -> Result<(Vec<Bytes>, bool), ()> {
        let page = self
            .p
            .store
            .list_events(
                &self.p.session,
                self.p.cursor,
                &EventFilter::default(),
                STORE_PAGE,
            )
            .await
            .map_err(|e| tracing::warn!(error = %e, "SSE catch-up read failed"))?;
        let short = (page.len() as i64) < STORE_PAGE;
        if short && !page.is_empty() {
            // The page reached the head while this stream holds the tail, so everything after
            // it will be published here: keep it for the next reader of this session.
            self.tail
                .insert(page.iter().map(Entry::from_stored).collect());
        }
        let mut frames = Vec::new();
        for event in &page {
            if self
                .p
                .filter
                .matches(event.level, &event.type_, event.turn_id.as_deref())
            {
                frames.push(frame(event.seq, &event.data));
            }
            self.p.cursor = event.seq;
        }
        Ok((frames, short))
    }

    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if self.done {
                return None;
            }
            if !self.caught_up {
                // Boxed: the store future is large and only alive during catch-up, so idle
                // streams do not carry its space; the permit bounds how many exist at once when
                // thousands of clients connect together.
                let page = {
                    let store = self.p.store.clone();
                    let _permit = store.hub().read_permit().await;
                    Box::pin(self.store_page()).await
                };
                let Ok((frames, short)) = page else {
                    self.done = true;
                    return None;
                };
                self.caught_up = short;
                if let Some(c) = chunk(frames) {
                    return Some(c);
                }
                continue;
            }
            let seen = *self.seen.borrow_and_update();
            if self.p.cursor < seen {
                match self.tail.read_after(self.p.cursor, 256) {
                    Some(entries) => {
                        if let Some(last) = entries.last() {
                            self.p.cursor = last.seq;
                        }
                        let frames = entries
                            .iter()
                            .filter(|e| matches(&self.p.filter, e))
                            .map(|e| e.frame.clone())
                            .collect();
                        if let Some(c) = chunk(frames) {
                            return Some(c);
                        }
                    }
                    None => {
                        let before = self.p.cursor;
                        let page = {
                            let store = self.p.store.clone();
                            let _permit = store.hub().read_permit().await;
                            Box::pin(self.store_page()).await
                        };
                        let Ok((frames, _)) = page else {
                            self.done = true;
                            return None;
                        };
                        if let Some(c) = chunk(frames) {
                            return Some(c);
                        }
                        if self.p.cursor == before {
                            // Announced but not readable yet: wait for the next wake-up.
                            self.wait_short().await;
                        }
                    }
                }
                continue;
            }
            if let Some(head) = self.p.archived_head
                && self.p.cursor >= head
            {
                self.done = true;
                return None;
            }
            if self.check_archived {
                self.check_archived = false;
                let row = {
                    let _permit = self.p.store.hub().read_permit().await;
                    Box::pin(self.p.store.get_session(&self.p.namespace, &self.p.session)).await
                };
                match row {
                    // Gone, or retired and followed by another session under the id.
                    Ok(found) if found.as_ref().is_none_or(|row| row.n != self.p.row) => {
                        self.done = true;
                        return None;
                    }
                    Ok(Some(row)) if row.status == sealpod_resources::session::Phase::Archived => {
                        if self.p.cursor >= row.head {
                            self.done = true;
                            return None;
                        }
                        self.caught_up = false;
                        continue;
                    }

                    _ => {}
                }
            }
            tokio::select! {
                changed = self.seen.changed() => {
                    if changed.is_err() { self.done = true; }
                }
                _ = self.ctl.changed() => { self.check_archived = true; }
                _ = self.p.shutdown.changed() => { self.done = true; }
                () = tokio::time::sleep(self.p.ping) => {
                    return Some(Bytes::from_static(b": ping\n\n"));
                }
            }
        }
    }

    async fn wait_short(&mut self) {
        let _ = tokio::time::timeout(Duration::from_millis(50), self.seen.changed()).await;
    }
}

/// The body stream of one SSE client: replay from the cursor, then tail.
pub(crate) fn stream(mut p: StreamParams) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
    let (tail, ctl) = match p.subscribed.take() {
        Some(pair) => pair,
        None => {
            let tail = p.store.hub().tail(&p.session);
            let ctl = tail.watch_ctl();
            (tail, ctl)
        }
    };
    let caught_up = tail.covers(p.cursor);
    let state = StreamState {
        seen: tail.watch_seq(),
        ctl,
        tail,
        p,
        caught_up,
        check_archived: false,
        done: false,
    };
    futures::stream::unfold(state, |mut state| async move {
        if *state.p.shutdown.borrow() {
            return None;
        }
        let next = state.next_chunk().await?;
        Some((Ok(next), state))
    })
}
