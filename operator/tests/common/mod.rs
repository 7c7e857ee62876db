//! Shared harness of the controller tests: a cluster with the CRDs and namespaces (devcluster, or
//! the real control plane with `SEALPOD_TEST_CONTROL_PLANE=kubernetes`), the real operator
//! started against it, a recording stand-in for the API server's runtime API, and
//! helpers that seal credentials with the cluster's published public key.

#![allow(dead_code, unreachable_pub)]

use clap::Parser;
use k8s_openapi::ByteString;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use sealpod_operator::{Config, Running};
use sealpod_resources::Credential;
use sealpod_resources::credential::CredentialSpec;
use sealpod_resources::labels;
use sealpod_resources::sealing::PublicKeySet;
use sealpod_testkit::TestCluster;
pub use sealpod_testkit::eventually;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub const NS: &str = "tenant-a";
pub const SYSTEM: &str = "sealpod-system";

/// The stand-in runtime API: records the bearer tokens of `POST /runtime/v1/revoke`.
pub struct FakeApi {
    pub url: String,
    pub revoked: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn fake_api() -> FakeApi {
    let revoked: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = revoked.clone();
    let app = axum::Router::new().route(
        "/runtime/v1/revoke",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let seen = seen.clone();
            async move {
                let token = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .unwrap_or_default()
                    .to_owned();
                seen.lock().expect("lock").push(token);
                axum::Json(json!({"revoked": true}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    FakeApi { url, revoked, task }
}

pub struct Harness {
    pub cluster: TestCluster,
    pub client: Client,
    pub api: FakeApi,
    /// Whether the cluster serves PersistentVolumeClaims (else workspaces are emptyDirs).
    pub claims: bool,
}

pub fn config(runtime_api_url: &str, identity: &str, claims: bool, extra: &[&str]) -> Config {
    let mut args = vec![
        "sealpod-operator".to_owned(),
        format!(
            "--workspace-volume={}",
            if claims { "claim" } else { "empty-dir" }
        ),
        "--sidecar-image=sealpod/sidecar:test".to_owned(),
        "--runtime-image=sealpod/runtime:test".to_owned(),
        format!("--runtime-api-url={runtime_api_url}"),
        "--pod-cidr=10.244.0.0/16".to_owned(),
        "--service-cidr=10.96.0.0/12".to_owned(),
        "--listen=127.0.0.1:0".to_owned(),
        "--restart-backoff-ms=300".to_owned(),
        "--restart-backoff-max-ms=2000".to_owned(),
        "--lease-duration-seconds=2".to_owned(),
        format!("--identity={identity}"),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    Config::try_parse_from(args).expect("flags")
}

impl Harness {
    pub async fn new() -> Harness {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let cluster = TestCluster::start(&[NS, SYSTEM]).await;
        let client = cluster.client();
        let api = fake_api().await;
        let claims = client
            .list_core_api_resources("v1")
            .await
            .expect("discovery")
            .resources
            .iter()
            .any(|r| r.name == "persistentvolumeclaims");
        Harness {
            cluster,
            client,
            api,
            claims,
        }
    }

    pub async fn operator(&self, identity: &str, extra: &[&str]) -> Running {
        sealpod_operator::start(
            self.client.clone(),
            config(&self.api.url, identity, self.claims, extra),
        )
        .await
        .expect("operator starts")
    }

    /// The public key set the operator published.
    pub async fn public_keys(&self) -> PublicKeySet {
        let maps: Api<ConfigMap> = Api::namespaced(self.client.clone(), SYSTEM);
        let cm = eventually("the public sealing keys", || {
            let maps = maps.clone();
            async move {
                maps.get_opt(labels::SEALING_PUBLIC_CONFIGMAP)
                    .await
                    .ok()
                    .flatten()
            }
        })
        .await;
        let text = cm.data.expect("data")[labels::SEALING_KEYS_ENTRY].clone();
        serde_json::from_str(&text).expect("public key set")
    }

    /// Seals `key` for Credential `name` (as the API server does).
    pub async fn seal(&self, name: &str, key: &str) -> String {
        let keys = self.public_keys().await;
        keys.seal(&CredentialSpec::sealing_context(NS, name), key.as_bytes())
            .expect("seal")
            .as_str()
            .to_owned()
    }

    /// Creates Credential `name`, the namespace's default Anthropic one, holding `key` sealed.
    pub async fn default_credential(&self, name: &str, key: &str) -> Credential {
        let sealed = self.seal(name, key).await;
        self.create(serde_json::json!({
            "apiVersion": "sealpod.dev/v1alpha1", "kind": "Credential",
            "metadata": {"name": name},
            "spec": {"provider": "anthropic", "allowedHosts": ["api.anthropic.com"],
                     "sealedValue": sealed, "default": true}
        }))
        .await
    }

    /// Rotates Credential `name` to `key` as the API server does: a new `spec.sealedValue` and
    /// `version` in its status.
    pub async fn rotate(&self, name: &str, key: &str, version: i64) {
        let creds: Api<Credential> = Api::namespaced(self.client.clone(), NS);
        let sealed = self.seal(name, key).await;
        creds
            .patch(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(json!({"spec": {"sealedValue": sealed}})),
            )
            .await
            .expect("sealed value");
        creds
            .patch_status(
                name,
                &kube::api::PatchParams::apply(labels::API_SERVER_FIELD_MANAGER).force(),
                &kube::api::Patch::Apply(json!({
                    "apiVersion": "sealpod.dev/v1alpha1", "kind": "Credential",
                    "status": {"version": version, "last4": &key[key.len() - 4..]},
                })),
            )
            .await
            .expect("version");
    }

    /// Seals `key` for Credential `name` into a Secret `<name>-sealed` written by `writer`
    /// (a Credential applied with its value in a Secret references it).
    pub async fn write_sealed_by(&self, name: &str, key: &str, writer: Option<&str>) {
        let sealed = self.seal(name, key).await;
        let mut labels = BTreeMap::from([
            (
                labels::COMPONENT_LABEL.to_owned(),
                labels::COMPONENT_SEALED_CREDENTIAL.to_owned(),
            ),
            (labels::CREDENTIAL_LABEL.to_owned(), name.to_owned()),
        ]);
        if let Some(writer) = writer {
            labels.insert(labels::MANAGED_BY.to_owned(), writer.to_owned());
        }
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(format!("{name}-sealed")),
                labels: Some(labels),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(
                labels::SEALED_SECRET_KEY.to_owned(),
                ByteString(sealed.into_bytes()),
            )])),
            ..Secret::default()
        };
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), NS);
        secrets
            .patch(
                &format!("{name}-sealed"),
                &kube::api::PatchParams::apply(labels::API_SERVER_FIELD_MANAGER).force(),
                &kube::api::Patch::Apply(&secret),
            )
            .await
            .expect("sealed secret");
    }

    /// Seals `key` for Credential `name` into a Secret `<name>-sealed` of the user's.
    pub async fn write_sealed(&self, name: &str, key: &str) {
        self.write_sealed_by(name, key, None).await;
    }

    /// Applies any object from JSON in the tenant namespace.
    pub async fn create<K>(&self, value: serde_json::Value) -> K
    where
        K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
    {
        let obj: K = serde_json::from_value(value).expect("object");
        let api: Api<K> = Api::namespaced(self.client.clone(), NS);
        api.create(&PostParams::default(), &obj)
            .await
            .expect("create")
    }
}

/// Waits until the leader has renewed its Lease `n` more times: `n` renew periods of the
/// operator's own clock have passed. Absence checks ("nothing happens while …") are bounded by
/// this observed event rather than by a sleep.
pub async fn lease_renewals(h: &Harness, n: usize) {
    let leases: Api<Lease> = Api::namespaced(h.client.clone(), SYSTEM);
    let renew_time = || {
        let leases = leases.clone();
        async move {
            leases
                .get_opt("sealpod-operator")
                .await
                .ok()
                .flatten()
                .and_then(|l| l.spec?.renew_time)
        }
    };
    let mut last = eventually("the leader's lease", || async { renew_time().await }).await;
    for seen in 0..n {
        last = eventually(&format!("lease renewal {} of {n}", seen + 1), || {
            let last = last.clone();
            async move { renew_time().await.filter(|t| *t != last) }
        })
        .await;
    }
}
