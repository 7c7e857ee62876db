//! The pod runner against a real devcluster: init containers, a native sidecar gating the main
//! container on its startup probe, volumes (Secret refreshed on change, emptyDir, a kept claim),
//! restarts with backoff, terminal phases, graceful deletion, and (as root) network isolation.

use std::path::{Path, PathBuf};
use std::time::Duration;

use devcluster::runner::isolation::{Bridge, IsolationConfig};
use devcluster::runner::{ImageMap, PodRunner, RunnerConfig};
use devcluster::{Config, DevCluster};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
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
    for _ in 0..600 {
        if let Some(pod) = api.get_opt(name).await.expect("get") {
            let value = serde_json::to_value(&pod).expect("json");
            if check(&value) {
                return value;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pod = api.get_opt(name).await.expect("get");
    let status = pod.and_then(|p| p.status);
    panic!("pod {name} never reached: {what}; last status: {status:#?}");
}

async fn wait_file(path: &Path, want: &str) -> String {
    for _ in 0..300 {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.contains(want)
        {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} never contained {want:?}", path.display());
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
    let mut gone = false;
    for _ in 0..100 {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "main process {pid} survived its pod");
    // The claim's directory is kept after the pod is gone.
    assert!(claim.join("copied").exists());

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
async fn isolated_pods_reach_only_bridged_host_ports() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: network isolation needs root (CI runs as root)");
        return;
    }
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
    let bridged_port = bridged.local_addr().expect("addr").port();
    let hidden_port = hidden.local_addr().expect("addr").port();
    for listener in [bridged, hidden] {
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
         exec sleep 300"
    );
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "iso"},
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
    let out = data.path().join("out");
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
