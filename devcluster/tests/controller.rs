//! A real kube-rs 5 `Controller` with `.owns()` and the `finalizer()` helper against
//! devcluster, in ListWatch and streaming-list modes.

mod common;

use common::{Widget, cluster, eventually, widget};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::watcher;
use kube::{Resource as _, ResourceExt as _};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const FINALIZER: &str = "fixture.sealpod.dev/cleanup";

struct Ctx {
    client: kube::Client,
    cleanups: AtomicUsize,
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Finalizer(#[from] Box<kube::runtime::finalizer::Error<kube::Error>>),
}

async fn apply(w: Arc<Widget>, ctx: &Ctx) -> Result<Action, kube::Error> {
    let ns = w.namespace().unwrap_or_default();
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    let owner = w.controller_owner_ref(&()).expect("widgets have uids");
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": format!("{}-cm", w.name_any()), "ownerReferences": [owner]},
        "data": {"size": w.spec.size.to_string()},
    });
    cms.patch(
        &format!("{}-cm", w.name_any()),
        &PatchParams::apply("widget-ctrl").force(),
        &Patch::Apply(&cm),
    )
    .await?;
    let widgets: Api<Widget> = Api::namespaced(ctx.client.clone(), &ns);
    let status = json!({"apiVersion": "fixture.sealpod.dev/v1alpha1", "kind": "Widget", "status": {"observedSize": w.spec.size}});
    widgets
        .patch_status(
            &w.name_any(),
            &PatchParams::apply("widget-ctrl").force(),
            &Patch::Apply(&status),
        )
        .await?;
    Ok(Action::await_change())
}

async fn reconcile(w: Arc<Widget>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let api: Api<Widget> = Api::namespaced(ctx.client.clone(), &w.namespace().unwrap_or_default());
    finalizer(&api, FINALIZER, w, |ev| async {
        match ev {
            Finalizer::Apply(w) => apply(w, &ctx).await,
            Finalizer::Cleanup(_) => {
                ctx.cleanups.fetch_add(1, Ordering::SeqCst);
                Ok(Action::await_change())
            }
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

fn error_policy(_: Arc<Widget>, _: &Error, _: Arc<Ctx>) -> Action {
    Action::requeue(std::time::Duration::from_millis(100))
}

async fn controller_round_trip(cfg: watcher::Config) {
    let c = cluster().await;
    let client = c.client();
    let widgets: Api<Widget> = Api::namespaced(client.clone(), "default");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        cleanups: AtomicUsize::new(0),
    });
    let run = Controller::new(Api::<Widget>::all(client.clone()), cfg.clone())
        .owns(Api::<ConfigMap>::all(client.clone()), cfg)
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|_| futures::future::ready(()));
    let task = tokio::spawn(run);

    widgets
        .create(&PostParams::default(), &widget("w1", 1))
        .await
        .expect("create");
    eventually("child with size 1", || async {
        cms.get_opt("w1-cm").await.ok().flatten().filter(|cm| {
            cm.data
                .as_ref()
                .and_then(|d| d.get("size"))
                .map(String::as_str)
                == Some("1")
        })
    })
    .await;
    let w = eventually("status and finalizer", || async {
        let w = widgets.get("w1").await.ok()?;
        (w.status.as_ref().and_then(|s| s.observed_size) == Some(1)).then_some(w)
    })
    .await;
    assert_eq!(w.finalizers(), [FINALIZER.to_string()]);
    assert_eq!(
        w.metadata.generation,
        Some(1),
        "status writes leave generation alone"
    );

    widgets
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}})),
        )
        .await
        .expect("patch");
    eventually("child follows the spec", || async {
        cms.get_opt("w1-cm").await.ok().flatten().filter(|cm| {
            cm.data
                .as_ref()
                .and_then(|d| d.get("size"))
                .map(String::as_str)
                == Some("2")
        })
    })
    .await;

    // .owns(): deleting the child wakes the owner, which recreates it.
    let before = cms.get("w1-cm").await.expect("child").uid();
    cms.delete("w1-cm", &DeleteParams::default())
        .await
        .expect("delete child");
    eventually("child recreated", || async {
        cms.get_opt("w1-cm")
            .await
            .ok()
            .flatten()
            .filter(|cm| cm.uid() != before)
    })
    .await;

    widgets
        .delete("w1", &DeleteParams::default())
        .await
        .expect("delete");
    eventually("widget gone after cleanup", || async {
        widgets.get_opt("w1").await.ok()?.is_none().then_some(())
    })
    .await;
    assert_eq!(
        ctx.cleanups.load(Ordering::SeqCst),
        1,
        "the finalizer's cleanup ran once"
    );
    eventually("child collected", || async {
        cms.get_opt("w1-cm").await.ok()?.is_none().then_some(())
    })
    .await;
    task.abort();
    c.shutdown().await;
}

#[tokio::test]
async fn controller_with_owns_and_finalizer_list_watch() {
    controller_round_trip(watcher::Config::default()).await;
}

#[tokio::test]
async fn controller_with_owns_and_finalizer_streaming_list() {
    controller_round_trip(watcher::Config::default().streaming_lists()).await;
}

#[tokio::test]
async fn watcher_relists_after_410() {
    let c = cluster().await;
    let client = c.client();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let other: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let mut stream = watcher(cms.clone(), watcher::Config::default().timeout(1)).boxed();
    let mut inits = 0;
    wait_for(&mut stream, &mut inits, |e| {
        matches!(e, watcher::Event::InitDone)
    })
    .await;
    let cm = |n: &str| {
        serde_json::from_value::<ConfigMap>(json!({"metadata": {"name": n}})).expect("cm")
    };
    cms.create(&PostParams::default(), &cm("a"))
        .await
        .expect("a");
    wait_for(
        &mut stream,
        &mut inits,
        |e| matches!(e, watcher::Event::Apply(o) if o.name_any() == "a"),
    )
    .await;
    // A change this watch does not see moves the cluster on; compaction then forgets every
    // event, so resuming from the last resourceVersion this stream delivered must answer 410.
    other
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "elsewhere"}})).expect("ns"),
        )
        .await
        .expect("namespace");
    c.compact();
    // The watch times out after a second and resumes from "a": 410, then a fresh list.
    let relisted = wait_for(&mut stream, &mut inits, |e| {
        matches!(e, watcher::Event::InitDone)
    })
    .await;
    assert_eq!(relisted, 2, "the watcher re-listed after the 410");
    cms.create(&PostParams::default(), &cm("b"))
        .await
        .expect("b");
    wait_for(
        &mut stream,
        &mut inits,
        |e| matches!(e, watcher::Event::Apply(o) if o.name_any() == "b"),
    )
    .await;
    c.shutdown().await;
}

async fn wait_for<S>(
    stream: &mut S,
    inits: &mut usize,
    pred: impl Fn(&watcher::Event<ConfigMap>) -> bool,
) -> usize
where
    S: futures::Stream<Item = Result<watcher::Event<ConfigMap>, watcher::Error>> + Unpin,
{
    loop {
        match stream.next().await.expect("watcher streams forever") {
            Ok(ev) => {
                if matches!(ev, watcher::Event::Init) {
                    *inits += 1;
                }
                if pred(&ev) {
                    return *inits;
                }
            }
            Err(_) => continue,
        }
    }
}
