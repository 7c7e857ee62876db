//! The server around the API: bearer-token users, TLS with the generated CA, discovery as
//! kube-rs and kubectl read it, raw watch semantics (bookmarks, initial-events-end, selectors),
//! Tables, and the state file across a restart.

mod common;

use common::{Widget, cluster, widget};
use futures::StreamExt as _;
use http_body_util::BodyExt as _;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, PostParams};
use kube::discovery::Discovery;
use serde_json::{Value, json};
use std::time::Duration;

fn cm(name: &str, labels: &Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).expect("cm")
}

fn secret(name: &str) -> Secret {
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// A cluster started with `config`, its admin client, and its ConfigMaps and Secrets in
/// `default`.
async fn with_config_maps_and_secrets(
    config: devcluster::Config,
) -> (
    devcluster::DevCluster,
    kube::Client,
    Api<ConfigMap>,
    Api<Secret>,
) {
    let c = devcluster::DevCluster::start(config)
        .await
        .expect("cluster starts");
    let client = c.client();
    let cms = Api::namespaced(client.clone(), "default");
    let secrets = Api::namespaced(client.clone(), "default");
    (c, client, cms, secrets)
}

async fn get_json(client: &kube::Client, uri: &str, accept: &str) -> Value {
    let req = http::Request::get(uri)
        .header("Accept", accept)
        .body(Vec::new())
        .expect("request");
    let text = client.request_text(req).await.expect("response");
    serde_json::from_str(&text).expect("json")
}

#[tokio::test]
async fn tokens_identify_users_and_anonymous_is_refused() {
    let c = devcluster::DevCluster::start(devcluster::Config {
        tokens: vec![
            ("op-token".into(), "operator".into()),
            ("api-token".into(), "api-server".into()),
        ],
        ..Default::default()
    })
    .await
    .expect("start");
    for (user, expected) in [
        ("operator", "operator"),
        ("api-server", "api-server"),
        ("admin", "admin"),
    ] {
        let client = c.client_for(user).expect("user has a token");
        let req = http::Request::post("/apis/authentication.k8s.io/v1/selfsubjectreviews")
            .header("Content-Type", "application/json")
            .body(
                serde_json::to_vec(
                    &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}),
                )
                .expect("body"),
            )
            .expect("request");
        let v: Value =
            serde_json::from_str(&client.request_text(req).await.expect("review")).expect("json");
        assert_eq!(v["status"]["userInfo"]["username"], json!(expected));
    }
    assert!(c.client_for("nobody").is_none());
    // No token at all: 401 Unauthorized.
    let anon = kube::Client::try_from(kube::Config::new(c.base_url().parse().expect("url")))
        .expect("client");
    let err = anon
        .apiserver_version()
        .await
        .expect_err("anonymous is refused");
    match err {
        kube::Error::Api(s) => assert_eq!((s.code, s.reason.as_str()), (401, "Unauthorized")),
        other => panic!("unexpected {other:?}"),
    }
    c.shutdown().await;
}

#[tokio::test]
async fn tls_with_the_generated_ca() {
    let c = devcluster::DevCluster::start(devcluster::Config {
        tls: true,
        ..Default::default()
    })
    .await
    .expect("start");
    assert!(c.base_url().starts_with("https://127.0.0.1:"));
    let v = c
        .client()
        .apiserver_version()
        .await
        .expect("version over TLS");
    assert_eq!(v.major, "1");
    let cms: Api<ConfigMap> = Api::default_namespaced(c.client());
    cms.create(&PostParams::default(), &cm("tls", &json!({})))
        .await
        .expect("create over TLS");
    // The kubeconfig carries the CA and works with kube's own loader.
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("kubeconfig");
    c.write_kubeconfig(&path).expect("kubeconfig");
    let kc = kube::config::Kubeconfig::read_from(&path).expect("parse kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    let client = kube::Client::try_from(cfg).expect("client");
    let got: Api<ConfigMap> = Api::default_namespaced(client);
    assert!(got.get("tls").await.is_ok());
    c.shutdown().await;
}

#[tokio::test]
async fn discovery_legacy_and_aggregated() {
    let c = cluster().await;
    for aggregated in [false, true] {
        let d = Discovery::new(c.client());
        let d = if aggregated {
            d.run_aggregated().await
        } else {
            d.run().await
        }
        .expect("discovery");
        let g = d
            .get("fixture.sealpod.dev")
            .expect("custom group discovered");
        let (ar, caps) = g.recommended_kind("Widget").expect("Widget");
        assert_eq!(ar.plural, "widgets");
        assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
        assert!(d.get("coordination.k8s.io").is_some());
        assert!(d.get("events.k8s.io").is_some());
    }
    c.shutdown().await;
}

#[tokio::test]
async fn tables_carry_printer_columns() {
    let c = cluster().await;
    let widgets: Api<Widget> = Api::namespaced(c.client(), "default");
    widgets
        .create(&PostParams::default(), &widget("t1", 7))
        .await
        .expect("create");
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let t = get_json(
        &c.client(),
        "/apis/fixture.sealpod.dev/v1alpha1/namespaces/default/widgets",
        accept,
    )
    .await;
    assert_eq!(t["kind"], json!("Table"));
    let names: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .expect("cols")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["Name", "Size", "Observed", "Age"]);
    assert_eq!(t["rows"][0]["cells"][0], json!("t1"));
    assert_eq!(t["rows"][0]["cells"][1], json!(7));
    assert_eq!(
        t["rows"][0]["object"]["kind"],
        json!("PartialObjectMetadata")
    );
    c.shutdown().await;
}

/// Reads watch lines until `n` have arrived.
async fn watch_lines(client: &kube::Client, uri: &str, n: usize) -> Vec<Value> {
    let req = http::Request::get(uri).body(Vec::new()).expect("request");
    let resp = client
        .send(req.map(kube::client::Body::from))
        .await
        .expect("watch");
    let mut body = resp.into_body().into_data_stream();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    while out.len() < n {
        let chunk = tokio::time::timeout(Duration::from_secs(15), body.next())
            .await
            .expect("bounded")
            .expect("open")
            .expect("chunk");
        buf.extend_from_slice(&chunk);
        while let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            out.push(serde_json::from_slice(&line).expect("json line"));
        }
    }
    out
}

#[tokio::test]
async fn watch_streams_initial_events_bookmarks_and_selector_exits() {
    let c = cluster().await;
    let client = c.client();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(&PostParams::default(), &cm("pre", &json!({"app": "x"})))
        .await
        .expect("create");
    let rv = c.resource_version();

    // Streaming list: ADDED for what exists, then the initial-events-end bookmark.
    let lines = watch_lines(&client, "/api/v1/namespaces/default/configmaps?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion=0&allowWatchBookmarks=true&labelSelector=app%3Dx", 2).await;
    assert_eq!(lines[0]["type"], json!("ADDED"));
    assert_eq!(lines[1]["type"], json!("BOOKMARK"));
    assert_eq!(
        lines[1]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        json!("true")
    );

    // A change elsewhere moves the cluster on, but this stream's bookmark stays at what it
    // delivered; an object leaving the selector arrives as DELETED.
    let uri = format!(
        "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}&allowWatchBookmarks=true&labelSelector=app%3Dx"
    );
    let watcher = tokio::spawn({
        let client = client.clone();
        async move { watch_lines(&client, &uri, 2).await }
    });
    cms.create(&PostParams::default(), &cm("other", &json!({"app": "y"})))
        .await
        .expect("unrelated");
    let patch = json!({"metadata": {"labels": {"app": "z"}}});
    cms.patch("pre", &Default::default(), &kube::api::Patch::Merge(patch))
        .await
        .expect("relabel");
    let lines = watcher.await.expect("joined");
    assert_eq!(lines[0]["type"], json!("DELETED"));
    assert_eq!(lines[0]["object"]["metadata"]["name"], json!("pre"));
    assert_eq!(
        lines[0]["object"]["metadata"]["labels"]["app"],
        json!("x"),
        "the DELETED event carries the object as it last matched"
    );
    let delivered = lines[0]["object"]["metadata"]["resourceVersion"].clone();
    assert_eq!(lines[1]["type"], json!("BOOKMARK"));
    assert_eq!(lines[1]["object"]["metadata"]["resourceVersion"], delivered);

    // Expired resourceVersion: an ERROR event with a 410 Status inside a 200 stream.
    c.compact();
    cms.create(&PostParams::default(), &cm("after", &json!({})))
        .await
        .expect("create");
    let lines = watch_lines(
        &client,
        &format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}"),
        1,
    )
    .await;
    assert_eq!(lines[0]["type"], json!("ERROR"));
    assert_eq!(lines[0]["object"]["code"], json!(410));
    assert_eq!(lines[0]["object"]["reason"], json!("Expired"));
    c.shutdown().await;
}

#[tokio::test]
async fn state_file_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let state = dir.path().join("state.json");
    let config = || devcluster::Config {
        state_file: Some(state.clone()),
        ..Default::default()
    };
    let c = devcluster::DevCluster::start(config())
        .await
        .expect("start");
    use kube::CustomResourceExt as _;
    c.install_crds(&[Widget::crd()]).await.expect("crds");
    let widgets: Api<Widget> = Api::namespaced(c.client(), "default");
    widgets
        .create(&PostParams::default(), &widget("kept", 5))
        .await
        .expect("create");
    let rv = c.resource_version();
    c.shutdown().await;

    let c = devcluster::DevCluster::start(config())
        .await
        .expect("restart");
    let widgets: Api<Widget> = Api::namespaced(c.client(), "default");
    let w = widgets
        .get("kept")
        .await
        .expect("the custom resource and its kind survive");
    assert_eq!(w.spec.size, 5);
    assert_eq!(
        c.resource_version(),
        rv,
        "the resourceVersion counter survives too"
    );
    let cms: Api<ConfigMap> = Api::namespaced(c.client(), "default");
    let made = cms
        .create(&PostParams::default(), &cm("new", &json!({})))
        .await
        .expect("create");
    assert!(
        made.metadata
            .resource_version
            .as_deref()
            .and_then(|r| r.parse::<u64>().ok())
            .expect("rv")
            > rv
    );
    c.shutdown().await;
}

#[tokio::test]
async fn secrets_are_encrypted_at_rest_and_the_state_file_is_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tmp");
    let state = dir.path().join("state.json");
    let key = dir.path().join("state.key");
    let config = |key_file: Option<std::path::PathBuf>| devcluster::Config {
        state_file: Some(state.clone()),
        state_key_file: key_file,
        ..Default::default()
    };
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "model-key"},
        "stringData": {"key": "sk-ant-plain-before"}
    }))
    .expect("secret");
    // Written without a key first, as by an earlier version: plain, but owner-only.
    let c = devcluster::DevCluster::start(config(None))
        .await
        .expect("start");
    let secrets: Api<Secret> = Api::namespaced(c.client(), "default");
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("create");
    c.shutdown().await;
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o600, "the state file is its owner's alone");

    // With a key, the next save encrypts every Secret; the key file is created owner-only.
    let c = devcluster::DevCluster::start(config(Some(key.clone())))
        .await
        .expect("start with a key");
    assert_eq!(mode(&key), 0o600);
    let secrets: Api<Secret> = Api::namespaced(c.client(), "default");
    let mut second = secret.clone();
    second.metadata.name = Some("second".into());
    second.string_data = Some([("key".to_owned(), "sk-ant-written-after".to_owned())].into());
    secrets
        .create(&PostParams::default(), &second)
        .await
        .expect("create");
    c.shutdown().await;
    let text = std::fs::read_to_string(&state).expect("state");
    let encoded = |v: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(v)
    };
    for value in ["sk-ant-plain-before", "sk-ant-written-after"] {
        assert!(
            !text.contains(value) && !text.contains(&encoded(value)),
            "{value} is in the state file"
        );
    }
    assert!(text.contains("aesgcm:v1:"), "{text}");

    // Restarted with the key, the Secrets read back; without it, the cluster refuses to start.
    let c = devcluster::DevCluster::start(config(Some(key.clone())))
        .await
        .expect("restart with the key");
    let secrets: Api<Secret> = Api::namespaced(c.client(), "default");
    let read = secrets.get("second").await.expect("get");
    let data = read.data.expect("data");
    assert_eq!(data["key"].0, b"sk-ant-written-after");
    c.shutdown().await;
    let refused = devcluster::DevCluster::start(config(None)).await;
    assert!(
        refused.is_err_and(|e| e.to_string().contains("--state-key-file")),
        "an encrypted state file never loads without its key"
    );
    std::fs::write(&key, "bm90IGEga2V5").expect("key");
    assert!(
        devcluster::DevCluster::start(config(Some(key.clone())))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn metadata_watcher_sees_partial_objects() {
    let c = cluster().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client(), "default");
    cms.create(&PostParams::default(), &cm("meta-a", &json!({"k": "v"})))
        .await
        .expect("create");
    let list = cms
        .list_metadata(&Default::default())
        .await
        .expect("list_metadata");
    assert!(
        list.items
            .iter()
            .any(|m| m.metadata.name.as_deref() == Some("meta-a"))
    );
    let metas: Api<kube::core::PartialObjectMeta<ConfigMap>> =
        Api::namespaced(c.client(), "default");
    let mut s = kube::runtime::watcher(metas, kube::runtime::watcher::Config::default()).boxed();
    let mut saw_b = false;
    cms.create(&PostParams::default(), &cm("meta-b", &json!({})))
        .await
        .expect("create");
    while !saw_b {
        let ev = tokio::time::timeout(Duration::from_secs(15), s.next())
            .await
            .expect("bounded")
            .expect("open")
            .expect("event");
        if let kube::runtime::watcher::Event::Apply(m)
        | kube::runtime::watcher::Event::InitApply(m) = ev
        {
            saw_b |= m.metadata.name.as_deref() == Some("meta-b");
        }
    }
    c.shutdown().await;
}

#[tokio::test]
async fn field_validation_strict_refuses_and_warn_warns() {
    let c = cluster().await;
    let client = c.client();
    let body = |name: &str| {
        serde_json::to_vec(
            &json!({"apiVersion": "fixture.sealpod.dev/v1alpha1", "kind": "Widget",
            "metadata": {"name": name}, "spec": {"size": 1, "bogus": true}}),
        )
        .expect("body")
    };
    let post = |mode: &str, name: &str| {
        http::Request::post(format!(
            "/apis/fixture.sealpod.dev/v1alpha1/namespaces/default/widgets?fieldValidation={mode}"
        ))
        .header("Content-Type", "application/json")
        .body(body(name))
        .expect("request")
        .map(kube::client::Body::from)
    };
    let strict = client
        .send(post("Strict", "strict"))
        .await
        .expect("response");
    assert_eq!(strict.status(), http::StatusCode::BAD_REQUEST);
    let warn = client.send(post("Warn", "warn")).await.expect("response");
    assert_eq!(warn.status(), http::StatusCode::CREATED);
    let warning = warn
        .headers()
        .get("warning")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        warning.contains("unknown field") && warning.contains("spec.bogus"),
        "{warning}"
    );
    c.shutdown().await;
}

#[tokio::test]
async fn each_kind_keeps_its_own_watch_log() {
    // kube-apiserver keeps a watch cache per resource: a quiet kind's watch resumes from its last
    // event however many changes other kinds made since; only its own kind's changes expire it.
    let (c, client, cms, secrets) = with_config_maps_and_secrets(devcluster::Config {
        watch_log_capacity: 3,
        ..Default::default()
    })
    .await;
    cms.create(&PostParams::default(), &cm("quiet", &json!({})))
        .await
        .expect("create");
    let rv = c.resource_version();
    for i in 0..10 {
        secrets
            .create(&PostParams::default(), &secret(&format!("busy-{i}")))
            .await
            .expect("secret");
    }
    let uri = format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}");
    let watcher = tokio::spawn({
        let client = client.clone();
        let uri = uri.clone();
        async move { watch_lines(&client, &uri, 1).await }
    });
    cms.create(&PostParams::default(), &cm("next", &json!({})))
        .await
        .expect("create");
    let lines = watcher.await.expect("joined");
    assert_eq!(lines[0]["type"], json!("ADDED"), "{lines:?}");
    assert_eq!(lines[0]["object"]["metadata"]["name"], json!("next"));

    for i in 0..3 {
        cms.create(
            &PostParams::default(),
            &cm(&format!("more-{i}"), &json!({})),
        )
        .await
        .expect("create");
    }
    let lines = watch_lines(&client, &uri, 1).await;
    assert_eq!(lines[0]["type"], json!("ERROR"), "{lines:?}");
    assert_eq!(lines[0]["object"]["code"], json!(410));
    c.shutdown().await;
}

#[tokio::test]
async fn watch_log_events_expire_with_age_on_every_kind() {
    // As etcd's history lasts until the API server's next compaction: an event older than the
    // log's age bound is gone, whichever kind's write drops it, and its watch gets 410 Gone.
    let (c, client, cms, secrets) = with_config_maps_and_secrets(devcluster::Config {
        watch_log_max_age: Duration::from_millis(100),
        ..Default::default()
    })
    .await;
    let before = c.resource_version();
    cms.create(&PostParams::default(), &cm("old", &json!({})))
        .await
        .expect("create");
    let uri = format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={before}");
    let lines = watch_lines(&client, &uri, 1).await;
    assert_eq!(lines[0]["type"], json!("ADDED"), "young enough: {lines:?}");

    tokio::time::sleep(Duration::from_millis(300)).await;
    secrets
        .create(&PostParams::default(), &secret("later"))
        .await
        .expect("secret");
    let lines = watch_lines(&client, &uri, 1).await;
    assert_eq!(lines[0]["type"], json!("ERROR"), "{lines:?}");
    assert_eq!(lines[0]["object"]["code"], json!(410));
    c.shutdown().await;
}

#[tokio::test]
async fn watch_from_a_future_resource_version_is_expired() {
    // A client of an earlier, unpersisted instance holds resourceVersions this one never had.
    let c = cluster().await;
    let future = c.resource_version() + 1000;
    let uri = format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={future}");
    let lines = watch_lines(&c.client(), &uri, 1).await;
    assert_eq!(lines[0]["type"], json!("ERROR"));
    assert_eq!(lines[0]["object"]["code"], json!(410));
    c.shutdown().await;
}

#[tokio::test]
async fn pods_are_bound_once_through_the_binding_subresource() {
    use k8s_openapi::api::core::v1::Pod;
    let c = devcluster::DevCluster::start(devcluster::Config::default())
        .await
        .expect("start");
    let pods: Api<Pod> = Api::namespaced(c.client(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "x"}]}
    }))
    .expect("pod");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create");
    let binding = |node: &str| {
        json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
               "target": {"apiVersion": "v1", "kind": "Node", "name": node}})
    };
    let status: Value = pods
        .create_subresource("binding", "p", &PostParams::default(), &binding("n1"))
        .await
        .expect("bind");
    assert_eq!(status["status"], "Success");
    let bound = pods.get("p").await.expect("get");
    assert_eq!(bound.spec.expect("spec").node_name.as_deref(), Some("n1"));
    let again = pods
        .create_subresource::<_, Value>("binding", "p", &PostParams::default(), &binding("n2"))
        .await
        .expect_err("a bound pod is not bound again");
    assert!(
        matches!(&again, kube::Error::Api(s) if s.code == 409 && s.message.contains("already assigned to node \"n1\"")),
        "{again:?}"
    );
    c.shutdown().await;
}
