//! The sandbox Pod: the `lock` init container (programs and verifies the egress lock; the only
//! container with `NET_ADMIN`), the proxy as a native sidecar (the only container that mounts the
//! proxy Secret, running as the proxy UID) and the hardened runtime container, which sees the
//! pinned revision's skills read-only at `/skills`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, ExecAction, KeyToPath, Lifecycle, LifecycleHandler, ObjectFieldSelector,
    PersistentVolumeClaimVolumeSource, Pod, PodSecurityContext, PodSpec, ResourceRequirements,
    SeccompProfile, SecretKeySelector, SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use sealpod_resources::credential::provider_env_var;
use sealpod_resources::revision::{SKILLS_DIR_ENV, SKILLS_MOUNT_PATH};
use sealpod_resources::runtime_token::{RUNTIME_SECRET_SESSION_ENTRY, RUNTIME_SECRET_TOKEN_ENTRY};
use sealpod_resources::{agent, labels};

use super::bridges;
use super::proxy_config::{CA_DIR, CA_FILE, PROXY_DIR};
use super::{
    PROXY_CONFIG_ENTRY, RUNTIME_SEALED_TOKEN_ENTRY, SessionPlan, Settings, child_meta,
    proxy_secret_name, runtime_secret_name, workspace_claim_name,
};

/// The lock init container.
pub const CONTAINER_LOCK: &str = "lock";
/// The proxy (native sidecar).
pub const CONTAINER_PROXY: &str = "proxy";
/// The runtime container.
pub const CONTAINER_RUNTIME: &str = "runtime";

/// Volume of the proxy Secret.
pub const MOUNT_PROXY: &str = "proxy-config";
/// Volume of the runtime Secret.
pub const MOUNT_RUNTIME: &str = "runtime-token";
/// Volume of the shared CA certificate.
pub const MOUNT_CA: &str = "proxy-ca";
/// Volume of the workspace.
pub const MOUNT_WORKSPACE: &str = "workspace";
/// Volume of `/tmp` (the root filesystem is read-only).
const MOUNT_TMP: &str = "tmp";
/// Volume of the pinned revision's skills (read-only).
const MOUNT_SKILLS: &str = "skills";

/// Where the runtime Secret is mounted.
pub const RUNTIME_DIR: &str = "/var/run/sealpod/runtime";
/// Where the workspace is mounted.
pub const WORKSPACE_DIR: &str = "/workspace";

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.into()),
        value_from: None,
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: Some(read_only),
        ..VolumeMount::default()
    }
}

fn quantities(map: &BTreeMap<String, String>) -> Option<BTreeMap<String, Quantity>> {
    (!map.is_empty()).then(|| {
        map.iter()
            .map(|(k, v)| (k.clone(), Quantity(v.clone())))
            .collect()
    })
}

/// A non-root container context: no capabilities, no escalation, read-only root.
fn locked_down(uid: i64) -> SecurityContext {
    SecurityContext {
        run_as_user: Some(uid),
        run_as_group: Some(uid),
        run_as_non_root: Some(true),
        privileged: Some(false),
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(Capabilities {
            add: None,
            drop: Some(vec!["ALL".to_owned()]),
        }),
        ..SecurityContext::default()
    }
}

fn lock_container(settings: &Settings) -> Container {
    let common = format!(
        "--proxy-uid {} --proxy-port {}",
        settings.proxy_uid, settings.proxy_port
    );
    // Program, then prove: `lock --verify` exits 0 only when a probe under the runtime's UID
    // reaches the proxy port and nothing else. Its exit code is what `EgressLocked` reports.
    let script = format!(
        "sealpod-sidecar lock {common} && exec sealpod-sidecar lock --verify {common} --sandbox-uid {}",
        settings.runtime_uid
    );
    Container {
        name: CONTAINER_LOCK.to_owned(),
        image: Some(settings.sidecar_image.clone()),
        command: Some(vec!["/bin/sh".to_owned(), "-c".to_owned(), script]),
        security_context: Some(SecurityContext {
            // nftables needs root with NET_ADMIN; the verify probe switches to the runtime UID.
            run_as_user: Some(0),
            run_as_group: Some(0),
            run_as_non_root: Some(false),
            privileged: Some(false),
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                add: Some(vec![
                    "NET_ADMIN".to_owned(),
                    "SETUID".to_owned(),
                    "SETGID".to_owned(),
                ]),
                drop: Some(vec!["ALL".to_owned()]),
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    }
}

fn proxy_container(settings: &Settings) -> Container {
    Container {
        name: CONTAINER_PROXY.to_owned(),
        image: Some(settings.sidecar_image.clone()),
        command: Some(vec![
            "sealpod-sidecar".to_owned(),
            "proxy".to_owned(),
            "--config".to_owned(),
            format!("{PROXY_DIR}/{PROXY_CONFIG_ENTRY}"),
            // The configuration's own `ca_cert_out` is the same path; the flag keeps every path
            // the proxy uses outside its Secret on the command line, where a pod runner sees it.
            "--ca-cert-out".to_owned(),
            CA_FILE.to_owned(),
        ]),
        // A native sidecar: started before the runtime, running for the pod's whole life.
        restart_policy: Some("Always".to_owned()),
        ports: Some(vec![ContainerPort {
            name: Some("admin".to_owned()),
            container_port: i32::from(settings.proxy_admin_port),
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        // The runtime starts once this hook has seen the proxy serve: at once, where a startup
        // probe would let it wait for the probe's next period (up to a second).
        lifecycle: Some(Lifecycle {
            post_start: Some(LifecycleHandler {
                exec: Some(ExecAction {
                    command: Some(vec![
                        "sealpod-sidecar".to_owned(),
                        "ready".to_owned(),
                        "--admin".to_owned(),
                        format!("127.0.0.1:{}", settings.proxy_admin_port),
                        "--wait-seconds".to_owned(),
                        "60".to_owned(),
                    ]),
                }),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        }),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_owned(), Quantity("50m".to_owned())),
                ("memory".to_owned(), Quantity("32Mi".to_owned())),
            ])),
            limits: Some(BTreeMap::from([(
                "memory".to_owned(),
                Quantity("256Mi".to_owned()),
            )])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(locked_down(settings.proxy_uid)),
        volume_mounts: Some(vec![
            mount(MOUNT_PROXY, PROXY_DIR, true),
            mount(MOUNT_CA, CA_DIR, false),
        ]),
        ..Container::default()
    }
}

fn runtime_container(plan: &SessionPlan, settings: &Settings) -> Container {
    let proxy_url = format!("http://127.0.0.1:{}", settings.proxy_port);
    let no_proxy = "localhost,127.0.0.1,::1";
    let provider = agent::model_provider(&plan.snapshot.model).unwrap_or(&plan.credential.provider);
    let resources = plan.sandbox.resources.clone().unwrap_or_default();
    Container {
        name: CONTAINER_RUNTIME.to_owned(),
        image: Some(
            plan.sandbox
                .image
                .clone()
                .unwrap_or_else(|| settings.runtime_image.clone()),
        ),
        working_dir: Some(WORKSPACE_DIR.to_owned()),
        env: Some(vec![
            // The sealed token, never the key: the proxy swaps it on the bound hosts only.
            EnvVar {
                name: provider_env_var(provider),
                value: None,
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: runtime_secret_name(&plan.pod),
                        key: RUNTIME_SEALED_TOKEN_ENTRY.to_owned(),
                        optional: Some(false),
                    }),
                    ..EnvVarSource::default()
                }),
            },
            env("HTTPS_PROXY", &proxy_url),
            env("HTTP_PROXY", &proxy_url),
            env("https_proxy", &proxy_url),
            env("http_proxy", &proxy_url),
            env("NO_PROXY", no_proxy),
            env("no_proxy", no_proxy),
            env("SSL_CERT_FILE", CA_FILE),
            env("NODE_EXTRA_CA_CERTS", CA_FILE),
            env("REQUESTS_CA_BUNDLE", CA_FILE),
            env("SEALPOD_RUNTIME_API_URL", &settings.runtime_api_url),
            // Files, not variables: a warm pool pod's runtime starts before its session exists
            // and waits until the operator writes them.
            env(
                "SEALPOD_SESSION_ID_FILE",
                format!("{RUNTIME_DIR}/{RUNTIME_SECRET_SESSION_ENTRY}"),
            ),
            env(
                "SEALPOD_RUNTIME_TOKEN_FILE",
                format!("{RUNTIME_DIR}/{RUNTIME_SECRET_TOKEN_ENTRY}"),
            ),
            env("SEALPOD_WORKSPACE", WORKSPACE_DIR),
            env("HOME", WORKSPACE_DIR),
            env(SKILLS_DIR_ENV, SKILLS_MOUNT_PATH),
            // When the operator created the pod (empty on a pod created without the stamp).
            EnvVar {
                name: "SEALPOD_POD_CREATED_AT".to_owned(),
                value: None,
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        field_path: format!(
                            "metadata.annotations['{}']",
                            labels::POD_CREATED_AT_ANNOTATION
                        ),
                        ..ObjectFieldSelector::default()
                    }),
                    ..EnvVarSource::default()
                }),
            },
        ]),
        resources: Some(ResourceRequirements {
            requests: quantities(&resources.requests),
            limits: quantities(&resources.limits),
            ..ResourceRequirements::default()
        }),
        security_context: Some(locked_down(settings.runtime_uid)),
        volume_mounts: Some(vec![
            mount(MOUNT_WORKSPACE, WORKSPACE_DIR, false),
            mount(MOUNT_RUNTIME, RUNTIME_DIR, true),
            mount(MOUNT_CA, CA_DIR, true),
            mount(MOUNT_TMP, "/tmp", false),
            mount(MOUNT_SKILLS, SKILLS_MOUNT_PATH, true),
        ]),
        ..Container::default()
    }
}

fn secret_volume(name: &str, secret: String) -> Volume {
    Volume {
        name: name.to_owned(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret),
            // Group-readable: fsGroup makes the files readable by the container's UID; the
            // volume is mounted into one container only.
            default_mode: Some(0o440),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    }
}

/// The skills of the pinned revision, each file at its path in the bundle and read-only to
/// every user (an empty directory when the revision has none).
fn skills_volume(plan: &SessionPlan) -> Volume {
    let Some(bundle) = &plan.snapshot.skills else {
        return empty_dir(MOUNT_SKILLS, None, "1Mi");
    };
    Volume {
        name: MOUNT_SKILLS.to_owned(),
        config_map: Some(ConfigMapVolumeSource {
            name: bundle.config_map.clone(),
            items: Some(
                bundle
                    .files
                    .iter()
                    .map(|f| KeyToPath {
                        key: f.key.clone(),
                        path: f.path.clone(),
                        mode: Some(i32::try_from(f.mode & 0o555).unwrap_or(0o444)),
                    })
                    .collect(),
            ),
            default_mode: Some(0o444),
            optional: Some(false),
        }),
        ..Volume::default()
    }
}

fn empty_dir(name: &str, medium: Option<&str>, size: &str) -> Volume {
    Volume {
        name: name.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: medium.map(ToOwned::to_owned),
            size_limit: Some(Quantity(size.to_owned())),
        }),
        ..Volume::default()
    }
}

fn workspace_volume(plan: &SessionPlan, settings: &Settings) -> Volume {
    if settings.workspace_claim {
        Volume {
            name: MOUNT_WORKSPACE.to_owned(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: workspace_claim_name(&plan.pod),
                read_only: Some(false),
            }),
            ..Volume::default()
        }
    } else {
        empty_dir(MOUNT_WORKSPACE, None, &settings.workspace_size)
    }
}

/// The sandbox Pod of a session.
pub fn sandbox_pod(plan: &SessionPlan, settings: &Settings) -> Pod {
    let mut metadata = child_meta(plan, plan.pod.clone(), labels::COMPONENT_SANDBOX);
    if let Some(bridges) = bridges::annotation(&bridges::egress_bridges(plan, settings)) {
        metadata.annotations = Some(BTreeMap::from([(
            labels::EGRESS_BRIDGES_ANNOTATION.to_owned(),
            bridges,
        )]));
    }
    Pod {
        metadata,
        spec: Some(PodSpec {
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            share_process_namespace: Some(false),
            host_network: Some(false),
            host_pid: Some(false),
            host_ipc: Some(false),
            // The operator restarts lost pods itself, with backoff and a `Degraded` reason.
            restart_policy: Some("Never".to_owned()),
            runtime_class_name: plan.sandbox.runtime_class_name.clone(),
            security_context: Some(PodSecurityContext {
                fs_group: Some(settings.runtime_uid),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".to_owned(),
                    localhost_profile: None,
                }),
                ..PodSecurityContext::default()
            }),
            init_containers: Some(vec![lock_container(settings), proxy_container(settings)]),
            containers: vec![runtime_container(plan, settings)],
            volumes: Some(vec![
                workspace_volume(plan, settings),
                secret_volume(MOUNT_PROXY, proxy_secret_name(&plan.pod)),
                secret_volume(MOUNT_RUNTIME, runtime_secret_name(&plan.pod)),
                empty_dir(MOUNT_CA, Some("Memory"), "1Mi"),
                empty_dir(MOUNT_TMP, None, "1Gi"),
                skills_volume(plan),
            ]),
            ..PodSpec::default()
        }),
        status: None,
    }
}
