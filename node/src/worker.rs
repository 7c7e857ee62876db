//! One pod's life on this machine: volumes, init containers in order (native sidecars started,
//! kept running and gating the next container on their startup probe), then the containers,
//! supervised by the pod's restart policy with exponential backoff; stopped gracefully on delete.
//!
//! The worker polls its processes every tick and writes the pod status back only when it
//! changes, so an idle pod costs no API calls.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use tokio::process::Child;
use tokio::sync::watch;

use super::env::{PodFields, resolve};
use super::identity::{IdentityPool, PodIdentity, PodNamespaces};
use super::ledger::Ledger;
use super::probe::ProbeState;
use super::process::{Join, Launch, exit_code, run_to_completion, spawn, stop};
use super::volumes::{self, Materialized, MountMap, Owner, PodDirs, materialize_all};
use super::{RunnerConfig, RunnerError};

const TICK: Duration = Duration::from_millis(100);

/// Whether, and why, a pod's worker stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// Keep running.
    No,
    /// The runner shuts down; the pod lives on and starts again with the next runner.
    Runner,
    /// The pod is deleted: its directory goes too (kept claims stay).
    Deleted,
}
/// The longest a `postStart` hook may run (a kubelet has no limit; a stuck hook must not hold
/// the pod's worker forever).
const POST_START_LIMIT: Duration = Duration::from_secs(300);

/// The command of a container's `postStart` exec handler (the only kind the runner runs).
fn post_start(spec: &Container) -> Option<Vec<String>> {
    spec.lifecycle
        .as_ref()?
        .post_start
        .as_ref()?
        .exec
        .as_ref()?
        .command
        .clone()
}

/// How often Secret and ConfigMap volumes are checked for changes.
const REFRESH: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Init,
    Sidecar,
    Main,
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    Waiting {
        reason: String,
        message: String,
    },
    Running {
        started_at: String,
    },
    Terminated {
        exit_code: i32,
        reason: String,
        started_at: String,
        finished_at: String,
    },
}

#[derive(Debug)]
struct Tracked {
    spec: Container,
    kind: Kind,
    state: State,
    last: Option<State>,
    restarts: i32,
    child: Option<Child>,
    not_before: Instant,
    startup: Option<ProbeState>,
    readiness: Option<ProbeState>,
    started: bool,
    launch: Option<Launch>,
}

impl Tracked {
    fn new(spec: Container, kind: Kind) -> Tracked {
        Tracked {
            spec,
            kind,
            state: State::Waiting {
                reason: "PodInitializing".into(),
                message: String::new(),
            },
            last: None,
            restarts: 0,
            child: None,
            not_before: Instant::now(),
            startup: None,
            readiness: None,
            started: false,
            launch: None,
        }
    }

    fn running(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }

    fn ready(&self) -> bool {
        self.running() && self.started && self.readiness.as_ref().is_none_or(|r| r.passing)
    }

    fn status_json(&self) -> Value {
        let state_json = |s: &State| match s {
            State::Waiting { reason, message } => {
                json!({"waiting": {"reason": reason, "message": message}})
            }
            State::Running { started_at } => json!({"running": {"startedAt": started_at}}),
            State::Terminated {
                exit_code,
                reason,
                started_at,
                finished_at,
            } => json!({"terminated": {
                "exitCode": exit_code, "reason": reason, "startedAt": started_at, "finishedAt": finished_at}}),
        };
        let mut out = json!({
            "name": self.spec.name,
            "image": self.spec.image.clone().unwrap_or_default(),
            "imageID": "",
            "ready": self.ready(),
            "started": self.running() && self.started,
            "restartCount": self.restarts,
            "state": state_json(&self.state),
        });
        if let Some(last) = &self.last {
            out["lastState"] = state_json(last);
        }
        out
    }
}

fn now() -> String {
    Timestamp::from_second(Timestamp::now().as_second())
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Volumes,
    Init(usize),
    Main,
    Done,
}

/// Runs one pod until it is deleted (`stop` becomes true).
/// What of a pod makes a kubelet sync it again: its labels and annotations (a status update
/// does not; the spec of a running pod cannot change in what this runner reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PodMetadata {
    labels: Option<std::collections::BTreeMap<String, String>>,
    annotations: Option<std::collections::BTreeMap<String, String>>,
}

impl PodMetadata {
    pub(super) fn of(pod: &Pod) -> PodMetadata {
        PodMetadata {
            labels: pod.metadata.labels.clone(),
            annotations: pod.metadata.annotations.clone(),
        }
    }
}

pub(super) struct Worker {
    client: kube::Client,
    config: Arc<RunnerConfig>,
    pod: Pod,
    dirs: PodDirs,
    volumes: Vec<Materialized>,
    containers: Vec<Tracked>,
    stage: Stage,
    message: String,
    last_status: Value,
    pod_ip: String,
    identities: Arc<IdentityPool>,
    identity: Option<PodIdentity>,
    namespaces: Option<PodNamespaces>,
    network: Option<super::isolation::PodNetwork>,
    next_refresh: Instant,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("pod", &self.pod.metadata.name)
            .field("stage", &self.stage)
            .finish()
    }
}

/// Tells the API server the pod's containers are gone, as a kubelet does once a pod being
/// deleted gracefully has stopped: a delete with no grace period, for this pod (uid) only. A pod
/// already gone (a server that deletes at once) is the outcome wanted.
pub(super) async fn confirm_deletion(client: kube::Client, pod: Pod) {
    let (Some(ns), Some(name)) = (pod.metadata.namespace, pod.metadata.name) else {
        return;
    };
    let api: Api<Pod> = Api::namespaced(client, &ns);
    let params = kube::api::DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(kube::api::Preconditions {
            uid: pod.metadata.uid,
            resource_version: None,
        }),
        ..kube::api::DeleteParams::default()
    };
    match api.delete(&name, &params).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
        Err(e) => tracing::warn!(pod = %name, error = %e, "could not confirm a pod's deletion"),
    }
}

impl Worker {
    pub(super) fn new(
        client: kube::Client,
        config: Arc<RunnerConfig>,
        identities: Arc<IdentityPool>,
        pod: Pod,
    ) -> Worker {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let dirs = PodDirs::new(&config.data_dir, &ns, &name, &uid);
        let spec = pod.spec.clone().unwrap_or_default();
        let mut containers = Vec::new();
        for c in spec.init_containers.into_iter().flatten() {
            let kind = if c.restart_policy.as_deref() == Some("Always") {
                Kind::Sidecar
            } else {
                Kind::Init
            };
            containers.push(Tracked::new(c, kind));
        }
        for c in spec.containers {
            containers.push(Tracked::new(c, Kind::Main));
        }
        Worker {
            client,
            config,
            pod,
            dirs,
            volumes: Vec::new(),
            containers,
            stage: Stage::Volumes,
            message: String::new(),
            last_status: Value::Null,
            pod_ip: "127.0.0.1".into(),
            identities,
            identity: None,
            namespaces: None,
            network: None,
            next_refresh: Instant::now(),
        }
    }

    fn restart_policy(&self) -> &str {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref())
            .unwrap_or("Always")
    }

    fn grace(&self) -> Duration {
        let secs = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30);
        Duration::from_secs(u64::try_from(secs).unwrap_or(30)).min(self.config.max_grace)
    }

    fn backoff(&self, restarts: i32) -> Duration {
        sealpod_util::backoff::exponential(
            self.config.backoff_base,
            self.config.backoff_max,
            u32::try_from(restarts).unwrap_or(0),
        )
    }

    /// Runs until `stop` turns true, then stops every process. A change of the pod's metadata
    /// (`metadata_rx`) refreshes its Secret and ConfigMap volumes at once.
    pub(super) async fn run(
        mut self,
        mut stop_rx: watch::Receiver<Stop>,
        mut metadata_rx: watch::Receiver<PodMetadata>,
    ) {
        let mut interval = tokio::time::interval(TICK);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                changed = stop_rx.changed() => {
                    if changed.is_err() || *stop_rx.borrow() != Stop::No {
                        break;
                    }
                }
                Ok(()) = metadata_rx.changed() => self.next_refresh = Instant::now(),
            }
            if *stop_rx.borrow() != Stop::No {
                break;
            }
            let before = self.progress();
            if let Err(e) = self.step().await {
                self.message = e.to_string();
                tracing::warn!(pod = ?self.pod.metadata.name, error = %e, "pod step failed");
            }
            self.write_status().await;
            // A step that moved the pod on is followed at once by the next: a container that has
            // just started or finished lets the next one start now, not a tick later.
            if self.progress() != before {
                interval.reset_immediately();
            }
        }
        let reason = match *stop_rx.borrow() {
            Stop::No => Stop::Runner,
            reason => reason,
        };
        self.teardown(reason).await;
    }

    /// Where the pod stands: its stage and each container's state and startedness.
    fn progress(&self) -> (Stage, Vec<(std::mem::Discriminant<State>, bool)>) {
        (
            self.stage,
            self.containers
                .iter()
                .map(|c| (std::mem::discriminant(&c.state), c.started))
                .collect(),
        )
    }

    async fn step(&mut self) -> Result<(), RunnerError> {
        self.reap();
        match self.stage {
            Stage::Volumes => {
                self.prepare_namespaces().await?;
                self.prepare_volumes().await?;
            }
            Stage::Init(i) => self.step_init(i).await?,

            Stage::Main => {
                self.refresh_volumes().await;
                self.step_main().await?;
            }
            Stage::Done => {}
        }
        self.probe_all().await;
        Ok(())
    }

    /// Gives the pod (when the runner is root) its own block of IDs and user namespace, and its
    /// own network namespace when isolation is on.
    async fn prepare_namespaces(&mut self) -> Result<(), RunnerError> {
        if !super::process::is_root() || self.namespaces.is_some() {
            return Ok(());
        }
        // Refused before anything is set up: a pod asking for a bridge it cannot have.
        let bridges = match &self.config.isolation {
            Some(isolation) => Some(super::isolation::pod_bridges(
                isolation,
                self.pod.metadata.annotations.as_ref(),
            )?),
            None => None,
        };
        let identity = match self.identity.take() {
            Some(identity) => identity,
            None => self.identities.allocate()?,
        };
        let ledger = Ledger::of(&self.config.data_dir);
        let mut namespaces = identity.enter(bridges.is_some(), &ledger).await?;
        if let Some(bridges) = &bridges {
            self.dirs.create()?;
            match super::isolation::PodNetwork::create(bridges, namespaces.pid(), &self.dirs.net)
                .await
            {
                Ok(net) => {
                    net.pids().for_each(|pid| ledger.record(pid));
                    self.network = Some(net);
                }
                Err(e) => {
                    namespaces.release().await;
                    self.identity = Some(identity);
                    return Err(e);
                }
            }
        }
        self.namespaces = Some(namespaces);
        self.identity = Some(identity);
        Ok(())
    }

    /// Who owns the pod's volumes on the host (root only).
    fn owner(&self) -> Option<Owner<'_>> {
        self.identity.as_ref().map(|identity| Owner {
            identity,
            fs_group: volumes::fs_group(&self.pod),
        })
    }

    /// Writes the pod's volumes; a missing Secret or ConfigMap keeps the pod waiting.
    async fn prepare_volumes(&mut self) -> Result<(), RunnerError> {
        match materialize_all(&self.client, &self.pod, &self.dirs, self.owner()).await {
            Ok(volumes) => {
                self.volumes = volumes;
                self.message.clear();
                self.stage = Stage::Init(0);
            }
            Err(RunnerError::Waiting(m)) => {
                self.message = m.clone();
                for c in &mut self.containers {
                    c.state = State::Waiting {
                        reason: "ContainerCreating".into(),
                        message: m.clone(),
                    };
                }
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Rewrites Secret and ConfigMap volumes whose object changed, as a kubelet refreshes them
    /// (this is how a rotated credential reaches a running proxy).
    async fn refresh_volumes(&mut self) {
        if Instant::now() < self.next_refresh {
            return;
        }
        self.next_refresh = Instant::now() + REFRESH;
        let ns = self.pod.metadata.namespace.clone().unwrap_or_default();
        for (index, volume) in volumes::volumes_of(&self.pod)
            .filter(|(_, v)| v.secret.is_some() || v.config_map.is_some())
        {
            let known = self
                .volumes
                .iter()
                .find(|v| v.name == volume.name)
                .and_then(|v| v.source_version.clone());
            match volumes::materialize(
                &self.client,
                &ns,
                (index, volume),
                &self.dirs,
                known.as_deref(),
                self.owner(),
            )
            .await
            {
                Ok(fresh) => {
                    if let Some(old) = self.volumes.iter_mut().find(|v| v.name == fresh.name) {
                        *old = fresh;
                    }
                }
                Err(e) => {
                    tracing::debug!(volume = %volume.name, error = %e, "volume refresh failed");
                }
            }
        }
    }

    /// Collects exited processes and records their termination.
    fn reap(&mut self) {
        for c in &mut self.containers {
            let Some(child) = c.child.as_mut() else {
                continue;
            };
            if let Ok(Some(status)) = child.try_wait() {
                let code = exit_code(status);
                let started_at = match &c.state {
                    State::Running { started_at } => started_at.clone(),
                    _ => now(),
                };
                c.state = State::Terminated {
                    exit_code: code,
                    reason: if code == 0 { "Completed" } else { "Error" }.into(),
                    started_at,
                    finished_at: now(),
                };
                c.child = None;
                c.started = false;
                c.readiness = None;
                c.startup = None;
            }
        }
    }

    fn is_entrypoint(&self, image: &str, word: &str) -> bool {
        self.config
            .images
            .entrypoint(image)
            .is_ok_and(|p| p.as_os_str() == word)
    }

    async fn start(&mut self, index: usize) -> Result<(), RunnerError> {
        let fields = PodFields::of(&self.pod, &self.pod_ip);
        let c = &self.containers[index];
        let mounts = MountMap::for_container(&c.spec, &self.volumes)?;
        let mut env = resolve(&self.client, &c.spec, &fields, &mounts).await?;
        if let Some(path) = &self.config.path
            && !c.spec.env.iter().flatten().any(|e| e.name == "PATH")
        {
            env.insert("PATH".to_owned(), path.clone());
        }
        let argv = self
            .config
            .images
            .argv(
                c.spec.image.as_deref().unwrap_or_default(),
                c.spec.command.as_deref().unwrap_or_default(),
                c.spec.args.as_deref().unwrap_or_default(),
            )
            .map_err(|e| RunnerError::Spec(e.to_string()))?
            .into_iter()
            .enumerate()
            .map(|(i, w)| {
                // The image's entrypoint is a host path already (from the image map); mapping
                // it as a container path would send it into a volume mounted at, say, `/tmp`.
                if i == 0 && self.is_entrypoint(c.spec.image.as_deref().unwrap_or_default(), &w) {
                    w
                } else {
                    mounts.map_word(&super::env::expand(&w, &env))
                }
            })
            .collect();
        let cwd = c
            .spec
            .working_dir
            .as_deref()
            .map(|d| PathBuf::from(mounts.map(d)))
            .filter(|d| d.is_dir())
            // As for an image without a working directory of its own.
            .unwrap_or_else(|| PathBuf::from("/"));
        let pod_sc = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.security_context.clone());
        let sc = c.spec.security_context.clone();
        let uid = sc
            .as_ref()
            .and_then(|s| s.run_as_user)
            .or(pod_sc.as_ref().and_then(|s| s.run_as_user))
            .and_then(|u| u32::try_from(u).ok());
        let gid = sc
            .as_ref()
            .and_then(|s| s.run_as_group)
            .or(pod_sc.as_ref().and_then(|s| s.run_as_group))
            .and_then(|g| u32::try_from(g).ok());
        let mut groups: Vec<u32> = volumes::fs_group(&self.pod).into_iter().collect();
        if let Some(identity) = &self.identity {
            // The container reaches the volumes it mounts through their gate groups.
            groups.extend(volumes::gate_groups(&self.pod, &c.spec)?);
            for id in uid.iter().chain(gid.iter()).chain(groups.iter()) {
                identity.host_id(*id)?;
            }
        }
        let launch = Launch {
            argv,
            env,
            cwd,
            uid,
            gid,
            groups,
            join: self.namespaces.as_ref().map(|n| Join {
                holder: n.pid(),
                network: self.network.is_some(),
            }),
            log: self.dirs.logs.join(format!("{}.log", c.spec.name)),
        };
        let child = spawn(&launch)?;
        if let Some(pid) = child.id() {
            Ledger::of(&self.config.data_dir).record(pid);
        }
        let c = &mut self.containers[index];
        if let State::Terminated { .. } = &c.state {
            c.last = Some(c.state.clone());
        }
        c.state = State::Running { started_at: now() };
        c.child = Some(child);
        // Exec probes run on the host too, so their paths are mapped like the command's.
        let mapped = |probe: &Option<k8s_openapi::api::core::v1::Probe>| {
            probe.clone().map(|mut p| {
                if let Some(cmd) = p.exec.as_mut().and_then(|e| e.command.as_mut()) {
                    *cmd = cmd.iter().map(|w| mounts.map_word(w)).collect();
                }
                ProbeState::new(p)
            })
        };
        c.startup = mapped(&c.spec.startup_probe);
        c.readiness = mapped(&c.spec.readiness_probe);
        c.started = c.startup.is_none();
        let hook = post_start(&c.spec).map(|command| Launch {
            argv: command.iter().map(|w| mounts.map_word(w)).collect(),
            ..launch.clone()
        });
        c.launch = Some(launch);
        // A `postStart` exec handler runs to its end before the container counts as started
        // (the next container waits for it, as a kubelet's pod sync does); one that fails kills
        // the container, which its restart policy then restarts.
        if let Some(hook) = hook
            && !run_to_completion(&hook, POST_START_LIMIT).await
        {
            tracing::warn!(pod = %self.pod.metadata.name.as_deref().unwrap_or_default(),
                container = %self.containers[index].spec.name, "postStart hook failed");
            if let Some(child) = self.containers[index].child.as_mut() {
                stop(child, Duration::from_secs(1)).await;
            }
            self.reap();
        }
        Ok(())
    }

    /// Starts container `index` again once its backoff has passed.
    async fn restart_after_backoff(&mut self, index: usize) -> Result<(), RunnerError> {
        if Instant::now() < self.containers[index].not_before {
            return Ok(());
        }
        self.start(index).await
    }

    fn schedule_restart(&mut self, index: usize) {
        let restarts = self.containers[index].restarts + 1;
        let delay = self.backoff(restarts);
        let c = &mut self.containers[index];
        c.restarts = restarts;
        c.not_before = Instant::now() + delay;
        if let State::Terminated { .. } = &c.state {
            c.last = Some(c.state.clone());
        }
        c.state = State::Waiting {
            reason: "CrashLoopBackOff".into(),
            message: format!(
                "back-off {}s restarting failed container {}",
                delay.as_secs(),
                c.spec.name
            ),
        };
    }

    /// Keeps sidecars running (restartPolicy Always), restarting with backoff.
    async fn supervise_sidecars(&mut self, upto: usize) -> Result<(), RunnerError> {
        for i in 0..upto {
            if self.containers[i].kind != Kind::Sidecar {
                continue;
            }
            match &self.containers[i].state {
                State::Terminated { .. } => self.schedule_restart(i),
                State::Waiting { reason, .. } if reason == "CrashLoopBackOff" => {
                    self.restart_after_backoff(i).await?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn step_init(&mut self, i: usize) -> Result<(), RunnerError> {
        self.supervise_sidecars(i).await?;
        let init_count = self
            .containers
            .iter()
            .filter(|c| c.kind != Kind::Main)
            .count();
        if i >= init_count {
            for index in init_count..self.containers.len() {
                self.start(index).await?;
            }
            self.stage = Stage::Main;
            return Ok(());
        }
        let c = &self.containers[i];
        match (&c.kind, &c.state) {
            (_, State::Waiting { reason, .. }) if reason != "CrashLoopBackOff" => {
                self.start(i).await?;
            }
            (_, State::Waiting { .. }) => {
                if Instant::now() >= c.not_before {
                    self.start(i).await?;
                }
            }
            (Kind::Sidecar, State::Running { .. }) => {
                if c.started {
                    self.stage = Stage::Init(i + 1);
                } else if c.startup.as_ref().is_some_and(ProbeState::exhausted) {
                    // A failed startup probe restarts the sidecar.
                    if let Some(child) = self.containers[i].child.as_mut() {
                        stop(child, Duration::from_secs(1)).await;
                    }
                    self.reap();
                }
            }
            (Kind::Sidecar, State::Terminated { .. }) => self.schedule_restart(i),
            (_, State::Running { .. }) => {}
            (_, State::Terminated { exit_code: 0, .. }) => self.stage = Stage::Init(i + 1),
            (_, State::Terminated { .. }) => {
                if self.restart_policy() == "Never" {
                    self.stage = Stage::Done;
                } else {
                    self.schedule_restart(i);
                }
            }
        }
        Ok(())
    }

    async fn step_main(&mut self) -> Result<(), RunnerError> {
        let init_count = self
            .containers
            .iter()
            .filter(|c| c.kind != Kind::Main)
            .count();
        self.supervise_sidecars(init_count).await?;
        let policy = self.restart_policy().to_owned();
        let mut all_done = true;
        for i in init_count..self.containers.len() {
            match self.containers[i].state.clone() {
                State::Terminated { exit_code, .. } => {
                    let again = policy == "Always" || (policy == "OnFailure" && exit_code != 0);
                    if again {
                        all_done = false;
                        self.schedule_restart(i);
                    }
                }
                State::Waiting { reason, .. } if reason == "CrashLoopBackOff" => {
                    all_done = false;
                    self.restart_after_backoff(i).await?;
                }
                _ => all_done = false,
            }
        }
        if all_done {
            self.stage = Stage::Done;
            for i in 0..init_count {
                if let Some(child) = self.containers[i].child.as_mut() {
                    stop(child, Duration::from_secs(5)).await;
                }
            }
            self.reap();
        }
        Ok(())
    }

    async fn probe_all(&mut self) {
        let host = self.pod_ip.clone();
        for c in &mut self.containers {
            let Some(launch) = c.launch.clone() else {
                continue;
            };
            if !c.running() {
                continue;
            }
            if let Some(startup) = c.startup.as_mut()
                && !c.started
            {
                startup.tick(&c.spec, &host, &launch).await;
                if startup.passing {
                    c.started = true;
                }
            }
            if c.started
                && let Some(readiness) = c.readiness.as_mut()
            {
                readiness.tick(&c.spec, &host, &launch).await;
            }
        }
    }

    fn status(&self) -> Value {
        let mains: Vec<&Tracked> = self
            .containers
            .iter()
            .filter(|c| c.kind == Kind::Main)
            .collect();
        let inits: Vec<&Tracked> = self
            .containers
            .iter()
            .filter(|c| c.kind != Kind::Main)
            .collect();
        let phase = match self.stage {
            Stage::Volumes | Stage::Init(_) => "Pending",
            Stage::Main => "Running",
            Stage::Done => {
                let failed = self.containers.iter().any(|c| {
                    c.kind != Kind::Sidecar
                        && matches!(c.state, State::Terminated { exit_code, .. } if exit_code != 0)
                });
                if failed { "Failed" } else { "Succeeded" }
            }
        };
        let initialized = matches!(self.stage, Stage::Main | Stage::Done);
        let ready = self.stage == Stage::Main && mains.iter().all(|c| c.ready());
        let cond =
            |t: &str, ok: bool| json!({"type": t, "status": if ok { "True" } else { "False" }});
        json!({
            "phase": phase,
            "message": self.message,
            "hostIP": self.pod_ip,
            "podIP": self.pod_ip,
            "podIPs": [{"ip": self.pod_ip}],
            "conditions": [
                cond("PodScheduled", true),
                cond("Initialized", initialized),
                cond("ContainersReady", ready),
                cond("Ready", ready),
            ],
            "initContainerStatuses": inits.iter().map(|c| c.status_json()).collect::<Vec<_>>(),
            "containerStatuses": mains.iter().map(|c| c.status_json()).collect::<Vec<_>>(),
        })
    }

    async fn write_status(&mut self) {
        let status = self.status();
        // Transition times are not part of the comparison, so an unchanged pod writes nothing.
        if status == self.last_status {
            return;
        }
        let ns = self.pod.metadata.namespace.clone().unwrap_or_default();
        let name = self.pod.metadata.name.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        match api
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await
        {
            Ok(_) => self.last_status = status,
            Err(e) => tracing::debug!(pod = %name, error = %e, "pod status write failed"),
        }
    }

    async fn teardown(mut self, reason: Stop) {
        let grace = self.grace();
        // Main containers first, then sidecars in reverse start order, as a kubelet does.
        let order: Vec<usize> = self
            .containers
            .iter()
            .enumerate()
            .filter(|(_, c)| c.kind == Kind::Main)
            .map(|(i, _)| i)
            .chain(
                self.containers
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.kind != Kind::Main)
                    .map(|(i, _)| i)
                    .rev(),
            )
            .collect();
        let mains: Vec<usize> = order
            .iter()
            .copied()
            .filter(|i| self.containers[*i].kind == Kind::Main)
            .collect();
        let mut stops = Vec::new();
        for i in &mains {
            if let Some(mut child) = self.containers[*i].child.take() {
                stops.push(tokio::spawn(async move { stop(&mut child, grace).await }));
            }
        }
        for s in stops {
            let _ = s.await;
        }
        for i in order.into_iter().filter(|i| !mains.contains(i)) {
            if let Some(mut child) = self.containers[i].child.take() {
                stop(&mut child, grace).await;
            }
        }
        if let Some(mut network) = self.network.take() {
            network.release().await;
        }
        if let Some(mut namespaces) = self.namespaces.take() {
            namespaces.release().await;
        }
        // No key material stays on disk once the pod stops; a deleted pod leaves nothing.
        volumes::remove_secret_volumes(&self.pod, &self.dirs);
        if reason == Stop::Deleted {
            confirm_deletion(self.client.clone(), self.pod.clone()).await;
        }
        if reason == Stop::Deleted
            && let Err(e) = std::fs::remove_dir_all(&self.dirs.root)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %self.dirs.root.display(), error = %e, "could not remove a pod directory");
        }
    }
}
