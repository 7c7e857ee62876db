//! Set-up shared by the operator's examples (`bench`, `reconcile_instructions`): an in-process
//! devcluster with sealpod's CRDs, a Credential, an Agent and pinned Sessions, and the operator
//! flags and reconcile context they run with.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use sealpod_operator::controller::Context;
use sealpod_resources::credential::CredentialSpec;
use sealpod_resources::labels;
use sealpod_resources::{Agent, Credential, Session};
use serde_json::json;

/// The namespace of the Sessions.
pub const NS: &str = "bench";
/// The operator's system namespace.
pub const SYSTEM: &str = "sealpod-system";

pub fn flags() -> Vec<String> {
    [
        "--sidecar-image=sealpod/sidecar:bench",
        "--runtime-image=sealpod/runtime:bench",
        "--runtime-api-url=http://127.0.0.1:9",
        "--pod-cidr=10.244.0.0/16",
        "--service-cidr=10.96.0.0/12",
        "--workspace-volume=empty-dir",
        if std::env::var_os("BENCH_METRICS").is_some() {
            "--listen=127.0.0.1:18089"
        } else {
            "--listen=127.0.0.1:0"
        },
        "--concurrency=16",
        "--watch-timeout-seconds=5",
        "--identity=bench",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

pub async fn cluster() -> anyhow::Result<devcluster::DevCluster> {
    let cluster = devcluster::DevCluster::start(devcluster::Config::default()).await?;
    let crds: Vec<_> = sealpod_resources::crds::all()
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    cluster.install_crds(&crds).await?;
    let namespaces: Api<Namespace> = Api::all(cluster.client());
    for ns in [NS, SYSTEM] {
        let n: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}}))?;
        namespaces.create(&PostParams::default(), &n).await?;
    }
    Ok(cluster)
}

/// A Credential, an Agent and `n` pinned Sessions.
pub async fn populate(client: &Client, n: usize) -> anyhow::Result<()> {
    let keys = sealpod_operator::keys::ensure_sealing_keys(client, SYSTEM).await?;
    let sealed = keys.seal(
        &CredentialSpec::sealing_context(NS, "cred"),
        b"sk-bench-not-a-real-key",
    )?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("cred-sealed".into()),
            labels: Some(BTreeMap::from([
                (
                    labels::COMPONENT_LABEL.to_owned(),
                    labels::COMPONENT_SEALED_CREDENTIAL.to_owned(),
                ),
                (labels::CREDENTIAL_LABEL.to_owned(), "cred".to_owned()),
            ])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            labels::SEALED_SECRET_KEY.to_owned(),
            ByteString(sealed.as_str().as_bytes().to_vec()),
        )])),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &secret)
        .await?;
    let cred: Credential = serde_json::from_value(json!({
        "apiVersion": "sealpod.dev/v1alpha1", "kind": "Credential", "metadata": {"name": "cred"},
        "spec": {"provider": "anthropic", "allowedHosts": ["api.anthropic.com"],
                 "sealedSecretRef": {"name": "cred-sealed"}, "default": true}
    }))?;
    Api::<Credential>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &cred)
        .await?;
    let agent: Agent = serde_json::from_value(json!({
        "apiVersion": "sealpod.dev/v1alpha1", "kind": "Agent", "metadata": {"name": "agt"},
        "spec": {"model": "anthropic/claude-sonnet-4-5", "runtime": "claude", "prompt": "p"}
    }))?;
    Api::<Agent>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &agent)
        .await?;
    let sessions: Api<Session> = Api::namespaced(client.clone(), NS);
    futures::stream::iter(0..n)
        .map(|i| {
            let sessions = sessions.clone();
            async move {
                let s: Session = serde_json::from_value(json!({
                    "apiVersion": "sealpod.dev/v1alpha1", "kind": "Session",
                    "metadata": {"name": format!("ses-{i:06}")},
                    "spec": {"agentRef": "agt", "agentSnapshot": {
                        "model": "anthropic/claude-sonnet-4-5", "runtime": "claude", "prompt": "p",
                        "promptHash": sealpod_resources::agent::prompt_hash("p"), "credential": "cred"}}
                }))?;
                sessions.create(&PostParams::default(), &s).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// The operator's reconcile context, as the operator builds it from [`flags`].
pub async fn context(client: &Client) -> anyhow::Result<Arc<Context>> {
    use clap::Parser as _;
    let config = sealpod_operator::Config::try_parse_from(
        std::iter::once("sealpod-operator".to_owned()).chain(flags()),
    )?;
    let keys = sealpod_operator::keys::ensure_sealing_keys(client, SYSTEM).await?;
    let token_key = sealpod_operator::keys::ensure_token_key(client, SYSTEM).await?;
    Ok(Arc::new(Context::new(
        client.clone(),
        config.clone(),
        config.settings()?,
        keys,
        token_key,
        Arc::default(),
    )))
}
