//! Field sets for server-side apply: the set of field paths an object (or a manager) covers,
//! their `FieldsV1` encoding in `metadata.managedFields`, and lookups and removals by path.
//! Lists follow their list kind: atomic lists are one field, set lists own each value, map lists
//! own each item (by its keys) and the item's fields.

use crate::registry::ListKind;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum PathEl {
    Field(String),
    /// A map-list item, by the canonical JSON of its key fields.
    Key(String),
    /// A set-list item, by its canonical JSON.
    Value(String),
}

pub(crate) type FieldPath = Vec<PathEl>;
pub(crate) type FieldSet = BTreeSet<FieldPath>;

/// Which part of an object a write covers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Scope {
    /// The main resource; `status` is excluded when the status subresource exists.
    Main { exclude_status: bool },
    /// The status subresource: only `status`.
    Status,
}

/// Canonical JSON (sorted keys), independent of serde_json's map ordering.
pub(crate) fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", Value::String((*k).clone()), canonical(&m[*k])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

fn item_key(item: &Value, keys: &[String]) -> String {
    let mut m = Map::new();
    for k in keys {
        if let Some(v) = item.get(k) {
            m.insert(k.clone(), v.clone());
        }
    }
    canonical(&Value::Object(m))
}

/// Whether a top-level field belongs to a write's scope.
pub(crate) fn tracked_root_field(key: &str, scope: Scope) -> bool {
    match scope {
        Scope::Status => key == "status",
        Scope::Main { exclude_status } => match key {
            "apiVersion" | "kind" => false,
            "status" => !exclude_status,
            _ => true,
        },
    }
}

const TRACKED_METADATA: [&str; 4] = ["labels", "annotations", "finalizers", "ownerReferences"];

/// The field set an object covers in `scope`.
pub(crate) fn field_set(
    obj: &Value,
    scope: Scope,
    list_kind: &dyn Fn(&[&str]) -> ListKind,
) -> FieldSet {
    let mut out = FieldSet::new();
    let Some(root) = obj.as_object() else {
        return out;
    };
    for (k, v) in root {
        if !tracked_root_field(k, scope) {
            continue;
        }
        if k == "metadata" {
            let Some(md) = v.as_object() else { continue };
            for mk in TRACKED_METADATA {
                if let Some(mv) = md.get(mk) {
                    walk(
                        mv,
                        &mut vec![PathEl::Field(k.clone()), PathEl::Field(mk.into())],
                        &mut vec!["metadata", mk],
                        list_kind,
                        &mut out,
                    );
                }
            }
            continue;
        }
        walk(
            v,
            &mut vec![PathEl::Field(k.clone())],
            &mut vec![k.as_str()],
            list_kind,
            &mut out,
        );
    }
    out
}

fn walk<'v>(
    v: &'v Value,
    path: &mut FieldPath,
    names: &mut Vec<&'v str>,
    list_kind: &dyn Fn(&[&str]) -> ListKind,
    out: &mut FieldSet,
) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                path.push(PathEl::Field(k.clone()));
                names.push(k.as_str());
                walk(child, path, names, list_kind, out);
                names.pop();
                path.pop();
            }
        }
        Value::Array(items) => match list_kind(names) {
            ListKind::Atomic => {
                out.insert(path.clone());
            }
            ListKind::Set => {
                for i in items {
                    let mut p = path.clone();
                    p.push(PathEl::Value(canonical(i)));
                    out.insert(p);
                }
            }
            ListKind::Map(keys) => {
                for i in items {
                    path.push(PathEl::Key(item_key(i, &keys)));
                    out.insert(path.clone());
                    if let Some(m) = i.as_object() {
                        for (k, child) in m {
                            path.push(PathEl::Field(k.clone()));
                            names.push(k.as_str());
                            walk(child, path, names, list_kind, out);
                            names.pop();
                            path.pop();
                        }
                    }
                    path.pop();
                }
            }
        },
        _ => {
            out.insert(path.clone());
        }
    }
}

fn key_matches(item: &Value, key_json: &str) -> bool {
    let Ok(Value::Object(want)) = serde_json::from_str::<Value>(key_json) else {
        return false;
    };
    want.iter().all(|(k, v)| item.get(k) == Some(v))
}

/// The value at a field path.
pub(crate) fn value_at<'a>(obj: &'a Value, path: &[PathEl]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |v, el| match el {
        PathEl::Field(f) => v.get(f),
        PathEl::Key(k) => v.as_array()?.iter().find(|i| key_matches(i, k)),
        PathEl::Value(x) => v.as_array()?.iter().find(|i| canonical(i) == *x),
    })
}

/// Removes the field or list item at `path`; a missing path is not an error. Maps left empty by
/// the removal are removed too unless `keep(path)` says the map itself is owned.
pub(crate) fn remove_at(obj: &mut Value, path: &[PathEl], keep: &dyn Fn(&[PathEl]) -> bool) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let Some(container) = value_at_mut(obj, parent) else {
        return;
    };
    match (last, container) {
        (PathEl::Field(f), Value::Object(m)) => {
            m.remove(f);
        }
        (PathEl::Key(k), Value::Array(a)) => a.retain(|i| !key_matches(i, k)),
        (PathEl::Value(x), Value::Array(a)) => a.retain(|i| canonical(i) != *x),
        _ => return,
    }
    let now_empty = match value_at(obj, parent) {
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    };
    if now_empty && parent.len() > 1 && !keep(parent) {
        remove_at(obj, parent, keep);
    }
}

fn value_at_mut<'a>(obj: &'a mut Value, path: &[PathEl]) -> Option<&'a mut Value> {
    let mut v = obj;
    for el in path {
        v = match el {
            PathEl::Field(f) => v.get_mut(f)?,
            PathEl::Key(k) => v.as_array_mut()?.iter_mut().find(|i| key_matches(i, k))?,
            PathEl::Value(x) => v.as_array_mut()?.iter_mut().find(|i| canonical(i) == *x)?,
        };
    }
    Some(v)
}

/// `.spec.containers[name="app"].image`, the way conflicts name fields.
pub(crate) fn display(path: &[PathEl]) -> String {
    let mut s = String::new();
    for el in path {
        match el {
            PathEl::Field(f) => {
                s.push('.');
                s.push_str(f);
            }
            PathEl::Key(k) => {
                let parts: Vec<String> = serde_json::from_str::<Map<String, Value>>(k)
                    .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                    .unwrap_or_default();
                s.push_str(&format!("[{}]", parts.join(",")));
            }
            PathEl::Value(x) => s.push_str(&format!("[={x}]")),
        }
    }
    s
}

#[derive(Default)]
struct Node {
    leaf: bool,
    children: BTreeMap<String, Node>,
}

fn encode_el(el: &PathEl) -> String {
    match el {
        PathEl::Field(f) => format!("f:{f}"),
        PathEl::Key(k) => format!("k:{k}"),
        PathEl::Value(v) => format!("v:{v}"),
    }
}

fn decode_el(s: &str) -> Option<PathEl> {
    let (prefix, rest) = s.split_at_checked(2)?;
    match prefix {
        "f:" => Some(PathEl::Field(rest.into())),
        "k:" => serde_json::from_str::<Value>(rest)
            .ok()
            .map(|v| PathEl::Key(canonical(&v))),
        "v:" => serde_json::from_str::<Value>(rest)
            .ok()
            .map(|v| PathEl::Value(canonical(&v))),
        _ => None,
    }
}

/// The `fieldsV1` encoding of a set.
pub(crate) fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Node::default();
    for p in set {
        let mut n = &mut root;
        for el in p {
            n = n.children.entry(encode_el(el)).or_default();
        }
        n.leaf = true;
    }
    fn render(n: &Node) -> Value {
        let mut m = Map::new();
        if n.leaf && !n.children.is_empty() {
            m.insert(".".into(), Value::Object(Map::new()));
        }
        for (k, c) in &n.children {
            m.insert(k.clone(), render(c));
        }
        Value::Object(m)
    }
    render(&root)
}

/// Decodes `fieldsV1`.
pub(crate) fn from_fields_v1(v: &Value) -> FieldSet {
    fn go(v: &Value, path: &mut FieldPath, out: &mut FieldSet) {
        let Some(m) = v.as_object() else { return };
        if m.is_empty() && !path.is_empty() {
            out.insert(path.clone());
            return;
        }
        for (k, child) in m {
            if k == "." {
                out.insert(path.clone());
                continue;
            }
            if let Some(el) = decode_el(k) {
                path.push(el);
                go(child, path, out);
                path.pop();
            }
        }
    }
    let mut out = FieldSet::new();
    go(v, &mut Vec::new(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lists(path: &[&str]) -> ListKind {
        match path.last().copied() {
            Some("containers") => ListKind::Map(vec!["name".into()]),
            Some("finalizers") => ListKind::Set,
            _ => ListKind::Atomic,
        }
    }

    #[test]
    fn sets_round_trip_through_fields_v1() {
        let obj = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {"a": "1"}, "finalizers": ["x"]},
            "spec": {"containers": [{"name": "app", "image": "i", "args": ["1"]}]},
            "status": {"phase": "Running"}});
        let set = field_set(
            &obj,
            Scope::Main {
                exclude_status: true,
            },
            &lists,
        );
        let enc = to_fields_v1(&set);
        assert_eq!(
            enc,
            json!({
                "f:metadata": {"f:finalizers": {"v:\"x\"": {}}, "f:labels": {"f:a": {}}},
                "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:args": {}, "f:image": {}, "f:name": {}}}}
            })
        );
        assert_eq!(from_fields_v1(&enc), set);
        let item = value_at(
            &obj,
            &[
                PathEl::Field("spec".into()),
                PathEl::Field("containers".into()),
                PathEl::Key("{\"name\":\"app\"}".into()),
            ],
        );
        assert_eq!(item.and_then(|i| i.get("image")), Some(&json!("i")));
    }

    #[test]
    fn removal_prunes_emptied_maps() {
        let mut obj = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"x": {"y": 1}, "z": 2}});
        let f = |s: &str| PathEl::Field(s.into());
        remove_at(&mut obj, &[f("spec"), f("x"), f("y")], &|_| false);
        remove_at(&mut obj, &[f("metadata"), f("labels"), f("a")], &|_| false);
        assert_eq!(obj, json!({"metadata": {}, "spec": {"z": 2}}));
    }
}
