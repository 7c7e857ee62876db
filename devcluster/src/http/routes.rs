//! Request routing: parses Kubernetes API paths (`/api/v1/...`, `/apis/{g}/{v}/...`, with or
//! without `namespaces/{ns}`, with subresources) and serves discovery; resource requests go to
//! `resources`. Never changes state itself.

use super::resources::{self, Target};
use super::{AppState, json_response};
use crate::discovery;
use crate::error::ApiError;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;

fn aggregated_version(accept: &str) -> Option<&'static str> {
    if !accept.contains("as=APIGroupDiscoveryList") {
        return None;
    }
    // The first acceptable media type wins; v2 is what kubectl asks for first.
    for entry in accept.split(',') {
        if entry.contains("as=APIGroupDiscoveryList") && entry.contains("g=apidiscovery.k8s.io") {
            if entry.contains("v=v2beta1") {
                return Some("v2beta1");
            }
            if entry.contains("v=v2") {
                return Some("v2");
            }
        }
    }
    None
}

fn aggregated_response(v: &Value, media_version: &str) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let ct = format!(
        "application/json;g=apidiscovery.k8s.io;v={media_version};as=APIGroupDiscoveryList"
    );
    (
        http::StatusCode::OK,
        [(http::header::CONTENT_TYPE, ct)],
        body,
    )
        .into_response()
}

pub(super) async fn route(
    state: &Arc<AppState>,
    user: &str,
    req: Request,
) -> Result<Response, ApiError> {
    let path = req.uri().path().to_string();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let accept = req
        .headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let ok = |v: Value| Ok(json_response(http::StatusCode::OK, &v));
    let get = req.method() == http::Method::GET;
    let lock = || -> Result<_, ApiError> { Ok(crate::store::lock(&state.store)) };
    match segs.as_slice() {
        [] if get => ok(
            json!({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/openapi/v3", "/version"]}),
        ),
        ["version"] if get => ok(discovery::version()),
        ["api"] if get => match aggregated_version(&accept) {
            Some(mv) => Ok(aggregated_response(
                &discovery::aggregated(&lock()?.registry, true, mv),
                mv,
            )),
            None => ok(discovery::core_versions(&state.server_address)),
        },
        ["apis"] if get => {
            let st = lock()?;
            match aggregated_version(&accept) {
                Some(mv) => Ok(aggregated_response(
                    &discovery::aggregated(&st.registry, false, mv),
                    mv,
                )),
                None => ok(discovery::group_list(&st.registry)),
            }
        }
        ["api", "v1"] if get => {
            ok(discovery::resource_list(&lock()?.registry, "", "v1").unwrap_or(Value::Null))
        }
        ["apis", g] if get => {
            discovery::group(&lock()?.registry, g).map_or_else(|| Err(ApiError::no_route()), ok)
        }
        ["apis", g, v] if get => discovery::resource_list(&lock()?.registry, g, v)
            .map_or_else(|| Err(ApiError::no_route()), ok),
        ["openapi", "v3"] if get => ok(discovery::openapi_v3_index(&lock()?.registry)),
        ["openapi", "v3", "api", "v1"] if get => {
            discovery::openapi_v3_group(&lock()?.registry, "", "v1")
                .map_or_else(|| Err(ApiError::no_route()), ok)
        }
        ["openapi", "v3", "apis", g, v] if get => {
            discovery::openapi_v3_group(&lock()?.registry, g, v)
                .map_or_else(|| Err(ApiError::no_route()), ok)
        }
        ["apis", "authentication.k8s.io", "v1", "selfsubjectreviews"]
            if req.method() == http::Method::POST =>
        {
            let review = json!({"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"creationTimestamp": null}, "status": {"userInfo": {"username": user, "groups": ["system:authenticated"]}}});
            Ok(json_response(http::StatusCode::CREATED, &review))
        }
        ["api", "v1", rest @ ..] => {
            let t = parse_target("", "v1", rest).ok_or_else(ApiError::no_route)?;
            resources::handle(state, t, req).await
        }
        ["apis", g, v, rest @ ..] => {
            let t = parse_target(g, v, rest).ok_or_else(ApiError::no_route)?;
            resources::handle(state, t, req).await
        }
        _ => Err(ApiError::no_route()),
    }
}

/// Splits the part of a path after the group-version into a resource target.
fn parse_target(group: &str, version: &str, rest: &[&str]) -> Option<Target> {
    let t = |ns: Option<&str>, plural: &str, name: Option<&str>, sub: Option<&str>| Target {
        group: group.to_string(),
        version: version.to_string(),
        ns: ns.map(str::to_string),
        plural: plural.to_string(),
        name: name.map(str::to_string),
        subresource: sub.map(str::to_string),
    };
    match rest {
        ["namespaces", ns, sub @ ("status" | "finalize")] if group.is_empty() => {
            Some(t(None, "namespaces", Some(ns), Some(sub)))
        }
        ["namespaces", ns, plural] => Some(t(Some(ns), plural, None, None)),
        ["namespaces", ns, plural, name] => Some(t(Some(ns), plural, Some(name), None)),
        ["namespaces", ns, plural, name, sub] => Some(t(Some(ns), plural, Some(name), Some(sub))),
        [plural] => Some(t(None, plural, None, None)),
        [plural, name] => Some(t(None, plural, Some(name), None)),
        [plural, name, sub] => Some(t(None, plural, Some(name), Some(sub))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let t = parse_target("", "v1", &["namespaces", "default", "pods", "p", "status"])
            .expect("parses");
        assert_eq!(
            (
                t.ns.as_deref(),
                t.plural.as_str(),
                t.name.as_deref(),
                t.subresource.as_deref()
            ),
            (Some("default"), "pods", Some("p"), Some("status"))
        );
        let t = parse_target("", "v1", &["namespaces", "default"]).expect("parses");
        assert_eq!(
            (t.ns.as_deref(), t.plural.as_str(), t.name.as_deref()),
            (None, "namespaces", Some("default"))
        );
        let t = parse_target("", "v1", &["namespaces", "x", "status"]).expect("parses");
        assert_eq!(
            (
                t.plural.as_str(),
                t.name.as_deref(),
                t.subresource.as_deref()
            ),
            ("namespaces", Some("x"), Some("status"))
        );
        let t = parse_target("g", "v", &["things"]).expect("parses");
        assert_eq!((t.ns, t.name), (None, None));
        assert_eq!(
            aggregated_version(
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
            ),
            Some("v2")
        );
        assert_eq!(aggregated_version("application/json"), None);
    }
}
