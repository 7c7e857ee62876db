//! Writes through kube-rs 5: server-side apply (field removal, conflicts), `patch_status`,
//! ownerReference cascades, finalizers, preconditions, schema validation and pruning,
//! strategic merge, no-op writes, and the Status errors clients see.

mod common;

use common::{Widget, cluster, widget};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, ServiceAccount};
use kube::ResourceExt as _;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy};
use serde_json::json;

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}})).expect("cm")
}

fn api_err(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn server_side_apply_removes_dropped_fields_and_reports_conflicts() {
    let c = cluster().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client(), "default");
    let apply = |data: serde_json::Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa", "labels": {"x": "1"}}, "data": data});
    let one = PatchParams::apply("one");
    let created = cms
        .patch(
            "ssa",
            &one,
            &Patch::Apply(apply(json!({"a": "1", "b": "2"}))),
        )
        .await
        .expect("apply creates");
    assert_eq!(created.data.as_ref().map(|d| d.len()), Some(2));
    let after = cms
        .patch("ssa", &one, &Patch::Apply(apply(json!({"a": "1"}))))
        .await
        .expect("re-apply");
    assert_eq!(
        after.data.as_ref().and_then(|d| d.get("b")),
        None,
        "a field dropped by its only manager is removed"
    );
    assert_eq!(after.labels().get("x").map(String::as_str), Some("1"));

    let two = PatchParams::apply("two");
    let err = api_err(
        cms.patch("ssa", &two, &Patch::Apply(apply(json!({"a": "other"}))))
            .await
            .expect_err("conflict"),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert!(
        err.message.contains("conflict with \"one\""),
        "{}",
        err.message
    );
    let forced = cms
        .patch(
            "ssa",
            &two.clone().force(),
            &Patch::Apply(apply(json!({"a": "other"}))),
        )
        .await
        .expect("force");
    assert_eq!(
        forced
            .data
            .as_ref()
            .and_then(|d| d.get("a"))
            .map(String::as_str),
        Some("other")
    );
    let managers: Vec<String> = forced
        .managed_fields()
        .iter()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(
        managers.contains(&"one".to_string()) && managers.contains(&"two".to_string()),
        "{managers:?}"
    );

    // An unchanged re-apply is a no-op: same resourceVersion.
    let again = cms
        .patch(
            "ssa",
            &two.force(),
            &Patch::Apply(apply(json!({"a": "other"}))),
        )
        .await
        .expect("no-op");
    assert_eq!(again.resource_version(), forced.resource_version());
    c.shutdown().await;
}

#[tokio::test]
async fn patch_status_leaves_spec_alone_and_generation_follows_spec() {
    let c = cluster().await;
    let widgets: Api<Widget> = Api::namespaced(c.client(), "default");
    widgets
        .create(&PostParams::default(), &widget("s", 3))
        .await
        .expect("create");
    let w = widgets
        .patch_status(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 99}, "status": {"observedSize": 3}})),
        )
        .await
        .expect("status");
    assert_eq!(w.spec.size, 3, "status writes never change spec");
    assert_eq!(w.status.and_then(|s| s.observed_size), Some(3));
    assert_eq!(w.metadata.generation, Some(1));
    let w = widgets
        .patch(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 4}, "status": {"observedSize": 0}})),
        )
        .await
        .expect("spec");
    assert_eq!(
        w.metadata.generation,
        Some(2),
        "spec changes bump generation"
    );
    assert_eq!(
        w.status.and_then(|s| s.observed_size),
        Some(3),
        "the main resource ignores status"
    );
    let w2 = widgets
        .patch(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"l": "v"}}})),
        )
        .await
        .expect("labels");
    assert_eq!(
        w2.metadata.generation,
        Some(2),
        "metadata changes do not bump generation"
    );
    c.shutdown().await;
}

#[tokio::test]
async fn owner_references_cascade_in_every_policy() {
    let c = cluster().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client(), "default");
    let owned = |name: &str, owner: &ConfigMap| {
        let r = json!({"apiVersion": "v1", "kind": "ConfigMap", "name": owner.name_any(), "uid": owner.uid(),
            "controller": true, "blockOwnerDeletion": true});
        serde_json::from_value::<ConfigMap>(
            json!({"metadata": {"name": name, "ownerReferences": [r]}}),
        )
        .expect("cm")
    };
    let pp = PostParams::default();
    // Background: owner goes at once, then its dependents (recursively).
    let o = cms.create(&pp, &cm("bg-owner")).await.expect("owner");
    let child = cms
        .create(&pp, &owned("bg-child", &o))
        .await
        .expect("child");
    cms.create(&pp, &owned("bg-grandchild", &child))
        .await
        .expect("grandchild");
    cms.delete("bg-owner", &DeleteParams::background())
        .await
        .expect("delete");
    for n in ["bg-owner", "bg-child", "bg-grandchild"] {
        assert!(
            cms.get_opt(n).await.expect("get").is_none(),
            "{n} collected"
        );
    }
    // Foreground: the owner waits (deletionTimestamp) while a dependent holds a finalizer.
    let o = cms.create(&pp, &cm("fg-owner")).await.expect("owner");
    let mut held = owned("fg-child", &o);
    held.metadata.finalizers = Some(vec!["test/hold".into()]);
    cms.create(&pp, &held).await.expect("child");
    cms.delete("fg-owner", &DeleteParams::foreground())
        .await
        .expect("delete");
    let waiting = cms.get("fg-owner").await.expect("owner still there");
    assert!(waiting.metadata.deletion_timestamp.is_some());
    assert!(
        waiting
            .finalizers()
            .contains(&"foregroundDeletion".to_string())
    );
    assert!(
        cms.get("fg-child")
            .await
            .expect("child")
            .metadata
            .deletion_timestamp
            .is_some()
    );
    cms.patch(
        "fg-child",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("release");
    assert!(cms.get_opt("fg-child").await.expect("get").is_none());
    assert!(
        cms.get_opt("fg-owner").await.expect("get").is_none(),
        "owner goes after its last dependent"
    );
    // Orphan: dependents stay, without the reference.
    let o = cms.create(&pp, &cm("or-owner")).await.expect("owner");
    cms.create(&pp, &owned("or-child", &o))
        .await
        .expect("child");
    cms.delete(
        "or-owner",
        &DeleteParams {
            propagation_policy: Some(PropagationPolicy::Orphan),
            ..Default::default()
        },
    )
    .await
    .expect("delete");
    let orphan = cms.get("or-child").await.expect("orphan stays");
    assert!(orphan.owner_references().is_empty());
    c.shutdown().await;
}

#[tokio::test]
async fn finalizers_hold_deletion_until_released() {
    let c = cluster().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client(), "default");
    let mut f = cm("fin");
    f.metadata.finalizers = Some(vec!["a/b".into()]);
    cms.create(&PostParams::default(), &f)
        .await
        .expect("create");
    let pending = cms
        .delete("fin", &DeleteParams::default())
        .await
        .expect("delete");
    let obj = pending
        .left()
        .expect("still present while a finalizer is held");
    assert!(obj.metadata.deletion_timestamp.is_some());
    let err = api_err(
        cms.patch(
            "fin",
            &PatchParams::default(),
            &Patch::Json::<()>(
                serde_json::from_value(json!([
            {"op": "add", "path": "/metadata/finalizers/-", "value": "new/one"}]))
                .expect("patch"),
            ),
        )
        .await
        .expect_err("no new finalizers while deleting"),
    );
    assert_eq!(err.code, 422);
    cms.patch(
        "fin",
        &PatchParams::default(),
        &Patch::Json::<()>(
            serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers/0", "value": "a/b"},
        {"op": "remove", "path": "/metadata/finalizers/0"}]))
            .expect("patch"),
        ),
    )
    .await
    .expect("release");
    assert!(cms.get_opt("fin").await.expect("get").is_none());
    c.shutdown().await;
}

#[tokio::test]
async fn errors_preconditions_and_generate_name() {
    let c = cluster().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client(), "default");
    let pp = PostParams::default();
    let first = cms.create(&pp, &cm("dup")).await.expect("create");
    let err = api_err(cms.create(&pp, &cm("dup")).await.expect_err("exists"));
    assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));
    let err = api_err(cms.get("missing").await.expect_err("missing"));
    assert_eq!((err.code, err.reason.as_str()), (404, "NotFound"));
    assert_eq!(err.message, "configmaps \"missing\" not found");
    // Update with a stale resourceVersion.
    let mut changed = first.clone();
    changed.data = Some([("k".to_string(), "v".to_string())].into());
    cms.replace("dup", &pp, &changed)
        .await
        .expect("first update");
    let err = api_err(cms.replace("dup", &pp, &changed).await.expect_err("stale"));
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    // generateName.
    let mut g = cm("");
    g.metadata.name = None;
    g.metadata.generate_name = Some("gen-".into());
    let made = cms.create(&pp, &g).await.expect("generateName");
    assert!(
        made.name_any().starts_with("gen-") && made.name_any().len() == 9,
        "{}",
        made.name_any()
    );
    // Unknown namespace.
    let elsewhere: Api<ConfigMap> = Api::namespaced(c.client(), "nope");
    let err = api_err(
        elsewhere
            .create(&pp, &cm("x"))
            .await
            .expect_err("no namespace"),
    );
    assert_eq!(err.code, 404);
    // A no-op update keeps the resourceVersion.
    let cur = cms.get("dup").await.expect("get");
    let same = cms.replace("dup", &pp, &cur).await.expect("no-op");
    assert_eq!(same.resource_version(), cur.resource_version());
    c.shutdown().await;
}

#[tokio::test]
async fn lists_filter_and_page() {
    let c = cluster().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client(), "default");
    for i in 0..7 {
        let mut m = cm(&format!("page-{i}"));
        m.metadata.labels = Some(
            [(
                "parity".to_string(),
                if i % 2 == 0 { "even" } else { "odd" }.to_string(),
            )]
            .into(),
        );
        cms.create(&PostParams::default(), &m)
            .await
            .expect("create");
    }
    let even = cms
        .list(&ListParams::default().labels("parity=even"))
        .await
        .expect("list");
    assert_eq!(even.items.len(), 4);
    let notodd = cms
        .list(&ListParams::default().labels("parity notin (odd)"))
        .await
        .expect("list");
    assert_eq!(notodd.items.len(), 4);
    let one = cms
        .list(&ListParams::default().fields("metadata.name=page-3"))
        .await
        .expect("list");
    assert_eq!(
        one.items.iter().map(|m| m.name_any()).collect::<Vec<_>>(),
        ["page-3"]
    );
    let mut names = vec![];
    let mut lp = ListParams::default().limit(3);
    loop {
        let page = cms.list(&lp).await.expect("page");
        names.extend(page.items.iter().map(|m| m.name_any()));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => lp = lp.continue_token(&token),
            None => break,
        }
    }
    assert_eq!(
        names,
        (0..7).map(|i| format!("page-{i}")).collect::<Vec<_>>()
    );
    // Paging with a selector: every matching item exactly once.
    let mut evens = vec![];
    let mut lp = ListParams::default().labels("parity=even").limit(3);
    loop {
        let page = cms.list(&lp).await.expect("page");
        evens.extend(page.items.iter().map(|m| m.name_any()));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => lp = lp.continue_token(&token),
            None => break,
        }
    }
    assert_eq!(evens, ["page-0", "page-2", "page-4", "page-6"]);
    c.shutdown().await;
}

#[tokio::test]
async fn custom_resources_are_validated_and_pruned() {
    let c = cluster().await;
    let widgets: Api<Widget> = Api::namespaced(c.client(), "default");
    let raw: Api<kube::api::DynamicObject> = Api::namespaced_with(
        c.client(),
        "default",
        &kube::api::ApiResource::erase::<Widget>(&()),
    );
    let bad: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "fixture.sealpod.dev/v1alpha1", "kind": "Widget",
        "metadata": {"name": "bad"}, "spec": {"size": "large"}}))
    .expect("obj");
    let err = api_err(
        raw.create(&PostParams::default(), &bad)
            .await
            .expect_err("invalid"),
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert!(err.message.contains("spec.size"), "{}", err.message);
    let extra: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "fixture.sealpod.dev/v1alpha1", "kind": "Widget",
        "metadata": {"name": "extra"}, "spec": {"size": 1, "unknown": true}, "junk": 1}))
    .expect("obj");
    let stored = raw
        .create(&PostParams::default(), &extra)
        .await
        .expect("pruned, not refused");
    assert!(stored.data.get("junk").is_none());
    assert!(stored.data["spec"].get("unknown").is_none());
    assert_eq!(widgets.get("extra").await.expect("typed").spec.size, 1);
    c.shutdown().await;
}

#[tokio::test]
async fn strategic_merge_merges_containers_by_name() {
    let c = cluster().await;
    let pods: Api<Pod> = Api::namespaced(c.client(), "default");
    let pod: Pod =
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}]},
        {"name": "proxy", "image": "proxy:1"}]}}))
        .expect("pod");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create");
    let patched = pods
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"containers": [
            {"name": "app", "image": "app:2", "env": [{"name": "B", "value": "2"}]}]}})),
        )
        .await
        .expect("strategic");
    let cs = patched.spec.expect("spec").containers;
    assert_eq!(cs.len(), 2, "the other container stays");
    assert_eq!(cs[0].image.as_deref(), Some("app:2"));
    assert_eq!(
        cs[0].env.as_ref().map(Vec::len),
        Some(2),
        "env merges by name"
    );
    let widgets: Api<Widget> = Api::namespaced(c.client(), "default");
    widgets
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .expect("create");
    let err = api_err(
        widgets
            .patch(
                "w",
                &PatchParams::default(),
                &Patch::Strategic(json!({"spec": {"size": 2}})),
            )
            .await
            .expect_err("415"),
    );
    assert_eq!(err.code, 415);
    c.shutdown().await;
}

#[tokio::test]
async fn two_managers_apply_disjoint_status_fields() {
    let c = cluster().await;
    let widgets: Api<Widget> = Api::namespaced(c.client(), "default");
    widgets
        .create(&PostParams::default(), &widget("split", 3))
        .await
        .expect("create");
    let status = |s: serde_json::Value| json!({"apiVersion": "fixture.sealpod.dev/v1alpha1", "kind": "Widget", "status": s});
    let api = PatchParams::apply("api-server");
    let op = PatchParams::apply("operator");
    widgets
        .patch_status(
            "split",
            &api,
            &Patch::Apply(status(json!({"phase": "running"}))),
        )
        .await
        .expect("api");
    widgets
        .patch_status(
            "split",
            &op,
            &Patch::Apply(status(json!({"observedSize": 3}))),
        )
        .await
        .expect("operator");
    let w = widgets
        .patch_status(
            "split",
            &api,
            &Patch::Apply(status(json!({"phase": "idle"}))),
        )
        .await
        .expect("api again");
    let s = w.status.expect("status");
    assert_eq!(
        (s.phase.as_deref(), s.observed_size),
        (Some("idle"), Some(3)),
        "each manager keeps its own fields"
    );
    let w = widgets
        .patch_status("split", &op, &Patch::Apply(status(json!({}))))
        .await
        .expect("operator drops its field");
    let s = w.status.expect("status");
    assert_eq!((s.phase.as_deref(), s.observed_size), (Some("idle"), None));
    assert_eq!(w.spec.size, 3);
    let err = api_err(
        widgets
            .patch_status(
                "split",
                &op,
                &Patch::Apply(status(json!({"phase": "failed"}))),
            )
            .await
            .expect_err("conflict"),
    );
    assert_eq!(err.code, 409);
    c.shutdown().await;
}

/// What kube-apiserver answers and stores, as the fidelity suite found it: namespace labels and
/// default ServiceAccounts, delete answers (object or Status by kind), pods marked on deletion,
/// immutable ConfigMaps, Secret data that is not base64, released finalizers read back as none.
#[tokio::test]
async fn writes_answer_as_kube_apiserver_does() {
    let c = cluster().await;
    let client = c.client();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "fid"}})).expect("namespace");
    let created = namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
    assert_eq!(
        created
            .labels()
            .get("kubernetes.io/metadata.name")
            .map(String::as_str),
        Some("fid")
    );
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "fid");
    accounts
        .get("default")
        .await
        .expect("a new namespace has its default ServiceAccount");
    let deleted = namespaces
        .delete("fid", &DeleteParams::default())
        .await
        .expect("delete namespace");
    let answered = deleted
        .left()
        .expect("a namespace delete answers with the namespace");
    assert!(answered.metadata.deletion_timestamp.is_some());
    assert_eq!(
        answered.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );
    assert!(namespaces.get_opt("fid").await.expect("get").is_none());

    let widgets: Api<Widget> = Api::namespaced(client.clone(), "default");
    widgets
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .expect("create widget");
    let gone = widgets
        .delete("w", &DeleteParams::default())
        .await
        .expect("delete widget");
    assert!(
        gone.is_right(),
        "a custom resource deleted at once answers Success"
    );

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}),
    )
    .expect("pod");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
    let deleted = pods
        .delete("p", &DeleteParams::default())
        .await
        .expect("delete pod")
        .left()
        .expect("a pod delete answers with the pod");
    assert!(deleted.metadata.deletion_timestamp.is_some());
    assert_eq!(deleted.metadata.deletion_grace_period_seconds, Some(0));

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut frozen = cm("frozen");
    frozen.immutable = Some(true);
    cms.create(&PostParams::default(), &frozen)
        .await
        .expect("create");
    let err = api_err(
        cms.patch(
            "frozen",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"a": "1"}})),
        )
        .await
        .expect_err("immutable"),
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert!(
        err.message.contains("data: Forbidden: field is immutable"),
        "{}",
        err.message
    );

    let secrets: Api<kube::api::DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::Secret>(&()),
    );
    let bad: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bad"}, "data": {"k": "not base64!"}
    }))
    .expect("secret");
    let err = api_err(
        secrets
            .create(&PostParams::default(), &bad)
            .await
            .expect_err("not base64"),
    );
    assert_eq!((err.code, err.reason.as_str()), (400, "BadRequest"));
    assert!(
        err.message.ends_with("illegal base64 data at input byte 3"),
        "{}",
        err.message
    );

    let mut held = cm("held");
    held.metadata.finalizers = Some(vec!["x.dev/hold".into()]);
    cms.create(&PostParams::default(), &held)
        .await
        .expect("create");
    cms.delete("held", &DeleteParams::default())
        .await
        .expect("delete");
    let raw: Api<kube::api::DynamicObject> = Api::namespaced_with(
        client,
        "default",
        &kube::api::ApiResource::erase::<ConfigMap>(&()),
    );
    let released = raw
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": []}})),
        )
        .await
        .expect("release");
    assert!(
        released.metadata.finalizers.is_none(),
        "finalizers: [] is stored as no field"
    );
}
