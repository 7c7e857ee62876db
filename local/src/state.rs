//! The data directory of `sealpod up` and what it keeps between runs.
//!
//! ```text
//! DIR/                 0711: others may pass through to their pod's volumes, never list or read
//! DIR/cluster.json     devcluster's objects, Secrets encrypted with DIR/state-key     (0600)
//! DIR/state-key        the key that encrypts Secrets in cluster.json                  (0600)
//! DIR/api.db           the API server's SQLite store                                  (0600)
//! DIR/api-key          the org API key                                                (0600)
//! DIR/kubeconfig       admin kubeconfig                                               (0600)
//! DIR/ports.json       ports chosen at the first run                                  (0600)
//! DIR/logs/            one log per child                                              (0700)
//! DIR/fake-model/      the fake model's key and certificate                           (0700)
//! DIR/runner/          pod directories and kept workspace claims; the pod runner gives each
//!                      pod's volumes to that pod's identity alone
//! ```
//!
//! Ports are chosen once and kept, because sandbox pods carry the runtime API's address in their
//! spec and a resumed cluster restarts those pods as they are.

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

/// A port free on `ip` now (for listeners chosen anew at each run).
pub fn free_port(ip: [u8; 4]) -> std::io::Result<u16> {
    Ok(TcpListener::bind(SocketAddr::from((ip, 0)))?
        .local_addr()?
        .port())
}

impl DataDir {
    /// Opens (creating) the directory and closes it to other users: they may pass through it
    /// (sandbox containers reach their own pod's volumes under `runner/`, which the pod runner
    /// opens to each pod alone), but list and read nothing. Every directory above it must let
    /// others through (`o+x`) for the same reason. Files of an earlier version that were left
    /// readable by others are made owner-only.
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
        set_mode(&root, 0o711)?;
        for (dir, mode) in [("logs", 0o700), ("fake-model", 0o700), ("runner", 0o711)] {
            std::fs::create_dir_all(root.join(dir))?;
            set_mode(&root.join(dir), mode)?;
        }
        for entry in std::fs::read_dir(&root)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                set_mode(&entry.path(), 0o600)?;
            }
        }
        Ok(DataDir { root })
    }

    /// Creates the API server's store owner-only before the API server opens it, so SQLite's
    /// journal files (which take the store's mode) are owner-only from the first write.
    pub fn private_file(&self, name: &str) -> std::io::Result<PathBuf> {
        let path = self.path(name);
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)?;
        set_mode(&path, 0o600)?;
        Ok(path)
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
        write_private(&file, &text)?;
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

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Writes `value` to `path` with mode 0600 (replacing it atomically); returns the path.
pub fn write_private(path: &Path, value: &str) -> std::io::Result<PathBuf> {
    sealpod_util::files::write_private(path, value.as_bytes())?;
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
    fn the_directory_is_closed_and_old_files_become_owner_only() {
        let dir = tempfile_dir();
        std::fs::write(dir.join("cluster.json"), "{}").expect("old state");
        std::fs::set_permissions(
            dir.join("cluster.json"),
            std::fs::Permissions::from_mode(0o644),
        )
        .expect("chmod");
        let data = DataDir::open(&dir).expect("open");
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o711);
        assert_eq!(mode(&dir.join("cluster.json")), 0o600);
        assert_eq!(mode(&dir.join("logs")), 0o700);
        assert_eq!(mode(&dir.join("fake-model")), 0o700);
        assert_eq!(
            mode(&data.ports().map(|_| dir.join("ports.json")).expect("ports")),
            0o600
        );
        assert_eq!(mode(&data.private_file("api.db").expect("db")), 0o600);
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
