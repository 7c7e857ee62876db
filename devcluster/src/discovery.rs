//! Discovery documents: `/version`, `/api`, `/apis`, `/api/v1`, `/apis/{group}/{version}`, the
//! aggregated (`apidiscovery.k8s.io/v2`) forms, and a minimal `/openapi/v3` index that tells
//! kubectl server-side field validation is available. Built from the registry; read-only.

use crate::registry::{Registry, ResourceDef};
use serde_json::{Value, json};
use std::sync::Arc;

/// The Kubernetes version this server claims to speak.
pub(crate) fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-devcluster",
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "n/a",
        "compiler": "rustc",
        "platform": "linux/amd64",
    })
}

fn verbs(def: &ResourceDef) -> Vec<&'static str> {
    let _ = def;
    vec![
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ]
}

pub(crate) fn core_versions(server: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server}],
    })
}

pub(crate) fn group_list(reg: &Registry) -> Value {
    let groups: Vec<Value> = reg
        .groups()
        .into_iter()
        .map(|(g, vs)| {
            let versions: Vec<Value> =
                vs.iter().map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v})).collect();
            json!({"name": g, "versions": versions, "preferredVersion": versions.first().cloned().unwrap_or(Value::Null)})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub(crate) fn group(reg: &Registry, name: &str) -> Option<Value> {
    let vs = reg.groups().remove(name)?;
    let versions: Vec<Value> = vs
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    Some(
        json!({"kind": "APIGroup", "apiVersion": "v1", "name": name, "versions": versions,
        "preferredVersion": versions.first().cloned().unwrap_or(Value::Null)}),
    )
}

pub(crate) fn resource_list(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let defs = reg.resources_in(group, version);
    if defs.is_empty() && !(group.is_empty() && version == "v1") {
        return None;
    }
    let mut resources = Vec::new();
    for d in defs {
        let mut r = json!({
            "name": d.plural, "singularName": d.singular, "namespaced": d.namespaced,
            "kind": d.kind, "verbs": verbs(d),
        });
        if !d.short_names.is_empty() {
            r["shortNames"] = json!(d.short_names);
        }
        if !d.categories.is_empty() {
            r["categories"] = json!(d.categories);
        }
        resources.push(r);
        if d.status_subresource {
            resources.push(
                json!({"name": format!("{}/status", d.plural), "singularName": "",
                "namespaced": d.namespaced, "kind": d.kind, "verbs": ["get", "patch", "update"]}),
            );
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

fn aggregated_resource(d: &Arc<ResourceDef>) -> Value {
    let mut r = json!({
        "resource": d.plural,
        "responseKind": {"group": d.group, "version": "", "kind": d.kind},
        "scope": if d.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": d.singular,
        "verbs": verbs(d),
    });
    if !d.short_names.is_empty() {
        r["shortNames"] = json!(d.short_names);
    }
    if !d.categories.is_empty() {
        r["categories"] = json!(d.categories);
    }
    if d.status_subresource {
        r["subresources"] = json!([{"subresource": "status",
            "responseKind": {"group": d.group, "version": "", "kind": d.kind}, "verbs": ["get", "patch", "update"]}]);
    }
    r
}

/// `APIGroupDiscoveryList` for `/api` (core) or `/apis` (all named groups).
pub(crate) fn aggregated(reg: &Registry, core: bool, media_version: &str) -> Value {
    let groups: Vec<(String, Vec<String>)> = if core {
        vec![(String::new(), vec!["v1".into()])]
    } else {
        reg.groups().into_iter().collect()
    };
    let items: Vec<Value> = groups
        .into_iter()
        .map(|(g, vs)| {
            let versions: Vec<Value> = vs
                .iter()
                .map(|v| {
                    let mut resources: Vec<Value> = reg
                        .resources_in(&g, v)
                        .into_iter()
                        .map(aggregated_resource)
                        .collect();
                    for r in &mut resources {
                        r["responseKind"]["version"] = json!(v);
                        if let Some(Value::Array(subs)) = r.get_mut("subresources") {
                            for s in subs {
                                s["responseKind"]["version"] = json!(v);
                            }
                        }
                    }
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": g, "creationTimestamp": null}, "versions": versions})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": format!("apidiscovery.k8s.io/{media_version}"), "metadata": {}, "items": items})
}

/// `/openapi/v3`: the index of group-version documents.
pub(crate) fn openapi_v3_index(reg: &Registry) -> Value {
    let mut paths = serde_json::Map::new();
    paths.insert(
        "api/v1".into(),
        json!({"serverRelativeURL": "/openapi/v3/api/v1?hash=devcluster"}),
    );
    for (g, vs) in reg.groups() {
        for v in vs {
            paths.insert(
                format!("apis/{g}/{v}"),
                json!({"serverRelativeURL": format!("/openapi/v3/apis/{g}/{v}?hash=devcluster")}),
            );
        }
    }
    json!({"paths": paths})
}

/// A minimal OpenAPI v3 document for a group-version: one PATCH operation per resource that
/// declares the `fieldValidation` parameter (what kubectl probes before using server-side
/// validation), plus the schemas of custom resources.
pub(crate) fn openapi_v3_group(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let defs = reg.resources_in(group, version);
    if defs.is_empty() {
        return None;
    }
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    for d in defs {
        let scope = if d.namespaced {
            "/namespaces/{namespace}"
        } else {
            ""
        };
        let gvk = json!([{"group": d.group, "version": version, "kind": d.kind}]);
        let op = json!({
            "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}}],
            "x-kubernetes-group-version-kind": gvk[0].clone(),
            "responses": {"200": {"description": "OK"}},
        });
        paths.insert(
            format!("{prefix}{scope}/{}/{{name}}", d.plural),
            json!({"patch": op, "put": op}),
        );
        paths.insert(format!("{prefix}{scope}/{}", d.plural), json!({"post": op}));
        let name = format!(
            "{}.{}.{}",
            if d.group.is_empty() {
                "io.k8s.api.core"
            } else {
                &d.group
            },
            version,
            d.kind
        );
        let mut schema = d.schema(version).cloned().unwrap_or_else(
            || json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
        );
        schema["x-kubernetes-group-version-kind"] = gvk;
        schemas.insert(name, schema);
    }
    Some(
        json!({"openapi": "3.0.0", "info": {"title": "devcluster", "version": "v1.33.0"},
        "paths": paths, "components": {"schemas": schemas}}),
    )
}
