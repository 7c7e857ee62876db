//! Kubernetes Events (`events.k8s.io/v1`) of condition transitions, each created once.
//!
//! The operator publishes an Event only when a condition's status or reason changes, so Events
//! do not repeat and need no series. kube's `Recorder` keeps every Event it published in the last
//! six minutes (to count repeats) and scans them all on each publish: with 10 000 Sessions that
//! cache was a quarter of the operator's heap, and the scan made each publish cost more with
//! every Session started.

use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::{Api, Client};

/// What an Event says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Note {
    /// `Warning` rather than `Normal`.
    pub(crate) warning: bool,
    /// Machine-readable reason (`CamelCase`).
    pub(crate) reason: String,
    /// What was done or observed (here, the condition type).
    pub(crate) action: String,
    /// Human-readable text.
    pub(crate) text: String,
}

/// Creates Events as one reporting controller.
pub(crate) struct Events {
    client: Client,
    controller: String,
    /// Tells apart Events created within the same nanosecond.
    created: AtomicU64,
}

impl Events {
    pub(crate) fn new(client: Client, controller: &str) -> Events {
        Events {
            client,
            controller: controller.to_owned(),
            created: AtomicU64::new(0),
        }
    }

    /// The Event of `note` about `regarding`, named after it and the time.
    pub(crate) fn event(&self, note: &Note, regarding: &ObjectReference) -> Event {
        let now = k8s_openapi::jiff::Timestamp::now();
        let n = self.created.fetch_add(1, Ordering::Relaxed);
        let object = regarding.name.as_deref().unwrap_or(&self.controller);
        Event {
            metadata: ObjectMeta {
                name: Some(format!("{object}.{:x}.{n:x}", now.as_nanosecond())),
                namespace: regarding.namespace.clone(),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(now)),
            type_: Some(if note.warning { "Warning" } else { "Normal" }.to_owned()),
            reason: Some(note.reason.clone()),
            action: Some(note.action.clone()),
            note: Some(note.text.clone()),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.controller.clone()),
            ..Event::default()
        }
    }

    /// Creates the Event of `note` in the namespace of `regarding`.
    pub(crate) async fn publish(
        &self,
        note: &Note,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let ns = regarding.namespace.as_deref().unwrap_or("default");
        Api::<Event>::namespaced(self.client.clone(), ns)
            .create(&PostParams::default(), &self.event(note, regarding))
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Client {
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
        Client::try_from(config).expect("client")
    }

    #[tokio::test]
    async fn an_event_says_the_note_about_its_object_under_a_name_of_its_own() {
        let events = Events::new(client(), "sealpod-operator");
        let regarding = ObjectReference {
            kind: Some("Session".into()),
            name: Some("ses-1".into()),
            namespace: Some("team".into()),
            ..ObjectReference::default()
        };
        let note = Note {
            warning: true,
            reason: "LockFailed".into(),
            action: "EgressLocked".into(),
            text: "EgressLocked is False: no".into(),
        };
        let a = events.event(&note, &regarding);
        let b = events.event(&note, &regarding);
        assert_ne!(a.metadata.name, b.metadata.name);
        assert!(
            a.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("ses-1."))
        );
        assert_eq!(a.metadata.namespace.as_deref(), Some("team"));
        assert_eq!(a.type_.as_deref(), Some("Warning"));
        assert_eq!(a.reason.as_deref(), Some("LockFailed"));
        assert_eq!(a.action.as_deref(), Some("EgressLocked"));
        assert_eq!(a.note.as_deref(), Some("EgressLocked is False: no"));
        assert_eq!(a.regarding.as_ref(), Some(&regarding));
        assert_eq!(a.reporting_controller.as_deref(), Some("sealpod-operator"));
        assert_eq!(a.reporting_instance.as_deref(), Some("sealpod-operator"));
        assert!(a.event_time.is_some() && a.series.is_none());
        let normal = events.event(
            &Note {
                warning: false,
                ..note
            },
            &regarding,
        );
        assert_eq!(normal.type_.as_deref(), Some("Normal"));
    }
}
