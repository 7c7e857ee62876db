//! kube-rs runtime helpers against devcluster: the events `Recorder` (events.k8s.io, read back
//! through both Event APIs) and Lease-based leader election handing over when the holder stops
//! renewing.

mod common;

use common::{Widget, cluster, eventually, widget};
use devcluster::testing::{Leadership, LeaseElector};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Event as CoreEvent;
use k8s_openapi::api::events::v1::Event;
use kube::Resource as _;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::events::{Event as Publish, EventType, Recorder, Reporter};
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
    let a = LeaseElector::new(leases.clone(), "leader", "a", ttl);
    let b = LeaseElector::new(leases.clone(), "leader", "b", ttl);
    assert_eq!(
        a.try_acquire_or_renew().await.expect("a"),
        Leadership::Leading
    );
    assert_eq!(
        b.try_acquire_or_renew().await.expect("b"),
        Leadership::Following { holder: "a".into() }
    );
    // While `a` renews, `b` never takes over.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            a.try_acquire_or_renew().await.expect("renew"),
            Leadership::Leading
        );
        assert_eq!(
            b.try_acquire_or_renew().await.expect("b"),
            Leadership::Following { holder: "a".into() }
        );
    }
    // `a` stops renewing: `b` takes over once the lease expires.
    eventually("b to lead", || async {
        (b.try_acquire_or_renew().await.ok()? == Leadership::Leading).then_some(())
    })
    .await;
    assert_eq!(
        a.try_acquire_or_renew().await.expect("a"),
        Leadership::Following { holder: "b".into() }
    );
    let lease = leases.get("leader").await.expect("lease");
    let spec = lease.spec.expect("spec");
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(1));
    c.shutdown().await;
}
