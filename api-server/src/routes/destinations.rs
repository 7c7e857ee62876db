//! `/v3/sessions/{id}/destinations` and `…/deliveries` (API.md §3.1 rows 25–32): webhook
//! destinations of a session (the secret is write-only: `has_secret`), their deliveries, and
//! redelivery (202 with the Delivery, same `webhook-id`). Org key only. URLs pass the outbound
//! guard at create and update; a refused URL is a 422 naming `url` (a 400 `invalid` when it is
//! not a URL, or points at one of the platform's own listeners). Never return a secret.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use sealpod_resources::runtime_api::Level;
use serde_json::{Map, Value};

use crate::AppState;
use crate::auth::Caller;
use crate::dto::DeliveriesQuery;
use crate::error::{ApiError, ApiResult};
use crate::input::{Body, Path, Query, check_label, page_limit};
use crate::routes::session_id;
use crate::store::outbox::{DeliveryFilter, DestinationPatch, NewDestination};
use crate::translate::{delivery_to_wire, destination_to_wire};
use crate::webhooks::guard;
use crate::wire::{self, DeliveryStatus, Page};

/// The routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v3/sessions/{id}/destinations", get(list).post(create))
        .route(
            "/v3/sessions/{id}/destinations/{did}",
            get(get_one).patch(update).delete(remove),
        )
        .route("/v3/sessions/{id}/deliveries", get(list_deliveries))
        .route("/v3/sessions/{id}/deliveries/{dlv}", get(get_delivery))
        .route(
            "/v3/sessions/{id}/deliveries/{dlv}/redeliver",
            post(redeliver),
        )
}

/// Checks a URL with the outbound guard (DNS included): 400 when it is not a URL or points at
/// one of the platform's own listeners, 422 when it is otherwise refused.
pub(crate) async fn check_url(state: &AppState, param: &str, url: &str) -> ApiResult<()> {
    check_label(param, url)?;
    match guard::check(url, state.webhooks().config()).await {
        Ok(_) => Ok(()),
        Err(guard::Refused::Invalid) => Err(ApiError::invalid(
            param,
            format!("{param} must be an absolute https URL"),
        )),
        Err(e @ guard::Refused::PlatformListener) => {
            Err(ApiError::invalid(param, format!("{param}: {e}")))
        }
        Err(e) => Err(ApiError::unprocessable(
            "destination_refused",
            format!("{param}: {e}"),
        )),
    }
}

fn opt_bool(obj: &Map<String, Value>, key: &str) -> ApiResult<Option<bool>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::invalid(key, format!("{key} must be a boolean"))),
    }
}

fn opt_level(obj: &Map<String, Value>) -> ApiResult<Option<Level>> {
    match obj.get("level") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Level::parse(s)
            .map(Some)
            .ok_or_else(|| ApiError::invalid("level", "level must be user, progress or internal")),
        Some(_) => Err(ApiError::invalid("level", "level must be a string")),
    }
}

/// `types`: absent → `None`; `null` → `Some(None)`; a list of non-empty strings.
fn opt_types(obj: &Map<String, Value>) -> ApiResult<Option<Option<Vec<String>>>> {
    match obj.get("types") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item.as_str() {
                    Some(s) if !s.is_empty() && s.len() <= 256 => {
                        check_label("types", s)?;
                        out.push(s.to_owned());
                    }
                    _ => {
                        return Err(ApiError::invalid(
                            "types",
                            "types must be a list of event types or `prefix.*` patterns",
                        ));
                    }
                }
            }
            Ok(Some(Some(out)))
        }
        Some(_) => Err(ApiError::invalid("types", "types must be a list")),
    }
}

fn opt_string(obj: &Map<String, Value>, key: &str) -> ApiResult<Option<String>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 2048 => {
            check_label(key, s)?;
            Ok(Some(s.clone()))
        }
        Some(_) => Err(ApiError::invalid(
            key,
            format!("{key} must be a non-empty string"),
        )),
    }
}

/// Parses and checks one destination of a create body. `allow_secret` is false for the inline
/// destinations of session create (API.md §3.3).
pub(crate) async fn parse_new(
    state: &AppState,
    value: &Value,
    param: &str,
    allow_secret: bool,
) -> ApiResult<NewDestination> {
    let obj = value
        .as_object()
        .ok_or_else(|| ApiError::invalid(param, format!("{param} must be an object")))?;
    let url = opt_string(obj, "url")?.ok_or_else(|| ApiError::invalid("url", "url is required"))?;
    check_url(state, "url", &url).await?;
    let secret = opt_string(obj, "secret")?;
    if secret.is_some() && !allow_secret {
        return Err(ApiError::invalid(
            "secret",
            "inline destinations cannot carry a secret; add the destination with POST /sessions/{id}/destinations",
        ));
    }
    Ok(NewDestination {
        url,
        secret,
        level: opt_level(obj)?.unwrap_or(Level::User),
        types: opt_types(obj)?.flatten(),
        include_raw: opt_bool(obj, "include_raw")?.unwrap_or(false),
        enabled: opt_bool(obj, "enabled")?.unwrap_or(true),
    })
}

/// Parses `webhook` and `destinations` of a session create into destinations.
pub(crate) async fn parse_inline(
    state: &AppState,
    webhook: Option<&Value>,
    destinations: Option<&Value>,
) -> ApiResult<Vec<NewDestination>> {
    let mut out = Vec::new();
    match webhook {
        None | Some(Value::Null) => {}
        Some(Value::String(url)) => {
            check_url(state, "webhook", url).await?;
            out.push(NewDestination {
                url: url.clone(),
                secret: None,
                level: Level::User,
                types: None,
                include_raw: false,
                enabled: true,
            });
        }
        Some(_) => return Err(ApiError::invalid("webhook", "webhook must be a URL string")),
    }
    match destinations {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) if items.len() <= 16 => {
            for item in items {
                out.push(parse_new(state, item, "destinations", false).await?);
            }
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "destinations",
                "destinations must be a list of at most 16 destinations",
            ));
        }
    }
    Ok(out)
}

async fn owned_session(state: &AppState, caller: &Caller, id: &str) -> ApiResult<String> {
    let ns = caller.org()?;
    let id = session_id(id)?;
    match crate::adopt::session(state, ns, &id).await? {
        Some(_) => Ok(id),
        None => Err(ApiError::NotFound("session")),
    }
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(req): Body<Value>,
) -> ApiResult<(StatusCode, Json<wire::Destination>)> {
    let ns = caller.org()?.to_owned();
    let id = session_id(&id)?;
    let new = parse_new(&state, &req, "body", true).await?;
    let dest = state
        .store()
        .create_destination(&ns, &id, new)
        .await?
        .ok_or(ApiError::NotFound("session"))?;
    Ok((StatusCode::CREATED, Json(destination_to_wire(&dest))))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Page<wire::Destination>>> {
    let id = owned_session(&state, &caller, &id).await?;
    let data = state
        .store()
        .list_destinations(&id)
        .await?
        .iter()
        .map(destination_to_wire)
        .collect();
    Ok(Json(Page {
        data,
        next_cursor: None,
    }))
}

async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, did)): Path<(String, String)>,
) -> ApiResult<Json<wire::Destination>> {
    let id = owned_session(&state, &caller, &id).await?;
    let d = state
        .store()
        .get_destination(&id, &did)
        .await?
        .ok_or(ApiError::NotFound("destination"))?;
    Ok(Json(destination_to_wire(&d)))
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, did)): Path<(String, String)>,
    Body(req): Body<Value>,
) -> ApiResult<Json<wire::Destination>> {
    let id = owned_session(&state, &caller, &id).await?;
    let obj = req
        .as_object()
        .ok_or_else(|| ApiError::invalid_json(None, "the body must be an object"))?;
    let url = opt_string(obj, "url")?;
    if let Some(u) = &url {
        check_url(&state, "url", u).await?;
    }
    let patch = DestinationPatch {
        url,
        secret: opt_string(obj, "secret")?,
        level: opt_level(obj)?,
        types: opt_types(obj)?,
        include_raw: opt_bool(obj, "include_raw")?,
        enabled: opt_bool(obj, "enabled")?,
    };
    let d = state
        .store()
        .update_destination(&id, &did, patch)
        .await?
        .ok_or(ApiError::NotFound("destination"))?;
    Ok(Json(destination_to_wire(&d)))
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, did)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id = owned_session(&state, &caller, &id).await?;
    if state.store().delete_destination(&id, &did).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("destination"))
    }
}

async fn list_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<DeliveriesQuery>,
) -> ApiResult<Json<Page<wire::Delivery>>> {
    let id = owned_session(&state, &caller, &id).await?;
    let limit = page_limit(q.limit.as_deref(), 100, 1000)?;
    let status = match q.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(DeliveryStatus::from_wire(s).ok_or_else(|| {
            ApiError::invalid(
                "status",
                "status must be pending, delivering, delivered, failed or dead_letter",
            )
        })?),
    };
    let filter = DeliveryFilter {
        destination: q.destination.filter(|s| !s.is_empty()),
        status,
        after: q.after.or(q.cursor).filter(|s| !s.is_empty()),
    };
    let mut rows = state
        .store()
        .list_deliveries(&id, &filter, limit + 1)
        .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = more.then(|| rows.last().map(|d| d.id.clone())).flatten();
    Ok(Json(Page {
        data: rows.iter().map(delivery_to_wire).collect(),
        next_cursor: next,
    }))
}

async fn get_delivery(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, dlv)): Path<(String, String)>,
) -> ApiResult<Json<wire::Delivery>> {
    let id = owned_session(&state, &caller, &id).await?;
    let d = state
        .store()
        .get_delivery(&id, &dlv)
        .await?
        .ok_or(ApiError::NotFound("delivery"))?;
    Ok(Json(delivery_to_wire(&d)))
}

async fn redeliver(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, dlv)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<wire::Delivery>)> {
    let id = owned_session(&state, &caller, &id).await?;
    let d = state
        .store()
        .redeliver(&id, &dlv)
        .await?
        .ok_or(ApiError::NotFound("delivery"))?;
    Ok((StatusCode::ACCEPTED, Json(delivery_to_wire(&d))))
}
