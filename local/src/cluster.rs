//! The Kubernetes control plane `sealpod up` runs on: devcluster in process (the default, no Go
//! needed), or the real etcd, kube-apiserver and kube-controller-manager as child processes
//! (`--control-plane kubernetes`). Both serve the API on `127.0.0.1:<cluster port>` over TLS,
//! write the admin kubeconfig to the same place, and keep their state in the data directory.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context as _;
use devcluster::DevCluster;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use sealpod_controlplane::ControlPlane;

use crate::config::{ControlPlaneKind, UpArgs};
use crate::state::{DataDir, Ports};

/// The field manager of what `up` applies itself.
pub const MANAGER: &str = "sealpod-up";

/// A running control plane.
#[derive(Debug)]
pub enum Cluster {
    /// devcluster, in process.
    Dev(DevCluster),
    /// The upstream programs.
    Kubernetes(ControlPlane),
}

impl Cluster {
    /// Starts the control plane `args` asks for.
    pub async fn start(args: &UpArgs, data: &DataDir, ports: &Ports) -> anyhow::Result<Cluster> {
        match args.control_plane {
            ControlPlaneKind::Devcluster => {
                let cluster = DevCluster::start(devcluster::Config {
                    listen: SocketAddr::from(([127, 0, 0, 1], ports.cluster)),
                    tls: true,
                    state_file: Some(data.path("cluster.json")),
                    state_key_file: Some(data.path("state-key")),
                    ..devcluster::Config::default()
                })
                .await
                .context("starting devcluster")?;
                Ok(Cluster::Dev(cluster))
            }
            ControlPlaneKind::Kubernetes => {
                let programs =
                    sealpod_controlplane::find_programs(args.control_plane_bin_dir.as_deref())?;
                let plane = ControlPlane::start(sealpod_controlplane::Config {
                    dir: data.path("kubernetes"),
                    programs,
                    api_port: ports.cluster,
                })
                .await
                .context("starting the Kubernetes control plane")?;
                Ok(Cluster::Kubernetes(plane))
            }
        }
    }

    /// Its name in messages.
    pub fn name(&self) -> &'static str {
        match self {
            Cluster::Dev(_) => "devcluster",
            Cluster::Kubernetes(_) => "kube-apiserver",
        }
    }

    /// The API server's URL.
    pub fn url(&self) -> String {
        match self {
            Cluster::Dev(c) => c.base_url(),
            Cluster::Kubernetes(c) => c.url().to_owned(),
        }
    }

    /// Every address it listens on.
    pub fn listeners(&self) -> Vec<SocketAddr> {
        match self {
            Cluster::Dev(c) => vec![c.addr()],
            Cluster::Kubernetes(c) => c.listeners(),
        }
    }

    /// Writes the admin kubeconfig.
    pub fn write_kubeconfig(&self, path: &Path) -> anyhow::Result<()> {
        match self {
            Cluster::Dev(c) => c.write_kubeconfig(path)?,
            Cluster::Kubernetes(c) => c.write_kubeconfig(path)?,
        }
        Ok(())
    }

    /// An admin client.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        Ok(match self {
            Cluster::Dev(c) => c.client(),
            Cluster::Kubernetes(c) => c.client().await?,
        })
    }

    /// Installs (or updates) the CRDs with `client` and waits until they are served.
    pub async fn install_crds(
        &self,
        client: &kube::Client,
        crds: &[CustomResourceDefinition],
    ) -> anyhow::Result<()> {
        match self {
            Cluster::Dev(c) => c.install_crds(crds).await?,
            Cluster::Kubernetes(_) => {
                sealpod_controlplane::install_crds(client, crds, MANAGER).await?;
            }
        }
        Ok(())
    }

    /// A part of the control plane that exited by itself (devcluster runs in process: never).
    pub fn exited(&mut self) -> Option<(String, String)> {
        match self {
            Cluster::Dev(_) => None,
            Cluster::Kubernetes(c) => c.exited(),
        }
    }

    /// Stops it; devcluster writes its state one last time.
    pub async fn shutdown(self) {
        match self {
            Cluster::Dev(c) => c.shutdown().await,
            Cluster::Kubernetes(c) => c.shutdown().await,
        }
    }
}

/// Writes to `out` (mode 0600) a kubeconfig like `admin` (same server and CA) whose user is the
/// bearer token in `token_file`, referred to by its absolute path (never copied).
pub fn write_token_kubeconfig(admin: &Path, token_file: &Path, out: &Path) -> anyhow::Result<()> {
    let token_file = std::fs::canonicalize(token_file)
        .with_context(|| format!("token file {}", token_file.display()))?;
    let mut config = kube::config::Kubeconfig::read_from(admin)
        .with_context(|| format!("reading {}", admin.display()))?;
    for named in &mut config.auth_infos {
        named.auth_info = Some(kube::config::AuthInfo {
            token_file: Some(token_file.display().to_string()),
            ..kube::config::AuthInfo::default()
        });
    }
    // JSON is YAML: every kubeconfig reader takes it.
    let text = serde_json::to_string_pretty(&config)?;
    crate::state::write_private(out, &text)
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}
