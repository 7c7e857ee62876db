//! Strategic merge patch for the built-in kinds: like a merge patch, except that keyed lists
//! (containers, volumes, env, ports, ...) merge item by item on their merge key, primitive merge
//! lists (finalizers) merge as sets, and the `$patch`, `$retainKeys`,
//! `$deleteFromPrimitiveList/...` and `$setElementOrder/...` directives are honoured.

use crate::registry::ListKind;
use serde_json::{Map, Value};

/// `list_kind(path)` says how the list at a field path (list items skipped) merges.
pub(crate) fn strategic_merge(
    target: &mut Value,
    patch: &Value,
    list_kind: &dyn Fn(&[&str]) -> ListKind,
) -> Result<(), String> {
    merge_map(target, patch, &mut Vec::new(), list_kind)
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

fn merge_map<'p>(
    target: &mut Value,
    patch: &'p Value,
    path: &mut Vec<&'p str>,
    list_kind: &dyn Fn(&[&str]) -> ListKind,
) -> Result<(), String> {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    match p.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *target = strip_directives(patch);
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Object(Map::new());
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => return Err(format!("unknown patch type {other:?}")),
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    for (k, v) in p {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            let remove: Vec<&Value> = v.as_array().map(|a| a.iter().collect()).unwrap_or_default();
            if let Some(Value::Array(items)) = target.get_mut(field) {
                items.retain(|i| !remove.contains(&i));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        let t = target.as_object_mut().expect("made an object above");
        if v.is_null() {
            t.remove(k);
            continue;
        }
        path.push(k.as_str());
        let slot = t.entry(k.clone()).or_insert(Value::Null);
        match v {
            Value::Object(_) => merge_map(slot, v, path, list_kind)?,
            Value::Array(items) => merge_list(slot, items, path, list_kind)?,
            _ => *slot = v.clone(),
        }
        path.pop();
    }
    if let Some(Value::Array(keep)) = p.get("$retainKeys") {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        if let Some(t) = target.as_object_mut() {
            t.retain(|k, _| keep.contains(&k.as_str()));
        }
    }
    Ok(())
}

fn merge_list<'p>(
    target: &mut Value,
    items: &'p [Value],
    path: &mut Vec<&'p str>,
    list_kind: &dyn Fn(&[&str]) -> ListKind,
) -> Result<(), String> {
    let replace = items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"));
    let kind = list_kind(path);
    if replace || kind == ListKind::Atomic || !target.is_array() {
        let kept: Vec<Value> = items
            .iter()
            .filter(|i| !(i.is_object() && i.get("$patch").is_some()))
            .map(strip_directives)
            .collect();
        *target = Value::Array(kept);
        return Ok(());
    }
    let current = target.as_array_mut().expect("checked above");
    match kind {
        ListKind::Set => {
            for i in items {
                if !current.contains(i) {
                    current.push(i.clone());
                }
            }
        }
        ListKind::Map(keys) => {
            let key = keys.first().cloned().unwrap_or_default();
            for item in items {
                let Some(kv) = item.get(&key) else {
                    return Err(format!("map list item without merge key {key:?}"));
                };
                let pos = current.iter().position(|c| c.get(&key) == Some(kv));
                if item.get("$patch").and_then(Value::as_str) == Some("delete") {
                    if let Some(i) = pos {
                        current.remove(i);
                    }
                    continue;
                }
                match pos {
                    Some(i) => merge_map(&mut current[i], item, path, list_kind)?,
                    None => current.push(strip_directives(item)),
                }
            }
        }
        ListKind::Atomic => unreachable!("handled above"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod_lists(path: &[&str]) -> ListKind {
        match path.last().copied() {
            Some("containers" | "env" | "volumes") => ListKind::Map(vec!["name".into()]),
            Some("ports") => ListKind::Map(vec!["containerPort".into()]),
            Some("finalizers") => ListKind::Set,
            _ => ListKind::Atomic,
        }
    }

    #[test]
    fn keyed_lists_merge_by_key() {
        let mut pod = json!({"metadata": {"finalizers": ["a"]}, "spec": {"containers": [
            {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}], "args": ["x"]},
            {"name": "proxy", "image": "proxy:1"}
        ]}});
        let patch = json!({"metadata": {"finalizers": ["b"]}, "spec": {
        "$setElementOrder/containers": [{"name": "app"}, {"name": "proxy"}],
        "containers": [
            {"name": "app", "image": "app:2", "env": [{"name": "B", "value": "2"}], "args": ["y"]},
            {"name": "proxy", "$patch": "delete"},
            {"name": "new", "image": "n:1", "ports": [{"containerPort": 80}]}
        ]}});
        strategic_merge(&mut pod, &patch, &pod_lists).expect("patch applies");
        assert_eq!(
            pod,
            json!({"metadata": {"finalizers": ["a", "b"]}, "spec": {"containers": [
                {"name": "app", "image": "app:2", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}], "args": ["y"]},
                {"name": "new", "image": "n:1", "ports": [{"containerPort": 80}]}
            ]}})
        );
    }

    #[test]
    fn directives() {
        let mut o = json!({"metadata": {"finalizers": ["a", "b"]}, "spec": {"x": 1, "y": 2, "containers": [{"name": "a"}]}});
        let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]},
            "spec": {"$retainKeys": ["x", "containers"], "containers": [{"name": "b"}, {"$patch": "replace"}]}});
        strategic_merge(&mut o, &patch, &pod_lists).expect("patch applies");
        assert_eq!(
            o,
            json!({"metadata": {"finalizers": ["b"]}, "spec": {"x": 1, "containers": [{"name": "b"}]}})
        );
    }
}
