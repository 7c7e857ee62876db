//! The reconcile pipeline of a Session, one named step each: [`pin`] the agent's configuration
//! when the snapshot is missing, validate it, [`bind`] the credential, decide the pod (the
//! session's own or one claimed from the warm pool, [`super::claim`]), read the children already
//! written ([`Existing`]) and keep their [`Tokens`], build the [`session_plan`] (pure; the
//! children themselves come from `build`), [`apply_children`] with server-side apply, then hand
//! the pod to [`super::pod`] and write status ([`super::status`]).
//!
//! Only the steps that say so call the cluster; none may log a credential value or token.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use sealpod_resources::agent::SandboxSpec;
use sealpod_resources::conditions::reasons;
use sealpod_resources::labels::OPERATOR_FIELD_MANAGER;
use sealpod_resources::runtime_token::{
    PROXY_SECRET_EVENTS_TOKEN_ENTRY, RUNTIME_SECRET_TOKEN_ENTRY, Scope, TokenKey,
};
use sealpod_resources::secret::{SealedToken, Secret as SecretString};
use sealpod_resources::session::AgentSnapshot;
use sealpod_resources::{Agent, Credential, Session};
use serde_json::json;

use super::super::agent::{resolve_credential, snapshot_of};
use super::super::{Context, CredentialError, SAFETY_REQUEUE, find_credential, open_credential};
use super::claim;
use super::pod::lifecycle;
use super::status::{Draft, report};
use super::{apply_child, entry};
use crate::build::{self, BoundCredential, SessionPlan, proxy_config::stored_sealed_token};
use crate::error::Error;
use crate::validate;

/// How often a Session whose Agent does not exist looks again (the Agent may be created later).
const AGENT_MISSING_REQUEUE: Duration = Duration::from_secs(60);

/// Runs the pipeline for a Session that is not being deleted.
pub(super) async fn apply(session: Arc<Session>, ctx: &Context) -> Result<Action, Error> {
    let ns = session.namespace().unwrap_or_default();
    let name = session.name_any();
    let mut draft = Draft::of(&session);

    // fetch
    let Some(snapshot) = session.spec.agent_snapshot.clone() else {
        return match pin(ctx, &session, &ns).await? {
            // The spec change retriggers this reconcile with the snapshot in place.
            Pinned::Done => Ok(Action::await_change()),
            Pinned::AgentMissing(message) => {
                draft.blocked(reasons::INVALID, &message);
                report(ctx, &session, draft, Action::requeue(AGENT_MISSING_REQUEUE)).await
            }
        };
    };

    // validate
    if let Err(message) =
        validate::agent_config(&snapshot.model, &snapshot.runtime, snapshot.egress.as_ref())
    {
        draft.invalid(&message);
        return report(ctx, &session, draft, Action::await_change()).await;
    }

    // bind the credential
    let (credential, value) = match bind(ctx, &ns, &snapshot).await {
        Ok(bound) => bound,
        Err(CredentialError::Failed(e)) => return Err(e),
        Err(CredentialError::Problem(problem)) => {
            draft.unbound(problem);
            // The Credential and sealed-Secret watches retrigger when it appears or changes.
            return report(ctx, &session, draft, Action::requeue(SAFETY_REQUEUE)).await;
        }
    };

    // the pod: the session's own, or one claimed from the agent's warm pool
    let agent = Api::<Agent>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&session.spec.agent_ref)
        .await
        .map_err(Error::kube("get agent"))?;
    // The sandbox shape of the Agent (the defaults when the Agent is gone).
    let sandbox = agent
        .as_ref()
        .and_then(|a| a.spec.sandbox.clone())
        .unwrap_or_default();
    let pod = claim::sandbox_pod(ctx, &session, agent.as_ref(), || {
        let unbound = Tokens::unbound();
        let template = session_plan(
            &session,
            snapshot.clone(),
            &credential,
            SecretString::new(""),
            sandbox.clone(),
            unbound,
            String::new(),
        );
        build::pool::template_hash(&template, &ctx.settings)
    })
    .await?;

    // build
    let uid = session.uid().unwrap_or_default();
    let existing = Existing::get(ctx, &ns, &pod.name, &uid).await?;
    let tokens = Tokens::kept_or_minted(&existing, &ctx.token_key, &ns, &name, &uid);
    let plan = session_plan(
        &session,
        snapshot,
        &credential,
        value,
        sandbox,
        tokens,
        pod.name,
    );

    // apply
    apply_children(ctx, &plan, &existing).await?;
    if pod.just_claimed {
        claim::announce(ctx, &ns, &plan.pod).await?;
    }
    draft.bound(&plan.credential);

    // lifecycle, then status
    let action = lifecycle(ctx, &session, &plan, &mut draft).await?;
    report(ctx, &session, draft, action).await
}

/// What pinning the agent's configuration did.
enum Pinned {
    /// The snapshot is written; its change brings the Session back.
    Done,
    /// The Agent does not exist (the message says which).
    AgentMissing(String),
}

/// Pins the agent's configuration into a session applied without one.
async fn pin(ctx: &Context, session: &Session, ns: &str) -> Result<Pinned, Error> {
    let agents: Api<Agent> = Api::namespaced(ctx.client.clone(), ns);
    let Some(agent) = agents
        .get_opt(&session.spec.agent_ref)
        .await
        .map_err(Error::kube("get agent"))?
    else {
        return Ok(Pinned::AgentMissing(format!(
            "agent `{}` not found",
            session.spec.agent_ref
        )));
    };
    let resolved =
        resolve_credential(ctx, ns, agent.spec.credential.as_deref(), &agent.spec.model).await?;
    let skills = super::super::revision::active_skills(ctx, &agent).await?;
    let snapshot = snapshot_of(&agent, &resolved, skills);
    let sessions: Api<Session> = Api::namespaced(ctx.client.clone(), ns);
    sessions
        .patch(
            &session.name_any(),
            &PatchParams {
                field_manager: Some(OPERATOR_FIELD_MANAGER.to_owned()),
                ..PatchParams::default()
            },
            &Patch::Merge(json!({ "spec": { "agentSnapshot": snapshot } })),
        )
        .await
        .map_err(Error::kube("pin agent snapshot"))?;
    Ok(Pinned::Done)
}

/// The Credential a session's pinned reference names, and its opened value.
async fn bind(
    ctx: &Context,
    ns: &str,
    snapshot: &AgentSnapshot,
) -> Result<(Credential, SecretString), CredentialError> {
    let cred = find_credential(ctx, ns, &snapshot.credential).await?;
    let opened = open_credential(ctx, &cred).await?;
    Ok((cred, opened.value))
}

/// The session's two Secrets as they are now (None: not written yet, or another Session
/// object's: a Session deleted and applied again under the same name finds the Secrets of the
/// deleted one until garbage collection removes them, and must not keep their tokens). A warm
/// pool pod's Secrets (owned by the Agent until the session first writes them) are kept.
struct Existing {
    proxy: Option<Secret>,
    runtime: Option<Secret>,
}

impl Existing {
    async fn get(ctx: &Context, ns: &str, name: &str, uid: &str) -> Result<Existing, Error> {
        let ours = |secret: Option<Secret>| {
            secret.filter(|s| {
                s.owner_references()
                    .iter()
                    .all(|o| o.kind != <Session as kube::Resource>::kind(&()) || o.uid == uid)
            })
        };
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
        let proxy = secrets
            .get_opt(&build::proxy_secret_name(name))
            .await
            .map_err(Error::kube("get proxy secret"))?;
        let runtime = secrets
            .get_opt(&build::runtime_secret_name(name))
            .await
            .map_err(Error::kube("get runtime secret"))?;
        Ok(Existing {
            proxy: ours(proxy),
            runtime: ours(runtime),
        })
    }
}

/// The session's tokens.
struct Tokens {
    /// Stands in for the credential's value inside the sandbox.
    sealed: SealedToken,
    /// Proxy scope: the proxy's egress events.
    events: SecretString,
    /// Runtime scope: the runtime's calls to the API server.
    runtime: SecretString,
}

impl Tokens {
    /// No tokens at all: what a plan whose only use is its template fingerprint holds.
    fn unbound() -> Tokens {
        Tokens {
            sealed: SealedToken::generate(),
            events: SecretString::new(""),
            runtime: SecretString::new(""),
        }
    }

    /// Tokens are random per session: the ones already written are kept so they stay stable;
    /// only missing (or unreadable) ones are made.
    fn kept_or_minted(
        existing: &Existing,
        key: &TokenKey,
        ns: &str,
        name: &str,
        uid: &str,
    ) -> Tokens {
        let proxy = existing.proxy.as_ref();
        Tokens {
            sealed: entry(proxy, build::PROXY_CONFIG_ENTRY)
                .and_then(|yaml| stored_sealed_token(&yaml))
                .and_then(|s| SealedToken::parse(&s).ok())
                .unwrap_or_else(SealedToken::generate),
            events: entry(proxy, PROXY_SECRET_EVENTS_TOKEN_ENTRY)
                .map(SecretString::new)
                .unwrap_or_else(|| key.mint(Scope::Proxy, ns, name, uid)),
            runtime: entry(existing.runtime.as_ref(), RUNTIME_SECRET_TOKEN_ENTRY)
                .map(SecretString::new)
                .unwrap_or_else(|| key.mint(Scope::Runtime, ns, name, uid)),
        }
    }
}

/// Everything the children are built from (pure).
fn session_plan(
    session: &Session,
    snapshot: AgentSnapshot,
    credential: &Credential,
    value: SecretString,
    sandbox: SandboxSpec,
    tokens: Tokens,
    pod: String,
) -> SessionPlan {
    SessionPlan {
        namespace: session.namespace().unwrap_or_default(),
        name: session.name_any(),
        uid: session.uid().unwrap_or_default(),
        agent: session.spec.agent_ref.clone(),
        credential: BoundCredential::of(credential, tokens.sealed, value),
        snapshot,
        sandbox,
        runtime_token: tokens.runtime,
        events_token: tokens.events,
        pod,
    }
}

/// Builds the children other than the pod and applies them: the workspace claim (when
/// configured), the two Secrets (only when they differ from `existing`) and the NetworkPolicy.
async fn apply_children(
    ctx: &Context,
    plan: &SessionPlan,
    existing: &Existing,
) -> Result<(), Error> {
    let settings = &ctx.settings;
    let ns = &plan.namespace;
    if settings.workspace_claim {
        apply_child(
            ctx,
            ns,
            &build::workspace_claim(plan, settings),
            "apply workspace claim",
        )
        .await?;
    }
    // The two Secrets were just read: re-apply only what differs (most reconciles change
    // nothing, and these are the largest writes).
    let runtime_secret = build::runtime_secret(plan);
    if !up_to_date(existing.runtime.as_ref(), &runtime_secret) {
        apply_child(ctx, ns, &runtime_secret, "apply runtime secret").await?;
    }
    let proxy_secret = build::proxy_secret(plan, settings).map_err(|source| Error::Build {
        what: "proxy secret",
        source,
    })?;
    if !up_to_date(existing.proxy.as_ref(), &proxy_secret) {
        apply_child(ctx, ns, &proxy_secret, "apply proxy secret").await?;
    }
    apply_child(
        ctx,
        ns,
        &build::network_policy(plan, settings),
        "apply network policy",
    )
    .await?;
    Ok(())
}

/// Whether `existing` already holds everything `desired` sets.
fn up_to_date(existing: Option<&Secret>, desired: &Secret) -> bool {
    let Some(e) = existing else {
        return false;
    };
    let subset = |want: Option<&std::collections::BTreeMap<String, String>>,
                  have: &std::collections::BTreeMap<String, String>| {
        want.into_iter()
            .flatten()
            .all(|(k, v)| have.get(k) == Some(v))
    };
    e.data == desired.data
        && e.type_ == desired.type_
        && subset(desired.metadata.labels.as_ref(), e.labels())
        && subset(desired.metadata.annotations.as_ref(), e.annotations())
        && e.owner_references()
            == desired
                .metadata
                .owner_references
                .as_deref()
                .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixture;

    #[test]
    fn a_secret_is_up_to_date_only_when_it_holds_everything_built() {
        let plan = fixture::plan();
        let desired = build::proxy_secret(&plan, &fixture::settings()).expect("builds");
        assert!(!up_to_date(None, &desired));
        let mut existing = desired.clone();
        existing
            .metadata
            .labels
            .get_or_insert_default()
            .insert("extra".into(), "kept".into());
        assert!(
            up_to_date(Some(&existing), &desired),
            "extra labels are someone else's"
        );
        let mut rotated = existing.clone();
        rotated.data.get_or_insert_default().insert(
            build::PROXY_VALUE_ENTRY.into(),
            k8s_openapi::ByteString(b"old".to_vec()),
        );
        assert!(!up_to_date(Some(&rotated), &desired));
        let mut reannotated = existing.clone();
        reannotated.metadata.annotations = None;
        assert!(!up_to_date(Some(&reannotated), &desired));
        let mut orphan = existing;
        orphan.metadata.owner_references = None;
        assert!(!up_to_date(Some(&orphan), &desired));
    }
}
