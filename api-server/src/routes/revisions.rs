//! `/v3/agents/{id}/revisions`: an agent's immutable, numbered revisions, newest first;
//! `…/revisions/{rev}` by number or `rev_…` id, with its skill file manifest;
//! `POST …/revisions/{rev}/activate` (rollback to an earlier one, promote a staged one); and
//! `/v3/agents/{id}/activations`, the log of the active pointer's moves, newest first.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use kube::ResourceExt;
use sealpod_resources::revision::active_number;

use crate::AppState;
use crate::auth::Caller;
use crate::dto::PageQuery;
use crate::error::ApiResult;
use crate::input::{Path, Query};
use crate::revisions;
use crate::routes::agents::find_agent;
use crate::routes::page;
use crate::translate::{activations_to_wire, revision_id, revision_to_wire};
use crate::wire::{self, Page};

/// The routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v3/agents/{id}/revisions", get(list))
        .route("/v3/agents/{id}/revisions/{rev}", get(get_one))
        .route("/v3/agents/{id}/revisions/{rev}/activate", post(activate))
        .route("/v3/agents/{id}/activations", get(activations))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Page<wire::RevisionDetail>>> {
    let ns = caller.org()?;
    let agent = find_agent(&state, ns, &id).await?;
    // The active one exists before the list is read (an agent older than revisions has none).
    revisions::active(&state, &agent).await?;
    let mut items = state
        .cluster()
        .list_revisions(ns, &agent.name_any())
        .await?;
    items.reverse();
    let wire = items.iter().map(|r| revision_to_wire(&agent, r)).collect();
    Ok(Json(page(wire, &q)?))
}

async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, rev)): Path<(String, String)>,
) -> ApiResult<Json<wire::RevisionDetail>> {
    let ns = caller.org()?;
    let agent = find_agent(&state, ns, &id).await?;
    let revision = revisions::find(&state, &agent, &rev).await?;
    Ok(Json(revision_to_wire(&agent, &revision)))
}

async fn activate(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, rev)): Path<(String, String)>,
) -> ApiResult<Json<wire::Activated>> {
    let ns = caller.org()?;
    let agent = find_agent(&state, ns, &id).await?;
    let revision = revisions::find(&state, &agent, &rev).await?;
    let reason = if revision.spec.number < active_number(&agent) {
        "rollback"
    } else {
        "promote"
    };
    let agent = revisions::activate_revision(&state, agent, &revision, reason).await?;
    Ok(Json(wire::Activated {
        active_revision_id: revision_id(&agent, active_number(&agent)),
    }))
}

async fn activations(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Page<wire::Activation>>> {
    let ns = caller.org()?;
    let agent = find_agent(&state, ns, &id).await?;
    revisions::active(&state, &agent).await?;
    let items = state
        .cluster()
        .list_revisions(ns, &agent.name_any())
        .await?;
    Ok(Json(page(activations_to_wire(&agent, &items), &q)?))
}
