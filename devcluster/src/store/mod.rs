//! The store: every object behind one lock, one global resourceVersion counter, a bounded log of
//! change events per resource kind for watches (as kube-apiserver keeps a watch cache per
//! resource, so a quiet kind's watch can resume however busy the others are; bounded in count and
//! in age, as etcd's history is by the API server's periodic compaction), and a wake-up channel watchers subscribe to while holding the lock
//! (so nothing is lost between a snapshot and the live stream). Writes that change nothing emit
//! nothing. This module owns reads and the commit step; `write`, `delete` and `kinds` own the
//! write rules. It never does I/O and never awaits while holding the lock.

mod delete;
mod kinds;
mod write;

pub(crate) use delete::DeleteOptions;
pub(crate) use write::{FieldValidation, WriteCtx};

use crate::error::ApiError;
use crate::meta;
use crate::registry::{Registry, ResourceDef};
use crate::selector::{FieldSelector, LabelSelector};
use base64::Engine as _;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Locks the store. A panic while it was held cannot leave a half-applied write behind (every
/// write computes its result before committing), so a poisoned lock is taken over, not fatal.
pub(crate) fn lock(store: &std::sync::Mutex<Store>) -> std::sync::MutexGuard<'_, Store> {
    store
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The kind of a change event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    Added,
    Modified,
    Deleted,
}

/// One change, as retained for watches.
#[derive(Debug)]
pub(crate) struct Event {
    pub(crate) rv: u64,
    pub(crate) storage: String,
    pub(crate) ns: String,
    pub(crate) kind: EventKind,
    pub(crate) obj: Arc<Value>,
    /// The object before the change (selectors that stop matching turn MODIFIED into DELETED).
    pub(crate) prev: Option<Arc<Value>>,
}

type Key = (String, String);

/// One resource kind's retained change events, each with when it was recorded.
#[derive(Debug)]
struct KindLog {
    events: VecDeque<(Instant, Arc<Event>)>,
    /// Every event of this kind with a resourceVersion above this one is still in `events`.
    floor: u64,
}

/// Where an object lives, by uid (for garbage collection).
#[derive(Debug, Clone)]
pub(crate) struct Location {
    pub(crate) storage: String,
    pub(crate) ns: String,
    pub(crate) name: String,
}

/// A page of a list.
#[derive(Debug)]
pub(crate) struct ListPage {
    pub(crate) items: Vec<Arc<Value>>,
    pub(crate) rv: u64,
    pub(crate) continue_token: Option<String>,
    pub(crate) remaining: Option<u64>,
}

/// Parameters of a list.
#[derive(Debug, Default)]
pub(crate) struct ListParams {
    pub(crate) ns: Option<String>,
    pub(crate) labels: LabelSelector,
    pub(crate) fields: FieldSelector,
    pub(crate) limit: Option<usize>,
    pub(crate) continue_token: Option<String>,
}

/// The in-memory state.
#[derive(Debug)]
pub(crate) struct Store {
    rv: u64,
    pub(crate) registry: Registry,
    objects: HashMap<String, BTreeMap<Key, Arc<Value>>>,
    uids: HashMap<String, Location>,
    /// owner uid → objects with an ownerReference to it (may hold stale entries; readers check).
    owned: HashMap<String, BTreeSet<(String, String, String)>>,
    /// storage → its kind's retained events.
    logs: HashMap<String, KindLog>,
    /// The resourceVersion of the last compaction (or restore): the floor of every kind's log.
    compacted: u64,
    /// Events retained per kind, and for how long at most.
    log_capacity: usize,
    log_max_age: Duration,
    notify: watch::Sender<u64>,
    /// Bumped on every commit; the state-file writer compares it.
    pub(crate) generation: u64,
    next_service_ip: u32,
}

impl Store {
    pub(crate) fn new(log_capacity: usize, log_max_age: Duration) -> Self {
        let (notify, _) = watch::channel(0);
        let mut s = Self {
            rv: 0,
            registry: Registry::default(),
            objects: HashMap::new(),
            uids: HashMap::new(),
            owned: HashMap::new(),
            logs: HashMap::new(),
            compacted: 0,
            log_capacity: log_capacity.max(1),
            log_max_age,
            notify,
            generation: 0,
            next_service_ip: 1,
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            if let Some(def) = s.registry.find("", "v1", "namespaces").cloned() {
                let mut ctx = WriteCtx::system(&def);
                // Fresh store: these names are free and valid, so creation cannot fail.
                let _ = s.create(&mut ctx, None, obj);
            }
        }
        s
    }

    pub(crate) fn resource_version(&self) -> u64 {
        self.rv
    }

    /// Watches of `storage` can resume from any resourceVersion at or above this one.
    pub(crate) fn log_floor(&self, storage: &str) -> u64 {
        self.logs.get(storage).map_or(self.compacted, |l| l.floor)
    }

    /// A receiver woken on every commit; subscribe while holding the lock.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.notify.subscribe()
    }

    /// Forgets the retained events: watches from any earlier resourceVersion get 410 Gone.
    pub(crate) fn compact(&mut self) {
        self.logs.clear();
        self.compacted = self.rv;
    }

    /// Events of `storage` after `rv`, or `None` when they are no longer retained.
    pub(crate) fn events_since(&self, storage: &str, rv: u64) -> Option<Vec<Arc<Event>>> {
        if rv < self.log_floor(storage) {
            return None;
        }
        let Some(log) = self.logs.get(storage) else {
            return Some(vec![]);
        };
        let start = log.events.partition_point(|(_, e)| e.rv <= rv);
        Some(log.events.range(start..).map(|(_, e)| e.clone()).collect())
    }

    pub(crate) fn get(
        &self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
    ) -> Result<Arc<Value>, ApiError> {
        self.objects
            .get(&def.storage)
            .and_then(|m| m.get(&(ns.to_string(), name.to_string())))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&def.group, &def.plural, name))
    }

    pub(crate) fn get_opt(&self, storage: &str, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.objects
            .get(storage)
            .and_then(|m| m.get(&(ns.to_string(), name.to_string())))
            .cloned()
    }

    /// Objects of a storage, optionally in one namespace, in (namespace, name) order.
    pub(crate) fn scan<'a>(
        &'a self,
        storage: &str,
        ns: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Arc<Value>> + 'a {
        let map = self.objects.get(storage);
        map.into_iter().flat_map(move |m| {
            let range: Box<dyn Iterator<Item = (&Key, &Arc<Value>)>> = match ns {
                Some(ns) => Box::new(
                    m.range((ns.to_string(), String::new())..)
                        .take_while(move |(k, _)| k.0 == ns),
                ),
                None => Box::new(m.iter()),
            };
            range.map(|(_, v)| v)
        })
    }

    pub(crate) fn list(&self, def: &ResourceDef, p: &ListParams) -> Result<ListPage, ApiError> {
        let (list_rv, after) = match &p.continue_token {
            Some(t) => decode_continue(t)?,
            None => (self.rv, None),
        };
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let mut items = Vec::new();
        let mut continue_token = None;
        let mut remaining = 0u64;
        let matches = |o: &Arc<Value>| p.labels.matches(o) && p.fields.matches(o);
        // With selectors the rest is not counted (as on a real server): stop at the first extra.
        let selective = !p.labels.is_empty() || !p.fields.is_empty();
        let ns = p.ns.clone();
        let start = match (&after, &ns) {
            (Some(a), _) => Excluded(a.clone()),
            (None, Some(ns)) => Included((ns.clone(), String::new())),
            (None, None) => Unbounded,
        };
        let iter = self
            .objects
            .get(&def.storage)
            .into_iter()
            .flat_map(|m| m.range((start.clone(), Unbounded)))
            .take_while(|(k, _)| ns.as_ref().is_none_or(|n| k.0 == *n));
        for (_, o) in iter {
            if !matches(o) {
                continue;
            }
            if p.limit.is_some_and(|l| l > 0 && items.len() >= l) {
                remaining += 1;
                if selective {
                    break;
                }
                continue;
            }
            items.push(o.clone());
        }
        if remaining > 0
            && let Some(last) = items.last()
        {
            let k = (
                meta::namespace(last).unwrap_or("").to_string(),
                meta::name(last).unwrap_or("").to_string(),
            );
            continue_token = Some(encode_continue(list_rv, &k));
        }
        Ok(ListPage {
            items,
            rv: list_rv,
            continue_token,
            remaining: (remaining > 0 && !selective).then_some(remaining),
        })
    }

    /// Adds or replaces an object, stamping the next resourceVersion, and records the event.
    fn commit_put(
        &mut self,
        storage: &str,
        mut obj: Value,
        prev: Option<Arc<Value>>,
    ) -> Arc<Value> {
        self.rv += 1;
        let md = meta::metadata_mut(&mut obj);
        md.insert("resourceVersion".into(), Value::String(self.rv.to_string()));
        let ns = meta::namespace(&obj).unwrap_or("").to_string();
        let name = meta::name(&obj).unwrap_or("").to_string();
        let obj = Arc::new(obj);
        if let Some(uid) = meta::uid(&obj) {
            self.uids.insert(
                uid.to_string(),
                Location {
                    storage: storage.into(),
                    ns: ns.clone(),
                    name: name.clone(),
                },
            );
        }
        if let Some(p) = &prev {
            self.unindex_owners(storage, &ns, &name, p);
        }
        self.index_owners(storage, &ns, &name, &obj);
        self.objects
            .entry(storage.to_string())
            .or_default()
            .insert((ns.clone(), name), obj.clone());
        let kind = if prev.is_some() {
            EventKind::Modified
        } else {
            EventKind::Added
        };
        self.record(Event {
            rv: self.rv,
            storage: storage.into(),
            ns,
            kind,
            obj: obj.clone(),
            prev,
        });
        obj
    }

    /// Removes an object for good and records the DELETED event (the object carries the
    /// resourceVersion of its deletion, as on a real server).
    fn commit_remove(&mut self, storage: &str, ns: &str, name: &str) -> Option<Arc<Value>> {
        let prev = self
            .objects
            .get_mut(storage)?
            .remove(&(ns.to_string(), name.to_string()))?;
        self.rv += 1;
        if let Some(uid) = meta::uid(&prev) {
            self.uids.remove(uid);
        }
        self.unindex_owners(storage, ns, name, &prev);
        let mut last = Value::clone(&prev);
        meta::metadata_mut(&mut last)
            .insert("resourceVersion".into(), Value::String(self.rv.to_string()));
        let obj = Arc::new(last);
        self.record(Event {
            rv: self.rv,
            storage: storage.into(),
            ns: ns.into(),
            kind: EventKind::Deleted,
            obj: obj.clone(),
            prev: Some(prev),
        });
        Some(obj)
    }

    fn record(&mut self, ev: Event) {
        let compacted = self.compacted;
        let written = ev.storage.clone();
        let log = self.logs.entry(written.clone()).or_insert_with(|| KindLog {
            events: VecDeque::new(),
            floor: compacted,
        });
        let now = Instant::now();
        log.events.push_back((now, Arc::new(ev)));
        // Every kind's log drops what is too old, the written kind's also what is too many.
        let max_age = self.log_max_age;
        let expired = |at: Instant| now.duration_since(at) > max_age;
        for (storage, log) in &mut self.logs {
            let capacity = if *storage == written {
                self.log_capacity
            } else {
                usize::MAX
            };
            while log
                .events
                .front()
                .is_some_and(|(at, _)| expired(*at) || log.events.len() > capacity)
            {
                if let Some((_, old)) = log.events.pop_front() {
                    log.floor = old.rv;
                }
            }
        }
        self.generation += 1;
        self.notify.send_replace(self.rv);
    }

    fn index_owners(&mut self, storage: &str, ns: &str, name: &str, obj: &Value) {
        for owner in meta::owner_uids(obj) {
            self.owned.entry(owner).or_default().insert((
                storage.to_string(),
                ns.to_string(),
                name.to_string(),
            ));
        }
    }

    fn unindex_owners(&mut self, storage: &str, ns: &str, name: &str, obj: &Value) {
        for owner in meta::owner_uids(obj) {
            if let Some(set) = self.owned.get_mut(&owner) {
                set.remove(&(storage.to_string(), ns.to_string(), name.to_string()));
                if set.is_empty() {
                    self.owned.remove(&owner);
                }
            }
        }
    }

    /// Forgets the dependents index of an owner that is gone (after its garbage collection).
    pub(crate) fn forget_owner(&mut self, uid: &str) {
        self.owned.remove(uid);
    }

    /// (storage, namespace, name) of every object with an ownerReference to `uid`.
    pub(crate) fn dependents(&self, uid: &str) -> Vec<(String, String, String)> {
        let Some(set) = self.owned.get(uid) else {
            return vec![];
        };
        set.iter()
            .filter(|(s, ns, n)| {
                self.get_opt(s, ns, n)
                    .is_some_and(|o| meta::owner_uids(&o).iter().any(|u| u == uid))
            })
            .cloned()
            .collect()
    }

    pub(crate) fn location(&self, uid: &str) -> Option<&Location> {
        self.uids.get(uid)
    }

    /// Every object, for the state file: (storage, object).
    pub(crate) fn snapshot(&self) -> (u64, Vec<(String, Arc<Value>)>) {
        let mut out = Vec::new();
        for (storage, m) in &self.objects {
            out.extend(m.values().map(|o| (storage.clone(), o.clone())));
        }
        (self.rv, out)
    }

    /// Replaces the state with a loaded snapshot (CRDs first so their kinds are registered).
    /// Watches from before the load get 410.
    pub(crate) fn restore(&mut self, rv: u64, objects: Vec<(String, Value)>) -> Result<(), String> {
        self.objects.clear();
        self.uids.clear();
        self.owned.clear();
        self.registry = Registry::default();
        let crd_storage = "customresourcedefinitions.apiextensions.k8s.io";
        for (storage, obj) in &objects {
            if storage == crd_storage {
                let def = crate::registry::from_crd(obj)?;
                self.registry.insert(def);
            }
        }
        for (storage, obj) in objects {
            let ns = meta::namespace(&obj).unwrap_or("").to_string();
            let name = meta::name(&obj).unwrap_or("").to_string();
            if let Some(uid) = meta::uid(&obj) {
                self.uids.insert(
                    uid.to_string(),
                    Location {
                        storage: storage.clone(),
                        ns: ns.clone(),
                        name: name.clone(),
                    },
                );
            }
            self.index_owners(&storage, &ns, &name, &obj);
            self.objects
                .entry(storage)
                .or_default()
                .insert((ns, name), Arc::new(obj));
        }
        self.rv = rv;
        self.logs.clear();
        self.compacted = rv;
        self.notify.send_replace(rv);
        Ok(())
    }

    fn next_service_ip(&mut self) -> String {
        let n = self.next_service_ip;
        self.next_service_ip += 1;
        format!("10.96.{}.{}", (n >> 8) & 0xff, n & 0xff)
    }
}

fn encode_continue(rv: u64, after: &Key) -> String {
    let raw = json!({"rv": rv, "ns": after.0, "name": after.1}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_continue(token: &str) -> Result<(u64, Option<Key>), ApiError> {
    let bad = || ApiError::bad_request("continue key is not valid");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v.get("rv").and_then(Value::as_u64).ok_or_else(bad)?;
    let ns = v
        .get("ns")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let name = v
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    Ok((rv, Some((ns, name))))
}
