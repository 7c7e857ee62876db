//! Deletion and garbage collection: finalizers (`deletionTimestamp` first, removal when the last
//! finalizer goes), propagation policies (Background, Foreground, Orphan) through
//! `ownerReferences`, namespace termination, and CRD clean-up. Runs synchronously inside the
//! store lock, so dependents disappear in the same request as their owner.

use super::{Store, WriteCtx};
use crate::error::ApiError;
use crate::meta;
use crate::registry::ResourceDef;
use crate::selector::{FieldSelector, LabelSelector};
use serde_json::{Value, json};
use std::sync::Arc;

const FOREGROUND: &str = "foregroundDeletion";

/// Options of a delete (`DeleteOptions` body and query parameters).
#[derive(Debug, Default, Clone)]
pub(crate) struct DeleteOptions {
    pub(crate) propagation: Option<String>,
    pub(crate) uid: Option<String>,
    pub(crate) resource_version: Option<String>,
    pub(crate) dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Policy {
    Background,
    Foreground,
    Orphan,
}

impl DeleteOptions {
    fn policy(&self) -> Result<Policy, ApiError> {
        match self.propagation.as_deref() {
            None | Some("Background") => Ok(Policy::Background),
            Some("Foreground") => Ok(Policy::Foreground),
            Some("Orphan") => Ok(Policy::Orphan),
            Some(other) => Err(ApiError::bad_request(format!(
                "unknown propagationPolicy {other:?}"
            ))),
        }
    }
}

type Ref = (String, String, String);

/// An object as deletion starts: `deletionTimestamp`, a zero grace period (no namespace has
/// one), a generation bump where the kind keeps one, a namespace `Terminating`.
fn mark_deleting(def: &ResourceDef, obj: &Value) -> Value {
    let mut updated = obj.clone();
    let is_namespace = def.storage == "namespaces";
    let md = meta::metadata_mut(&mut updated);
    md.insert("deletionTimestamp".into(), Value::String(meta::now()));
    if !is_namespace {
        md.insert("deletionGracePeriodSeconds".into(), json!(0));
    }
    if def.tracks_generation() {
        md.insert("generation".into(), json!(meta::generation(obj) + 1));
    }
    if is_namespace {
        updated["status"] = json!({"phase": "Terminating"});
    }
    updated
}

impl Store {
    pub(crate) fn delete(
        &mut self,
        ctx: &WriteCtx,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Arc<Value>, ApiError> {
        let def = ctx.def.clone();
        let obj = self.get(&def, ns, name)?;
        if opts
            .uid
            .as_deref()
            .is_some_and(|u| Some(u) != meta::uid(&obj))
        {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Precondition failed: UID in precondition: {}, UID in object meta: {}",
                    opts.uid.as_deref().unwrap_or(""),
                    meta::uid(&obj).unwrap_or("")
                ),
            ));
        }
        if opts
            .resource_version
            .as_deref()
            .is_some_and(|rv| Some(rv) != meta::resource_version(&obj))
        {
            return Err(ApiError::conflict(&def.group, &def.plural, name));
        }
        let policy = opts.policy()?;
        if opts.dry_run {
            return Ok(obj);
        }
        Ok(self.delete_object(&def, ns, name, policy).unwrap_or(obj))
    }

    /// Deletes every matching object of a collection; returns the deleted objects.
    pub(crate) fn delete_collection(
        &mut self,
        ctx: &WriteCtx,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        opts: &DeleteOptions,
    ) -> Result<Vec<Arc<Value>>, ApiError> {
        let def = ctx.def.clone();
        let policy = opts.policy()?;
        let targets: Vec<(String, String)> = self
            .scan(&def.storage, ns)
            .filter(|o| labels.matches(o) && fields.matches(o))
            .map(|o| {
                (
                    meta::namespace(o).unwrap_or("").to_string(),
                    meta::name(o).unwrap_or("").to_string(),
                )
            })
            .collect();
        let mut out = Vec::new();
        for (ns, name) in targets {
            if opts.dry_run {
                out.extend(self.get_opt(&def.storage, &ns, &name));
            } else if let Some(o) = self.delete_object(&def, &ns, &name, policy) {
                out.push(o);
            }
        }
        Ok(out)
    }

    fn delete_object(
        &mut self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        policy: Policy,
    ) -> Option<Arc<Value>> {
        let obj = self.get_opt(&def.storage, ns, name)?;
        let uid = meta::uid(&obj).unwrap_or("").to_string();
        if policy == Policy::Orphan {
            for dep in self.dependents(&uid) {
                self.drop_owner_ref(&dep, &uid);
            }
        }
        let mut fins = meta::finalizers(&obj);
        let dependents = self.dependents(&uid);
        if policy == Policy::Foreground
            && !dependents.is_empty()
            && !fins.iter().any(|f| f == FOREGROUND)
        {
            fins.push(FOREGROUND.into());
        }
        let is_namespace = def.storage == "namespaces";
        // A namespace is always marked Terminating first (its `kubernetes` finalizer), so the
        // delete answers with that state and watchers see it, even when it then goes at once.
        let must_wait = !fins.is_empty() || is_namespace;
        if !must_wait {
            if def.storage == "pods" {
                // A pod goes through graceful deletion even when it goes at once (no node
                // holds it): its last state, in the answer and the DELETED event, is marked.
                let marked = Arc::new(mark_deleting(def, &obj));
                self.objects
                    .entry(def.storage.clone())
                    .or_default()
                    .insert((ns.to_string(), name.to_string()), marked);
            }
            let removed = self.commit_remove(&def.storage, ns, name)?;
            self.collect_garbage(&def.storage, &removed);
            return Some(removed);
        }
        let mut updated = Value::clone(&obj);
        let mut changed = false;
        if !meta::is_deleting(&obj) {
            updated = mark_deleting(def, &obj);
            changed = true;
        }
        if meta::finalizers(&obj) != fins {
            meta::set_finalizers(&mut updated, &fins);
            changed = true;
        }
        let stored = if changed {
            self.commit_put(&def.storage, updated, Some(obj))
        } else {
            obj
        };
        if policy == Policy::Foreground {
            for (storage, dns, dname) in dependents {
                if let Some(ddef) = self.registry.by_key(&storage).cloned() {
                    self.delete_object(&ddef, &dns, &dname, Policy::Foreground);
                }
            }
        }
        if is_namespace {
            self.terminate_namespace(name);
        }
        if is_namespace {
            return Some(stored);
        }
        self.get_opt(&def.storage, ns, name).or(Some(stored))
    }

    /// Deletes every object in a terminating namespace; the namespace goes once it is empty.
    fn terminate_namespace(&mut self, ns: &str) {
        let defs: Vec<Arc<ResourceDef>> = self
            .registry
            .all()
            .filter(|d| d.namespaced && d.storage == d.key())
            .cloned()
            .collect();
        for d in defs {
            let names: Vec<String> = self
                .scan(&d.storage, Some(ns))
                .filter(|o| !meta::is_deleting(o))
                .filter_map(|o| meta::name(o).map(str::to_string))
                .collect();
            for n in names {
                self.delete_object(&d, ns, &n, Policy::Background);
            }
        }
        self.finish_namespace(ns);
    }

    fn finish_namespace(&mut self, ns: &str) {
        let Some(nsobj) = self.get_opt("namespaces", "", ns) else {
            return;
        };
        if meta::is_deleting(&nsobj)
            && meta::finalizers(&nsobj).is_empty()
            && !self.namespace_has_content(ns)
            && let Some(removed) = self.commit_remove("namespaces", "", ns)
        {
            self.collect_garbage("namespaces", &removed);
        }
    }

    fn drop_owner_ref(&mut self, dep: &Ref, owner_uid: &str) {
        let Some(obj) = self.get_opt(&dep.0, &dep.1, &dep.2) else {
            return;
        };
        let mut updated = Value::clone(&obj);
        let md = meta::metadata_mut(&mut updated);
        if let Some(Value::Array(refs)) = md.get_mut("ownerReferences") {
            refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid));
            if refs.is_empty() {
                md.remove("ownerReferences");
            }
        }
        self.commit_put(&dep.0, updated, Some(obj));
    }

    /// Runs after an object is gone for good: its dependents are collected (or lose the dangling
    /// reference when another owner remains), owners waiting in foreground deletion are
    /// released, a terminating namespace finishes, a removed CRD takes its objects along.
    pub(super) fn collect_garbage(&mut self, storage: &str, removed: &Value) {
        let uid = meta::uid(removed).unwrap_or("").to_string();
        for dep in self.dependents(&uid) {
            let Some(obj) = self.get_opt(&dep.0, &dep.1, &dep.2) else {
                continue;
            };
            let live_owner = meta::owner_uids(&obj)
                .iter()
                .any(|u| u != &uid && self.location(u).is_some());
            if live_owner {
                self.drop_owner_ref(&dep, &uid);
            } else if let Some(def) = self.registry.by_key(&dep.0).cloned() {
                self.delete_object(&def, &dep.1, &dep.2, Policy::Background);
            }
        }
        for owner in meta::owner_uids(removed) {
            let Some(loc) = self.location(&owner).cloned() else {
                continue;
            };
            let Some(o) = self.get_opt(&loc.storage, &loc.ns, &loc.name) else {
                continue;
            };
            let fins = meta::finalizers(&o);
            if meta::is_deleting(&o)
                && fins.iter().any(|f| f == FOREGROUND)
                && self.dependents(&owner).is_empty()
            {
                let rest: Vec<String> = fins.into_iter().filter(|f| f != FOREGROUND).collect();
                let mut updated = Value::clone(&o);
                meta::set_finalizers(&mut updated, &rest);
                if rest.is_empty() {
                    self.objects
                        .entry(loc.storage.clone())
                        .or_default()
                        .insert((loc.ns.clone(), loc.name.clone()), Arc::new(updated));
                    if let Some(gone) = self.commit_remove(&loc.storage, &loc.ns, &loc.name) {
                        self.collect_garbage(&loc.storage, &gone);
                    }
                } else {
                    self.commit_put(&loc.storage, updated, Some(o));
                }
            }
        }
        self.forget_owner(&uid);
        if storage == "customresourcedefinitions.apiextensions.k8s.io" {
            self.on_crd_removed(removed);
        }
        if let Some(ns) = meta::namespace(removed) {
            let ns = ns.to_string();
            self.finish_namespace(&ns);
        }
    }
}
