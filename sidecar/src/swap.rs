//! Credentials at run time and the header-slot swap.
//!
//! A [`Credential`] reads its real value from `value_file` and re-reads it when the file changes
//! (size, mtime, inode: a cheap `stat` per use), so rotation needs no restart and open
//! connections pick up the new value on their next request. [`swap_slots`] replaces the sealed
//! token **only** in the credential's declared header slots; it must never touch another header,
//! the path, the query or the body, and the real value must never be logged.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use http::{HeaderMap, HeaderValue};
use sealpod_resources::proxy_config::{HeaderSlot, ValidatedCredential};
use sealpod_resources::secret::{SealedToken, Secret};

/// A credential with its cached real value.
#[derive(Debug)]
pub struct Credential {
    sealed: SealedToken,
    value_file: PathBuf,
    slots: Vec<HeaderSlot>,
    cache: Mutex<Option<Cached>>,
}

#[derive(Debug)]
struct Cached {
    stamp: Stamp,
    value: Arc<Secret>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
    ino: u64,
    dev: u64,
}

fn stamp(path: &Path) -> io::Result<Stamp> {
    // `metadata` follows symlinks: a Kubernetes Secret update swaps the `..data` link, which
    // changes the inode even when size and mtime happen to match.
    let m = std::fs::metadata(path)?;
    Ok(Stamp {
        len: m.len(),
        mtime: m.mtime(),
        mtime_nsec: m.mtime_nsec(),
        ino: m.ino(),
        dev: m.dev(),
    })
}

impl Credential {
    /// A credential from its validated configuration.
    pub fn new(config: &ValidatedCredential) -> Self {
        Self {
            sealed: config.sealed.clone(),
            value_file: config.value_file.clone(),
            slots: config.headers.clone(),
            cache: Mutex::new(None),
        }
    }

    /// The sealed token, for matching only (never for output).
    pub fn sealed(&self) -> &str {
        self.sealed.expose()
    }

    /// The declared header slots.
    pub fn slots(&self) -> &[HeaderSlot] {
        &self.slots
    }

    /// The current real value: cached, re-read when `value_file` changed.
    pub fn value(&self) -> io::Result<Arc<Secret>> {
        let now = stamp(&self.value_file)?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.as_ref()
            && c.stamp == now
        {
            return Ok(Arc::clone(&c.value));
        }
        let raw = Secret::new(std::fs::read_to_string(&self.value_file)?);
        let value = Secret::new(raw.expose().trim());
        if value.is_empty() || HeaderValue::from_str(value.expose()).is_err() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "value_file is empty or not a valid header value",
            ));
        }
        let value = Arc::new(value);
        *cache = Some(Cached {
            stamp: now,
            value: Arc::clone(&value),
        });
        Ok(value)
    }

    /// True when one of this credential's slots carries its sealed token.
    pub fn slot_carries_token(&self, headers: &HeaderMap) -> bool {
        self.slots.iter().any(|slot| {
            headers
                .get_all(slot.name.as_str())
                .iter()
                .any(|v| slot_token(slot, v) == Some(self.sealed()))
        })
    }
}

/// The token in a slot's value: the whole value, or what follows `<scheme> `.
fn slot_token<'v>(slot: &HeaderSlot, value: &'v HeaderValue) -> Option<&'v str> {
    let value = value.to_str().ok()?.trim();
    match &slot.scheme {
        None => Some(value),
        Some(scheme) => {
            let (given, rest) = value.split_once(' ')?;
            given
                .eq_ignore_ascii_case(scheme)
                .then(|| rest.trim_start())
        }
    }
}

/// Replaces `sealed` with `real` in the declared `slots` of `headers`; returns how many values
/// were replaced. Values of a slot that do not hold exactly the sealed token are left alone.
pub(crate) fn swap_slots(
    headers: &mut HeaderMap,
    sealed: &str,
    slots: &[HeaderSlot],
    real: &Secret,
) -> usize {
    let mut swapped = 0;
    for slot in slots {
        let Ok(name) = http::HeaderName::from_bytes(slot.name.as_bytes()) else {
            continue;
        };
        if !headers
            .get_all(&name)
            .iter()
            .any(|v| slot_token(slot, v) == Some(sealed))
        {
            continue;
        }
        let values: Vec<HeaderValue> = headers.get_all(&name).iter().cloned().collect();
        headers.remove(&name);
        for value in values {
            let replaced = if slot_token(slot, &value) == Some(sealed) {
                let text = match &slot.scheme {
                    Some(scheme) => format!("{scheme} {}", real.expose()),
                    None => real.expose().to_owned(),
                };
                let text = Secret::new(text);
                // `Credential::value` checked the value is a valid header value.
                match HeaderValue::from_str(text.expose()) {
                    Ok(mut v) => {
                        v.set_sensitive(true);
                        swapped += 1;
                        v
                    }
                    Err(_) => value,
                }
            } else {
                value
            };
            headers.append(&name, replaced);
        }
    }
    swapped
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEALED: &str = "sp_sealed_0123456789abcdef0123456789abcdef";
    const OTHER: &str = "sp_sealed_ffffffffffffffffffffffffffffffff";

    fn slots() -> Vec<HeaderSlot> {
        vec![
            HeaderSlot {
                name: "x-api-key".into(),
                scheme: None,
            },
            HeaderSlot {
                name: "authorization".into(),
                scheme: Some("Bearer".into()),
            },
        ]
    }

    #[test]
    fn swaps_only_declared_slots() {
        let real = Secret::new("sk-real-1");
        let mut h = HeaderMap::new();
        h.insert("x-api-key", HeaderValue::from_static(SEALED));
        h.insert(
            "authorization",
            HeaderValue::from_str(&format!("bearer {SEALED}")).expect("v"),
        );
        h.insert("x-other", HeaderValue::from_static(SEALED));
        h.insert("x-api-key-2", HeaderValue::from_static(SEALED));
        assert_eq!(swap_slots(&mut h, SEALED, &slots(), &real), 2);
        assert_eq!(h["x-api-key"], "sk-real-1");
        assert_eq!(h["authorization"], "Bearer sk-real-1");
        assert_eq!(
            h["x-other"], SEALED,
            "undeclared headers are never rewritten"
        );
        assert_eq!(h["x-api-key-2"], SEALED);
    }

    #[test]
    fn leaves_other_values_alone() {
        let real = Secret::new("sk-real-1");
        let mut h = HeaderMap::new();
        h.insert("x-api-key", HeaderValue::from_static(OTHER));
        h.insert(
            "authorization",
            HeaderValue::from_str(&format!("Basic {SEALED}")).expect("v"),
        );
        assert_eq!(swap_slots(&mut h, SEALED, &slots(), &real), 0);
        assert_eq!(h["x-api-key"], OTHER);
        h.insert(
            "x-api-key",
            HeaderValue::from_str(&format!("prefix-{SEALED}")).expect("v"),
        );
        assert_eq!(
            swap_slots(&mut h, SEALED, &slots(), &real),
            0,
            "only the whole value"
        );
    }

    #[test]
    fn value_follows_the_file() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("key");
        std::fs::write(&path, "sk-one\n").expect("write");
        let c = Credential::new(&ValidatedCredential {
            sealed: SealedToken::parse(SEALED).expect("sealed"),
            value_file: path.clone(),
            hosts: vec![],
            headers: slots(),
        });
        assert_eq!(c.value().expect("v").expose(), "sk-one");
        std::fs::write(dir.path().join("new"), "sk-two-longer").expect("write");
        std::fs::rename(dir.path().join("new"), &path).expect("rename");
        assert_eq!(c.value().expect("v").expose(), "sk-two-longer");
        std::fs::write(&path, "").expect("write");
        assert!(c.value().is_err());
    }
}
