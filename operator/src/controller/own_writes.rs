//! The children this operator wrote, each by the resourceVersion its write left, so that the
//! watch event of the operator's own write does not bring the Session back for a reconcile that
//! would find everything as it left it (a second reconcile of every new Session, and a second
//! round of its API calls).
//!
//! Only an update or creation whose resourceVersion is exactly the one the write returned is
//! dropped, once. Any other change (someone else's edit, the kubelet's status, a deletion, a
//! relist) still triggers a reconcile, and an event that arrives before the write's answer is
//! recorded is simply not recognised: the reconcile it triggers finds nothing to do, as before.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;

use kube::core::ObjectMeta;

/// Entries kept at most: past it the table is emptied (each forgotten write then costs one
/// reconcile, as without the table). Entries leave as their events arrive; a write that changed
/// nothing (a server-side apply of what is already there) has no event, and its entry stays
/// until then.
const CAP: usize = 16_384;

/// Writes whose watch events have not been seen yet: 16 bytes each, two fingerprints (the
/// object's kind, namespace and name; the resourceVersion the write left), keyed with a secret
/// random state so no object can be named to collide with another.
#[derive(Debug, Default)]
pub(crate) struct OwnWrites {
    hasher: RandomState,
    written: Mutex<HashMap<u64, u64>>,
}

impl OwnWrites {
    /// The fingerprints of an object's identity and of its version.
    fn fingerprints(&self, kind: &str, meta: &ObjectMeta) -> Option<(u64, u64)> {
        let object = (kind, meta.namespace.as_deref()?, meta.name.as_deref()?);
        let version = meta.resource_version.as_deref()?;
        Some((self.hasher.hash_one(object), self.hasher.hash_one(version)))
    }

    /// Records the state a write of this operator left (the object as the API server returned
    /// it).
    pub(crate) fn wrote(&self, kind: &str, meta: &ObjectMeta) {
        let Some((object, version)) = self.fingerprints(kind, meta) else {
            return;
        };
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        if written.len() >= CAP {
            written.clear();
        }
        written.insert(object, version);
    }

    /// True when an update to `meta` is the one a recorded write made; the record is then
    /// forgotten (its event is seen once).
    pub(crate) fn is_own(&self, kind: &str, meta: &ObjectMeta) -> bool {
        let Some((object, version)) = self.fingerprints(kind, meta) else {
            return false;
        };
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        if written.get(&object) == Some(&version) {
            written.remove(&object);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str, version: &str) -> ObjectMeta {
        ObjectMeta {
            namespace: Some("tenant".into()),
            name: Some(name.into()),
            resource_version: Some(version.into()),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn only_the_version_a_write_left_is_its_own_and_only_once() {
        let own = OwnWrites::default();
        own.wrote("Pod", &meta("p", "10"));
        assert!(!own.is_own("Pod", &meta("p", "9")), "an earlier state");
        assert!(!own.is_own("Pod", &meta("p", "11")), "a later change");
        assert!(!own.is_own("Secret", &meta("p", "10")), "another kind");
        assert!(!own.is_own("Pod", &meta("q", "10")), "another name");
        assert!(own.is_own("Pod", &meta("p", "10")));
        assert!(!own.is_own("Pod", &meta("p", "10")), "seen once");
        let mut other_namespace = meta("p", "10");
        other_namespace.namespace = Some("other".into());
        own.wrote("Pod", &meta("p", "10"));
        assert!(!own.is_own("Pod", &other_namespace));
        own.wrote("Pod", &meta("p", "12"));
        assert!(
            !own.is_own("Pod", &meta("p", "10")),
            "the newest write counts"
        );
        assert!(own.is_own("Pod", &meta("p", "12")));
    }

    #[test]
    fn the_table_is_bounded() {
        let own = OwnWrites::default();
        for i in 0..=CAP {
            own.wrote("Pod", &meta(&format!("p{i}"), "1"));
        }
        let len = own.written.lock().expect("lock").len();
        assert!(len <= CAP, "{len} entries");
        assert!(own.is_own("Pod", &meta(&format!("p{CAP}"), "1")));
    }
}
