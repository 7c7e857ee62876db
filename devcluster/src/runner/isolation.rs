//! Network isolation of pods (root only): each pod gets its own network namespace with nothing
//! but loopback, as a pod has its own network on a node. The only ways out are *bridges*: for
//! each host port the runner is configured with (for example the API server's runtime port or a
//! model API), a listener on the pod's `127.0.0.1:<port>` whose connections are carried over a
//! Unix socket to the host's `127.0.0.1:<port>`. Inside the namespace the pod's lock container
//! decides which UIDs may use them (only the proxy's), so a sandbox process has no direct path
//! to any host service.
//!
//! The in-namespace end of a bridge is `socat` (Debian package `socat`); the host end is a task of
//! the runner. This module must never touch a namespace it did not create (`sp-` + pod uid).

use std::path::Path;
use std::process::Stdio;

use tokio::net::{TcpStream, UnixListener};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use super::RunnerError;

/// Which host ports pods may be bridged to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IsolationConfig {
    /// Host loopback ports reachable from inside every pod at the same port.
    pub bridge_ports: Vec<u16>,
}

/// A pod's namespace and bridges.
#[derive(Debug)]
pub struct PodNetwork {
    /// The namespace name (`ip netns`).
    pub name: String,
    inner: Vec<Child>,
    outer: Vec<JoinHandle<()>>,
}

async fn ip(args: &[&str]) -> Result<(), RunnerError> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| RunnerError::Spec(format!("cannot run ip: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(RunnerError::Spec(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// The namespace name of a pod.
pub fn namespace_name(pod_uid: &str) -> String {
    let short: String = pod_uid
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(12)
        .collect();
    format!("sp-{short}")
}

fn host_end(socket: &Path, port: u16) -> Result<JoinHandle<()>, RunnerError> {
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket).map_err(RunnerError::io(socket))?;
    Ok(tokio::spawn(async move {
        while let Ok((mut inside, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut host) = TcpStream::connect(("127.0.0.1", port)).await {
                    let _ = tokio::io::copy_bidirectional(&mut inside, &mut host).await;
                }
            });
        }
    }))
}

impl PodNetwork {
    /// Creates the namespace, brings up its loopback and starts the bridges.
    pub async fn create(
        config: &IsolationConfig,
        pod_uid: &str,
        dir: &Path,
    ) -> Result<PodNetwork, RunnerError> {
        let name = namespace_name(pod_uid);
        // A namespace left by a runner that died is ours (same pod uid): start clean.
        let _ = ip(&["netns", "del", &name]).await;
        ip(&["netns", "add", &name]).await?;
        let mut net = PodNetwork {
            name: name.clone(),
            inner: Vec::new(),
            outer: Vec::new(),
        };
        if let Err(e) = net.wire(config, dir).await {
            net.release().await;
            return Err(e);
        }
        Ok(net)
    }

    async fn wire(&mut self, config: &IsolationConfig, dir: &Path) -> Result<(), RunnerError> {
        ip(&["-n", &self.name, "link", "set", "lo", "up"]).await?;
        std::fs::create_dir_all(dir).map_err(RunnerError::io(dir))?;
        for port in &config.bridge_ports {
            let socket = dir.join(format!("bridge-{port}.sock"));
            self.outer.push(host_end(&socket, *port)?);
            let child = Command::new("ip")
                .args(["netns", "exec", &self.name, "socat"])
                .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr"))
                .arg(format!("UNIX-CONNECT:{}", socket.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| RunnerError::Spec(format!("cannot start socat: {e}")))?;
            self.inner.push(child);
        }
        Ok(())
    }

    /// Stops the bridges and deletes the namespace.
    pub async fn release(&mut self) {
        for mut child in self.inner.drain(..) {
            let _ = child.kill().await;
        }
        for task in self.outer.drain(..) {
            task.abort();
        }
        if let Err(e) = ip(&["netns", "del", &self.name]).await {
            tracing::warn!(netns = %self.name, error = %e, "could not delete a pod network namespace");
        }
    }
}
