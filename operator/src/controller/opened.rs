//! Values the operator has opened, kept so that a reconcile does not open the same sealed value
//! again: the HPKE open (an X25519 exchange and the key's public half derived anew) is most of the
//! CPU of a session's reconcile.
//!
//! Opening is a pure function of the sealed text and its context (the Credential's namespace and
//! name): a sealed text names the key that sealed it, and keys are only ever added to the key set,
//! so a text that opened once opens to the same value for the life of the process. A changed
//! Credential or sealed Secret carries a new text and misses. The operator holds the private keys
//! that open every value, so a value kept here gives no reader of its memory anything more.

use std::collections::HashMap;
use std::sync::Mutex;

use sealpod_resources::secret::Secret as SecretString;

/// How many opened values are kept; when full, the cache starts empty again (a miss costs one
/// open, and a cluster rarely has this many credentials in use).
const CAPACITY: usize = 1024;

/// Opened values by sealed text, each with the context it was opened under (a sealed text is
/// unique: every seal draws a new encapsulated key).
#[derive(Default)]
pub(crate) struct OpenedValues {
    entries: Mutex<HashMap<String, (Vec<u8>, SecretString)>>,
}

impl OpenedValues {
    /// The value `sealed` opened to under `context`, if it was opened before.
    pub(crate) fn get(&self, context: &[u8], sealed: &str) -> Option<SecretString> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(sealed)
            .filter(|(opened_under, _)| opened_under == context)
            .map(|(_, value)| value.clone())
    }

    /// Keeps what `sealed` opened to under `context`.
    pub(crate) fn insert(&self, context: &[u8], sealed: &str, value: &SecretString) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(sealed.to_owned(), (context.to_vec(), value.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_found_only_under_its_own_context_and_text() {
        let cache = OpenedValues::default();
        cache.insert(b"ns/a", "sealed-1", &SecretString::new("value"));
        assert_eq!(
            cache
                .get(b"ns/a", "sealed-1")
                .map(|v| v.expose().to_owned()),
            Some("value".to_owned())
        );
        assert!(cache.get(b"ns/b", "sealed-1").is_none());
        assert!(cache.get(b"ns/a", "sealed-2").is_none());
    }

    #[test]
    fn a_full_cache_starts_again_instead_of_growing() {
        let cache = OpenedValues::default();
        for i in 0..=CAPACITY {
            cache.insert(b"ctx", &format!("sealed-{i}"), &SecretString::new("v"));
        }
        let len = cache.entries.lock().expect("not poisoned").len();
        assert_eq!(len, 1);
        assert!(cache.get(b"ctx", &format!("sealed-{CAPACITY}")).is_some());
    }
}
