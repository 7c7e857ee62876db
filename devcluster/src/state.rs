//! The optional state file (`--state FILE`): every object and the resourceVersion counter as
//! one JSON document, written atomically (temporary file, then rename) shortly after changes and
//! at shutdown, and loaded at start so a restart keeps state. Watches from before a restart get
//! 410 Gone, as after an etcd compaction.

use crate::error::Error;
use crate::store::Store;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Loads a state file into the store; a missing file is an empty cluster.
pub(crate) fn load(path: &Path, store: &mut Store) -> Result<(), Error> {
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
    let objects = doc
        .get("objects")
        .and_then(Value::as_array)
        .ok_or_else(|| parse("objects missing".into()))?
        .iter()
        .filter_map(|o| {
            Some((
                o.get("storage")?.as_str()?.to_string(),
                o.get("object")?.clone(),
            ))
        })
        .collect();
    store.restore(rv, objects).map_err(parse)
}

/// Writes the store to `path` now.
pub(crate) fn save(path: &Path, store: &Mutex<Store>) -> Result<(), Error> {
    let (rv, objects) = match store.lock() {
        Ok(st) => st.snapshot(),
        Err(_) => return Ok(()),
    };
    let objects: Vec<Value> = objects
        .into_iter()
        .map(|(s, o)| json!({"storage": s, "object": *o}))
        .collect();
    let doc = json!({"resourceVersion": rv, "objects": objects});
    let io = |source| Error::File {
        what: "writing state file",
        path: path.display().to_string(),
        source,
    };
    let tmp = tmp_path(path);
    std::fs::write(&tmp, serde_json::to_vec(&doc).unwrap_or_default()).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Saves shortly after every change until `shutdown`, then once more.
pub(crate) async fn persist(
    path: PathBuf,
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
            let (p, s) = (path.clone(), store.clone());
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
