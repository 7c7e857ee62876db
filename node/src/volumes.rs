//! Pod volumes on the local disk, and the mapping of container paths onto them.
//!
//! Each pod gets `<data>/pods/<namespace>_<name>_<uid>/` with `volumes/<volume>/` and `logs/`.
//! `secret` and `configMap` volumes are written there (atomically, and rewritten when the object
//! changes, as a kubelet refreshes them), `emptyDir` is an empty directory, and a
//! `persistentVolumeClaim` is `<data>/claims/<namespace>/<claim>/`, kept across pods so a
//! workspace survives pod loss and hibernation.
//!
//! Processes run on the host file system, so a container's mount paths are *mapped*: every
//! environment value, command word, argument (also the value part of `--flag=/path`) and working
//! directory that starts with a mount path is rewritten to the volume's host directory. This
//! module must never write outside the runner's data directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Container, KeyToPath, Pod, Secret, Volume};
use kube::Api;

use super::RunnerError;
use super::identity::{PodIdentity, volume_gid};

/// The local directories of one pod.
#[derive(Debug, Clone)]
pub struct PodDirs {
    /// `<data>/pods/<ns>_<name>_<uid>`
    pub root: PathBuf,
    /// Where volumes live.
    pub volumes: PathBuf,
    /// Where container logs are written (`<container>.log`).
    pub logs: PathBuf,
    /// The pod network's directory (its bridges' sockets, when the path is short enough).
    pub net: PathBuf,
    /// `<data>/claims`
    pub claims: PathBuf,
}

impl PodDirs {
    /// Creates the pod's directories: the way to its volumes passable (`0711`, never listable),
    /// its logs the runner's alone (`0700`).
    pub fn create(&self) -> Result<(), RunnerError> {
        for passage in self.root.ancestors().skip(1).take(2) {
            make_dir(passage, 0o711)?;
        }
        make_dir(&self.root, 0o711)?;
        make_dir(&self.volumes, 0o711)?;
        make_dir(&self.logs, 0o700)
    }

    /// The network directories of every pod with a directory under `data_dir`.
    pub fn networks(data_dir: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(data_dir.join("pods")).map_or_else(
            |_| vec![],
            |entries| entries.flatten().map(|e| e.path().join("net")).collect(),
        )
    }

    /// The directories of `pod` under `data_dir` (not created yet).
    pub fn new(data_dir: &Path, namespace: &str, name: &str, uid: &str) -> PodDirs {
        let root = data_dir
            .join("pods")
            .join(format!("{namespace}_{name}_{uid}"));
        PodDirs {
            volumes: root.join("volumes"),
            logs: root.join("logs"),
            net: root.join("net"),
            root,
            claims: data_dir.join("claims").join(namespace),
        }
    }
}

/// Where one volume lives on disk, and the version of the object it was written from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Materialized {
    /// Volume name.
    pub name: String,
    /// Host directory.
    pub dir: PathBuf,
    /// `kind/name@resourceVersion` of the Secret or ConfigMap written, if any.
    pub source_version: Option<String>,
}

fn mode_of(items_mode: Option<i32>, default_mode: Option<i32>) -> u32 {
    u32::try_from(items_mode.or(default_mode).unwrap_or(0o644)).unwrap_or(0o644)
}

/// Sets the permission bits of `path`.
pub(super) fn set_mode(path: &Path, mode: u32) -> Result<(), RunnerError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(RunnerError::io(path))
}

/// Creates `dir` (and its parents) and gives it `mode`: the runner's own directories on the way
/// to a pod's volumes are `0711` (others may pass through, not list), its private ones `0700`.
pub(super) fn make_dir(dir: &Path, mode: u32) -> Result<(), RunnerError> {
    std::fs::create_dir_all(dir).map_err(RunnerError::io(dir))?;
    set_mode(dir, mode)
}

/// Who owns a pod's volumes on the host (root only): the pod's block of host IDs and its
/// `fsGroup`, as a kubelet gives a user-namespaced pod's volumes to the pod.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    /// The pod's IDs.
    pub identity: &'a PodIdentity,
    /// The pod's `securityContext.fsGroup` (a pod-side ID).
    pub fs_group: Option<u32>,
}

impl Owner<'_> {
    /// Host owner and group of the files of a Secret or ConfigMap volume: the pod's root and
    /// its `fsGroup` (or root's group), as a kubelet writes them.
    fn files(&self) -> Result<(u32, u32), RunnerError> {
        let root = self.identity.host_id(0)?;
        let group = match self.fs_group {
            Some(gid) => self.identity.host_id(gid)?,
            None => root,
        };
        Ok((root, group))
    }

    /// Host owner and group of volume `index`'s directory: the pod's root and the volume's gate
    /// group, which only the containers that mount the volume carry.
    fn gate(&self, index: usize) -> Result<(u32, u32), RunnerError> {
        Ok((
            self.identity.host_id(0)?,
            self.identity.host_id(volume_gid(index)?)?,
        ))
    }
}

fn chown(path: &Path, ids: (u32, u32)) -> Result<(), RunnerError> {
    std::os::unix::fs::lchown(path, Some(ids.0), Some(ids.1)).map_err(RunnerError::io(path))
}

/// Creates a volume's directory and closes it to everyone but the volume's mounters: with an
/// owner, `gate` owns it with `mode`; without one (the runner is not root, nothing can be given
/// away) it is `open_mode`.
fn volume_dir(
    dir: &Path,
    gate: Option<(u32, u32)>,
    mode: u32,
    open_mode: u32,
) -> Result<(), RunnerError> {
    std::fs::create_dir_all(dir).map_err(RunnerError::io(dir))?;
    match gate {
        Some(ids) => {
            chown(dir, ids)?;
            set_mode(dir, mode)
        }
        None => set_mode(dir, open_mode),
    }
}

/// Writes `data` (key → bytes) into `dir`, honouring `items`, atomically per file. `files` is
/// the host owner and group of every file, when the runner can give them away.
fn write_entries(
    dir: &Path,
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: Option<i32>,
    files: Option<(u32, u32)>,
) -> Result<(), RunnerError> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir).map_err(RunnerError::io(dir))?;
    let entries: Vec<(PathBuf, &Vec<u8>, u32)> = match items {
        Some(items) => items
            .iter()
            .filter_map(|item| {
                data.get(&item.key).map(|bytes| {
                    (
                        dir.join(&item.path),
                        bytes,
                        mode_of(item.mode, default_mode),
                    )
                })
            })
            .collect(),
        None => data
            .iter()
            .map(|(k, v)| (dir.join(k), v, mode_of(None, default_mode)))
            .collect(),
    };
    for (path, bytes, mode) in entries {
        if !path.starts_with(dir) || path.components().any(|c| c.as_os_str() == "..") {
            return Err(RunnerError::Spec(format!(
                "volume item path {} escapes its volume",
                path.display()
            )));
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(RunnerError::io(parent))?;
        }
        // Written owner-only, then given its owner and mode before it appears: never readable
        // by more than it ends up readable by.
        sealpod_util::files::write_atomic(&path, bytes, |tmp| {
            if let Some((uid, gid)) = files {
                std::os::unix::fs::lchown(tmp, Some(uid), Some(gid))?;
            }
            std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(mode))
        })
        .map_err(RunnerError::io(&path))?;
    }
    Ok(())
}

/// Hands a kept claim to the pod that mounts it now: every file and directory that belonged to
/// an earlier pod's IDs gets the same pod-side ID in this pod's block (as a kubelet re-owns a
/// volume for `fsGroup`). Symbolic links are re-owned, never followed.
fn adopt_tree(path: &Path, identity: &PodIdentity) -> Result<(), RunnerError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path).map_err(RunnerError::io(path))?;
    let ids = (identity.adopt_id(meta.uid()), identity.adopt_id(meta.gid()));
    if ids != (meta.uid(), meta.gid()) {
        chown(path, ids)?;
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).map_err(RunnerError::io(path))? {
            let entry = entry.map_err(RunnerError::io(path))?;
            adopt_tree(&entry.path(), identity)?;
        }
    }
    Ok(())
}

/// The pod's `securityContext.fsGroup`.
pub fn fs_group(pod: &Pod) -> Option<u32> {
    pod.spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|sc| sc.fs_group)
        .and_then(|g| u32::try_from(g).ok())
}

fn bytes_map(data: Option<&BTreeMap<String, ByteString>>) -> BTreeMap<String, Vec<u8>> {
    data.map(|d| d.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect())
        .unwrap_or_default()
}

fn config_map_bytes(cm: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = cm
        .data
        .as_ref()
        .map(|d| {
            d.iter()
                .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
                .collect()
        })
        .unwrap_or_default();
    out.extend(bytes_map(cm.binary_data.as_ref()));
    out
}

/// Writes volume number `index` of a pod and returns where it lives. When `known` is the
/// version already written (`kind/name@resourceVersion`), nothing is rewritten, so unchanged
/// files keep their mtime. With an `owner` (the runner is root) the volume's directory is closed
/// to all but the containers that mount it (they carry its gate group): Secret and ConfigMap
/// volumes `0750`, emptyDir and claims `2770` (writable by every mounter, as a kubelet's
/// world-writable emptyDir is inside its pod).
pub async fn materialize(
    client: &kube::Client,
    namespace: &str,
    (index, volume): (usize, &Volume),
    dirs: &PodDirs,
    known: Option<&str>,
    owner: Option<Owner<'_>>,
) -> Result<Materialized, RunnerError> {
    let gate = owner.map(|o| o.gate(index)).transpose()?;
    let files = owner.map(|o| o.files()).transpose()?;
    let unchanged = |version: &Option<String>, kind: &str, name: &str| {
        known.is_some_and(|k| k == format!("{kind}/{name}@{}", version.clone().unwrap_or_default()))
    };
    let dir = dirs.volumes.join(&volume.name);
    if let Some(secret) = &volume.secret {
        let name = secret.secret_name.clone().unwrap_or_default();
        let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let found = api.get_opt(&name).await.map_err(RunnerError::kube)?;
        let version = match found {
            Some(obj) if unchanged(&obj.metadata.resource_version, "secret", &name) => {
                obj.metadata.resource_version
            }
            Some(obj) => {
                let mut data = bytes_map(obj.data.as_ref());
                if let Some(strings) = &obj.string_data {
                    for (k, v) in strings {
                        data.insert(k.clone(), v.clone().into_bytes());
                    }
                }
                volume_dir(&dir, gate, 0o750, 0o755)?;
                write_entries(
                    &dir,
                    &data,
                    secret.items.as_deref(),
                    secret.default_mode,
                    files,
                )?;
                obj.metadata.resource_version
            }
            None if secret.optional == Some(true) => {
                volume_dir(&dir, gate, 0o750, 0o755)?;
                None
            }
            None => return Err(RunnerError::Waiting(format!("secret {name} not found"))),
        };
        return Ok(Materialized {
            name: volume.name.clone(),
            dir,
            source_version: Some(format!("secret/{name}@{}", version.unwrap_or_default())),
        });
    }
    if let Some(cm) = &volume.config_map {
        let name = cm.name.clone();
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
        let found = api.get_opt(&name).await.map_err(RunnerError::kube)?;
        let version = match found {
            Some(obj) => {
                volume_dir(&dir, gate, 0o750, 0o755)?;
                write_entries(
                    &dir,
                    &config_map_bytes(&obj),
                    cm.items.as_deref(),
                    cm.default_mode,
                    files,
                )?;
                obj.metadata.resource_version
            }
            None if cm.optional == Some(true) => {
                volume_dir(&dir, gate, 0o750, 0o755)?;
                None
            }
            None => return Err(RunnerError::Waiting(format!("configmap {name} not found"))),
        };
        return Ok(Materialized {
            name: volume.name.clone(),
            dir,
            source_version: Some(format!("configmap/{name}@{}", version.unwrap_or_default())),
        });
    }
    if volume.empty_dir.is_some() {
        volume_dir(&dir, gate, 0o2770, 0o777)?;
        return Ok(Materialized {
            name: volume.name.clone(),
            dir,
            source_version: None,
        });
    }
    if let Some(pvc) = &volume.persistent_volume_claim {
        let dir = dirs.claims.join(&pvc.claim_name);
        for passage in dirs.claims.ancestors().take(2) {
            make_dir(passage, 0o711)?;
        }
        if let Some(owner) = owner
            && dir.exists()
        {
            adopt_tree(&dir, owner.identity)?;
        }
        volume_dir(&dir, gate, 0o2770, 0o777)?;
        return Ok(Materialized {
            name: volume.name.clone(),
            dir,
            source_version: None,
        });
    }
    Err(RunnerError::Spec(format!(
        "volume {} has a source the runner does not support (secret, configMap, emptyDir and \
         persistentVolumeClaim are supported)",
        volume.name
    )))
}

/// The volumes of a pod, numbered as their gate groups are.
pub fn volumes_of(pod: &Pod) -> impl Iterator<Item = (usize, &Volume)> {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
        .enumerate()
}

/// The pod-side gate groups of the volumes `container` mounts.
pub fn gate_groups(pod: &Pod, container: &Container) -> Result<Vec<u32>, RunnerError> {
    let mounted = |name: &str| {
        container
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.name == name)
    };
    volumes_of(pod)
        .filter(|(_, v)| mounted(&v.name))
        .map(|(i, _)| volume_gid(i))
        .collect()
}

/// Writes every volume of a pod.
pub async fn materialize_all(
    client: &kube::Client,
    pod: &Pod,
    dirs: &PodDirs,
    owner: Option<Owner<'_>>,
) -> Result<Vec<Materialized>, RunnerError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    dirs.create()?;
    let mut out = Vec::new();
    for indexed in volumes_of(pod) {
        out.push(materialize(client, namespace, indexed, dirs, None, owner).await?);
    }
    Ok(out)
}

/// Removes the pod's Secret volumes: key material is kept on disk only while the pod runs.
pub fn remove_secret_volumes(pod: &Pod, dirs: &PodDirs) {
    for (_, volume) in volumes_of(pod).filter(|(_, v)| v.secret.is_some()) {
        let dir = dirs.volumes.join(&volume.name);
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %dir.display(), error = %e, "could not remove a Secret volume");
        }
    }
}

/// Container path → host path, longest mount path first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountMap {
    mounts: Vec<(String, PathBuf)>,
}

impl MountMap {
    /// The mapping of one container's volume mounts.
    pub fn for_container(
        container: &Container,
        volumes: &[Materialized],
    ) -> Result<MountMap, RunnerError> {
        let mut mounts = Vec::new();
        for mount in container.volume_mounts.iter().flatten() {
            let volume = volumes
                .iter()
                .find(|v| v.name == mount.name)
                .ok_or_else(|| {
                    RunnerError::Spec(format!(
                        "container {} mounts unknown volume {}",
                        container.name, mount.name
                    ))
                })?;
            let host = match mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
                Some(sub) => volume.dir.join(sub),
                None => volume.dir.clone(),
            };
            mounts.push((mount.mount_path.trim_end_matches('/').to_owned(), host));
        }
        mounts.sort_by_key(|m| std::cmp::Reverse(m.0.len()));
        Ok(MountMap { mounts })
    }

    /// Maps one path-like word; other words come back unchanged.
    pub fn map(&self, word: &str) -> String {
        for (mount, host) in &self.mounts {
            if word == mount {
                return host.display().to_string();
            }
            if let Some(rest) = word.strip_prefix(mount.as_str())
                && rest.starts_with('/')
            {
                return format!("{}{rest}", host.display());
            }
        }
        word.to_owned()
    }

    /// Maps every mount path that appears in `word` as a path of its own: at the start, or after
    /// a separator (whitespace, `=`, `:`, `,`, quotes, shell punctuation), and followed by `/` or
    /// the end of the path. So `--config=/etc/c.yaml`, `PATH=/a:/workspace/bin` and the shell
    /// script `cat /etc/tok/token > /workspace/out` are all mapped, while a URL such as
    /// `http://host/workspace/x` is left alone.
    pub fn map_word(&self, word: &str) -> String {
        let bytes = word.as_bytes();
        let mut out = String::with_capacity(word.len());
        let mut i = 0;
        'scan: while i < bytes.len() {
            let at_boundary = i == 0 || is_separator(bytes[i - 1]);
            if at_boundary && bytes[i] == b'/' {
                for (mount, host) in &self.mounts {
                    let end = i + mount.len();
                    if word[i..].starts_with(mount.as_str())
                        && (end == bytes.len() || !is_path_char(bytes[end]) || bytes[end] == b'/')
                    {
                        out.push_str(&host.display().to_string());
                        i = end;
                        continue 'scan;
                    }
                }
            }
            let ch = word[i..].chars().next().unwrap_or_default();
            out.push(ch);
            i += ch.len_utf8();
        }
        out
    }
}

fn is_separator(b: u8) -> bool {
    b.is_ascii_whitespace() || b"=:,'\"(<>;|&".contains(&b)
}

fn is_path_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.~+@/".contains(&b)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::VolumeMount;

    use super::*;

    #[test]
    fn mount_paths_map_longest_first_and_only_on_boundaries() {
        let volumes = vec![
            Materialized {
                name: "ws".into(),
                dir: "/data/claims/ns/ws".into(),
                source_version: None,
            },
            Materialized {
                name: "tok".into(),
                dir: "/data/pods/p/volumes/tok".into(),
                source_version: None,
            },
        ];
        let container = Container {
            name: "c".into(),
            volume_mounts: Some(vec![
                VolumeMount {
                    name: "ws".into(),
                    mount_path: "/workspace".into(),
                    ..Default::default()
                },
                VolumeMount {
                    name: "tok".into(),
                    mount_path: "/workspace/.token/".into(),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        let map = MountMap::for_container(&container, &volumes).expect("map");
        assert_eq!(map.map("/workspace"), "/data/claims/ns/ws");
        assert_eq!(map.map("/workspace/a/b"), "/data/claims/ns/ws/a/b");
        assert_eq!(map.map("/workspace/.token/t"), "/data/pods/p/volumes/tok/t");
        assert_eq!(map.map("/workspacex"), "/workspacex");
        assert_eq!(map.map("relative"), "relative");
        assert_eq!(
            map.map_word("--config=/workspace/c.yaml"),
            "--config=/data/claims/ns/ws/c.yaml"
        );
        assert_eq!(map.map_word("--x=/etc/y"), "--x=/etc/y");
        assert_eq!(
            map.map_word("cat /workspace/.token/t > /workspace/out; ls /workspacex"),
            "cat /data/pods/p/volumes/tok/t > /data/claims/ns/ws/out; ls /workspacex"
        );
        assert_eq!(
            map.map_word("PATH=/bin:/workspace/bin"),
            "PATH=/bin:/data/claims/ns/ws/bin"
        );
        assert_eq!(
            map.map_word("http://host/workspace/x"),
            "http://host/workspace/x"
        );
        assert_eq!(map.map_word("\"/workspace\""), "\"/data/claims/ns/ws\"");
        let bad = Container {
            name: "c".into(),
            volume_mounts: Some(vec![VolumeMount {
                name: "missing".into(),
                mount_path: "/m".into(),
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert!(MountMap::for_container(&bad, &volumes).is_err());
    }

    #[test]
    fn entries_are_written_with_items_and_never_escape() {
        let dir = tempfile::tempdir().expect("tmp");
        let data = BTreeMap::from([
            ("a".to_owned(), b"1".to_vec()),
            ("b".to_owned(), b"2".to_vec()),
        ]);
        write_entries(dir.path(), &data, None, None, Some((4321, 4321))).expect("write");
        assert_eq!(std::fs::read(dir.path().join("a")).expect("a"), b"1");
        if super::super::process::is_root() {
            use std::os::unix::fs::MetadataExt;
            let meta = std::fs::metadata(dir.path().join("a")).expect("meta");
            assert_eq!(meta.gid(), 4321, "files belong to the pod's fsGroup");
        }
        let items = [KeyToPath {
            key: "b".into(),
            path: "sub/renamed".into(),
            mode: None,
        }];
        write_entries(&dir.path().join("v2"), &data, Some(&items), None, None).expect("write");
        assert_eq!(
            std::fs::read(dir.path().join("v2/sub/renamed")).expect("renamed"),
            b"2"
        );
        assert!(!dir.path().join("v2/a").exists());
        let escape = [KeyToPath {
            key: "a".into(),
            path: "../../x".into(),
            mode: None,
        }];
        assert!(write_entries(&dir.path().join("v3"), &data, Some(&escape), None, None).is_err());
    }
}
