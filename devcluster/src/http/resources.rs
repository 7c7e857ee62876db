//! Resource requests: get, list, watch, create, update, patch, delete and deletecollection of
//! one resource, with query parameters and bodies decoded here and the rules applied by the
//! store. Never holds the store lock across an await.

use super::AppState;
use super::{json_response, query};
use crate::error::{ApiError, FieldError};
use crate::patch::PatchType;
use crate::registry::ResourceDef;
use crate::render::{self, Format};
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{DeleteOptions, FieldValidation, ListParams, WriteCtx};
use crate::watch::{self, Start, WatchRequest};
use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

const MAX_BODY: usize = 16 * 1024 * 1024;

/// The resource a request addresses.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) group: String,
    pub(crate) version: String,
    pub(crate) ns: Option<String>,
    pub(crate) plural: String,
    pub(crate) name: Option<String>,
    pub(crate) subresource: Option<String>,
}

fn truthy(q: &HashMap<String, String>, k: &str) -> bool {
    q.get(k).is_some_and(|v| v == "true" || v == "1")
}

fn selectors(
    q: &HashMap<String, String>,
    def: &ResourceDef,
) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let l = LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str))
        .map_err(ApiError::bad_request)?;
    let f = FieldSelector::parse(q.get("fieldSelector").map_or("", String::as_str))
        .map_err(ApiError::bad_request)?;
    f.check_supported(def).map_err(ApiError::bad_request)?;
    Ok((l, f))
}

fn field_manager(q: &HashMap<String, String>, headers: &http::HeaderMap) -> String {
    if let Some(m) = q.get("fieldManager").filter(|m| !m.is_empty()) {
        return m.clone();
    }
    headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown")
        .to_string()
}

fn with_warnings(mut resp: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let text = format!("299 - \"{}\"", w.replace('"', "'"));
        if let Ok(v) = http::HeaderValue::from_str(&text) {
            resp.headers_mut().append(http::header::WARNING, v);
        }
    }
    resp
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding the request body: {e}")))
}

pub(super) async fn handle(
    state: &Arc<AppState>,
    t: Target,
    req: Request,
) -> Result<Response, ApiError> {
    let q = query(&req);
    let method = req.method().clone();
    let headers = req.headers().clone();
    let accept = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let fmt = render::negotiate(accept, q.get("includeObject").map(String::as_str));
    let no_route = ApiError::no_route;
    let def = {
        let st = crate::store::lock(&state.store);
        st.registry.find(&t.group, &t.version, &t.plural).cloned()
    }
    .ok_or_else(no_route)?;
    if (!def.namespaced && t.ns.is_some()) || (def.namespaced && t.name.is_some() && t.ns.is_none())
    {
        return Err(no_route());
    }
    let binding = t.subresource.as_deref() == Some("binding")
        && def.group.is_empty()
        && def.plural == "pods"
        && t.name.is_some();
    if let Some(sub) = &t.subresource
        && !binding
        && (sub != "status" || !def.status_subresource)
    {
        return Err(no_route());
    }
    let body_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let protobuf = body_type.starts_with("application/vnd.kubernetes.protobuf");
    if body_type.starts_with("application/cbor") {
        return Err(ApiError::unsupported_media_type());
    }
    let mut body = axum::body::to_bytes(req.into_body(), MAX_BODY)
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
    if protobuf && !body.is_empty() {
        // kubectl's imperative generators send protobuf; decode the kinds they create.
        let v = crate::proto::decode(&body)
            .map_err(|m| ApiError::new(415, "UnsupportedMediaType", m))?;
        body = serde_json::to_vec(&v).unwrap_or_default().into();
    }
    let mut ctx = WriteCtx::new(def.clone(), &t.version, &field_manager(&q, &headers));
    ctx.dry_run = q.get("dryRun").is_some_and(|v| v == "All");
    ctx.validation = match q.get("fieldValidation").map(String::as_str) {
        Some("Strict") => FieldValidation::Strict,
        Some("Warn") => FieldValidation::Warn,
        _ => FieldValidation::Ignore,
    };
    let ns = t.ns.clone().unwrap_or_default();
    let lock = || -> Result<_, ApiError> { Ok(crate::store::lock(&state.store)) };
    let ok = |code: http::StatusCode, v: &Value| json_response(code, v);
    match (&method, t.name.as_deref()) {
        (&http::Method::POST, Some(name)) if binding => {
            bind(&mut *lock()?, &def, &ns, name, &parse_json(&body)?)?;
            Ok(ok(
                http::StatusCode::CREATED,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
            ))
        }
        (_, _) if binding => Err(ApiError::method_not_allowed(format!(
            "{method} is not supported on pods/binding"
        ))),
        (&http::Method::GET, None) if truthy(&q, "watch") => watch(state, &def, &t, &q, fmt),
        (&http::Method::GET, None) => {
            let (labels, fields) = selectors(&q, &def)?;
            let params = ListParams {
                ns: t.ns.clone(),
                labels,
                fields,
                limit: q.get("limit").and_then(|l| l.parse().ok()),
                continue_token: q.get("continue").filter(|c| !c.is_empty()).cloned(),
            };
            let page = lock()?.list(&def, &params)?;
            let v = render::list(
                &def,
                &t.version,
                &page.items,
                page.rv,
                page.continue_token,
                page.remaining,
                fmt,
            );
            Ok(ok(http::StatusCode::OK, &v))
        }
        (&http::Method::GET, Some(name)) => {
            let obj = lock()?.get(&def, &ns, name)?;
            Ok(ok(
                http::StatusCode::OK,
                &render::item(&def, &t.version, &obj, fmt),
            ))
        }
        (&http::Method::POST, None) => {
            let obj = lock()?.create(&mut ctx, t.ns.as_deref(), parse_json(&body)?)?;
            let v = render::item(&def, &t.version, &obj, fmt);
            Ok(with_warnings(
                ok(http::StatusCode::CREATED, &v),
                &ctx.warnings,
            ))
        }
        (&http::Method::PUT, Some(name)) => {
            let obj = lock()?.update(
                &mut ctx,
                &ns,
                name,
                parse_json(&body)?,
                t.subresource.as_deref(),
            )?;
            let v = render::item(&def, &t.version, &obj, fmt);
            Ok(with_warnings(ok(http::StatusCode::OK, &v), &ctx.warnings))
        }
        (&http::Method::PATCH, Some(name)) => {
            let ct = headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let ptype =
                PatchType::from_content_type(ct).ok_or_else(ApiError::unknown_patch_type)?;
            if ptype == PatchType::Apply && !q.contains_key("fieldManager") {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                ));
            }
            let force = truthy(&q, "force");
            let (obj, created) = lock()?.patch(
                &mut ctx,
                &ns,
                name,
                ptype,
                &body,
                t.subresource.as_deref(),
                force,
            )?;
            let code = if created {
                http::StatusCode::CREATED
            } else {
                http::StatusCode::OK
            };
            let v = render::item(&def, &t.version, &obj, fmt);
            Ok(with_warnings(ok(code, &v), &ctx.warnings))
        }
        (&http::Method::DELETE, Some(name)) => {
            let opts = delete_options(&q, &body)?;
            let mut st = lock()?;
            let obj = st.delete(&ctx, &ns, name, &opts)?;
            let still_there = st.get_opt(&def.storage, &ns, name).is_some();
            drop(st);
            if still_there || returns_deleted_object(&def) {
                return Ok(ok(
                    http::StatusCode::OK,
                    &render::item(&def, &t.version, &obj, Format::Full),
                ));
            }
            let mut details = json!({"name": name, "kind": def.plural});
            if !def.group.is_empty() {
                details["group"] = json!(def.group);
            }
            details["uid"] = obj.pointer("/metadata/uid").cloned().unwrap_or(Value::Null);
            Ok(ok(
                http::StatusCode::OK,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Success", "details": details}),
            ))
        }
        (&http::Method::DELETE, None) => {
            let opts = delete_options(&q, &body)?;
            let (labels, fields) = selectors(&q, &def)?;
            let mut st = lock()?;
            let gone = st.delete_collection(&ctx, t.ns.as_deref(), &labels, &fields, &opts)?;
            let rv = st.resource_version();
            drop(st);
            Ok(ok(
                http::StatusCode::OK,
                &render::list(&def, &t.version, &gone, rv, None, None, Format::Full),
            ))
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "{method} is not supported here"
        ))),
    }
}

/// Whether an object deleted at once is answered with its last state rather than a `Status`:
/// kube-apiserver's registries of these kinds set `ReturnDeletedObject` (every other kind,
/// custom resources included, answers `Success`). Namespaces always answer with the object,
/// as they are deleted in two steps.
fn returns_deleted_object(def: &ResourceDef) -> bool {
    def.group.is_empty()
        && matches!(
            def.plural.as_str(),
            "namespaces" | "pods" | "services" | "serviceaccounts"
        )
}

/// `pods/{name}/binding`, as a scheduler binds a pod: sets `spec.nodeName` of a pod that has
/// none (the only way to set it once a pod exists); a bound pod answers 409.
fn bind(
    st: &mut crate::store::Store,
    def: &Arc<crate::registry::ResourceDef>,
    ns: &str,
    name: &str,
    binding: &Value,
) -> Result<(), ApiError> {
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::invalid(
                "Binding",
                "",
                name,
                &[FieldError::new("target.name", "Required value")],
            )
        })?;
    let pod = st.get(def, ns, name)?;
    if let Some(bound) = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        return Err(ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on pods/binding \"{name}\": pod {name} is already \
                 assigned to node \"{bound}\""
            ),
        ));
    }
    let patch = serde_json::to_vec(&json!({"spec": {"nodeName": node}})).unwrap_or_default();
    st.patch(
        &mut WriteCtx::system(def),
        ns,
        name,
        PatchType::Merge,
        &patch,
        None,
        false,
    )?;
    Ok(())
}

fn delete_options(q: &HashMap<String, String>, body: &[u8]) -> Result<DeleteOptions, ApiError> {
    let b: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        parse_json(body)?
    };
    let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let dry = b
        .get("dryRun")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|x| x == "All"))
        || q.get("dryRun").is_some_and(|v| v == "All");
    let propagation = s(b.get("propagationPolicy"))
        .or_else(|| q.get("propagationPolicy").cloned())
        .or_else(|| {
            // The legacy `orphanDependents` flag.
            match b.get("orphanDependents").and_then(Value::as_bool) {
                Some(true) => Some("Orphan".into()),
                Some(false) => Some("Background".into()),
                None => None,
            }
        });
    Ok(DeleteOptions {
        propagation,
        uid: s(b.pointer("/preconditions/uid")),
        resource_version: s(b.pointer("/preconditions/resourceVersion")),
        dry_run: dry,
    })
}

fn watch(
    state: &Arc<AppState>,
    def: &Arc<ResourceDef>,
    t: &Target,
    q: &HashMap<String, String>,
    fmt: Format,
) -> Result<Response, ApiError> {
    let (labels, fields) = selectors(q, def)?;
    let start = match q.get("resourceVersion").map(String::as_str) {
        None | Some("") | Some("0") => Start::Now,
        Some(rv) => Start::After(
            rv.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
        ),
    };
    let send_initial_events = truthy(q, "sendInitialEvents");
    if send_initial_events
        && q.get("resourceVersionMatch").map(String::as_str) != Some("NotOlderThan")
    {
        return Err(ApiError::new(
            422,
            "Invalid",
            "sendInitialEvents requires resourceVersionMatch=NotOlderThan",
        ));
    }
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(1800);
    let req = WatchRequest {
        def: def.clone(),
        version: t.version.clone(),
        ns: t.ns.clone(),
        labels,
        fields,
        start,
        send_initial_events,
        bookmarks: truthy(q, "allowWatchBookmarks"),
        timeout: Duration::from_secs(timeout),
        bookmark_interval: state.bookmark_interval,
        format: fmt,
    };
    let stream = watch::stream(state.store.clone(), req, state.shutdown.clone());
    let mut resp = Body::from_stream(stream).into_response();
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}
