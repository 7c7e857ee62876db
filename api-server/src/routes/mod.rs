//! The `/v3` routes, one module per resource; this root only merges them. Each handler
//! authenticates through the `Caller` extractor, translates, and answers through `ApiError`.
//!
//! Routes carry their whole path (`/v3/sessions/{id}`) rather than being nested under `/v3`: a
//! nested route rewrites every request's URI on the way in, a cost paid on each request.

pub(crate) mod agents;
pub(crate) mod client_tokens;
pub(crate) mod credentials;
pub(crate) mod deployments;
pub(crate) mod destinations;
pub(crate) mod events;
pub(crate) mod integrations;
pub(crate) mod messages;
pub(crate) mod revisions;
pub(crate) mod schedules;
pub(crate) mod sessions;
pub(crate) mod turns;

use axum::Router;

use crate::AppState;
use crate::dto::PageQuery;
use crate::error::{ApiError, ApiResult};
use crate::input::{cursor, page_limit};
use crate::wire::Page;
use sealpod_resources::ids::{Id, IdKind};

/// Every `/v3` route (merged into the public router at its root).
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .merge(agents::router())
        .merge(revisions::router())
        .merge(deployments::router())
        .merge(credentials::router())
        .merge(sessions::router())
        .merge(events::router())
        .merge(messages::router())
        .merge(client_tokens::router())
        .merge(turns::router())
        .merge(destinations::router())
        .merge(schedules::router())
        .merge(integrations::router())
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
}

/// Checks a session id from the path (`404` when it cannot name a session).
pub(crate) fn session_id(id: &str) -> Result<String, ApiError> {
    Id::parse_kind(id, IdKind::Session)
        .map(|_| id.to_owned())
        .map_err(|_| ApiError::NotFound("session"))
}

/// One page of `items` after the opaque offset cursor of `q`.
pub(crate) fn page<T>(items: Vec<T>, q: &PageQuery) -> ApiResult<Page<T>> {
    let limit = page_limit(q.limit.as_deref(), 50, 200)? as usize;
    let offset = usize::try_from(cursor(q.cursor.as_deref())?.unwrap_or(0))
        .map_err(|_| ApiError::invalid("cursor", "unknown cursor"))?;
    let total = items.len();
    let data = items.into_iter().skip(offset).take(limit).collect();
    Ok(Page {
        data,
        next_cursor: (offset + limit < total).then(|| (offset + limit).to_string()),
    })
}
