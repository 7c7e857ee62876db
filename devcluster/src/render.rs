//! Response shapes: full objects and lists, `PartialObjectMetadata(List)` and `Table` (with the
//! resource's printer columns), chosen from the request's `Accept` header. Pure; never reads
//! the store.

use crate::convert;
use crate::jsonpath;
use crate::registry::ResourceDef;
use serde_json::{Value, json};
use std::sync::Arc;

/// What shape a response takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Format {
    Full,
    Metadata,
    Table { include: Include },
}

/// `includeObject` of a Table request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Include {
    None,
    Metadata,
    Object,
}

/// Picks the format from `Accept` (first acceptable entry wins) and `includeObject`.
pub(crate) fn negotiate(accept: &str, include_object: Option<&str>) -> Format {
    for entry in accept.split(',') {
        let params: Vec<&str> = entry.split(';').map(str::trim).collect();
        let as_ = params.iter().find_map(|p| p.strip_prefix("as="));
        match as_ {
            Some("Table") => {
                let include = match include_object {
                    Some("None") => Include::None,
                    Some("Object") => Include::Object,
                    _ => Include::Metadata,
                };
                return Format::Table { include };
            }
            Some("PartialObjectMetadata" | "PartialObjectMetadataList") => return Format::Metadata,
            Some(_) => continue,
            None => return Format::Full,
        }
    }
    Format::Full
}

fn partial(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
    })
}

/// kubectl's short human duration ("45s", "3m12s", "5h", "2d3h").
pub(crate) fn human_age(ts: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(ts) else {
        return "<unknown>".into();
    };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86400);
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        format!("{m}m{}s", secs % 60)
    } else if h < 3 {
        format!("{m}m")
    } else if h < 8 {
        format!("{h}h{}m", m % 60)
    } else if h < 48 {
        format!("{h}h")
    } else if d < 8 {
        format!("{d}d{}h", h % 24)
    } else if d < 365 * 2 {
        format!("{d}d")
    } else {
        format!("{}y", d / 365)
    }
}

fn column_definitions(def: &ResourceDef, version: &str) -> Value {
    let mut cols = vec![json!({"name": "Name", "type": "string", "format": "name",
        "description": "Name must be unique within a namespace.", "priority": 0})];
    for c in def
        .version(version)
        .map(|v| v.columns.as_slice())
        .unwrap_or_default()
    {
        // kube-apiserver's own printers type ages as strings; a CRD's columns keep their type.
        let type_ = if c.type_ == "date" && !def.custom {
            "string"
        } else {
            c.type_.as_str()
        };
        cols.push(json!({"name": c.name, "type": type_, "format": c.format, "description": c.description, "priority": c.priority}));
    }
    Value::Array(cols)
}

/// The cells of built-in columns a JSONPath cannot express (their path starts with `#`), as
/// kube-apiserver's printers compute them: `#keys:.a,.b` counts the keys of maps `a` and `b`,
/// `#pod-ready` is `ready/total` containers, `#pod-restarts` sums their restarts.
fn computed(path: &str, obj: &Value) -> Option<Value> {
    let statuses = || {
        obj.pointer("/status/containerStatuses")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    if let Some(maps) = path.strip_prefix("#keys:") {
        let count: usize = maps
            .split(',')
            .filter_map(|m| {
                obj.get(m.trim_start_matches('.'))?
                    .as_object()
                    .map(|o| o.len())
            })
            .sum();
        return Some(json!(count));
    }
    match path {
        "#pod-ready" => {
            let total = obj
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let ready = statuses()
                .iter()
                .filter(|s| s.get("ready").and_then(Value::as_bool) == Some(true))
                .count();
            Some(json!(format!("{ready}/{total}")))
        }
        "#pod-restarts" => {
            let restarts: i64 = statuses()
                .iter()
                .filter_map(|s| s.get("restartCount").and_then(Value::as_i64))
                .sum();
            Some(json!(restarts.to_string()))
        }
        _ => None,
    }
}

fn row(def: &ResourceDef, version: &str, obj: &Value, include: Include) -> Value {
    let mut cells = vec![
        obj.pointer("/metadata/name")
            .cloned()
            .unwrap_or(Value::Null),
    ];
    for c in def
        .version(version)
        .map(|v| v.columns.as_slice())
        .unwrap_or_default()
    {
        if let Some(cell) = computed(&c.json_path, obj) {
            cells.push(cell);
            continue;
        }
        // Built-in columns may list fallbacks: `.a|.b` takes the first path that has a value.
        let vals = c
            .json_path
            .split('|')
            .map(|p| jsonpath::select(obj, p))
            .find(|v| !v.is_empty())
            .unwrap_or_default();
        let cell = match (c.type_.as_str(), vals.as_slice()) {
            (_, []) => Value::Null,
            ("date", [v, ..]) => Value::String(v.as_str().map(human_age).unwrap_or_default()),
            (_, [v]) => (*v).clone(),
            (_, many) => Value::String(
                many.iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        };
        cells.push(cell);
    }
    let mut r = json!({"cells": cells});
    match include {
        Include::None => {}
        Include::Metadata => r["object"] = partial(obj),
        Include::Object => r["object"] = obj.clone(),
    }
    r
}

fn table(
    def: &ResourceDef,
    version: &str,
    objs: &[Value],
    include: Include,
    rv: Option<String>,
) -> Value {
    let mut t = json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": column_definitions(def, version),
        "rows": objs.iter().map(|o| row(def, version, o, include)).collect::<Vec<_>>(),
    });
    if let Some(rv) = rv {
        t["metadata"]["resourceVersion"] = Value::String(rv);
    }
    t
}

/// One object in the requested format.
pub(crate) fn item(def: &ResourceDef, version: &str, obj: &Arc<Value>, fmt: Format) -> Value {
    let full = convert::present(def, version, obj);
    match fmt {
        Format::Full => full,
        Format::Metadata => partial(&full),
        Format::Table { include } => {
            let rv = full
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string);
            table(def, version, &[full], include, rv)
        }
    }
}

/// A list page in the requested format.
pub(crate) fn list(
    def: &ResourceDef,
    version: &str,
    items: &[Arc<Value>],
    rv: u64,
    continue_token: Option<String>,
    remaining: Option<u64>,
    fmt: Format,
) -> Value {
    let presented: Vec<Value> = items
        .iter()
        .map(|o| convert::present(def, version, o))
        .collect();
    let mut md = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = continue_token {
        md["continue"] = Value::String(c);
    } else if def.custom {
        // Custom resources are listed as unstructured objects, which keep an empty `continue`.
        md["continue"] = Value::String(String::new());
    }
    if let Some(r) = remaining {
        md["remainingItemCount"] = json!(r);
    }
    match fmt {
        Format::Full => json!({
            "kind": format!("{}List", def.kind),
            "apiVersion": def.api_version(version),
            "metadata": md,
            "items": presented,
        }),
        Format::Metadata => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": md,
            "items": presented.iter().map(partial).collect::<Vec<_>>(),
        }),
        Format::Table { include } => {
            let mut t = table(def, version, &presented, include, Some(rv.to_string()));
            t["metadata"] = md;
            t
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_negotiation() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(
            negotiate(kubectl, None),
            Format::Table {
                include: Include::Metadata
            }
        );
        assert_eq!(negotiate("application/json", None), Format::Full);
        assert_eq!(
            negotiate(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
                None
            ),
            Format::Metadata
        );
        assert_eq!(
            negotiate(
                "application/json;as=Table;v=v1;g=meta.k8s.io",
                Some("Object")
            ),
            Format::Table {
                include: Include::Object
            }
        );
    }

    #[test]
    fn ages() {
        let t = (chrono::Utc::now() - chrono::Duration::seconds(3725)).to_rfc3339();
        assert_eq!(human_age(&t), "62m");
    }
}
