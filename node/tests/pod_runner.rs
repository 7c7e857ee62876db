//! The pod runner against a real devcluster: init containers, a native sidecar gating the main
//! container on its startup probe, volumes (Secret refreshed on change, emptyDir, a kept claim),
//! restarts with backoff, terminal phases, graceful deletion, and (as root) network isolation.

use sealpod_util::wait::until;
use std::path::{Path, PathBuf};
use std::time::Duration;

use devcluster::{Config, DevCluster};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use sealpod_node::isolation::{Bridge, IsolationConfig};
use sealpod_node::{ImageMap, PodRunner, RunnerConfig};
use serde_json::{Value, json};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn config(dir: &Path) -> RunnerConfig {
    let mut config = RunnerConfig::new(dir, ImageMap::default());
    config.backoff_base = Duration::from_millis(100);
    config.backoff_max = Duration::from_millis(400);
    config.max_grace = Duration::from_secs(3);
    config
}

/// Polls the pod until `check` holds (bounded; the bound is a hang guard, not a timing claim).
async fn wait_for(api: &Api<Pod>, name: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let reached = until(what, Duration::from_secs(60), || async {
        let pod = api.get_opt(name).await.expect("get")?;
        let value = serde_json::to_value(&pod).expect("json");
        check(&value).then_some(value)
    })
    .await;
    if let Ok(value) = reached {
        return value;
    }
    let pod = api.get_opt(name).await.expect("get");
    let status = pod.and_then(|p| p.status);
    panic!("pod {name} never reached: {what}; last status: {status:#?}");
}

async fn wait_file(path: &Path, want: &str) -> String {
    until(want, Duration::from_secs(30), || async {
        std::fs::read_to_string(path)
            .ok()
            .filter(|text| text.contains(want))
    })
    .await
    .unwrap_or_else(|_| panic!("{} never contained {want:?}", path.display()))
}

fn pod_dir(data: &Path, name: &str, uid: &str) -> PathBuf {
    data.join("pods").join(format!("default_{name}_{uid}"))
}

#[tokio::test]
async fn runs_init_then_gated_sidecar_then_main_with_volumes() {
    let cluster = DevCluster::start(Config::default()).await.expect("cluster");
    let client = cluster.client();
    let data = tempfile::tempdir().expect("tmp");
    eprintln!("data dir: {}", data.path().display());
    let runner = PodRunner::start(client.clone(), config(data.path()));
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "tok"},
                "stringData": {"token": "first-value"}
            }))
            .expect("secret"),
        )
        .await
        .expect("create secret");

    let port = free_port();
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p1"},
        "spec": {
            "nodeName": "devcluster-node",
            "terminationGracePeriodSeconds": 2,
            "volumes": [
                {"name": "tok", "secret": {"secretName": "tok"}},
                {"name": "ws", "persistentVolumeClaim": {"claimName": "ws-claim"}},
                {"name": "shared", "emptyDir": {}}
            ],
            "initContainers": [
                {"name": "init", "image": "tools",
                 "command": ["sh", "-c", "echo init > /shared/order"],
                 "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]},
                {"name": "sidecar", "image": "tools", "restartPolicy": "Always",
                 "command": ["sh", "-c",
                    format!("echo sidecar >> /shared/order; sleep 1; exec python3 -m http.server {port} --bind 127.0.0.1")],
                 "ports": [{"name": "admin", "containerPort": port}],
                 "startupProbe": {"httpGet": {"path": "/", "port": "admin"}, "periodSeconds": 1, "failureThreshold": 30},
                 "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]}
            ],
            "containers": [
                {"name": "main", "image": "tools",
                 "command": ["sh", "-c",
                    format!("curl -fsS -o /dev/null http://127.0.0.1:{port}/ && echo main-saw-sidecar >> /shared/order; \
                             cat $(TOKEN_FILE) > /workspace/copied; echo $$ > /shared/main.pid; exec sleep 300")],
                 "env": [{"name": "TOKEN_FILE", "value": "/etc/tok/token"}],
                 "readinessProbe": {"exec": {"command": ["test", "-f", "/workspace/copied"]}, "periodSeconds": 1},
                 "volumeMounts": [
                    {"name": "tok", "mountPath": "/etc/tok"},
                    {"name": "ws", "mountPath": "/workspace"},
                    {"name": "shared", "mountPath": "/shared"}
                 ]}
            ]
        }
    }))
    .expect("pod");
    let created = pods
        .create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
    let uid = created.metadata.uid.clone().expect("uid");

    let status = wait_for(&pods, "p1", "Running and Ready", |p| {
        p["status"]["phase"] == "Running"
            && p["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
    })
    .await;
    let inits = status["status"]["initContainerStatuses"]
        .as_array()
        .expect("init statuses");
    assert_eq!(
        inits[0]["state"]["terminated"]["reason"], "Completed",
        "{inits:#?}"
    );
    assert_eq!(inits[1]["started"], true, "{inits:#?}");
    assert_eq!(status["status"]["containerStatuses"][0]["ready"], true);

    let shared = pod_dir(data.path(), "p1", &uid).join("volumes/shared");
    let order = std::fs::read_to_string(shared.join("order")).expect("order");
    assert_eq!(
        order.lines().collect::<Vec<_>>(),
        ["init", "sidecar", "main-saw-sidecar"],
        "the main container must start only after the sidecar's startup probe passed"
    );
    let claim = data.path().join("claims/default/ws-claim");
    assert_eq!(
        std::fs::read_to_string(claim.join("copied")).expect("copied"),
        "first-value"
    );

    // A changed Secret reaches the mounted file without a restart.
    secrets
        .patch(
            "tok",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"token": "second-value"}})),
        )
        .await
        .expect("patch secret");
    let token = pod_dir(data.path(), "p1", &uid).join("volumes/tok/token");
    assert_eq!(wait_file(&token, "second-value").await, "second-value");

    // Deleting the pod stops its processes.
    let pid: u32 = std::fs::read_to_string(shared.join("main.pid"))
        .expect("pid")
        .trim()
        .parse()
        .expect("pid number");
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    pods.delete("p1", &DeleteParams::default())
        .await
        .expect("delete");
    let gone = until("the main process gone", Duration::from_secs(10), || async {
        (!Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    })
    .await;
    assert!(gone.is_ok(), "main process {pid} survived its pod");
    // The claim's directory is kept after the pod is gone.
    assert!(claim.join("copied").exists());

    runner.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_post_start_hook_gates_the_next_container_and_a_failing_one_restarts_its_own() {
    let cluster = DevCluster::start(Config::default()).await.expect("cluster");
    let client = cluster.client();
    let data = tempfile::tempdir().expect("tmp");
    let runner = PodRunner::start(client.clone(), config(data.path()));
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = |name: &str, hook: &str| -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {
                "nodeName": "devcluster-node",
                "terminationGracePeriodSeconds": 1,
                "volumes": [{"name": "shared", "emptyDir": {}}],
                "initContainers": [
                    {"name": "side", "image": "tools", "restartPolicy": "Always",
                     "command": ["sh", "-c", "sleep 0.3; echo up > /shared/up; exec sleep 300"],
                     "lifecycle": {"postStart": {"exec": {"command": ["sh", "-c", hook]}}},
                     "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]}
                ],
                "containers": [
                    {"name": "main", "image": "tools",
                     "command": ["sh", "-c", "echo main >> /shared/order; exec sleep 300"],
                     "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]}
                ]
            }
        }))
        .expect("pod")
    };
    // The hook waits for the sidecar's work; the main container starts only once it is done.
    let created = pods
        .create(
            &PostParams::default(),
            &pod(
                "hooked",
                "until test -f /shared/up; do sleep 0.05; done; echo hooked >> /shared/order",
            ),
        )
        .await
        .expect("create");
    let uid = created.metadata.uid.clone().expect("uid");
    wait_for(&pods, "hooked", "main running", |p| {
        p["status"]["containerStatuses"][0]["state"]["running"].is_object()
    })
    .await;
    let order = pod_dir(data.path(), "hooked", &uid).join("volumes/shared/order");
    assert_eq!(wait_file(&order, "main").await, "hooked\nmain\n");

    // A failing hook kills its container, which is restarted; the next container never starts.
    pods.create(&PostParams::default(), &pod("failing", "exit 1"))
        .await
        .expect("create");
    let status = wait_for(&pods, "failing", "the sidecar restarted", |p| {
        p["status"]["initContainerStatuses"][0]["restartCount"]
            .as_i64()
            .is_some_and(|n| n >= 2)
    })
    .await;
    assert!(
        status["status"]["containerStatuses"][0]["state"]["running"].is_null(),
        "{status:#}"
    );

    runner.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn the_runner_registers_its_node_ready() {
    use k8s_openapi::api::core::v1::Node;
    let cluster = DevCluster::start(Config::default()).await.expect("cluster");
    let client = cluster.client();
    let data = tempfile::tempdir().expect("tmp");
    let runner = PodRunner::start(client.clone(), config(data.path()));
    let nodes: Api<Node> = Api::all(client.clone());
    let ready = until(
        "the node's Ready condition",
        Duration::from_secs(10),
        || async {
            let node = nodes.get_opt("devcluster-node").await.expect("get")?;
            node.status
                .and_then(|s| s.conditions)
                .and_then(|c| c.into_iter().find(|c| c.type_ == "Ready"))
                .map(|c| c.status)
        },
    )
    .await;
    assert_eq!(
        ready.as_deref(),
        Ok("True"),
        "the node registers itself Ready"
    );
    runner.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn restarts_with_backoff_and_reports_terminal_phases() {
    let cluster = DevCluster::start(Config::default()).await.expect("cluster");
    let client = cluster.client();
    let data = tempfile::tempdir().expect("tmp");
    let runner = PodRunner::start(client.clone(), config(data.path()));
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let make = |name: &str, policy: &str, script: &str| -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {
                "nodeName": "devcluster-node",
                "restartPolicy": policy,
                "containers": [{"name": "c", "image": "tools", "command": ["sh", "-c", script]}]
            }
        }))
        .expect("pod")
    };
    for pod in [
        make("crash", "Always", "exit 3"),
        make("fails", "Never", "exit 4"),
        make("succeeds", "Never", "exit 0"),
        make("ignored", "Never", "exit 0"),
    ] {
        let mut pod = pod;
        if pod.metadata.name.as_deref() == Some("ignored") {
            // Bound to another node: this runner must leave it alone.
            pod.spec.as_mut().expect("spec").node_name = Some("another-node".into());
        }
        pods.create(&PostParams::default(), &pod)
            .await
            .expect("create");
    }

    let crash = wait_for(&pods, "crash", "two restarts", |p| {
        p["status"]["containerStatuses"][0]["restartCount"].as_i64() >= Some(2)
    })
    .await;
    let c = &crash["status"]["containerStatuses"][0];
    assert_eq!(c["lastState"]["terminated"]["exitCode"], 3, "{c:#?}");
    assert_eq!(c["lastState"]["terminated"]["reason"], "Error", "{c:#?}");

    let fails = wait_for(&pods, "fails", "Failed", |p| {
        p["status"]["phase"] == "Failed"
    })
    .await;
    assert_eq!(
        fails["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        4
    );
    assert_eq!(fails["status"]["containerStatuses"][0]["restartCount"], 0);
    wait_for(&pods, "succeeds", "Succeeded", |p| {
        p["status"]["phase"] == "Succeeded"
    })
    .await;
    let ignored = pods.get("ignored").await.expect("get");
    // The API server sets `phase: Pending` at create; only a runner writes container statuses.
    let status = ignored.status.clone();
    assert!(
        ignored.status.and_then(|s| s.container_statuses).is_none(),
        "a pod of another node was run: {status:#?}"
    );

    runner.shutdown().await;
    cluster.shutdown().await;
}

fn have(program: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
#[ignore = "needs root (network namespaces, user namespaces): scripts/test.d/15-node-as-root.sh runs it"]
async fn isolated_pods_reach_only_their_bridged_host_ports() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "network isolation needs root"
    );
    assert!(
        have("socat") && have("ip"),
        "scripts/setup installs socat and iproute2, which isolation needs"
    );
    let cluster = DevCluster::start(Config::default()).await.expect("cluster");
    let client = cluster.client();
    let data = tempfile::tempdir().expect("tmp");
    let bridged = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hidden = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let asked = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let bridged_port = bridged.local_addr().expect("addr").port();
    let hidden_port = hidden.local_addr().expect("addr").port();
    let asked_port = asked.local_addr().expect("addr").port();
    for listener in [bridged, hidden, asked] {
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                use tokio::io::AsyncWriteExt;
                let _ = s.write_all(b"hello\n").await;
            }
        });
    }
    let mut cfg = config(data.path());
    cfg.isolation = Some(IsolationConfig {
        bridges: vec![Bridge::loopback(bridged_port)],
    });
    let runner = PodRunner::start(client.clone(), cfg);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let script = format!(
        "(exec 3<>/dev/tcp/127.0.0.1/{bridged_port} && head -1 <&3 > /shared/bridged) || echo refused > /shared/bridged; \
         (exec 3<>/dev/tcp/127.0.0.1/{hidden_port} && head -1 <&3 > /shared/hidden) || echo refused > /shared/hidden; \
         (exec 3<>/dev/tcp/127.0.2.1/{asked_port} && head -1 <&3 > /shared/asked) || echo refused > /shared/asked; \
         (exec 3<>/dev/tcp/127.0.2.1/{hidden_port} && head -1 <&3 > /shared/unasked) || echo refused > /shared/unasked; \
         exec sleep 300"
    );
    // The pod's own bridge, by host name (resolved on the host), besides every pod's.
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "iso", "annotations": {
            (sealpod_node::isolation::BRIDGES_ANNOTATION): format!("127.0.2.1:{asked_port}=localhost:{asked_port}")
        }},
        "spec": {
            "nodeName": "devcluster-node",
            "volumes": [{"name": "shared", "emptyDir": {}}],
            "containers": [{"name": "c", "image": "tools", "command": ["bash", "-c", script],
                            "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]}]
        }
    }))
    .expect("pod");
    let uid = pods
        .create(&PostParams::default(), &pod)
        .await
        .expect("create")
        .metadata
        .uid
        .expect("uid");
    let shared = pod_dir(data.path(), "iso", &uid).join("volumes/shared");
    assert_eq!(
        wait_file(&shared.join("hidden"), "\n").await.trim(),
        "refused"
    );
    assert_eq!(
        wait_file(&shared.join("bridged"), "\n").await.trim(),
        "hello"
    );
    assert_eq!(wait_file(&shared.join("asked"), "\n").await.trim(), "hello");
    assert_eq!(
        wait_file(&shared.join("unasked"), "\n").await.trim(),
        "refused"
    );
    pods.delete("iso", &DeleteParams::default())
        .await
        .expect("delete");
    runner.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_scheduling_runner_binds_unbound_pods_and_gives_them_its_path() {
    let cluster = DevCluster::start(Config::default()).await.expect("cluster");
    let client = cluster.client();
    let data = tempfile::tempdir().expect("tmp");
    let bin = data.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    let tool = bin.join("only-on-the-runner-path");
    std::fs::write(&tool, "#!/bin/sh\necho found-it > \"$1\"\n").expect("tool");
    std::process::Command::new("chmod")
        .arg("755")
        .arg(&tool)
        .status()
        .expect("chmod");
    let mut cfg = config(data.path());
    cfg.schedule = true;
    cfg.path = Some(format!("{}:/usr/bin:/bin", bin.display()));
    let runner = PodRunner::start(client.clone(), cfg);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    // The pod runs as a user of its own (as root, the runner gives it one), so its output
    // directory is open to every user.
    let outputs = data.path().join("outputs");
    std::fs::create_dir_all(&outputs).expect("outputs");
    std::process::Command::new("chmod")
        .arg("777")
        .arg(&outputs)
        .status()
        .expect("chmod");
    let out = outputs.join("out");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "unbound"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "tools",
                "command": ["sh", "-c", format!("only-on-the-runner-path {}", out.display())]}]
        }
    }))
    .expect("pod");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create");
    let done = wait_for(&pods, "unbound", "Succeeded", |p| {
        p["status"]["phase"] == "Succeeded"
    })
    .await;
    assert_eq!(done["spec"]["nodeName"], "devcluster-node");
    assert_eq!(
        std::fs::read_to_string(&out).expect("out").trim(),
        "found-it"
    );
    runner.shutdown().await;
}

#[tokio::test]
async fn an_image_entrypoint_under_a_mounted_path_is_not_remapped() {
    let cluster = DevCluster::start(Config::default()).await.expect("cluster");
    let client = cluster.client();
    let data = tempfile::tempdir().expect("tmp");
    // The entrypoint lives under /tmp (the temp dir), and the container mounts a volume at /tmp.
    let bin = tempfile::tempdir().expect("bin");
    assert!(bin.path().starts_with("/tmp"), "{}", bin.path().display());
    let tool = bin.path().join("entry");
    std::fs::write(&tool, "#!/bin/sh\ntouch \"$(dirname \"$0\")/ran\"\n").expect("tool");
    std::process::Command::new("chmod")
        .arg("755")
        .arg(&tool)
        .status()
        .expect("chmod");
    // The pod runs as a user of its own (as root, the runner gives it one): it writes beside
    // its entrypoint, so that directory is open to it.
    std::process::Command::new("chmod")
        .arg("777")
        .arg(bin.path())
        .status()
        .expect("chmod");
    let mut cfg = config(data.path());
    cfg.images.insert("example/entry", &tool);
    let runner = PodRunner::start(client.clone(), cfg);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "entry"},
        "spec": {
            "nodeName": "devcluster-node",
            "restartPolicy": "Never",
            "volumes": [{"name": "tmp", "emptyDir": {}}],
            "containers": [{"name": "main", "image": "example/entry:1",
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]}]
        }
    }))
    .expect("pod");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create");
    wait_for(&pods, "entry", "Succeeded", |p| {
        p["status"]["phase"] == "Succeeded"
    })
    .await;
    assert!(bin.path().join("ran").exists(), "the mapped entrypoint ran");
    runner.shutdown().await;
}

/// A sandbox-shaped pod: a proxy container (UID 1337) that alone mounts the credential Secret,
/// and a runtime container (UID 1000) with a kept workspace claim and a `/tmp` emptyDir, both
/// with `fsGroup` 1000, as the operator builds them. The runtime writes its workspace, then its
/// PID to `/tmp/pid`.
fn sandbox_shaped(name: &str, secret: &str, claim: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "nodeName": "devcluster-node",
            "terminationGracePeriodSeconds": 1,
            "securityContext": {"fsGroup": 1000},
            "volumes": [
                {"name": "cred", "secret": {"secretName": secret, "defaultMode": 0o440}},
                {"name": "ws", "persistentVolumeClaim": {"claimName": claim}},
                {"name": "tmp", "emptyDir": {}}
            ],
            "containers": [
                {"name": "proxy", "image": "tools", "command": ["sleep", "300"],
                 "securityContext": {"runAsUser": 1337, "runAsGroup": 1337},
                 "readinessProbe": {"exec": {"command": ["cat", "/etc/cred/key"]}, "periodSeconds": 1},
                 "volumeMounts": [{"name": "cred", "mountPath": "/etc/cred"}]},
                {"name": "runtime", "image": "tools",
                 "command": ["sh", "-c",
                    "cat /workspace/notes > /tmp/seen 2>/dev/null; echo work-of-$SESSION >> /workspace/notes; echo $$ > /tmp/pid; exec sleep 300"],
                 "env": [{"name": "SESSION", "value": name}],
                 "workingDir": "/workspace",
                 "securityContext": {"runAsUser": 1000, "runAsGroup": 1000},
                 "volumeMounts": [
                    {"name": "ws", "mountPath": "/workspace"},
                    {"name": "tmp", "mountPath": "/tmp"}
                 ]}
            ]
        }
    }))
    .expect("pod")
}

/// The identity (`setpriv` arguments) of a running process: its UID, GID and groups on the host.
fn identity_of(pid: &str) -> Vec<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let groups = field("Groups:");
    vec![
        format!("--reuid={}", field("Uid:")[0]),
        format!("--regid={}", field("Gid:")[0]),
        if groups.is_empty() {
            "--clear-groups".to_owned()
        } else {
            format!("--groups={}", groups.join(","))
        },
    ]
}

/// Runs `script` under the identity `who` (from [`identity_of`]); true when it exits 0.
fn succeeds_as(who: &[String], script: &str) -> bool {
    std::process::Command::new("setpriv")
        .args(who)
        .args(["--", "sh", "-c", script])
        .current_dir("/")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("setpriv")
        .success()
}

#[tokio::test]
#[ignore = "needs root (network namespaces, user namespaces): scripts/test.d/15-node-as-root.sh runs it"]
async fn a_pod_reaches_only_its_own_volumes_and_no_key_outlives_it() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "per-pod identities need root"
    );
    let cluster = DevCluster::start(Config::default()).await.expect("cluster");
    let client = cluster.client();
    let data = tempfile::tempdir().expect("tmp");
    let runner = PodRunner::start(client.clone(), config(data.path()));
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for (name, key) in [("cred-a", "real-key-of-a"), ("cred-b", "real-key-of-b")] {
        let secret = serde_json::from_value(json!({
            "metadata": {"name": name}, "stringData": {"key": key}
        }))
        .expect("secret");
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .expect("secret");
    }
    let mut dirs = Vec::new();
    for (name, secret, claim) in [("a", "cred-a", "ws-a"), ("b", "cred-b", "ws-b")] {
        let created = pods
            .create(&PostParams::default(), &sandbox_shaped(name, secret, claim))
            .await
            .expect("create");
        let dir = pod_dir(data.path(), name, &created.metadata.uid.expect("uid"));
        wait_for(&pods, name, "Ready", |p| {
            p["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
        .await;
        wait_file(&dir.join("volumes/tmp/pid"), "\n").await;
        dirs.push(dir);
    }
    let (a, b) = (&dirs[0], &dirs[1]);
    let claim_a = data.path().join("claims/default/ws-a");
    let claim_b = data.path().join("claims/default/ws-b");
    let pid_a = std::fs::read_to_string(a.join("volumes/tmp/pid")).expect("pid");
    let pid_b = std::fs::read_to_string(b.join("volumes/tmp/pid")).expect("pid");
    // The attacker: code running in pod b's runtime container, with its exact identity.
    let attacker = identity_of(pid_b.trim());

    // What pod b's runtime may do: its own workspace and /tmp.
    assert!(succeeds_as(
        &attacker,
        &format!("cat {}/notes", claim_b.display())
    ));
    assert!(succeeds_as(
        &attacker,
        &format!("touch {}/volumes/tmp/mine", b.display())
    ));
    // What it must not: read any proxy credential (its own pod's included), read or write the
    // other pod's workspace and /tmp, or reach the other pod's processes.
    let refused = [
        (
            "its own proxy credential",
            format!("cat {}/volumes/cred/key", b.display()),
        ),
        (
            "another pod's credential",
            format!("cat {}/volumes/cred/key", a.display()),
        ),
        (
            "another pod's workspace",
            format!("cat {}/notes", claim_a.display()),
        ),
        (
            "another pod's workspace",
            format!("touch {}/planted", claim_a.display()),
        ),
        (
            "another pod's /tmp",
            format!("touch {}/volumes/tmp/planted", a.display()),
        ),
        (
            "another pod's environment",
            format!("cat /proc/{}/environ", pid_a.trim()),
        ),
        (
            "another pod's processes",
            format!("kill -0 {}", pid_a.trim()),
        ),
        (
            "the pod directories",
            format!("ls {}", data.path().join("pods").display()),
        ),
        ("the pod's logs", format!("ls {}/logs", b.display())),
    ];
    for (what, script) in &refused {
        assert!(
            !succeeds_as(&attacker, script),
            "pod b's runtime reached {what}: {script}"
        );
    }

    // A deleted pod leaves no directory; its claim stays and goes to the next pod that mounts it.
    pods.delete("a", &DeleteParams::default())
        .await
        .expect("delete");
    let _ = until(
        "the pod's directory removed",
        Duration::from_secs(10),
        || async { (!a.exists()).then_some(()) },
    )
    .await;
    assert!(!a.exists(), "{} outlived its pod", a.display());
    let again = pods
        .create(
            &PostParams::default(),
            &sandbox_shaped("a2", "cred-a", "ws-a"),
        )
        .await
        .expect("create");
    let a2 = pod_dir(data.path(), "a2", &again.metadata.uid.expect("uid"));
    assert_eq!(
        wait_file(&a2.join("volumes/tmp/seen"), "\n").await.trim(),
        "work-of-a",
        "the next pod on a claim reads what the last one wrote"
    );
    // It writes `seen` before it appends to the notes: wait for the append, then compare.
    assert_eq!(
        wait_file(&claim_a.join("notes"), "work-of-a2").await,
        "work-of-a\nwork-of-a2\n",
        "and writes there"
    );

    // When the runner stops, no credential stays on disk (the pods are restarted later).
    runner.shutdown().await;
    assert!(
        !b.join("volumes/cred").exists(),
        "pod b's key outlived the runner"
    );
    assert!(
        !a2.join("volumes/cred").exists(),
        "pod a2's key outlived the runner"
    );
    assert!(claim_b.join("notes").exists(), "workspaces are kept");
    cluster.shutdown().await;
}
