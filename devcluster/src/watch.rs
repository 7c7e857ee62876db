//! Watch streams: newline-delimited JSON events (`ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK`,
//! `ERROR`) from the store's event log of the watched kind. A stream subscribes while holding the store lock, so no
//! event falls between its snapshot and its live part; it answers 410 `Expired` (inside the 200
//! stream, as a real server does) when asked to resume from a resourceVersion the log no longer
//! holds; bookmarks carry the last resourceVersion delivered on this stream. Never blocks the
//! store: the lock is held only to copy events out.

use crate::error::ApiError;
use crate::registry::ResourceDef;
use crate::render::{self, Format};
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{EventKind, Store};
use bytes::Bytes;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Start {
    /// No resourceVersion or "0": synthetic ADDED events for current objects, then live.
    Now,
    /// After this resourceVersion (events from the log).
    After(u64),
}

/// A parsed watch request.
#[derive(Debug)]
pub(crate) struct WatchRequest {
    pub(crate) def: Arc<ResourceDef>,
    pub(crate) version: String,
    pub(crate) ns: Option<String>,
    pub(crate) labels: LabelSelector,
    pub(crate) fields: FieldSelector,
    pub(crate) start: Start,
    pub(crate) send_initial_events: bool,
    pub(crate) bookmarks: bool,
    pub(crate) timeout: Duration,
    pub(crate) bookmark_interval: Duration,
    pub(crate) format: Format,
}

impl WatchRequest {
    fn matches(&self, ns: &str, obj: &Value) -> bool {
        self.ns.as_deref().is_none_or(|n| n == ns)
            && self.labels.matches(obj)
            && self.fields.matches(obj)
    }

    fn line(&self, kind: &str, obj: &Arc<Value>) -> Bytes {
        let object = render::item(&self.def, &self.version, obj, self.format);
        encode(&json!({"type": kind, "object": object}))
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut md = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            md["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        encode(&json!({"type": "BOOKMARK", "object": {
            "kind": self.def.kind, "apiVersion": self.def.api_version(&self.version), "metadata": md}}))
    }
}

fn encode(v: &Value) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

fn expired(rv: u64, floor: u64) -> Bytes {
    let e = ApiError::gone(format!("too old resource version: {rv} ({floor})"));
    encode(&json!({"type": "ERROR", "object": e.to_status()}))
}

/// Starts the stream; the body ends at `timeoutSeconds`, when the client goes, or at shutdown.
pub(crate) fn stream(
    store: Arc<Mutex<Store>>,
    req: WatchRequest,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    tokio::spawn(async move {
        if let Err(()) = run(store, req, &tx, &mut shutdown).await {
            // The client went away: nothing left to do.
        }
    });
    futures::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|b| (Ok(b), rx)) },
    )
}

async fn run(
    store: Arc<Mutex<Store>>,
    req: WatchRequest,
    tx: &mpsc::Sender<Bytes>,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<(), ()> {
    let deadline = tokio::time::Instant::now() + req.timeout;
    let send = |b: Bytes| async move { tx.send(b).await.map_err(|_| ()) };
    let opened = {
        let st = crate::store::lock(&store);
        let wake = st.subscribe();
        let current = st.resource_version();
        match (req.start, req.send_initial_events) {
            // Newer than this server has ever been (a client of a previous, unpersisted instance):
            // only a fresh list can repair its cache.
            (Start::After(rv), false) if rv < st.log_floor(&req.def.storage) || rv > current => {
                Err(expired(rv, st.log_floor(&req.def.storage)))
            }
            (Start::After(rv), false) => Ok((rv, wake, vec![])),
            _ => {
                let snapshot: Vec<Arc<Value>> = st
                    .scan(&req.def.storage, req.ns.as_deref())
                    .filter(|o| req.labels.matches(o) && req.fields.matches(o))
                    .cloned()
                    .collect();
                Ok((current, wake, snapshot))
            }
        }
    };
    let (mut pos, mut wake, initial) = match opened {
        Ok(x) => x,
        Err(line) => {
            send(line).await?;
            return Ok(());
        }
    };
    wake.borrow_and_update();
    let mut last_delivered = pos;
    for o in &initial {
        send(req.line("ADDED", o)).await?;
    }
    if req.send_initial_events {
        send(req.bookmark(pos, true)).await?;
    }
    let mut ticker = tokio::time::interval(req.bookmark_interval);
    ticker.tick().await;
    loop {
        let batch = {
            let st = crate::store::lock(&store);
            wake.borrow_and_update();
            match st.events_since(&req.def.storage, pos) {
                Some(evs) => {
                    pos = st.resource_version();
                    Ok(evs)
                }
                None => Err(expired(pos, st.log_floor(&req.def.storage))),
            }
        };
        let batch = match batch {
            Ok(b) => b,
            Err(line) => {
                send(line).await?;
                return Ok(());
            }
        };
        for ev in &batch {
            let now = req.matches(&ev.ns, &ev.obj);
            let before = ev.prev.as_ref().is_some_and(|p| req.matches(&ev.ns, p));
            let kind = match ev.kind {
                EventKind::Added if now => "ADDED",
                EventKind::Modified if now && before => "MODIFIED",
                EventKind::Modified if now => "ADDED",
                EventKind::Modified if before => "DELETED",
                EventKind::Deleted if before || now => "DELETED",
                _ => continue,
            };
            if kind == "DELETED" && ev.kind == EventKind::Modified {
                send(req.line(kind, &Arc::new(left_selector(ev)))).await?;
            } else {
                send(req.line(kind, &ev.obj)).await?;
            }
            last_delivered = ev.rv;
        }
        tokio::select! {
            changed = wake.changed() => if changed.is_err() { return Ok(()) },
            _ = ticker.tick(), if req.bookmarks => send(req.bookmark(last_delivered, false)).await?,
            _ = tokio::time::sleep_until(deadline) => return Ok(()),
            _ = tx.closed() => return Err(()),
            _ = shutdown.changed() => return Ok(()),
        }
    }
}

/// What a watch whose selector an object stopped matching receives as `DELETED`: the object as
/// it last matched, at the resourceVersion of the change (kube-apiserver's watch cache sends the
/// previous state too, so a client's filter on the labels it selected by still holds).
fn left_selector(ev: &crate::store::Event) -> Value {
    let mut obj = ev.prev.as_deref().unwrap_or(&ev.obj).clone();
    crate::meta::metadata_mut(&mut obj)
        .insert("resourceVersion".into(), Value::String(ev.rv.to_string()));
    obj
}
