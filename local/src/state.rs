//! The data directory of `sealpod up` and what it keeps between runs.
//!
//! ```text
//! DIR/cluster.json     devcluster's objects         DIR/kubeconfig   admin kubeconfig (0600)
//! DIR/api.db           the API server's SQLite store DIR/api-key      the org API key (0600)
//! DIR/ports.json       ports chosen at the first run DIR/logs/        one log per child
//! DIR/runner/          pod directories and kept workspace claims
//! DIR/fake-model/      the fake model's key (0600) and certificate
//! ```
//!
//! Ports are chosen once and kept, because sandbox pods carry the runtime API's address in their
//! spec and a resumed cluster restarts those pods as they are.

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The address the runtime API listens on: its own loopback address, outside the runtime's
/// `NO_PROXY` (`127.0.0.1`), so the runtime reaches it through its proxy as on a cluster.
pub const RUNTIME_API_IP: [u8; 4] = [127, 0, 0, 2];

/// Ports kept across runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ports {
    /// devcluster (HTTPS).
    pub cluster: u16,
    /// The API server's runtime API, on [`RUNTIME_API_IP`].
    pub runtime_api: u16,
    /// The API server's admin endpoints.
    pub api_admin: u16,
    /// The operator's health and metrics endpoints.
    pub operator: u16,
    /// The fake model API.
    pub fake_model: u16,
}

/// The data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    /// Its (absolute) path.
    pub root: PathBuf,
}

fn free_port(ip: [u8; 4]) -> std::io::Result<u16> {
    Ok(TcpListener::bind(SocketAddr::from((ip, 0)))?
        .local_addr()?
        .port())
}

impl DataDir {
    /// Opens (creating) the directory. Sandbox containers run as other users and read their
    /// volumes under it, so every directory above it must let others through (`o+x`).
    pub fn open(path: &Path) -> std::io::Result<DataDir> {
        std::fs::create_dir_all(path)?;
        let root = std::fs::canonicalize(path)?;
        for dir in root.ancestors().skip(1) {
            let mode = std::fs::metadata(dir)?.permissions().mode();
            if mode & 0o001 == 0 {
                return Err(std::io::Error::other(format!(
                    "{} has mode {:o}: the sandbox users cannot reach {} through it; choose a \
                     data directory every user can traverse (the default is /var/lib/sealpod)",
                    dir.display(),
                    mode & 0o777,
                    root.display()
                )));
            }
        }
        // Workspaces under runner/ are written by the sandbox UIDs; they must traverse the path.
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755))?;
        for dir in ["logs", "runner", "fake-model"] {
            std::fs::create_dir_all(root.join(dir))?;
        }
        Ok(DataDir { root })
    }

    /// A path inside the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The ports of earlier runs, or fresh free ones (kept for the next run).
    pub fn ports(&self) -> std::io::Result<Ports> {
        let file = self.path("ports.json");
        if let Ok(text) = std::fs::read_to_string(&file)
            && let Ok(ports) = serde_json::from_str(&text)
        {
            return Ok(ports);
        }
        let ports = Ports {
            cluster: free_port([127, 0, 0, 1])?,
            runtime_api: free_port(RUNTIME_API_IP)?,
            api_admin: free_port([127, 0, 0, 1])?,
            operator: free_port([127, 0, 0, 1])?,
            fake_model: free_port([127, 0, 0, 1])?,
        };
        let text = serde_json::to_string_pretty(&ports).map_err(std::io::Error::other)?;
        std::fs::write(&file, text)?;
        Ok(ports)
    }

    /// Reads a kept secret file, if present and non-empty.
    pub fn read_secret(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.path(name))
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    }

    /// Writes a secret file readable by its owner only.
    pub fn write_secret(&self, name: &str, value: &str) -> std::io::Result<PathBuf> {
        write_private(&self.path(name), value)
    }
}

/// Writes `value` to `path` with mode 0600 (replacing it atomically).
pub fn write_private(path: &Path, value: &str) -> std::io::Result<PathBuf> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(value.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_chosen_once_and_kept() {
        let dir = tempfile_dir();
        let data = DataDir::open(&dir).expect("open");
        let first = data.ports().expect("ports");
        let again = DataDir::open(&dir).expect("reopen").ports().expect("ports");
        assert_eq!(first, again);
        std::fs::remove_dir_all(&dir).expect("clean");
    }

    #[test]
    fn a_data_directory_the_sandbox_users_cannot_reach_is_refused() {
        let dir = tempfile_dir();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let err = DataDir::open(&dir.join("data")).expect_err("refused");
        assert!(err.to_string().contains("mode 700"), "{err}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        DataDir::open(&dir.join("data")).expect("accepted once traversable");
        std::fs::remove_dir_all(&dir).expect("clean");
    }

    #[test]
    fn secrets_are_owner_only() {
        let dir = tempfile_dir();
        let data = DataDir::open(&dir).expect("open");
        let path = data.write_secret("api-key", "value\n").expect("write");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(data.read_secret("api-key").as_deref(), Some("value"));
        assert_eq!(data.read_secret("missing"), None);
        std::fs::remove_dir_all(&dir).expect("clean");
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sealpod-state-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        dir
    }
}
