//! Files that hold keys and state: written whole or not at all (a temporary file beside the
//! target, synced, then renamed over it), and never readable by more than their final mode
//! allows, not even for a moment (the temporary file is created owner-only).

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically with mode 0600.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic(path, bytes, |_| Ok(()))
}

/// Writes `bytes` to `path` atomically with `mode` (e.g. 0644 for a certificate).
pub fn write_with_mode(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    write_atomic(path, bytes, |tmp| {
        std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(mode))
    })
}

/// Writes `bytes` to a temporary file (mode 0600) beside `path`, lets `prepare` adjust it (its
/// owner, its mode), then renames it over `path`.
pub fn write_atomic(
    path: &Path,
    bytes: &[u8],
    prepare: impl FnOnce(&Path) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let tmp = temporary(path);
    let _ = std::fs::remove_file(&tmp);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| prepare(&tmp))
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// `NAME.sealpod-tmp` beside `path`.
fn temporary(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".sealpod-tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
    }

    #[test]
    fn a_private_file_replaces_the_old_one_whole_with_mode_0600() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("key");
        std::fs::write(&path, "old and longer").expect("old");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        write_private(&path, b"new").expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"new");
        assert_eq!(mode(&path), 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path()).expect("ls").collect();
        assert_eq!(names.len(), 1, "no temporary file is left");
    }

    #[test]
    fn a_mode_is_set_before_the_file_appears() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("ca.crt");
        write_with_mode(&path, b"cert", 0o644).expect("write");
        assert_eq!(mode(&path), 0o644);
    }

    #[test]
    fn a_failed_preparation_leaves_the_target_untouched() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("state");
        std::fs::write(&path, "kept").expect("old");
        let err = write_atomic(&path, b"new", |_| Err(std::io::Error::other("refused")));
        assert!(err.is_err());
        assert_eq!(std::fs::read(&path).expect("read"), b"kept");
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);
    }
}
