//! kube-rs runtime helpers against devcluster: the events `Recorder` (events.k8s.io, read back
//! through both Event APIs) and the operator's Lease-based leader election handing over when the
//! holder stops renewing.

mod common;

use common::{Widget, cluster, eventually, widget};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Event as CoreEvent;
use k8s_openapi::api::events::v1::Event;
use kube::Resource as _;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::events::{Event as Publish, EventType, Recorder, Reporter};
use sealpod_operator::leader::Elector;
use std::time::Duration;

#[tokio::test]
async fn events_recorder_publishes_and_series_update() {
    let c = cluster().await;
    let client = c.client();
    let widgets: Api<Widget> = Api::namespaced(client.clone(), "default");
    let w = widgets
        .create(&PostParams::default(), &widget("evw", 1))
        .await
        .expect("create");
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "widget-ctrl".into(),
            instance: None,
        },
    );
    let ev = Publish {
        type_: EventType::Normal,
        reason: "Reconciled".into(),
        note: Some("all good".into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    let reference = w.object_ref(&());
    recorder.publish(&ev, &reference).await.expect("publish");
    recorder
        .publish(&ev, &reference)
        .await
        .expect("publish again (series)");

    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let list = events.list(&ListParams::default()).await.expect("list");
    assert_eq!(
        list.items.len(),
        1,
        "a repeated event becomes a series, not a new object"
    );
    let e = &list.items[0];
    assert_eq!(e.reason.as_deref(), Some("Reconciled"));
    assert_eq!(e.note.as_deref(), Some("all good"));
    assert_eq!(
        e.regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("evw")
    );
    assert_eq!(e.series.as_ref().map(|s| s.count), Some(2));

    // kubectl describe reads core/v1 Events by involvedObject.
    let core: Api<CoreEvent> = Api::namespaced(client, "default");
    let sel = format!(
        "involvedObject.name=evw,involvedObject.kind=Widget,involvedObject.uid={}",
        w.metadata.uid.clone().unwrap_or_default()
    );
    let seen = core
        .list(&ListParams::default().fields(&sel))
        .await
        .expect("core list");
    assert_eq!(seen.items.len(), 1);
    assert_eq!(seen.items[0].message.as_deref(), Some("all good"));
    c.shutdown().await;
}

#[tokio::test]
async fn lease_leadership_hands_over_when_the_holder_stops_renewing() {
    let c = cluster().await;
    let leases: Api<Lease> = Api::namespaced(c.client(), "default");
    let ttl = Duration::from_secs(3);
    let a = Elector::new(c.client(), "default", "leader", "a", ttl);
    let b = Elector::new(c.client(), "default", "leader", "b", ttl);
    let holder = || async {
        let lease = leases.get("leader").await.expect("lease");
        lease
            .spec
            .and_then(|s| s.holder_identity)
            .unwrap_or_default()
    };
    assert!(a.try_acquire_or_renew().await.expect("a"), "a leads");
    assert!(!b.try_acquire_or_renew().await.expect("b"), "b follows");
    assert_eq!(holder().await, "a");
    // While `a` renews, `b` never takes over.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(a.try_acquire_or_renew().await.expect("renew"));
        assert!(!b.try_acquire_or_renew().await.expect("b"));
    }
    // `a` stops renewing: `b` takes over once the lease expires.
    eventually("b to lead", || async {
        b.try_acquire_or_renew().await.ok()?.then_some(())
    })
    .await;
    assert!(!a.try_acquire_or_renew().await.expect("a"));
    assert_eq!(holder().await, "b");
    let lease = leases.get("leader").await.expect("lease");
    assert_eq!(lease.spec.expect("spec").lease_transitions, Some(1));
    c.shutdown().await;
}
