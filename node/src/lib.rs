//! sealpod-node, the pod runner: a kubelet for one machine. It watches the Pods bound to its node name and runs
//! them as local processes — init containers in order, native sidecars (init containers with
//! `restartPolicy: Always`) started first, kept running and gating the next container on their
//! startup probe, then the containers — and writes each pod's status back.
//!
//! As root, every pod gets an identity of its own (a user namespace over a block of host IDs, see
//! [`identity`]) and each container reaches only the volumes it mounts; with isolation enabled, a
//! network namespace of its own too (see [`isolation`]). Root in a user namespace over a user's
//! subordinate IDs counts (rootless, as `sealpod up` runs for a normal user): the blocks then come
//! from those IDs.
//!
//! What it does not do: pull images (an [`ImageMap`] names a local binary per image), enforce
//! resource limits, mount file systems (volume paths are mapped, see [`volumes`]), or isolate
//! pods at all unless it runs as root. It says so at start.
//!
//! It must never pass its own environment to a container (see [`env`]).

pub mod env;
pub mod identity;
pub mod images;
pub mod isolation;
pub mod ledger;
pub mod probe;
pub mod process;
pub mod registration;
pub mod volumes;
mod worker;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::watcher;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use images::ImageMap;

/// The node name pods must be bound to (`spec.nodeName`) for the runner to run them.
pub const DEFAULT_NODE_NAME: &str = "devcluster-node";

/// Why a pod step failed.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// Something the pod needs does not exist yet (a Secret, a ConfigMap); retried.
    #[error("waiting: {0}")]
    Waiting(String),
    /// The pod asks for something the runner cannot do.
    #[error("unsupported pod spec: {0}")]
    Spec(String),
    /// A local file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A Kubernetes API call failed.
    #[error("kubernetes API: {0}")]
    Kube(#[source] Box<kube::Error>),
}

impl RunnerError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunnerError + '_ {
        move |source| RunnerError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn kube(e: kube::Error) -> RunnerError {
        RunnerError::Kube(Box::new(e))
    }
}

/// How the runner runs pods.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Pods with this `spec.nodeName` are run.
    pub node_name: String,
    /// Per-pod directories (`pods/`) and kept claim directories (`claims/`) live here.
    pub data_dir: PathBuf,
    /// Image → local binary.
    pub images: ImageMap,
    /// First restart delay; doubles per restart.
    pub backoff_base: Duration,
    /// Longest restart delay.
    pub backoff_max: Duration,
    /// Upper bound on a pod's termination grace period.
    pub max_grace: Duration,
    /// Give each pod its own network namespace (root only; see [`isolation`]).
    pub isolation: Option<isolation::IsolationConfig>,
    /// Also act as the scheduler of a one-node cluster: bind every pod that has no
    /// `spec.nodeName` to this runner's node.
    pub schedule: bool,
    /// `PATH` of the containers (default: the runner's own); a container's `env` overrides it.
    pub path: Option<String>,
}

impl RunnerConfig {
    /// A configuration with the kubelet-like defaults (backoff 1 s doubling to 60 s, grace at
    /// most 30 s).
    pub fn new(data_dir: impl Into<PathBuf>, images: ImageMap) -> RunnerConfig {
        RunnerConfig {
            node_name: DEFAULT_NODE_NAME.to_owned(),
            data_dir: data_dir.into(),
            images,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            max_grace: Duration::from_secs(30),
            isolation: None,
            schedule: false,
            path: None,
        }
    }
}

/// A running pod runner.
#[derive(Debug)]
pub struct PodRunner {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    node: JoinHandle<()>,
}

/// Registers the node, then renews its Lease until `stop`; failures are logged and retried at
/// the next beat (a node that cannot register still runs the pods bound to it).
async fn keep_node(client: kube::Client, name: String, mut stop: watch::Receiver<bool>) {
    let mut registered = false;
    let mut beat = tokio::time::interval(registration::HEARTBEAT);
    loop {
        let once = async {
            beat.tick().await;
            if !registered {
                match registration::register(&client, &name).await {
                    Ok(()) => registered = true,
                    Err(e) => {
                        tracing::warn!(node = %name, error = %e, "could not register the node");
                    }
                }
            }
            if let Err(e) = registration::heartbeat(&client, &name).await {
                tracing::warn!(node = %name, error = %e, "could not renew the node's lease");
            }
        };
        // A stop never waits for an API call in flight (the API server may be gone already).
        tokio::select! {
            () = once => {}
            _ = stop.changed() => return,
        }
    }
}

impl PodRunner {
    /// Starts watching and running pods.
    pub fn start(client: kube::Client, config: RunnerConfig) -> PodRunner {
        let ids = identity::IdRange::of_this_namespace();
        match (&config.isolation, process::is_root()) {
            (Some(_), true) => {
                tracing::info!(
                    rootless = !ids.every_id,
                    pods_at_once = ids.slots,
                    "pods run with identities and network namespaces of their own"
                );
            }
            (_, false) => tracing::warn!(
                "the pod runner is not root: the sandbox is NOT isolated — pods share the host \
                 network and containers run as the runner's user"
            ),
            (None, true) => tracing::warn!(
                "network isolation is off: the sandbox is NOT isolated — pods share the host \
                 network (each still has an identity of its own)"
            ),
        }
        let killed = ledger::Ledger::of(&config.data_dir).kill_leftovers();
        if killed > 0 {
            tracing::warn!(
                killed,
                "killed the processes of pods a runner before this one left running; their pods \
                 start anew"
            );
        }
        isolation::remove_leftover_sockets(volumes::PodDirs::networks(&config.data_dir));
        let (stop, stop_rx) = watch::channel(false);
        let node = tokio::spawn(keep_node(
            client.clone(),
            config.node_name.clone(),
            stop_rx.clone(),
        ));
        let identities = Arc::new(identity::IdentityPool::new(ids));
        let task = tokio::spawn(watch_loop(client, Arc::new(config), identities, stop_rx));
        PodRunner { stop, task, node }
    }

    /// Stops every pod (SIGTERM, grace, SIGKILL) and the watch.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.node.await;
        let _ = self.task.await;
    }
}

struct Running {
    stop: watch::Sender<worker::Stop>,
    /// The pod's labels and annotations as last seen; a change is sent to the worker.
    metadata: watch::Sender<worker::PodMetadata>,
    task: JoinHandle<()>,
}

fn key(pod: &Pod) -> Option<String> {
    pod.metadata.uid.clone()
}

async fn watch_loop(
    client: kube::Client,
    config: Arc<RunnerConfig>,
    identities: Arc<identity::IdentityPool>,
    mut stop_rx: watch::Receiver<bool>,
) {
    let api: Api<Pod> = Api::all(client.clone());
    let selector = format!("spec.nodeName={}", config.node_name);
    // A scheduling runner sees every pod (to bind the unbound ones); otherwise only its own.
    let watch_config = if config.schedule {
        watcher::Config::default()
    } else {
        watcher::Config::default().fields(&selector)
    };
    let mut events = watcher(api, watch_config).boxed();
    let mut pods: HashMap<String, Running> = HashMap::new();
    // Pods being stopped (grace period running); awaited before the runner returns.
    let mut stopping: Vec<JoinHandle<()>> = Vec::new();
    let mut seen_in_relist: Option<Vec<String>> = None;
    loop {
        let event = tokio::select! {
            e = events.next() => e,
            _ = stop_rx.changed() => break,
        };
        match event {
            Some(Ok(watcher::Event::Init)) => seen_in_relist = Some(Vec::new()),
            Some(Ok(watcher::Event::InitApply(pod) | watcher::Event::Apply(pod))) => {
                let Some(uid) = key(&pod) else { continue };
                if config.schedule && is_unbound(&pod) {
                    bind(&client, &pod, &config.node_name).await;
                    continue;
                }
                // The field selector already filters; checking again keeps a server that ignores
                // it from making this runner start another node's pods.
                if pod.spec.as_ref().and_then(|s| s.node_name.as_deref())
                    != Some(config.node_name.as_str())
                {
                    continue;
                }
                if let Some(seen) = seen_in_relist.as_mut() {
                    seen.push(uid.clone());
                }
                let deleting = pod.metadata.deletion_timestamp.is_some();
                match (pods.contains_key(&uid), deleting) {
                    (false, false) => {
                        let (stop, rx) = watch::channel(worker::Stop::No);
                        let (metadata, metadata_rx) = watch::channel(worker::PodMetadata::of(&pod));
                        let worker = worker::Worker::new(
                            client.clone(),
                            config.clone(),
                            identities.clone(),
                            pod,
                        );
                        let task = tokio::spawn(worker.run(rx, metadata_rx));
                        pods.insert(
                            uid,
                            Running {
                                stop,
                                metadata,
                                task,
                            },
                        );
                    }
                    (true, true) => stop_pod(&mut pods, &mut stopping, &uid),
                    // Deleted while no worker of this runner ran it: nothing to stop.
                    (false, true) => {
                        tokio::spawn(worker::confirm_deletion(client.clone(), pod));
                    }
                    // As a kubelet syncs a pod whose metadata changed (status updates do not
                    // count), the worker refreshes its Secret volumes at once.
                    (true, false) => {
                        if let Some(running) = pods.get(&uid) {
                            running.metadata.send_if_modified(|seen| {
                                let now = worker::PodMetadata::of(&pod);
                                let changed = *seen != now;
                                *seen = now;
                                changed
                            });
                        }
                    }
                }
            }
            Some(Ok(watcher::Event::InitDone)) => {
                if let Some(seen) = seen_in_relist.take() {
                    let gone: Vec<String> =
                        pods.keys().filter(|k| !seen.contains(k)).cloned().collect();
                    for uid in gone {
                        stop_pod(&mut pods, &mut stopping, &uid);
                    }
                }
            }
            Some(Ok(watcher::Event::Delete(pod))) => {
                if let Some(uid) = key(&pod) {
                    stop_pod(&mut pods, &mut stopping, &uid);
                }
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "pod watch failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            None => break,
        }
    }
    let uids: Vec<String> = pods.keys().cloned().collect();
    let stops = uids
        .into_iter()
        .filter_map(|uid| pods.remove(&uid))
        .map(|r| {
            let _ = r.stop.send(worker::Stop::Runner);
            r.task
        });
    futures::future::join_all(stops.chain(stopping)).await;
}

fn is_unbound(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .spec
            .as_ref()
            .is_some_and(|s| s.node_name.as_deref().unwrap_or_default().is_empty())
}

/// Binds a pod to the node, as a scheduler does (the `binding` subresource: `spec.nodeName` of
/// an existing pod can be set no other way); the watch then delivers it bound.
async fn bind(client: &kube::Client, pod: &Pod, node: &str) {
    let (Some(ns), Some(name)) = (
        pod.metadata.namespace.as_deref(),
        pod.metadata.name.as_deref(),
    ) else {
        return;
    };
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let binding = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": name, "namespace": ns},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    });
    if let Err(e) = api
        .create_subresource::<_, serde_json::Value>(
            "binding",
            name,
            &kube::api::PostParams::default(),
            &binding,
        )
        .await
    {
        tracing::warn!(pod = %name, namespace = %ns, error = %e, "could not bind a pod to the node");
    }
}

fn stop_pod(pods: &mut HashMap<String, Running>, stopping: &mut Vec<JoinHandle<()>>, uid: &str) {
    if let Some(running) = pods.remove(uid) {
        let _ = running.stop.send(worker::Stop::Deleted);
        // Stopping honours the grace period; the watch goes on meanwhile.
        stopping.retain(|t| !t.is_finished());
        stopping.push(running.task);
    }
}
