//! `/v3/credentials`: create (sealed on arrival with the cluster's public key; `503
//! sealing_unavailable` until the operator has published it), list, rotate, set default,
//! delete. Also the inline-key helpers agents use. The key is never returned, logged or stored
//! in plaintext: only `last4`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, patch, put};
use axum::{Json, Router};
use kube::{Resource, ResourceExt};
use sealpod_resources::Credential;
use sealpod_resources::credential::{CredentialSpec, default_allowed_hosts};
use sealpod_resources::ids::{Id, IdKind};
use sealpod_resources::secret::Secret;
use serde_json::json;

use crate::AppState;
use crate::auth::Caller;
use crate::dto::{
    CreateCredential, RotateCredential, SetDefault, check_key, check_name, check_provider,
};
use crate::error::{ApiError, ApiResult};
use crate::input::{Body, Path};
use crate::translate::{credential_to_wire, name_of};
use crate::wire::{self, Page};

/// The routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v3/credentials", get(list).post(create))
        .route("/v3/credentials/default", put(set_default))
        .route(
            "/v3/credentials/{id}",
            patch(rotate).delete(remove).get(get_one),
        )
}

async fn sealing_keys(state: &AppState) -> ApiResult<sealpod_resources::sealing::PublicKeySet> {
    state
        .cluster()
        .sealing_public_keys()
        .await?
        .ok_or(ApiError::Unavailable {
            kind: "sealing_unavailable",
            message: "the sealing public key is not published yet; try again shortly".into(),
        })
}

/// Creates a credential from a key (sealed at once) and returns the object.
pub(crate) async fn create_credential(
    state: &AppState,
    ns: &str,
    provider: &str,
    key: &Secret,
    display_name: Option<String>,
    is_default: bool,
) -> ApiResult<Credential> {
    let hosts = default_allowed_hosts(provider);
    if hosts.is_empty() {
        return Err(ApiError::invalid(
            "provider",
            format!(
                "provider `{provider}` has no known API host; use one of: {}",
                sealpod_resources::provider::names()
            ),
        ));
    }
    let public = sealing_keys(state).await?;
    let name = Id::generate(IdKind::Credential).object_name();
    let sealed = public
        .seal(
            &CredentialSpec::sealing_context(ns, &name),
            key.expose().as_bytes(),
        )
        .map_err(ApiError::internal)?;
    if is_default {
        clear_defaults(state, ns, provider, None).await?;
    }
    let credential = Credential::new(
        &name,
        CredentialSpec {
            display_name,
            provider: provider.to_owned(),
            allowed_hosts: hosts,
            headers: None,
            sealed_value: Some(sealed.as_str().to_owned()),
            sealed_secret_ref: None,
            default: is_default,
        },
    );
    Ok(state
        .cluster()
        .create_credential(ns, &credential, &key.last4())
        .await?)
}

/// Seals a new value for an existing credential.
pub(crate) async fn rotate_credential(
    state: &AppState,
    ns: &str,
    credential: &Credential,
    key: &Secret,
) -> ApiResult<Credential> {
    let public = sealing_keys(state).await?;
    let sealed = public
        .seal(
            &CredentialSpec::sealing_context(ns, &credential.name_any()),
            key.expose().as_bytes(),
        )
        .map_err(ApiError::internal)?;
    Ok(state
        .cluster()
        .rotate_credential(ns, credential, &sealed, &key.last4())
        .await?)
}

async fn clear_defaults(
    state: &AppState,
    ns: &str,
    provider: &str,
    keep: Option<&str>,
) -> ApiResult<()> {
    for c in state.cluster().list_credentials(ns).await? {
        if c.spec.default && c.spec.provider == provider && Some(c.name_any().as_str()) != keep {
            state
                .cluster()
                .patch_credential(ns, &c.name_any(), &json!({"spec": {"default": false}}))
                .await?;
        }
    }
    Ok(())
}

async fn find(state: &AppState, ns: &str, id: &str) -> ApiResult<Credential> {
    let name = name_of(id, IdKind::Credential).ok_or(ApiError::NotFound("credential"))?;
    state
        .cluster()
        .get_credential(ns, &name)
        .await?
        .ok_or(ApiError::NotFound("credential"))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<CreateCredential>,
) -> ApiResult<(StatusCode, Json<wire::Credential>)> {
    let ns = caller.org()?.to_owned();
    let provider = req
        .provider
        .clone()
        .unwrap_or_else(|| "anthropic".to_owned());
    check_provider(&provider)?;
    let key = Secret::new(
        req.key
            .clone()
            .ok_or_else(|| ApiError::invalid("key", "key is required"))?,
    );
    check_key("key", key.expose())?;
    if let Some(name) = &req.name {
        check_name("name", name)?;
    }
    let created = create_credential(
        &state,
        &ns,
        &provider,
        &key,
        req.name.clone(),
        req.is_default.unwrap_or(false),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(credential_to_wire(&created))))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Page<wire::Credential>>> {
    let ns = caller.org()?;
    let mut items = state.cluster().list_credentials(ns).await?;
    items.sort_by(|a, b| {
        b.meta()
            .creation_timestamp
            .cmp(&a.meta().creation_timestamp)
            .then_with(|| a.name_any().cmp(&b.name_any()))
    });
    Ok(Json(Page {
        data: items.iter().map(credential_to_wire).collect(),
        next_cursor: None,
    }))
}

async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<wire::Credential>> {
    let ns = caller.org()?;
    Ok(Json(credential_to_wire(&find(&state, ns, &id).await?)))
}

async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(req): Body<RotateCredential>,
) -> ApiResult<Json<wire::Credential>> {
    let ns = caller.org()?.to_owned();
    let credential = find(&state, &ns, &id).await?;
    let key = Secret::new(
        req.key
            .clone()
            .ok_or_else(|| ApiError::invalid("key", "key is required"))?,
    );
    check_key("key", key.expose())?;
    let rotated = rotate_credential(&state, &ns, &credential, &key).await?;
    Ok(Json(credential_to_wire(&rotated)))
}

async fn set_default(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<SetDefault>,
) -> ApiResult<Json<wire::Credential>> {
    let ns = caller.org()?.to_owned();
    let id = req
        .credential
        .clone()
        .ok_or_else(|| ApiError::invalid("credential", "credential is required"))?;
    let credential = find(&state, &ns, &id).await?;
    if let Some(p) = &req.provider
        && *p != credential.spec.provider
    {
        return Err(ApiError::invalid(
            "provider",
            format!(
                "credential {id} is for provider `{}`",
                credential.spec.provider
            ),
        ));
    }
    clear_defaults(
        &state,
        &ns,
        &credential.spec.provider,
        Some(&credential.name_any()),
    )
    .await?;
    let updated = state
        .cluster()
        .patch_credential(
            &ns,
            &credential.name_any(),
            &json!({"spec": {"default": true}}),
        )
        .await?;
    Ok(Json(credential_to_wire(&updated)))
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let ns = caller.org()?.to_owned();
    let credential = find(&state, &ns, &id).await?;
    state
        .cluster()
        .delete_credential(&ns, &credential.name_any())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
