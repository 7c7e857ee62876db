//! Server-side apply and field ownership: `metadata.managedFields` entries per field manager,
//! ownership transfer on ordinary updates, conflicts between appliers (409 unless `force`), and
//! removal of fields a manager stops applying when no other manager owns them.

use super::fields::{self, FieldSet, PathEl, Scope};
use crate::error::ApiError;
use crate::meta;
use crate::registry::ListKind;
use serde_json::{Map, Value, json};

#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: Option<String>,
    set: FieldSet,
}

/// What a write is: who makes it, through which version and subresource.
#[derive(Clone, Copy)]
pub(crate) struct Writer<'a> {
    pub(crate) manager: &'a str,
    pub(crate) api_version: &'a str,
    pub(crate) scope: Scope,
    pub(crate) list_kind: &'a dyn Fn(&[&str]) -> ListKind,
}

impl std::fmt::Debug for Writer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("manager", &self.manager)
            .field("scope", &self.scope)
            .finish()
    }
}

impl Writer<'_> {
    fn subresource(&self) -> Option<String> {
        matches!(self.scope, Scope::Status).then(|| "status".to_string())
    }

    fn is_mine(&self, e: &Entry, operation: &str) -> bool {
        e.manager == self.manager && e.operation == operation && e.subresource == self.subresource()
    }
}

fn read_entries(obj: &Value) -> Vec<Entry> {
    let Some(list) = meta::metadata(obj)
        .get("managedFields")
        .and_then(Value::as_array)
    else {
        return vec![];
    };
    let s = |e: &Value, k: &str| {
        e.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    list.iter()
        .map(|e| Entry {
            manager: s(e, "manager"),
            operation: s(e, "operation"),
            api_version: s(e, "apiVersion"),
            time: s(e, "time"),
            subresource: e
                .get("subresource")
                .and_then(Value::as_str)
                .map(str::to_string),
            set: e
                .get("fieldsV1")
                .map(fields::from_fields_v1)
                .unwrap_or_default(),
        })
        .collect()
}

fn write_entries(obj: &mut Value, entries: Vec<Entry>) {
    let list: Vec<Value> = entries
        .into_iter()
        .filter(|e| !e.set.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields::to_fields_v1(&e.set),
            });
            if let Some(s) = e.subresource {
                v["subresource"] = Value::String(s);
            }
            v
        })
        .collect();
    let md = meta::metadata_mut(obj);
    if list.is_empty() {
        md.remove("managedFields");
    } else {
        md.insert("managedFields".into(), Value::Array(list));
    }
}

/// Records an ordinary write (create, update, merge/JSON/strategic patch): the writer takes
/// ownership of every field it changed, and removed fields leave every set. `new` gets the
/// resulting `managedFields`; those it carried in are ignored.
pub(crate) fn record_update(old: Option<&Value>, new: &mut Value, w: &Writer<'_>) {
    let mut entries = old.map(read_entries).unwrap_or_default();
    let new_set = fields::field_set(new, w.scope, w.list_kind);
    let old_set = old
        .map(|o| fields::field_set(o, w.scope, w.list_kind))
        .unwrap_or_default();
    let changed: FieldSet = new_set
        .iter()
        .filter(|p| old.and_then(|o| fields::value_at(o, p)) != fields::value_at(new, p))
        .cloned()
        .collect();
    let removed: FieldSet = old_set.difference(&new_set).cloned().collect();
    if changed.is_empty() && removed.is_empty() {
        write_entries(new, entries);
        return;
    }
    for e in &mut entries {
        let mine = w.is_mine(e, "Update");
        e.set
            .retain(|p| !removed.contains(p) && (!changed.contains(p) || mine));
    }
    let now = meta::now();
    match entries.iter_mut().find(|e| w.is_mine(e, "Update")) {
        Some(e) => {
            e.set.extend(changed);
            e.time = now;
            e.api_version = w.api_version.to_string();
        }
        None if !changed.is_empty() => entries.push(Entry {
            manager: w.manager.to_string(),
            operation: "Update".into(),
            api_version: w.api_version.to_string(),
            time: now,
            subresource: w.subresource(),
            set: changed,
        }),
        None => {}
    }
    write_entries(new, entries);
}

/// Server-side apply of `config` onto `live` (the current object, or a stub when creating).
pub(crate) fn apply(
    live: &mut Value,
    config: &Value,
    force: bool,
    w: &Writer<'_>,
) -> Result<(), ApiError> {
    let mut entries = read_entries(live);
    let new_set = fields::field_set(config, w.scope, w.list_kind);
    let mut conflicts = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if e.manager == w.manager {
            continue;
        }
        for p in e.set.intersection(&new_set) {
            // Map-list items and set values are owned jointly; only values can disagree.
            if matches!(p.last(), Some(PathEl::Field(_)))
                && fields::value_at(live, p) != fields::value_at(config, p)
            {
                conflicts.push((i, p.clone()));
            }
        }
    }
    if !conflicts.is_empty() {
        if !force {
            let named: Vec<(String, String)> = conflicts
                .iter()
                .map(|(i, p)| (entries[*i].manager.clone(), fields::display(p)))
                .collect();
            return Err(ApiError::apply_conflict(&named));
        }
        for (i, p) in &conflicts {
            entries[*i].set.remove(p);
        }
    }
    let previous = entries
        .iter()
        .find(|e| w.is_mine(e, "Apply"))
        .map(|e| e.set.clone())
        .unwrap_or_default();
    merge_config(live, config, w);
    let others: Vec<&Entry> = entries.iter().filter(|e| !w.is_mine(e, "Apply")).collect();
    let owned_by_others = |p: &[PathEl]| {
        others
            .iter()
            .any(|e| e.set.iter().any(|q| q.starts_with(p)))
    };
    let keep = |p: &[PathEl]| new_set.iter().any(|q| q.as_slice() == p) || owned_by_others(p);
    for p in previous.difference(&new_set) {
        if !owned_by_others(p) {
            fields::remove_at(live, p, &keep);
        }
    }
    let now = meta::now();
    match entries.iter_mut().find(|e| w.is_mine(e, "Apply")) {
        Some(e) => {
            if e.set != new_set {
                e.time = now;
            }
            e.set = new_set;
            e.api_version = w.api_version.to_string();
        }
        None => entries.push(Entry {
            manager: w.manager.to_string(),
            operation: "Apply".into(),
            api_version: w.api_version.to_string(),
            time: now,
            subresource: w.subresource(),
            set: new_set,
        }),
    }
    write_entries(live, entries);
    Ok(())
}

fn merge_config(live: &mut Value, config: &Value, w: &Writer<'_>) {
    let Some(cfg) = config.as_object() else {
        return;
    };
    if !live.is_object() {
        *live = Value::Object(Map::new());
    }
    for (k, v) in cfg {
        let tracked = fields::tracked_root_field(k, w.scope);
        if !tracked {
            continue;
        }
        if k == "metadata" {
            let Some(md) = v.as_object() else { continue };
            let live_md = meta::metadata_mut(live);
            for mk in ["labels", "annotations", "finalizers", "ownerReferences"] {
                if let Some(mv) = md.get(mk) {
                    let slot = live_md.entry(mk).or_insert(Value::Null);
                    merge_value(slot, mv, &mut vec!["metadata", mk], w.list_kind);
                }
            }
            continue;
        }
        let slot = live
            .as_object_mut()
            .expect("made an object above")
            .entry(k.clone())
            .or_insert(Value::Null);
        merge_value(slot, v, &mut vec![k.as_str()], w.list_kind);
    }
}

fn merge_value<'c>(
    live: &mut Value,
    config: &'c Value,
    names: &mut Vec<&'c str>,
    list_kind: &dyn Fn(&[&str]) -> ListKind,
) {
    match config {
        Value::Object(m) => {
            if !live.is_object() {
                *live = Value::Object(Map::new());
            }
            let l = live.as_object_mut().expect("made an object above");
            for (k, v) in m {
                if v.is_null() {
                    l.remove(k);
                    continue;
                }
                names.push(k.as_str());
                merge_value(
                    l.entry(k.clone()).or_insert(Value::Null),
                    v,
                    names,
                    list_kind,
                );
                names.pop();
            }
        }
        Value::Array(items) => {
            let kind = list_kind(names);
            // A set or map list is merged into, even where none was: so a new item is built
            // as an existing one is merged (a `null` field of the configuration left out both
            // times), and applying the same configuration again changes nothing.
            if !matches!(kind, ListKind::Atomic) && !live.is_array() {
                *live = Value::Array(Vec::new());
            }
            match (kind, live.as_array_mut()) {
                (ListKind::Set, Some(current)) => {
                    for i in items {
                        if !current.contains(i) {
                            current.push(i.clone());
                        }
                    }
                }
                (ListKind::Map(keys), Some(current)) => {
                    for item in items {
                        let same = |c: &Value| keys.iter().all(|k| c.get(k) == item.get(k));
                        match current.iter_mut().find(|c| same(c)) {
                            Some(c) => merge_value(c, item, names, list_kind),
                            None => {
                                let mut fresh = Value::Null;
                                merge_value(&mut fresh, item, names, list_kind);
                                current.push(fresh);
                            }
                        }
                    }
                }
                _ => *live = config.clone(),
            }
        }
        other => *live = other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lists(path: &[&str]) -> ListKind {
        match path.last().copied() {
            Some("containers") => ListKind::Map(vec!["name".into()]),
            _ => ListKind::Atomic,
        }
    }

    fn writer(manager: &str) -> Writer<'_> {
        Writer {
            manager,
            api_version: "v1",
            scope: Scope::Main {
                exclude_status: true,
            },
            list_kind: &lists,
        }
    }

    #[test]
    fn a_null_field_of_a_new_list_item_is_left_out_as_on_every_later_apply() {
        // Found by the devcluster_patch fuzz target: the first apply kept `"image": null` in a
        // container it added, the second removed it.
        let mut live = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "app", "image": "app:1"}]}});
        let config = json!({"spec": {"containers": [{"name": "proxy", "image": null}]}});
        apply(&mut live, &config, true, &writer("one")).expect("first apply");
        assert_eq!(live["spec"]["containers"][1], json!({"name": "proxy"}));
        let once = live.clone();
        apply(&mut live, &config, false, &writer("one")).expect("second apply");
        assert_eq!(live, once);
        // The same where the list did not exist yet.
        let mut empty = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "q"}});
        apply(&mut empty, &config, true, &writer("one")).expect("apply");
        assert_eq!(empty["spec"]["containers"], json!([{"name": "proxy"}]));
    }

    #[test]
    fn dropped_fields_are_removed_and_conflicts_reported() {
        let mut live = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        apply(
            &mut live,
            &json!({"data": {"a": "1", "b": "2"}}),
            false,
            &writer("one"),
        )
        .expect("first apply");
        apply(
            &mut live,
            &json!({"data": {"a": "1"}}),
            false,
            &writer("one"),
        )
        .expect("second apply");
        assert_eq!(live["data"], json!({"a": "1"}));
        // Same value: shared ownership, no conflict.
        apply(
            &mut live,
            &json!({"data": {"a": "1"}}),
            false,
            &writer("two"),
        )
        .expect("shared");
        let err = apply(
            &mut live,
            &json!({"data": {"a": "9"}}),
            false,
            &writer("two"),
        )
        .expect_err("conflict");
        assert_eq!(err.code, 409);
        assert!(
            err.message.contains("conflict with \"one\": .data.a"),
            "{}",
            err.message
        );
        apply(
            &mut live,
            &json!({"data": {"a": "9"}}),
            true,
            &writer("two"),
        )
        .expect("forced");
        assert_eq!(live["data"]["a"], json!("9"));
        // `one` lost .data.a; dropping it no longer removes the field now owned by `two`.
        apply(&mut live, &json!({"data": {}}), false, &writer("one")).expect("drop");
        assert_eq!(live["data"]["a"], json!("9"));
    }

    #[test]
    fn updates_take_ownership() {
        let old = json!({"metadata": {"name": "c"}, "data": {"a": "1"}});
        let mut new = old;
        record_update(None, &mut new, &writer("creator"));
        let old = new.clone();
        new["data"]["a"] = json!("2");
        record_update(Some(&old), &mut new, &writer("editor"));
        let mf = new["metadata"]["managedFields"]
            .as_array()
            .expect("entries")
            .clone();
        assert_eq!(mf.len(), 1, "{mf:?}");
        assert_eq!(mf[0]["manager"], json!("editor"));
    }
}
