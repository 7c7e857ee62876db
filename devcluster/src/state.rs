//! The optional state file (`--state FILE`): every object and the resourceVersion counter as
//! one JSON document, written atomically (temporary file, then rename; owner-only, mode 0600)
//! shortly after changes and at shutdown, and loaded at start so a restart keeps state. Watches
//! from before a restart get 410 Gone, as after an etcd compaction.
//!
//! With a key (`--state-key-file`), Secrets are encrypted at rest, as a kube-apiserver's
//! `EncryptionConfiguration` with the `aesgcm` provider does: each Secret is stored as
//! `{"storage": …, "encrypted": "aesgcm:v1:<base64 nonce ‖ ciphertext>"}` (AES-256-GCM, a random
//! nonce per write, the storage key as associated data). A state file written without a key
//! loads with one and is encrypted at the next save; an encrypted one never loads without it.

use crate::error::Error;
use crate::store::Store;
use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The prefix of an encrypted Secret, naming the provider and the key generation.
const ENCRYPTED_PREFIX: &str = "aesgcm:v1:";
const NONCE_LEN: usize = 12;

/// The state file and, if Secrets are encrypted at rest, its key.
#[derive(Clone)]
pub(crate) struct StateFile {
    path: PathBuf,
    key: Option<Key<Aes256Gcm>>,
}

impl std::fmt::Debug for StateFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateFile")
            .field("path", &self.path)
            .field("encrypted", &self.key.is_some())
            .finish()
    }
}

fn file_error<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::File {
        what,
        path: path.display().to_string(),
        source,
    }
}

/// Writes `bytes` to `path` atomically, readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    sealpod_util::files::write_private(path, bytes).map_err(file_error("writing state file", path))
}

impl StateFile {
    /// The state file at `path`; with `key_file`, Secrets are encrypted with the key in it
    /// (32 random bytes, base64), which is created when missing.
    pub(crate) fn open(path: PathBuf, key_file: Option<&Path>) -> Result<StateFile, Error> {
        let key = key_file.map(read_or_create_key).transpose()?;
        Ok(StateFile { path, key })
    }

    fn seal(&self, storage: &str, object: &Value) -> Result<Option<Value>, Error> {
        let Some(key) = &self.key else {
            return Ok(None);
        };
        if object.get("kind").and_then(Value::as_str) != Some("Secret") {
            return Ok(None);
        }
        let plain = serde_json::to_vec(object).map_err(|e| self.parse_error(e.to_string()))?;
        let nonce: [u8; NONCE_LEN] = rand::random();
        let sealed = Aes256Gcm::new(key)
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &plain,
                    aad: storage.as_bytes(),
                },
            )
            .map_err(|_| self.parse_error("encrypting a Secret failed".into()))?;
        let mut blob = nonce.to_vec();
        blob.extend(sealed);
        Ok(Some(json!({
            "storage": storage,
            "encrypted": format!("{ENCRYPTED_PREFIX}{}", BASE64.encode(blob)),
        })))
    }

    fn open_sealed(&self, storage: &str, sealed: &str) -> Result<Value, Error> {
        let key = self.key.as_ref().ok_or_else(|| {
            self.parse_error(
                "the state file holds encrypted Secrets; start with the key file that \
                 encrypted them (--state-key-file)"
                    .into(),
            )
        })?;
        let blob = sealed
            .strip_prefix(ENCRYPTED_PREFIX)
            .and_then(|b| BASE64.decode(b).ok())
            .filter(|b| b.len() > NONCE_LEN)
            .ok_or_else(|| self.parse_error("an encrypted Secret is malformed".into()))?;
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce
            .try_into()
            .map_err(|_| self.parse_error("an encrypted Secret is malformed".into()))?;
        let plain = Aes256Gcm::new(key)
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: storage.as_bytes(),
                },
            )
            .map_err(|_| {
                self.parse_error("an encrypted Secret does not open with this key".into())
            })?;
        serde_json::from_slice(&plain).map_err(|e| self.parse_error(e.to_string()))
    }

    fn parse_error(&self, message: String) -> Error {
        Error::Parse {
            path: self.path.display().to_string(),
            message,
        }
    }
}

fn read_or_create_key(path: &Path) -> Result<Key<Aes256Gcm>, Error> {
    let bad = |message: &str| Error::Parse {
        path: path.display().to_string(),
        message: message.to_owned(),
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let bytes: [u8; 32] = BASE64
                .decode(text.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| bad("not a base64 AES-256 key (32 bytes)"))?;
            Ok(Key::<Aes256Gcm>::from(bytes))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let bytes: [u8; 32] = rand::random();
            write_private(path, BASE64.encode(bytes).as_bytes())?;
            Ok(Key::<Aes256Gcm>::from(bytes))
        }
        Err(source) => Err(file_error("reading state key file", path)(source)),
    }
}

/// Loads a state file into the store; a missing file is an empty cluster.
pub(crate) fn load(state: &StateFile, store: &mut Store) -> Result<(), Error> {
    let path = state.path.as_path();
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::File {
                what: "reading state file",
                path: path.display().to_string(),
                source,
            });
        }
    };
    let parse = |message: String| Error::Parse {
        path: path.display().to_string(),
        message,
    };
    let doc: Value = serde_json::from_slice(&text).map_err(|e| parse(e.to_string()))?;
    let rv = doc
        .get("resourceVersion")
        .and_then(Value::as_u64)
        .ok_or_else(|| parse("resourceVersion missing".into()))?;
    let mut objects = Vec::new();
    for entry in doc
        .get("objects")
        .and_then(Value::as_array)
        .ok_or_else(|| parse("objects missing".into()))?
    {
        let Some(storage) = entry.get("storage").and_then(Value::as_str) else {
            continue;
        };
        let object = match (entry.get("object"), entry.get("encrypted")) {
            (Some(object), _) => object.clone(),
            (None, Some(Value::String(sealed))) => state.open_sealed(storage, sealed)?,
            _ => continue,
        };
        objects.push((storage.to_owned(), object));
    }
    store.restore(rv, objects).map_err(parse)
}

/// Writes the store to the state file now.
pub(crate) fn save(state: &StateFile, store: &Mutex<Store>) -> Result<(), Error> {
    let (rv, objects) = match store.lock() {
        Ok(st) => st.snapshot(),
        Err(_) => return Ok(()),
    };
    // Objects are written from the snapshot's shared versions, never copied (a busy cluster
    // saves several times a second).
    let mut entries = Vec::with_capacity(objects.len());
    for (storage, object) in &objects {
        entries.push(match state.seal(storage, object)? {
            Some(sealed) => Entry::Sealed(sealed),
            None => Entry::Plain { storage, object },
        });
    }
    let doc = Document {
        resource_version: rv,
        objects: entries,
    };
    let bytes = serde_json::to_vec(&doc).map_err(|e| state.parse_error(e.to_string()))?;
    write_private(&state.path, &bytes)
}

/// The state file, as written.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Document<'a> {
    resource_version: u64,
    objects: Vec<Entry<'a>>,
}

/// One object of the state file: `{"storage", "object"}`, or a sealed Secret
/// `{"storage", "encrypted"}`.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Entry<'a> {
    Plain { storage: &'a str, object: &'a Value },
    Sealed(Value),
}

/// Saves shortly after every change until `shutdown`, then once more.
pub(crate) async fn persist(
    state: StateFile,
    store: Arc<Mutex<Store>>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut saved = store.lock().map(|s| s.generation).unwrap_or(0);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        let stop = tokio::select! {
            _ = tick.tick() => false,
            _ = shutdown.changed() => true,
        };
        let current = store.lock().map(|s| s.generation).unwrap_or(saved);
        if current != saved || stop {
            let (p, s) = (state.clone(), store.clone());
            match tokio::task::spawn_blocking(move || save(&p, &s)).await {
                Ok(Ok(())) => saved = current,
                Ok(Err(e)) => tracing::warn!(error = %e, "saving state failed"),
                Err(e) => tracing::warn!(error = %e, "saving state failed"),
            }
        }
        if stop {
            return;
        }
    }
}
