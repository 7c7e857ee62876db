//! The reconcile pipeline of a Session: pin the agent's configuration when the snapshot is
//! missing, validate, bind the credential, build the children (pure, `build`) and apply them with
//! server-side apply, then hand the pod to [`super::pod`].

use super::pod::lifecycle;
use super::*;

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
    let snapshot = AgentSnapshot {
        model: agent.spec.model.clone(),
        runtime: agent.spec.runtime.clone(),
        prompt: agent.spec.prompt.clone(),
        prompt_hash: prompt_hash(&agent.spec.prompt),
        revision: Some(validate::revision(agent.metadata.annotations.as_ref())),
        limits: agent.spec.limits.clone(),
        egress: agent.spec.egress.clone(),
        credential: match resolved {
            Resolved::Managed => MANAGED_CREDENTIAL.to_owned(),
            Resolved::Named(n) => n,
        },
    };
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

/// The Credential a session's pinned reference names.
async fn bind(
    ctx: &Context,
    ns: &str,
    snapshot: &AgentSnapshot,
) -> Result<Result<(Credential, SecretString), CredentialProblem>, Error> {
    let (cred_ns, name) = if snapshot.credential == MANAGED_CREDENTIAL {
        match &ctx.config.managed_credential {
            Some(n) => (ctx.config.system_namespace.clone(), n.clone()),
            None => {
                return Ok(Err(CredentialProblem::NotFound(
                    "no managed credential is configured".into(),
                )));
            }
        }
    } else {
        (ns.to_owned(), snapshot.credential.clone())
    };
    let creds: Api<Credential> = Api::namespaced(ctx.client.clone(), &cred_ns);
    let Some(cred) = creds
        .get_opt(&name)
        .await
        .map_err(Error::kube("get credential"))?
    else {
        return Ok(Err(CredentialProblem::NotFound(format!(
            "credential `{name}` not found"
        ))));
    };
    Ok(open_credential(ctx, &cred)
        .await?
        .map(|opened| (cred, opened.value)))
}

pub(super) async fn apply(session: Arc<Session>, ctx: &Context) -> Result<Action, Error> {
    let ns = session.namespace().unwrap_or_default();
    let name = session.name_any();
    let status = session.status.clone().unwrap_or_default();
    let mut draft = Draft {
        conds: Conditions::from(&status.conditions, session.metadata.generation),
        pod_name: status.pod_name.clone(),
    };

    // fetch
    let Some(snapshot) = session.spec.agent_snapshot.clone() else {
        return match pin(ctx, &session, &ns).await? {
            // The spec change retriggers this reconcile with the snapshot in place.
            Pinned::Done => Ok(Action::await_change()),
            Pinned::AgentMissing(message) => {
                draft.blocked(reasons::INVALID, &message);
                write_status(ctx, &session, draft).await?;
                // The Agent may be created later; look again now and then.
                Ok(Action::requeue(Duration::from_secs(60)))
            }
        };
    };

    // validate
    if let Err(message) =
        validate::agent_config(&snapshot.model, &snapshot.runtime, snapshot.egress.as_ref())
    {
        draft.blocked(reasons::INVALID, &message);
        draft.set(
            CREDENTIALS_BOUND,
            ConditionStatus::Unknown,
            reasons::INVALID,
            "",
        );
        write_status(ctx, &session, draft).await?;
        return Ok(Action::await_change());
    }

    // bind the credential
    let (cred, value) = match bind(ctx, &ns, &snapshot).await? {
        Ok(bound) => bound,
        Err(problem) => {
            let (reason, message) = problem.reason_and_message();
            draft.set(
                CREDENTIALS_BOUND,
                ConditionStatus::False,
                reason,
                message.clone(),
            );
            draft.blocked(reason, &message);
            write_status(ctx, &session, draft).await?;
            // The Credential and sealed-Secret watches retrigger when it appears or changes.
            return Ok(Action::requeue(SAFETY_REQUEUE));
        }
    };

    // Tokens are random per session: re-use the ones already written so they stay stable.
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let proxy_existing = secrets
        .get_opt(&build::proxy_secret_name(&name))
        .await
        .map_err(Error::kube("get proxy secret"))?;
    let runtime_existing = secrets
        .get_opt(&build::runtime_secret_name(&name))
        .await
        .map_err(Error::kube("get runtime secret"))?;
    let sealed = entry(proxy_existing.as_ref(), build::PROXY_CONFIG_ENTRY)
        .and_then(|yaml| stored_sealed_token(&yaml))
        .and_then(|s| SealedToken::parse(&s).ok())
        .unwrap_or_else(SealedToken::generate);
    let events_token = entry(proxy_existing.as_ref(), PROXY_SECRET_EVENTS_TOKEN_ENTRY)
        .map(SecretString::new)
        .unwrap_or_else(|| ctx.token_key.mint(Scope::Proxy, &ns, &name));
    let runtime_token = entry(runtime_existing.as_ref(), RUNTIME_SECRET_TOKEN_ENTRY)
        .map(SecretString::new)
        .unwrap_or_else(|| ctx.token_key.mint(Scope::Runtime, &ns, &name));
    let sandbox = Api::<Agent>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&session.spec.agent_ref)
        .await
        .map_err(Error::kube("get agent"))?
        .and_then(|a| a.spec.sandbox)
        .unwrap_or_default();
    let plan = SessionPlan {
        namespace: ns.clone(),
        name: name.clone(),
        uid: session.uid().unwrap_or_default(),
        agent: session.spec.agent_ref.clone(),
        credential: BoundCredential {
            name: cred.name_any(),
            provider: cred.spec.provider.clone(),
            hosts: cred.spec.allowed_hosts.clone(),
            headers: cred.spec.effective_headers(),
            sealed,
            value,
            version: cred.status.as_ref().and_then(|s| s.version).unwrap_or(1),
        },
        snapshot,
        sandbox,
        runtime_token,
        events_token,
    };

    // build and apply
    let settings = &ctx.settings;
    if settings.workspace_claim {
        apply_child(
            ctx,
            &ns,
            &build::workspace_claim(&plan, settings),
            "apply workspace claim",
        )
        .await?;
    }
    // The two Secrets were just read: re-apply only what differs (most reconciles change
    // nothing, and these are the largest writes).
    let runtime_secret = build::runtime_secret(&plan);
    if !up_to_date(runtime_existing.as_ref(), &runtime_secret) {
        apply_child(ctx, &ns, &runtime_secret, "apply runtime secret").await?;
    }
    let proxy_secret = build::proxy_secret(&plan, settings);
    if !up_to_date(proxy_existing.as_ref(), &proxy_secret) {
        apply_child(ctx, &ns, &proxy_secret, "apply proxy secret").await?;
    }
    apply_child(
        ctx,
        &ns,
        &build::network_policy(&plan, settings),
        "apply network policy",
    )
    .await?;
    draft.set(
        CREDENTIALS_BOUND,
        ConditionStatus::True,
        reasons::CREDENTIAL_BOUND,
        format!(
            "credential `{}` version {}",
            plan.credential.name, plan.credential.version
        ),
    );

    // lifecycle
    let action = lifecycle(ctx, &session, &plan, &mut draft).await?;
    write_status(ctx, &session, draft).await?;
    Ok(action)
}
