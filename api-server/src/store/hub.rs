//! The live side of the store: one shared in-memory tail per session, a ring of recent committed
//! events, each serialized once into its SSE frame as `Bytes`, and a `watch` of the highest
//! committed seq. The store publishes here only after commit; streams and long-polls
//! ([`crate::sse`], the runtime API) read the ring and wait on the watches.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use sealpod_resources::runtime_api::Level;
use tokio::sync::watch;

use super::StoredEvent;

/// Events kept per session tail.
const RING_CAPACITY: usize = 512;
/// Catch-up reads of the store in flight at once (streams beyond wait with no store future).
const STORE_READERS: usize = 16;

/// One published event: its filter fields and its frame.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) seq: i64,
    pub(crate) level: Level,
    pub(crate) type_: Arc<str>,
    pub(crate) turn_id: Option<Arc<str>>,
    pub(crate) frame: Bytes,
}

impl Entry {
    pub(crate) fn from_stored(event: &StoredEvent) -> Entry {
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

    pub(crate) fn insert(&self, entries: Vec<Entry>) {
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
    pub(crate) fn read_after(&self, cursor: i64, max: usize) -> Option<Vec<Entry>> {
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
    pub(crate) fn covers(&self, cursor: i64) -> bool {
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

    /// Drops the tail of a session whose row was retired (its Session object is gone and another
    /// holds the name): its readers are woken to find the row is no longer theirs, and the next
    /// reader of the id gets a new tail, from seq 1.
    pub fn forget(&self, session: &str) {
        let removed = {
            let mut tails = self.tails.lock().unwrap_or_else(|p| p.into_inner());
            tails.remove(session).and_then(|t| t.upgrade())
        };
        if let Some(tail) = removed {
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
