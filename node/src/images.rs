//! Image → local binary map: the runner never pulls an image; each image reference names a local
//! program (its entrypoint).
//!
//! An entry is `IMAGE=PATH`. `IMAGE` matches a container's image with or without its tag or
//! digest (`ghcr.io/acme/sealpod-sidecar:0.1` matches the entry `ghcr.io/acme/sealpod-sidecar`),
//! or by the last path segment alone (`sealpod-sidecar`), so one map serves every registry
//! prefix. A container `command` whose first word names the entrypoint (bare, or as an absolute
//! path ending in `/<name>`) runs the mapped binary; any other first word is looked up on the
//! host's `PATH`, as a shell would.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Why a container's program cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// No entry matches the image.
    #[error("image `{0}` has no local binary (add `--image {0}=PATH`)")]
    Unknown(String),
    /// An entry is not `IMAGE=PATH`.
    #[error("image map entry `{0}` is not IMAGE=PATH")]
    Syntax(String),
}

/// The image → entrypoint map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageMap {
    entries: BTreeMap<String, PathBuf>,
}

/// Strips the tag and digest of an image reference.
fn repository(image: &str) -> &str {
    let without_digest = image.split('@').next().unwrap_or(image);
    // A `:` after the last `/` starts the tag (a `:` before it is a registry port).
    match without_digest.rfind(':') {
        Some(colon) if !without_digest[colon..].contains('/') => &without_digest[..colon],
        _ => without_digest,
    }
}

fn last_segment(repo: &str) -> &str {
    repo.rsplit('/').next().unwrap_or(repo)
}

impl ImageMap {
    /// Parses `IMAGE=PATH` entries.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<ImageMap, ImageError> {
        let mut map = ImageMap::default();
        for entry in entries {
            let (image, path) = entry
                .split_once('=')
                .filter(|(i, p)| !i.is_empty() && !p.is_empty())
                .ok_or_else(|| ImageError::Syntax(entry.to_owned()))?;
            map.insert(image, path);
        }
        Ok(map)
    }

    /// Adds an entry.
    pub fn insert(&mut self, image: &str, path: impl Into<PathBuf>) {
        self.entries
            .insert(repository(image).to_owned(), path.into());
    }

    /// The entrypoint of an image.
    pub fn entrypoint(&self, image: &str) -> Result<&PathBuf, ImageError> {
        let repo = repository(image);
        self.entries
            .get(repo)
            .or_else(|| {
                let name = last_segment(repo);
                self.entries
                    .iter()
                    .find(|(k, _)| last_segment(k) == name)
                    .map(|(_, v)| v)
            })
            .ok_or_else(|| ImageError::Unknown(image.to_owned()))
    }

    /// The argv a container runs, following Kubernetes' rules: `command` replaces the entrypoint,
    /// `args` replace the default arguments.
    pub fn argv(
        &self,
        image: &str,
        command: &[String],
        args: &[String],
    ) -> Result<Vec<String>, ImageError> {
        let entrypoint = self.entrypoint(image);
        let mut argv = Vec::with_capacity(command.len() + args.len() + 1);
        match command.split_first() {
            Some((first, rest)) => {
                let program = match &entrypoint {
                    Ok(path) if names_entrypoint(first, path) => path.display().to_string(),
                    _ => first.clone(),
                };
                argv.push(program);
                argv.extend(rest.iter().cloned());
            }
            None => argv.push(entrypoint?.display().to_string()),
        }
        argv.extend(args.iter().cloned());
        Ok(argv)
    }
}

fn names_entrypoint(word: &str, entrypoint: &std::path::Path) -> bool {
    let Some(name) = entrypoint.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    word == name || word.ends_with(&format!("/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn images_match_with_or_without_tag_and_registry() {
        let map = ImageMap::parse([
            "ghcr.io/acme/sealpod-sidecar=/opt/bin/sealpod-sidecar",
            "localhost:5000/runtime:1=/opt/bin/sealpod-runtime",
        ])
        .expect("parse");
        for image in [
            "ghcr.io/acme/sealpod-sidecar",
            "ghcr.io/acme/sealpod-sidecar:0.1.0",
            "ghcr.io/acme/sealpod-sidecar@sha256:abc",
            "other.io/sealpod-sidecar:dev",
        ] {
            assert_eq!(
                map.entrypoint(image).expect(image),
                &PathBuf::from("/opt/bin/sealpod-sidecar")
            );
        }
        assert_eq!(
            map.entrypoint("localhost:5000/runtime:2")
                .expect("port is not a tag"),
            &PathBuf::from("/opt/bin/sealpod-runtime")
        );
        assert_eq!(
            map.entrypoint("busybox"),
            Err(ImageError::Unknown("busybox".into()))
        );
        assert!(ImageMap::parse(["noequals"]).is_err());
        assert!(ImageMap::parse(["=x"]).is_err());
    }

    #[test]
    fn argv_follows_command_and_args_rules() {
        let map = ImageMap::parse(["sealpod-sidecar=/opt/bin/sealpod-sidecar"]).expect("parse");
        let img = "sealpod-sidecar:1";
        assert_eq!(
            map.argv(img, &[], &s(&["proxy", "--config", "/c"]))
                .expect("argv"),
            s(&["/opt/bin/sealpod-sidecar", "proxy", "--config", "/c"])
        );
        assert_eq!(
            map.argv(
                img,
                &s(&["/usr/local/bin/sealpod-sidecar", "lock"]),
                &s(&["--verify"])
            )
            .expect("argv"),
            s(&["/opt/bin/sealpod-sidecar", "lock", "--verify"])
        );
        assert_eq!(
            map.argv(img, &s(&["sh", "-c", "true"]), &[]).expect("argv"),
            s(&["sh", "-c", "true"])
        );
        // An unmapped image still runs a command from the host PATH.
        assert_eq!(
            map.argv("busybox", &s(&["sleep", "1"]), &[]).expect("argv"),
            s(&["sleep", "1"])
        );
        assert!(map.argv("busybox", &[], &[]).is_err());
    }
}
