//! devcluster's patch engines (`devcluster/src/patch`): JSON merge patch, strategic merge patch,
//! JSON patch, server-side apply and the field ownership of ordinary updates, on fuzzed
//! documents and patches, for the built-in kinds.
//!
//! Input: a selector byte (kind, and whether apply forces), then JSON values one after the other:
//! the document, the patch, and a second patch.
//!
//! Invariants: no panic; a merge patch applied twice equals it applied once (RFC 7386); a
//! strategic merge patch without directives or lists is a merge patch; a JSON patch that
//! succeeded can be tested back (its last `add`/`replace` value is at its path); applying the same
//! configuration twice as the same manager changes nothing the second time (for a configuration
//! kube-apiserver accepts: see `well_formed`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

use devcluster::fuzzing::{
    apply, json_patch, kinds, map_list_keys, merge_patch, record_update, strategic_merge,
};

/// True when `v` has an array or a `$…` directive key anywhere.
fn has_lists_or_directives(v: &Value) -> bool {
    match v {
        Value::Array(_) => true,
        Value::Object(m) => m
            .iter()
            .any(|(k, v)| k.starts_with('$') || has_lists_or_directives(v)),
        _ => false,
    }
}

fn check_merge(doc: &Value, patch: &Value) {
    let mut once = doc.clone();
    merge_patch(&mut once, patch);
    let mut twice = once.clone();
    merge_patch(&mut twice, patch);
    assert_eq!(once, twice, "merge patch is not idempotent");
    if let Some(p) = patch.as_object() {
        for (k, v) in p {
            if v.is_null() {
                assert!(once.get(k).is_none(), "`{k}: null` did not delete");
            }
        }
    } else {
        assert_eq!(
            &once, patch,
            "a patch that is not an object replaces the document"
        );
    }
}

fn check_strategic(doc: &Value, patch: &Value, kind: &str) {
    let mut strategic = doc.clone();
    let result = strategic_merge(&mut strategic, patch, kind);
    if !has_lists_or_directives(patch) {
        assert!(result.is_ok(), "{result:?}");
        let mut merged = doc.clone();
        merge_patch(&mut merged, patch);
        assert_eq!(strategic, merged, "a plain patch merged differently");
    }
}

fn check_json_patch(doc: &Value, ops: &Value) {
    let mut patched = doc.clone();
    if json_patch(&mut patched, ops).is_err() {
        return;
    }
    let Some(last) = ops.as_array().and_then(|a| a.last()) else {
        return;
    };
    let op = last.get("op").and_then(Value::as_str);
    let path = last.get("path").and_then(Value::as_str);
    if let (Some("add" | "replace"), Some(path), Some(value)) = (op, path, last.get("value"))
        && !path.ends_with("/-")
    {
        let test = json!([{"op": "test", "path": path, "value": value}]);
        let mut tested = patched.clone();
        assert_eq!(
            json_patch(&mut tested, &test),
            Ok(()),
            "{path}: the value just written is not there"
        );
    }
}

/// True when every map-list item of `config` carries its merge keys and no two items of a list
/// share them: kube-apiserver refuses an apply configuration otherwise, and merging one is not
/// idempotent (items without a key all match the first of them).
fn well_formed<'v>(config: &'v Value, names: &mut Vec<&'v str>, kind: &str) -> bool {
    match config {
        Value::Object(m) => m.iter().all(|(k, v)| {
            names.push(k);
            let ok = well_formed(v, names, kind);
            names.pop();
            ok
        }),
        Value::Array(items) => {
            if let Some(keys) = map_list_keys(kind, names) {
                let mut seen = Vec::new();
                for item in items {
                    let key: Option<Vec<&Value>> = keys.iter().map(|k| item.get(k)).collect();
                    match key {
                        Some(key) if !seen.contains(&key) => seen.push(key),
                        _ => return false,
                    }
                }
            }
            items.iter().all(|item| well_formed(item, names, kind))
        }
        _ => true,
    }
}

fn check_apply(doc: &Value, config: &Value, force: bool, kind: &str) {
    if !well_formed(config, &mut Vec::new(), kind) {
        return;
    }
    let mut live = doc.clone();
    if apply(&mut live, config, force, "fuzz", kind).is_err() {
        return;
    }
    let mut again = live.clone();
    // The same manager owns everything it applied: no conflict is possible the second time.
    assert_eq!(apply(&mut again, config, false, "fuzz", kind), Ok(()));
    assert_eq!(
        again, live,
        "applying the same configuration twice changed the object"
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let values: Vec<Value> = serde_json::Deserializer::from_slice(rest)
        .into_iter::<Value>()
        .take(3)
        .map_while(Result::ok)
        .collect();
    let [doc, patch, rest @ ..] = &values[..] else {
        return;
    };
    let kinds = kinds();
    let kind = kinds[usize::from(selector) % kinds.len()];
    let force = selector & 0x80 != 0;
    check_merge(doc, patch);
    check_strategic(doc, patch, kind);
    check_json_patch(doc, patch);
    check_apply(doc, patch, force, kind);
    // An ordinary update after an apply: ownership moves, nothing panics.
    let mut live = doc.clone();
    if apply(&mut live, patch, true, "first", kind).is_ok() {
        let mut updated = live.clone();
        merge_patch(&mut updated, rest.first().unwrap_or(patch));
        record_update(Some(&live), &mut updated, "second", kind);
        let _ = apply(&mut updated, patch, false, "first", kind);
    }
});
