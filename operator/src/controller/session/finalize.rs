//! The Session finalizer: revoke the session's runtime tokens with the API server before the
//! Session goes (its children are garbage-collected through their owner references).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use sealpod_resources::Session;
use sealpod_resources::runtime_token::{RUNTIME_SECRET_TOKEN_ENTRY, Scope};
use sealpod_resources::secret::Secret as SecretString;

use super::super::Context;
use super::entry;
use crate::build;
use crate::error::{Error, RevokeError};

/// Revokes the session's runtime tokens with the API server (`POST /runtime/v1/revoke` with a
/// token of the session). Unreachable: retried with backoff, then given up after the revoke
/// timeout (logged) so deletion is never blocked for good.
pub(super) async fn cleanup(session: Arc<Session>, ctx: &Context) -> Result<Action, Error> {
    let ns = session.namespace().unwrap_or_default();
    let name = session.name_any();
    let uid = session.uid().unwrap_or_default();
    ctx.restarts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&uid);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let runtime = secrets
        .get_opt(&build::runtime_secret_name(&super::claim::recorded(
            &session,
        )))
        .await
        .map_err(Error::kube("get runtime secret"))?;
    // Revocation covers every runtime token of this Session object, so any valid one will do:
    // the session's own, or (its Secret already gone, e.g. the namespace is being deleted and took
    // its Secrets first) a fresh one minted for the purpose.
    let token = entry(runtime.as_ref(), RUNTIME_SECRET_TOKEN_ENTRY)
        .map(SecretString::new)
        .unwrap_or_else(|| ctx.token_key.mint(Scope::Runtime, &ns, &name, &uid));
    match revoke(ctx, &token).await {
        Ok(()) => {
            ctx.revokes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&uid);
            tracing::info!(namespace = %ns, name = %name, "runtime tokens revoked");
            Ok(Action::await_change())
        }
        Err(error) => {
            let first = *ctx
                .revokes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(uid.clone())
                .or_insert_with(Instant::now);
            if first.elapsed() >= Duration::from_secs(ctx.config.revoke_timeout_seconds) {
                tracing::error!(
                    namespace = %ns, name = %name, error = %error,
                    "giving up revoking runtime tokens; the finalizer is removed anyway"
                );
                ctx.revokes
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&uid);
                Ok(Action::await_change())
            } else {
                Err(Error::Revoke(error))
            }
        }
    }
}

/// How long the API server has to answer a revoke.
const REVOKE_WAIT: Duration = Duration::from_secs(5);

async fn revoke(ctx: &Context, token: &SecretString) -> Result<(), RevokeError> {
    let url = format!("{}/runtime/v1/revoke", ctx.settings.runtime_api_url);
    let request = http::Request::post(&url)
        .header(
            http::header::AUTHORIZATION,
            format!("Bearer {}", token.expose()),
        )
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from_static(b"{}")))
        .map_err(|source| RevokeError::Request {
            url: url.clone(),
            source,
        })?;
    let response = tokio::time::timeout(REVOKE_WAIT, ctx.http.request(request))
        .await
        .map_err(|_| RevokeError::Timeout {
            url: url.clone(),
            secs: REVOKE_WAIT.as_secs(),
        })?
        .map_err(|source| RevokeError::Send {
            url: url.clone(),
            source,
        })?;
    match response.status().as_u16() {
        200..=299 => Ok(()),
        // The token is already unknown or revoked: nothing is left to revoke.
        401 => Ok(()),
        code => Err(RevokeError::Status { url, code }),
    }
}
