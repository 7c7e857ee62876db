//! Server-sent events: one shared in-memory tail per session (a ring of recent events, each
//! serialized once into its SSE frame as `Bytes`) and a cursor per client. There is no task and
//! no channel per subscriber: a client's stream reads the ring from its cursor when woken by a
//! `watch` of the highest published seq, and falls back to the store for anything the ring does
//! not hold (resume from far back, events committed before the tail existed, other replicas).
//!
//! The local append path publishes only after commit; on PostgreSQL, other replicas' appends
//! arrive through LISTEN/NOTIFY (`store::postgres::listen`). Frames are `id: <seq>\ndata:
//! <event>\n\n` with LF only and no `event:` line; `: ping` every 15 s when quiet. A stream ends
//! on shutdown, and once an archived session has been replayed to its head. This module must
//! never drop or duplicate an event for a client: the cursor only moves over contiguous seqs.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::Stream;
use sealpod_resources::runtime_api::Level;
use tokio::sync::watch;

use crate::store::{EventFilter, Store, StoredEvent};

/// Events kept per session tail.
const RING_CAPACITY: usize = 512;
/// Catch-up reads of the store in flight at once (streams beyond wait with no store future).
const STORE_READERS: usize = 16;
/// Events read from the store per catch-up page.
const STORE_PAGE: i64 = 500;

/// The `stream` query parameter of the event route.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct StreamParam {
    /// `sse` for a stream.
    pub stream: Option<String>,
}

/// True when a request to the event route asks for the SSE stream: `stream=sse`, or `Accept:
/// text/event-stream` (what `EventSource` and the Go CLI send). The handler streams exactly when
/// this holds, and only then may a client token come as `?token=`.
pub fn wants_sse(stream: Option<&str>, headers: &axum::http::HeaderMap) -> bool {
    stream == Some("sse")
        || headers
            .get(axum::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/event-stream"))
}

/// One published event: its filter fields and its frame.
#[derive(Debug, Clone)]
struct Entry {
    seq: i64,
    level: Level,
    type_: Arc<str>,
    turn_id: Option<Arc<str>>,
    frame: Bytes,
}

impl Entry {
    fn from_stored(event: &StoredEvent) -> Entry {
        Entry {
            seq: event.seq,
            level: event.level,
            type_: Arc::from(event.type_.as_str()),
            turn_id: event.turn_id.as_deref().map(Arc::from),
            frame: frame(event.seq, &event.data),
        }
    }
}

/// The SSE frame of an event.
pub fn frame(seq: i64, data: &str) -> Bytes {
    Bytes::from(format!("id: {seq}\ndata: {data}\n\n"))
}

/// The shared tail of one session.
#[derive(Debug)]
pub struct Tail {
    ring: Mutex<VecDeque<Entry>>,
    /// Highest seq known committed (published here or announced by another replica).
    seen: watch::Sender<i64>,
    /// Bumped on cancel and archive.
    ctl: watch::Sender<u64>,
}

impl Tail {
    fn new() -> Tail {
        Tail {
            ring: Mutex::new(VecDeque::new()),
            seen: watch::Sender::new(0),
            ctl: watch::Sender::new(0),
        }
    }

    fn insert(&self, entries: Vec<Entry>) {
        let Some(max) = entries.iter().map(|e| e.seq).max() else {
            return;
        };
        {
            let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
            for entry in entries {
                match ring.back() {
                    Some(last) if last.seq >= entry.seq => {
                        // Out-of-order publish (two commits racing to publish): keep seq order.
                        if let Err(pos) = ring.binary_search_by_key(&entry.seq, |e| e.seq) {
                            ring.insert(pos, entry);
                        }
                    }
                    _ => ring.push_back(entry),
                }
            }
            while ring.len() > RING_CAPACITY {
                ring.pop_front();
            }
        }
        self.announce(max);
    }

    fn announce(&self, seq: i64) {
        self.seen.send_if_modified(|v| {
            if seq > *v {
                *v = seq;
                true
            } else {
                false
            }
        });
    }

    /// Entries with seq in `cursor+1 ..` that follow the cursor without a gap, at most `max`.
    /// `None` when the ring does not hold `cursor + 1`.
    fn read_after(&self, cursor: i64, max: usize) -> Option<Vec<Entry>> {
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let start = ring.partition_point(|e| e.seq <= cursor);
        let mut out = Vec::new();
        for (expected, entry) in (cursor + 1..).zip(ring.iter().skip(start).take(max)) {
            if entry.seq != expected {
                break;
            }
            out.push(entry.clone());
        }
        (!out.is_empty()).then_some(out)
    }

    /// True when the ring holds `cursor + 1` onwards: every event after its first entry was
    /// published to it (the tail lived throughout), so a reader there needs no store catch-up.
    fn covers(&self, cursor: i64) -> bool {
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        ring.front().is_some_and(|e| e.seq <= cursor + 1)
    }

    /// A receiver of the highest committed seq (for long-polls).
    pub fn watch_seq(&self) -> watch::Receiver<i64> {
        self.seen.subscribe()
    }

    /// A receiver of control changes (cancel, archive).
    pub fn watch_ctl(&self) -> watch::Receiver<u64> {
        self.ctl.subscribe()
    }
}

/// Every live tail, by session id. Tails live as long as someone holds them.
#[derive(Debug)]
pub struct Hub {
    tails: Mutex<HashMap<String, Weak<Tail>>>,
    reads: tokio::sync::Semaphore,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            tails: Mutex::new(HashMap::new()),
            reads: tokio::sync::Semaphore::new(STORE_READERS),
        }
    }
}

impl Hub {
    /// A new hub.
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub::default())
    }

    /// The tail of a session, created if absent.
    pub fn tail(&self, session: &str) -> Arc<Tail> {
        let mut tails = self.tails.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tail) = tails.get(session).and_then(Weak::upgrade) {
            return tail;
        }
        if tails.len() >= 1024 && tails.len().is_power_of_two() {
            tails.retain(|_, t| t.strong_count() > 0);
        }
        let tail = Arc::new(Tail::new());
        tails.insert(session.to_owned(), Arc::downgrade(&tail));
        tail
    }

    fn existing(&self, session: &str) -> Option<Arc<Tail>> {
        let tails = self.tails.lock().unwrap_or_else(|p| p.into_inner());
        tails.get(session).and_then(Weak::upgrade)
    }

    /// Publishes committed events of a session (a no-op when nobody listens).
    pub fn publish(&self, session: &str, events: &[StoredEvent]) {
        if events.is_empty() {
            return;
        }
        if let Some(tail) = self.existing(session) {
            tail.insert(events.iter().map(Entry::from_stored).collect());
        }
    }

    /// Wakes a session's control waiters (cancel, archive).
    pub fn signal(&self, session: &str) {
        if let Some(tail) = self.existing(session) {
            tail.ctl.send_modify(|v| *v += 1);
        }
    }

    /// When a local tail exists and has not seen `seq`, the seq after which to fetch.
    pub fn wants(&self, session: &str, seq: i64) -> Option<i64> {
        let tail = self.existing(session)?;
        let seen = *tail.seen.borrow();
        (seen < seq).then_some(seen)
    }

    /// A permit for one catch-up read of the store (bounds their number at once).
    pub async fn read_permit(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.reads.acquire().await.ok()
    }

    /// Number of live tails (a metric).
    pub fn live_tails(&self) -> usize {
        let tails = self.tails.lock().unwrap_or_else(|p| p.into_inner());
        tails.values().filter(|t| t.strong_count() > 0).count()
    }
}

/// What one client's stream needs.
#[derive(Debug)]
pub struct StreamParams {
    /// The store (catch-up reads, archived check).
    pub store: Arc<Store>,
    /// Tenant of the session.
    pub namespace: String,
    /// `ses_…`
    pub session: String,
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
                    Ok(Some(row)) if row.status == sealpod_resources::session::Phase::Archived => {
                        if self.p.cursor >= row.head {
                            self.done = true;
                            return None;
                        }
                        self.caught_up = false;
                        continue;
                    }
                    Ok(None) => {
                        self.done = true;
                        return None;
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
pub fn stream(mut p: StreamParams) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
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
