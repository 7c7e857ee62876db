//! Conversion between the two Event APIs that share storage: objects are stored in the core
//! `v1` shape and presented as `events.k8s.io/v1` on that group's endpoints. Every other
//! resource is stored as written and served with only `apiVersion` rewritten (conversion
//! strategy `None`). Never changes anything but the field names of Events.

use crate::registry::ResourceDef;
use serde_json::{Map, Value};
use std::sync::Arc;

const RENAMES: [(&str, &str); 7] = [
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
];

fn rename(obj: &mut Value, from_core: bool) {
    let Some(m) = obj.as_object_mut() else { return };
    let mut moved = Map::new();
    for (core, new) in RENAMES {
        let (from, to) = if from_core { (core, new) } else { (new, core) };
        if let Some(v) = m.remove(from) {
            moved.insert(to.to_string(), v);
        }
    }
    m.extend(moved);
}

fn is_events_group(def: &ResourceDef) -> bool {
    def.group == "events.k8s.io" && def.plural == "events"
}

/// The object as served at `version` of `def`.
pub(crate) fn present(def: &ResourceDef, version: &str, obj: &Arc<Value>) -> Value {
    let mut v = Value::clone(obj);
    if is_events_group(def) {
        rename(&mut v, true);
    }
    if let Some(m) = v.as_object_mut() {
        m.insert("apiVersion".into(), Value::String(def.api_version(version)));
        m.insert("kind".into(), Value::String(def.kind.clone()));
    }
    v
}

/// A written object converted to its stored shape.
pub(crate) fn to_storage(def: &ResourceDef, obj: &mut Value) {
    if is_events_group(def) {
        rename(obj, false);
        if let Some(m) = obj.as_object_mut() {
            m.insert("apiVersion".into(), Value::String("v1".into()));
        }
    }
}

/// A JSON patch or merge patch addressed to the served shape, turned into the stored shape
/// (only Events differ): the object is converted, patched, and converted back by the caller.
pub(crate) fn from_storage_for_patch(def: &ResourceDef, obj: &Value) -> Value {
    let mut v = obj.clone();
    if is_events_group(def) {
        rename(&mut v, true);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use serde_json::json;

    #[test]
    fn events_round_trip() {
        let reg = Registry::default();
        let def = reg.find("events.k8s.io", "v1", "events").expect("events");
        let mut written = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "regarding": {"name": "x"}, "note": "hi", "reason": "R"});
        to_storage(def, &mut written);
        assert_eq!(written["involvedObject"]["name"], json!("x"));
        assert_eq!(written["message"], json!("hi"));
        let back = present(def, "v1", &Arc::new(written));
        assert_eq!(back["note"], json!("hi"));
        assert_eq!(back["apiVersion"], json!("events.k8s.io/v1"));
    }
}
