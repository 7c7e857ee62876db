//! The SDK's routes for hosted integrations: repositories and repository sources, GitHub apps
//! and installations, GitHub deploy inspection and agent import, an agent's deployment source,
//! Slack, and pull-request watches. They connect a hosted service to third-party accounts;
//! a self-hosted sealpod offers none of them. Each answers every caller with an org key the same
//! way, `422 integration_not_supported`, naming the integration, never `404` or `500`
//! (`docs/api.md`, "Hosted integrations").

use axum::Router;
use axum::routing::{MethodFilter, on};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

/// The error type of every route here.
pub(crate) const NOT_SUPPORTED: &str = "integration_not_supported";

/// `(path, methods, integration)`: every hosted-integration route the SDK calls.
const ROUTES: &[(&str, &[MethodFilter], &str)] = &[
    (
        "/v3/repos",
        &[MethodFilter::GET, MethodFilter::POST],
        "repositories",
    ),
    (
        "/v3/repos/{id}",
        &[MethodFilter::GET, MethodFilter::PATCH],
        "repositories",
    ),
    (
        "/v3/sessions/{id}/sources",
        &[MethodFilter::GET],
        "repository sources",
    ),
    (
        "/v3/github/apps",
        &[MethodFilter::GET, MethodFilter::POST],
        "GitHub apps",
    ),
    (
        "/v3/github/apps/{id}",
        &[MethodFilter::PATCH, MethodFilter::DELETE],
        "GitHub apps",
    ),
    (
        "/v3/github/apps/manifest",
        &[MethodFilter::POST],
        "GitHub apps",
    ),
    (
        "/v3/github/apps/manifest/conversions",
        &[MethodFilter::POST],
        "GitHub apps",
    ),
    (
        "/v3/github/installations",
        &[MethodFilter::GET],
        "GitHub installations",
    ),
    (
        "/v3/github/deploy-app/inspect",
        &[MethodFilter::POST],
        "GitHub deploys",
    ),
    (
        "/v3/agents/import",
        &[MethodFilter::POST],
        "agent import from GitHub",
    ),
    (
        "/v3/agents/{id}/deployment-source",
        &[MethodFilter::GET, MethodFilter::POST, MethodFilter::DELETE],
        "deployment sources",
    ),
    (
        "/v3/agents/{id}/slack",
        &[MethodFilter::GET, MethodFilter::POST, MethodFilter::DELETE],
        "Slack",
    ),
    (
        "/v3/agents/{id}/slack/manifest",
        &[MethodFilter::POST],
        "Slack",
    ),
    (
        "/v3/agents/{id}/slack/managed",
        &[MethodFilter::GET, MethodFilter::DELETE],
        "Slack",
    ),
    (
        "/v3/agents/{id}/slack/managed/authorize",
        &[MethodFilter::POST],
        "Slack",
    ),
    (
        "/v3/slack/managed/connections",
        &[MethodFilter::GET],
        "Slack",
    ),
    (
        "/v3/sessions/{id}/watches",
        &[MethodFilter::GET, MethodFilter::POST],
        "pull-request watches",
    ),
    (
        "/v3/sessions/{id}/watches/{watch_id}",
        &[MethodFilter::DELETE],
        "pull-request watches",
    ),
];

/// The refusal of `integration`.
pub(crate) fn not_supported(integration: &str) -> ApiError {
    ApiError::unprocessable(
        NOT_SUPPORTED,
        format!(
            "{integration}: a hosted integration that sealpod does not offer (see \"Hosted \
             integrations\" in docs/api.md)"
        ),
    )
}

/// The routes.
pub(crate) fn router() -> Router<AppState> {
    ROUTES
        .iter()
        .fold(Router::new(), |router, &(path, methods, integration)| {
            let methods = methods[1..].iter().fold(methods[0], |all, m| all.or(*m));
            router.route(
                path,
                on(methods, move |caller: Caller| refuse(caller, integration)),
            )
        })
}

/// Authenticates (an org key), then refuses.
async fn refuse(caller: Caller, integration: &'static str) -> ApiResult<()> {
    caller.org()?;
    Err(not_supported(integration))
}
