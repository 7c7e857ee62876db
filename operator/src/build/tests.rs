//! Whole-object tests of the builders, the hardening invariants and the secret scan.
//!
//! Each builder's output is compared, whole, to a JSON literal: any unintended field change
//! fails. Secret `data` is compared decoded (and the proxy configuration parsed from its YAML) so
//! the literals stay readable.

use base64::Engine as _;
use k8s_openapi::api::core::v1::{Container, Pod, Secret};
use sealpod_resources::revision::{SkillBundle, SkillFile};
use sealpod_resources::secret::is_sealed_token;
use serde_json::{Value, json};

use super::fixture::{self, EVENTS_TOKEN, REAL_KEY, RUNTIME_TOKEN, SEALED};
use super::*;

/// JSON of a Secret with `data` decoded to text and `config.yaml` parsed.
fn decoded(secret: &Secret) -> Value {
    let mut v = serde_json::to_value(secret).expect("json");
    if let Some(data) = secret.data.as_ref() {
        let mut map = serde_json::Map::new();
        for (k, b) in data {
            let text = String::from_utf8(b.0.clone()).expect("utf8");
            let value = if k == PROXY_CONFIG_ENTRY {
                serde_saphyr::from_str::<Value>(&text).expect("yaml")
            } else {
                Value::from(text)
            };
            map.insert(k.clone(), value);
        }
        v["data"] = map.into();
    }
    v
}

#[test]
fn sandbox_pod_is_exactly_the_expected_object() {
    let plan = fixture::plan();
    let settings = fixture::settings();
    let expected = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "labels": {
                "app.kubernetes.io/managed-by": "sealpod-operator",
                "app.kubernetes.io/part-of": "sealpod",
                "sealpod.dev/agent": "agt-reviewer",
                "sealpod.dev/component": "sandbox",
                "sealpod.dev/session": "ses-abc123"
            },
            "name": "ses-abc123",
            "namespace": "tenant-a",
            "ownerReferences": [
                {
                    "apiVersion": "sealpod.dev/v1alpha1",
                    "blockOwnerDeletion": true,
                    "controller": true,
                    "kind": "Session",
                    "name": "ses-abc123",
                    "uid": "uid-ses-abc123"
                }
            ]
        },
        "spec": {
            "automountServiceAccountToken": false,
            "containers": [
                {
                    "env": [
                        {
                            "name": "ANTHROPIC_API_KEY",
                            "valueFrom": {
                                "secretKeyRef": {
                                    "key": "sealed-token",
                                    "name": "ses-abc123-runtime",
                                    "optional": false
                                }
                            }
                        },
                        {
                            "name": "HTTPS_PROXY",
                            "value": "http://127.0.0.1:3128"
                        },
                        {
                            "name": "HTTP_PROXY",
                            "value": "http://127.0.0.1:3128"
                        },
                        {
                            "name": "https_proxy",
                            "value": "http://127.0.0.1:3128"
                        },
                        {
                            "name": "http_proxy",
                            "value": "http://127.0.0.1:3128"
                        },
                        {
                            "name": "NO_PROXY",
                            "value": "localhost,127.0.0.1,::1"
                        },
                        {
                            "name": "no_proxy",
                            "value": "localhost,127.0.0.1,::1"
                        },
                        {
                            "name": "SSL_CERT_FILE",
                            "value": "/var/run/sealpod/ca/ca.pem"
                        },
                        {
                            "name": "NODE_EXTRA_CA_CERTS",
                            "value": "/var/run/sealpod/ca/ca.pem"
                        },
                        {
                            "name": "REQUESTS_CA_BUNDLE",
                            "value": "/var/run/sealpod/ca/ca.pem"
                        },
                        {
                            "name": "SEALPOD_RUNTIME_API_URL",
                            "value": "http://sealpod-api.sealpod-system.svc:8081"
                        },
                        {
                            "name": "SEALPOD_SESSION_ID_FILE",
                            "value": "/var/run/sealpod/runtime/session-id"
                        },
                        {
                            "name": "SEALPOD_RUNTIME_TOKEN_FILE",
                            "value": "/var/run/sealpod/runtime/token"
                        },
                        {
                            "name": "SEALPOD_WORKSPACE",
                            "value": "/workspace"
                        },
                        {
                            "name": "HOME",
                            "value": "/workspace"
                        },
                        {
                            "name": "SEALPOD_SKILLS_DIR",
                            "value": "/skills"
                        },
                        {
                            "name": "SEALPOD_POD_CREATED_AT",
                            "valueFrom": {"fieldRef": {
                                "fieldPath": "metadata.annotations['sealpod.dev/created-at']"
                            }}
                        }
                    ],
                    "image": "ghcr.io/sealpod/runtime:1",
                    "name": "runtime",
                    "resources": {
                        "limits": {
                            "memory": "2Gi"
                        },
                        "requests": {
                            "cpu": "500m"
                        }
                    },
                    "securityContext": {
                        "allowPrivilegeEscalation": false,
                        "capabilities": {
                            "drop": [
                                "ALL"
                            ]
                        },
                        "privileged": false,
                        "readOnlyRootFilesystem": true,
                        "runAsGroup": 1000,
                        "runAsNonRoot": true,
                        "runAsUser": 1000
                    },
                    "volumeMounts": [
                        {
                            "mountPath": "/workspace",
                            "name": "workspace",
                            "readOnly": false
                        },
                        {
                            "mountPath": "/var/run/sealpod/runtime",
                            "name": "runtime-token",
                            "readOnly": true
                        },
                        {
                            "mountPath": "/var/run/sealpod/ca",
                            "name": "proxy-ca",
                            "readOnly": true
                        },
                        {
                            "mountPath": "/tmp",
                            "name": "tmp",
                            "readOnly": false
                        },
                        {
                            "mountPath": "/skills",
                            "name": "skills",
                            "readOnly": true
                        }
                    ],
                    "workingDir": "/workspace"
                }
            ],
            "enableServiceLinks": false,
            "hostIPC": false,
            "hostNetwork": false,
            "hostPID": false,
            "initContainers": [
                {
                    "command": [
                        "/bin/sh",
                        "-c",
                        "sealpod-sidecar lock --proxy-uid 1337 --proxy-port 3128 && exec sealpod-sidecar lock --verify --proxy-uid 1337 --proxy-port 3128 --sandbox-uid 1000"
                    ],
                    "image": "ghcr.io/sealpod/sidecar:1",
                    "name": "lock",
                    "securityContext": {
                        "allowPrivilegeEscalation": false,
                        "capabilities": {
                            "add": [
                                "NET_ADMIN",
                                "SETUID",
                                "SETGID"
                            ],
                            "drop": [
                                "ALL"
                            ]
                        },
                        "privileged": false,
                        "readOnlyRootFilesystem": true,
                        "runAsGroup": 0,
                        "runAsNonRoot": false,
                        "runAsUser": 0
                    }
                },
                {
                    "command": [
                        "sealpod-sidecar",
                        "proxy",
                        "--config",
                        "/etc/sealpod/proxy/config.yaml",
                        "--ca-cert-out",
                        "/var/run/sealpod/ca/ca.pem"
                    ],
                    "image": "ghcr.io/sealpod/sidecar:1",
                    "name": "proxy",
                    "ports": [
                        {
                            "containerPort": 9901,
                            "name": "admin",
                            "protocol": "TCP"
                        }
                    ],
                    "resources": {
                        "limits": {
                            "memory": "256Mi"
                        },
                        "requests": {
                            "cpu": "50m",
                            "memory": "32Mi"
                        }
                    },
                    "restartPolicy": "Always",
                    "securityContext": {
                        "allowPrivilegeEscalation": false,
                        "capabilities": {
                            "drop": [
                                "ALL"
                            ]
                        },
                        "privileged": false,
                        "readOnlyRootFilesystem": true,
                        "runAsGroup": 1337,
                        "runAsNonRoot": true,
                        "runAsUser": 1337
                    },
                    "lifecycle": {
                        "postStart": {"exec": {"command": [
                            "sealpod-sidecar", "ready", "--admin", "127.0.0.1:9901",
                            "--wait-seconds", "60"
                        ]}}
                    },
                    "volumeMounts": [
                        {
                            "mountPath": "/etc/sealpod/proxy",
                            "name": "proxy-config",
                            "readOnly": true
                        },
                        {
                            "mountPath": "/var/run/sealpod/ca",
                            "name": "proxy-ca",
                            "readOnly": false
                        }
                    ]
                }
            ],
            "restartPolicy": "Never",
            "runtimeClassName": "gvisor",
            "securityContext": {
                "fsGroup": 1000,
                "seccompProfile": {
                    "type": "RuntimeDefault"
                }
            },
            "shareProcessNamespace": false,
            "volumes": [
                {
                    "name": "workspace",
                    "persistentVolumeClaim": {
                        "claimName": "ses-abc123-workspace",
                        "readOnly": false
                    }
                },
                {
                    "name": "proxy-config",
                    "secret": {
                        "defaultMode": 288,
                        "secretName": "ses-abc123-proxy"
                    }
                },
                {
                    "name": "runtime-token",
                    "secret": {
                        "defaultMode": 288,
                        "secretName": "ses-abc123-runtime"
                    }
                },
                {
                    "emptyDir": {
                        "medium": "Memory",
                        "sizeLimit": "1Mi"
                    },
                    "name": "proxy-ca"
                },
                {
                    "emptyDir": {
                        "sizeLimit": "1Gi"
                    },
                    "name": "tmp"
                },
                {
                    "emptyDir": {
                        "sizeLimit": "1Mi"
                    },
                    "name": "skills"
                }
            ]
        }
    });
    assert_eq!(
        serde_json::to_value(sandbox_pod(&plan, &settings)).expect("json"),
        expected
    );
}

#[test]
fn a_revision_with_skills_mounts_them_read_only_at_their_paths() {
    let mut plan = fixture::plan();
    plan.snapshot.skills = Some(SkillBundle {
        digest: "sha256:ab".into(),
        config_map: "agt-reviewer-skills-ab".into(),
        file_count: 2,
        files: vec![
            SkillFile {
                key: "f0".into(),
                path: "pdf/SKILL.md".into(),
                mode: 0o444,
                size: 3,
            },
            SkillFile {
                key: "f1".into(),
                path: "pdf/run.sh".into(),
                mode: 0o755,
                size: 3,
            },
        ],
        skills: vec![],
    });
    let pod = serde_json::to_value(sandbox_pod(&plan, &fixture::settings())).expect("json");
    let volumes = pod["spec"]["volumes"].as_array().expect("volumes");
    let skills = volumes
        .iter()
        .find(|v| v["name"] == "skills")
        .expect("skills");
    assert_eq!(
        skills["configMap"],
        json!({
            "name": "agt-reviewer-skills-ab",
            "defaultMode": 0o444,
            "optional": false,
            "items": [
                {"key": "f0", "path": "pdf/SKILL.md", "mode": 0o444},
                // Never writable, whatever the bundle says.
                {"key": "f1", "path": "pdf/run.sh", "mode": 0o555},
            ]
        })
    );
    let runtime = &pod["spec"]["containers"][0];
    assert!(
        runtime["volumeMounts"]
            .as_array()
            .expect("mounts")
            .contains(&json!({"mountPath": "/skills", "name": "skills", "readOnly": true}))
    );
}

#[test]
fn proxy_secret_is_exactly_the_expected_object() {
    let plan = fixture::plan();
    let settings = fixture::settings();
    let expected = json!({
        "apiVersion": "v1",
        "data": {
            "config.yaml": {
                "listen": "127.0.0.1:3128",
                "admin_listen": "0.0.0.0:9901",
                "ca_cert_out": "/var/run/sealpod/ca/ca.pem",
                "mode": "enforce",
                "allow": [
                    "*.githubusercontent.com",
                    "api.anthropic.com",
                    "github.com",
                    "sealpod-api.sealpod-system.svc:8081"
                ],
                "deny_cidrs": [
                    "10.244.0.0/16",
                    "fd00:10:244::/56",
                    "10.96.0.0/12"
                ],
                "allow_cidrs": [
                    "10.96.0.10/32"
                ],
                "credentials": [
                    {
                        "sealed": "sp_sealed_0123456789abcdef0123456789abcdef",
                        "value_file": "credential",
                        "hosts": [
                            "api.anthropic.com"
                        ],
                        "headers": [
                            {
                                "name": "x-api-key"
                            },
                            {
                                "name": "authorization",
                                "scheme": "Bearer"
                            }
                        ]
                    }
                ],
                "events": {
                    "url": "http://sealpod-api.sealpod-system.svc:8081/runtime/v1/egress-events",
                    "gate_url": "http://sealpod-api.sealpod-system.svc:8081/runtime/v1/egress-gate",
                    "token_file": "events-token"
                },
                "resolve": {},
                "extra_roots": []
            },
            "credential": "sk-ant-api03-REALKEY-fixture-0123456789",
            "events-token": "sprt_proxy.fixture"
        },
        "kind": "Secret",
        "metadata": {
            "annotations": {
                "sealpod.dev/credential-version": "3"
            },
            "labels": {
                "app.kubernetes.io/managed-by": "sealpod-operator",
                "app.kubernetes.io/part-of": "sealpod",
                "sealpod.dev/agent": "agt-reviewer",
                "sealpod.dev/component": "proxy-config",
                "sealpod.dev/session": "ses-abc123"
            },
            "name": "ses-abc123-proxy",
            "namespace": "tenant-a",
            "ownerReferences": [
                {
                    "apiVersion": "sealpod.dev/v1alpha1",
                    "blockOwnerDeletion": true,
                    "controller": true,
                    "kind": "Session",
                    "name": "ses-abc123",
                    "uid": "uid-ses-abc123"
                }
            ]
        },
        "type": "Opaque"
    });
    assert_eq!(
        decoded(&proxy_secret(&plan, &settings).expect("builds")),
        expected
    );
}

#[test]
fn runtime_secret_is_exactly_the_expected_object() {
    let plan = fixture::plan();
    let expected = json!({
        "apiVersion": "v1",
        "data": {
            "sealed-token": "sp_sealed_0123456789abcdef0123456789abcdef",
            "session-id": "ses_abc123",
            "token": "sprt_runtime.fixture"
        },
        "kind": "Secret",
        "metadata": {
            "labels": {
                "app.kubernetes.io/managed-by": "sealpod-operator",
                "app.kubernetes.io/part-of": "sealpod",
                "sealpod.dev/agent": "agt-reviewer",
                "sealpod.dev/component": "runtime-token",
                "sealpod.dev/session": "ses-abc123"
            },
            "name": "ses-abc123-runtime",
            "namespace": "tenant-a",
            "ownerReferences": [
                {
                    "apiVersion": "sealpod.dev/v1alpha1",
                    "blockOwnerDeletion": true,
                    "controller": true,
                    "kind": "Session",
                    "name": "ses-abc123",
                    "uid": "uid-ses-abc123"
                }
            ]
        },
        "type": "Opaque"
    });
    assert_eq!(decoded(&runtime_secret(&plan)), expected);
}

#[test]
fn network_policy_is_exactly_the_expected_object() {
    let plan = fixture::plan();
    let settings = fixture::settings();
    let expected = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "labels": {
                "app.kubernetes.io/managed-by": "sealpod-operator",
                "app.kubernetes.io/part-of": "sealpod",
                "sealpod.dev/agent": "agt-reviewer",
                "sealpod.dev/component": "sandbox",
                "sealpod.dev/session": "ses-abc123"
            },
            "name": "ses-abc123-egress",
            "namespace": "tenant-a",
            "ownerReferences": [
                {
                    "apiVersion": "sealpod.dev/v1alpha1",
                    "blockOwnerDeletion": true,
                    "controller": true,
                    "kind": "Session",
                    "name": "ses-abc123",
                    "uid": "uid-ses-abc123"
                }
            ]
        },
        "spec": {
            "egress": [
                {
                    "ports": [
                        {
                            "port": 53,
                            "protocol": "UDP"
                        },
                        {
                            "port": 53,
                            "protocol": "TCP"
                        }
                    ]
                },
                {
                    "to": [
                        {
                            "ipBlock": {
                                "cidr": "0.0.0.0/0",
                                "except": [
                                    "0.0.0.0/8",
                                    "10.0.0.0/8",
                                    "100.64.0.0/10",
                                    "127.0.0.0/8",
                                    "169.254.0.0/16",
                                    "172.16.0.0/12",
                                    "192.0.0.0/24",
                                    "192.168.0.0/16",
                                    "198.18.0.0/15",
                                    "224.0.0.0/4",
                                    "240.0.0.0/4",
                                    "10.244.0.0/16",
                                    "10.96.0.0/12"
                                ]
                            }
                        },
                        {
                            "ipBlock": {
                                "cidr": "::/0",
                                "except": [
                                    "::1/128",
                                    "64:ff9b::/96",
                                    "2002::/16",
                                    "fc00::/7",
                                    "fe80::/10",
                                    "ff00::/8",
                                    "fd00:10:244::/56"
                                ]
                            }
                        }
                    ]
                },
                {
                    "ports": [
                        {
                            "port": 8081,
                            "protocol": "TCP"
                        }
                    ],
                    "to": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {
                                    "kubernetes.io/metadata.name": "sealpod-system"
                                }
                            },
                            "podSelector": {
                                "matchLabels": {
                                    "app.kubernetes.io/name": "sealpod-api-server"
                                }
                            }
                        }
                    ]
                }
            ],
            "podSelector": {
                "matchLabels": {
                    "sealpod.dev/component": "sandbox",
                    "sealpod.dev/session": "ses-abc123"
                }
            },
            "policyTypes": [
                "Egress"
            ]
        }
    });
    assert_eq!(
        serde_json::to_value(network_policy(&plan, &settings)).expect("json"),
        expected
    );
}

#[test]
fn workspace_claim_is_exactly_the_expected_object() {
    let plan = fixture::plan();
    let settings = fixture::settings();
    let expected = json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "labels": {
                "app.kubernetes.io/managed-by": "sealpod-operator",
                "app.kubernetes.io/part-of": "sealpod",
                "sealpod.dev/agent": "agt-reviewer",
                "sealpod.dev/component": "workspace",
                "sealpod.dev/session": "ses-abc123"
            },
            "name": "ses-abc123-workspace",
            "namespace": "tenant-a",
            "ownerReferences": [
                {
                    "apiVersion": "sealpod.dev/v1alpha1",
                    "blockOwnerDeletion": true,
                    "controller": true,
                    "kind": "Session",
                    "name": "ses-abc123",
                    "uid": "uid-ses-abc123"
                }
            ]
        },
        "spec": {
            "accessModes": [
                "ReadWriteOnce"
            ],
            "resources": {
                "requests": {
                    "storage": "10Gi"
                }
            }
        }
    });
    assert_eq!(
        serde_json::to_value(workspace_claim(&plan, &settings)).expect("json"),
        expected
    );
}

fn all_containers(pod: &Pod) -> Vec<&Container> {
    let spec = pod.spec.as_ref().expect("spec");
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .collect()
}

fn container<'a>(pod: &'a Pod, name: &str) -> &'a Container {
    all_containers(pod)
        .into_iter()
        .find(|c| c.name == name)
        .expect("container")
}

#[test]
fn only_the_lock_container_has_net_admin() {
    let pod = sandbox_pod(&fixture::plan(), &fixture::settings());
    let with_net_admin: Vec<&str> = all_containers(&pod)
        .into_iter()
        .filter(|c| {
            c.security_context
                .as_ref()
                .and_then(|s| s.capabilities.as_ref())
                .and_then(|caps| caps.add.as_ref())
                .is_some_and(|add| add.iter().any(|a| a == "NET_ADMIN" || a == "ALL"))
        })
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(with_net_admin, [CONTAINER_LOCK]);
    for c in all_containers(&pod) {
        let sc = c
            .security_context
            .as_ref()
            .expect("every container has a context");
        assert_eq!(sc.privileged, Some(false), "{}", c.name);
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
        let drop = sc.capabilities.as_ref().and_then(|c| c.drop.as_ref());
        assert_eq!(
            drop.map(Vec::as_slice),
            Some(&["ALL".to_owned()][..]),
            "{}",
            c.name
        );
    }
}

#[test]
fn only_the_proxy_mounts_the_proxy_secret() {
    let plan = fixture::plan();
    let pod = sandbox_pod(&plan, &fixture::settings());
    let spec = pod.spec.as_ref().expect("spec");
    let proxy_volumes: Vec<&str> = spec
        .volumes
        .iter()
        .flatten()
        .filter(|v| {
            v.secret.as_ref().and_then(|s| s.secret_name.as_deref())
                == Some(proxy_secret_name(&plan.name).as_str())
        })
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(
        proxy_volumes,
        [MOUNT_PROXY],
        "one volume holds the proxy Secret"
    );
    let mounting: Vec<&str> = all_containers(&pod)
        .into_iter()
        .filter(|c| {
            c.volume_mounts
                .iter()
                .flatten()
                .any(|m| m.name == MOUNT_PROXY)
                || c.env_from.iter().flatten().any(|e| {
                    e.secret_ref.as_ref().map(|s| s.name.as_str())
                        == Some(proxy_secret_name(&plan.name).as_str())
                })
                || c.env.iter().flatten().any(|e| {
                    e.value_from
                        .as_ref()
                        .and_then(|v| v.secret_key_ref.as_ref())
                        .is_some_and(|r| r.name == proxy_secret_name(&plan.name))
                })
        })
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(mounting, [CONTAINER_PROXY]);
    // The proxy is a native sidecar; the runtime starts once its postStart hook saw it serve.
    let proxy = container(&pod, CONTAINER_PROXY);
    assert_eq!(proxy.restart_policy.as_deref(), Some("Always"));
    let hook = proxy
        .lifecycle
        .as_ref()
        .and_then(|l| l.post_start.as_ref())
        .and_then(|h| h.exec.as_ref())
        .and_then(|e| e.command.as_deref())
        .expect("postStart");
    assert_eq!(&hook[..2], ["sealpod-sidecar", "ready"]);
}

#[test]
fn the_runtime_is_hardened_and_runs_as_another_uid_than_the_proxy() {
    let settings = fixture::settings();
    let pod = sandbox_pod(&fixture::plan(), &settings);
    let spec = pod.spec.as_ref().expect("spec");
    assert_eq!(spec.automount_service_account_token, Some(false));
    assert_ne!(spec.host_network, Some(true));
    assert_ne!(spec.share_process_namespace, Some(true));
    let uid = |name: &str| {
        container(&pod, name)
            .security_context
            .as_ref()
            .and_then(|s| s.run_as_user)
            .expect("uid")
    };
    assert_eq!(uid(CONTAINER_PROXY), settings.proxy_uid);
    assert_ne!(uid(CONTAINER_RUNTIME), uid(CONTAINER_PROXY));
    assert_ne!(uid(CONTAINER_RUNTIME), 0);
    let runtime = container(&pod, CONTAINER_RUNTIME);
    let sc = runtime.security_context.as_ref().expect("context");
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    let writable: Vec<&str> = runtime
        .volume_mounts
        .iter()
        .flatten()
        .filter(|m| m.read_only != Some(true))
        .map(|m| m.mount_path.as_str())
        .collect();
    assert_eq!(writable, [WORKSPACE_DIR, "/tmp"]);
    // The lock runs before the proxy, which runs before the runtime.
    let order: Vec<&str> = all_containers(&pod)
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(order, [CONTAINER_LOCK, CONTAINER_PROXY, CONTAINER_RUNTIME]);
}

#[test]
fn no_sealed_value_is_a_real_key() {
    let plan = fixture::plan();
    let settings = fixture::settings();
    let runtime = decoded(&runtime_secret(&plan));
    let sealed = runtime["data"][RUNTIME_SEALED_TOKEN_ENTRY]
        .as_str()
        .expect("sealed");
    assert!(is_sealed_token(sealed));
    assert_ne!(sealed, REAL_KEY);
    let proxy = decoded(&proxy_secret(&plan, &settings).expect("builds"));
    for cred in proxy["data"][PROXY_CONFIG_ENTRY]["credentials"]
        .as_array()
        .expect("list")
    {
        let s = cred["sealed"].as_str().expect("sealed");
        assert!(is_sealed_token(s), "the proxy swaps only sealed tokens");
        assert_eq!(s, sealed, "the runtime holds the token the proxy swaps");
    }
    // The runtime's provider variable is the sealed token, read from the runtime Secret.
    let pod = sandbox_pod(&plan, &settings);
    let var = container(&pod, CONTAINER_RUNTIME)
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "ANTHROPIC_API_KEY")
        .expect("provider variable");
    let source = var
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref())
        .expect("ref");
    assert_eq!(source.name, runtime_secret_name(&plan.name));
    assert_eq!(source.key, RUNTIME_SEALED_TOKEN_ENTRY);
}

/// Every string leaf of `value` with its JSON path; Secret `data` leaves are also decoded.
fn leaves(path: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::String(s) => {
            out.push((path.to_owned(), s.clone()));
            if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(s)
                && let Ok(text) = String::from_utf8(bytes)
            {
                out.push((format!("{path}(decoded)"), text));
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                leaves(&format!("{path}[{i}]"), v, out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                leaves(&format!("{path}.{k}"), v, out);
            }
            // Keys can carry values too (a label key, a data key).
            for k in map.keys() {
                out.push((format!("{path}<key>"), k.clone()));
            }
        }
        _ => {}
    }
}

#[test]
fn scan_finds_the_real_key_only_in_the_proxy_value_file_entry() {
    let plan = fixture::plan();
    let settings = fixture::settings();
    let objects: Vec<(&str, Value)> = vec![
        (
            "pod",
            serde_json::to_value(sandbox_pod(&plan, &settings)).expect("json"),
        ),
        (
            "proxy",
            serde_json::to_value(proxy_secret(&plan, &settings).expect("builds")).expect("json"),
        ),
        (
            "runtime",
            serde_json::to_value(runtime_secret(&plan)).expect("json"),
        ),
        (
            "netpol",
            serde_json::to_value(network_policy(&plan, &settings)).expect("json"),
        ),
        (
            "pvc",
            serde_json::to_value(workspace_claim(&plan, &settings)).expect("json"),
        ),
    ];
    let b64_key = base64::engine::general_purpose::STANDARD.encode(REAL_KEY);
    let mut hits = Vec::new();
    for (name, value) in &objects {
        let mut all = Vec::new();
        leaves(name, value, &mut all);
        for (path, text) in all {
            if text.contains(REAL_KEY) || text.contains(&b64_key) || text.contains("REALKEY") {
                hits.push(path);
            }
        }
        // Debug output of the plan itself must not carry it either.
        assert!(!format!("{plan:?}").contains(REAL_KEY));
    }
    hits.sort();
    assert_eq!(
        hits,
        [
            format!("proxy.data.{PROXY_VALUE_ENTRY}"),
            format!("proxy.data.{PROXY_VALUE_ENTRY}(decoded)"),
        ]
    );
    // The tokens go where they belong only.
    let mut token_paths = Vec::new();
    for (name, value) in &objects {
        let mut all = Vec::new();
        leaves(name, value, &mut all);
        for (path, text) in all {
            if text.contains(RUNTIME_TOKEN) || text.contains(EVENTS_TOKEN) {
                token_paths.push(path);
            }
        }
    }
    token_paths.retain(|p| p.ends_with("(decoded)"));
    token_paths.sort();
    assert_eq!(
        token_paths,
        [
            "proxy.data.events-token(decoded)".to_owned(),
            "runtime.data.token(decoded)".to_owned(),
        ]
    );
    let _ = SEALED;
}

#[test]
fn builders_are_deterministic_and_follow_the_agent() {
    let mut plan = fixture::plan();
    let settings = fixture::settings();
    assert_eq!(sandbox_pod(&plan, &settings), sandbox_pod(&plan, &settings));
    assert_eq!(
        proxy_secret(&plan, &settings).expect("builds"),
        proxy_secret(&plan, &settings).expect("builds")
    );
    plan.sandbox.image = Some("example/custom:2".into());
    plan.sandbox.runtime_class_name = None;
    plan.snapshot.model = "openai/gpt-5".into();
    plan.snapshot.egress = Some(sealpod_resources::common::EgressPolicy {
        allow: vec![],
        mode: sealpod_resources::common::EgressMode::Report,
    });
    let pod = sandbox_pod(&plan, &settings);
    let runtime = container(&pod, CONTAINER_RUNTIME);
    assert_eq!(runtime.image.as_deref(), Some("example/custom:2"));
    assert!(
        runtime
            .env
            .iter()
            .flatten()
            .any(|e| e.name == "OPENAI_API_KEY")
    );
    assert_eq!(
        pod.spec.as_ref().and_then(|s| s.runtime_class_name.clone()),
        None
    );
    let proxy = decoded(&proxy_secret(&plan, &settings).expect("builds"));
    assert_eq!(proxy["data"][PROXY_CONFIG_ENTRY]["mode"], "report");
    assert_eq!(
        proxy["data"][PROXY_CONFIG_ENTRY]["allow"],
        json!(["api.anthropic.com", "sealpod-api.sealpod-system.svc:8081"])
    );
}

#[test]
fn without_claims_the_workspace_is_an_empty_dir() {
    let mut settings = fixture::settings();
    settings.workspace_claim = false;
    let pod = sandbox_pod(&fixture::plan(), &settings);
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .expect("volumes");
    let workspace = volumes
        .iter()
        .find(|v| v.name == MOUNT_WORKSPACE)
        .expect("workspace");
    assert!(workspace.persistent_volume_claim.is_none());
    assert_eq!(
        serde_json::to_value(workspace).expect("json"),
        json!({"name": "workspace", "emptyDir": {"sizeLimit": "10Gi"}})
    );
}

#[test]
fn the_proxy_config_passes_the_sidecars_own_validation() {
    use sealpod_resources::proxy_config::ProxyConfig;
    let plan = fixture::plan();
    let secret = proxy_secret(&plan, &fixture::settings()).expect("builds");
    let yaml = String::from_utf8(
        secret.data.as_ref().expect("data")[PROXY_CONFIG_ENTRY]
            .0
            .clone(),
    )
    .expect("utf8");
    // The sidecar refuses unknown keys, so this also proves the file has no stray field.
    let parsed: ProxyConfig = serde_saphyr::from_str(&yaml).expect("the sidecar parses it");
    let valid = parsed.validate().expect("the sidecar accepts it");
    assert_eq!(valid.credentials.len(), 1);
    assert_eq!(valid.credentials[0].sealed.expose(), fixture::SEALED);
    assert_eq!(
        valid.credentials[0].value_file,
        // Relative: the sidecar reads it next to the configuration file.
        std::path::Path::new(PROXY_VALUE_ENTRY)
    );
    assert_eq!(valid.deny_cidrs.len(), 3);
    assert!(
        valid
            .allow
            .iter()
            .any(|a| a.matches("api.anthropic.com", 443))
    );
    assert!(
        valid
            .allow
            .iter()
            .any(|a| a.matches("sealpod-api.sealpod-system.svc", 8081))
    );
}

/// Settings with `--proxy-resolve` and `--upstream-ca-file` set (parsed by the real flag parser).
fn settings_with_overrides(ca: &str) -> Settings {
    let entries = [
        "api.anthropic.com=127.0.0.1:8443",
        "github.com=10.96.7.7",
        "github.com=::1",
        // Already exempted as the runtime API's network: not listed twice.
        "mirror.local:8443=10.96.0.10",
    ]
    .map(str::to_owned);
    Settings {
        proxy_resolve: entries
            .iter()
            .map(|e| ProxyResolve::parse(e).expect("entry"))
            .collect(),
        upstream_ca: Some(ca.to_owned()),
        ..fixture::settings()
    }
}

const TEST_CA: &str = "-----BEGIN CERTIFICATE-----\nfixture\n-----END CERTIFICATE-----\n";

#[test]
fn with_the_flags_the_proxy_secret_adds_overrides_exemptions_and_the_ca_and_nothing_else() {
    let plan = fixture::plan();
    let mut expected = decoded(&proxy_secret(&plan, &fixture::settings()).expect("builds"));
    let config = &mut expected["data"]["config.yaml"];
    config["resolve"] = json!({
        "api.anthropic.com": ["127.0.0.1:8443"],
        "github.com": ["10.96.7.7", "::1"],
        "mirror.local:8443": ["10.96.0.10"]
    });
    config["allow_cidrs"] = json!(["10.96.0.10/32", "127.0.0.1/32", "10.96.7.7/32", "::1/128"]);
    config["extra_roots"] = json!(["upstream-ca.pem"]);
    expected["data"][UPSTREAM_CA_ENTRY] = json!(TEST_CA);
    let got = decoded(&proxy_secret(&plan, &settings_with_overrides(TEST_CA)).expect("builds"));
    assert_eq!(got, expected);
}

#[test]
fn without_the_flags_there_is_no_ca_entry_and_no_override() {
    let secret = proxy_secret(&fixture::plan(), &fixture::settings()).expect("builds");
    let data = secret.data.as_ref().expect("data");
    assert!(!data.contains_key(UPSTREAM_CA_ENTRY));
    let v = decoded(&secret);
    assert_eq!(v["data"]["config.yaml"]["resolve"], json!({}));
    assert_eq!(v["data"]["config.yaml"]["extra_roots"], json!([]));
}

fn written_config(settings: &Settings) -> sealpod_resources::proxy_config::ValidatedProxyConfig {
    let secret = proxy_secret(&fixture::plan(), settings).expect("builds");
    let yaml = String::from_utf8(
        secret.data.as_ref().expect("data")[PROXY_CONFIG_ENTRY]
            .0
            .clone(),
    )
    .expect("utf8");
    serde_saphyr::from_str::<sealpod_resources::proxy_config::ProxyConfig>(&yaml)
        .expect("the sidecar parses it")
        .validate()
        .expect("the sidecar accepts it")
}

/// The point of the exemptions: the sidecar's own resolver and guard, fed the written file, dial
/// an allowlisted host at the loopback or cluster-private address the override names, while the
/// same overrides without the exemptions are refused as non-public.
#[tokio::test]
async fn the_sidecars_guard_lets_overridden_private_addresses_through() {
    use sealpod_sidecar::resolve::{DialError, Net, SystemNet, resolve_checked};
    use sealpod_sidecar::ssrf::Guard;
    use sealpod_sidecar::target::Target;
    use std::net::SocketAddr;
    use std::sync::Arc;

    let valid = written_config(&settings_with_overrides(TEST_CA));
    for (host, port) in [("api.anthropic.com", 443), ("github.com", 443)] {
        assert!(valid.allow.iter().any(|a| a.matches(host, port)), "{host}");
    }
    let net: Arc<dyn Net> = Arc::new(SystemNet::new(valid.resolve.clone()));
    let guard = Guard::new(valid.deny_cidrs.clone(), valid.allow_cidrs.clone());
    let addrs =
        |v: &[&str]| -> Vec<SocketAddr> { v.iter().map(|a| a.parse().expect("addr")).collect() };
    let target = |host: &str| Target::parse(host, 443).expect("a valid host");
    assert_eq!(
        resolve_checked(&net, &guard, &target("api.anthropic.com"))
            .await
            .expect("loopback override dialled"),
        addrs(&["127.0.0.1:8443"])
    );
    // 10.96.7.7 is private *and* inside the Service range of `deny_cidrs`.
    assert_eq!(
        resolve_checked(&net, &guard, &target("github.com"))
            .await
            .expect("private override dialled"),
        addrs(&["10.96.7.7:443", "[::1]:443"])
    );

    // Without the exemptions the same answers are refused: the exemption is what lets them in.
    let unexempted = Guard::new(
        valid.deny_cidrs.clone(),
        written_config(&fixture::settings()).allow_cidrs,
    );
    for host in ["api.anthropic.com", "github.com"] {
        assert!(
            matches!(
                resolve_checked(&net, &unexempted, &target(host)).await,
                Err(DialError::NonPublic(_))
            ),
            "{host}"
        );
    }
    // The exemption is a host route, not the whole range around it.
    assert!(guard.check("127.0.0.2".parse().expect("ip")).is_err());
    assert!(guard.check("10.96.7.8".parse().expect("ip")).is_err());
}

/// The bundle written into the Secret is one the sidecar loads as `extra_roots`.
#[test]
fn the_sidecar_loads_the_ca_entry_as_extra_roots() {
    let ck = rcgen::generate_simple_self_signed(vec!["gateway.local".to_owned()]).expect("cert");
    let settings = settings_with_overrides(&ck.cert.pem());
    let secret = proxy_secret(&fixture::plan(), &settings).expect("builds");
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join(UPSTREAM_CA_ENTRY);
    std::fs::write(
        &file,
        &secret.data.as_ref().expect("data")[UPSTREAM_CA_ENTRY].0,
    )
    .expect("write");
    let valid = written_config(&settings);
    assert_eq!(valid.extra_roots, [std::path::Path::new(UPSTREAM_CA_ENTRY)]);
    sealpod_sidecar::tls::upstream_client(&[file]).expect("the sidecar loads the bundle");
}

#[test]
fn with_overrides_the_network_policy_adds_one_host_rule_per_non_loopback_address() {
    let plan = fixture::plan();
    let entries = [
        "api.anthropic.com=127.0.0.1:8443",
        "gw.local:443=10.20.0.5",
        "gw.local:8443=10.20.0.5",
        "gw2.local=10.20.0.5:8443",
        "github.com=10.96.7.7",
        "github.com=::1",
        "v6.local=[fd00::5]:443",
    ]
    .map(str::to_owned);
    let settings = Settings {
        proxy_resolve: entries
            .iter()
            .map(|e| ProxyResolve::parse(e).expect("entry"))
            .collect(),
        ..fixture::settings()
    };
    let mut expected =
        serde_json::to_value(network_policy(&plan, &fixture::settings())).expect("json");
    let rules = expected["spec"]["egress"].as_array_mut().expect("egress");
    rules.push(json!({
        "ports": [{"port": 443, "protocol": "TCP"}, {"port": 8443, "protocol": "TCP"}],
        "to": [{"ipBlock": {"cidr": "10.20.0.5/32"}}]
    }));
    // No port fixed by the override (`HOST=IP`): any port to that one address.
    rules.push(json!({"to": [{"ipBlock": {"cidr": "10.96.7.7/32"}}]}));
    rules.push(json!({
        "ports": [{"port": 443, "protocol": "TCP"}],
        "to": [{"ipBlock": {"cidr": "fd00::5/128"}}]
    }));
    assert_eq!(
        serde_json::to_value(network_policy(&plan, &settings)).expect("json"),
        expected
    );
}
