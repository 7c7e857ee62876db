//! `GET /v3/sessions/{id}/events` as a JSON page or as SSE (`stream=sse` or `Accept:
//! text/event-stream`; cursor = max(`after`/`cursor`, `Last-Event-ID`)), `GET
//! …/events/{eventId}` and `GET …/events/{eventId}/content` (the whole body of an event whose
//! body was truncated; `store::large_body`). Org key or a client token with `read`; on the SSE stream only, the
//! client token may come as `?token=` (`auth::StreamCaller`).

use axum::body::Body as HttpBody;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sealpod_resources::runtime_api::Level;
use serde_json::value::RawValue;

use crate::AppState;
use crate::auth::{Caller, Need, StreamCaller};
use crate::dto::EventsQuery;
use crate::error::{ApiError, ApiResult};
use crate::input::{Path, Query, last_event_id, page_limit, seq};
use crate::routes::session_id;
use crate::sse::{StreamParams, stream, wants_sse};
use crate::store::{EventFilter, StoredEvent};
use crate::wire::Page;

/// The routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v3/sessions/{id}/events", get(events))
        .route("/v3/sessions/{id}/events/{event_id}", get(one))
        .route("/v3/sessions/{id}/events/{event_id}/content", get(content))
}

/// The seq cursor of a page or stream: the larger of `after` and its alias `cursor`.
pub(crate) fn after_of(q: &EventsQuery) -> ApiResult<i64> {
    Ok(seq("after", q.after.as_deref())?.max(seq("cursor", q.cursor.as_deref())?))
}

/// Parses the shared filters.
pub(crate) fn filter_of(q: &EventsQuery) -> ApiResult<EventFilter> {
    let level = match q.level.as_deref() {
        None | Some("") => None,
        Some(l) => Some(Level::parse(l).ok_or_else(|| {
            ApiError::invalid("level", "level must be user, progress or internal")
        })?),
    };
    let type_ = q.type_.clone().filter(|t| !t.is_empty());
    if let Some(t) = &type_
        && t.contains('*')
        && !(t.ends_with(".*") && t.matches('*').count() == 1)
    {
        return Err(ApiError::invalid(
            "type",
            "type must be exact or `prefix.*`",
        ));
    }
    Ok(EventFilter {
        level,
        type_,
        turn_id: q.turn_id.clone().filter(|t| !t.is_empty()),
        messages_only: false,
    })
}

/// A JSON page of events.
pub(crate) async fn events_page(
    state: &AppState,
    session: &str,
    after: i64,
    filter: &EventFilter,
    limit: i64,
) -> ApiResult<Page<Box<RawValue>>> {
    let mut rows = state
        .store()
        .list_events(session, after, filter, limit + 1)
        .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = more
        .then(|| rows.last().map(|e| e.seq.to_string()))
        .flatten();
    let data = rows
        .iter()
        .map(StoredEvent::to_raw)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page {
        data,
        next_cursor: next,
    })
}

async fn events(
    State(state): State<AppState>,
    StreamCaller(caller): StreamCaller,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Response> {
    let id = session_id(&id)?;
    let ns = caller.session(&state, &id, Need::Read).await?;
    let wants_sse = wants_sse(q.stream.as_deref(), &headers);
    // Subscribed before the session is read, so an archive in between wakes the stream.
    let subscribed = wants_sse.then(|| {
        let tail = state.store().hub().tail(&id);
        let ctl = tail.watch_ctl();
        (tail, ctl)
    });
    let row = crate::adopt::session(&state, &ns, &id)
        .await?
        .ok_or(ApiError::NotFound("session"))?;
    let filter = filter_of(&q)?;
    let after = after_of(&q)?;
    if !wants_sse {
        let limit = page_limit(q.limit.as_deref(), 100, 1000)?;
        return Ok(Json(events_page(&state, &id, after, &filter, limit).await?).into_response());
    }
    let cursor = after.max(last_event_id(&headers));
    state.metrics().stream_opened();
    let guard = StreamGuard(state.clone());
    let body = stream(StreamParams {
        store: state.store().clone(),
        namespace: ns,
        session: id,
        row: row.n,
        cursor,
        filter,
        shutdown: state.shutdown(),
        ping: state.settings().sse_ping,
        archived_head: (row.status == sealpod_resources::session::Phase::Archived)
            .then_some(row.head),
        subscribed,
    });
    let body = futures::StreamExt::map(body, move |chunk| {
        let _keep = &guard;
        chunk
    });
    let mut response = HttpBody::from_stream(body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// Counts a stream closed when its body is dropped.
struct StreamGuard(AppState);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.metrics().stream_closed();
    }
}

async fn one(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, event_id)): Path<(String, String)>,
) -> ApiResult<Json<Box<RawValue>>> {
    let id = session_id(&id)?;
    let ns = caller.session(&state, &id, Need::Read).await?;
    if crate::adopt::session(&state, &ns, &id).await?.is_none() {
        return Err(ApiError::NotFound("session"));
    }
    let event = state
        .store()
        .get_event(&id, &event_id)
        .await?
        .ok_or(ApiError::NotFound("event"))?;
    Ok(Json(event.to_raw()?))
}

/// The whole body of an event, as JSON: the stored one when the event's body was truncated, the
/// body itself otherwise.
async fn content(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, event_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let id = session_id(&id)?;
    let ns = caller.session(&state, &id, Need::Read).await?;
    if crate::adopt::session(&state, &ns, &id).await?.is_none() {
        return Err(ApiError::NotFound("session"));
    }
    let body = state
        .store()
        .event_content(&id, &event_id)
        .await?
        .ok_or(ApiError::NotFound("event"))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}
