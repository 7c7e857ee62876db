//! The test kit: what the tests of the operator, the API server and the whole platform share.
//!
//! [`TestCluster`] is a cluster with sealpod's CRDs installed and the namespaces a test asks for,
//! on the control plane `SEALPOD_TEST_CONTROL_PLANE` names: `devcluster` (the default, in
//! process) or `kubernetes` (the upstream etcd, kube-apiserver and kube-controller-manager that
//! `scripts/setup` builds, one set per test, state in a temporary directory). A test written
//! against it runs unchanged on both; `scripts/test` runs the cluster tests once per plane.
//!
//! [`eventually`] is the one bounded wait the tests poll with.

use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use sealpod_controlplane::ControlPlane;

/// The environment variable that picks the control plane of the tests.
pub const CONTROL_PLANE_ENV: &str = "SEALPOD_TEST_CONTROL_PLANE";
/// The field manager the kit applies CRDs with.
const MANAGER: &str = "sealpod-testkit";
/// How long [`eventually`] waits.
const PATIENCE: Duration = Duration::from_secs(60);

pub use sealpod_controlplane::ControlPlaneKind;

/// The plane `SEALPOD_TEST_CONTROL_PLANE` names (unset: devcluster). Any other value fails the
/// test, so a typo never silently tests the default.
pub fn control_plane_from_env() -> ControlPlaneKind {
    use clap::ValueEnum as _;
    match std::env::var(CONTROL_PLANE_ENV).as_deref() {
        Err(_) | Ok("") => ControlPlaneKind::Devcluster,
        Ok(name) => ControlPlaneKind::from_str(name, false).unwrap_or_else(|_| {
            panic!("{CONTROL_PLANE_ENV}={name}: expected devcluster or kubernetes")
        }),
    }
}

#[derive(Debug)]
enum Plane {
    Dev(devcluster::DevCluster),
    Kubernetes {
        plane: ControlPlane,
        // Dropped after the plane (fields drop in order): its programs are gone first.
        _dir: tempfile::TempDir,
    },
}

/// A running cluster with sealpod's CRDs and the test's namespaces.
pub struct TestCluster {
    plane: Plane,
    client: Client,
}

impl std::fmt::Debug for TestCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCluster")
            .field("plane", &self.plane)
            .finish_non_exhaustive()
    }
}

/// Starts of a control plane tried before a test gives up.
const START_ATTEMPTS: u32 = 2;

/// Where a test's control plane keeps its state: in memory (`/dev/shm`) when that has a GiB free,
/// so etcd neither waits on fsync nor needs free disk; the temporary directory otherwise.
fn state_root() -> std::path::PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    let free = nix::sys::statvfs::statvfs(shm)
        .map(|s| s.blocks_available() * s.fragment_size())
        .unwrap_or(0);
    if free >= 1 << 30 {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// A real control plane in a temporary directory. A start that fails (a program that exits or
/// never gets ready) is reported and tried once more in a fresh directory before the test fails.
async fn start_control_plane() -> (ControlPlane, tempfile::TempDir) {
    let programs = sealpod_controlplane::find_programs(None)
        .expect("the control plane's programs (scripts/setup builds them)");
    let mut attempt = 1;
    loop {
        let dir = tempfile::tempdir_in(state_root()).expect("temporary directory");
        let started = ControlPlane::start(sealpod_controlplane::Config {
            dir: dir.path().to_path_buf(),
            programs: programs.clone(),
            api_port: 0,
        })
        .await;
        match started {
            Ok(plane) => return (plane, dir),
            Err(e) if attempt < START_ATTEMPTS => {
                eprintln!("the control plane did not start (attempt {attempt}): {e}");
                attempt += 1;
            }
            Err(e) => panic!("the control plane starts: {e}"),
        }
    }
}

impl TestCluster {
    /// Starts the cluster `SEALPOD_TEST_CONTROL_PLANE` names, installs every sealpod CRD and
    /// creates `namespaces` (on Kubernetes, also waits for each one's `default` service account,
    /// without which the API server refuses pods).
    pub async fn start(namespaces: &[&str]) -> TestCluster {
        let cluster = TestCluster::start_plane(control_plane_from_env()).await;
        let crds: Vec<_> = sealpod_resources::crds::all()
            .into_iter()
            .map(|(_, c)| c)
            .collect();
        match &cluster.plane {
            Plane::Dev(dev) => dev.install_crds(&crds).await.expect("CRDs installed"),
            Plane::Kubernetes { .. } => {
                sealpod_controlplane::install_crds(&cluster.client, &crds, MANAGER)
                    .await
                    .expect("CRDs installed");
            }
        }
        for ns in namespaces {
            cluster.create_namespace(ns).await;
        }
        cluster
    }

    /// Starts a bare cluster of `kind`: no CRDs, no namespaces beyond the plane's own.
    pub async fn start_plane(kind: ControlPlaneKind) -> TestCluster {
        match kind {
            ControlPlaneKind::Devcluster => {
                let dev = devcluster::DevCluster::start(devcluster::Config::default())
                    .await
                    .expect("devcluster starts");
                let client = dev.client();
                TestCluster {
                    plane: Plane::Dev(dev),
                    client,
                }
            }
            ControlPlaneKind::Kubernetes => {
                let (plane, dir) = start_control_plane().await;
                let client = plane.client().await.expect("an admin client");
                TestCluster {
                    plane: Plane::Kubernetes { plane, _dir: dir },
                    client,
                }
            }
        }
    }

    /// Which plane this is.
    pub fn kind(&self) -> ControlPlaneKind {
        match self.plane {
            Plane::Dev(_) => ControlPlaneKind::Devcluster,
            Plane::Kubernetes { .. } => ControlPlaneKind::Kubernetes,
        }
    }

    /// An admin client.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Every address the control plane listens on.
    pub fn listeners(&self) -> Vec<SocketAddr> {
        match &self.plane {
            Plane::Dev(dev) => vec![dev.addr()],
            Plane::Kubernetes { plane, .. } => plane.listeners(),
        }
    }

    /// devcluster itself, for the tests of devcluster-only behaviour (None on Kubernetes).
    pub fn devcluster(&self) -> Option<&devcluster::DevCluster> {
        match &self.plane {
            Plane::Dev(dev) => Some(dev),
            Plane::Kubernetes { .. } => None,
        }
    }

    /// Creates namespace `name` (unless it exists) and waits until pods can be created in it.
    pub async fn create_namespace(&self, name: &str) {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        match namespaces.create(&PostParams::default(), &ns).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => panic!("creating namespace {name}: {e}"),
        }
        if self.kind() == ControlPlaneKind::Kubernetes {
            let accounts: Api<ServiceAccount> = Api::namespaced(self.client.clone(), name);
            eventually(&format!("the default service account of {name}"), || {
                let accounts = accounts.clone();
                async move { accounts.get_opt("default").await.ok().flatten() }
            })
            .await;
        }
    }
}

/// Polls `f` until it returns `Some`, failing the test after a generous bound (one minute: the
/// real garbage collector and controller manager are slower than devcluster's).
pub async fn eventually<T, F, Fut>(what: &str, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    sealpod_util::wait::until(what, PATIENCE, f)
        .await
        .unwrap_or_else(|timed_out| panic!("{timed_out}"))
}
