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

/// The local directories of one pod.
#[derive(Debug, Clone)]
pub struct PodDirs {
    /// `<data>/pods/<ns>_<name>_<uid>`
    pub root: PathBuf,
    /// Where volumes live.
    pub volumes: PathBuf,
    /// Where container logs are written (`<container>.log`).
    pub logs: PathBuf,
    /// `<data>/claims`
    pub claims: PathBuf,
}

impl PodDirs {
    /// The directories of `pod` under `data_dir` (not created yet).
    pub fn new(data_dir: &Path, namespace: &str, name: &str, uid: &str) -> PodDirs {
        let root = data_dir
            .join("pods")
            .join(format!("{namespace}_{name}_{uid}"));
        PodDirs {
            volumes: root.join("volumes"),
            logs: root.join("logs"),
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

/// Writes `data` (key → bytes) into `dir`, honouring `items`, atomically per file.
fn write_entries(
    dir: &Path,
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: Option<i32>,
    fs_group: Option<u32>,
) -> Result<(), RunnerError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(RunnerError::io(dir))?;
    let files: Vec<(PathBuf, &Vec<u8>, u32)> = match items {
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
    for (path, bytes, mode) in files {
        if !path.starts_with(dir) || path.components().any(|c| c.as_os_str() == "..") {
            return Err(RunnerError::Spec(format!(
                "volume item path {} escapes its volume",
                path.display()
            )));
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(RunnerError::io(parent))?;
        }
        let tmp = path.with_extension("sealpod-tmp");
        std::fs::write(&tmp, bytes).map_err(RunnerError::io(&tmp))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
            .map_err(RunnerError::io(&tmp))?;
        give_to_group(&tmp, fs_group)?;
        std::fs::rename(&tmp, &path).map_err(RunnerError::io(&path))?;
    }
    Ok(())
}

/// Like a kubelet with `fsGroup`: volume files belong to that group, which every container of
/// the pod has as a supplementary group (only possible, and only done, when the runner is root).
fn give_to_group(path: &Path, fs_group: Option<u32>) -> Result<(), RunnerError> {
    match fs_group {
        Some(gid) if super::process::is_root() => {
            std::os::unix::fs::chown(path, None, Some(gid)).map_err(RunnerError::io(path))
        }
        _ => Ok(()),
    }
}

fn open_dir(dir: &Path, fs_group: Option<u32>) -> Result<(), RunnerError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(RunnerError::io(dir))?;
    give_to_group(dir, fs_group)?;
    // Like a kubelet's emptyDir: writable by any UID the pod's containers run as.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))
        .map_err(RunnerError::io(dir))
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

/// Writes one volume and returns where it lives. When `known` is the version already written
/// (`kind/name@resourceVersion`), nothing is rewritten, so unchanged files keep their mtime.
pub async fn materialize(
    client: &kube::Client,
    namespace: &str,
    volume: &Volume,
    dirs: &PodDirs,
    known: Option<&str>,
    fs_group: Option<u32>,
) -> Result<Materialized, RunnerError> {
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
                write_entries(
                    &dir,
                    &data,
                    secret.items.as_deref(),
                    secret.default_mode,
                    fs_group,
                )?;
                obj.metadata.resource_version
            }
            None if secret.optional == Some(true) => {
                std::fs::create_dir_all(&dir).map_err(RunnerError::io(&dir))?;
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
                write_entries(
                    &dir,
                    &config_map_bytes(&obj),
                    cm.items.as_deref(),
                    cm.default_mode,
                    fs_group,
                )?;
                obj.metadata.resource_version
            }
            None if cm.optional == Some(true) => {
                std::fs::create_dir_all(&dir).map_err(RunnerError::io(&dir))?;
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
        open_dir(&dir, fs_group)?;
        return Ok(Materialized {
            name: volume.name.clone(),
            dir,
            source_version: None,
        });
    }
    if let Some(pvc) = &volume.persistent_volume_claim {
        let dir = dirs.claims.join(&pvc.claim_name);
        open_dir(&dir, fs_group)?;
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

/// Writes every volume of a pod.
pub async fn materialize_all(
    client: &kube::Client,
    pod: &Pod,
    dirs: &PodDirs,
) -> Result<Vec<Materialized>, RunnerError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    std::fs::create_dir_all(&dirs.logs).map_err(RunnerError::io(&dirs.logs))?;
    let mut out = Vec::new();
    for volume in pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
    {
        out.push(materialize(client, namespace, volume, dirs, None, fs_group(pod)).await?);
    }
    Ok(out)
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
        write_entries(dir.path(), &data, None, None, Some(4321)).expect("write");
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
