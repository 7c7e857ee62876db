//! Session rows as last read, so that `GET /v3/sessions/{id}` and the other reads of one session
//! do not each pay a store read (on SQLite that read is a hand-off to the database's worker
//! thread and back, most of the request's time).
//!
//! Only on SQLite, where this process is the database's one writer: every write of a session row
//! goes through this store, which forgets the row when its transaction commits. On PostgreSQL
//! other replicas write too and nothing here would learn of it, so there is no cache.
//!
//! Coherence: a reader notes the cache's write count before its store read and keeps the row it
//! read only if no row was forgotten meanwhile. A write forgets after its commit, so a row read
//! before a commit is either never kept (the count moved) or kept and then forgotten.

use std::collections::HashMap;
use std::sync::Mutex;

use super::SessionRow;

/// Rows kept at most; when full, the cache starts empty again.
const CAPACITY: usize = 4096;

/// Session rows by id, and how many forgets have happened.
#[derive(Debug, Default)]
pub(crate) struct RowCache {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    rows: HashMap<String, SessionRow>,
    forgets: u64,
}

/// The cache's write count when a store read began ([`RowCache::keep`] takes it back).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadStart(u64);

impl RowCache {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The row of `id` in `namespace`, if kept.
    pub(crate) fn get(&self, namespace: &str, id: &str) -> Option<SessionRow> {
        self.inner()
            .rows
            .get(id)
            .filter(|row| row.namespace == namespace)
            .cloned()
    }

    /// Call before a store read whose row may be kept.
    pub(crate) fn read_start(&self) -> ReadStart {
        ReadStart(self.inner().forgets)
    }

    /// Keeps a row read from the store, unless a row was forgotten since `start`.
    pub(crate) fn keep(&self, start: ReadStart, row: &SessionRow) {
        let mut inner = self.inner();
        if inner.forgets != start.0 {
            return;
        }
        if inner.rows.len() >= CAPACITY {
            inner.rows.clear();
        }
        inner.rows.insert(row.id.clone(), row.clone());
    }

    /// Forgets the rows of `ids` (after a write to them committed).
    pub(crate) fn forget<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let mut inner = self.inner();
        for id in ids {
            inner.rows.remove(id);
        }
        inner.forgets += 1;
    }
}
